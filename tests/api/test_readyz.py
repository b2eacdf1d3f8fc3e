"""``GET /readyz``: 200 while the catalog, the audit store and the blob store answer, 503 naming
the one that does not — here a real S3 endpoint (moto over HTTP) that goes away."""

from __future__ import annotations

import secrets
from pathlib import Path

import boto3
import httpx
from conftest import KinkoServer, serving
from moto.server import ThreadedMotoServer
from s3_support import aws_env_for_subprocess


def test_ready_on_the_embedded_default(server: KinkoServer) -> None:
    resp = httpx.get(server.base_url + "/readyz")
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ready",
        "checks": {"catalog": "ok", "audit": "ok", "blobs": "ok"},
    }
    # Liveness stays what it was.
    assert httpx.get(server.base_url + "/healthz").json() == {"status": "ok"}


def test_not_ready_when_the_blob_store_goes_away(tmp_path: Path) -> None:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    aws = aws_env_for_subprocess()
    bucket = "kinko-readyz-" + secrets.token_hex(4)
    boto3.session.Session(
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        region_name=aws["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    env = {
        "KINKO_STORAGE": "s3",
        "KINKO_S3_BUCKET": bucket,
        "KINKO_S3_ENDPOINT_URL": endpoint,
        **aws,
    }
    stopped = False
    try:
        with serving(tmp_path, **env) as srv:
            assert httpx.get(srv.base_url + "/readyz").status_code == 200
            moto.stop()
            stopped = True
            resp = httpx.get(srv.base_url + "/readyz", timeout=30)
            assert resp.status_code == 503
            body = resp.json()
            assert body["error"]["code"] == "not_ready"
            assert "blobs" in body["error"]["message"]
            assert body["checks"]["catalog"] == "ok"
            assert body["checks"]["audit"] == "ok"
            assert body["checks"]["blobs"] in ("unavailable", "timeout")
            # The node stays alive: liveness is not readiness.
            assert httpx.get(srv.base_url + "/healthz").status_code == 200
    finally:
        if not stopped:
            moto.stop()
