#!/usr/bin/env python
"""Core benchmark: authorized content reads against a plain-uvicorn baseline, and a big round trip.

    python tests/bench/bench_core.py [--quick] [--clients N] [--duration S] [--roundtrip-mib M]

Prints exactly one JSON line on stdout; progress goes to stderr. Not collected by pytest (the
file name does not match ``test_*.py``). Starts a real ``kinko serve`` (through
``tests/conftest.py``'s ``make_server``) and ``baseline_app.py`` (uvicorn + Starlette
``FileResponse`` serving the same bytes from disk), both on free loopback ports, on a temp dir
that is removed at the end, also on Ctrl-C or errors.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import benchkit
import httpx
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MiB = 1 << 20
PURPOSE = "性能測定 benchmark (bench_core)"
SHA_EVERY = 50  # each worker verifies the sha256 of its first body and of every 50th one

log = benchkit.logger("bench_core")


def load_conftest() -> ModuleType:
    """Import tests/conftest.py (make_server, free_port) without making ``tests`` a package."""
    # The repository root (for ``clients`` and ``vault``) and tests/ (for the modules
    # conftest.py imports beside itself, as pytest's rootdir-relative imports allow).
    for path in (str(ROOT), str(ROOT / "tests")):
        if path not in sys.path:
            sys.path.insert(0, path)
    spec = importlib.util.spec_from_file_location(
        "kinko_bench_conftest", ROOT / "tests" / "conftest.py"
    )
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot load tests/conftest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------------------- load


@dataclass
class Target:
    label: str
    base_url: str
    path: str
    headers: dict[str, str]
    body_len: int
    sha256: str
    sha_header: str | None = None  # response header that must carry the sha256, if any


@dataclass
class LoadResult:
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)


def check_response(t: Target, resp: httpx.Response, full_hash: bool) -> str | None:
    if resp.status_code != 200:
        return f"status {resp.status_code}: {resp.text[:200]!r}"
    if len(resp.content) != t.body_len:
        return f"length {len(resp.content)} != {t.body_len}"
    if t.sha_header is not None and resp.headers.get(t.sha_header) != t.sha256:
        return f"{t.sha_header} header {resp.headers.get(t.sha_header)!r} != {t.sha256}"
    if full_hash and hashlib.sha256(resp.content).hexdigest() != t.sha256:
        return "sha256 mismatch"
    return None


def run_load(t: Target, clients: int, duration: float, warmup: float) -> LoadResult:
    """N threads, each with its own keep-alive httpx.Client, reading for ``duration`` seconds.

    Only requests that complete inside [start + warmup, start + warmup + duration] count.
    """
    results = [LoadResult() for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    window: list[float] = []

    def worker(res: LoadResult) -> None:
        with httpx.Client(base_url=t.base_url, headers=t.headers, timeout=60.0) as http:
            barrier.wait()
            t_begin, t_end = window
            n = 0
            while not benchkit.STOP.is_set():
                start = time.monotonic()
                if start >= t_end:
                    break
                try:
                    resp = http.get(t.path)
                    err = check_response(t, resp, full_hash=(n % SHA_EVERY == 0))
                except httpx.HTTPError as exc:
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

    threads = [threading.Thread(target=worker, args=(r,), daemon=True) for r in results]
    for th in threads:
        th.start()
    now = time.monotonic()
    window.extend([now + warmup, now + warmup + duration])
    barrier.wait()
    for th in threads:
        th.join()
    total = LoadResult()
    for r in results:
        total.ok += r.ok
        total.errors += r.errors
        total.latencies.extend(r.latencies)
        total.error_samples.extend(r.error_samples)
    return total


def measure(t: Target, clients: int, duration: float, warmup: float) -> dict[str, Any]:
    log(f"{t.label}: {clients} clients, {duration:g} s (+{warmup:g} s warm-up)")
    r = run_load(t, clients, duration, warmup)
    lat = sorted(r.latencies)

    def pct(p: float) -> float | None:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

    out = {
        "rps": round(r.ok / duration, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": r.errors,
    }
    log(f"{t.label}: {out}")
    for s in r.error_samples[:5]:
        log(f"  {t.label} error: {s}")
    return out


def serial_cpu_ms(t: Target, pid: int, reads: int = 300) -> float:
    """Server CPU time (user + system, all threads) per request, one client, serial requests.

    Unlike requests per second this barely depends on what else the machine is doing, so it
    is the figure to compare when the load average says the throughput figures are noisy.
    """
    proc = psutil.Process(pid)
    with httpx.Client(base_url=t.base_url, headers=t.headers, timeout=30) as http:
        for _ in range(20):
            http.get(t.path)
        before = proc.cpu_times()
        for _ in range(reads):
            err = check_response(t, http.get(t.path), full_hash=False)
            if err:
                raise RuntimeError(f"{t.label}: {err}")
        after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return round(1000 * used / reads, 3)


# --------------------------------------------------------------------------------------- RSS


class RssSampler:
    """Samples the RSS of a process (plus its children) every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.phase = "idle"
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total: int = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value = self.rss()
            except psutil.Error:
                return
            self.samples += 1
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), value)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max(self.peaks.values(), default=0)


