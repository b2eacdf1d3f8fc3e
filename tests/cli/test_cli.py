"""The command line: demo, first start, packaging of the shipped policies."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def test_demo_seeds_and_its_tour_answers(tmp_path: Path) -> None:
    port = free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vault.cli.main",
            "demo",
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            str(port),
            "--check",
        ],
        capture_output=True,
        env=_env(),
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "tour ran: every command answered." in out
    # Every role of the sample gets a token, and the tour is printed as curl commands.
    for name in ("admin", "tanaka", "sato", "suzuki", "yamada", "kansa"):
        assert re.search(rf"^\s+{name}\s", out, re.M), name
        # ...and a one-time link to set a password for the web interface.
        link = rf"^\s+{name}\s+http://127\.0\.0\.1:{port}/ui/invitation/[A-Za-z0-9_-]{{43}}$"
        assert re.search(link, out, re.M), name
    assert out.count("curl -sS") >= 8


def test_first_start_without_bootstrap_token_prints_one_once(tmp_path: Path) -> None:
    data = tmp_path / "d"
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "vault.cli.main",
        "serve",
        "--data-dir",
        str(data),
        "--port",
        str(port),
    ]

    def run_once() -> str:
        proc = subprocess.Popen(
            argv, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=15)
        return out.decode()

    first = run_once()
    match = re.search(r"token \(shown only now\): (kinko_\S+)", first)
    assert match, first
    assert oct((data / "master.key").stat().st_mode & 0o777) == "0o600"
    # And a one-time link with which the admin sets a web password, naming the real port.
    link = re.search(rf"open (http://127\.0\.0\.1:{port}/ui/invitation/\S+) and set", first)
    assert link, first
    second = run_once()
    assert "shown only now" not in second
    assert "/ui/invitation/" not in second
    # The printed token works (start once more and use it).
    proc = subprocess.Popen(
        argv, env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/me",
                    headers={"Authorization": f"Bearer {match.group(1)}"},
                )
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert r.status_code == 200
        assert r.json()["name"] == "admin"
        # The link opens the page where the password is set.
        page = httpx.get(link.group(1))
        assert page.status_code == 200
        assert 'name="password"' in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_short_bootstrap_token_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vault.cli.main",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        env=_env(KINKO_BOOTSTRAP_TOKEN="short"),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "at least 16 characters" in (result.stdout + result.stderr).decode()


def test_every_python_package_is_listed_for_the_wheel() -> None:
    """The package list in pyproject.toml is explicit; a new subpackage must not be left out."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = set()
    for top in ("vault", "clients"):
        for path in (ROOT / top).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            found.add(".".join(path.parent.relative_to(ROOT).parts))
    assert found - listed == set()
    assert "vault._policies" in listed


# -- kinko demo: its port, its data directory --------------------------------------------------


class _Listener:
    """A plain TCP listener standing in for "some other server" on a port; counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def test_demo_refuses_a_busy_port_and_touches_nothing(tmp_path: Path) -> None:
    other = _Listener()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "vault.cli.main", "demo", "--port", str(other.port)],
            capture_output=True,
            text=True,
            env=_env(TMPDIR=str(tmp_path)),
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        time.sleep(0.5)  # a connection the demo might have made would be accepted by now
        assert other.accepted == 0
    finally:
        other.close()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ")
    assert f"port {other.port}" in line
    assert "--port 0" in line
    assert "running at" not in result.stdout
    # No data directory was created for a demo that never started.
    assert list(tmp_path.iterdir()) == []


@dataclass
class _Demo:
    proc: subprocess.Popen[str]
    url: str
    data_dir: Path
    out: list[str]
    lines: queue.Queue[str | None]
    pump: threading.Thread


def _start_demo(tmp_path: Path, *args: str) -> _Demo:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vault.cli.main", "demo", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(TMPDIR=str(tmp_path)),
        cwd=ROOT,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for got in proc.stdout:
            lines.put(got.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    out: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            got = lines.get(timeout=1)
        except queue.Empty:
            continue
        if got is None:
            break
        out.append(got)
        if got.startswith("Press Ctrl-C to stop"):
            break
    else:
        proc.kill()
    text = "\n".join(out)
    url = re.search(r"Kinko demo running at (http://127\.0\.0\.1:(\d+))", text)
    data = re.search(r"^Data directory: (.+)$", text, re.M)
    if not (url and data) or proc.poll() is not None:
        proc.kill()
        proc.wait()
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
        raise AssertionError(text)
    assert url.group(2) != "0"
    return _Demo(proc, url.group(1), Path(data.group(1)), out, lines, reader)


def _stop_demo(demo: _Demo, sig: int = signal.SIGTERM) -> str:
    demo.proc.send_signal(sig)
    try:
        code = demo.proc.wait(timeout=30)
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
            demo.proc.wait()
        demo.pump.join(timeout=10)
        assert demo.proc.stdout is not None
        demo.proc.stdout.close()
    while (got := demo.lines.get_nowait()) is not None:
        demo.out.append(got)
    text = "\n".join(demo.out)
    assert code == 0, text
    return text


def test_demo_on_a_free_port_prints_working_commands_and_cleans_up(tmp_path: Path) -> None:
    demo = _start_demo(tmp_path)
    try:
        assert demo.data_dir.is_dir()
        assert demo.data_dir.parent == tmp_path  # a fresh temporary directory of its own
        assert (demo.data_dir / "catalog.db").exists()
        commands = [ln for ln in demo.out if ln.startswith("curl ")]
        assert len(commands) >= 8
        assert all(demo.url in c for c in commands)
        for command in commands:
            # Run in a shell as printed; -w only appends the status on a line of its own, as
            # the tour's answers include the refusals it demonstrates (400 and 403).
            ran = subprocess.run(
                ["bash", "-c", command + " -w '\\n%{http_code}'"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert ran.returncode == 0, (command, ran.stderr)
            status = ran.stdout.rsplit("\n", 1)[-1]
            assert status in {"200", "201", "400", "403"}, (command, ran.stdout)
        assert httpx.get(f"{demo.url}/healthz").status_code == 200
    finally:
        text = _stop_demo(demo)
    assert not demo.data_dir.exists(), text
    assert f"its data directory {demo.data_dir} was removed" in text


def test_demo_keep_leaves_the_data_directory(tmp_path: Path) -> None:
    demo = _start_demo(tmp_path, "--keep")
    text = _stop_demo(demo, signal.SIGINT)  # Ctrl-C
    assert (demo.data_dir / "catalog.db").exists(), text
    assert "was kept" in text


def test_demo_never_removes_a_directory_it_did_not_create(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own file")
    demo = _start_demo(tmp_path, "--data-dir", str(mine))
    assert demo.data_dir == mine
    text = _stop_demo(demo)
    assert (mine / "notes.txt").read_text() == "my own file", text
    assert (mine / "catalog.db").exists()
