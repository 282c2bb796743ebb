"""What many test folders share: where things are, running mrag as a user does, the backends.

Importable as ``helpers`` from every test folder: pytest puts the folder of ``conftest.py`` (this
one) on ``sys.path``. Fixtures live in ``conftest.py``; generated documents and pictures in
``docgen.py``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from mrag.store import Store, StoreSettings

#: The repository root: subprocesses import ``mrag`` from here, whatever is installed.
REPO = Path(__file__).resolve().parents[1]
#: ``../shared`` beside the repository: present on development machines, absent in a fresh clone.
SHARED = REPO.parent / "shared"
#: Real documents under ``../shared``.
CORPUS = SHARED / "corpus"

#: Every store backend: the embedded default (Qdrant Edge), and the server code path through
#: qdrant-client's local mode, on disk and in memory.
BACKENDS = ("edge", "local", "memory")


def shared_path(*parts: str) -> Path:
    """A path under ``../shared``, skipping the calling test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment plus ``extra``, with ``PYTHONPATH`` at this checkout (for subprocesses)."""
    return {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}


def run_python(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh interpreter importing this checkout's ``mrag``; output captured.

    ``env`` adds to (or overrides) the current environment.
    """
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=python_env(env),
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 300),
        **kwargs,
    )


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess[str]:
    """``python -m mrag ARGS`` as a user runs it (see :func:`run_python`)."""
    return run_python("-m", "mrag", *args, cwd=cwd, env=env, **kwargs)


def open_backend(kind: str, folder: Path, collection: str = "docs") -> Store:
    """A store on one of :data:`BACKENDS`, its files (if any) under ``folder / kind``."""
    if kind == "edge":
        return Store.open(StoreSettings(path=str(folder / kind), collection=collection))
    if kind == "local":
        return Store.from_client(QdrantClient(path=str(folder / kind)), collection)
    if kind == "memory":
        return Store.from_client(QdrantClient(location=":memory:"), collection)
    raise ValueError(f"unknown backend {kind!r}")


def store_contents(store: Store | Path) -> dict:
    """Everything a store holds, to compare two stores: ``points`` (id -> payload and vector)
    and ``sources`` (source -> content hash). A path opens the embedded store there."""
    if isinstance(store, Path):
        with Store.open(StoreSettings(path=str(store))) as opened:
            return store_contents(opened)
    points = {
        found.id: (found.payload, next(iter(found.vectors.values())))
        for found in store.iter_points(with_vectors=True)
    }
    return {"points": points, "sources": {r.source: r.content_hash for r in store.sources()}}


def assert_same_contents(actual: dict, expected: dict, atol: float) -> None:
    """Two :func:`store_contents`: the same sources, ids and payloads; vectors within ``atol``."""
    assert actual["sources"] == expected["sources"]
    assert actual["points"].keys() == expected["points"].keys()
    for point_id, (payload, vector) in expected["points"].items():
        assert actual["points"][point_id][0] == payload
        np.testing.assert_allclose(actual["points"][point_id][1], vector, atol=atol)


@contextlib.contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn  # the serve extra

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
