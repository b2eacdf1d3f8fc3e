"""infra/ (issue 11): the compose file runs two Kinko nodes behind a load balancer with every
service health-checked and no secret in the environment; the image runs unprivileged and is
healthy only when ready.  hadolint and checkov check the same files in CI (.ci/run)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"

# Environment names that would carry a secret if given a literal value.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|CREDENTIAL|ACCESS_KEY|_KEY$", re.I)
# A URL with a password in it (scheme://user:password@host).
URL_WITH_PASSWORD = re.compile(r"://[^/@:\s]+:[^/@\s]+@")


KEY_FILES = ("KINKO_MASTER_KEY_FILE", "KINKO_AUDIT_SIGNING_KEY_FILE", "KINKO_SERVER_KEY_FILE")


def compose() -> dict[str, Any]:
    data = yaml.safe_load((INFRA / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def kinko_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in data["services"].items()
        if (svc.get("build") or {}).get("dockerfile") == "infra/Dockerfile"
    }


def test_two_kinko_nodes_share_the_database_bucket_and_keys_but_not_a_data_directory() -> None:
    data = compose()
    nodes = kinko_services(data)
    replicas = sum(int((svc.get("deploy") or {}).get("replicas", 1)) for svc in nodes.values())
    assert replicas >= 2, nodes.keys()
    envs = [environment(svc) for svc in nodes.values()]
    for key in ("KINKO_DATABASE_URL", "KINKO_AUDIT_DATABASE_URL", "KINKO_S3_BUCKET"):
        assert len({env[key] for env in envs}) == 1, key
    for env in envs:
        assert env["KINKO_DATABASE_URL"].startswith("postgresql")
        assert env["KINKO_STORAGE"] == "s3"
        for key in KEY_FILES:
            assert env[key].startswith("/var/lib/kinko-keys/"), key
    data_volumes = [
        next(v for v in svc["volumes"] if v.endswith(":/var/lib/kinko")) for svc in nodes.values()
    ]
    assert len(set(data_volumes)) == len(data_volumes), "two nodes on one data directory"


def test_the_proxy_balances_over_every_node_by_readiness() -> None:
    data = compose()
    caddyfile = (INFRA / "Caddyfile").read_text()
    for name in kinko_services(data):
        assert f"{name}:8700" in caddyfile, name
    assert "health_uri /readyz" in caddyfile
    assert "proxy" in data["services"]
    mounts = data["services"]["proxy"]["volumes"]
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in mounts


def test_every_service_has_a_healthcheck() -> None:
    for name, svc in compose()["services"].items():
        check = svc.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check.get("test"), name
        assert not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
    for svc in kinko_services(compose()).values():
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])


def test_no_secret_is_an_environment_literal() -> None:
    data = compose()
    declared = data.get("secrets") or {}
    for name, spec in declared.items():
        assert set(spec) == {"file"}, f"secret {name} must come from a file"
        assert spec["file"].startswith("./secrets/"), name
    for name, svc in data["services"].items():
        mounted = set(svc.get("secrets") or [])
        assert mounted <= set(declared), name
        for key, value in environment(svc).items():
            assert not URL_WITH_PASSWORD.search(value), f"{name}: {key} holds a password"
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                pytest.fail(f"{name}: {key} is a secret given as a literal")
            if key.endswith("_FILE") and value.startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in mounted, f"{name}: {key}"


def test_secrets_are_made_outside_the_repository() -> None:
    ignored = (INFRA.parent / ".gitignore").read_text().splitlines()
    assert "infra/secrets/" in ignored
    script = (INFRA / "make-secrets.sh").read_text()
    for name in compose()["secrets"]:
        assert f"secrets/{name}" in script, name


def test_the_image_runs_unprivileged_on_a_slim_base_and_is_healthy_only_when_ready() -> None:
    lines = [
        line.strip()
        for line in (INFRA / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases
    assert all("slim" in base for base in bases), bases
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "no USER"
    assert users[-1].split(":")[0] not in ("0", "root")
    health = " ".join(lines[lines.index(next(x for x in lines if x.startswith("HEALTHCHECK"))) :])
    assert "/readyz" in health
    assert lines[-1].startswith("ENTRYPOINT")
    assert "serve" in lines[-1]
