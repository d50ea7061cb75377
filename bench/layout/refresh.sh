#!/usr/bin/env bash
# Rewrites crates/cli/link-order.txt: the functions the API server runs, hottest first (see
# crates/cli/build.rs for why). Run it after changes to the hot path or the dependencies, then
# rebuild; the list only names symbols, so a stale one costs memory, never correctness.
#
#   bench/layout/refresh.sh            (~5 min; PostgreSQL and Redis as for bench/api/run.sh)
#
# For each store (PostgreSQL + Redis, then SQLite) it imports the API benchmark's seed data,
# starts `qa-sentinel serve --role api` under cover.py (a one-shot breakpoint on every function:
# the exact set that ran, in first-run order, whatever the kernel's fault-around hides), and
# drives it through W0-W5 of ../shared/bench/api with `perf record` sampling the hot functions
# (optional: without perf the list is in first-run order).
# Env: WORK (scratch dir, shared with bench/api/run.sh), DURATION (s per workload, default 4),
#      PG_ADMIN, QA_REDIS_URL (default redis://127.0.0.1:6379).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$REPO/../shared/bench/api}
WORK=${WORK:-/work/scratch/api-bench-run}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${QA_REDIS_URL:-redis://127.0.0.1:6379}
BIN=$REPO/target/release/qa-sentinel
OUT=$WORK/layout
PORT=8097

for tool in python3 nm curl psql wrk node; do command -v $tool >/dev/null || { echo "refresh.sh needs $tool" >&2; exit 1; }; done
mkdir -p "$WORK" "$OUT"
[ -d "$WORK/harness" ] || cp -r "$SHARED" "$WORK/harness"
H=$WORK/harness
[ -s "$H/seed/permitted.tsv" ] || (cd "$H/fastify" && { [ -d node_modules ] || npm ci --no-audit --no-fund -q; } && node seed.js --files-only >/dev/null)
(cd "$REPO" && cargo build --release --locked -q -p qa-sentinel)
PERF=$(command -v perf || true)

for cfg in qa-pg qa-sqlite; do
  env=(SENTINEL_PRODUCTION=true SENTINEL_QUEUE_MAX_PENDING=1000000000 SENTINEL_DATA_DIR="$OUT/data-$cfg")
  rm -rf "$OUT/data-$cfg"
  if [ $cfg = qa-pg ]; then
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS qa_layout WITH (FORCE)" -c "CREATE DATABASE qa_layout"
    env+=(DATABASE_URL="${PG_ADMIN%/*}/qa_layout" REDIS_URL="$REDIS")
  fi
  env "${env[@]}" "$BIN" admin import-bench "$H/seed" >/dev/null
  env "${env[@]}" python3 "$REPO/bench/layout/cover.py" "$OUT/ran-$cfg.txt" -- \
    "$BIN" serve --role api --bind 127.0.0.1:$PORT >"$OUT/server-$cfg.log" 2>&1 &
  tracer=$!
  for _ in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:$PORT/health/live && break; sleep 0.1; done
  pid=$(cat /proc/$tracer/task/*/children | awk '{print $1}')
  sampler=""
  if [ -n "$PERF" ]; then "$PERF" record -q -F 2000 -o "$OUT/cpu-$cfg.data" -p "$pid" >/dev/null 2>&1 & sampler=$!; fi
  SERVER_PID=$pid PIN=layout WORKLOADS="W0 W1 W2 W3 W4 W5" DURATION=${DURATION:-4} WARMUP=1 QUIET_MAX_WAIT=0 \
    W0_PATH=/health/live SEED_DIR="$H/seed" OUT="$OUT/raw-$cfg.tsv" "$H/bench.sh" http://127.0.0.1:$PORT "$cfg" >/dev/null
  for path in /health/ready /metrics /api/scans/00000000-0000-0000-0000-000000000000; do curl -s -o /dev/null "http://127.0.0.1:$PORT$path"; done
  [ -n "$sampler" ] && { kill -INT "$sampler"; wait "$sampler" || true; }
  kill -INT "$pid"; wait "$tracer"
done

python3 - "$BIN" "$OUT" > "$REPO/crates/cli/link-order.txt" <<'PY'
import collections, os, subprocess, sys
binp, out = sys.argv[1], sys.argv[2]
ran, seen = [], set()
for cfg in ("qa-pg", "qa-sqlite"):
    for line in open(f"{out}/ran-{cfg}.txt"):
        s = line.strip()
        if s and s not in seen:
            seen.add(s); ran.append(s)
samples = collections.Counter()
for cfg in ("qa-pg", "qa-sqlite"):
    data = f"{out}/cpu-{cfg}.data"
    if os.path.exists(data):
        text = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso", "--no-demangle"],
                              capture_output=True, text=True).stdout
        for line in text.splitlines():
            p = line.split()
            if len(p) >= 3 and p[-1] == f"({os.path.realpath(binp)})" and p[1] in seen:
                samples[p[1]] += 1
hot = [s for s, _ in samples.most_common()]
order = hot + [s for s in ran if s not in samples]
print("\n".join(order))
print(f"link-order.txt: {len(order)} functions ({len(hot)} sampled hot first)", file=sys.stderr)
PY
(cd "$REPO" && cargo build --release --locked -q -p qa-sentinel)
echo "rebuilt $BIN with the new order" >&2
