"""The server's allocator settings: applied on glibc, and an operator's own choice is kept."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = "from vault.allocator import tune_allocator; print(tune_allocator())"


def run(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_applied_by_default() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    assert run(env) == "True"


def test_operator_setting_wins() -> None:
    import os

    env = dict(os.environ, MALLOC_ARENA_MAX="4")
    assert run(env) == "False"
