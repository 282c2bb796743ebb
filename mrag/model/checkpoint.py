"""Loading a checkpoint's weights strictly: every key present, with the right shape."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from mrag.model.hub import CheckpointError

#: Derived constants some checkpoints carry; the model recomputes them.
IGNORED_KEY_SUFFIXES = ("rope.freqs_cos", "rope.freqs_sin")


def load_state_dict_strict(module: nn.Module, weights_path: Path) -> None:
    """Copy ``model.safetensors`` into ``module``, refusing any missing, extra or misshapen key.

    Only safetensors are read, so loading never runs code from the file.
    """
    expected = module.state_dict()
    problems: list[str] = []
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            found = set(handle.keys())
            for key in sorted(found):
                if key.endswith(IGNORED_KEY_SUFFIXES):
                    continue
                if key not in expected:
                    problems.append(f"unexpected key {key}")
                    continue
                shape = tuple(handle.get_slice(key).get_shape())
                want = tuple(expected[key].shape)
                if shape != want:
                    problems.append(f"{key}: checkpoint has shape {shape}, model expects {want}")
            for key in sorted(set(expected) - found):
                problems.append(f"missing key {key} (shape {tuple(expected[key].shape)})")
            if problems:
                more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
                raise CheckpointError(f"{weights_path}: " + "; ".join(problems[:5]) + more)
            with torch.no_grad():
                for key, target in expected.items():
                    target.copy_(handle.get_tensor(key))
    except FileNotFoundError:
        raise CheckpointError(f"{weights_path}: file not found") from None
    except SafetensorError as exc:
        raise CheckpointError(f"{weights_path}: not a readable safetensors file ({exc})") from None
