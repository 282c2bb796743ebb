"""The OpenMP spin setting: made before torch loads, never over the user's, and by ``ingest``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO

from mrag.model.openmp import SPIN_COUNT


def _python(code: str, **env: str) -> str:
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return done.stdout.strip().splitlines()[-1]


SET_THEN_IMPORT = (
    "import os; from mrag.model.openmp import spin_briefly as s; done = s(); import torch; "
    "print(done, os.environ.get('GOMP_SPINCOUNT'))"
)


def test_the_spin_is_set_before_torch_loads() -> None:
    assert _python(SET_THEN_IMPORT) == f"True {SPIN_COUNT}"


def test_the_users_setting_stays() -> None:
    assert _python(SET_THEN_IMPORT, OMP_WAIT_POLICY="PASSIVE") == "False None"
    assert _python(SET_THEN_IMPORT, GOMP_SPINCOUNT="5") == "False 5"


def test_it_is_not_set_once_torch_is_loaded() -> None:
    code = "import os, torch; from mrag.model.openmp import spin_briefly as s; "
    code += "print(s(), os.environ.get('GOMP_SPINCOUNT'))"
    assert _python(code) == "False None"


def test_the_ingest_command_sets_it_before_torch_loads(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    (tmp_path / "note.txt").write_text("Pumps move water uphill.\n")
    argv = ["ingest", str(tmp_path / "note.txt"), "--model", str(tiny_checkpoint)]
    argv += ["--qdrant-path", str(tmp_path / "store")]
    code = (
        "import os, sys\n"
        "from mrag.cli import main\n"
        "before = 'torch' in sys.modules\n"
        f"code = main({argv!r})\n"
        "print(before, code, os.environ.get('GOMP_SPINCOUNT'))\n"
    )
    assert _python(code) == f"False 0 {SPIN_COUNT}"


def test_ingest_from_python_sets_it_when_torch_is_not_loaded(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    (tmp_path / "note.txt").write_text("Pumps move water uphill.\n")
    code = (
        "import os, sys\n"
        "from mrag import Pipeline, Store, StoreSettings, ingest\n"
        "before = 'torch' in sys.modules\n"
        f"pipeline = Pipeline().override(model__name={str(tiny_checkpoint)!r})\n"
        f"store = Store.open(StoreSettings(path={str(tmp_path / 'store')!r}))\n"
        f"report = ingest([{str(tmp_path / 'note.txt')!r}], pipeline=pipeline, store=store)\n"
        "store.close()\n"
        "print(before, report.ok, os.environ.get('GOMP_SPINCOUNT'))\n"
    )
    assert _python(code) == f"False True {SPIN_COUNT}"
