#!/usr/bin/env python3
"""Run a command; every 0.2 s sum the memory of its whole process tree; print one JSON line.

usage: memsample.py OUT.json -- command args...

The tree is found by parent pid (this kernel has no /proc/<pid>/task/<tid>/children).
Reported: wall time, exit code, and the peaks over samples of
  tree_pss_mb      proportional set size of every process in the tree (shared pages split)
  chromium_pss_mb  the same over processes named chromium*/chrome*
  chromium_rss_mb  plain RSS sum over them (counts shared pages once per process)
  chromium_procs   number of live chromium processes
and cpu_s, the user+system CPU time of the command and every descendant that was waited for
(exact for tools whose browsers exit normally; a pool that SIGKILLs its browser's process group
loses its renderers' share, which is why the pool's bench binary counts its own).
"""
import json
import os
import resource
import subprocess
import sys
import time


def snapshot():
    parent, comm = {}, {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        head, _, rest = stat.rpartition(')')
        fields = rest.split()
        if fields and fields[0] in ('Z', 'X'):
            continue
        pid = int(name)
        parent[pid] = int(fields[1])
        comm[pid] = head.partition('(')[2]
    return parent, comm


def tree(root, parent):
    kids = {}
    for pid, ppid in parent.items():
        kids.setdefault(ppid, []).append(pid)
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, ()))
    return out


def memory(pid):
    pss = rss = 0
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Pss:'):
                    pss = int(line.split()[1])
                elif line.startswith('Rss:'):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def main():
    out = sys.argv[1]
    cmd = sys.argv[sys.argv.index('--') + 1:]
    start = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd)
    peak = dict(tree_pss=0, chromium_pss=0, chromium_rss=0, chromium_procs=0)
    while proc.poll() is None:
        parent, comm = snapshot()
        t_pss = c_pss = c_rss = n = 0
        for pid in tree(proc.pid, parent):
            pss, rss = memory(pid)
            t_pss += pss
            if comm.get(pid, '').startswith(('chrom', 'chrome')):
                c_pss += pss
                c_rss += rss
                n += 1
        peak['tree_pss'] = max(peak['tree_pss'], t_pss)
        peak['chromium_pss'] = max(peak['chromium_pss'], c_pss)
        peak['chromium_rss'] = max(peak['chromium_rss'], c_rss)
        peak['chromium_procs'] = max(peak['chromium_procs'], n)
        time.sleep(0.2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = dict(
        rc=proc.returncode,
        wall_s=round(time.time() - start, 2),
        cpu_s=round(cpu, 1),
        peak_tree_pss_mb=round(peak['tree_pss'] / 1024, 1),
        peak_chromium_pss_mb=round(peak['chromium_pss'] / 1024, 1),
        peak_chromium_rss_mb=round(peak['chromium_rss'] / 1024, 1),
        peak_chromium_procs=peak['chromium_procs'],
    )
    with open(out, 'w') as f:
        json.dump(result, f)
    print(json.dumps(result))
    sys.exit(proc.returncode)


if __name__ == '__main__':
    main()
