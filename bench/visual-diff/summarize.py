#!/usr/bin/env python3
"""Markdown tables from the raw results of run.sh.

usage: summarize.py OUT GROUNDTRUTH.json [EXTRA.json]
"""
import json
import os
import re
import sys

out, truth_path = sys.argv[1], sys.argv[2]
extra_path = sys.argv[3] if len(sys.argv) > 3 else None
truth = json.load(open(truth_path))


def read(path, default=""):
    try:
        return open(path).read().strip()
    except OSError:
        return default


def odiff_count(text):
    m = re.match(r"(\d+)", text)
    return int(m.group(1)) if m else 0


# --- versions -------------------------------------------------------------------------------
print("## Machine and versions\n")
for line in read(os.path.join(out, "versions.txt")).splitlines():
    print(f"- {line}")

# --- timing ---------------------------------------------------------------------------------
pairs = ["desktop-identical", "desktop-identical-reencoded", "desktop-text",
         "full-identical", "full-identical-reencoded", "full-text"]
tools = ["qa-sentinel", "odiff", "pixelmatch"]
timing, rss = {}, {}
for pair in pairs:
    try:
        for r in json.load(open(os.path.join(out, "timing", f"{pair}.json")))["results"]:
            timing[(r["command"], pair)] = (r["median"] * 1e3, r["min"] * 1e3, r["max"] * 1e3, len(r["times"]))
    except OSError:
        pass
    for tool in tools:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", read(os.path.join(out, "rss", f"{pair}.{tool}.txt")))
        if m:
            rss[(tool, pair)] = int(m.group(1)) / 1024

print("\n## Time per pair (ms, median of the hyperfine runs; whole process: read, decode, diff, write the diff image)\n")
print("| tool | 1920x1080 identical (same bytes) | 1920x1080 identical pixels, re-encoded | 1920x1080 text change | full page 1920x10124 identical (same bytes) | full page identical pixels, re-encoded | full page text change | peak RSS 1080p (MB) | peak RSS full page (MB) |")
print("|---|---|---|---|---|---|---|---|---|")
for tool in tools:
    cells = []
    for pair in pairs:
        t = timing.get((tool, pair))
        cells.append(f"{t[0]:.1f} ({t[1]:.1f}–{t[2]:.1f}, n={t[3]})" if t else "NA")
    peak = [max(rss.get((tool, p), 0) for p in pairs if p.startswith(prefix)) for prefix in ("desktop", "full")]
    print(f"| {tool} | " + " | ".join(cells) + f" | {peak[0]:.0f} | {peak[1]:.0f} |")

# --- verdicts -------------------------------------------------------------------------------
print("\n## Verdicts and pixel counts on every pair\n")
print("exit code: 0 = match, non-zero = differ. ✓ = agrees with the ground truth. "
      "Δ = qa-sentinel's perceptual count vs pixelmatch's.\n")
print("| pair | truly differs | qa-sentinel | odiff --aa | pixelmatch 7 | qa-sentinel perceptual px | pixelmatch px | Δ | qa-sentinel exact px | qa-sentinel regions (kind: count) |")
print("|---|---|---|---|---|---|---|---|---|---|")
right = {t: 0 for t in tools}
worst_delta = 0.0
names = sorted(p for p in truth)
for pair in names:
    want = truth[pair]["truly_differs"]
    base = os.path.join(out, "correctness", pair)
    qa = json.loads(read(base + ".qa.json", "{}") or "{}")
    pm = json.loads(read(base + ".pm.json", "{}") or "{}")
    rcs = {t: read(f"{base}.{k}.rc", "?") for t, k in (("qa-sentinel", "qa"), ("odiff", "odiff"), ("pixelmatch", "pm"))}
    cells = []
    for tool in tools:
        differs = rcs[tool] not in ("0", "?")
        ok = differs == want
        right[tool] += ok
        cells.append(f"{'differ' if differs else 'match'} {'✓' if ok else '✗'}")
    qa_px, pm_px = qa.get("differentPixels"), pm.get("diff_pixels")
    if qa_px is None or pm_px is None:
        delta = "NA"
    elif pm_px == 0:
        delta = "0 %" if qa_px == 0 else "∞"
    else:
        d = abs(qa_px - pm_px) / pm_px * 100
        worst_delta = max(worst_delta, d)
        delta = f"{d:.2f} %"
    kinds = {}
    for r in qa.get("regions", []):
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    kinds_text = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) or "—"
    print(f"| {pair} | {'yes' if want else 'no'} | " + " | ".join(cells)
          + f" | {qa_px} | {pm_px} | {delta} | {qa.get('exactDifferentPixels')} | {kinds_text} |")
print(f"\nRight verdicts out of {len(names)}: " + ", ".join(f"{t} {right[t]}" for t in tools)
      + f". Largest perceptual-count difference from pixelmatch: {worst_delta:.2f} %.")

# --- extra validation -----------------------------------------------------------------------
if extra_path and os.path.exists(extra_path) and os.path.isdir(os.path.join(out, "extra")):
    expected = json.load(open(extra_path))
    ok, wrong, invisible = 0, [], []
    for pair, want in sorted(expected.items()):
        base = os.path.join(out, "extra", pair)
        rc = read(base + ".qa.rc", "?")
        qa = json.loads(read(base + ".qa.json", "{}") or "{}")
        if want and qa.get("differentPixels") == 0 and not qa.get("regions"):
            # Not one perceptible pixel: the change is outside this viewport (below the fold).
            invisible.append(pair)
            continue
        differs = rc not in ("0", "?")
        if differs == want:
            ok += 1
        else:
            wrong.append(f"{pair} (expected {'differ' if want else 'match'}, {qa.get('differentPixels')} px)")
    print(f"\n## Extra validation pairs (bench/visual-diff/extra)\n\n{ok} of {ok + len(wrong)} right."
          + ("" if not wrong else " Wrong: " + "; ".join(wrong) + ".")
          + f" Left out, because their change is outside the viewport (no perceptible pixel): "
          + ", ".join(invisible) + ".")
