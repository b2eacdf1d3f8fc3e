"""The command line: demo, first start, packaging of the shipped policies."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
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
    second = run_once()
    assert "shown only now" not in second
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