# --------------------------------------------------------------------------------------- round trip


def roundtrip(base_url: str, token: str, case_id: str, total: int, pid: int) -> dict[str, Any]:
    from clients import KinkoClient

    chunk = MiB
    pool_size = 8 * MiB
    pool = random.Random(20240601).randbytes(pool_size + chunk)
    up_hash = hashlib.sha256()

    def gen() -> Iterator[bytes]:
        sent = 0
        i = 0
        while sent < total and not benchkit.STOP.is_set():
            n = min(chunk, total - sent)
            off = (i * 1_048_583) % pool_size  # odd stride: consecutive chunks differ
            block = pool[off : off + n]
            up_hash.update(block)
            sent += n
            i += 1
            yield block

    out: dict[str, Any] = {"roundtrip_bytes": total}
    with KinkoClient(base_url, token, timeout=900.0) as kc, RssSampler(pid) as sampler:
        sampler.phase = "upload"
        log(f"round trip: uploading {total / MiB:.0f} MiB (streamed from a generator)")
        t = time.monotonic()
        doc = kc.create_document(case_id, "proposal", "bench round trip", gen())
        up_s = time.monotonic() - t
        sampler.phase = "between"
        meta = kc.document(doc["id"])
        v1 = next(v for v in meta["versions"] if v["version"] == doc["version"])
        sampler.phase = "download"
        log(f"round trip: uploaded in {up_s:.1f} s; downloading")
        down_hash = hashlib.sha256()
        got = 0
        t = time.monotonic()
        for part in kc.iter_read(doc["id"], PURPOSE, chunk_size=chunk):
            down_hash.update(part)
            got += len(part)
        down_s = time.monotonic() - t
        sampler.phase = "after"
    want = up_hash.hexdigest()
    ok = (
        got == total
        and down_hash.hexdigest() == want
        and v1["sha256"] == want
        and int(v1["size"]) == total
    )
    if not ok:
        log(
            f"round trip MISMATCH: got {got}/{total} bytes, down {down_hash.hexdigest()}, "
            f"up {want}, server says {v1['sha256']} / {v1['size']}"
        )
    out.update(
        {
            "roundtrip_ok": ok,
            "upload_s": round(up_s, 2),
            "download_s": round(down_s, 2),
            "upload_mb_s": round(total / 1e6 / up_s, 1),
            "download_mb_s": round(got / 1e6 / down_s, 1) if down_s > 0 else None,
            "peak_rss_mib": round(sampler.peak / MiB, 1),
            "peak_rss_upload_mib": round(sampler.peaks.get("upload", 0) / MiB, 1),
            "peak_rss_download_mib": round(sampler.peaks.get("download", 0) / MiB, 1),
            "rss_samples": sampler.samples,
        }
    )
    log(f"round trip: {out}")
    return out


# --------------------------------------------------------------------------------------- listing


def _median_ms(fn: Callable[[], None], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * sorted(times)[len(times) // 2], 2)


def listing(srv: Any, user: Any, n_docs: int) -> dict[str, Any]:
    """A case of ``n_docs`` small documents: the case listing, the full sync manifest and an
    unchanged manifest poll (304), each timed from the client (median of several runs)."""
    from concurrent.futures import ThreadPoolExecutor

    case = user.create_case("BENCH-LIST", "一覧の測定")["id"]
    log(f"listing: creating {n_docs} documents")

    def one(i: int) -> None:
        with srv.client(str(user.http.headers["Authorization"]).removeprefix("Bearer ")) as c:
            for j in range(i, n_docs, 8):
                c.create_document(case, "specification", f"一覧 {j:05d}.txt", b"x" * 64)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(8)))
    http = user.http
    path = f"/api/v1/cases/{case}/documents"
    listed = http.get(path).json()["documents"]
    first = http.get("/api/v1/sync/manifest")
    etag = first.headers["ETag"]
    full = len(first.json()["documents"])
    poll = http.get("/api/v1/sync/manifest", headers={"If-None-Match": etag})
    out = {
        "listing_docs": n_docs,
        "listing_reduced": n_docs < 10_000,
        "listing_ok": len(listed) == n_docs and full >= n_docs and poll.status_code == 304,
        "listing_ms": _median_ms(lambda: http.get(path).raise_for_status(), 7),
        "manifest_ms": _median_ms(lambda: http.get("/api/v1/sync/manifest").raise_for_status(), 5),
        "manifest_304_ms": _median_ms(
            lambda: http.get("/api/v1/sync/manifest", headers={"If-None-Match": etag}), 21
        ),
    }
    log(f"listing: {out}")
    return out


