#!/usr/bin/env bash
# qa-sentinel's link-checker benchmark: qa-sentinel against lychee, linkinator and muffy on
# the large generated corpus (about 5,000 pages, ground truth known), all in ONE run with the
# same 10 s per-request timeout, on loopback only.
#
#   bench/linkcheck/run.sh install     # anchors into $BENCH_SCRATCH/tools (cargo/npm; slow, once)
#   bench/linkcheck/run.sh [run]       # build, generate, serve, measure, write docs/bench/linkcheck.md
#
# Environment: BENCH_SCRATCH (default /tmp/qa-sentinel-linkbench: corpus, servers, raw outputs),
# LINKCHECK_HARNESS (default <repo>/../shared/bench/linkcheck: generator, servers, scorer; read
# only), RUNS (3), PAGES (5000), SKIP_BUILD=1, and LYCHEE / MUFFY / LINKINATOR / SENTINEL to
# point at other binaries. Every timed run holds /tmp/bench.lock (one benchmark machine-wide)
# and is measured by /usr/bin/time -v (wall, user+sys CPU, peak RSS); the harness's score.py
# computes recall and precision against ground_truth.json.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
HARNESS="$(cd "${LINKCHECK_HARNESS:-$REPO/../shared/bench/linkcheck}" && pwd)"
SCRATCH="${BENCH_SCRATCH:-/tmp/qa-sentinel-linkbench}"
TOOLS="${BENCH_TOOLS:-$SCRATCH/tools}"
RUNS="${RUNS:-3}"
PAGES="${PAGES:-5000}"
TIMEOUT_S=10
LYCHEE="${LYCHEE:-$TOOLS/bin/lychee}"
MUFFY="${MUFFY:-$TOOLS/bin/muffy}"
LINKINATOR="${LINKINATOR:-$TOOLS/npm/node_modules/.bin/linkinator}"
SENTINEL="${SENTINEL:-$REPO/target/release/qa-sentinel}"
DOC="${BENCH_DOC:-$REPO/docs/bench/linkcheck.md}"

install_tools() {
  mkdir -p "$TOOLS/npm"
  nice cargo install lychee --locked --root "$TOOLS"
  nice cargo install muffy --root "$TOOLS"   # --locked fails for muffy 0.5.8
  (cd "$TOOLS/npm" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install linkinator)
}

case "${1:-run}" in
  install) install_tools; exit 0 ;;
  run) ;;
  *) echo "usage: $0 [install|run]" >&2; exit 2 ;;
esac

for tool in "$LYCHEE" "$MUFFY" "$LINKINATOR"; do
  [ -x "$tool" ] || { echo "missing $tool: run '$0 install' or set LYCHEE/MUFFY/LINKINATOR" >&2; exit 2; }
done
command -v nginx >/dev/null || { echo "nginx is required (apt-get install nginx)" >&2; exit 2; }

# Work on a copy of the harness: its servers write their pid files and logs beside it.
mkdir -p "$SCRATCH/harness" "$SCRATCH/results"
cp "$HARNESS"/{gen_site.py,ext_server.py,serve.sh,run_bench.sh,score.py} "$SCRATCH/harness/"
H="$SCRATCH/harness"
CORPUS="$SCRATCH/corpus/large"
if [ ! -f "$CORPUS/ground_truth.json" ] || [ "$(python3 -c "import json;print(json.load(open('$CORPUS/stats.json'))['content_pages'])")" != "$PAGES" ]; then
  rm -rf "$CORPUS"
  python3 "$H/gen_site.py" --pages "$PAGES" --seed 1 --out "$CORPUS" >/dev/null
fi

if [ -z "${SKIP_BUILD:-}" ]; then
  (cd "$REPO" && cargo build --release -p qa-sentinel)
fi

RUN_DIR="$SCRATCH/run" "$H/serve.sh" start "$CORPUS"
trap 'RUN_DIR="$SCRATCH/run" "$H/serve.sh" stop "$CORPUS" >/dev/null 2>&1 || true' EXIT

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$SCRATCH/results/$STAMP"
mkdir -p "$RESULTS"
export RESULTS_DIR="$RESULTS"

# The exact configurations (placeholders are filled in by the harness's run_bench.sh).
declare -A CMD ADAPTER
ORDER=(qa-sentinel lychee linkinator muffy)
CMD[qa-sentinel]="$SENTINEL check {root_url} --checks broken-links --format json --output {out} --timeout $TIMEOUT_S --max-retries 0 --allow-private --max-pages 100000 --concurrency 64 --per-host-concurrency 16 --no-progress"
ADAPTER[qa-sentinel]=sentinel
CMD[lychee]="$LYCHEE --no-progress --format json --output {out} --timeout $TIMEOUT_S --max-retries 0 --include-fragments --host-request-interval 0ms --host-concurrency 64 --files-from {pages_file}"
ADAPTER[lychee]=lychee
CMD[linkinator]="$LINKINATOR {root_url} --recurse --check-fragments --format json --timeout ${TIMEOUT_S}000 --concurrency 100"
ADAPTER[linkinator]=linkinator
CMD[muffy]="$MUFFY check-site --format json --timeout ${TIMEOUT_S}s {root_url}"
ADAPTER[muffy]=muffy

# Interleave the tools run by run, so that background load on the shared machine spreads
# over all of them instead of hitting one tool's runs together.
for i in $(seq 1 "$RUNS"); do
  for label in "${ORDER[@]}"; do
    "$H/run_bench.sh" -n 1 -s "$i" -t 900 -c "$CORPUS" "$label" "${ADAPTER[$label]}" "${CMD[$label]}"
  done
done

versions() {
  echo "qa-sentinel: $("$SENTINEL" --version) (git $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO" && git diff --quiet 2>/dev/null || echo ', uncommitted changes'))"
  echo "lychee: $("$LYCHEE" --version)"
  echo "linkinator: $(node -p "require('$(dirname "$(readlink -f "$LINKINATOR")")/../package.json').version" 2>/dev/null || echo unknown) (node $(node --version))"
  echo "muffy: $("$MUFFY" --version)"
  echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
}
machine() {
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr)"
}

{
  for label in "${ORDER[@]}"; do printf '%s\t%s\n' "$label" "${CMD[$label]}"; done
} > "$RESULTS/commands.tsv"
versions > "$RESULTS/versions.txt"
machine > "$RESULTS/machine.txt"

python3 "$HERE/summarize.py" --results "$RESULTS" --corpus "$CORPUS" --doc "$DOC" --date "$STAMP"
echo "wrote $DOC (raw outputs in $RESULTS)"
