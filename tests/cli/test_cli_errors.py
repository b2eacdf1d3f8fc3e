"""A ``kinko`` command that cannot do what was asked says why in one line, never a traceback.

Each case is a real invocation (a subprocess, as a user would type it) of something a user can
get wrong: a missing or malformed file, a bad date, settings that do not parse, a database
that cannot be opened.  The answer must be exactly one line on stderr starting ``Error:``,
naming the thing at fault, with exit status 2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_kinko
from vault.cli.errors import describe
from vault.core import Vault
from vault.settings import Settings


def kinko(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_kinko(*args, env=cli_env(**env), timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


@pytest.fixture(scope="module")
def vault_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real vault (created as the server would create it) and a bundle of its log."""
    data = tmp_path_factory.mktemp("errors") / "data"
    Vault.open(Settings(data_dir=data), start_audit_writer=False).close()
    return data


@pytest.fixture(scope="module")
def bundle(vault_dir: Path) -> tuple[Path, Path]:
    out = vault_dir.parent / "bundle"
    done = kinko("audit", "export", "--out", str(out), "--data-dir", str(vault_dir))
    assert done.returncode == 0, done.stderr
    key = vault_dir.parent / "verifier.key"
    got = kinko("audit", "public-key", "--data-dir", str(vault_dir))
    assert got.returncode == 0, got.stderr
    key.write_text(got.stdout)
    return out, key


def test_verify_with_a_missing_key_file(bundle: tuple[Path, Path], tmp_path: Path) -> None:
    out, _key = bundle
    missing = tmp_path / "no-such.key"
    result = kinko("audit", "verify", str(out), "--key", str(missing))
    assert_one_line_error(result, str(missing), "does not exist")


def test_verify_with_a_malformed_key_file(bundle: tuple[Path, Path], tmp_path: Path) -> None:
    out, _key = bundle
    bad = tmp_path / "bad.key"
    bad.write_text("this is not a key\n")
    result = kinko("audit", "verify", str(out), "--key", str(bad))
    assert_one_line_error(result, str(bad), "does not hold a verifier key")
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 16)
    result = kinko("audit", "verify", str(out), "--key", str(binary))
    assert_one_line_error(result, str(binary), "not a text file")


