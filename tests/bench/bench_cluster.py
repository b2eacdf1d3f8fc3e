#!/usr/bin/env python
"""Scale-out benchmark (issue 11): the audit log and audited reads on PostgreSQL, one node
and two nodes, against the embedded SQLite default, all in one run.

    python tests/bench/bench_cluster.py [--quick] [--duration S] [--append-threads N]
                                        [--clients N]

Prints exactly one JSON line on stdout; progress goes to stderr.  Needs the machine's
PostgreSQL server binaries (initdb, pg_ctl: Debian's ``postgresql``); everything runs on
loopback in a temp dir removed at the end.

1. Durable audit appends: a "node" is a process of its own with a ``Vault`` open and its audit
   writer running (group commit), with N threads calling ``AuditLog.append``, each waiting for
   its event's commit (``synchronous=FULL`` on SQLite, ``synchronous_commit=on`` on
   PostgreSQL).  Measured: one node on SQLite (the baseline), one node on PostgreSQL, and two
   nodes appending at once to one PostgreSQL log (their rates added).  After the two-node run
   the log is checked: seq 0..n-1, no gap, no duplicate.
2. Durable audited 4 KiB reads: real ``kinko serve`` nodes answering an authorised read with
   a purpose from keep-alive clients; one node on SQLite (the baseline), one node on
   PostgreSQL, and two nodes on one PostgreSQL with the clients split between them.  The two
   nodes share one blob directory (a shared file system, as EFS or NFS would be), so that the
   figures measure the database and the nodes, not an S3 emulator.

Goals (issue 11): at least 5,000 durable appends/s on PostgreSQL, and two nodes together at
least as fast as one.  On a 2-core machine the nodes, PostgreSQL and the load generator share
the same two cores, which the load average in the output shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import benchkit
from bench_audit import append_for, sample_record
from bench_core import Target, load_conftest, run_load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PURPOSE = "スケールアウトのベンチマーク (bench_cluster)"
BODY_4K = random.Random(11).randbytes(4096)

log = benchkit.logger("bench_cluster")


# ------------------------------------------------------------------------------------ appends


def append_worker(args: argparse.Namespace) -> int:
    """One node of the append benchmark (run as a child process): ready, go, result."""
    from vault.core import Vault
    from vault.settings import Settings

    options: dict[str, Any] = {
        "data_dir": Path(args.data_dir),
        "audit_signing_key_file": Path(args.signing_key),
        "checkpoint_interval_seconds": 10,
    }
    if args.database_url:
        options["database_url"] = args.database_url
        options["audit_database_url"] = args.database_url
    vault = Vault.open(Settings(**options))
    try:
        rng = random.Random(os.getpid())
        for i in range(50):  # warm-up: connections, tables, the frontier
            vault.audit.append(sample_record(rng, i))
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 1
        result = append_for(vault, args.threads, args.duration)
        print(json.dumps(result), flush=True)
    finally:
        vault.close()
    return 0


def run_append_nodes(
    tmp: Path, label: str, database_url: str | None, nodes: int, args: argparse.Namespace
) -> dict[str, Any]:
    procs = []
    key = tmp / f"{label}-audit-signing.key"
    for n in range(nodes):
        argv = [sys.executable, str(Path(__file__).resolve()), "--append-worker"]
        argv += ["--data-dir", str(tmp / f"{label}-node{n}"), "--signing-key", str(key)]
        argv += ["--threads", str(args.append_threads), "--duration", str(args.duration)]
        if database_url:
            argv += ["--database-url", database_url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
        procs.append(
            subprocess.Popen(
                argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
            )
        )
        if n == 0:
            # The first node creates the signing key and migrates; the others then start
            # beside it (starting together is what tests/cluster checks, not what is timed).
            line = procs[0].stdout.readline() if procs[0].stdout else ""
            if line.strip() != "ready":
                raise RuntimeError(f"{label}: append node 0 did not start")
    for p in procs[1:]:
        if p.stdout is None or p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{label}: an append node did not start")
    log(f"appends {label}: {nodes} node(s) x {args.append_threads} threads, {args.duration:g} s")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=args.duration + 120)
        if p.returncode != 0:
            raise RuntimeError(f"{label}: an append node failed ({p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    total = round(sum(r["events_s"] for r in results), 1)
    summary = {
        "events_s": total,
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "per_node_events_s": [r["events_s"] for r in results],
    }
    log(f"appends {label}: {summary}")
    return summary


def check_gapless(database_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            n, low, high, distinct = conn.execute(
                text("SELECT COUNT(*), MIN(seq), MAX(seq), COUNT(DISTINCT seq) FROM audit_events")
            ).one()
    finally:
        engine.dispose()
    if not (low == 0 and high == n - 1 and distinct == n):
        raise RuntimeError(f"the log has a gap or a duplicate: {n} rows, seq {low}..{high}")
    return int(n)


# -------------------------------------------------------------------------------------- reads


def start_nodes(conftest: Any, tmp: Path, label: str, env: dict[str, str], nodes: int) -> list[Any]:
    """``nodes`` servers of one vault; the second and later share the first one's blobs."""
    token = "bench-cluster-" + secrets.token_hex(16)
    servers = []
    for n in range(nodes):
        home = tmp / f"{label}-node{n}"
        home.mkdir(parents=True)
        srv = conftest.make_server(home, **env)
        srv.admin_token = token
        srv.env["KINKO_BOOTSTRAP_TOKEN"] = token
        if n > 0:
            srv.data_dir.mkdir(parents=True)
            os.symlink(servers[0].data_dir / "blobs", srv.data_dir / "blobs")
        srv.start(timeout=60)
        servers.append(srv)
    return servers


def read_targets(servers: list[Any], label: str) -> list[Target]:
    import hashlib

    first = servers[0]
    officer = first.user("bench-officer-" + secrets.token_hex(3), ["procurement"])
    case = officer.create_case("BENCH-" + secrets.token_hex(4).upper(), "ベンチマーク")["id"]
    doc = officer.create_document(case, "budget", "予算.bin", BODY_4K)["id"]
    token = officer.http.headers["authorization"]
    headers = {"Authorization": token, "X-Access-Purpose": quote(PURPOSE, safe="")}
    return [
        Target(
            label=f"{label}-node{n}",
            base_url=srv.base_url,
            path=f"/api/v1/documents/{doc}/content",
            headers=headers,
            body_len=len(BODY_4K),
            sha256=hashlib.sha256(BODY_4K).hexdigest(),
        )
        for n, srv in enumerate(servers)
    ]


def measure_reads(targets: list[Target], clients: int, duration: float) -> dict[str, Any]:
    """``clients`` readers split evenly over the targets, all at once; rates added."""
    share = max(1, clients // len(targets))
    results: list[Any] = [None] * len(targets)

    def go(i: int) -> None:
        results[i] = run_load(targets[i], share, duration, warmup=1.0)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = sorted(x for r in results for x in r.latencies)

    def pct(p: float) -> float | None:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

    out = {
        "rps": round(sum(r.ok for r in results) / duration, 1),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "errors": sum(r.errors for r in results),
    }
    for r in results:
        for sample in r.error_samples[:3]:
            log(f"  read error: {sample}")
    return out


# ---------------------------------------------------------------------------------------- run


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def run(args: argparse.Namespace, tmp: Path, cleanup: list[Callable[[], None]]) -> dict[str, Any]:
    conftest = load_conftest()
    from pg_support import PostgresServer

    # A directory of its own, outside ``tmp``: the postgres user must be able to reach it.
    pg = PostgresServer()
    cleanup.append(pg.remove)
    pg.init()
    pg.start()
    cleanup.insert(0, pg.stop)

    appends = {
        "sqlite_1_node": run_append_nodes(tmp, "append-sqlite", None, 1, args),
        "postgresql_1_node": run_append_nodes(
            tmp, "append-pg1", pg.create_database("append1"), 1, args
        ),
    }
    two = pg.create_database("append2")
    appends["postgresql_2_nodes"] = run_append_nodes(tmp, "append-pg2", two, 2, args)
    gapless_events = check_gapless(two)

    reads: dict[str, Any] = {}
    scenarios = [
        ("sqlite_1_node", {}, 1),
        ("postgresql_1_node", "reads1", 1),
        ("postgresql_2_nodes", "reads2", 2),
    ]
    for label, db, nodes in scenarios:
        env: dict[str, str] = {}
        if isinstance(db, str):
            url = pg.create_database(db)
            env = {"KINKO_DATABASE_URL": url, "KINKO_AUDIT_DATABASE_URL": url}
            keys = tmp / f"{label}-keys"
            keys.mkdir()
            env.update(
                {
                    "KINKO_MASTER_KEY_FILE": str(keys / "master.key"),
                    "KINKO_AUDIT_SIGNING_KEY_FILE": str(keys / "audit-signing.key"),
                    "KINKO_SERVER_KEY_FILE": str(keys / "server.key"),
                }
            )
        servers = start_nodes(conftest, tmp, f"reads-{label}", env, nodes)
        try:
            targets = read_targets(servers, label)
            log(f"reads {label}: {args.clients} clients over {nodes} node(s), {args.duration:g} s")
            reads[label] = measure_reads(targets, args.clients, args.duration)
            log(f"reads {label}: {reads[label]}")
        finally:
            for srv in servers:
                srv.close_clients()
                srv.stop()

    pg_appends = appends["postgresql_1_node"]["events_s"]
    return {
        "bench": "cluster",
        "duration_s": benchkit.whole(args.duration),
        "append_threads_per_node": args.append_threads,
        "read_clients": args.clients,
        "appends": appends,
        "appends_two_node_log_events_checked_gapless": gapless_events,
        "reads_4k": reads,
        "ratio_appends_pg1_vs_sqlite": ratio(pg_appends, appends["sqlite_1_node"]["events_s"]),
        "ratio_appends_pg2_vs_pg1": ratio(appends["postgresql_2_nodes"]["events_s"], pg_appends),
        "ratio_reads_pg1_vs_sqlite": ratio(
            reads["postgresql_1_node"]["rps"], reads["sqlite_1_node"]["rps"]
        ),
        "ratio_reads_pg2_vs_pg1": ratio(
            reads["postgresql_2_nodes"]["rps"], reads["postgresql_1_node"]["rps"]
        ),
        "goal_pg_appends_at_least_5000_s": max(
            pg_appends, appends["postgresql_2_nodes"]["events_s"]
        )
        >= 5000,
        "goal_two_nodes_at_least_one": (
            appends["postgresql_2_nodes"]["events_s"] >= pg_appends
            and reads["postgresql_2_nodes"]["rps"] >= reads["postgresql_1_node"]["rps"]
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 s per measurement")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--append-threads", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    # The append worker (a child process of this script).
    parser.add_argument("--append-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--signing-key", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.append_worker:
        return append_worker(args)
    if args.quick:
        args.duration = 4.0
    return benchkit.main("cluster", run, args)


if __name__ == "__main__":
    sys.exit(main())
