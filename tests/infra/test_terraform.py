"""infra/terraform is valid Terraform for the AWS provider, by Terraform itself.

It needs the ``terraform`` binary and a local provider mirror (``KINKO_TF_PLUGIN_DIR``,
default ``/opt/tf-plugins``), as nothing is downloaded at test time.  Neither can be installed
with pip or Debian's packages, so without them the test is skipped (not failed, even with
KINKO_REQUIRE_ALL=1); checkov checks the same files in CI either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

TERRAFORM_DIR = Path(__file__).resolve().parents[2] / "infra" / "terraform"


def test_terraform_validates_the_aws_configuration(tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    plugins = Path(os.environ.get("KINKO_TF_PLUGIN_DIR", "/opt/tf-plugins"))
    if terraform is None or not (plugins / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip("needs terraform and a local mirror of the hashicorp/aws provider")
    work = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, work)
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    env.pop("TF_CLI_CONFIG_FILE", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [terraform, *args, "-no-color"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    fmt = run("fmt", "-check", "-diff")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    init = run("init", "-backend=false", "-input=false", f"-plugin-dir={plugins}")
    assert init.returncode == 0, init.stdout + init.stderr
    valid = run("validate")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "The configuration is valid" in valid.stdout
