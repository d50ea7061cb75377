#!/usr/bin/env python3
"""cover.py OUT -- PROGRAM ARGS...

Runs PROGRAM under ptrace with a one-shot breakpoint (int3) on the entry of every function in
its symbol table, and writes to OUT the names of the functions that ran, in first-run order,
when it exits. Each breakpoint is removed at its first hit, so after warm-up the program runs
at full speed. Used by refresh.sh to build crates/cli/link-order.txt.

Why not `perf`: sampling misses functions that run briefly (most of startup), and page-fault
tracing sees one function per 64 KiB fault-around window. Why not a coverage build: its
symbols would not be the release binary's. x86-64 Linux only.
"""
import ctypes
import os
import signal
import subprocess
import sys

PTRACE_TRACEME, PTRACE_CONT, PTRACE_GETREGS, PTRACE_SETREGS = 0, 7, 12, 13
PTRACE_SETOPTIONS = 0x4200
PTRACE_O_TRACECLONE, PTRACE_O_EXITKILL = 0x8, 0x100000
WALL = 0x40000000

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long


class Regs(ctypes.Structure):
    """struct user_regs_struct (x86-64)."""
    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss "
        "fs_base gs_base ds es fs gs").split()]


def functions(exe):
    """Function entry offsets → names (the first name at an address)."""
    found = {}
    nm = subprocess.run(["nm", "-S", "--defined-only", exe], capture_output=True, text=True, check=True)
    for line in nm.stdout.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "tTwW" and int(p[1], 16) > 0:
            found.setdefault(int(p[0], 16), p[3])
    return found


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit(__doc__)
    out, cmd = sys.argv[1], sys.argv[3:]
    exe = os.path.realpath(cmd[0])
    names = functions(exe)

    pid = os.fork()
    if pid == 0:
        libc.ptrace(PTRACE_TRACEME, 0, None, None)
        os.execv(exe, cmd)
    os.waitpid(pid, WALL)  # stopped after exec: mapped, nothing run yet
    libc.ptrace(PTRACE_SETOPTIONS, pid, None, ctypes.c_void_p(PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL))
    base = next(int(p[0].split("-")[0], 16) for p in (l.split() for l in open(f"/proc/{pid}/maps"))
                if len(p) >= 6 and os.path.realpath(p[5]) == exe and int(p[2], 16) == 0)
    mem = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    original = {}
    for offset in names:
        addr = base + offset
        original[addr] = os.pread(mem, 1, addr)
        os.pwrite(mem, b"\xcc", addr)
    print(f"cover: {len(original)} breakpoints in {exe}", file=sys.stderr)

    ran = []
    regs = Regs()
    libc.ptrace(PTRACE_CONT, pid, None, None)
    while True:
        try:
            tid, status = os.waitpid(-1, WALL)
        except ChildProcessError:
            break
        if not os.WIFSTOPPED(status):
            continue  # a thread (or the process) exited
        sig, event = os.WSTOPSIG(status), status >> 16
        deliver = 0
        if sig == signal.SIGTRAP and event == 0:
            libc.ptrace(PTRACE_GETREGS, tid, None, ctypes.byref(regs))
            addr = regs.rip - 1
            if addr in original:
                # Restore the byte once; another thread may trap on it before that: rewind it too.
                if original[addr] is not None:
                    os.pwrite(mem, original[addr], addr)
                    original[addr] = None
                    ran.append(addr)
                regs.rip = addr
                libc.ptrace(PTRACE_SETREGS, tid, None, ctypes.byref(regs))
            else:
                deliver = sig
        elif sig == signal.SIGTRAP or (sig == signal.SIGSTOP and tid != pid):
            pass  # a clone event, or a new thread's first stop
        else:
            deliver = sig
        libc.ptrace(PTRACE_CONT, tid, None, ctypes.c_void_p(deliver))
    with open(out, "w") as f:
        f.write("".join(names[a - base] + "\n" for a in ran))
    print(f"cover: {len(ran)} functions ran", file=sys.stderr)


if __name__ == "__main__":
    main()
