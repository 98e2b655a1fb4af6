#!/usr/bin/env python3
"""Fleet benchmarks on one PostgreSQL store, through the CLI and the HTTP API only:

1. throughput: a job of N no-op steps (`sh: "true"`, no needs, `concurrency` high enough)
   with `runs_on: {pool: a}` through 1, 2 and 4 `rota worker` processes on this machine;
   baselines in the same rounds: the same job without `runs_on` (the server runs the steps
   itself) and `xargs -P` running the same N commands. Steps/s, ratios, and the CPU seconds
   of the PostgreSQL processes (from /proc/PID/stat), of the server and of the workers.
2. enqueue -> step start latency: runs of a one-step job started with
   `POST /api/v1/namespaces/default/jobs/{job}/runs`, the step printing `date +%s%N`;
   latency = that stamp - the client's send time, p50/p99, for a step the server runs and
   one that goes through a worker (interleaved), with a breakdown from the run's own
   timestamps, and the floor: the client spawning the same `sh -c 'date +%s%N'` itself.
3. idle load: PostgreSQL transactions/s (delta of pg_stat_database's xact_commit +
   xact_rollback) and statements/s (pg_stat_statements calls) with 2 idle servers, then
   with 10 idle workers added; the CPU of the cluster, the servers and the workers.

    python3 bench/workers.py --rota target/release/rota            # about 8 minutes
    python3 bench/workers.py --rota target/debug/rota --quick      # about 2 minutes

By default the script starts its own throwaway PostgreSQL cluster (as scripts/postgres does,
plus pg_stat_statements), so that all of the cluster's CPU and transactions are this
benchmark's; `--postgres shared` uses ROTA_TEST_POSTGRES (eval "$(scripts/setup)") and
counts only the benchmark database's transactions and backends (no pg_stat_statements
unless that cluster preloads it). Each benchmark gets a fresh database.
"""

import argparse
import datetime
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleetlib as fl  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TERMINAL = {"succeeded", "failed", "cancelled", "timed_out", "skipped"}


def fanout_job(job_id, steps, concurrency, pool):
    lines = [f"id: {job_id}", f"concurrency: {concurrency}", "steps:"]
    for i in range(steps):
        lines.append(f"  - id: s{i}")
        if pool:
            lines.append(f"    runs_on: {{pool: {pool}}}")
        lines.append('    sh: "true"')
    return "\n".join(lines) + "\n"


def stamp_job(job_id, pool):
    lines = [f"id: {job_id}", "steps:", "  - id: t"]
    if pool:
        lines.append(f"    runs_on: {{pool: {pool}}}")
    lines.append("    sh: date +%s%N")
    return "\n".join(lines) + "\n"


def ts(text):
    """An API timestamp (RFC 3339, UTC) in nanoseconds since the epoch."""
    d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(d.timestamp()) * 10**9 + d.microsecond * 1000


def wait_run(addr, token, run_id, every=0.1, limit=600):
    deadline = time.time() + limit
    while time.time() < deadline:
        run = fl.api(addr, token, "GET", f"/runs/{run_id}")
        if run["status"] in TERMINAL:
            return run
        time.sleep(every)
    raise SystemExit(f"run {run_id} did not end within {limit} s")


