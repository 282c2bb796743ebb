"""The text tower's tokenizer: the checkpoint's own ``tokenizer.json`` run by HF ``tokenizers``.

Only the Rust ``tokenizers`` library is needed (no ``transformers``): it reads the lower-casing BERT
WordPiece pipeline, with its ``[CLS] ... [SEP]`` template, straight from the checkpoint folder.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer
from tokenizers.processors import TemplateProcessing

#: jina-clip-v1 was trained on texts of up to 512 tokens; longer inputs are truncated by default.
DEFAULT_MAX_LENGTH = 512


class TextTokenizer:
    """Turns text into the id sequences the text tower reads.

    Padding and truncation are done here rather than configured on the shared ``tokenizers``
    object, so one instance can serve callers that want different limits at the same time.
    """

    def __init__(self, tokenizer: Tokenizer, *, pad_id: int = 0) -> None:
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.pad_id = pad_id
        # Room taken by [CLS] and [SEP] around a single sequence.
        self.special_tokens_count = self._tokenizer.num_special_tokens_to_add(False)

    @classmethod
    def from_folder(cls, folder: str | Path) -> TextTokenizer:
        """Load ``tokenizer.json`` from a checkpoint folder (``vocab.txt`` as a fallback)."""
        folder = Path(folder)
        if (folder / "tokenizer.json").is_file():
            return cls(Tokenizer.from_file(str(folder / "tokenizer.json")))
        if (folder / "vocab.txt").is_file():
            return cls(bert_wordpiece_tokenizer(_read_vocab(folder / "vocab.txt")))
        raise FileNotFoundError(f"{folder}: no tokenizer.json or vocab.txt")

    @property
    def backend(self) -> Tokenizer:
        """The underlying ``tokenizers.Tokenizer`` (for offsets and token counting)."""
        return self._tokenizer

    def encode(self, texts: list[str], *, max_length: int = DEFAULT_MAX_LENGTH) -> list[list[int]]:
        """Token ids with ``[CLS]``/``[SEP]``, each truncated to ``max_length`` (unpadded)."""
        if max_length < self.special_tokens_count + 1:
            raise ValueError(f"max_length must be at least {self.special_tokens_count + 1}")
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        result = []
        for encoding in encodings:
            ids = encoding.ids
            if len(ids) > max_length:
                # Keep the leading tokens and the closing [SEP], as truncation="longest_first" does.
                ids = ids[: max_length - 1] + ids[-1:]
            result.append(ids)
        return result

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes, special tokens excluded."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _read_vocab(path: Path) -> dict[str, int]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {token: index for index, token in enumerate(lines)}


def bert_wordpiece_tokenizer(vocab: dict[str, int]) -> Tokenizer:
    """Build a lower-casing BERT WordPiece tokenizer with the ``[CLS] A [SEP]`` template."""
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = BertPreTokenizer()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer
