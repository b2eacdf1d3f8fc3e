#!/usr/bin/env python
"""Audit benchmark: audited reads vs. a stubbed-out audit, append throughput, offline verify.

    python tests/bench/bench_audit.py [--quick] [--clients N] [--duration S] [--events N]

Prints exactly one JSON line on stdout; progress goes to stderr. Not collected by pytest (the
file name does not match ``test_*.py``). Everything runs on loopback and in a temp dir that is
removed at the end, also on Ctrl-C or errors.

1. Audited reads: a real ``kinko serve`` (``tests/conftest.py``'s ``make_server``) answers an
   authorized 4 KiB read with a purpose from N concurrent keep-alive clients, first with the
   default checkpoint interval (10 s), then with ``KINKO_CHECKPOINT_INTERVAL_SECONDS=1``. The
   baseline, measured in the same run on the same data directory (same user, case, document
   and blob), is ``stub_audit_server.py``: the same application with ``AuditLog.append``
   monkeypatched to write nothing (bench-only; no setting of the product can do this).
2. Append throughput, in process (``Vault.open``): 16 threads appending concurrently (group
   commit), 1 thread appending serially, and one ``append_many`` of 10,000 records.
3. Verify: a synthetic bundle of 1,000,000 server-like events (200,000 with ``--quick``) with
   a signed checkpoint and its ``audit.checkpoint`` event every 10,000 events, written with
   ``write_bundle``; then ``kinko audit verify DIR --key FILE`` is timed as a subprocess (the
   real CLI, interpreter start-up included) and ``verify_bundle`` in process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import secrets
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import benchkit
import httpx
from bench_core import Target, check_response, load_conftest, measure, stop_proc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PURPOSE = "監査ベンチマーク (bench_audit)"
BODY_4K = random.Random(7).randbytes(4096)
CHECKPOINT_EVERY = 10_000
APPEND_THREADS = 16
BATCH = 10_000

log = benchkit.logger("bench_audit")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def audit_counts(data_dir: Path) -> tuple[int, int]:
    """(events, checkpoints) in the audit store, read beside the running server."""
    con = sqlite3.connect(f"file:{data_dir / 'audit.db'}?mode=ro", uri=True, timeout=30)
    try:
        events = con.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
        cps = con.execute("SELECT COUNT(*) FROM audit_checkpoints").fetchone()[0]
    finally:
        con.close()
    return int(events), int(cps)


# --------------------------------------------------------------------------------------- reads


def start_stub(
    data_dir: Path, env: dict[str, str], log_path: Path, port: int
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, str(HERE / "stub_audit_server.py")]
    argv += ["--data-dir", str(data_dir), "--port", str(port)]
    with log_path.open("ab") as logf:
        proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stub exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stop_proc(proc)
    raise RuntimeError(f"stub did not start:\n{log_path.read_text(errors='replace')}")


def measure_target(
    t: Target, data_dir: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], int, int]:
    with httpx.Client(base_url=t.base_url, headers=t.headers, timeout=30) as http:
        err = check_response(t, http.get(t.path), full_hash=True)
    if err:
        raise RuntimeError(f"{t.label}: sanity read failed: {err}")
    ev0, cp0 = audit_counts(data_dir)
    m = measure(t, args.clients, args.duration, args.warmup)
    ev1, cp1 = audit_counts(data_dir)
    return m, ev1 - ev0, cp1 - cp0


def bench_reads(
    args: argparse.Namespace, tmp: Path, cleanup: list[Callable[[], None]]
) -> dict[str, Any]:
    conftest = load_conftest()
    (tmp / "reads").mkdir()
    srv = conftest.make_server(tmp / "reads")
    cleanup.append(srv.close_clients)
    cleanup.append(srv.stop)
    log("starting kinko server (checkpoint interval: default 10 s)")
    srv.start()
    user = srv.user("bench-audit-reader", ["procurement"])
    token = str(user.http.headers["Authorization"]).removeprefix("Bearer ")
    case = user.create_case("BENCH-AUDIT-1", "監査ベンチ案件")
    doc = user.create_document(case["id"], "specification", "bench 4k", BODY_4K)["id"]
    srv.close_clients()
    headers = {"Authorization": f"Bearer {token}", "X-Access-Purpose": quote(PURPOSE, safe="")}
    path = f"/api/v1/documents/{doc}/content"
    digest = hashlib.sha256(BODY_4K).hexdigest()

    def target(label: str, base_url: str) -> Target:
        return Target(label, base_url, path, headers, len(BODY_4K), digest, "x-kinko-sha256")

    out: dict[str, Any] = {}
    km, k_events, k_cps = measure_target(target("kinko", srv.base_url), srv.data_dir, args)
    srv.stop()

    port = conftest.free_port()
    log(f"starting the stubbed-audit server on 127.0.0.1:{port} (same data dir)")
    stub = start_stub(srv.data_dir, srv.env, tmp / "stub.log", port)
    cleanup.insert(0, lambda: stop_proc(stub))
    sm, s_events, s_cps = measure_target(
        target("stub", f"http://127.0.0.1:{port}"), srv.data_dir, args
    )
    stop_proc(stub)

    srv.env["KINKO_CHECKPOINT_INTERVAL_SECONDS"] = "1"
    log("restarting kinko with KINKO_CHECKPOINT_INTERVAL_SECONDS=1")
    srv.start()
    cm, c_events, c_cps = measure_target(target("kinko cp1s", srv.base_url), srv.data_dir, args)
    srv.stop()

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    out.update(
        {
            "kinko_rps": km["rps"],
            "stub_rps": sm["rps"],
            "ratio": ratio(km["rps"], sm["rps"]),
            "kinko_p50_ms": km["p50_ms"],
            "kinko_p99_ms": km["p99_ms"],
            "stub_p50_ms": sm["p50_ms"],
            "stub_p99_ms": sm["p99_ms"],
            "kinko_cp1s_rps": cm["rps"],
            "ratio_cp1s": ratio(cm["rps"], sm["rps"]),
            "kinko_cp1s_p50_ms": cm["p50_ms"],
            "kinko_cp1s_p99_ms": cm["p99_ms"],
            # Events and checkpoints the store gained while each server was under load: the
            # stub must gain none, the real server one event per read (warm-up included).
            "kinko_events_written": k_events,
            "kinko_checkpoints_cut": k_cps,
            "kinko_cp1s_events_written": c_events,
            "kinko_cp1s_checkpoints_cut": c_cps,
            "stub_events_written": s_events + s_cps,
            "read_errors": km["errors"] + cm["errors"],
            "stub_errors": sm["errors"],
        }
    )
    return out


# --------------------------------------------------------------------------------------- appends


def sample_record(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "actor": f"user{i % 37}",
        "action": "document.read",
        "decision": "allow",
        "reason": "ok",
        "case_id": f"{rng.getrandbits(128):032x}",
        "document_id": f"{rng.getrandbits(128):032x}",
        "version": 1 + i % 3,
        "class": "specification",
        "purpose": "仕様確認のため",
        "target": None,
        "client": {"ip": "127.0.0.1", "user_agent": "python-httpx/0.27", "device": "WS-0042"},
        "request_id": f"{rng.getrandbits(128):032x}",
    }


def append_for(vault: Any, threads: int, duration: float) -> dict[str, Any]:
    counts = [0] * threads
    lat: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    deadline: list[float] = []

    def worker(k: int) -> None:
        rng = random.Random(k)
        barrier.wait()
        end = deadline[0]
        n = 0
        while time.monotonic() < end and not benchkit.STOP.is_set():
            t = time.monotonic()
            vault.audit.append(sample_record(rng, n))
            lat[k].append(time.monotonic() - t)
            n += 1
        counts[k] = n

    ths = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for th in ths:
        th.start()
    start = time.monotonic()
    deadline.append(start + duration)
    barrier.wait()
    for th in ths:
        th.join()
    elapsed = time.monotonic() - start
    all_lat = sorted(x for xs in lat for x in xs)
    total = sum(counts)

    def pct(p: float) -> float | None:
        if not all_lat:
            return None
        return round(1000 * all_lat[min(len(all_lat) - 1, int(p * len(all_lat)))], 2)

    return {
        "events_s": round(total / elapsed, 1),
        "events": total,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    }


def bench_appends(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from vault.core import Vault
    from vault.settings import Settings

    settings = Settings(
        data_dir=tmp / "appends",
        bootstrap_token="bench-append-" + secrets.token_hex(16),  # type: ignore[arg-type]
    )
    vault = Vault.open(settings)
    try:
        rng = random.Random(1)
        for i in range(20):  # warm-up: engine, tables, page cache
            vault.audit.append(sample_record(rng, i))
        log(f"append: {APPEND_THREADS} threads, {args.append_duration:g} s")
        conc = append_for(vault, APPEND_THREADS, args.append_duration)
        log(f"append concurrent: {conc}")
        log(f"append: 1 thread, {args.append_duration:g} s")
        serial = append_for(vault, 1, args.append_duration)
        log(f"append serial: {serial}")
        batch_rates = []
        for rep in range(3):
            records: list[Mapping[str, Any]] = [sample_record(rng, i) for i in range(BATCH)]
            t = time.perf_counter()
            got = vault.audit.append_many(records)
            batch_rates.append(BATCH / (time.perf_counter() - t))
            if len(got) != BATCH or got[-1]["seq"] - got[0]["seq"] != BATCH - 1:
                raise RuntimeError("append_many did not return one event per record")
            log(f"append_many {BATCH} #{rep + 1}: {batch_rates[-1]:.0f} events/s")
        size = vault.audit.size()
    finally:
        vault.close()
    return {
        "append_concurrent_events_s": conc["events_s"],
        "append_concurrent_p50_ms": conc["p50_ms"],
        "append_concurrent_p99_ms": conc["p99_ms"],
        "append_serial_events_s": serial["events_s"],
        "append_serial_p50_ms": serial["p50_ms"],
        "append_batch_events_s": round(statistics.median(batch_rates), 1),
        "append_batch_size": BATCH,
        "append_ratio_concurrent_vs_serial": (
            round(conc["events_s"] / serial["events_s"], 2) if serial["events_s"] else None
        ),
        "append_store_events": size,
    }


# --------------------------------------------------------------------------------------- verify


ACTIONS = [  # (action, decision, reason, weight), roughly what a busy server logs
    ("document.read", "allow", "ok", 60),
    ("document.list", "allow", "ok", 15),
    ("document.read", "deny", "purpose_required", 4),
    ("document.read", "deny", "forbidden", 3),
    ("auth.fail", "deny", "invalid_token", 3),
    ("document.create", "allow", "ok", 5),
    ("document.write", "allow", "ok", 4),
    ("document.finalize", "allow", "ok", 2),
    ("case.create", "allow", "ok", 1),
    ("member.set", "allow", "ok", 1),
    ("audit.query", "allow", "ok", 2),
]
PURPOSES = ["仕様確認のため", "監査対応", "入札書類の点検", "契約金額の確認 / price check", None]


def synthetic_events(n: int, signer: Any, notes: list[str], seed: int = 2026) -> Iterator[bytes]:
    """Canonical event lines for seq 0..n-1, cutting a signed checkpoint every 10,000 events.

    Like the server, each cut is followed by an ``audit.checkpoint`` event naming it. The
    notes are appended to ``notes`` as the events are generated (``write_bundle`` reads its
    checkpoints after the events; the caller checks that every note reached the bundle).
    """
    from vault.audit.bundle import checkpoint_reason
    from vault.audit.log import canonical_bytes
    from vault.audit.merkle import CompactRange, leaf_hash
    from vault.audit.note import Checkpoint, format_checkpoint

    rng = random.Random(seed)
    choices = [a for a in ACTIONS for _ in range(a[3])]
    cases = [f"{rng.getrandbits(128):032x}" for _ in range(40)]
    docs = [(cases[i % 40], f"{rng.getrandbits(128):032x}") for i in range(600)]
    users = [f"officer{i:03d}" for i in range(120)]
    ips = [f"10.{i // 250}.{i % 250}.{1 + i % 200}" for i in range(300)]
    agents = ["python-httpx/0.27.0", "kinko-cli/0.1", "Mozilla/5.0 (Windows NT 10.0)"]
    classes = ["specification", "budget", "proposal", "contract", "evaluation"]
    t0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    step = timedelta(milliseconds=7)
    cr = CompactRange()
    pending_cp: tuple[int, bytes, str] | None = None
    for seq in range(n):
        when = t0 + step * seq
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if pending_cp is not None:
            size, root, _ = pending_cp
            ev: dict[str, Any] = {
                "seq": seq,
                "time": stamp,
                "actor": None,
                "action": "audit.checkpoint",
                "decision": "allow",
                "reason": checkpoint_reason(size, root),
                "case_id": None,
                "document_id": None,
                "version": None,
                "class": None,
                "purpose": None,
                "target": None,
                "client": None,
                "request_id": None,
            }
            pending_cp = None
        else:
            action, decision, reason, _ = rng.choice(choices)
            case_id, doc_id = rng.choice(docs)
            is_doc = action.startswith("document.") and action != "document.list"
            ev = {
                "seq": seq,
                "time": stamp,
                "actor": None if action == "auth.fail" else rng.choice(users),
                "action": action,
                "decision": decision,
                "reason": reason,
                "case_id": None if action in ("auth.fail", "audit.query") else case_id,
                "document_id": doc_id if is_doc else None,
                "version": 1 + seq % 4 if is_doc else None,
                "class": rng.choice(classes) if is_doc else None,
                "purpose": rng.choice(PURPOSES) if action == "document.read" else None,
                "target": rng.choice(users) if action == "member.set" else None,
                "client": {
                    "ip": rng.choice(ips),
                    "user_agent": rng.choice(agents),
                    "device": f"WS-{rng.randrange(500):04d}",
                },
                "request_id": f"{rng.getrandbits(128):032x}",
            }
        line = canonical_bytes(ev)
        cr.push(leaf_hash(line))
        yield line
        if cr.size % CHECKPOINT_EVERY == 0:
            root = cr.root()
            cut = when + timedelta(microseconds=500)
            cp = Checkpoint(origin=signer.name, size=cr.size, root=root, time=cut)
            notes.append(signer.sign(format_checkpoint(cp)))
            pending_cp = (cr.size, root, stamp)


def bench_verify(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from vault.audit.bundle import verify_bundle, write_bundle
    from vault.audit.note import NoteSigner

    signer = NoteSigner.generate(f"kinko/bench-{secrets.token_hex(4)}")
    bundle = tmp / "bundle"
    notes: list[str] = []
    log(f"verify: writing a {args.events}-event bundle")
    t = time.perf_counter()
    count = write_bundle(
        bundle,
        synthetic_events(args.events, signer, notes),
        notes,
        signer.verifier_key(),
        signer.name,
        0,
        None,
    )
    build_s = time.perf_counter() - t
    n_files = len(list((bundle / "checkpoints").iterdir()))
    if count != args.events or n_files != len(notes) or not notes:
        raise RuntimeError(f"bundle incomplete: {count} events, {n_files}/{len(notes)} notes")
    size_mb = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 1e6
    key = tmp / "verifier.key"
    key.write_text(signer.verifier_key() + "\n")
    log(f"verify: bundle written in {build_s:.1f} s ({size_mb:.0f} MB, {len(notes)} checkpoints)")

    argv = [sys.executable, "-m", "vault.cli.main", "audit", "verify", str(bundle)]
    argv += ["--key", str(key), "--json"]
    t = time.perf_counter()
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=900, check=False
    )
    cli_s = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"kinko audit verify exited {proc.returncode}: {proc.stdout[-2000:]}")
    cli_report = json.loads(proc.stdout)
    log(f"verify: CLI {cli_s:.1f} s (report says {cli_report['seconds']:.1f} s)")

    t = time.perf_counter()
    report = verify_bundle(bundle, signer.verifier_key())
    inproc_s = time.perf_counter() - t
    log(f"verify: in-process {inproc_s:.1f} s, ok={report.ok}")
    expected_tail = args.events - len(notes) * CHECKPOINT_EVERY
    ok = (
        report.ok
        and cli_report["ok"]
        and report.event_count == cli_report["event_count"] == args.events
        and report.checkpoints == len(notes)
        and report.verified_size == len(notes) * CHECKPOINT_EVERY
        and report.unverified_tail == expected_tail
    )
    return {
        "events": args.events,
        "events_reduced": args.events < 1_000_000,
        "verify_checkpoints": len(notes),
        "bundle_mb": round(size_mb, 1),
        "bundle_build_seconds": round(build_s, 2),
        "verify_seconds_cli": round(cli_s, 2),
        "verify_seconds_cli_report": round(float(cli_report["seconds"]), 2),
        "verify_seconds_inproc": round(inproc_s, 2),
        "verify_events_s": round(args.events / inproc_s),
        "verify_ok": ok,
        "under_30s": cli_s < 30.0,
    }


# --------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace, tmp: Path, cleanup: list[Callable[[], None]]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "bench": "audit",
        "quick": args.quick,
        "clients": args.clients,
        "duration_s": args.duration,
        "append_duration_s": args.append_duration,
    }
    result.update(bench_reads(args, tmp, cleanup))
    result.update(bench_appends(args, tmp))
    result.update(bench_verify(args, tmp))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s reads, 2 s appends, 200,000 events")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=None, help="seconds per read measurement")
    ap.add_argument("--warmup", type=float, default=None, help="seconds excluded before each")
    ap.add_argument("--append-duration", type=float, default=None, help="seconds per append run")
    ap.add_argument("--events", type=int, default=None, help="events in the verify bundle")
    args = ap.parse_args()
    if args.duration is None:
        args.duration = 3.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0
    if args.append_duration is None:
        args.append_duration = 2.0 if args.quick else 5.0
    if args.events is None:
        args.events = 200_000 if args.quick else 1_000_000
    args.duration = benchkit.whole(args.duration)
    args.append_duration = benchkit.whole(args.append_duration)
    # Settings read KINKO_* from the environment; the in-process vault must not pick any up.
    for k in [k for k in os.environ if k.startswith("KINKO_")]:
        del os.environ[k]
    return benchkit.main("audit", run, args)


if __name__ == "__main__":
    sys.exit(main())
