"""Text hygiene at the extraction boundary: what any reader hands on is clean Unicode.

Real text layers carry lone surrogates (broken font maps), NULs and other control characters,
byte-order marks and private-use code points. None of it means anything to a reader, all of it
breaks something downstream (the tokenizer rejects lone surrogates, JSON encoders and LLM prompts
choke on NULs). Every format reader passes its text through :func:`clean_text`; a page whose text
layer is mostly such debris (:func:`is_garbage`) is treated as having no text at all, so that OCR
can read it instead.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mrag.extract.document import ParsedDocument

# C0 and C1 controls except tab and newline, DEL, and invisible format characters that only get in
# the way of search (soft hyphen, zero-width space, word joiner, byte-order mark).
_DROP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b\u2060\ufeff\ufffe\uffff]")
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x85]")

#: A page is garbage when more than this share of its non-space characters is debris.
GARBAGE_SHARE = 0.3
#: Below this many non-space characters a page is too short to judge and is kept as it is.
_MIN_JUDGED = 20


def _pair_surrogates(text: str) -> str:
    """Join surrogate pairs into their code point and drop the lone halves."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    raw = text.encode("utf-16-le", "surrogatepass")
    return raw.decode("utf-16-le", "replace").replace("\ufffd", "")


def clean_text(text: str) -> str:
    """Clean Unicode: no lone surrogates, no control characters but tab and newline, NFKC.

    Line breaks of every kind become ``\\n``. NFKC folds the compatibility forms PDFs are full of
    (ligatures such as "ﬁ", full-width letters, non-breaking spaces) into what a user types.
    """
    text = _pair_surrogates(text)
    text = _LINE_BREAKS.sub("\n", text)
    text = unicodedata.normalize("NFKC", text)
    return _DROP.sub("", text)


def _is_debris(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    category = unicodedata.category(ch)
    # Cc control, Cs surrogate, Co private use, Cn unassigned; U+FFFD is a decoder's replacement.
    return category in ("Cc", "Cs", "Co", "Cn") or ch == "\ufffd"


def garbage_share(text: str) -> float:
    """The share of non-space characters that are debris (see :data:`GARBAGE_SHARE`)."""
    judged = [ch for ch in text if not ch.isspace()]
    if not judged:
        return 0.0
    return sum(1 for ch in judged if _is_debris(ch)) / len(judged)


def is_garbage(text: str) -> bool:
    """Whether a raw text layer is mostly debris and should count as no text at all."""
    judged = sum(1 for ch in text if not ch.isspace())
    return judged >= _MIN_JUDGED and garbage_share(text) > GARBAGE_SHARE


def clean_document(document: ParsedDocument) -> None:
    """Clean every text a reader extracted, in place: pages, headings, image texts, problems.

    A paged document's page whose text layer is garbage keeps its place with no text and is
    added to ``document.no_text_pages``, with the pages that had no text layer at all.
    """
    garbage: list[int] = []
    for page in document.pages:
        if is_garbage(page.text):
            if page.page is not None:
                garbage.append(page.page)
            page.text = ""
        else:
            page.text = clean_text(page.text)
        page.headings = [heading for heading in map(clean_text, page.headings) if heading.strip()]
    for image in document.images:
        image.context = clean_text(image.context)
        image.name = clean_text(image.name)
        if image.alt_text is not None:
            image.alt_text = clean_text(image.alt_text) or None
    document.problems = [clean_text(problem) for problem in document.problems]
    if garbage:
        listed = ", ".join(map(str, garbage[:10])) + (" ..." if len(garbage) > 10 else "")
        document.problems.append(
            f"{len(garbage)} page{'s' if len(garbage) > 1 else ''} ({listed}): the text layer is "
            "mostly control or private-use characters (a broken font map?); read as no text"
        )
        document.no_text_pages = sorted(set(document.no_text_pages) | set(garbage))
