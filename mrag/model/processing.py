"""Image preprocessing for the vision tower, with Pillow and torch only."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mrag.model.config import PreprocessConfig
from mrag.model.crop import tower_square


def preprocess_image(image: Image.Image, config: PreprocessConfig) -> torch.Tensor:
    """One RGB PIL image to a normalised (3, size, size) float32 tensor."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    image = tower_square(image, config.image_size)
    array = np.asarray(image, dtype=np.float32) / 255.0
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    array = (array - mean) / std
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def preprocess_images(images: list[Image.Image], config: PreprocessConfig) -> torch.Tensor:
    """A batch of RGB PIL images to (N, 3, size, size) ``pixel_values``."""
    return torch.stack([preprocess_image(image, config) for image in images])
