"""The vision tower's input square cut from a picture, with Pillow only (no torch), so that parser
workers and the server can cut pictures down before they reach the model."""

from __future__ import annotations

from PIL import Image


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
    """The ``size`` x ``size`` square at the centre of ``image``."""
    width, height = image.size
    left = round((width - size) / 2.0)
    top = round((height - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def tower_square(image: Image.Image, size: int) -> Image.Image:
    """What the vision tower reads of an RGB ``image``: its shorter side scaled to ``size``, then
    the centre square. A square of that size comes out of it unchanged, so preprocessing a picture
    cut here gives the same pixels as preprocessing the picture itself."""
    return center_crop(resize_shortest_side(image, size), size)
