"""Text hygiene: what readers hand on is clean Unicode the tokenizer, JSON and prompts accept."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers

from mrag.extract.hygiene import clean_text, garbage_share, is_garbage


def test_lone_surrogates_are_dropped_and_pairs_joined() -> None:
    assert clean_text("a\ud800b\udfffc") == "abc"
    assert clean_text("smile \ud83d\ude00!") == "smile \U0001f600!"


def test_controls_go_but_tab_and_newline_stay() -> None:
    assert clean_text("a\x00b\x07c\td\ne\x1bf\x7fg\x9fh") == "abc\td\nefgh"
    assert clean_text("one\r\ntwo\rthree\u2028four") == "one\ntwo\nthree\nfour"


def test_compatibility_forms_are_folded() -> None:
    assert clean_text("\ufb01nd the o\ufb00set\u00a0now") == "find the offset now"
    assert clean_text("\ufeffsoft\u00adhyphen\u200b") == "softhyphen"


def test_a_page_of_private_use_debris_is_garbage_and_prose_is_not() -> None:
    debris = "".join(chr(0xE000 + i) for i in range(60)) + " ok"
    assert is_garbage(debris)
    assert garbage_share(debris) > 0.9
    assert not is_garbage("The pump is wired to the red terminal; see Figure 3.")
    assert not is_garbage("\ue000\ue001")  # too short to judge
    assert not is_garbage("한국어 문서의 본문입니다. 펌프 배선도를 보십시오.")


@given(st.text())
def test_cleaned_text_is_valid_utf8_json_and_tokenizer_input(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")  # no lone surrogates survive
    assert json.loads(json.dumps(cleaned)) == cleaned
    assert not any(ord(ch) < 32 and ch not in "\t\n" for ch in cleaned)
    assert clean_text(cleaned) == cleaned


@pytest.fixture(scope="module")
def word_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def test_the_tokenizer_rejects_raw_surrogates_but_takes_cleaned_text(word_tokenizer) -> None:
    raw = "\uc548\ub155 \udc80\x00 text"
    with pytest.raises(TypeError):
        word_tokenizer.encode_batch([raw])
    assert word_tokenizer.encode_batch([clean_text(raw)])[0].tokens
