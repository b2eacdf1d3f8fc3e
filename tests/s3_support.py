"""moto's S3 as a real HTTP server on loopback, for the S3 blob store tests.

Import the fixtures into a test module (``from s3_support import ...  # noqa: F401``); they
register under the names given in ``name=``:

* ``moto_endpoint`` (session): URL of a ``ThreadedMotoServer`` on 127.0.0.1, with fake AWS
  credentials in the environment for the whole session (restored afterwards); moto's state
  is reset and the server stopped at the end.
* ``s3_client`` (session): a boto3 S3 client on that endpoint.
* ``s3_bucket`` (function): a fresh, uniquely named bucket.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import httpx
import pytest

# Fake credentials and a fixed region, so that nothing from the machine's AWS set-up (profiles,
# instance roles, a real endpoint) can take part in a test.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_UNSET_AWS_ENV = ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def aws_env_for_subprocess() -> dict[str, str]:
    """The fake AWS environment, for a Kinko server started as a child process."""
    return dict(FAKE_AWS_ENV)


@pytest.fixture(scope="session", name="moto_endpoint")
def _moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAKE_AWS_ENV.items():
            mp.setenv(key, value)
        for key in _UNSET_AWS_ENV:
            mp.delenv(key, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        try:
            yield url
        finally:
            try:
                httpx.post(f"{url}/moto-api/reset", timeout=10)
            finally:
                server.stop()


def make_client(endpoint: str, **config: Any) -> Any:
    """A boto3 S3 client on ``endpoint`` (extra ``botocore.config.Config`` options allowed)."""
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, config=botocore.config.Config(**config)
    )


@pytest.fixture(scope="session", name="s3_client")
def _s3_client(moto_endpoint: str) -> Any:
    return make_client(moto_endpoint, retries={"max_attempts": 2, "mode": "standard"})


def new_bucket(client: Any) -> str:
    name = "kinko-test-" + secrets.token_hex(6)
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(name="s3_bucket")
def _s3_bucket(s3_client: Any) -> str:
    return new_bucket(s3_client)


def all_keys(client: Any, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [entry["Key"] for entry in page.get("Contents", [])]
    return keys


def open_uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
