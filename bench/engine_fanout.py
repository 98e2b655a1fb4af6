#!/usr/bin/env python3
"""Engine throughput: 1,000 no-op `sh` steps (fan-out, concurrency 2) run by `rota run`,
against `xargs -P2` spawning the same 1,000 `sh -c true` commands, measured in the same run.

Usage: python3 bench/engine_fanout.py [--rounds N] [--steps N] [--rota PATH] [--compare PATH]
Builds `rota` in release mode unless --rota is given. Prints medians, the ratio of Rota's
rate to xargs' rate (1.0 = as fast as spawning the processes can go), Rota's own CPU time
per step, its peak RSS, the load average around the measurement and the CPU time other
processes used during it (more than a few percent of one core spoils the ratio).

Wall-clock ratios are only meaningful on an idle machine (load average well below 1): other
work slows xargs and Rota differently. Rota's own CPU per step (its CPU time, children
included, minus xargs' for the same commands) barely moves with load, so it is the figure
to compare changes with. --compare runs a second `rota` binary (e.g. an older build) in the
same rounds, interleaved, each with its own ROTA_HOME.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(argv, env=None, stdin=None):
    """Runs argv; returns (seconds, CPU seconds, peak RSS in KiB) of it and its children."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if stdin else None,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if stdin:
        proc.stdin.write(stdin)
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} exited with {proc.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def load():
    return os.getloadavg()[0]


def busy_seconds():
    """CPU time all processes on the machine have used since boot (user, nice, system, irq)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rota")
    parser.add_argument("--compare", help="a second rota binary measured in the same rounds")
    args = parser.parse_args()
    rota = args.rota
    if not rota:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "rota-cli"], cwd=ROOT, check=True)
        rota = os.path.join(ROOT, "target", "release", "rota")
    work = tempfile.mkdtemp(prefix="rota-bench-")
    job = os.path.join(work, "fanout.yaml")
    with open(job, "w") as f:
        f.write("id: fanout\nconcurrency: 2\nsteps:\n")
        for i in range(args.steps):
            f.write(f"  - id: s{i}\n    sh: \"true\"\n")
    binaries = [("rota run", rota)]
    if args.compare:
        binaries.append(("compared", args.compare))
    envs = {
        name: dict(os.environ, ROTA_HOME=os.path.join(work, f"home{i}"))
        for i, (name, _) in enumerate(binaries)
    }
    commands = b"".join(b"true\n" for _ in range(args.steps))
    xargs_times, xargs_cpu = [], []
    times = {name: [] for name, _ in binaries}
    cpus = {name: [] for name, _ in binaries}
    rss = {name: [] for name, _ in binaries}
    for name, path in binaries:
        timed([path, "run", job], env=envs[name])  # warm-up: creates the store, page cache
    loads = [load()]
    busy_before, wall_before, ours = busy_seconds(), time.perf_counter(), 0.0
    for _ in range(args.rounds):
        t, cpu, _ = timed(["xargs", "-P2", "-I{}", "sh", "-c", "{}"], stdin=commands)
        xargs_times.append(t)
        xargs_cpu.append(cpu)
        ours += cpu
        for name, path in binaries:
            t, cpu, peak = timed([path, "run", job], env=envs[name])
            times[name].append(t)
            cpus[name].append(cpu)
            rss[name].append(peak)
            ours += cpu
    loads.append(load())
    # The machine's CPU time minus what the measured commands used: other work competing
    # with them.
    # Clock ticks are coarser than rusage: a slightly negative difference means none.
    others = max(0.0, busy_seconds() - busy_before - ours)
    others_share = others / (time.perf_counter() - wall_before)
    x = statistics.median(xargs_times)
    xc = statistics.median(xargs_cpu)
    n = args.steps
    print(f"steps                 {n} (sh -c true, concurrency 2), {args.rounds} rounds")
    print(f"load average (1 min)  {loads[0]:.2f} before, {loads[1]:.2f} after")
    print(f"other processes' CPU  {others:.2f} s during the rounds ({others_share:.0%} of one core)")
    print(f"xargs -P2   median    {x:.3f} s  ({n / x:.0f} commands/s), CPU {xc / n * 1e3:.3f} ms/command")
    for name, path in binaries:
        r = statistics.median(times[name])
        own = statistics.median(c - xc for c in cpus[name])
        print(f"{name:<11} median    {r:.3f} s  ({n / r:.0f} steps/s)  [{path}]")
        print(f"  ratio (rota rate / xargs rate)  {x / r:.2f}")
        print(f"  rota's own CPU      {own / n * 1e3:.3f} ms/step (CPU with children minus xargs')")
        print(f"  peak RSS            {max(rss[name]) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
