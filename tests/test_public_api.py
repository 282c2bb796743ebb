"""``mrag``'s public names: one list, three places that must agree, each name resolving."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import mrag

INIT = Path(mrag.__file__)
REPO = INIT.parents[1]

#: What README.md imports from ``mrag`` (and the errors a caller catches).
README_NAMES = {
    "JinaClipModel",
    "JinaClipEmbeddings",
    "Pipeline",
    "ingest",
    "ingest_on_ray",
    "MultimodalRetriever",
    "MragVectorStore",
    "rag_prompt",
    "build_messages",
    "StoreError",
    "WorkerError",
    "ImageError",
    "PipelineError",
    "CheckpointError",
}


def _declared() -> tuple[list[str], dict[str, str], dict[str, str]]:
    """``__all__``, the lazy-import table and the TYPE_CHECKING imports, read from the source."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    names: list[str] = []
    table: dict[str, str] = {}
    typing_imports: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
            if target == "__all__":
                names = ast.literal_eval(node.value)
            elif target == "_EXPORTS":
                table = ast.literal_eval(node.value)
        elif isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
                for alias in statement.names:
                    typing_imports[alias.asname or alias.name] = str(statement.module)
    return names, table, typing_imports


def test_all_the_table_and_the_type_checking_imports_agree() -> None:
    names, table, typing_imports = _declared()
    assert names and table and typing_imports
    assert len(names) == len(set(names))
    assert set(names) - {"__version__"} == set(table)
    assert typing_imports == table  # same names, each from the same module


def test_the_readme_names_are_exported() -> None:
    assert set(mrag.__all__) >= README_NAMES
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    imported = set()
    for line in readme.splitlines():
        if line.startswith("from mrag import "):
            imported |= {name.strip() for name in line.split("import", 1)[1].split(",")}
    assert imported and imported <= set(mrag.__all__)


def test_every_name_resolves_to_what_its_module_defines_with_a_docstring() -> None:
    _, table, _ = _declared()
    for name, module in table.items():
        value = getattr(mrag, name)
        assert value is getattr(importlib.import_module(module), name)
        assert not inspect.ismodule(value), name
        assert inspect.getdoc(value), f"mrag.{name} has no docstring"
        # Defined where the table says, or re-exported by that module's package on purpose.
        assert getattr(value, "__module__", "").startswith(module), (name, value.__module__)
    assert sorted(dir(mrag)) == sorted(mrag.__all__)


def test_from_mrag_import_ingest_is_the_function_whatever_was_imported_before() -> None:
    # A fresh interpreter: modules imported first may set attributes on the package.
    script = """
import mrag.ingestion.progress, mrag.ingestion.run, mrag.ingestion.ray, mrag.cli
import mrag.commands.ingest, mrag.messages, mrag.vectorstore, mrag.store
from mrag import ingest, ingest_on_ray, rag_prompt, MragVectorStore
from mrag.ingestion.run import ingest as defined
import inspect
assert ingest is defined, ingest
assert inspect.isfunction(ingest_on_ray) and inspect.isfunction(rag_prompt)
assert inspect.isclass(MragVectorStore)
print("ok")
"""
    process = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "ok"


def test_the_old_import_paths_keep_working() -> None:
    from mrag.messages import build_messages, rag_prompt
    from mrag.vectorstore import MragVectorStore

    assert rag_prompt is mrag.rag_prompt and build_messages is mrag.build_messages
    assert MragVectorStore is mrag.MragVectorStore


def test_import_mrag_loads_no_model_code() -> None:
    process = subprocess.run(
        [sys.executable, "-c", "import sys, mrag; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert process.stdout.strip() == "False"
