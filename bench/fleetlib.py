"""Helpers shared by the fleet benchmarks (failover.py, workers.py): a PostgreSQL to measure
on, a fresh database per benchmark, `rota serve` and `rota worker` processes, the API, and
CPU time read from /proc. Python 3.11 standard library only.

Only the CLI and the HTTP API are used (`rota serve --store`, `rota worker`, `/api/v1/...`),
never the store's tables, except where a benchmark reads its own figures from PostgreSQL.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid


def psql(url, sql):
    out = subprocess.run(
        ["psql", url, "-XAtqc", sql], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def _pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        (d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int
    ) if os.path.isdir("/usr/lib/postgresql") else []
    for v in reversed(versions):
        path = f"/usr/lib/postgresql/{v}/bin/{name}"
        if os.path.exists(path):
            return path
    raise SystemExit(f"no {name} found: install PostgreSQL's server (e.g. Debian's postgresql-15)")


class Cluster:
    """A PostgreSQL cluster to measure on.

    `Cluster.own()` starts a private throwaway cluster (as scripts/postgres does: loopback,
    trust, fsync off) with pg_stat_statements preloaded, so that every process of the
    cluster serves this benchmark alone and its CPU time can be read from /proc;
    `Cluster.shared(url)` uses a running one (ROTA_TEST_POSTGRES), whose other databases
    may be busy with other work."""

    def __init__(self, url, data=None, owner=None, root=None):
        self.url = url            # the maintenance database (postgres)
        self.data = data          # set for an own cluster
        self.owner = owner
        self.root = root

    @classmethod
    def own(cls):
        root = tempfile.mkdtemp(prefix="rota-bench-pg-")
        owner = None
        if os.getuid() == 0:  # PostgreSQL refuses to run as root
            owner = "postgres"
            shutil.chown(root, owner)
        os.chmod(root, 0o700)
        data = os.path.join(root, "data")
        c = cls(None, data, owner, root)
        c._as_owner([_pg_bin("initdb"), "-D", data, "-U", "postgres", "-A", "trust",
                     "-E", "UTF8", "--locale=C"])
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} "
                "-c max_connections=500 -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c shared_preload_libraries=pg_stat_statements "
                "-c pg_stat_statements.track=all")
        c._as_owner([_pg_bin("pg_ctl"), "-D", data, "-l", os.path.join(root, "server.log"),
                     "-w", "-t", "60", "-o", opts, "start"])
        c.url = f"postgres://postgres@127.0.0.1:{port}/postgres"
        return c

    @classmethod
    def shared(cls, url):
        return cls(url)

    def _as_owner(self, argv):
        if self.owner:
            argv = ["runuser", "-u", self.owner, "--"] + argv
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.data:
            try:
                self._as_owner([_pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "stop"])
            finally:
                shutil.rmtree(self.root, ignore_errors=True)

    def database(self, prefix):
        """Creates a fresh database; returns its URL."""
        name = prefix + "_" + uuid.uuid4().hex[:8]
        psql(self.url, f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def drop(self, db_url):
        name = db_url.rsplit("/", 1)[1]
        psql(self.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pids(self, db_url=None):
        """The cluster's processes: every process of an own cluster (postmaster and its
        children); on a shared cluster only the backends connected to db_url's database."""
        if self.data:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                master = int(f.readline())
            return [master] + children(master)
        name = db_url.rsplit("/", 1)[1]
        out = psql(self.url, f"SELECT pid FROM pg_stat_activity WHERE datname = '{name}'")
        return [int(p) for p in out.split()]

    def transactions(self, db_url=None):
        """Transactions committed and rolled back so far, in the whole cluster (own) or in
        db_url's database (shared)."""
        where = "" if self.data else f" WHERE datname = '{db_url.rsplit('/', 1)[1]}'"
        return int(psql(self.url, "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database" + where))


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def cpu_seconds(pid):
    """utime + stime of one process (its threads included, exited children not), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by a changing set of processes between start() and stop(): polled
    every `every` seconds so that a process that exits meanwhile still counts (up to its
    last poll)."""

    def __init__(self, list_pids, every=0.25):
        self.list_pids = list_pids
        self.every = every
        self.first, self.last = {}, {}
        self._stop = None

    def _poll(self):
        for pid in self.list_pids():
            c = cpu_seconds(pid)
            if c is None:
                continue
            self.first.setdefault(pid, c)
            self.last[pid] = c

    def start(self):
        self._poll()
        self._initial = set(self.first)
        self._stop = threading.Event()

        def loop():
            while not self._stop.wait(self.every):
                try:
                    self._poll()
                except Exception:
                    pass
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """CPU seconds since start(); a process first seen later counts whole (it was born
        meanwhile, e.g. a backend the run opened)."""
        self._stop.set()
        self._thread.join()
        self._poll()
        return sum(self.last[p] - (self.first[p] if p in self._initial else 0) for p in self.last)


