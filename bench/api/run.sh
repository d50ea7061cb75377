#!/usr/bin/env bash
# Side-by-side API benchmark, all in one run, same machine, same pinning:
#   hyper       bare hyper hello-world (the ceiling; W0 only)
#   fastify1    the Fastify build of the guide's design (the peer), one Node process
#   qa-pg       qa-sentinel --role api on PostgreSQL (+ Redis when QA_REDIS_URL is set)
#   qa-sqlite   qa-sentinel --role api on the embedded SQLite default
# The harness is ../shared/bench/api/bench.sh (wrk + lua/load.lua, PROTOCOL.md), used unchanged from
# a scratch copy. Results: $WORK/results/raw.tsv; table: `python3 bench/api/table.py $WORK/results/raw.tsv`.
#
# Env: WORK (scratch dir), CONFIGS, PINS ("pinned unpinned"), REPS, WORKLOADS, QA_REDIS_URL,
#      DURATION / WARMUP (passed to bench.sh), OVERLOAD=1 (also run the overload probe, see overload.sh).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$REPO/../shared/bench/api}
WORK=${WORK:-/work/scratch/api-bench-run}
CONFIGS=${CONFIGS:-"hyper fastify1 qa-pg qa-sqlite"}
PINS=${PINS:-"pinned"}
REPS=${REPS:-1}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}
QA_DB=${QA_DB:-qa_bench}
BIN=$REPO/target/release/qa-sentinel

for tool in wrk node npm psql taskset; do command -v $tool >/dev/null || { echo "bench/api/run.sh needs $tool (apt-get install -y wrk nodejs npm postgresql-client util-linux)" >&2; exit 1; }; done
mkdir -p "$WORK"
if [ ! -d "$WORK/harness" ]; then cp -r "$SHARED" "$WORK/harness"; fi
H=$WORK/harness
mkdir -p "$H/results/logs"
[ -x "$H/hyper-hello/target/release/hyper-hello" ] || (cd "$H/hyper-hello" && cargo build --release -q)
[ -d "$H/fastify/node_modules" ] || (cd "$H/fastify" && npm ci --no-audit --no-fund -q)
psql "$PG_ADMIN" -qtAc "SELECT 1 FROM pg_database WHERE datname='bench'" | grep -q 1 || psql "$PG_ADMIN" -qc "CREATE DATABASE bench"
(cd "$REPO" && cargo build --release -q -p qa-sentinel)
# How much of the link order (crates/cli/build.rs) the binary still has: code changed since the
# list was made renames some functions, and those are laid out (and resident) as without it.
ORDER=$REPO/crates/cli/link-order.txt
if [ -s "$ORDER" ] && command -v nm >/dev/null; then
  found=$(nm --defined-only "$BIN" | awk '{print $3}' | sort -u | comm -12 - <(sort -u "$ORDER") | wc -l)
  echo "link order: $found of $(sort -u "$ORDER" | wc -l) listed functions are in the binary (bench/layout/refresh.sh renews the list)" >&2
fi

