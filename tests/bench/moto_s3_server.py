#!/usr/bin/env python
"""moto's ``ThreadedMotoServer`` on 127.0.0.1 (a free port), in a process of its own, for bench_s3.

    python tests/bench/moto_s3_server.py

Prints ``PORT <n>`` on stdout once listening, then serves until SIGTERM / SIGINT or until its
stdin is closed (the parent went away). moto keeps every bucket in this process's memory (and
temp files for objects over ~5 MiB); all of it is gone when the process ends. Request logging is
off so that a load test does not spend its time writing log lines.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType


def main() -> int:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF, i.e. when the parent closes the pipe or dies
        done.set()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"PORT {port}", flush=True)
    sys.stdout = sys.stderr  # nothing else may go to the pipe the parent stops reading
    threading.Thread(target=watch_stdin, daemon=True).start()
    while not done.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
