"""The layers of ``vault/`` point one way, and no modules import each other in a circle.

Read from the source (imports at module level, outside ``if TYPE_CHECKING:``), so a change that
adds a back arrow or an import cycle fails here before anyone has to notice it in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VAULT = ROOT / "vault"

# Lower layers first; a package may import its own layer or those below, never above.
LAYERS: list[set[str]] = [
    {
        "vault.domain",
        "vault.errors",
        "vault.fsio",
        "vault.allocator",
        "vault.settings",
        "vault.db",
        "vault.mail",
    },
    {"vault.crypto", "vault.catalog"},
    {"vault.storage", "vault.authz", "vault.audit"},
    {"vault.keys"},
    {"vault.core"},
    {"vault.services"},
    {"vault.api", "vault.web"},
    {"vault.cli"},
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from vault.x import y`` may import the module vault.x.y.
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m == "vault" or m.startswith("vault.")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in VAULT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in _top_level_imports(path) if m in modules and m != name}
    return graph


def _layer(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if any(module == pkg or module.startswith(pkg + ".") for pkg in layer):
            return i
    return None


def test_every_package_has_a_layer() -> None:
    unplaced = sorted(m for m in _graph() if m != "vault" and _layer(m) is None)
    assert unplaced == []


def test_no_import_points_up_the_layers() -> None:
    back = []
    for module, imports in _graph().items():
        low = _layer(module)
        for target in imports:
            high = _layer(target)
            if low is not None and high is not None and high > low:
                back.append(f"{module} -> {target}")
    assert back == []


def test_no_import_cycle() -> None:
    graph = _graph()
    # Package faces re-export their modules; an edge into a package's own module from its
    # __init__ is not a cycle of behaviour, so __init__ → own submodule edges are kept but a
    # submodule importing its package face counts as importing that face.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


@pytest.mark.parametrize("module", ["vault.audit.scope", "vault.audit.records"])
def test_audit_scope_knows_no_database_or_blob_store(module: str) -> None:
    path = VAULT / Path(*module.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
        n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    }
    assert not {n for n in names if n.startswith(("sqlalchemy", "vault.storage"))}


def test_crypto_and_storage_see_no_policy_or_request() -> None:
    graph = _graph()
    for module, imports in graph.items():
        if module.startswith(("vault.crypto", "vault.storage")):
            assert not {
                m for m in imports if m.startswith(("vault.authz", "vault.audit", "vault.keys"))
            }, module
