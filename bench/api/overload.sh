#!/usr/bin/env bash
# Latency under overload: open-loop load (bench/loadgen, no coordinated omission) of W2 — new
# durable scans, the workload the database bounds — at 1× and 2× the rate the server sustained
# in the same run's wrk measurement.
# A server that sheds load answers the excess quickly with 503/429 and keeps the p99 of the
# rest bounded; one that queues everything lets p99 grow with the length of the run.
#
# usage: bench/api/overload.sh BASE_URL LABEL PIN SEED_DIR OUT.tsv
#   RAW (default: $(dirname OUT)/raw.tsv) — the wrk results of this run, for the W2 rate
#   RATE — override the sustainable W2 rate; OVERLOAD_SECONDS (default 10); CONNS (default 2048, more than http.max_in_flight)
#   FACTORS (default "1 2")
set -euo pipefail
BASE=$1 LABEL=$2 PIN=$3 SEED=$4 OUT=$5
REPO=$(cd "$(dirname "$0")/../.." && pwd)
RAW=${RAW:-$(dirname "$OUT")/raw.tsv}
SECONDS_=${OVERLOAD_SECONDS:-10}
CONNS=${CONNS:-2048}
FACTORS=${FACTORS:-"1 2"}
LG=$REPO/target/loadgen/release/qa-loadgen
[ -x "$LG" ] || cargo build --release -q --manifest-path "$REPO/bench/loadgen/Cargo.toml" --target-dir "$REPO/target/loadgen"

rate=${RATE:-$(awk -F'\t' -v l="$LABEL" -v p="$PIN" '$1==l && $2==p && $4=="W2" {r=$5} END {printf "%.0f", r}' "$RAW" 2>/dev/null || true)}
[ -n "$rate" ] && [ "$rate" != 0 ] || { echo "overload: no W2 rate for $LABEL/$PIN in $RAW (set RATE)" >&2; exit 1; }

TS=(); [ "$PIN" = pinned ] && TS=(taskset -c 1)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
[ -s "$OUT" ] || printf 'label\tpin\tworkload\tfactor\toffered_rps\tok_rps\tshed_share\tp50_ms\tp99_ms\tmax_ms\tlost\tstatuses\n' > "$OUT"

# Every W2 request must be a new scan (a dedup hit would not touch the database): distinct
# (permitted site, viewport, timeout) combinations, as load.lua builds them, none repeated.
requests_w2() {  # $1 count, $2 salt → file
  python3 - "$SEED/permitted.tsv" "$1" "$2" > "$tmp/w2.txt" <<'PY'
import sys
permitted = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if l.strip()]
n, salt = int(sys.argv[2]), int(sys.argv[3])
vps = ['desktop', 'mobile', 'tablet']
out = sys.stdout
# Each run takes its own block of timeouts (19,000 values), so runs never dedup against each other.
start = 1000 + (salt - 1) * 19000
combos = ((p, vp, t) for t in range(start, start + 19000) for p in permitted for vp in vps)
for i, (p, vp, t) in enumerate(combos):
    if i >= n: break
    body = '{"url":"%s","siteId":"%s","options":{"viewport":"%s","timeout":%d}}' % (p[3], p[2], vp, t)
    out.write('POST\t/api/scan\t%s\t%s\n' % (p[0], body))
PY
}

run() {  # $1 workload $2 factor $3 offered rate $4 requests file
  local line
  line=$("${TS[@]}" "$LG" "$BASE" "$3" "$SECONDS_" "$CONNS" "$4" | grep '^RESULT') || { echo "overload: loadgen failed" >&2; return 1; }
  python3 - "$LABEL" "$PIN" "$1" "$2" "$line" >> "$OUT" <<'PY'
import sys
label, pin, wl, factor, line = sys.argv[1:6]
kv = dict(f.split('=', 1) for f in line.split()[1:])
print('\t'.join([label, pin, wl, factor, kv['offered_rps'], kv['ok_rps'], kv['shed_share'],
                 kv['p50_ms'], kv['p99_ms'], kv['max_ms'], kv['lost'], kv['statuses']]))
PY
  tail -1 "$OUT" >&2
}

salt=0
for f in $FACTORS; do
  salt=$((salt + 1))
  offered=$(awk -v r="$rate" -v f="$f" 'BEGIN {printf "%.0f", r * f}')
  requests_w2 $((offered * SECONDS_ + 1000)) "$salt"
  run W2 "$f" "$offered" "$tmp/w2.txt"
done
