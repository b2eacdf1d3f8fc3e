"""moto's KMS as a real HTTP server on loopback, for the AWS KMS key provider tests.

``kms_endpoint`` (module scope) starts a ``ThreadedMotoServer`` on 127.0.0.1 and points boto3
at it through the standard ``AWS_ENDPOINT_URL_KMS`` variable, with fake credentials, so that
nothing from the machine's AWS set-up can take part.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_UNSET = ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL")


def kms_env(endpoint: str) -> dict[str, str]:
    """The environment for a Kinko child process that talks to moto's KMS."""
    return {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL_KMS": endpoint}


@pytest.fixture(scope="module", name="kms_endpoint")
def _kms_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        for key, value in kms_env(url).items():
            mp.setenv(key, value)
        for key in _UNSET:
            mp.delenv(key, raising=False)
        try:
            yield url
        finally:
            server.stop()


def kms_client() -> Any:
    """A KMS client configured from the environment (as the provider builds its own)."""
    return boto3.session.Session().client("kms")


def new_kms_key(client: Any) -> str:
    return str(client.create_key(Description="kinko test")["KeyMetadata"]["KeyId"])
