"""Retrieved documents as chat-model input: text blocks and standard image blocks.

Chat models that see images take LangChain's standard content blocks
(``{"type": "text", "text": ...}`` and ``{"type": "image", "base64": ..., "mime_type": ...}``),
which each provider integration translates to its own wire format. Pictures are re-encoded here
at most :data:`DEFAULT_MAX_SIDE` px on their longest side and under :data:`DEFAULT_MAX_BYTES`
bytes, so one large figure cannot blow a context window or a request size limit.

Example:
    >>> from langchain_core.runnables import RunnablePassthrough
    >>> chain = {"documents": retriever, "question": RunnablePassthrough()} | rag_prompt() | model
    >>> chain.invoke("What does the wiring diagram show?")
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.runnables import RunnableLambda

from mrag.images import ImageError, load_image
from mrag.images.rendition import encode_rendition

#: Longest side of an image sent to a chat model; 768 px is what most vision models tile to.
DEFAULT_MAX_SIDE = 768
#: Largest encoded image sent (before base64, which adds a third).
DEFAULT_MAX_BYTES = 256 * 1024
#: Most images put in one message; further image hits are described by their text only.
DEFAULT_MAX_IMAGES = 6
#: Smallest side tried while shrinking an image to fit the byte cap.
_MIN_SIDE = 64

DEFAULT_SYSTEM_PROMPT = (
    "Answer the question using only the numbered context below: passages and images taken "
    "from the user's documents. Cite the numbers you rely on, like [2]. If the context does "
    "not hold the answer, say so."
)


def shrink_image(
    data: bytes, *, max_side: int = DEFAULT_MAX_SIDE, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[str, bytes] | None:
    """Re-encode image bytes within ``max_side`` pixels and ``max_bytes`` bytes.

    Returns (mime type, bytes), or None when the image cannot be decoded or does not fit even
    at :data:`_MIN_SIDE` px. The side shrinks by a quarter per try, so this ends in a few steps.
    """
    try:
        image = load_image(bytes(data))
    except ImageError:
        return None
    side = min(max_side, max(image.size))
    while True:
        mime_type, encoded = encode_rendition(image, side)
        if len(encoded) <= max_bytes:
            return mime_type, encoded
        if side <= _MIN_SIDE:
            return None
        side = max(_MIN_SIDE, int(side * 0.75))


def image_block(
    document: Document, *, max_side: int = DEFAULT_MAX_SIDE, max_bytes: int = DEFAULT_MAX_BYTES
) -> dict[str, Any] | None:
    """The standard image content block of an image hit, size-capped; None for other hits."""
    encoded = document.metadata.get("image_base64")
    if not encoded:
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, TypeError):
        return None
    shrunk = shrink_image(raw, max_side=max_side, max_bytes=max_bytes)
    if shrunk is None:
        return None
    mime_type, data = shrunk
    return {
        "type": "image",
        "base64": base64.b64encode(data).decode("ascii"),
        "mime_type": mime_type,
    }


def describe(document: Document, number: int) -> str:
    """The heading of one context item: number, modality, source and page."""
    metadata = document.metadata
    modality = metadata.get("modality") or ("image" if metadata.get("image_base64") else "text")
    where = str(metadata.get("source") or "unknown source")
    if metadata.get("page") is not None:
        where += f", page {metadata['page']}"
    return f"[{number}] {modality} from {where}"


def context_blocks(
    documents: Sequence[Document],
    *,
    max_images: int = DEFAULT_MAX_IMAGES,
    max_side: int = DEFAULT_MAX_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[dict[str, Any]]:
    """Content blocks for retrieved documents, in order: a text block per document, followed
    by its image block for image hits (up to ``max_images`` of them)."""
    blocks: list[dict[str, Any]] = []
    images = 0
    for number, document in enumerate(documents, start=1):
        heading = describe(document, number)
        text = document.page_content.strip()
        block = None
        if images < max_images:
            block = image_block(document, max_side=max_side, max_bytes=max_bytes)
        if document.metadata.get("image_base64") and block is None:
            heading += " (image not attached)"
        blocks.append({"type": "text", "text": f"{heading}\n{text}" if text else heading})
        if block is not None:
            blocks.append(block)
            images += 1
    return blocks


def build_messages(
    question: str,
    documents: Sequence[Document],
    *,
    system: str | None = DEFAULT_SYSTEM_PROMPT,
    max_images: int = DEFAULT_MAX_IMAGES,
    max_side: int = DEFAULT_MAX_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[BaseMessage]:
    """A system message (unless ``system`` is None) and one human message holding the context
    blocks of ``documents`` followed by the question."""
    content: list[str | dict[str, Any]] = [{"type": "text", "text": "Context:"}]
    content += context_blocks(
        documents, max_images=max_images, max_side=max_side, max_bytes=max_bytes
    )
    content.append({"type": "text", "text": f"Question: {question}"})
    messages: list[BaseMessage] = [SystemMessage(content=system)] if system else []
    messages.append(HumanMessage(content=content))
    return messages


def rag_prompt(
    *,
    system: str | None = DEFAULT_SYSTEM_PROMPT,
    max_images: int = DEFAULT_MAX_IMAGES,
    max_side: int = DEFAULT_MAX_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> RunnableLambda[Mapping[str, Any], ChatPromptValue]:
    """A runnable prompt: ``{"question": str, "documents": [Document, ...]}`` in, a chat prompt
    value (system + multimodal human message) out, ready to pipe into a chat model::

        chain = {"documents": retriever, "question": RunnablePassthrough()} | rag_prompt() | model
    """

    def to_prompt(inputs: Mapping[str, Any]) -> ChatPromptValue:
        if "question" not in inputs or "documents" not in inputs:
            raise KeyError("rag_prompt expects a mapping with 'question' and 'documents'")
        messages = build_messages(
            str(inputs["question"]),
            list(inputs["documents"]),
            system=system,
            max_images=max_images,
            max_side=max_side,
            max_bytes=max_bytes,
        )
        return ChatPromptValue(messages=messages)

    return RunnableLambda(to_prompt, name="mrag_rag_prompt")
