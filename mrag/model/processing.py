"""Image preprocessing for the vision tower, with Pillow and torch only."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mrag.model.config import PreprocessConfig


def resize_shortest_side(image: Image.Image, size: int) -> Image.Image:
    """Bicubic resize so that the shorter side is ``size``; the long side is truncated to int."""
    width, height = image.size
    if width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    if new_size == image.size:
        return image
    return image.resize(new_size, Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    left = round((width - size) / 2.0)
    top = round((height - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def preprocess_image(image: Image.Image, config: PreprocessConfig) -> torch.Tensor:
    """One RGB PIL image to a normalised (3, size, size) float32 tensor."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    image = center_crop(resize_shortest_side(image, config.image_size), config.image_size)
    array = np.asarray(image, dtype=np.float32) / 255.0
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    array = (array - mean) / std
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def preprocess_images(images: list[Image.Image], config: PreprocessConfig) -> torch.Tensor:
    """A batch of RGB PIL images to (N, 3, size, size) ``pixel_values``."""
    return torch.stack([preprocess_image(image, config) for image in images])
