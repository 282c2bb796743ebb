"""Retrieved documents into chat messages: text and standard image blocks, size-capped."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import docgen
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnablePassthrough
from PIL import Image

from mrag.model import JinaClipModel
from mrag.model.embeddings import JinaClipEmbeddings
from mrag.retrieval.messages import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SIDE,
    build_messages,
    context_blocks,
    image_block,
    rag_prompt,
    shrink_image,
)
from mrag.retrieval.retriever import MultimodalRetriever
from mrag.retrieval.vectorstore import MragVectorStore
from mrag.store import Store, StoreSettings


class RecordMessages(BaseCallbackHandler):
    """Keeps what a chat model was asked, as the model received it."""

    def __init__(self) -> None:
        self.seen: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.seen.extend(messages)


@pytest.fixture(scope="module")
def retriever(
    tiny_model: JinaClipModel, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> MultimodalRetriever:
    tmp_path = tmp_path_factory.mktemp("messages")
    embeddings = JinaClipEmbeddings(tiny_checkpoint, model=tiny_model)
    store = MragVectorStore(
        Store.open(StoreSettings(path=str(tmp_path / "q"), collection="m")), embeddings=embeddings
    )
    store.add_texts(
        ["the pump wiring is shown in figure 2", "the valve opens at 3 bar"],
        [{"source": "manual.pdf", "page": 4}, {"source": "manual.pdf", "page": 5}],
    )
    store.add_images(
        [docgen.noise((1000, 800)), Image.new("RGB", (200, 100), "red")],
        [{"source": "manual.pdf", "page": 4}, {"source": "logo.png"}],
        captions=["figure 2: pump wiring", "a red logo"],
    )
    return store.as_retriever(k=4)


def _decoded(block: dict[str, Any]) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(block["base64"])))


def test_chain_sends_image_blocks_to_the_chat_model(retriever: MultimodalRetriever) -> None:
    recorder = RecordMessages()
    chain = (
        {"documents": retriever, "question": RunnablePassthrough()}
        | rag_prompt()
        | ParrotFakeChatModel()
    )
    reply = chain.invoke("how is the pump wired?", config={"callbacks": [recorder]})
    [messages] = recorder.seen
    assert isinstance(messages[0], SystemMessage) and isinstance(messages[1], HumanMessage)
    # The parrot answers with the last message exactly as the model received it (callbacks see
    # a legacy rendering of image blocks; the model itself gets the standard blocks).
    content = reply.content
    assert isinstance(content, list)
    images = [block for block in content if isinstance(block, dict) and block["type"] == "image"]
    assert len(images) == 2
    for block in images:
        assert set(block) == {"type", "base64", "mime_type"}
        assert block["mime_type"] in ("image/png", "image/jpeg")
        picture = _decoded(block)
        assert max(picture.size) <= DEFAULT_MAX_SIDE
        assert len(base64.b64decode(block["base64"])) <= DEFAULT_MAX_BYTES
    texts = [block["text"] for block in content if block["type"] == "text"]
    assert texts[0] == "Context:" and texts[-1] == "Question: how is the pump wired?"
    assert any("[1]" in text for text in texts)
    assert any("figure 2: pump wiring" in text for text in texts)
    # The standard blocks also read back through langchain-core's typed view.
    assert [block["type"] for block in reply.content_blocks].count("image") == 2


async def test_chain_async(retriever: MultimodalRetriever) -> None:
    chain = {"documents": retriever, "question": RunnablePassthrough()} | rag_prompt(system=None)
    prompt = await chain.ainvoke("valve")
    [message] = prompt.to_messages()
    assert isinstance(message, HumanMessage)


def test_shrink_image_respects_both_caps() -> None:
    buffer = io.BytesIO()
    docgen.noise((900, 700)).save(buffer, format="PNG")
    mime_type, data = shrink_image(buffer.getvalue(), max_side=768, max_bytes=40_000)
    image = Image.open(io.BytesIO(data))
    assert max(image.size) < 768  # had to go below the side cap to meet the byte cap
    assert len(data) <= 40_000
    assert mime_type in ("image/png", "image/jpeg")
    assert shrink_image(buffer.getvalue(), max_bytes=10) is None  # cannot fit: dropped
    assert shrink_image(b"not an image") is None


def test_blocks_for_documents_without_images_and_caps() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), "blue").save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    docs = [
        Document(
            page_content="passage", metadata={"modality": "text", "source": "a.pdf", "page": 2}
        ),
        Document(page_content="pic one", metadata={"modality": "image", "image_base64": encoded}),
        Document(page_content="pic two", metadata={"modality": "image", "image_base64": encoded}),
    ]
    assert image_block(docs[0]) is None
    blocks = context_blocks(docs, max_images=1)
    assert [block["type"] for block in blocks] == ["text", "text", "image", "text"]
    assert blocks[0]["text"] == "[1] text from a.pdf, page 2\npassage"
    assert "(image not attached)" in blocks[3]["text"]
    messages = build_messages("q?", docs, system="be brief")
    assert messages[0].content == "be brief"
    with pytest.raises(KeyError):
        rag_prompt().invoke({"question": "no documents"})
