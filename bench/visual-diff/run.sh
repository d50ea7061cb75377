#!/usr/bin/env bash
# Visual-diff benchmark: qa-sentinel diff against odiff and pixelmatch on the screenshot pairs of
# ../shared/bench/visual, in one run: time (hyperfine) and peak RSS (/usr/bin/time -v) per
# 1920x1080 and full-page pair, every verdict against the ground truth, and qa-sentinel's
# perceptual pixel counts next to pixelmatch's.
#
# usage:
#   bench/visual-diff/run.sh prepare   # copy the shared bench to $VISUAL, npm install, capture the pairs
#   bench/visual-diff/run.sh           # build qa-sentinel (release) and measure; tables on stdout
#
# env:
#   VISUAL   working copy of the shared bench (default /work/scratch/visual-diff/visual); the shared
#            folder itself is read-only, so pairs and node_modules live in this copy
#   SHARED   the shared bench to copy from (default: ../shared/bench/visual next to the repository)
#   OUT      where raw results and summary.md go (default /tmp/qa-sentinel-bench/visual-diff)
#   RUNS     timed runs per command and pair (default 10; full-page pairs use RUNS/2, at least 3)
#   QA       qa-sentinel binary (default: target/release/qa-sentinel, built unless NO_BUILD=1)
#   BENCH_LOCK  lock file held during timed runs (default /tmp/bench.lock; empty = no lock)
# Every HTTP request of `prepare` goes to 127.0.0.1 (the bench's own python http.server).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VISUAL="${VISUAL:-/work/scratch/visual-diff/visual}"
SHARED="${SHARED:-$(cd "$REPO/.." && pwd)/shared/bench/visual}"
OUT="${OUT:-/tmp/qa-sentinel-bench/visual-diff}"
RUNS="${RUNS:-10}"
LOCK="${BENCH_LOCK-/tmp/bench.lock}"
PAIRS="$VISUAL/shots/pairs"
ODIFF="$VISUAL/node/node_modules/@odiff/linux-x64/odiff"

prepare() {
  mkdir -p "$(dirname "$VISUAL")"
  if [ ! -d "$VISUAL" ]; then
    cp -r "$SHARED" "$VISUAL"
    chmod -R u+w "$VISUAL"
  fi
  mkdir -p "$VISUAL/node" "$VISUAL/results"
  (cd "$VISUAL/node" && { [ -f package.json ] || npm init -y > /dev/null; } &&
    npm install --no-audit --no-fund playwright-core pixelmatch@5 pixelmatch7@npm:pixelmatch@7 pngjs odiff-bin)
  python3 "$VISUAL/scripts/make_site.py"
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  (cd "$VISUAL/site" && exec python3 -m http.server "$port" --bind 127.0.0.1 > "$VISUAL/results/server.log" 2>&1) &
  local server=$!
  trap 'kill "$server" 2>/dev/null || true' RETURN
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/index.html" && break; sleep 0.1; done
  node "$VISUAL/scripts/capture_pairs.js" "http://127.0.0.1:$port"
  if [ -f "$HERE/extra/make_extra.py" ]; then
    python3 "$HERE/extra/make_extra.py" "$VISUAL"
    node "$HERE/extra/capture_extra.js" "$VISUAL" "http://127.0.0.1:$port"
  fi
}

lockrun() { if [ -n "$LOCK" ]; then flock "$LOCK" "$@"; else "$@"; fi; }

