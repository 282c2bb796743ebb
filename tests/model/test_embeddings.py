"""JinaClipEmbeddings: LangChain's standard embeddings suites plus the image method."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from PIL import Image

from mrag import JinaClipEmbeddings
from mrag.testing import write_random_checkpoint


@cache
def _checkpoint() -> str:
    # The standard suites read their parameters from properties, which cannot take fixtures.
    folder = Path(tempfile.mkdtemp(prefix="mrag-embeddings-")) / "tiny"
    return str(write_random_checkpoint(folder, preset="tiny"))


class TestJinaClipEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[JinaClipEmbeddings]:
        return JinaClipEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model_name": _checkpoint(), "batch_size": 4}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return {"MRAG_MODEL": _checkpoint()}, {}, {"model_name": _checkpoint()}


class TestJinaClipEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[JinaClipEmbeddings]:
        return JinaClipEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model_name": _checkpoint(), "batch_size": 4}


@pytest.fixture
def embeddings() -> JinaClipEmbeddings:
    return JinaClipEmbeddings(_checkpoint())


def test_the_model_is_loaded_once_and_shared(embeddings: JinaClipEmbeddings) -> None:
    assert JinaClipEmbeddings(_checkpoint(), batch_size=2).model is embeddings.model


def test_vectors_are_python_floats_matching_the_model(embeddings: JinaClipEmbeddings) -> None:
    vectors = embeddings.embed_documents(["a cat", "a rocket on a launchpad"])
    assert all(type(value) is float for value in vectors[0])
    expected = embeddings.model.encode_text(["a cat", "a rocket on a launchpad"])
    np.testing.assert_allclose(np.array(vectors), expected, atol=1e-6)
    assert embeddings.embed_query("a cat") == pytest.approx(vectors[0], abs=1e-6)
    assert embeddings.embed_documents([]) == []


async def test_embed_image_sync_and_async(embeddings: JinaClipEmbeddings, tmp_path: Path) -> None:
    paths = []
    for index, colour in enumerate(("red", "blue")):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (64, 48), colour).save(path)
        paths.append(str(path))
    vectors = embeddings.embed_image(paths)
    assert len(vectors) == 2 and len(vectors[0]) == embeddings.dimension
    assert all(type(value) is float for value in vectors[1])
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(await embeddings.aembed_image(paths), vectors, atol=1e-6)