# --------------------------------------------------------------------------------------- counters


def count_work(
    srv: Any,
    tmp: Path,
    port: int,
    docs: dict[str, str],
    headers: dict[str, str],
    reads: int = 200,
) -> dict[str, Any]:
    """Per-request counts of what a read asks of the machine (``counting_server.py`` on the
    same data directory): SQL statements, thread hops, audit hand-offs, key unwraps, and the
    server process's context switches.  Reads are serial, so each audit batch holds one event."""
    log_path = tmp / "counting.log"
    argv = [sys.executable, str(HERE / "counting_server.py")]
    argv += ["--data-dir", str(srv.data_dir), "--port", str(port)]
    with log_path.open("ab") as logf:
        proc = subprocess.Popen(argv, env=srv.env, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"counting server failed:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        out: dict[str, Any] = {}
        ps = psutil.Process(proc.pid)
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            targets = {k: f"/api/v1/documents/{d}/content" for k, d in docs.items()}
            etag = http.get("/api/v1/sync/manifest").headers["ETag"]
            targets["manifest_304"] = "/api/v1/sync/manifest"
            for label, path in targets.items():
                extra = {"If-None-Match": etag} if label == "manifest_304" else {}
                for _ in range(5):  # warm: caches filled, connection open
                    http.get(path, headers=extra)
                before = http.get("/__bench/counters").json()
                switches = sum(ps.num_ctx_switches())
                for _ in range(reads):
                    r = http.get(path, headers=extra)
                    if r.status_code not in (200, 304):
                        raise RuntimeError(f"{label}: status {r.status_code}")
                switches = sum(ps.num_ctx_switches()) - switches
                after = http.get("/__bench/counters").json()
                # The counters request itself hops nowhere and asks no SQL.
                for name in sorted(set(after) | set(before)):
                    delta = after.get(name, 0) - before.get(name, 0)
                    out[f"per_{label}_{name}"] = round(delta / reads, 2)
                out[f"per_{label}_ctx_switches"] = round(switches / reads, 1)
        log(f"counters: {out}")
        return out
    finally:
        stop_proc(proc)


# --------------------------------------------------------------------------------------- servers


def start_baseline(files_dir: Path, log_path: Path, port: int) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as logf:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "baseline_app.py"),
                "--dir",
                str(files_dir),
                "--port",
                str(port),
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"baseline exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"baseline did not start:\n{log_path.read_text(errors='replace')}")


