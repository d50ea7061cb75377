#!/usr/bin/env bash
# Distributed-mode benchmarks (docs/bench/distributed.md):
#  1. POST /api/scan on the dedup path (workload W1 of ../shared/bench/api) through two
#     qa-sentinel API processes against one, all on one PostgreSQL and one Redis:
#       one-local   1 API process, PostgreSQL, in-process cache and limiter (no Redis)
#       one-redis   1 API process, PostgreSQL + Redis (the distributed backends)
#       two-redis   2 API processes, PostgreSQL + Redis, the load split between them
#     The load is always two wrk processes (CONNS/2 connections, 1 thread each), aimed at
#     the one API or one at each, so the load generator is the same in every configuration.
#  2. The permission path: an L1 hit against an L2 (Redis) hit, in-process
#     (crates/cache/benches/perm_path.rs).
# Redis here is a standalone redis-server of this script's own (REDIS_PORT); PostgreSQL is
# the machine's (a fresh database per run). Nothing is pinned: 2 cores are shared by wrk,
# the API processes, Redis and PostgreSQL, as they would be on one small host.
#
# Env: WORK (scratch dir), REPS (3), CONFIGS, DURATION (15), WARMUP (3), CONNS (64),
#      PG_ADMIN, REDIS_PORT (6391), QA_ENV (extra VAR=value settings for the API processes,
#      space-separated), PERM=0 (skip the permission-path benchmark).
#      Results: $WORK/results/{w1.tsv,w1.md,perm.md}.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$REPO/../shared/bench/api}
WORK=${WORK:-/work/scratch/dist-bench}
REPS=${REPS:-3}
CONFIGS=${CONFIGS:-"one-local one-redis two-redis"}
DURATION=${DURATION:-15}; WARMUP=${WARMUP:-3}; CONNS=${CONNS:-64}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}
DB=${DB:-qa_dist_bench}
REDIS_PORT=${REDIS_PORT:-6391}
BIN=$REPO/target/release/qa-sentinel
TCK=$(getconf CLK_TCK)

mkdir -p "$WORK/results/logs"
[ -d "$WORK/harness" ] || cp -r "$SHARED" "$WORK/harness"
H=$WORK/harness
if [ ! -s "$H/seed/dedup.tsv" ]; then
  [ -d "$H/fastify/node_modules" ] || (cd "$H/fastify" && npm ci --no-audit --no-fund -q)
  (cd "$H/fastify" && SEED_DIR="$H/seed" node seed.js --files-only >/dev/null)
fi
(cd "$REPO" && cargo build --release -q -p qa-sentinel)

redis_pid=""
cleanup() {
  [ -n "${api_pids:-}" ] && kill $api_pids 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
}
trap cleanup EXIT
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
  --dir "$WORK" --logfile "$WORK/results/logs/redis.log" &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

