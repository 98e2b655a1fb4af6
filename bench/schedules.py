#!/usr/bin/env python3
"""Benchmark of `rota serve` with many schedules: load time and idle CPU.

Usage:
    python3 bench/schedules.py                       # uses target/release/rota (builds it)
    python3 bench/schedules.py --jobs 1000 10000 100000 --idle 30
    ROTA_BIN=/tmp/rota-before python3 bench/schedules.py --jobs 10000

For each job count N: writes N job files (`job-<i>.yaml`, one job each, a daily cron among a
few distinct schedules that do not fire during the measurement, step `true`) into a fresh
job directory, starts `rota serve --jobs DIR --listen 127.0.0.1:0` on a fresh `ROTA_HOME`,
and reports:

1. Load time: from the start of the process until every job is scheduled, i.e. until the
   store holds a trigger cursor (`trigger_state` row) for each of the N jobs: the server
   creates it when it gives the job to the scheduler (read from the SQLite file, which WAL
   lets us read while the server writes). Target: under 10 s for 100,000 jobs.
2. Idle CPU: the server's CPU time (user + system, from /proc/<pid>/stat) over wall time
   for `--idle` seconds once loaded, after a short settle. Target: under 1 % at 100,000.
3. The server's resident memory once loaded (VmRSS).
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

# A few distinct daily schedules at night (UTC), so nothing fires while measuring unless it
# runs at those hours; pick --hour to move them.
SCHEDULES = ["0 {h} * * *", "15 {h} * * *", "30 {h} * * 1-5", "45 {h} 1 * *", "5 {h} * * 0"]


def rota_bin():
    explicit = os.environ.get("ROTA_BIN")
    if explicit:
        return pathlib.Path(explicit).resolve()
    subprocess.run(["cargo", "build", "--release", "-p", "rota-cli"], cwd=ROOT, check=True)
    return ROOT / "target" / "release" / "rota"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def write_jobs(jobs, count, hour):
    for i in range(count):
        cron = SCHEDULES[i % len(SCHEDULES)].format(h=hour)
        (jobs / f"job-{i:06}.yaml").write_text(
            f"id: job-{i:06}\ntriggers:\n  - cron: '{cron}'\n"
            "steps:\n  - id: main\n    sh: 'true'\n"
        )


def scheduled(db_path):
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM trigger_state").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def measure(binary, count, idle, hour, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        home, jobs = pathlib.Path(tmp, "home"), pathlib.Path(tmp, "jobs")
        home.mkdir()
        jobs.mkdir()
        write_jobs(jobs, count, hour)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTA_")}
        env["ROTA_HOME"] = str(home)
        env.setdefault("RUST_LOG", "warn")
        log = open(home / "serve.log", "ab")
        started = time.time()
        proc = subprocess.Popen(
            [str(binary), "serve", "--listen", "127.0.0.1:0", "--jobs", str(jobs)],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
        try:
            loaded_after = None
            while time.time() - started < timeout:
                if proc.poll() is not None:
                    sys.exit(f"rota serve exited; see {home / 'serve.log'}")
                if scheduled(home / "rota.db") >= count:
                    loaded_after = time.time() - started
                    break
                time.sleep(0.1)
            if loaded_after is None:
                return None, None, None
            time.sleep(3)  # settle: the poll after the load reads what the load changed
            cpu0, wall0 = cpu_seconds(proc.pid), time.time()
            time.sleep(idle)
            cpu1, wall1 = cpu_seconds(proc.pid), time.time()
            rss = rss_mib(proc.pid)
            return loaded_after, 100 * (cpu1 - cpu0) / (wall1 - wall0), rss
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--idle", type=int, default=30, help="seconds of idle measurement")
    parser.add_argument("--hour", type=int, default=3, help="UTC hour the schedules fire at")
    parser.add_argument("--timeout", type=int, default=600, help="give up loading after this")
    args = parser.parse_args()
    binary = rota_bin()
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[0]}; binary: {binary}")
    for count in args.jobs:
        loaded, cpu, rss = measure(binary, count, args.idle, args.hour, args.timeout)
        if loaded is None:
            print(f"{count:>7} jobs: not loaded within {args.timeout} s")
            continue
        print(f"{count:>7} jobs: loaded in {loaded:.2f} s, idle CPU {cpu:.2f} % "
              f"over {args.idle} s, RSS {rss:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