measure() {
  for tool in hyperfine node python3 /usr/bin/time; do
    command -v "$tool" > /dev/null || { echo "missing $tool" >&2; exit 2; }
  done
  [ -x "$ODIFF" ] && [ -f "$PAIRS/../groundtruth.json" ] || {
    echo "no pairs or odiff in $VISUAL: run '$0 prepare' first" >&2; exit 2; }
  if [ -z "${QA:-}" ]; then
    QA="$REPO/target/release/qa-sentinel"
    [ "${NO_BUILD:-0}" = 1 ] || (cd "$REPO" && cargo build --release -p qa-sentinel)
  fi
  mkdir -p "$OUT/correctness" "$OUT/timing" "$OUT/rss"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  local pm7="$VISUAL/scripts/pm7.mjs"

  # 1. Correctness: every pair, every tool (untimed).
  for d in "$PAIRS"/*/; do
    local pair; pair="$(basename "$d")"
    local a="$d/a.png" b="$d/b.png" rc
    set +e
    "$QA" diff "$a" "$b" --format json > "$OUT/correctness/$pair.qa.json"; rc=$?
    echo "$rc" > "$OUT/correctness/$pair.qa.rc"
    "$ODIFF" "$a" "$b" "$tmp/o.png" --aa --parsable-stdout > "$OUT/correctness/$pair.odiff.txt"; rc=$?
    echo "$rc" > "$OUT/correctness/$pair.odiff.rc"
    node "$pm7" "$a" "$b" - > "$OUT/correctness/$pair.pm.json"; rc=$?
    echo "$rc" > "$OUT/correctness/$pair.pm.rc"
    set -e
  done
  if [ -d "$VISUAL/shots/extra" ]; then
    mkdir -p "$OUT/extra"
    for d in "$VISUAL/shots/extra"/*/; do
      local pair; pair="$(basename "$d")"
      set +e
      "$QA" diff "$d/a.png" "$d/b.png" --format json > "$OUT/extra/$pair.qa.json"
      echo $? > "$OUT/extra/$pair.qa.rc"
      set -e
    done
  fi

  # The identical pairs are byte-identical files (one Chromium, one encoder), which qa-sentinel
  # settles without decoding. To also time the full path on pixel-identical images, re-encode b
  # with pngjs (other bytes, same pixels).
  for pair in desktop-identical full-identical; do
    mkdir -p "$tmp/$pair-reencoded"
    cp "$PAIRS/$pair/a.png" "$tmp/$pair-reencoded/a.png"
    node -e "const {PNG}=require('$VISUAL/node/node_modules/pngjs'),fs=require('fs');
      fs.writeFileSync(process.argv[2], PNG.sync.write(PNG.sync.read(fs.readFileSync(process.argv[1]))))" \
      "$PAIRS/$pair/b.png" "$tmp/$pair-reencoded/b.png"
  done

  # 2. Time and peak RSS, all tools in one hyperfine invocation per pair, under the lock.
  timed() {
    local pair runs dir
    for pair in desktop-identical desktop-identical-reencoded desktop-text \
        full-identical full-identical-reencoded full-text; do
      runs="$RUNS"
      case "$pair" in full-*) runs=$(( RUNS / 2 > 3 ? RUNS / 2 : 3 )) ;; esac
      case "$pair" in *-reencoded) dir="$tmp/$pair" ;; *) dir="$PAIRS/$pair" ;; esac
      local a="$dir/a.png" b="$dir/b.png"
      hyperfine -N -i --style none --warmup 2 --runs "$runs" \
        --export-json "$OUT/timing/$pair.json" \
        -n qa-sentinel "$QA diff $a $b --out $tmp/qa.png" \
        -n odiff "$ODIFF $a $b $tmp/odiff.png --aa --parsable-stdout" \
        -n pixelmatch "node $pm7 $a $b $tmp/pm.png" > /dev/null 2>> "$OUT/timing/hyperfine.log"
      for tool in qa-sentinel odiff pixelmatch; do
        local cmd
        case "$tool" in
          qa-sentinel) cmd=("$QA" diff "$a" "$b" --out "$tmp/qa.png") ;;
          odiff) cmd=("$ODIFF" "$a" "$b" "$tmp/odiff.png" --aa --parsable-stdout) ;;
          pixelmatch) cmd=(node "$pm7" "$a" "$b" "$tmp/pm.png") ;;
        esac
        /usr/bin/time -v -o "$OUT/rss/$pair.$tool.txt" "${cmd[@]}" > /dev/null 2>&1 || true
      done
    done
  }
  if [ -n "$LOCK" ]; then
    exec 9> "$LOCK"
    flock 9
  fi
  local load_before; load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
  timed
  [ -z "$LOCK" ] || flock -u 9

  # 3. Versions and machine, then the tables.
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores; $(free -g | awk '/Mem:/{print $2}') GiB RAM"
    echo "qa-sentinel: $("$QA" --version) (working tree on $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?'), $(rustc --version), cargo release profile)"
    echo "load average (1, 5, 15 min) before the timed runs: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores shared with other work)"
    echo "odiff: $("$ODIFF" --version 2>&1 | head -1)"
    echo "pixelmatch: $(node -p "require('$VISUAL/node/node_modules/pixelmatch7/package.json').version") (pngjs $(node -p "require('$VISUAL/node/node_modules/pngjs/package.json').version")), node $(node --version)"
    echo "hyperfine: $(hyperfine --version)"
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
  } > "$OUT/versions.txt"
  python3 "$HERE/summarize.py" "$OUT" "$PAIRS/../groundtruth.json" "$VISUAL/shots/extra.json" | tee "$OUT/summary.md"
}

case "${1:-measure}" in
  prepare) prepare ;;
  measure) measure ;;
  *) echo "usage: $0 [prepare|measure]" >&2; exit 2 ;;
esac
