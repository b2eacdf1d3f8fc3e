#!/usr/bin/env python
"""Sync client benchmark: initial sync down against rclone to moto S3, and save-to-server latency.

    python tests/bench/bench_sync.py [--quick] [--files N] [--big-mib M] [--saves K]

Prints exactly one JSON line on stdout; progress goes to stderr. Not collected by pytest. Starts a
real ``kinko serve`` (``make_server`` from ``tests/conftest.py``, local blob store) and moto's S3
server in a child process (``moto_s3_server.py``), both on free loopback ports, on a temp dir that
is removed at the end, also on Ctrl-C or errors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import benchkit
from bench_core import load_conftest, stop_proc
from bench_s3 import load_s3_support, start_moto_process, use_fake_aws_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MiB = 1 << 20
PURPOSE = "同期 benchmark (bench_sync)"
SMALL_BYTES = 10 * 1024

log = benchkit.logger("bench_sync")


def big_chunks(total: int) -> Iterator[bytes]:
    """Deterministic, incompressible-looking bytes (1 MiB blocks of a repeated sha256)."""
    sent = 0
    i = 0
    while sent < total:
        block = hashlib.sha256(i.to_bytes(8, "big")).digest() * (MiB // 32)
        block = block[: min(MiB, total - sent)]
        yield block
        sent += len(block)
        i += 1


def sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


def rclone_env(endpoint: str, aws: dict[str, str]) -> dict[str, str]:
    """rclone's remote ``moto:`` from environment variables only (no config file)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))},
        "RCLONE_CONFIG_MOTO_TYPE": "s3",
        "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
        "RCLONE_CONFIG_MOTO_ENDPOINT": endpoint,
        "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": aws["AWS_ACCESS_KEY_ID"],
        "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": aws["AWS_SECRET_ACCESS_KEY"],
        "RCLONE_CONFIG_MOTO_REGION": aws["AWS_DEFAULT_REGION"],
        "RCLONE_CONFIG": "/dev/null",
    }


def rclone(endpoint: str, aws: dict[str, str], *args: str) -> float:
    """Run rclone against the moto remote ``moto:``; returns its wall time in seconds."""
    exe = shutil.which("rclone")
    if exe is None:
        raise RuntimeError("rclone is not installed")
    env = rclone_env(endpoint, aws)
    start = time.perf_counter()
    res = subprocess.run([exe, *args], capture_output=True, env=env, timeout=3600, check=False)
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"rclone {args} failed: {res.stderr.decode(errors='replace')[-2000:]}")
    return took


def rclone_size(endpoint: str, aws: dict[str, str], remote: str) -> dict[str, Any]:
    exe = shutil.which("rclone") or "rclone"
    env = rclone_env(endpoint, aws)
    res = subprocess.run(
        [exe, "size", "--json", remote], capture_output=True, env=env, timeout=600, check=True
    )
    return dict(json.loads(res.stdout))


# --------------------------------------------------------------------------------------- kinko


def new_drafter(srv: Any, label: str) -> tuple[Any, str, str, str]:
    """A drafter of their own with a case of their own: (client, token, case_id, number)."""
    tag = uuid.uuid4().hex[:8]
    client = srv.user(f"bs-{label}-{tag}", ["procurement"])
    number = f"BS-{label}-{tag}"
    case_id = client.create_case(number, "bench")["id"]
    return client, client.http.headers["Authorization"][7:], case_id, number


def timed_sync(srv: Any, token: str, root: Path) -> tuple[float, Any]:
    from clients.sync.engine import SyncEngine

    client = srv.client(token)
    start = time.perf_counter()
    with SyncEngine(root, client, purpose=PURPOSE) as eng:
        report = eng.run_once()
    took = time.perf_counter() - start
    if report.errors:
        raise RuntimeError(f"sync pass failed: {report.errors[:3]}")
    return took, report


