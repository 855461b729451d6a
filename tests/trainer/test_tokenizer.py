"""The trained tokenizer loads with AutoTokenizer and keeps its special tokens whole."""

from __future__ import annotations

import pytest

from trainer.errors import TokenizerError
from trainer.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_tokenizer

TEXTS = ["def add(a, b):\n    return a + b\n", "class Foo:\n    pass\n", "import os\nprint(os.getcwd())\n"] * 10


def test_trained_tokenizer_loads_in_transformers_with_special_tokens(tmp_path):
    from transformers import AutoTokenizer

    train_tokenizer(TEXTS, 400, tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    for t in SPECIAL_TOKENS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == t
    text = "def add(a, b):\n    return a - b  # ünïcode\n"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok.eos_token == "<|endoftext|>"


def test_tokenizer_without_fim_tokens_is_rejected_by_name(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    raw.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                       show_progress=False))
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>").save_pretrained(str(tmp_path))
    with pytest.raises(TokenizerError, match=r"<\|fim_prefix\|>.*<\|fim_suffix\|>"):
        load_tokenizer(tmp_path)
