"""What shaped a source's extraction, so that a run can tell when reading it again would give
more (or other) points than the store holds.

Each source's ledger record carries a signature (:attr:`mrag.store.SourceRecord.extraction`):
mrag's :data:`EXTRACTION_VERSION`, the pipeline settings that change points, and, only where they
mattered for that file, the state of OCR and of optional decoders. A born-digital PDF whose every
page has a text layer does not depend on OCR, so installing Tesseract leaves it "unchanged"; a
scan read without OCR records that, and is read again once OCR can run.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mrag.extract.document import ParsedDocument
from mrag.ingestion.pipeline import Pipeline

#: Raised whenever a change to mrag's readers makes files give other points than before: every
#: source recorded with another version is read again.
EXTRACTION_VERSION = 1

#: OCR states in which nothing is read from pixels.
_NO_OCR = ("off", "unavailable")


@dataclass(frozen=True)
class ExtractionSignature:
    """What shapes extraction in this run.

    ``chunking`` and ``images`` spell out the pipeline settings that change points; ``ocr`` is
    "off" (``enabled = false``), "unavailable" (Tesseract or a language missing) or the
    languages and resolution OCR reads with; ``jbig2dec`` says whether pypdf can decode JBIG2
    images (scans are often JBIG2-compressed).
    """

    chunking: str
    images: str
    ocr: str
    jbig2dec: bool

    @classmethod
    def of(cls, pipeline: Pipeline, ocr_missing: str | None) -> ExtractionSignature:
        """This run's signature; ``ocr_missing`` is why OCR cannot run (None: it can)."""
        chunking, images, ocr = pipeline.chunking, pipeline.images, pipeline.ocr
        if ocr.enabled is False:
            ocr_state = "off"
        elif ocr_missing is not None:
            ocr_state = "unavailable"
        else:
            ocr_state = f"{'+'.join(ocr.languages)}@{ocr.dpi}dpi"
        return cls(
            chunking=f"max_tokens={chunking.max_tokens} overlap_tokens={chunking.overlap_tokens}",
            images=f"min_side={images.min_side} max_aspect={images.max_aspect:g} "
            f"max_per_document={images.max_per_document}",
            ocr=ocr_state,
            jbig2dec=shutil.which("jbig2dec") is not None,
        )

    def record_for(self, document: ParsedDocument) -> dict[str, Any]:
        """The signature to store with ``document``'s source: what its extraction depended on."""
        recorded: dict[str, Any] = {"version": EXTRACTION_VERSION}
        if any(page.text.strip() for page in document.pages):
            recorded["chunking"] = self.chunking
        if document.images or document.filtered:
            recorded["images"] = self.images
        if _ocr_mattered(document):
            recorded["ocr"] = self.ocr
        if any("jbig2" in problem.lower() for problem in document.problems):
            recorded["jbig2dec"] = self.jbig2dec
        return recorded

    def reread_reason(self, recorded: Mapping[str, Any]) -> str | None:
        """Why a source extracted under ``recorded`` would come out differently now; None when
        it would not. A record from before signatures existed (empty) is taken as current:
        re-reading a whole store on upgrade would surprise more than help (``--force`` does)."""
        if not recorded:
            return None
        if recorded.get("version") != EXTRACTION_VERSION:
            return "mrag's extraction has changed"
        if recorded.get("chunking", self.chunking) != self.chunking:
            return "the pipeline's chunking settings changed"
        if recorded.get("images", self.images) != self.images:
            return "the pipeline's image settings changed"
        if "ocr" in recorded:
            reason = _ocr_change(str(recorded["ocr"]), self.ocr)
            if reason:
                return reason
        if recorded.get("jbig2dec", self.jbig2dec) != self.jbig2dec:
            return "jbig2dec is now installed" if self.jbig2dec else "jbig2dec is gone"
        return None


def _ocr_mattered(document: ParsedDocument) -> bool:
    """Whether OCR did or could have changed this file's text: pictures of text, pages read
    from pixels, or pages left without text."""
    return (
        document.kind == "image"
        or bool(document.no_text_pages)
        or any(page.ocr_confidence is not None for page in document.pages)
    )


def _ocr_change(before: str, now: str) -> str | None:
    if before in _NO_OCR and now in _NO_OCR:
        return None
    if before in _NO_OCR:
        return "OCR is now available"
    if now == "off":
        return "OCR is now off"
    if now == "unavailable":
        return "OCR is no longer available"
    return "the OCR languages or resolution changed" if before != now else None
