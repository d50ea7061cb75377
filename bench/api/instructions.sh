#!/usr/bin/env bash
# Instructions per request under callgrind: a measure of the server's own work that does not
# move with the machine's load (timings on the development VM vary by up to 40 % run to run).
#
#   bench/api/instructions.sh [BIN] [PATH]        default: target/release/qa-sentinel, /health/live
#   HYPER=1 bench/api/instructions.sh             the harness's bare hyper hello-world instead
#
# The server starts on the embedded SQLite defaults (fresh data directory) under
# `valgrind --tool=callgrind --instr-atstart=no`; after start-up and a 3 s warm-up,
# instrumentation is switched on, `wrk -c8` drives PATH for DURATION s (default 10), and the
# total instruction count is divided by the requests wrk completed. Needs valgrind and wrk.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$REPO/target/release/qa-sentinel}
URLPATH=${2:-/health/live}
WORK=${WORK:-/work/scratch/api-instructions}
PORT=${PORT:-8096}
for tool in valgrind callgrind_control wrk curl; do command -v $tool >/dev/null || { echo "instructions.sh needs $tool (apt-get install -y valgrind wrk curl)" >&2; exit 1; }; done
rm -rf "$WORK"; mkdir -p "$WORK"
VG=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out")
if [ "${HYPER:-0}" = 1 ]; then
  H=${HYPER_BIN:-$WORK/../api-bench-run/harness/hyper-hello/target/release/hyper-hello}
  [ -x "$H" ] || { echo "build the harness's hyper-hello first (bench/api/run.sh does), or set HYPER_BIN" >&2; exit 1; }
  URLPATH=/hello
  env PORT=$PORT "${VG[@]}" "$H" >"$WORK/server.log" 2>&1 &
else
  env SENTINEL_PRODUCTION=true SENTINEL_DATA_DIR="$WORK/data" "${VG[@]}" "$BIN" serve --role api --bind 127.0.0.1:$PORT >"$WORK/server.log" 2>&1 &
fi
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
URL=http://127.0.0.1:$PORT$URLPATH
for _ in $(seq 300); do curl -s -o /dev/null "$URL" && break; sleep 0.2; done
wrk -t1 -c8 -d3s "$URL" >/dev/null 2>&1
callgrind_control -i on $pid >/dev/null 2>&1
out=$(wrk -t1 -c8 -d"${DURATION:-10}"s "$URL" 2>&1)
callgrind_control -i off $pid >/dev/null 2>&1
callgrind_control -d $pid >/dev/null 2>&1
sleep 1
n=$(echo "$out" | awk '/requests in/ {print $1}')
ir=$(awk '/^totals:/ {print $2}' "$WORK/callgrind.out.1")
echo "$URLPATH: $n requests, $ir instructions, $((ir / n)) per request (profile: callgrind_annotate $WORK/callgrind.out.1)"
