"""What every benchmark script shares: signals, the temp dir and its clean-up, machine fields.

Each ``bench_*.py`` parses its own arguments and implements ``run(args, tmp, cleanup)``, which
returns its figures; :func:`main` does the rest the same way for all of them:

- SIGTERM and SIGINT become ``KeyboardInterrupt`` (SIGINT even when the script was started
  with it ignored, as ``nohup`` and some CI runners do), so that clean-up always runs;
- one temp dir ``kinko-bench-<name>-*``, removed at the end, also on Ctrl-C or errors;
- ``cleanup``: callables run in list order at the end (``insert(0, …)`` to run one earlier);
  a failing one is logged and the others still run;
- :data:`STOP` is set before clean-up, so that load threads still running end promptly;
- on failure, the tail of every ``*.log`` under the temp dir goes to stderr;
- the machine fields every result carries (``cpu_count``, ``python``, ``loadavg_1m_start``,
  ``loadavg_1m_end``): servers and load generators share the machine, so other work running
  at the same time makes the numbers noisy, and these say how noisy;
- exactly one JSON line on stdout (progress goes to stderr through :func:`logger`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["STOP", "Cleanup", "Run", "logger", "main", "whole"]

STOP = threading.Event()  # set on Ctrl-C / SIGTERM and before clean-up

Cleanup = list[Callable[[], None]]
Run = Callable[[argparse.Namespace, Path, Cleanup], dict[str, Any]]

_T0 = time.monotonic()


def logger(name: str) -> Callable[[str], None]:
    """A progress logger to stderr, each line stamped with the script's name and run time."""

    def log(msg: str) -> None:
        print(f"[{name} {time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    return log


def whole(value: float) -> float | int:
    """``3.0`` as ``3``, so that durations read the same in the JSON as on the command line."""
    return int(value) if float(value).is_integer() else value


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(name: str, run: Run, args: argparse.Namespace) -> int:
    """Run one benchmark and print its result as one JSON line; returns the exit status."""
    log = logger(f"bench_{name}")
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tmp = Path(tempfile.mkdtemp(prefix=f"kinko-bench-{name}-"))
    cleanup: Cleanup = []
    load_start = os.getloadavg()[0]
    failed = True
    try:
        result = run(args, tmp, cleanup)
        failed = False
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        STOP.set()
        for fn in cleanup:
            try:
                fn()
            except Exception as exc:  # the rest of the clean-up must still run
                log(f"cleanup: {type(exc).__name__}: {exc}")
        if failed:
            for p in sorted(tmp.rglob("*.log")):
                if p.stat().st_size:
                    log(f"--- {p.name} (tail) ---\n{p.read_text(errors='replace')[-3000:]}")
        shutil.rmtree(tmp, ignore_errors=True)
    result.update(
        {
            "cpu_count": os.cpu_count(),
            "loadavg_1m_start": round(load_start, 2),
            "loadavg_1m_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        }
    )
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0
