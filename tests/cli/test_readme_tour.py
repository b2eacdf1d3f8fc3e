"""The README's "Five-minute tour" and "Sync a folder" run as written.

The shell blocks of both sections are taken from README.md itself and pasted, in order, into
one bash shell against a real ``kinko serve`` on a free port (the port number is the only thing
changed).  Every command must exit 0, and what the tour promises must be what it shows: the
refused read, the public document, an offline verification that says OK with the kept
checkpoint, a decided review, an Excel-ready CSV and a synced folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

SECTIONS = ("## Five-minute tour", "## Sync a folder")
BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.M | re.S)
TITLE = "仕様書（案）.txt"


def section(readme: str, heading: str) -> str:
    start = readme.index(heading + "\n")
    rest = readme[start + len(heading) :]
    end = re.search(r"^## ", rest, re.M)
    return rest[: end.start()] if end else rest


def tour_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return [b for h in SECTIONS for b in BLOCK.findall(section(readme, h))]


def test_the_tour_has_nothing_to_fill_in() -> None:
    blocks = tour_blocks()
    assert len(blocks) >= 10
    for block in blocks:
        # Placeholders such as <seq> or <your token> cannot be pasted.
        assert not re.search(r"<[a-z][a-z _-]*>", block), block
    # Every file the tour reads is one it wrote before.
    text = "\n".join(blocks)
    for written, read in (
        ("> kept-checkpoint.txt", "--trusted kept-checkpoint.txt"),
        ("> kinko.vkey", "--key kinko.vkey"),
        ("> spec-v1.txt", "@spec-v1.txt"),
        ("> spec-v2.txt", "@spec-v2.txt"),
    ):
        assert -1 < text.index(written) < text.index(read), (written, read)


def _tools(bin_dir: Path) -> None:
    """``kinko`` and ``python`` on PATH exactly as an installed Kinko provides them."""
    bin_dir.mkdir()
    kinko = bin_dir / "kinko"
    kinko.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m vault.cli.main "$@"\n')
    kinko.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    blocks = [b.replace("8700", str(port)) for b in tour_blocks()]
    script = [
        "set -e",
        "trap 'echo \"README command failed (exit $?): $BASH_COMMAND\" >&2' ERR",
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
    ]
    for i, block in enumerate(blocks):
        script += [f"printf '\\n@@block {i}\\n'", block]
    script.append("printf '\\n@@done\\n'")
    (tmp_path / "home").mkdir()
    (tmp_path / "tmp").mkdir()
    _tools(tmp_path / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINKO_")}
    env.update(
        HOME=str(tmp_path / "home"),
        TMPDIR=str(tmp_path / "tmp"),
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
    )
    proc = subprocess.Popen(
        ["bash", "-c", "\n".join(script)],
        cwd=ROOT,  # "in the directory where you installed Kinko"
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out_b, err_b = proc.communicate(timeout=300)
    finally:
        # The tour's server runs in the background of that shell: stop all of it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out, err = out_b.decode("utf-8", "replace"), err_b.decode("utf-8", "replace")
    assert proc.returncode == 0, f"{out}\n---\n{err}"
    assert "README command failed" not in err
    assert out.rstrip().endswith("@@done")

    parts = re.split(r"^@@block (\d+)$", out, flags=re.M)
    by_block = {int(n): text for n, text in zip(parts[1::2], parts[2::2], strict=True)}
    assert sorted(by_block) == list(range(len(blocks)))

    def shown(needle: str) -> str:
        """The block whose command printed ``needle`` (exactly one block did)."""
        hits = [text for text in by_block.values() if needle in text]
        assert hits, f"{needle!r} not in the tour's output:\n{out}"
        return hits[0]

    # Users, case, upload and a second version (the metadata lists both versions).
    assert '"name":"tanaka"' in shown('"name":"tanaka"')
    meta = shown('"latest_version":2')
    assert TITLE in meta
    # A read without a purpose is refused; with one it is served.
    assert "purpose_required" in shown("purpose_required")
    shown("仕様書（案）第1版: 要件定義")
    # After the announcement the final version is public, for anyone.
    shown("仕様書 第2版: 要件定義（改訂）")
    # The audit: a kept checkpoint, a proof against it, and an offline verification that is OK
    # with it, then the live store too.
    (tour_dir,) = (tmp_path / "tmp").glob("tmp.*")
    kept = (tour_dir / "kept-checkpoint.txt").read_text()
    size = int(kept.splitlines()[1])
    assert f'"leaf_index":3,"tree_size":{size}' in shown('"leaf_index":3')
    # (curl prints JSON without a final newline, so a summary may follow one on its line.)
    verified = re.findall(r"(OK|FAILED): \d+ events", out)
    assert verified == ["OK", "OK"], out
    assert (tour_dir / "bundle" / "manifest.json").is_file()
    # The review: the supervisor's decision, and the report for Excel.
    assert '"verdict":"confirmed"' in shown('"verdict":"confirmed"')
    csv_bytes = (tour_dir / "review-report.csv").read_bytes()
    assert csv_bytes.startswith(b"\xef\xbb\xbf")
    csv_text = csv_bytes.decode("utf-8")
    assert TITLE in csv_text
    assert "R8-0042" in csv_text
    assert "+09:00" in csv_text
    assert '"reviewed":1' in shown('"reviewed":1')
    assert TITLE in shown("\ufeffseq,")  # kinko review report --format csv
    # The synced folder holds the final specification, and its status shows the purpose.
    synced = [p for p in (tmp_path / "home" / "Kinko").rglob("*") if p.name == TITLE]
    assert len(synced) == 1
    assert synced[0].read_text(encoding="utf-8") == "仕様書 第2版: 要件定義（改訂）\n"
    assert "purpose: 起案作業 / drafting" in shown("purpose: 起案作業 / drafting")


@pytest.mark.parametrize("heading", SECTIONS)
def test_each_section_is_found(heading: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert BLOCK.findall(section(readme, heading))
