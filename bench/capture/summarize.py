#!/usr/bin/env python3
"""Markdown table of a bench/capture/run.sh results directory."""
import glob
import json
import os
import sys

results = sys.argv[1]
machine = json.load(open(os.path.join(results, 'machine.json')))
rows = []
for tool in sorted(glob.glob(os.path.join(results, '*.tool.json'))):
    name = os.path.basename(tool)[:-len('.tool.json')]
    t = json.load(open(tool))
    m = json.load(open(os.path.join(results, name + '.mem.json')))
    load = open(os.path.join(results, name + '.load')).read().split()[0]
    rows.append((name, t, m, load))

cli = [t['shots_per_s'] for n, t, _, _ in rows if n.startswith('cli')]


def cpu_per_shot(t, m):
    """CPU seconds per shot: the pool binary counts its browsers' (and its own) CPU itself;
    for the anchors, the rusage of the whole command (their browsers exit normally)."""
    if 'chromium_cpu_s' in t:
        total = t['chromium_cpu_s'] + t.get('own_cpu_s', 0)
    elif 'cpu_s' in m:
        total = m['cpu_s']
    else:
        return '–'
    return f"{total / max(t['shots'] - t['errors'], 1):.2f}"
cli_rate = sum(cli) / len(cli) if cli else None

print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['mem_gb']} GB; "
      f"{machine['chromium']}; {machine['rustc']}; kernel {machine['kernel']}; {machine['date']}")
print()
print('| tool / config | shots | errors | capture s | shots/s | × one-process-per-shot | '
      'CPU s per shot | peak Chromium PSS MB | peak Chromium RSS-sum MB | peak procs | '
      'load avg at start |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
for name, t, m, load in rows:
    if name.startswith('cli'):
        label = f'one Chromium process per shot ({name})'
    elif name.startswith('pw'):
        label = (f"Playwright, one browser, {t['concurrency']} context(s) at a time ({name})")
    else:
        build = os.path.basename(t.get('executable', 'chromium'))
        label = (f"qa-sentinel pool, {t['instances']} browser(s) × {t['pages_per_browser']} pages, "
                 f"{build} ({name})")
    ratio = f"{t['shots_per_s'] / cli_rate:.1f}×" if cli_rate else '–'
    cpu = cpu_per_shot(t, m)
    print(f"| {label} | {t['shots']} | {t['errors']} | {t['capture_s']} | {t['shots_per_s']} | "
          f"{ratio} | {cpu} | {m['peak_chromium_pss_mb']} | {m['peak_chromium_rss_mb']} | "
          f"{m['peak_chromium_procs']} | {load} |")

# Medians per tool over the repetitions.
groups = {}
for name, t, m, load in rows:
    groups.setdefault(name.rsplit('_r', 1)[0], []).append((t, m))


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


cli_median = median([t['shots_per_s'] for t, _ in groups['cli']]) if 'cli' in groups else None
print()
print('| tool / config | runs | shots/s, median (min–max) | × one-process-per-shot (medians) | '
      'CPU s per shot, median | peak Chromium PSS MB, median |')
print('|---|---|---|---|---|---|')
for key, runs in groups.items():
    rates = [t['shots_per_s'] for t, _ in runs]
    pss = median([m['peak_chromium_pss_mb'] for _, m in runs])
    ratio = f"{median(rates) / cli_median:.1f}×" if cli_median else '–'
    cpus = [cpu_per_shot(t, m) for t, m in runs]
    cpus = [float(c) for c in cpus if c != '–']
    cpu = f"{median(cpus):.2f}" if cpus else '–'
    print(f"| {key} | {len(runs)} | {median(rates):.2f} ({min(rates)}–{max(rates)}) | {ratio} | "
          f"{cpu} | {pss} |")
