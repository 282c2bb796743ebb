"""Shared pieces of the benchmarks: settings, timing, memory, machine description."""

from __future__ import annotations

import os
import platform
import re
import resource
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
#: How workloads are timed: the wall clock, or this process's CPU time (see :func:`use_cpu_time`).
_clock: Callable[[], float] = time.perf_counter


def use_cpu_time(enabled: bool) -> None:
    """Time workloads by the process's CPU time instead of the wall clock.

    With one compute thread on a machine where other work keeps more processes runnable than
    there are cores, the wall clock mostly measures the wait for a core. CPU time leaves that
    wait out (caches and memory bandwidth are still shared). It is only meaningful with one
    thread: idle threads spinning at a barrier would count as work.
    """
    global _clock
    _clock = time.process_time if enabled else time.perf_counter


def clock() -> float:
    """The time source of the benchmarks, in seconds."""
    return _clock()


DEFAULT_CACHE = Path(os.environ.get("MRAG_BENCH_CACHE", Path.home() / ".cache" / "mrag-bench"))


@dataclass
class Settings:
    """What one benchmark run measures and where it keeps its files."""

    preset: str = "full"
    quick: bool = False
    checkpoint: Path | None = None
    cache_dir: Path = DEFAULT_CACHE
    corpus: str | None = None
    threads: int | None = None
    points: tuple[int, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tiny(self) -> bool:
        return self.preset == "tiny"

    def checkpoint_folder(self) -> Path:
        """The random-weight checkpoint to benchmark, written once into the cache."""
        if self.checkpoint is not None:
            return self.checkpoint
        folder = self.cache_dir / self.preset
        if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
            from mrag.testing import write_random_checkpoint

            print(f"writing a random {self.preset} checkpoint to {folder} (once)", flush=True)
            write_random_checkpoint(folder, preset=self.preset)  # type: ignore[arg-type]
        return folder


@dataclass
class Timing:
    """Wall times of repeated runs of one workload, in seconds."""

    times: list[float]

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_s": round(self.best, 6),
            "median_s": round(self.median, 6),
            "reps": len(self.times),
        }


def measure(
    fn: Callable[[], object],
    *,
    warmup: int = 1,
    min_reps: int = 2,
    max_reps: int = 10,
    budget_s: float = 5.0,
) -> Timing:
    """Run ``fn`` ``warmup`` times, then repeatedly until ``budget_s`` is spent (within bounds).

    The best time is the figure to compare: on a shared machine other processes only ever add
    time, so the fastest run is the closest to what the hardware can do.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < max_reps and (len(times) < min_reps or spent < budget_s):
        start = clock()
        fn()
        elapsed = clock() - start
        times.append(elapsed)
        spent += elapsed
    return Timing(times)


def alternate(
    workloads: dict[str, Callable[[], object]],
    *,
    rounds: int = 3,
    warmup: int = 1,
    pause_s: float = 0.2,
) -> dict[str, Timing]:
    """Time several workloads in turns: one run of each per round, ``rounds`` rounds.

    On a shared machine the load changes from one minute to the next; runs that take turns see
    the same load, so the ratio of their best times means something even where each absolute
    figure does not. Each turn starts ``pause_s`` after the last one ended: a runtime's threads
    may spin for a while after a run (onnxruntime's slowed the next run of a small model 2.5x
    when it started at once, not at all 0.1 s later).
    """
    for fn in workloads.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(rounds):
        for name, fn in workloads.items():
            time.sleep(pause_s)
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: Timing(values) for name, values in times.items()}


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- memory ---------------------------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRss:
    """Peak resident memory over a block of code.

    Linux lets a process reset its high-water mark (``clear_refs`` 5); then ``VmHWM`` is the peak
    of this block alone. Where that is unavailable a sampling thread stands in.
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hwm = False

    def __enter__(self) -> PeakRss:
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
                refs.write("5")
            self._hwm = _vm_hwm_mb() is not None
        except OSError:
            self._hwm = False
        self.peak_mb = rss_mb()
        if not self._hwm:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        hwm = _vm_hwm_mb() if self._hwm else None
        self.peak_mb = max(self.peak_mb, rss_mb(), hwm or 0.0)


def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- the machine ----------------------------------------------------------------------------------


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = platform.processor() or platform.machine()
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        found = re.search(r"^Model name:\s*(.+)$", text, re.MULTILINE)
        if found:
            model = found.group(1).strip()
    except OSError:
        pass
    flags = cpu_flags()
    interesting = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"]
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "cpu_flags": [flag for flag in interesting if flag in flags],
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mkldnn_bf16": _bf16_supported(),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
    }


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (OSError, ValueError):
        return None


def _bf16_supported() -> bool:
    try:
        mkldnn = torch.ops.mkldnn
        return bool(torch.backends.mkldnn.is_available() and mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextmanager
def stopwatch(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall time of a block to ``timings[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
