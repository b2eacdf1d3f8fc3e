"""Listening sockets for ``kinko serve`` and ``kinko demo``, bound before anything starts."""

from __future__ import annotations

import errno
import socket

from vault.cli._common import fail

__all__ = ["listen", "url"]


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen on (host, port) before anything else happens, or refuse in one line.

    The socket is handed to uvicorn as it is.  Were a command to test the port and let uvicorn
    bind it later, another program could take it in between; and a uvicorn that fails to bind
    does so only after the vault was opened, with a page of log lines.  The demo would then even
    seed (and leave an ``auth.fail`` in the log of) whatever server answers there.  Port 0
    binds a free port; the real one is read back from the socket.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"cannot listen on {host!r}: {exc.strerror}")
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restart right after a stop must not wait for TIME_WAIT.  On Linux
        # this never lets two listeners share a port, so a busy port still fails below.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is already in use by another program; "
                "choose another with --port, or --port 0 for any free port"
            )
        fail(f"cannot listen on {host} port {port}: {exc.strerror or exc}")
    return sock


def url(host: str, port: int) -> str:
    """The http URL of a listening address (IPv6 literals in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