def secret_key():
    return base64.b64encode(os.urandom(32)).decode()


def rota_env(home, key=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROTA_")}
    env["ROTA_HOME"] = home
    if key:
        env["ROTA_SECRET_KEY"] = key
    return env


def _wait_addr(home, proc):
    addr_file = os.path.join(home, "serve.addr")
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server in {home} exited with {proc.returncode} "
                             f"(see {home}/serve.log)")
        if os.path.exists(addr_file):
            with open(addr_file) as f:
                addr = f.read().strip()
            if addr:
                return addr
        time.sleep(0.05)
    raise SystemExit(f"server in {home} did not start")


def start_server(rota, home, store, jobs=None, key=None):
    """Starts `rota serve --store STORE` on a free loopback port; returns (process, host:port)."""
    os.makedirs(home, exist_ok=True)
    # A SIGKILLed server leaves its address file behind.
    try:
        os.remove(os.path.join(home, "serve.addr"))
    except FileNotFoundError:
        pass
    log = open(os.path.join(home, "serve.log"), "ab")
    argv = [rota, "serve", "--store", store, "--listen", "127.0.0.1:0"]
    if jobs:
        argv += ["--jobs", jobs]
    proc = subprocess.Popen(argv, env=rota_env(home, key), stdout=subprocess.DEVNULL, stderr=log)
    try:
        return proc, _wait_addr(home, proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def admin_token(homes):
    """The admin token the first server of a fresh store wrote."""
    for h in homes:
        p = os.path.join(h, "admin.token")
        if os.path.exists(p):
            with open(p) as f:
                return f.read().strip()
    raise SystemExit("no server wrote an admin token")


def start_worker(rota, home, addr, token, labels, slots=1, name=None):
    """Starts `rota worker --server http://ADDR` with a worker token."""
    os.makedirs(home, exist_ok=True)
    argv = [rota, "worker", "--server", f"http://{addr}", "--slots", str(slots)]
    for k, v in labels.items():
        argv += ["--label", f"{k}={v}"]
    if name:
        argv += ["--name", name]
    env = rota_env(home)
    env["ROTA_TOKEN"] = token
    log = open(os.path.join(home, "worker.log"), "ab")
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)


def stop(procs, timeout=60):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class ApiError(OSError):
    """An HTTP error answer of the API (an OSError, as a refused connection is)."""

    def __init__(self, code, message):
        super().__init__(f"{code} {message}")
        self.code = code


def api(addr, token, method, path, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://{addr}/api/v1{path}", data=data, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        raise ApiError(e.code, f"{method} {path}: {e.read().decode(errors='replace')}") from None
    return json.loads(raw) if raw else None


def cluster(addr, token):
    return api(addr, token, "GET", "/cluster", timeout=2)


def create_token(rota, addr, admin, name, role):
    """A new token through the API, with the CLI as a client."""
    env = rota_env(tempfile.gettempdir())
    env["ROTA_TOKEN"] = admin
    out = subprocess.run([rota, "tokens", "create", name, "--role", role,
                          "--server", f"http://{addr}"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1].strip()
