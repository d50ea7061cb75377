#!/usr/bin/env python3
"""Writes the measured part of docs/bench/linkcheck.md from one run of bench/linkcheck/run.sh.

The table goes between the `<!-- results:begin -->` and `<!-- results:end -->` markers; the
rest of the document (the analysis, written by people) is kept as it is.
"""
import argparse
import csv
import json
import os
import statistics

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--date", required=True)
    a = ap.parse_args()
    rows = list(csv.DictReader(open(os.path.join(a.results, "runs.csv"))))
    commands = [l.rstrip("\n").split("\t", 1) for l in open(os.path.join(a.results, "commands.tsv"))]
    stats = json.load(open(os.path.join(a.corpus, "stats.json")))
    lines = [BEGIN, ""]
    lines.append("Measured %s on: %s" % (a.date, open(os.path.join(a.results, "machine.txt")).read().strip()))
    lines.append("")
    lines.append("Versions:")
    lines.append("")
    lines += ["- " + v.strip() for v in open(os.path.join(a.results, "versions.txt")) if v.strip()]
    lines.append("")
    lines.append("Corpus: `gen_site.py --pages %d --seed 1`: %d pages, %d link occurrences, %d unique URLs "
                 "without fragment (%d with), %d unique broken targets. Per-request timeout 10 s for every tool "
                 "(one deliberate 30 s link sets a 10 s floor on every wall time)."
                 % (stats["content_pages"], stats["pages"], stats["link_occurrences"],
                    stats["unique_urls_without_fragment"], stats["unique_urls"], stats["broken_unique_targets"]))
    lines.append("")
    lines.append("| tool | runs | wall s, median (min-max) | CPU s (user+sys), median | peak RSS MB, median | recall, median (min-max) | precision, median (min-max) | occurrence recall | kinds below 95 % recall (median run) |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    by_label = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    med = statistics.median
    for label, _ in commands:
        all_runs = by_label.get(label, [])
        # A run killed by the harness's time limit (SIGKILL: exit 137) measured nothing.
        runs = [r for r in all_runs if r["exit"] != "137"]
        killed = len(all_runs) - len(runs)
        count = "%d%s" % (len(runs), " (+%d killed at the 900 s limit)" % killed if killed else "")
        if not runs:
            lines.append("| %s | %s | - | - | - | - | - | - | did not finish |" % (label, count))
            continue
        wall = [float(r["wall_s"]) for r in runs]
        cpu = [float(r["cpu_s"]) for r in runs]
        rss = [float(r["peak_rss_mb"]) for r in runs]
        precision = lambda r: float(r["precision"]) if r["precision"] not in ("", "None") else 0.0
        by_recall = sorted(runs, key=lambda r: float(r["recall"]))
        mid = by_recall[(len(by_recall) - 1) // 2]
        kinds = sorted(set(k for k in (mid["missed_kinds"] + "|" + mid["partial_kinds"]).split("|") if k))
        lines.append("| %s | %s | %.1f (%.1f-%.1f) | %.2f | %.0f | %.3f (%.3f-%.3f) | %.3f (%.3f-%.3f) | %.3f | %s |" % (
            label, count, med(wall), min(wall), max(wall), med(cpu), med(rss),
            med([float(r["recall"]) for r in runs]), min(float(r["recall"]) for r in runs), max(float(r["recall"]) for r in runs),
            med([precision(r) for r in runs]), min(precision(r) for r in runs), max(precision(r) for r in runs),
            float(mid["occ_recall"]), ", ".join(kinds) or "-"))
    lines.append("")
    lines.append("Exact commands (`{root_url}` = http://127.0.0.1:18080/; `{out}`, `{pages_file}` filled in by the harness's `run_bench.sh`):")
    lines.append("")
    for label, cmd in commands:
        lines.append("- %s: `%s`" % (label, cmd))
    lines.append("")
    lines.append(END)
    block = "\n".join(lines)
    if os.path.exists(a.doc):
        doc = open(a.doc).read()
        if BEGIN in doc and END in doc:
            doc = doc[:doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
        else:
            doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    else:
        doc = "# Link checking: qa-sentinel against lychee, linkinator and muffy\n\n" + block + "\n"
    open(a.doc, "w").write(doc)


if __name__ == "__main__":
    main()
