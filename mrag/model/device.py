"""Which torch device to compute on: ``"auto"`` (the default) is CUDA when torch sees a GPU,
else the CPU; any other name is used as given."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

AUTO_DEVICE = "auto"


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(
    device: str | torch.device | None, *, cuda_available: Callable[[], bool] = _cuda_available
) -> str:
    """The device ``device`` names: ``None`` and ``"auto"`` become ``"cuda"`` when
    ``cuda_available()`` says a GPU is usable, else ``"cpu"``; anything else is kept."""
    if device is None or str(device).strip().lower() == AUTO_DEVICE:
        return "cuda" if cuda_available() else "cpu"
    return str(device)