def wait_workers(addr, token, names, servers=1, limit=60):
    deadline = time.time() + limit
    while time.time() < deadline:
        c = fl.cluster(addr, token)
        have = {w["name"] for w in c["workers"]}
        if set(names) <= have and len(c["servers"]) >= servers:
            return
        time.sleep(0.1)
    raise SystemExit(f"workers {names} did not register within {limit} s")


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def busy_seconds():
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def enable_statements(db):
    """pg_stat_statements in db, if the cluster preloads it."""
    try:
        fl.psql(db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        fl.psql(db, "SELECT pg_stat_statements_reset()")
        return True
    except subprocess.CalledProcessError:
        print("  (pg_stat_statements is not available in this cluster)")
        return False


def statement_filter(db):
    name = db.rsplit("/", 1)[1]
    return (f"FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            f"WHERE d.datname = '{name}' AND s.query NOT LIKE '%pg_stat_statements%'")


def statement_calls(db, where="true"):
    return int(fl.psql(db, f"SELECT coalesce(sum(calls), 0) {statement_filter(db)} AND {where}"))


class Bench:
    def __init__(self, args, cluster, work):
        self.args = args
        self.rota = args.rota
        self.cluster = cluster
        self.work = work
        self.key = fl.secret_key()

    def setup(self, name, jobs_text, servers=1):
        """A fresh database, a job directory and `servers` servers on it."""
        self.db = self.cluster.database(f"rota_{name}")
        self.servers, self.workers = [], []
        try:
            self._setup(name, jobs_text, servers)
        except BaseException:
            self.teardown()
            raise

    def _setup(self, name, jobs_text, servers):
        root = os.path.join(self.work, name)
        jobs = os.path.join(root, "jobs")
        os.makedirs(jobs)
        for job_id, text in jobs_text.items():
            with open(os.path.join(jobs, f"{job_id}.yaml"), "w") as f:
                f.write(text)
        self.root = root
        homes = []
        for i in range(servers):
            home = os.path.join(root, f"server{i}")
            homes.append(home)
            self.servers.append(fl.start_server(self.rota, home, self.db, jobs=jobs, key=self.key))
            if i == 0:
                # the first server migrates the store and writes the admin token
                self.admin = fl.admin_token([home])
        self.addr = self.servers[0][1]
        self.worker_token = fl.create_token(self.rota, self.addr, self.admin, "bench", "worker")
        # The servers load the job directory at start; wait until every job is stored.
        deadline = time.time() + 30
        for job_id in jobs_text:
            while True:
                try:
                    fl.api(self.addr, self.admin, "GET", f"/namespaces/default/jobs/{job_id}")
                    break
                except fl.ApiError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.1)

    def start_workers(self, n, slots, tag):
        names = [f"{tag}-{i}" for i in range(n)]
        procs = []
        for i, name in enumerate(names):
            addr = self.servers[i % len(self.servers)][1]
            home = os.path.join(self.root, name)
            procs.append(fl.start_worker(self.rota, home, addr, self.worker_token,
                                         {"pool": "a"}, slots=slots, name=name))
        wait_workers(self.addr, self.admin, names, servers=len(self.servers))
        self.workers = procs
        return procs

    def stop_workers(self):
        fl.stop(self.workers)
        self.workers = []

    def teardown(self):
        fl.stop(self.workers + [p for p, _ in self.servers])
        self.cluster.drop(self.db)

    def db_pids(self):
        return self.cluster.pids(self.db)

    def start_run(self, job_id):
        return fl.api(self.addr, self.admin, "POST", f"/namespaces/default/jobs/{job_id}/runs", {})


# --- 1. throughput ------------------------------------------------------------------------

def throughput(args, cluster, work):
    b = Bench(args, cluster, work)
    jobs = {
        "fan-server": fanout_job("fan-server", args.steps, args.concurrency, None),
        "fan-workers": fanout_job("fan-workers", args.steps, args.concurrency, "a"),
    }
    b.setup("throughput", jobs)
    server_pid = b.servers[0][0].pid
    configs = [("xargs", 0), ("server", 0)] + [("workers", n) for n in args.workers]
    results = {c: [] for c in configs}
    statements = enable_statements(b.db)
    commands = b"".join(b"true\n" for _ in range(args.steps))
    try:
        # One run of each job first: warms the server's caches and the store's tables.
        wait_run(b.addr, b.admin, b.start_run("fan-server")["id"])
        for rnd in range(args.rounds):
            for cfg in configs:
                kind, n = cfg
                if kind == "workers":
                    b.start_workers(n, args.slots, f"r{rnd}w{n}")
                    time.sleep(0.5)
                worker_pids = [w.pid for w in b.workers]
                db = fl.CpuMeter(b.db_pids).start()
                server0 = fl.cpu_seconds(server_pid)
                workers0 = [fl.cpu_seconds(p) or 0 for p in worker_pids]
                if statements:
                    fl.psql(b.db, "SELECT pg_stat_statements_reset()")
                busy0 = busy_seconds()
                t0 = time.perf_counter()
                if kind == "xargs":
                    proc = subprocess.Popen(["xargs", f"-P{args.xargs_p}", "-I{}", "sh", "-c", "{}"],
                                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
                    proc.communicate(commands)
                    wall = time.perf_counter() - t0
                    span = wall
                    status = "succeeded" if proc.returncode == 0 else f"exit {proc.returncode}"
                else:
                    job = "fan-server" if kind == "server" else "fan-workers"
                    run = wait_run(b.addr, b.admin, b.start_run(job)["id"], every=0.05)
                    wall = time.perf_counter() - t0
                    span = (ts(run["finished_at"]) - ts(run["started_at"])) / 1e9
                    status = run["status"]
                busy = busy_seconds() - busy0
                db_cpu = db.stop()
                calls = statement_calls(b.db) if statements else None
                # Write transactions: the store opens each with BEGIN. (pg_stat_database's
                # counters are no use here: backends report them up to 10 s late.)
                tx = statement_calls(b.db, "s.query = 'BEGIN'") if statements else None
                server_cpu = fl.cpu_seconds(server_pid) - server0 if kind != "xargs" else 0.0
                workers_cpu = sum((fl.cpu_seconds(p) or 0) - c0 for p, c0 in zip(worker_pids, workers0))
                if status != "succeeded":
                    raise SystemExit(f"{kind} {n}: {status}")
                r = dict(wall=wall, span=span, db=db_cpu, server=server_cpu,
                         workers=workers_cpu, busy=busy, tx=tx, calls=calls)
                results[cfg].append(r)
                label = kind if kind != "workers" else f"{n} worker{'s' if n > 1 else ''}"
                print(f"  round {rnd + 1} {label:>10}: {args.steps / span:7.1f} steps/s "
                      f"(span {span:.3f} s, from the request {wall:.3f} s), "
                      f"CPU: db {db_cpu:.2f} s, server {server_cpu:.2f} s, "
                      f"workers {workers_cpu:.2f} s, machine {busy:.2f} s; "
                      + (f"{calls / args.steps:.1f} statements/step, "
                         f"{tx / args.steps:.1f} write transactions/step" if statements else ""),
                      flush=True)
                if kind == "workers":
                    b.stop_workers()
    finally:
        b.teardown()

    print(f"\nthroughput: {args.steps} steps, concurrency {args.concurrency}, "
          f"{args.slots} slots per worker, xargs -P{args.xargs_p}, median of {args.rounds} round(s)")
    base = statistics.median(args.steps / r["span"] for r in results[("xargs", 0)])
    srv = statistics.median(args.steps / r["span"] for r in results[("server", 0)])
    print(f"| | steps/s | ratio to xargs | ratio to the server alone | from the request | "
          f"DB CPU | DB CPU/step | statements/step | write transactions/step | server CPU | "
          f"workers' CPU | machine busy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cfg in configs:
        rs = results[cfg]
        kind, n = cfg
        rate = statistics.median(args.steps / r["span"] for r in rs)
        e2e = statistics.median(args.steps / r["wall"] for r in rs)
        db = statistics.median(r["db"] for r in rs)
        label = {"xargs": f"`xargs -P{args.xargs_p}`", "server": "server runs the steps"}.get(
            kind, f"{n} worker{'s' if n > 1 else ''} × {args.slots} slots")
        calls = (f"{statistics.median(r['calls'] for r in rs) / args.steps:.1f} | "
                 f"{statistics.median(r['tx'] for r in rs) / args.steps:.1f}"
                 if rs[0]["calls"] is not None else " | ")
        print(f"| {label} | {rate:.1f} | {rate / base:.2f} | {rate / srv:.2f} | {e2e:.1f} steps/s | "
              f"{db:.2f} s | {db / args.steps * 1000:.2f} ms | "
              f"{calls} | "
              f"{statistics.median(r['server'] for r in rs):.2f} s | "
              f"{statistics.median(r['workers'] for r in rs):.2f} s | "
              f"{statistics.median(r['busy'] for r in rs):.2f} s |")


# --- 2. latency ---------------------------------------------------------------------------

def latency(args, cluster, work):
    b = Bench(args, cluster, work)
    b.setup("latency", {"stamp-server": stamp_job("stamp-server", None),
                        "stamp-worker": stamp_job("stamp-worker", "a")})
    b.start_workers(1, 1, "lat")
    kinds = ["server", "worker"]
    rows = {k: [] for k in kinds}
    floor = []
    try:
        for k in kinds:  # one warm-up run each
            wait_run(b.addr, b.admin, b.start_run(f"stamp-{k}")["id"])
        for i in range(args.latency_runs):
            order = kinds[:] if i % 2 == 0 else kinds[::-1]
            for k in order:
                # A pause drawn over more than a second: requests arrive at uniformly
                # distributed phases of any periodic poll of at most a second (without it,
                # each request would follow the previous run's pick-up by the same delay).
                time.sleep(random.uniform(0.0, 1.0))
                sent = time.time_ns()
                run = b.start_run(f"stamp-{k}")
                answered = time.time_ns()
                run = wait_run(b.addr, b.admin, run["id"], every=0.02)
                if run["status"] != "succeeded":
                    raise SystemExit(f"{k}: run {run['id']} {run['status']}")
                logs = fl.api(b.addr, b.admin, "GET", f"/runs/{run['id']}/logs")
                stamp = int(logs["items"][0]["text"].strip())
                step = run["steps"][0]
                rows[k].append(dict(
                    total=(stamp - sent) / 1e6,
                    answered=(answered - sent) / 1e6,
                    created=(ts(run["created_at"]) - sent) / 1e6,
                    run_started=(ts(run["started_at"]) - ts(run["created_at"])) / 1e6,
                    step_started=(ts(step["started_at"]) - ts(run["started_at"])) / 1e6,
                    process=(stamp - ts(step["started_at"])) / 1e6,
                ))
            sent = time.time_ns()
            out = subprocess.run(["sh", "-c", "date +%s%N"], capture_output=True, text=True)
            floor.append((int(out.stdout) - sent) / 1e6)
            if (i + 1) % 10 == 0:
                print(f"  {i + 1} runs of each: p50 server "
                      f"{statistics.median(r['total'] for r in rows['server']):.1f} ms, worker "
                      f"{statistics.median(r['total'] for r in rows['worker']):.1f} ms", flush=True)
    finally:
        b.teardown()

    print(f"\nenqueue -> step start, {args.latency_runs} runs of each (ms):")
    print("| step runs on | p50 | p99 | max | of which, p50 / p99: request answered | "
          "created → run started | run started → step started | step started → its stamp |")
    print("|---|---|---|---|---|---|---|---|")
    for k in kinds:
        rs = rows[k]
        tot = [r["total"] for r in rs]

        def part(name):
            xs = [r[name] for r in rs]
            return f"{pct(xs, 50):.1f} / {pct(xs, 99):.1f}"
        print(f"| {k} | {pct(tot, 50):.1f} | {pct(tot, 99):.1f} | {max(tot):.1f} | "
              f"{part('answered')} | {part('run_started')} | {part('step_started')} | "
              f"{part('process')} |")
    print(f"| floor: the client spawns `sh -c 'date +%s%N'` | {pct(floor, 50):.1f} | "
          f"{pct(floor, 99):.1f} | {max(floor):.1f} | | | | |")


# --- 3. idle ------------------------------------------------------------------------------

def idle(args, cluster, work):
    b = Bench(args, cluster, work)
    b.setup("idle", {"idle": stamp_job("idle", "a")}, servers=2)
    try:
        statements = enable_statements(b.db)
        procs = [p.pid for p, _ in b.servers]

        def measure(seconds, label, extra_pids):
            time.sleep(args.settle)
            db = fl.CpuMeter(b.db_pids).start()
            cpu0 = {p: fl.cpu_seconds(p) for p in procs + extra_pids}
            if statements:
                fl.psql(b.db, "SELECT pg_stat_statements_reset()")
            x0 = b.cluster.transactions(b.db)
            t0 = time.time()
            time.sleep(seconds)
            x1 = b.cluster.transactions(b.db)
            t = time.time() - t0
            calls = None
            top = []
            if statements:
                q = statement_filter(b.db)
                calls = statement_calls(b.db)
                top = fl.psql(b.db, f"SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) "
                                    f"{q} ORDER BY calls DESC LIMIT 8").splitlines()
            db_cpu = db.stop()
            cpu = {p: (fl.cpu_seconds(p) or 0) - (c or 0) for p, c in cpu0.items()}
            srv = sum(cpu[p] for p in procs)
            wrk = sum(cpu[p] for p in extra_pids)
            # our own two reads of pg_stat_database are transactions too
            tx = (x1 - x0 - 2) / t
            print(f"  {label}, {t:.0f} s: {tx:.1f} transactions/s"
                  + (f", {calls / t:.1f} statements/s" if calls is not None else "")
                  + f"; CPU: PostgreSQL {db_cpu / t * 100:.2f} %, servers {srv / t * 100:.2f} %"
                  + (f", workers {wrk / t * 100:.2f} %" if extra_pids else "")
                  + " of one core", flush=True)
            for line in top:
                c, _, text = line.partition("|")
                print(f"    {int(c) / t:8.2f}/s  {text}")
            return dict(tx=tx, calls=calls / t if calls is not None else None,
                        db=db_cpu / t, servers=srv / t, workers=wrk / t)

        fl.psql(b.db, "SELECT 1")
        a = measure(args.idle_seconds / 2, "2 idle servers", [])
        b.start_workers(args.idle_workers, 1, "idle")
        c = measure(args.idle_seconds, f"2 idle servers and {args.idle_workers} idle workers",
                    [w.pid for w in b.workers])
    finally:
        b.teardown()
    print(f"\nidle: {a['tx']:.1f} → {c['tx']:.1f} transactions/s"
          + (f", {a['calls']:.1f} → {c['calls']:.1f} statements/s" if a["calls"] is not None else "")
          + f"; per idle worker: {(c['tx'] - a['tx']) / args.idle_workers:.2f} transactions/s")


def main():
    # SIGTERM (and SIGINT, ignored in a background job) unwind as an exception, so that the
    # servers, workers and the private cluster are stopped.
    def interrupted(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rota", default=os.path.join(ROOT, "target", "release", "rota"),
                    help="the rota binary (default target/release/rota; built if missing)")
    ap.add_argument("--quick", action="store_true",
                    help="a short run: 50 steps, 1 round, 10 latency runs, 10 s idle")
    ap.add_argument("--postgres", default="own", help="own (a private cluster, default) or shared "
                    "(ROTA_TEST_POSTGRES)")
    ap.add_argument("--only", choices=["throughput", "latency", "idle"], action="append")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=32, help="the job's concurrency")
    ap.add_argument("--slots", type=int, default=4, help="slots per worker")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--xargs-p", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-runs", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--idle-workers", type=int, default=10)
    ap.add_argument("--settle", type=float, default=5, help="seconds before an idle measurement")
    if "--quick" in sys.argv[1:]:  # shorter defaults; flags given still win
        ap.set_defaults(steps=50, rounds=1, latency_runs=10, idle_seconds=10, settle=2)
    args = ap.parse_args()
    if not os.path.exists(args.rota):
        if args.rota != os.path.join(ROOT, "target", "release", "rota"):
            raise SystemExit(f"{args.rota}: no such file")
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "rota-cli"], cwd=ROOT, check=True)
    args.rota = os.path.abspath(args.rota)

    print(f"{args.rota}; load average {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} cores; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
          flush=True)
    if args.postgres == "own":
        cluster = fl.Cluster.own()
    elif args.postgres == "shared":
        url = os.environ.get("ROTA_TEST_POSTGRES")
        if not url:
            raise SystemExit('eval "$(scripts/setup)" first: ROTA_TEST_POSTGRES is not set')
        cluster = fl.Cluster.shared(url)
    else:
        raise SystemExit("--postgres: own or shared")
    print(f"PostgreSQL: {fl.psql(cluster.url, 'SHOW server_version')} "
          f"({'a private cluster' if args.postgres == 'own' else cluster.url})", flush=True)
    work = tempfile.mkdtemp(prefix="rota-bench-workers-")
    try:
        only = args.only or ["throughput", "latency", "idle"]
        if "throughput" in only:
            print("\n## 1. throughput", flush=True)
            throughput(args, cluster, work)
        if "latency" in only:
            print("\n## 2. enqueue -> step start latency", flush=True)
            latency(args, cluster, work)
        if "idle" in only:
            print("\n## 3. idle servers and workers", flush=True)
            idle(args, cluster, work)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