port_of() { case $1 in hyper) echo 3001;; fastify1) echo 3000;; qa-pg) echo 8090;; *) echo 8091;; esac; }
w0_of() { case $1 in qa-*) echo /health/live;; *) echo /hello;; esac; }
wait_http() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
descendants() { local p=$1; echo "$p"; for c in $(cat /proc/$p/task/*/children 2>/dev/null); do descendants "$c"; done; }
stop() { local pids; pids=$(descendants "$1" | tac); kill $pids 2>/dev/null || true; for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done; kill -9 $pids 2>/dev/null || true; }

start_server() {   # $1 config, $2 pin → echoes pid
  local cfg=$1 pin=$2 TS=() port
  [ "$pin" = pinned ] && TS=(taskset -c 0)
  port=$(port_of "$cfg")
  case $cfg in
    hyper) "${TS[@]}" env PORT=$port "$H/hyper-hello/target/release/hyper-hello" >"$H/results/logs/server_$cfg.log" 2>&1 & ;;
    fastify1) (cd "$H/fastify" && node seed.js >/dev/null) ; "${TS[@]}" env PORT=$port WORKERS=1 NODE_ENV=production node "$H/fastify/server.js" >"$H/results/logs/server_$cfg.log" 2>&1 & ;;
    qa-pg|qa-sqlite)
      local env=(SENTINEL_PRODUCTION=true SENTINEL_QUEUE_MAX_PENDING=1000000000 SENTINEL_DATA_DIR="$WORK/data-$cfg")
      rm -rf "$WORK/data-$cfg"
      if [ "$cfg" = qa-pg ]; then
        psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $QA_DB WITH (FORCE)" -c "CREATE DATABASE $QA_DB"
        env+=(DATABASE_URL="${PG_ADMIN%/*}/$QA_DB")
        [ -n "${QA_REDIS_URL:-}" ] && env+=(REDIS_URL="$QA_REDIS_URL")
      fi
      env "${env[@]}" "$BIN" admin import-bench "$H/seed" >&2
      "${TS[@]}" env "${env[@]}" "$BIN" serve --role api --bind 127.0.0.1:$port >"$H/results/logs/server_$cfg.log" 2>&1 & ;;
  esac
  echo $!
}

# Order: every server of a pinning is started (each on its own port, idle until its turn), then
# each workload runs against every server back to back, so that the rows compared with each
# other (a server and the Fastify reference, W0 and hyper) are measured within a minute of each
# other. This machine's speed drifts by more than the margins measured here over the quarter of
# an hour a run takes (hyper's W0 ranged 71k–234k req/s between runs, and within one run the
# load generator's own CPU per request differed by 30 % between rows taken 15 minutes apart);
# running the servers one after another compared rows from different machine states.
# Peak RSS stays per workload: bench.sh resets VmHWM before each one. Idle servers cost little
# (bench.sh records other processes' CPU in other_procs_busy_pct: at most 4 % in runs L–N).
[ -s "$H/seed/permitted.tsv" ] || (cd "$H/fastify" && node seed.js --files-only >/dev/null)
declare -A pid_of=()
trap 'for p in "${pid_of[@]}"; do stop "$p"; done' EXIT
for rep in $(seq "$REPS"); do
  for pin in $PINS; do
    for cfg in $CONFIGS; do
      pid_of[$cfg]=$(start_server "$cfg" "$pin")
      wait_http "http://127.0.0.1:$(port_of "$cfg")$(w0_of "$cfg")"
    done
    sleep 1
    echo "== rep $rep $pin: $(for c in $CONFIGS; do printf '%s=%s ' "$c" "${pid_of[$c]}"; done)$(date +%T)" >&2
    LG=""; [ "$pin" = pinned ] && LG=1
    for wl in ${WORKLOADS:-W0 W1 W2 W3 W4 W5}; do
      for cfg in $CONFIGS; do
        [ "$cfg" = hyper ] && [ "$wl" != W0 ] && continue
        SERVER_PID=${pid_of[$cfg]} LOADGEN_CPUS=$LG PIN=$pin REP=$rep WORKLOADS=$wl W0_PATH=$(w0_of "$cfg") SEED_DIR="$H/seed" \
          OUT="$WORK/results/raw.tsv" "$H/bench.sh" "http://127.0.0.1:$(port_of "$cfg")" "$cfg" || echo "bench failed: $cfg $pin $wl" >&2
      done
    done
    if [ "${OVERLOAD:-0}" = 1 ]; then
      for cfg in $CONFIGS; do
        [ "$cfg" = hyper ] && continue
        "$REPO/bench/api/overload.sh" "http://127.0.0.1:$(port_of "$cfg")" "$cfg" "$pin" "$H/seed" "$WORK/results/overload.tsv" || true
      done
    fi
    for cfg in $CONFIGS; do stop "${pid_of[$cfg]}"; done
    pid_of=()
  done
done
python3 "$REPO/bench/api/table.py" "$WORK/results/raw.tsv"