def save_latency(srv: Any, root: Path, saves: int) -> dict[str, Any]:
    """Atomic saves of one synced file with the watcher running; rename -> server version."""
    from clients.sync.engine import PassReport, SyncEngine
    from clients.sync.naming import case_dir
    from clients.sync.watch import watch

    drafter, token, case_id, number = new_drafter(srv, "save")
    doc_id = drafter.create_document(case_id, "proposal", "save.txt", b"v1")["id"]
    path = root / case_dir(number) / "proposal" / "save.txt"
    reports: list[PassReport] = []
    stop = threading.Event()
    client = srv.client(token)

    def run() -> None:
        with SyncEngine(root, client, purpose=PURPOSE) as engine:
            watch(
                engine, poll_seconds=2.0, settle_seconds=0.5, rescan_seconds=30.0, stop=stop,
                on_report=reports.append,
            )  # fmt: skip

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    latencies: list[float] = []
    timeouts = 0
    try:
        deadline = time.monotonic() + 30
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the watcher never downloaded the file")
            time.sleep(0.05)
        time.sleep(1.0)
        version = 1
        for i in range(saves):
            tmp = path.parent / f".goutputstream-{secrets.token_hex(3)}"
            tmp.write_bytes(f"save {i} ".encode() * 200)
            os.replace(tmp, path)
            t0 = time.perf_counter()
            version += 1
            while True:
                meta = drafter.document(doc_id)
                if max(v["version"] for v in meta["versions"]) >= version:
                    latencies.append(time.perf_counter() - t0)
                    break
                if time.perf_counter() - t0 > 30:
                    timeouts += 1
                    version = max(v["version"] for v in meta["versions"])
                    break
                time.sleep(0.02)
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=15)
    final = drafter.document(doc_id)
    errors = sum(1 for r in reports if r.errors)
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, max(0, round(0.95 * len(lat)) - 1))] if lat else None
    return {
        "save_settle_s": 0.5,
        "save_poll_s": 2.0,
        "save_count": saves,
        "save_latency_median_s": round(statistics.median(lat), 3) if lat else None,
        "save_latency_p95_s": round(p95, 3) if p95 is not None else None,
        "save_latency_min_s": round(lat[0], 3) if lat else None,
        "save_latency_max_s": round(lat[-1], 3) if lat else None,
        "save_timeouts": timeouts,
        "save_versions_on_server": len(final["versions"]),
        "save_pass_errors": errors,
    }