def stop_proc(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace, tmp: Path, cleanup: list[Callable[[], None]]) -> dict[str, Any]:
    conftest = load_conftest()
    result: dict[str, Any] = {
        "bench": "core",
        "quick": args.quick,
        "clients": args.clients,
        "duration_s": args.duration,
        "rounds": args.rounds,
    }
    srv = conftest.make_server(tmp)
    cleanup.append(srv.close_clients)
    cleanup.append(srv.stop)
    log("starting kinko server")
    srv.start()
    if srv.proc is None:
        raise RuntimeError("kinko server did not start")
    kinko_pid = srv.proc.pid
    log(f"kinko on {srv.base_url} (pid {kinko_pid})")

    user = srv.user("bench-procurement", ["procurement"])
    token = str(user.http.headers["Authorization"]).removeprefix("Bearer ")
    case = user.create_case("BENCH-0001", "ベンチマーク案件")
    rng = random.Random(4242)
    bodies = {"4k": rng.randbytes(4096), "1m": rng.randbytes(MiB)}
    docs = {
        k: user.create_document(case["id"], "specification", f"bench {k}", b)["id"]
        for k, b in bodies.items()
    }
    startup_rss = psutil.Process(kinko_pid).memory_info().rss

    files = tmp / "baseline-files"
    files.mkdir()
    for k, b in bodies.items():
        (files / f"doc_{k}.bin").write_bytes(b)
    port = conftest.free_port()
    log(f"starting baseline on 127.0.0.1:{port}")
    baseline = start_baseline(files, tmp / "baseline.log", port)
    cleanup.insert(0, lambda: stop_proc(baseline))

    kinko_headers = {
        "Authorization": f"Bearer {token}",
        "X-Access-Purpose": quote(PURPOSE, safe=""),
    }
    targets: dict[str, tuple[Target, Target]] = {}
    for k, b in bodies.items():
        digest = hashlib.sha256(b).hexdigest()
        targets[k] = (
            Target(
                f"kinko {k}",
                srv.base_url,
                f"/api/v1/documents/{docs[k]}/content",
                kinko_headers,
                len(b),
                digest,
                sha_header="x-kinko-sha256",
            ),
            Target(
                f"baseline {k}",
                f"http://127.0.0.1:{port}",
                f"/files/doc_{k}.bin",
                {},
                len(b),
                digest,
            ),
        )
    # Fail fast if either side does not serve the right bytes at all.
    for pair in targets.values():
        for t in pair:
            with httpx.Client(base_url=t.base_url, headers=t.headers, timeout=30) as http:
                err = check_response(t, http.get(t.path), full_hash=True)
            if err:
                raise RuntimeError(f"{t.label}: sanity read failed: {err}")

    kinko_errors = 0
    baseline_errors = 0
    read_rss: dict[str, int] = {}
    for k in ("4k", "1m"):
        kt, bt = targets[k]
        # Rounds alternate kinko and baseline, and the medians are reported: on a 2-core
        # machine a single window of either moves with whatever else happens to run.
        rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
        read_rss[k] = 0
        for _ in range(args.rounds):
            with RssSampler(kinko_pid) as sampler:
                km = measure(kt, args.clients, args.duration, args.warmup)
            read_rss[k] = max(read_rss[k], sampler.peak)
            bm = measure(bt, args.clients, args.duration, args.warmup)
            kinko_errors += km["errors"]
            baseline_errors += bm["errors"]
            rounds.append((km, bm))
        ratios = [km["rps"] / bm["rps"] for km, bm in rounds if bm["rps"]]

        def med(values: list[float]) -> float:
            return sorted(values)[len(values) // 2]

        mid = len(rounds) // 2
        km = sorted((r[0] for r in rounds), key=lambda m: m["rps"])[mid]
        bm = sorted((r[1] for r in rounds), key=lambda m: m["rps"])[mid]
        result.update(
            {
                f"kinko_{k}_rps": km["rps"],
                f"baseline_{k}_rps": bm["rps"],
                f"ratio_{k}": round(med(ratios), 3) if ratios else None,
                f"ratio_{k}_rounds": [round(r, 3) for r in ratios],
                f"kinko_{k}_p50_ms": km["p50_ms"],
                f"kinko_{k}_p99_ms": km["p99_ms"],
                f"baseline_{k}_p50_ms": bm["p50_ms"],
                f"baseline_{k}_p99_ms": bm["p99_ms"],
            }
        )
    for k in ("4k", "1m"):
        kt, bt = targets[k]
        kc, bc = serial_cpu_ms(kt, kinko_pid), serial_cpu_ms(bt, baseline.pid)
        result.update(
            {
                f"kinko_{k}_cpu_ms": kc,
                f"baseline_{k}_cpu_ms": bc,
                f"cpu_ratio_{k}": round(bc / kc, 3) if kc else None,
            }
        )
    result["peak_rss_reads_4k_mib"] = round(read_rss["4k"] / MiB, 1)
    result["peak_rss_reads_1m_mib"] = round(read_rss["1m"] / MiB, 1)
    stop_proc(baseline)  # keep the round trip free of the baseline's footprint

    time.sleep(1.0)
    idle_rss = RssSampler(kinko_pid).rss()
    rt = roundtrip(srv.base_url, token, case["id"], args.roundtrip_mib * MiB, kinko_pid)
    if not rt["roundtrip_ok"]:
        kinko_errors += 1
    result.update(rt)
    result.update(
        {
            "roundtrip_reduced": args.roundtrip_mib < 1024,
            "idle_rss_mib": round(idle_rss / MiB, 1),
            "roundtrip_rss_growth_mib": round((rt["peak_rss_mib"] * MiB - idle_rss) / MiB, 1),
            "startup_rss_mib": round(startup_rss / MiB, 1),
            "errors": kinko_errors,
            "baseline_errors": baseline_errors,
        }
    )
    result.update(listing(srv, user, args.listing_docs))
    srv.stop()
    result.update(count_work(srv, tmp, conftest.free_port(), docs, kinko_headers))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 s per measurement, 256 MiB round trip")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    ap.add_argument("--warmup", type=float, default=None, help="seconds excluded before each")
    ap.add_argument("--roundtrip-mib", type=int, default=None)
    ap.add_argument("--listing-docs", type=int, default=None, help="documents in the listing case")
    ap.add_argument("--rounds", type=int, default=3, help="alternating kinko/baseline rounds")
    args = ap.parse_args()
    if args.duration is None:
        args.duration = 3.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0
    if args.roundtrip_mib is None:
        args.roundtrip_mib = 256 if args.quick else 1024
    if args.listing_docs is None:
        args.listing_docs = 2000 if args.quick else 10_000
    args.duration = benchkit.whole(args.duration)
    return benchkit.main("core", run, args)


if __name__ == "__main__":
    sys.exit(main())
