"""How long torch's idle OpenMP threads spin before they sleep, in a process that shares its cores.

After each parallel region, libgomp (the OpenMP runtime of torch's Linux wheels) keeps its
threads spinning for ``GOMP_SPINCOUNT`` iterations (300,000 by default) in case more work comes
at once. That suits a process that has the cores to itself. An ingestion does not: its parser
workers (and their Tesseract processes) run beside the model, and the model's spinning threads
take the cores away from them. Measured on 2 cores with a parse-bound folder (118 PDFs, tiny
model, in turns): ``workers = "auto"`` 28.6-28.8 s with the default spin, 27.4 s with 10,000,
27.0 s with no spin at all (``OMP_WAIT_POLICY=PASSIVE``); the full-size model's towers ran at
the same speed with 10,000 (vision batch 8 within 1%, text within 1.5%), and a batch-1 query
took 17% longer with no spin but not measurably longer with 10,000. Hence 10,000.

libgomp reads the setting once, when it loads with torch, so :func:`spin_briefly` must run
before torch is imported: the ``ingest`` command calls it first thing, and so does
:func:`mrag.ingest` (where it does nothing if the caller has loaded torch already).
"""

from __future__ import annotations

import os
import sys

#: Iterations an idle OpenMP thread spins before it sleeps (libgomp's default is 300,000).
SPIN_COUNT = 10_000

_USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def spin_briefly() -> bool:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` for this process and its children; whether
    it was set. Not when torch is already loaded (too late), nor when the user has set
    ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``."""
    if "torch" in sys.modules or any(name in os.environ for name in _USER_SETTINGS):
        return False
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    return True
