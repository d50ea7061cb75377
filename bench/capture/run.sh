#!/usr/bin/env bash
# Capture throughput: qa-sentinel's browser pool against one Chromium process per shot
# (`chromium --headless --screenshot`), in one run, on the same local pages.
#
# 30 pages × 3 viewports (desktop 1920×1080, tablet 768×1024, mobile 375×667) = 90 PNGs per
# tool. The pages are the shared visual bench site (`$SHARED_BENCH/site/tp/`), copied to a
# scratch directory and served by nginx on 127.0.0.1. Nothing but loopback is contacted.
#
# usage: bench/capture/run.sh install   playwright-core (npm) into $WORK/anchors, optional anchor
#        bench/capture/run.sh           release build, then every tool in one run
#   WORK=/tmp/qa-sentinel-capture-bench  scratch directory (site copy, anchors, PNGs, results)
#   PORT=8771                            nginx port on 127.0.0.1
#   REPS=1                               repetitions of the whole set
#   CONFIGS="1x3 2x2 2x3 2x3-full"       pool configurations, instances x pages per browser
#                                        (-full: on /usr/bin/chromium, not the headless shell)
#   SKIP_CLI=1                           skip the one-process-per-shot anchor
#   SKIP_PW=1                            skip Playwright (run only when installed), 1 and 2
#                                        contexts at a time, one browser (the shared harness's
#                                        cap_pw.js, copied to $WORK/anchors/scripts)
#   BENCH_LOCK=/tmp/bench.lock           each tool run holds this flock (empty: no lock)
#   SHARED_BENCH=/work/shared/bench/visual  read-only source of the site and the CLI anchor
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${SHARED_BENCH:-/work/shared/bench/visual}
work=${WORK:-/tmp/qa-sentinel-capture-bench}
port=${PORT:-8771}
reps=${REPS:-1}
configs=${CONFIGS:-"1x3 2x2 2x3 2x3-full"}
lock=${BENCH_LOCK-/tmp/bench.lock}

if [ "${1:-}" = install ]; then
  mkdir -p "$work/anchors/node" "$work/anchors/scripts"
  (cd "$work/anchors/node" && { [ -f package.json ] || npm init -y > /dev/null; } \
    && npm install --no-audit --no-fund playwright-core)
  exit 0
fi

mkdir -p "$work/results" "$work/out"
rm -rf "$work/site" "$work/results"/*
cp -r "$shared/site" "$work/site"
chmod -R u+w "$work/site"
for i in $(seq -w 0 29); do echo "http://127.0.0.1:$port/tp/p$i.html"; done > "$work/urls30.txt"

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  server { listen 127.0.0.1:$port; root $work/site; }
}
NGINX
nginx -c "$work/nginx.conf"
trap 'nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true' EXIT
curl -sf -o /dev/null "http://127.0.0.1:$port/tp/p00.html"

(cd "$root" && cargo build --release -p sentinel-visual --example capture_bench)
bin="$root/target/release/examples/capture_bench"

{
  echo "{\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\",\"cores\":$(nproc),\
\"mem_gb\":$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),\
\"chromium\":\"$(/usr/bin/chromium --version 2>/dev/null | head -1)\",\"rustc\":\"$(rustc --version)\",\
\"kernel\":\"$(uname -r)\",\"date\":\"$(date -u +%FT%TZ)\"}"
} > "$work/results/machine.json"

locked() { if [ -n "$lock" ]; then flock "$lock" "$@"; else "$@"; fi; }

run() { # name command...
  local name=$1; shift
  cut -d' ' -f1-3 /proc/loadavg > "$work/results/$name.load"
  locked python3 "$here/memsample.py" "$work/results/$name.mem.json" -- "$@" \
    > /dev/null
  echo "$name: $(cat "$work/results/$name.tool.json")"
}

for rep in $(seq 1 "$reps"); do
  if [ -z "${SKIP_CLI:-}" ]; then
    rm -rf "$work/out/cli"
    run "cli_r$rep" bash -c "'$shared/scripts/cap_cli.sh' '$work/urls30.txt' '$work/out/cli' \
      > '$work/results/cli_r$rep.tool.json'"
  fi
  if [ -z "${SKIP_PW:-}" ] && [ -d "$work/anchors/node/node_modules/playwright-core" ]; then
    # cap_pw.js loads ../node/node_modules/playwright-core relative to itself.
    mkdir -p "$work/anchors/scripts"
    cp "$shared/scripts/cap_pw.js" "$work/anchors/scripts/cap_pw.js"
    for conc in 1 2; do
      rm -rf "$work/out/pw-c$conc"
      run "pw-c${conc}_r$rep" bash -c "node '$work/anchors/scripts/cap_pw.js' '$work/urls30.txt' \
        '$work/out/pw-c$conc' $conc > '$work/results/pw-c${conc}_r$rep.tool.json'"
    done
  fi
  for c in $configs; do
    # `2x3-full`: the same pool on the full Chromium browser instead of the default
    # (the headless shell when installed).
    shape=${c%-full}; exe=()
    [ "$shape" != "$c" ] && exe=(--executable /usr/bin/chromium)
    rm -rf "$work/out/pool-$c"
    run "pool-${c}_r$rep" bash -c "'$bin' --urls '$work/urls30.txt' --instances ${shape%x*} \
      --pages ${shape#*x} ${exe[*]} --out '$work/out/pool-$c' > '$work/results/pool-${c}_r$rep.tool.json'"
  done
done

python3 "$here/summarize.py" "$work/results"
