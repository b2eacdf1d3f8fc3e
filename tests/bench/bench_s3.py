#!/usr/bin/env python
"""S3 backend benchmark: Kinko on moto's S3 against boto3 talking to the same moto directly.

    python tests/bench/bench_s3.py [--quick] [--clients N] [--duration S] [--roundtrip-mib M]
                                   [--moto-in-process] [--ranged-download]

Prints exactly one JSON line on stdout; progress goes to stderr. Not collected by pytest (the
file name does not match ``test_*.py``). Everything runs on loopback and in a temp dir that is
removed at the end, also on Ctrl-C or errors.

ONE moto S3 server (``ThreadedMotoServer`` on a free 127.0.0.1 port) serves both sides. By
default it runs in a child process of its own (``moto_s3_server.py``), so that the load
generator's threads do not share a GIL with it; ``--moto-in-process`` starts it inside this
script instead. A real ``kinko serve`` (``tests/conftest.py``'s ``make_server``) stores its
blobs in one bucket (``KINKO_STORAGE=s3``); the boto3 baseline uses another bucket of the same
moto server.

1. Reads: Kinko authorized 1 MiB reads/s (``GET /api/v1/documents/{id}/content`` with a
   purpose: audited, fetched from S3, decrypted) with N keep-alive clients for D seconds, vs
   N threads each with its own boto3 client calling ``get_object`` of a 1 MiB object and
   reading the body. ``ratio_1m`` = kinko / boto3.
2. Round trip of 1 GiB (256 MiB with ``--quick``): Kinko streamed upload from a generator and
   streamed download (``bench_core.roundtrip``: sha256 checked on both sides, Kinko server RSS
   sampled every 50 ms) vs boto3 ``upload_fileobj`` from a non-seekable reader producing the
   same bytes and ``download_fileobj`` into a hashing sink. ``ratio_roundtrip_time`` =
   kinko seconds / boto3 seconds (1.0 = no overhead; higher = slower).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bench_core  # sibling module: load generator, Target, measure, RssSampler, roundtrip
import benchkit
import httpx
import psutil
from bench_core import RssSampler, Target, check_response, load_conftest, measure, stop_proc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MiB = 1 << 20
SHA_EVERY = bench_core.SHA_EVERY
PREFIX = "blobs/"

log = benchkit.logger("bench_s3")


def load_s3_support() -> Any:
    """tests/s3_support.py (fake AWS environment, boto3 client factory)."""
    tests_dir = str(ROOT / "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    import s3_support

    return s3_support


def use_fake_aws_env(s3_support: Any) -> None:
    """Fake credentials for this process (boto3 baseline) and everything it starts."""
    os.environ.update(s3_support.FAKE_AWS_ENV)
    for key in s3_support._UNSET_AWS_ENV:
        os.environ.pop(key, None)
    for key in [k for k in os.environ if k.startswith("KINKO_")]:
        del os.environ[key]


# --------------------------------------------------------------------------------------- moto


def start_moto_process(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    with log_path.open("ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "moto_s3_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=logf,
            cwd=ROOT,
        )
    line: list[bytes] = []
    reader = threading.Thread(
        target=lambda: line.append(proc.stdout.readline() if proc.stdout else b""), daemon=True
    )
    reader.start()
    reader.join(timeout=60)
    text = line[0].decode(errors="replace").strip() if line else ""
    if not text.startswith("PORT "):
        stop_proc(proc)
        raise RuntimeError(f"moto did not start ({text!r}):\n{log_path.read_text()[-3000:]}")
    return proc, f"http://127.0.0.1:{int(text.split()[1])}"


def start_moto_in_process() -> tuple[Any, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


# ------------------------------------------------------------------------------------ boto3 load


def boto3_load(
    make_client: Callable[[], Any],
    bucket: str,
    key: str,
    body_len: int,
    digest: str,
    clients: int,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    """N threads, each with its own boto3 client, calling get_object for ``duration`` seconds.

    The same window rule as ``bench_core.run_load``: only calls completing inside
    [start + warmup, start + warmup + duration] count.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    log(f"boto3 1m: {clients} threads, {duration:g} s (+{warmup:g} s warm-up)")
    results: list[bench_core.LoadResult] = [bench_core.LoadResult() for _ in range(clients)]
    s3s = [make_client() for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    window: list[float] = []

    def worker(s3: Any, res: bench_core.LoadResult) -> None:
        barrier.wait()
        t_begin, t_end = window
        n = 0
        while not benchkit.STOP.is_set():
            start = time.monotonic()
            if start >= t_end:
                break
            err = None
            try:
                data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                if len(data) != body_len:
                    err = f"length {len(data)} != {body_len}"
                elif n % SHA_EVERY == 0 and hashlib.sha256(data).hexdigest() != digest:
                    err = "sha256 mismatch"
            except (BotoCoreError, ClientError) as exc:
                err = f"{type(exc).__name__}: {exc}"
            done = time.monotonic()
            n += 1
            if done < t_begin or done > t_end:
                continue
            if err is None:
                res.ok += 1
                res.latencies.append(done - start)
            else:
                res.errors += 1
                if len(res.error_samples) < 3:
                    res.error_samples.append(err)

    threads = [
        threading.Thread(target=worker, args=(s3, r), daemon=True)
        for s3, r in zip(s3s, results, strict=True)
    ]
    for th in threads:
        th.start()
    now = time.monotonic()
    window.extend([now + warmup, now + warmup + duration])
    barrier.wait()
    for th in threads:
        th.join()
    for s3 in s3s:
        s3.close()
    lat = sorted(x for r in results for x in r.latencies)
    ok = sum(r.ok for r in results)
    errors = sum(r.errors for r in results)

    def pct(p: float) -> float | None:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

    out = {"rps": round(ok / duration, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99)}
    out["errors"] = errors
    log(f"boto3 1m: {out}")
    for r in results:
        for s in r.error_samples:
            log(f"  boto3 error: {s}")
    return out


# ------------------------------------------------------------------------------ boto3 round trip


class PatternReader:
    """Non-seekable reader yielding the same bytes as ``bench_core.roundtrip``'s generator."""

    def __init__(self, total: int) -> None:
        self.chunk = MiB
        self.pool_size = 8 * MiB
        self.pool = random.Random(20240601).randbytes(self.pool_size + self.chunk)
        self.total = total
        self.sent = 0
        self.i = 0
        self.buf = b""
        self.sha = hashlib.sha256()

    def _next_block(self) -> bytes:
        n = min(self.chunk, self.total - self.sent)
        off = (self.i * 1_048_583) % self.pool_size  # bench_core.roundtrip's odd stride
        self.sent += n
        self.i += 1
        return self.pool[off : off + n]

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.total
        parts = [self.buf]
        have = len(self.buf)
        while have < size and self.sent < self.total and not benchkit.STOP.is_set():
            block = self._next_block()
            parts.append(block)
            have += len(block)
        data = b"".join(parts)
        out, self.buf = data[:size], data[size:]
        self.sha.update(out)
        return out


class HashSink:
    """Non-seekable writable: hashes what download_fileobj writes, in order."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def boto3_roundtrip(s3: Any, bucket: str, total: int, ranged_download: bool) -> dict[str, Any]:
    from boto3.s3.transfer import TransferConfig

    up_cfg = TransferConfig()  # boto3's defaults: 8 MiB parts, 10 threads
    # A single streamed GetObject, like the Kinko server's read (see README: moto answers each
    # ranged GET by copying the whole object, so boto3's default ranged download of 1 GiB
    # measures that copy, not S3 transfer).
    down_cfg = TransferConfig(multipart_threshold=total + 1)
    if ranged_download:
        down_cfg = TransferConfig()
    key = "baseline/roundtrip-" + secrets.token_hex(4)
    reader = PatternReader(total)
    log(f"boto3 round trip: upload_fileobj {total / MiB:.0f} MiB")
    t = time.monotonic()
    s3.upload_fileobj(reader, bucket, key, Config=up_cfg)
    up_s = time.monotonic() - t
    log(f"boto3 round trip: uploaded in {up_s:.1f} s; download_fileobj")
    sink = HashSink()
    t = time.monotonic()
    s3.download_fileobj(bucket, key, sink, Config=down_cfg)
    down_s = time.monotonic() - t
    want = reader.sha.hexdigest()
    ok = reader.sent == total and sink.size == total and sink.sha.hexdigest() == want
    s3.delete_object(Bucket=bucket, Key=key)
    out = {
        "boto3_roundtrip_ok": ok,
        "boto3_upload_s": round(up_s, 2),
        "boto3_download_s": round(down_s, 2),
        "boto3_upload_mb_s": round(total / 1e6 / up_s, 1),
        "boto3_download_mb_s": round(total / 1e6 / down_s, 1) if down_s > 0 else None,
        "boto3_upload_config": {
            "multipart_chunksize_mib": up_cfg.multipart_chunksize / MiB,
            "max_concurrency": up_cfg.max_concurrency,
        },
        "boto3_download_ranged": ranged_download,
    }
    log(f"boto3 round trip: {out}")
    return out


# --------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace, tmp: Path, cleanup: list[Callable[[], None]]) -> dict[str, Any]:
    conftest = load_conftest()
    s3_support = load_s3_support()
    use_fake_aws_env(s3_support)
    result: dict[str, Any] = {
        "bench": "s3",
        "quick": args.quick,
        "clients": args.clients,
        "duration_s": args.duration,
        "moto": "in-process" if args.moto_in_process else "subprocess",
    }
    moto_pid: int | None = None
    if args.moto_in_process:
        moto, endpoint = start_moto_in_process()
        cleanup.append(moto.stop)
    else:
        moto, endpoint = start_moto_process(tmp / "moto.log")
        cleanup.append(lambda: stop_proc(moto))
        moto_pid = moto.pid
    log(f"moto S3 on {endpoint} ({result['moto']})")

    def make_s3() -> Any:
        return s3_support.make_client(endpoint, max_pool_connections=16)

    admin_s3 = make_s3()
    kinko_bucket = s3_support.new_bucket(admin_s3)
    base_bucket = s3_support.new_bucket(admin_s3)

    srv = conftest.make_server(
        tmp,
        KINKO_STORAGE="s3",
        KINKO_S3_BUCKET=kinko_bucket,
        KINKO_S3_ENDPOINT_URL=endpoint,
        KINKO_S3_PREFIX=PREFIX,
        **s3_support.aws_env_for_subprocess(),
    )
    cleanup.insert(0, srv.stop)  # before moto's
    cleanup.insert(0, srv.close_clients)
    log("starting kinko server (S3 backend)")
    srv.start(timeout=60)
    if srv.proc is None:
        raise RuntimeError("kinko server did not start")
    kinko_pid = srv.proc.pid
    log(f"kinko on {srv.base_url} (pid {kinko_pid})")

    user = srv.user("bench-procurement", ["procurement"])
    token = str(user.http.headers["Authorization"]).removeprefix("Bearer ")
    case = user.create_case("BENCH-S3-0001", "S3 ベンチマーク案件")
    body = random.Random(4242).randbytes(MiB)
    digest = hashlib.sha256(body).hexdigest()
    doc_id = user.create_document(case["id"], "specification", "bench s3 1m", body)["id"]
    base_key = "baseline/doc_1m.bin"
    admin_s3.put_object(Bucket=base_bucket, Key=base_key, Body=body)
    startup_rss = psutil.Process(kinko_pid).memory_info().rss

    kt = Target(
        "kinko 1m (s3)",
        srv.base_url,
        f"/api/v1/documents/{doc_id}/content",
        {
            "Authorization": f"Bearer {token}",
            "X-Access-Purpose": quote(bench_core.PURPOSE, safe=""),
        },
        len(body),
        digest,
        sha_header="x-kinko-sha256",
    )
    with httpx.Client(base_url=kt.base_url, headers=kt.headers, timeout=30) as http:
        err = check_response(kt, http.get(kt.path), full_hash=True)
    if err:
        raise RuntimeError(f"kinko sanity read failed: {err}")
    got = admin_s3.get_object(Bucket=base_bucket, Key=base_key)["Body"].read()
    if hashlib.sha256(got).hexdigest() != digest:
        raise RuntimeError("boto3 sanity read failed")

    # 1. reads
    km = measure(kt, args.clients, args.duration, args.warmup)
    bm = boto3_load(
        make_s3, base_bucket, base_key, len(body), digest, args.clients, args.duration, args.warmup
    )
    result.update(
        {
            "kinko_1m_rps": km["rps"],
            "boto3_1m_rps": bm["rps"],
            "ratio_1m": round(km["rps"] / bm["rps"], 3) if bm["rps"] else None,
            "kinko_1m_p50_ms": km["p50_ms"],
            "kinko_1m_p99_ms": km["p99_ms"],
            "boto3_1m_p50_ms": bm["p50_ms"],
            "boto3_1m_p99_ms": bm["p99_ms"],
        }
    )
    kinko_errors = km["errors"]
    boto3_errors = bm["errors"]

    # 2. round trip
    total = args.roundtrip_mib * MiB
    time.sleep(1.0)
    idle_rss = RssSampler(kinko_pid).rss()
    bench_core.log = log  # roundtrip's progress lines under this script's name
    moto_sampler = RssSampler(moto_pid) if moto_pid is not None else None
    with moto_sampler if moto_sampler is not None else contextlib.nullcontext():
        t = time.monotonic()
        rt = bench_core.roundtrip(srv.base_url, token, case["id"], total, kinko_pid)
        kinko_rt_s = time.monotonic() - t
    if not rt["roundtrip_ok"]:
        kinko_errors += 1
    srv.close_clients()
    srv.stop()  # the baseline round trip runs without the kinko server's footprint

    big_s3 = make_s3()
    t = time.monotonic()
    brt = boto3_roundtrip(big_s3, base_bucket, total, args.ranged_download)
    boto3_rt_s = time.monotonic() - t
    big_s3.close()
    if not brt["boto3_roundtrip_ok"]:
        boto3_errors += 1

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    result.update(
        {
            "roundtrip_bytes": total,
            "roundtrip_reduced": args.roundtrip_mib < 1024,
            "roundtrip_ok": rt["roundtrip_ok"],
            "kinko_upload_s": rt["upload_s"],
            "kinko_download_s": rt["download_s"],
            "kinko_roundtrip_s": round(rt["upload_s"] + rt["download_s"], 2),
            "kinko_upload_mb_s": rt["upload_mb_s"],
            "kinko_download_mb_s": rt["download_mb_s"],
            **{k: v for k, v in brt.items() if k != "boto3_roundtrip_ok"},
            "boto3_roundtrip_ok": brt["boto3_roundtrip_ok"],
            "boto3_roundtrip_s": round(brt["boto3_upload_s"] + brt["boto3_download_s"], 2),
        }
    )
    result.update(
        {
            "ratio_roundtrip_time": ratio(result["kinko_roundtrip_s"], result["boto3_roundtrip_s"]),
            "ratio_upload_time": ratio(rt["upload_s"], brt["boto3_upload_s"]),
            "ratio_download_time": ratio(rt["download_s"], brt["boto3_download_s"]),
            "kinko_roundtrip_wall_s": round(kinko_rt_s, 2),
            "boto3_roundtrip_wall_s": round(boto3_rt_s, 2),
            "peak_rss_mib": rt["peak_rss_mib"],
            "peak_rss_upload_mib": rt["peak_rss_upload_mib"],
            "peak_rss_download_mib": rt["peak_rss_download_mib"],
            "rss_samples": rt["rss_samples"],
            "idle_rss_mib": round(idle_rss / MiB, 1),
            "startup_rss_mib": round(startup_rss / MiB, 1),
            "moto_peak_rss_mib": (
                round(moto_sampler.peak / MiB, 1) if moto_sampler is not None else None
            ),
            "errors": kinko_errors,
            "boto3_errors": boto3_errors,
        }
    )
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s per measurement, 256 MiB round trip")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    ap.add_argument("--warmup", type=float, default=None, help="seconds excluded before each")
    ap.add_argument("--roundtrip-mib", type=int, default=None)
    ap.add_argument(
        "--moto-in-process", action="store_true", help="run moto inside this script's process"
    )
    ap.add_argument(
        "--ranged-download",
        action="store_true",
        help="boto3 baseline downloads with its default ranged GETs (very slow on moto)",
    )
    args = ap.parse_args()
    if args.duration is None:
        args.duration = 3.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0
    if args.roundtrip_mib is None:
        args.roundtrip_mib = 256 if args.quick else 1024
    args.duration = benchkit.whole(args.duration)
    return benchkit.main("s3", run, args)


if __name__ == "__main__":
    sys.exit(main())
