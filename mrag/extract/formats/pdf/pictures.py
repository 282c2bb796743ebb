"""Pictures of a PDF page through pypdf: found in the page's XObjects (forms and annotation
appearances too) and inline images, each decoded on its own so a bad stream costs that picture
only. Sizes are read from the image dictionary before decoding, so a decompression bomb is refused
unread; a picture pypdf cannot decode is handed to PDFium (:mod:`.stages`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import UnidentifiedImageError
from pypdf.generic import DictionaryObject, IndirectObject, StreamObject

from mrag.extract.document import (
    ExtractedImage,
    ExtractionLimits,
)
from mrag.extract.formats.pdf.pdfium import (
    page_picture,
)
from mrag.images import to_rgb
from mrag.images.decode import error_words

# Form XObjects may nest; real documents go two or three deep, hostile ones forever.
_MAX_FORM_DEPTH = 12


@dataclass
class RawImage:
    key: str | list[str]
    stream: DictionaryObject | None
    label: str


def int_value(value: Any) -> int | None:
    try:
        return int(value.get_object() if isinstance(value, IndirectObject) else value)
    except (TypeError, ValueError, AttributeError):
        return None


def _walk_xobject_images(
    resources_owner: Any, ancestors: list[str], seen_forms: set[int], depth: int
) -> Iterator[tuple[list[str], StreamObject]]:
    resources = resources_owner.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    if not isinstance(resources, DictionaryObject):
        return
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not isinstance(xobjects, DictionaryObject):
        return
    for name in list(xobjects.keys()):
        entry = xobjects[name]
        stream = entry.get_object() if isinstance(entry, IndirectObject) else entry
        if not isinstance(stream, StreamObject):
            continue
        subtype = stream.get("/Subtype")
        if subtype == "/Image":
            yield [*ancestors, str(name)], stream
        elif subtype == "/Form" and depth < _MAX_FORM_DEPTH and id(stream) not in seen_forms:
            seen_forms.add(id(stream))
            yield from _walk_xobject_images(stream, [*ancestors, str(name)], seen_forms, depth + 1)


def object_key(stream: DictionaryObject) -> tuple[int, int] | None:
    reference = stream.indirect_reference
    if reference is None:
        return None
    return (reference.idnum, reference.generation)


def _size_problem(stream: DictionaryObject, max_pixels: int) -> str | None:
    """Why an image stream must not be decoded, judged from its dictionary alone."""
    for label, candidate in (("image", stream), ("soft mask", stream.get("/SMask"))):
        if candidate is None:
            continue
        candidate = candidate.get_object()
        if not isinstance(candidate, DictionaryObject):
            continue
        width, height = int_value(candidate.get("/Width")), int_value(candidate.get("/Height"))
        if width is None or height is None or width <= 0 or height <= 0:
            return f"{label} has no valid /Width and /Height ({width}x{height})"
        if width * height > max_pixels:
            return (
                f"{label} is {width}x{height} = {width * height:,} pixels, over the limit of "
                f"{max_pixels:,}; not decoded"
            )
    return None


def image_name(key: str | list[str]) -> str:
    parts = [key] if isinstance(key, str) else key
    return "/".join(part.lstrip("/") for part in parts)


def _annotation_appearances(page: Any) -> Iterator[tuple[str, StreamObject]]:
    """Appearance streams that a viewer draws for the page's visible annotations."""
    annotations = page.get("/Annots")
    annotations = annotations.get_object() if annotations is not None else None
    if not isinstance(annotations, list):
        return
    for number, entry in enumerate(annotations):
        annotation = entry.get_object() if isinstance(entry, IndirectObject) else entry
        if not isinstance(annotation, DictionaryObject):
            continue
        if (int_value(annotation.get("/F", 0)) or 0) & 2:  # the Hidden flag
            continue
        candidates: list[Any] = []
        appearance = annotation.get("/AP")
        appearance = appearance.get_object() if appearance is not None else None
        if isinstance(appearance, DictionaryObject) and "/N" in appearance:
            normal = appearance["/N"].get_object()
            if isinstance(normal, StreamObject):
                candidates.append(normal)
            elif isinstance(normal, DictionaryObject):
                state = annotation.get("/AS")
                chosen = normal.get(state) if state is not None else None
                candidates.extend([chosen] if chosen is not None else list(normal.values()))
        characteristics = annotation.get("/MK")
        characteristics = characteristics.get_object() if characteristics is not None else None
        if isinstance(characteristics, DictionaryObject) and "/I" in characteristics:
            candidates.append(characteristics["/I"])  # a push button's icon
        for candidate in candidates:
            stream = candidate.get_object()
            if isinstance(stream, StreamObject):
                yield f"annot{number}", stream


