"""How the store is built: an interface that knows no backend, one seam per outside system."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mrag.store

PACKAGE = Path(mrag.store.__file__).resolve().parents[1]
BACKENDS = {"mrag.store.edge", "mrag.store.server", "mrag.store.bm25"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports, at the top or inside functions, as absolute names."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                # ``from package import module`` imports the module; anything else, the package.
                full = f"{base}.{alias.name}"
                names.add(full if full in MODULES else base)
    return names


def _internal(module: str) -> set[str]:
    return {name for name in _imports(module) if name in MODULES and name != module}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for name in _internal(todo.pop()) - seen:
            seen.add(name)
            todo.append(name)
    return seen


def _outside(prefixes: tuple[str, ...]) -> set[str]:
    """The mrag modules that import any of ``prefixes``."""
    return {
        module
        for module in MODULES
        if any(name == p or name.startswith(p + ".") for name in _imports(module) for p in prefixes)
    }


def test_the_interface_imports_no_backend() -> None:
    reached = _reachable("mrag.store.interface")
    assert not reached & (BACKENDS | {"mrag.store.factory", "mrag.store.transfer"}), reached
    assert not {name for name in reached if name.startswith("mrag.ingestion")}


@pytest.mark.parametrize("half", ["mrag.store", "mrag.model"])
def test_no_import_cycles(half: str) -> None:
    for module in (name for name in MODULES if name == half or name.startswith(half + ".")):
        assert module not in _reachable(module), f"{module} imports itself through a cycle"


def test_one_seam_per_outside_system() -> None:
    assert _outside(("qdrant_client", "qdrant_edge")) <= BACKENDS
    assert all(name.startswith("mrag.model.") for name in _outside(("huggingface_hub",)))


def test_naming_a_store_loads_no_engine() -> None:
    code = (
        "import sys, mrag.store;"
        "print(sorted(m for m in ('torch', 'qdrant_client', 'qdrant_edge', 'huggingface_hub')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_the_factory_opens_the_backends() -> None:
    from mrag.store.server import ServerStore

    with mrag.store.Store.memory("demo") as store:
        assert isinstance(store, ServerStore)
        assert store.collection == "demo"
    assert mrag.store.Store.open is mrag.store.open_store
