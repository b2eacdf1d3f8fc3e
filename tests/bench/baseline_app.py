"""Baseline for the benchmarks: plain uvicorn + Starlette serving files from one directory.

Run as ``python tests/bench/baseline_app.py --dir DIR --port PORT``. It serves
``GET /files/{name}`` with ``FileResponse`` (no auth, no crypto, no audit) and ``GET /healthz``,
with the same uvicorn settings as ``kinko serve`` (info logging, access log on), so the ratio
kinko/baseline isolates what Kinko itself costs per read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route


def build_app(root: Path) -> Starlette:
    root = root.resolve()
    names = {p.name for p in root.iterdir() if p.is_file()}

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def serve_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in names:  # fixed set of files: no path handling at all
            return JSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(root / name, media_type="application/octet-stream")

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/files/{name}", serve_file)],
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--port", required=True, type=int)
    args = ap.parse_args()
    uvicorn.run(
        build_app(args.dir),
        host="127.0.0.1",
        port=args.port,
        log_level="info",
        access_log=True,
    )


if __name__ == "__main__":
    main()