# ---------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace, tmp: Path, cleanup: list[Callable[[], None]]) -> dict[str, Any]:
    conftest = load_conftest()
    s3_support = load_s3_support()
    for key in [k for k in os.environ if k.startswith("KINKO_")]:
        del os.environ[key]
    use_fake_aws_env(s3_support)
    aws = s3_support.aws_env_for_subprocess()
    big_bytes = args.big_mib * MiB
    result: dict[str, Any] = {
        "bench": "sync",
        "baseline": "rclone copy (defaults) local folder -> moto S3 in a child process",
        "quick": args.quick,
        "files": args.files,
        "file_bytes": SMALL_BYTES,
        "big_bytes": big_bytes,
    }

    (tmp / "kinko").mkdir()
    srv = conftest.make_server(tmp / "kinko", KINKO_STORAGE="local")
    srv.start()
    # Clean-up runs in list order: whatever starts later is put in front, to stop first.
    cleanup.insert(0, srv.stop)
    cleanup.insert(0, srv.close_clients)
    log(f"kinko serve on {srv.base_url}")

    # Same bytes on both sides: a local source folder (rclone) and the server (uploads).
    src_small, src_big = tmp / "src-small", tmp / "src-big"
    src_small.mkdir()
    src_big.mkdir()
    _, small_token, small_case, _ = new_drafter(srv, "small")
    names = [f"file-{i:05d}.txt" for i in range(args.files)]
    for name in names:
        (src_small / name).write_bytes(os.urandom(SMALL_BYTES))

    def upload(name: str) -> None:
        c = srv.client(small_token)
        c.create_document(small_case, "specification", name, (src_small / name).read_bytes())

    log(f"uploading {args.files} files of {SMALL_BYTES} bytes (not timed)")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(upload, names))
    big_path = src_big / "big.bin"
    with big_path.open("wb") as f:
        for chunk in big_chunks(big_bytes):
            f.write(chunk)
    big_sha = sha_file(big_path)
    big, big_token, big_case, _ = new_drafter(srv, "big")
    log(f"uploading one file of {big_bytes} bytes (not timed)")

    def big_body() -> Iterator[bytes]:
        with big_path.open("rb") as fh:
            while chunk := fh.read(MiB):
                yield chunk

    big.create_document(big_case, "specification", "big.bin", big_body())

    # Kinko: initial sync into empty folders.
    log("kinko: initial sync of the small files")
    small_s, report = timed_sync(srv, small_token, tmp / "dst-small")
    got = list((tmp / "dst-small").rglob("file-*.txt"))
    small_ok = len(report.downloaded) == args.files == len(got) and all(
        p.read_bytes() == (src_small / p.name).read_bytes() for p in got
    )
    shutil.rmtree(tmp / "dst-small")
    log(f"kinko small: {small_s:.2f} s ok={small_ok}")
    log("kinko: initial sync of the big file")
    big_s, report = timed_sync(srv, big_token, tmp / "dst-big")
    got = list((tmp / "dst-big").rglob("big.bin"))
    big_ok = len(report.downloaded) == 1 and len(got) == 1 and sha_file(got[0]) == big_sha
    shutil.rmtree(tmp / "dst-big")
    log(f"kinko big: {big_s:.2f} s ok={big_ok}")

    # Latency of a save with the watcher running.
    log(f"save latency: {args.saves} saves")
    result.update(save_latency(srv, tmp / "dst-save", args.saves))
    srv.close_clients()
    srv.stop()

    # Baseline: rclone copy of the same files from a local folder to moto S3.
    proc, endpoint = start_moto_process(tmp / "moto.log")
    cleanup.insert(0, lambda: stop_proc(proc))
    log(f"moto on {endpoint}")
    rclone(endpoint, aws, "mkdir", "moto:bench")
    log("rclone: small files")
    rc_small_s = rclone(endpoint, aws, "copy", str(src_small), "moto:bench/small")
    size = rclone_size(endpoint, aws, "moto:bench/small")
    rc_small_ok = size.get("count") == args.files and size.get("bytes") == args.files * SMALL_BYTES
    log(f"rclone small: {rc_small_s:.2f} s ok={rc_small_ok}")
    log("rclone: big file")
    rc_big_s = rclone(endpoint, aws, "copy", str(src_big), "moto:bench/big")
    size = rclone_size(endpoint, aws, "moto:bench/big")
    rc_big_ok = size.get("count") == 1 and size.get("bytes") == big_bytes
    log(f"rclone big: {rc_big_s:.2f} s ok={rc_big_ok}")
    stop_proc(proc)

    result.update(
        {
            "kinko_small_s": round(small_s, 3),
            "kinko_small_files_s": round(args.files / small_s, 1),
            "kinko_small_ok": small_ok,
            "rclone_small_s": round(rc_small_s, 3),
            "rclone_small_ok": rc_small_ok,
            "ratio_small_time": round(small_s / rc_small_s, 3),
            "kinko_big_s": round(big_s, 3),
            "kinko_big_mb_s": round(big_bytes / big_s / 1e6, 1),
            "kinko_big_ok": big_ok,
            "rclone_big_s": round(rc_big_s, 3),
            "rclone_big_ok": rc_big_ok,
            "ratio_big_time": round(big_s / rc_big_s, 3),
        }
    )
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 files, 256 MiB, 20 saves")
    ap.add_argument("--files", type=int, default=None)
    ap.add_argument("--big-mib", type=int, default=None)
    ap.add_argument("--saves", type=int, default=None)
    args = ap.parse_args()
    if args.files is None:
        args.files = 200 if args.quick else 1000
    if args.big_mib is None:
        args.big_mib = 256 if args.quick else 1024
    if args.saves is None:
        args.saves = 20 if args.quick else 100
    return benchkit.main("sync", run, args)


if __name__ == "__main__":
    sys.exit(main())