def page_images(page: Any, number: int, problems: list[str]) -> list[RawImage]:
    """Every picture a page shows: XObject images (inside forms and annotations too), then inline
    images. Tiling-pattern tiles and Type 3 glyph bitmaps are texture and lettering, not figures,
    so they are not collected."""
    found: list[RawImage] = []
    seen: set[int] = set()

    def add(key: list[str], stream: StreamObject) -> None:
        if id(stream) in seen:
            return
        seen.add(id(stream))
        found.append(
            RawImage(key=key[0] if len(key) == 1 else key, stream=stream, label=image_name(key))
        )

    try:
        for key, stream in _walk_xobject_images(page, [], set(), 0):
            add(key, stream)
        for name, appearance in _annotation_appearances(page):
            if appearance.get("/Subtype") == "/Image":
                add([name], appearance)
            else:
                for key, stream in _walk_xobject_images(appearance, [name], set(), 1):
                    add(key, stream)
    except Exception as exc:
        problems.append(f"page {number} images: cannot list XObjects ({type(exc).__name__}: {exc})")
    if _may_have_inline_images(page):
        try:
            listed = page.images.keys()  # keys, not the ImageFile objects iteration yields
            names = [key for key in listed if isinstance(key, str) and key[:1] == "~"]
        except Exception as exc:
            problems.append(
                f"page {number} inline images: cannot decode ({type(exc).__name__}: {exc})"
            )
            names = []
        found.extend(
            RawImage(key=name, stream=None, label=f"inline{name.strip('~')}") for name in names
        )
    return found


_INLINE_MARK = re.compile(rb"(?:^|\s)BI\s")


def _may_have_inline_images(page: Any) -> bool:
    # Listing inline images makes pypdf parse and decode the whole content stream again; a cheap
    # byte search first spares that for the vast majority of pages, which have none.
    try:
        contents = page.get_contents()
        return contents is not None and _INLINE_MARK.search(contents.get_data()) is not None
    except Exception:
        return True


def decode_picture(
    page: Any, item: RawImage, number: int, limits: ExtractionLimits, problems: list[str]
) -> ExtractedImage | None:
    where = f"page {number} image {item.label}"
    if item.stream is not None:
        refusal = _size_problem(item.stream, limits.max_pixels)
        if refusal is not None:
            problems.append(f"{where}: {refusal}")
            return None
    try:
        if item.stream is not None:
            # pypdf encodes each decoded picture to a file format and opens it again; stored
            # uncompressed, a PNG comes back the same, pixel for pixel, at a fraction of the cost.
            decoded = item.stream.decode_as_image({"compress_level": 0})
        else:
            decoded = page.images[item.key].image
        if decoded is None:
            raise ValueError("pypdf returned no image")
        width, height = decoded.size
        if width * height > limits.max_pixels:
            raise ValueError(f"decoded to {width}x{height}, over the pixel limit")
        rgb = to_rgb(decoded)
        rgb.load()
    except Exception as exc:
        raise Undecodable(decode_reason(exc)) from None
    return page_picture(rgb, number, f"p{number}-{item.label}")


class Undecodable(Exception):
    """pypdf could not decode a picture; PDFium may still draw it."""


def decode_reason(exc: Exception) -> str:
    """Why a picture could not be decoded, in words (no Python object reprs)."""
    if isinstance(exc, UnidentifiedImageError):
        return "the image data is not in a format Pillow reads"
    if "jbig2dec" in str(exc):
        return "JBIG2 image and the jbig2dec program is not installed (apt-get install jbig2dec)"
    return error_words(exc)


def stream_size(stream: DictionaryObject | None) -> tuple[int, int] | None:
    if stream is None:
        return None
    width, height = int_value(stream.get("/Width")), int_value(stream.get("/Height"))
    return (width, height) if width and height else None
