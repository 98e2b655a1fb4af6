#!/usr/bin/env python3
"""Engine throughput: 1,000 no-op `sh` steps (fan-out, concurrency 2) run by `rota run`,
against `xargs -P2` spawning the same 1,000 `sh -c true` commands, measured in the same run.

Usage: python3 bench/engine_fanout.py [--rounds N] [--steps N] [--rota PATH]
Builds `rota` in release mode unless --rota is given. Prints medians, the ratio of Rota's
rate to xargs' rate (1.0 = as fast as spawning the processes can go), and Rota's peak RSS.
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
    """Runs argv, returns (seconds, peak RSS in KiB) of that process and its children."""
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
    return elapsed, usage.ru_maxrss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rota")
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
    env = dict(os.environ, ROTA_HOME=os.path.join(work, "home"))
    commands = b"".join(b"true\n" for _ in range(args.steps))
    xargs_times, rota_times, rota_rss = [], [], []
    timed([rota, "run", job], env=env)  # warm-up: creates the store, page cache
    for _ in range(args.rounds):
        t, _ = timed(["xargs", "-P2", "-I{}", "sh", "-c", "{}"], stdin=commands)
        xargs_times.append(t)
        t, rss = timed([rota, "run", job], env=env)
        rota_times.append(t)
        rota_rss.append(rss)
    x, r = statistics.median(xargs_times), statistics.median(rota_times)
    print(f"steps                 {args.steps} (sh -c true, concurrency 2), {args.rounds} rounds")
    print(f"xargs -P2   median    {x:.3f} s  ({args.steps / x:.0f} commands/s)")
    print(f"rota run    median    {r:.3f} s  ({args.steps / r:.0f} steps/s)")
    print(f"ratio (rota rate / xargs rate)  {x / r:.2f}")
    print(f"rota peak RSS         {max(rota_rss) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
