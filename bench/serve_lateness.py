#!/usr/bin/env python3
"""Benchmark of `rota serve`: cron-tick lateness and idle CPU.

Usage:
    python3 bench/serve_lateness.py                 # uses target/release/rota (builds it)
    ROTA_BIN=target/debug/rota python3 bench/serve_lateness.py --ticks 60 --idle 30

1. Lateness: one job with a 1-second cron (`* * * * * *`) whose step is `true`. For each
   occurrence, lateness = the instant the scheduler recorded its decision (the occurrence row's
   `recorded_at`, written just before the run starts) minus the instant it was due. Reports
   p50/p99/max over at least 60 firings (target: p99 <= 5 ms).
2. Idle CPU: 100 loaded jobs whose daily cron never fires during the measurement. Reports the
   server's CPU time (user + system, from /proc/<pid>/stat) over wall time (target: < 1 %).
"""

import argparse
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def rota_bin():
    explicit = os.environ.get("ROTA_BIN")
    if explicit:
        return pathlib.Path(explicit).resolve()
    subprocess.run(["cargo", "build", "--release", "-p", "rota-cli"], cwd=ROOT, check=True)
    return ROOT / "target" / "release" / "rota"


def start(binary, home, jobs):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTA_")}
    env["ROTA_HOME"] = str(home)
    log = open(home / "serve.log", "ab")
    proc = subprocess.Popen(
        [str(binary), "serve", "--listen", "127.0.0.1:0", "--jobs", str(jobs)],
        env=env, stdout=subprocess.DEVNULL, stderr=log,
    )
    deadline = time.time() + 30
    while not (home / "serve.addr").exists():
        if time.time() > deadline or proc.poll() is not None:
            sys.exit("rota serve did not start; see " + str(home / "serve.log"))
        time.sleep(0.05)
    return proc


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values, p):
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def lateness(binary, ticks):
    with tempfile.TemporaryDirectory() as tmp:
        home, jobs = pathlib.Path(tmp, "home"), pathlib.Path(tmp, "jobs")
        home.mkdir()
        jobs.mkdir()
        (jobs / "tick.yaml").write_text(
            "id: tick\ntriggers:\n  - cron: '* * * * * *'\npolicy:\n  overlap: allow\n"
            "  concurrency: 4\nsteps:\n  - id: main\n    sh: 'true'\n"
        )
        proc = start(binary, home, jobs)
        time.sleep(ticks + 3)
        stop(proc)
        db = sqlite3.connect(home / "rota.db")
        rows = db.execute(
            "SELECT recorded_at - scheduled_at FROM occurrences WHERE job_id = 'tick' "
            "AND outcome = 'run' ORDER BY scheduled_at"
        ).fetchall()
        # The first occurrence may be decided while the server is still loading its jobs.
        late_ms = sorted(r[0] / 1000 for r in rows[1:])
        return late_ms


def idle_cpu(binary, jobs_count, seconds):
    with tempfile.TemporaryDirectory() as tmp:
        home, jobs = pathlib.Path(tmp, "home"), pathlib.Path(tmp, "jobs")
        home.mkdir()
        jobs.mkdir()
        for i in range(jobs_count):
            (jobs / f"job-{i:03}.yaml").write_text(
                f"id: job-{i:03}\ntriggers:\n  - cron: '0 0 3 * * *'\n"
                "steps:\n  - id: main\n    sh: 'true'\n"
            )
        proc = start(binary, home, jobs)
        time.sleep(3)  # loading
        cpu0, wall0 = cpu_seconds(proc.pid), time.time()
        time.sleep(seconds)
        cpu1, wall1 = cpu_seconds(proc.pid), time.time()
        stop(proc)
        return 100 * (cpu1 - cpu0) / (wall1 - wall0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=62, help="seconds of 1-second firings")
    parser.add_argument("--idle", type=int, default=30, help="seconds of idle measurement")
    parser.add_argument("--jobs", type=int, default=100, help="jobs loaded for the idle test")
    args = parser.parse_args()
    binary = rota_bin()
    late = lateness(binary, args.ticks)
    if len(late) < 60:
        print(f"warning: only {len(late)} firings measured", file=sys.stderr)
    print(f"cron-tick lateness over {len(late)} firings: "
          f"p50 {percentile(late, 50):.2f} ms, p99 {percentile(late, 99):.2f} ms, "
          f"max {late[-1]:.2f} ms")
    cpu = idle_cpu(binary, args.jobs, args.idle)
    print(f"idle CPU with {args.jobs} jobs over {args.idle} s: {cpu:.2f} %")


if __name__ == "__main__":
    main()