def test_verify_of_something_that_is_not_a_bundle(
    bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    _out, key = bundle
    result = kinko("audit", "verify", str(tmp_path / "nowhere"), "--key", str(key))
    assert_one_line_error(result, "nowhere", "not a directory")
    a_file = tmp_path / "bundle.zip"
    a_file.write_bytes(b"PK\x03\x04")
    result = kinko("audit", "verify", str(a_file), "--key", str(key))
    assert_one_line_error(result, str(a_file))


def test_verify_with_a_missing_kept_checkpoint(bundle: tuple[Path, Path], tmp_path: Path) -> None:
    out, key = bundle
    kept = tmp_path / "kept-checkpoint.txt"
    result = kinko("audit", "verify", str(out), "--key", str(key), "--trusted", str(kept))
    assert_one_line_error(result, str(kept), "does not exist")


def test_export_into_an_existing_or_impossible_place(vault_dir: Path, tmp_path: Path) -> None:
    result = kinko("audit", "export", "--out", str(tmp_path), "--data-dir", str(vault_dir))
    assert_one_line_error(result, str(tmp_path), "exists")
    deep = tmp_path / "no" / "such" / "dir"
    result = kinko("audit", "export", "--out", str(deep), "--data-dir", str(vault_dir))
    assert_one_line_error(result, "not a directory")


def test_bad_dates_and_times(vault_dir: Path) -> None:
    result = kinko("review", "report", "--data-dir", str(vault_dir), "--date", "2026-02-30")
    assert_one_line_error(result, "2026-02-30")
    result = kinko("review", "report", "--data-dir", str(vault_dir), "--date", "昨日")
    assert_one_line_error(result, "YYYY-MM-DD")
    result = kinko("audit", "query", "--data-dir", str(vault_dir), "--since", "yesterday")
    assert_one_line_error(result, "yesterday")


def test_a_malformed_master_key_file(vault_dir: Path, tmp_path: Path) -> None:
    # A copy of the vault whose master key file was damaged (truncated by a bad copy, say).
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(vault_dir, broken)
    (broken / "master.key").write_text("{ not json")
    for args in (["keys", "status"], ["keys", "rotate"], ["case", "shred", "R1", "--confirm"]):
        result = kinko(*args, "--data-dir", str(broken))
        assert_one_line_error(result, "master key", "master.key")


def test_an_unreadable_signing_key(vault_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(vault_dir, copy)
    (copy / "audit-signing.key").chmod(0o644)
    result = kinko("audit", "checkpoint", "--data-dir", str(copy))
    assert_one_line_error(result, "audit-signing.key", "chmod 600")


def test_unreachable_or_misconfigured_database(vault_dir: Path, tmp_path: Path) -> None:
    nowhere = f"sqlite:///{tmp_path}/missing-dir/catalog.db"
    for args in (["keys", "status"], ["storage", "gc"], ["case", "shred", "R1", "--confirm"]):
        result = kinko(*args, "--data-dir", str(vault_dir), KINKO_DATABASE_URL=nowhere)
        assert_one_line_error(result, "database", "unable to open database file")
    result = kinko("keys", "status", "--data-dir", str(vault_dir), KINKO_DATABASE_URL="catalog")
    assert_one_line_error(result, "database URL")


def test_serve_with_bad_settings(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    result = kinko("serve", "--data-dir", data, KINKO_TIMEZONE="Asia/Tokio")
    assert_one_line_error(result, "KINKO_TIMEZONE", "Asia/Tokio")
    result = kinko("serve", "--data-dir", data, KINKO_PORT="eighty", KINKO_TIMEZONE="Mars/X")
    line = assert_one_line_error(result, "KINKO_PORT", "KINKO_TIMEZONE")
    assert "pydantic.dev" not in line
    result = kinko("serve", "--data-dir", data, KINKO_STORAGE="s3")
    assert_one_line_error(result, "KINKO_S3_BUCKET")
    # Nothing was created for a server that never started.
    assert not (tmp_path / "d" / "catalog.db").exists()


def test_serve_on_a_busy_port_or_with_an_unusable_key(vault_dir: Path, tmp_path: Path) -> None:
    import shutil
    import socket

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        busy = other.getsockname()[1]
        result = kinko("serve", "--data-dir", str(tmp_path / "new"), "--port", str(busy))
    assert_one_line_error(result, f"port {busy}", "--port 0")
    assert not (tmp_path / "new").exists()  # refused before anything was created

    broken = tmp_path / "broken"
    shutil.copytree(vault_dir, broken)
    (broken / "master.key").write_text("{ not json")
    result = kinko("serve", "--data-dir", str(broken), "--port", "0")
    assert_one_line_error(result, "master key", "master.key")


def test_missing_vault_is_named(tmp_path: Path) -> None:
    for args in (
        ["audit", "query"],
        ["audit", "checkpoint"],
        ["review", "report"],
        ["keys", "status"],
        ["storage", "gc"],
        ["case", "shred", "R1", "--confirm"],
    ):
        result = kinko(*args, "--data-dir", str(tmp_path / "typo"))
        assert_one_line_error(result, "no vault in", "typo")


def test_kinko_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = kinko(
        "serve", "--data-dir", str(tmp_path / "d"), KINKO_TIMEZONE="Nowhere/X", KINKO_DEBUG="1"
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr or "ValidationError" in result.stderr


def test_a_bug_is_not_dressed_up_as_a_user_error() -> None:
    # Only failures a user can fix get the one-line treatment; anything else keeps its
    # traceback so that it gets reported.
    assert describe(RuntimeError("boom")) is None
    assert describe(KeyError("x")) is None
    assert describe(OSError("no file name")) is None
    assert describe(FileNotFoundError(2, "No such file or directory", "/x/y")) == (
        "/x/y: No such file or directory"
    )
