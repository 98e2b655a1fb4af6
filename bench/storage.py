#!/usr/bin/env python3
"""Bytes per finished run in the SQLite and the PostgreSQL store, and where they go.

Seeds N finished runs of a 10-step job through the store's own write path (the
`seed_runs` example: `Store::record`, the events the engine records, one run per batch
here) into a fresh SQLite file and a fresh PostgreSQL database, compacts both (`VACUUM`;
`VACUUM FULL` on PostgreSQL, whose updated rows leave dead versions until then), and divides
each table's size (PostgreSQL: `pg_total_relation_size`, its indexes and TOAST included;
SQLite: the `dbstat` pages of the table and of its indexes) by N. The empty store's size
(schema, one job's revision) is measured the same way and subtracted. The total is given
twice: with the runs' events, as while they are in the event feed's window, and without,
as once `rota serve` has dropped them (24 hours later by default).

Twice: runs whose steps print nothing, and runs whose steps print --lines lines each, which
prices a log line.

    eval "$(scripts/postgres)"        # a PostgreSQL cluster (ROTA_TEST_POSTGRES)
    python3 bench/storage.py           # 2,000 runs, 3 lines per step
    python3 bench/storage.py --runs 5000 --lines 5
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def seed_command(build):
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", "rota-store", "--example", "seed_runs"]
        + (["--release"] if build == "release" else []),
        cwd=ROOT,
        check=True,
    )
    return os.path.join(ROOT, "target", build, "examples", "seed_runs")


def seed(binary, target, runs, lines):
    subprocess.run(
        [binary, *target, "--runs", str(runs), "--steps", "10", "--jobs", "1",
         "--batch", "1", "--lines", str(lines)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def sqlite_tables(path):
    """Per table: (bytes of its rows, bytes of its indexes), after VACUUM."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    owner = dict(
        db.execute("SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')")
    )
    sizes = {}
    for name, size in db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
        table = owner.get(name, name)
        # Automatic indexes (primary keys, UNIQUE) are named sqlite_autoindex_<table>_N.
        if name.startswith("sqlite_autoindex_"):
            table = name[len("sqlite_autoindex_"):].rsplit("_", 1)[0]
        data, index = sizes.get(table, (0, 0))
        sizes[table] = (data + size, index) if name == table else (data, index + size)
    total = os.path.getsize(path)
    db.close()
    return sizes, total


def psql(url, sql):
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def postgres_tables(url):
    """Per table: (bytes of its rows, TOAST included; bytes of its indexes), after VACUUM FULL."""
    psql(url, "VACUUM FULL")
    rows = psql(
        url,
        "SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r'",
    )
    sizes = {
        name: (int(data), int(index))
        for name, data, index in (line.split("\t") for line in rows.splitlines())
    }
    total = int(psql(url, "SELECT pg_database_size(current_database())"))
    return sizes, total


def measure_sqlite(binary, runs, lines):
    with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as full:
        # The baseline: the schema, the job's revision and one run.
        seed(binary, ["--home", empty], 1, 0)
        base, _ = sqlite_tables(os.path.join(empty, "rota.db"))
        seed(binary, ["--home", full], runs + 1, lines)
        sizes, total = sqlite_tables(os.path.join(full, "rota.db"))
    return base, sizes, total


def measure_postgres(binary, admin, runs, lines):
    out = {}
    for key, count, n_lines in (("base", 1, 0), ("full", runs + 1, lines)):
        name = f"rota_storage_{os.getpid()}_{key}"
        url = admin.rsplit("/", 1)[0] + "/" + name
        psql(admin, f"DROP DATABASE IF EXISTS {name}")
        psql(admin, f"CREATE DATABASE {name}")
        try:
            seed(binary, ["--store", url], count, n_lines)
            out[key] = postgres_tables(url)
        finally:
            psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return out["base"][0], out["full"][0], out["full"][1]


def report(title, base, sizes, runs):
    print(f"\n{title}")
    print(f"{'table':<22}{'rows':>10}{'indexes':>10}{'bytes/run':>12}")
    total = 0
    per_table = {}
    for table, (data, index) in sizes.items():
        base_data, base_index = base.get(table, (0, 0))
        per_table[table] = ((data - base_data) / runs, (index - base_index) / runs)
    for table in sorted(per_table, key=lambda t: -sum(per_table[t])):
        data, index = per_table[table]
        total += data + index
        if abs(data + index) >= 0.5:
            print(f"{table:<22}{data:>10,.0f}{index:>10,.0f}{data + index:>12,.0f}")
    print(f"{'total':<22}{'':>20}{total:>12,.0f}")
    # The event feed keeps a window of recent events (24 h by default): past it, a
    # finished run's events are gone and the rest is what the run costs for as long as it
    # is kept.
    kept = total - sum(per_table.get("events", (0, 0)))
    print(f"{'total past the feed':<22}{'':>20}{kept:>12,.0f}")
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=3, help="log lines per step, second pass")
    parser.add_argument("--build", choices=["debug", "release"], default="debug")
    parser.add_argument("--seed-runs", help="a built seed_runs example to use instead of building one")
    args = parser.parse_args()
    admin = os.environ.get("ROTA_TEST_POSTGRES")
    if not admin:
        sys.exit('ROTA_TEST_POSTGRES is not set: eval "$(scripts/postgres)" first')
    binary = args.seed_runs or seed_command(args.build)
    results = {}
    for lines in (0, args.lines):
        label = f"{args.runs} runs of 10 steps, {lines} log lines per step"
        base, sizes, _ = measure_sqlite(binary, args.runs, lines)
        results[("sqlite", lines)] = report(f"SQLite, {label}", base, sizes, args.runs)
        base, sizes, _ = measure_postgres(binary, admin, args.runs, lines)
        results[("postgres", lines)] = report(f"PostgreSQL, {label}", base, sizes, args.runs)
    if args.lines:
        print(f"\nper log line (the difference over {10 * args.lines} lines per run):")
        for backend in ("sqlite", "postgres"):
            extra = (results[(backend, args.lines)] - results[(backend, 0)]) / (10 * args.lines)
            print(f"  {backend:<10}{extra:>8,.0f} bytes")


if __name__ == "__main__":
    main()
