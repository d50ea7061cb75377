#!/usr/bin/env python3
"""Side-by-side table from bench.sh's raw.tsv: every server next to the Fastify reference, with ratios.

Usage: table.py RAW.tsv [--rep LABEL]  (medians over repetitions of each server/workload/pinning)."""
import csv, statistics, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
g = defaultdict(list)
for r in rows:
    g[(r['label'], r['workload'], r['pin'])].append(r)

def med(key, col):
    vals = [float(x[col]) for x in g.get(key, [])]
    return statistics.median(vals) if vals else None

servers = sorted({k[0] for k in g}, key=lambda s: {'hyper': 0, 'fastify1': 1, 'fastify2': 2}.get(s, 3))
pins = sorted({k[2] for k in g})
print('| workload | pinning | server | rps | × Fastify rps | p50 ms | p99 ms | p99 vs Fastify | non-2xx | peak RSS MB | RSS / Fastify | CPU µs/req | CPU / Fastify |')
print('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
for wl in ['W0', 'W1', 'W2', 'W3', 'W4', 'W5']:
    for pin in pins:
        ref = ('fastify1', wl, pin)
        for s in servers:
            k = (s, wl, pin)
            if k not in g:
                continue
            rps, p50, p99 = med(k, 'rps'), med(k, 'p50_ms'), med(k, 'p99_ms')
            rss, cpu, non2 = med(k, 'server_peak_rss_mb'), med(k, 'server_cpu_ms_per_req'), med(k, 'non2xx')
            r_rps, r_p99, r_rss, r_cpu = med(ref, 'rps'), med(ref, 'p99_ms'), med(ref, 'server_peak_rss_mb'), med(ref, 'server_cpu_ms_per_req')
            ratio = lambda a, b, fmt='%.2f': (fmt % (a / b)) if (a is not None and b) else '–'
            print('| %s | %s | %s | %.0f | %s | %.2f | %.2f | %s | %d | %.1f | %s | %.1f | %s |' % (
                wl, pin, s, rps, ratio(rps, r_rps), p50, p99, ratio(p99, r_p99), non2, rss, ratio(rss, r_rss),
                cpu * 1000, ratio(cpu, r_cpu)))