ticks() { local s=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && s=$((s + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12+$13}'))); done; echo $s; }
wait_http() { for _ in $(seq 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
prime() {   # POST every dedup combo once through $1 (one curl, keep-alive)
  local args=() first=1 k s u v t
  while IFS=$'\t' read -r k s u v t; do
    [ $first = 1 ] || args+=(--next); first=0
    args+=(-s -o /dev/null -w '%{http_code}\n' -X POST "$1/api/scan" -H "Authorization: Bearer $k"
           -H 'Content-Type: application/json' -d "{\"url\":\"$u\",\"siteId\":\"$s\",\"options\":{\"viewport\":\"$v\",\"timeout\":$t}}")
  done < "$H/seed/dedup.tsv"
  curl "${args[@]}" | sort | uniq -c | tr '\n' ' '
}
wrk_w1() {   # $1 base url, $2 seconds, $3 log file (its CPU seconds, user + system, in $3.cpu)
  WL=W1 SEED_DIR="$H/seed" /usr/bin/time -f '%U %S' -o "$3.cpu" \
    wrk -t1 -c$((CONNS / 2)) -d"$2s" --timeout 10s -s "$H/lua/load.lua" "$1/api/scan" > "$3"
}
machine() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }   # total, idle
# Other engineers' builds share this machine: before each measurement wait (at most
# QUIET_MAX_WAIT s) until it is quiet (busy below QUIET_PCT % over one second).
quiet_gate() {
  local waited=0 a b busy
  while :; do
    a=$(machine); sleep 1; b=$(machine); waited=$((waited + 1))
    busy=$(echo "$a $b" | awk '{t=$3-$1; i=$4-$2; printf "%.0f", (t>0 ? 100*(1-i/t) : 0)}')
    if [ "$busy" -lt "${QUIET_PCT:-30}" ] || [ "$waited" -ge "${QUIET_MAX_WAIT:-30}" ]; then break; fi
  done
}

OUT=$WORK/results/w1.tsv
[ -s "$OUT" ] || printf 'config\trep\trps\tp50_ms_a\tp99_ms_a\tp50_ms_b\tp99_ms_b\tnon2xx\tapi_cpu_ms_per_req\tredis_cpu_ms_per_req\tpg_cpu_ms_per_req\trequests\tmachine_busy_pct\tother_procs_busy_pct\n' > "$OUT"

for rep in $(seq "$REPS"); do
  for cfg in $CONFIGS; do
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    env=(SENTINEL_PRODUCTION=true SENTINEL_QUEUE_MAX_PENDING=1000000000 DATABASE_URL="${PG_ADMIN%/*}/$DB")
    case $cfg in *-redis) env+=(REDIS_URL="redis://127.0.0.1:$REDIS_PORT");; esac
    # shellcheck disable=SC2206
    [ -n "${QA_ENV:-}" ] && env+=($QA_ENV)
    n=1; [ "$cfg" = two-redis ] && n=2
    env "${env[@]}" SENTINEL_DATA_DIR="$WORK/data" "$BIN" admin import-bench "$H/seed" >/dev/null 2>&1
    api_pids=""; bases=()
    for i in $(seq "$n"); do
      port=$((8100 + i))
      env "${env[@]}" SENTINEL_DATA_DIR="$WORK/data-$i" "$BIN" serve --role api --bind 127.0.0.1:$port \
        > "$WORK/results/logs/${cfg}_r${rep}_api$i.log" 2>&1 &
      api_pids="$api_pids $!"; bases+=("http://127.0.0.1:$port")
      wait_http "${bases[-1]}/health/live"
    done
    target_a=${bases[0]}; target_b=${bases[$((n - 1))]}
    primed=$(prime "$target_a")
    quiet_gate
    wrk_w1 "$target_a" "$WARMUP" /dev/null & wa=$!
    wrk_w1 "$target_b" "$WARMUP" /dev/null & wb=$!
    wait $wa $wb
    pg_pids=$(pgrep -x postgres | tr '\n' ' ')
    a0=$(ticks $api_pids); r0=$(ticks $redis_pid); p0=$(ticks $pg_pids); m0=$(machine)
    la="$WORK/results/logs/${cfg}_r${rep}_wrk_a.txt"; lb="$WORK/results/logs/${cfg}_r${rep}_wrk_b.txt"
    wrk_w1 "$target_a" "$DURATION" "$la" & wa=$!
    wrk_w1 "$target_b" "$DURATION" "$lb" & wb=$!
    wait $wa $wb
    a1=$(ticks $api_pids); r1=$(ticks $redis_pid); p1=$(ticks $pg_pids); m1=$(machine)
    kill $api_pids; wait $api_pids 2>/dev/null || true; api_pids=""
    python3 - "$cfg" "$rep" "$la" "$lb" "$a0" "$a1" "$r0" "$r1" "$p0" "$p1" "$TCK" "$primed" "$m0" "$m1" >> "$OUT" <<'PY'
import sys
cfg, rep, la, lb, a0, a1, r0, r1, p0, p1, tck, primed, m0, m1 = sys.argv[1:]
def res(path):
    line = next(l for l in open(path) if l.startswith('RESULT'))
    return dict(kv.split('=', 1) for kv in line.split()[1:])
a, b = res(la), res(lb)
req = int(a['requests']) + int(b['requests'])
rps = float(a['rps']) + float(b['rps'])
ms = lambda x, y: (int(y) - int(x)) * 1000.0 / int(tck) / max(req, 1)
mt0, mi0 = map(int, m0.split()); mt1, mi1 = map(int, m1.split())
total, busy = mt1 - mt0, (mt1 - mt0) - (mi1 - mi0)
wrk_ticks = sum(sum(map(float, open(p + '.cpu').read().split()[:2])) for p in (la, lb)) * int(tck)
ours = (int(a1) - int(a0)) + (int(r1) - int(r0)) + (int(p1) - int(p0)) + wrk_ticks
print('\t'.join([cfg, rep, '%.0f' % rps, a['p50_ms'], a['p99_ms'], b['p50_ms'], b['p99_ms'],
                 str(int(a['non2xx']) + int(b['non2xx'])), '%.4f' % ms(a0, a1), '%.4f' % ms(r0, r1),
                 '%.4f' % ms(p0, p1), str(req), '%.1f' % (100.0 * busy / max(total, 1)),
                 '%.1f' % max(0.0, 100.0 * (busy - ours) / max(total, 1))]))
PY
    tail -1 "$OUT"
  done
done

python3 - "$OUT" > "$WORK/results/w1.md" <<'PY'
import sys, statistics as st
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])][1:]
by = {}
for r in rows:
    by.setdefault(r[0], []).append(r)
print('| config | reps | req/s (median) | req/s (min–max) | p50 ms (a / b) | p99 ms (a / b) | non-2xx | API CPU µs/req | Redis CPU µs/req | other processes busy % |')
print('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
for cfg in ['one-local', 'one-redis', 'two-redis']:
    rs = by.get(cfg)
    if not rs: continue
    med = lambda i: st.median(float(r[i]) for r in rs)
    lo, hi = min(float(r[2]) for r in rs), max(float(r[2]) for r in rs)
    print(f'| {cfg} | {len(rs)} | {med(2):.0f} | {lo:.0f}–{hi:.0f} | {med(3):.2f} / {med(5):.2f} | {med(4):.2f} / {med(6):.2f} | '
          f'{sum(int(r[7]) for r in rs)} | {1000 * med(8):.1f} | {1000 * med(9):.1f} | {med(13):.0f} |')
PY
cat "$WORK/results/w1.md"

[ "${PERM:-1}" = 0 ] || (cd "$REPO" && REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
  cargo bench -q -p sentinel-cache --bench perm_path) | tee "$WORK/results/perm.md"
