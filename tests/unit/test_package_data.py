"""What an installed Kinko needs besides its Python modules is listed as package data.

The tests run from the source tree, where every file is present whatever pyproject.toml says;
a user's ``pip install .`` ships only what package-data names.  So every file of the folders
the server reads at run time must match one of those patterns.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_runtime_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns: dict[str, list[str]] = config["package-data"]
    dirs: dict[str, str] = config.get("package-dir", {})
    missing = []
    for package, globs in patterns.items():
        base = ROOT / dirs.get(package, package.replace(".", "/"))
        for path in base.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".py":
                continue
            rel = path.relative_to(base).as_posix()
            # setuptools' "*" does not cross a "/": a sub-folder needs a pattern of its own.
            if not any(fnmatch.fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs):
                missing.append(f"{package}: {rel}")
    assert not missing, "not shipped by pip install: " + ", ".join(missing)
