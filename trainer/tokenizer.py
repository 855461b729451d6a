"""Byte-level BPE tokenizer: trained on the dataset's text, or loaded from a directory.

Special tokens (all required, checked on load): end-of-text, chat turn markers and the
fill-in-the-middle markers. Saved with `PreTrainedTokenizerFast.save_pretrained`, so
`transformers.AutoTokenizer.from_pretrained(DIR)` loads it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from trainer.errors import TokenizerError

__all__ = ["EOT", "FIM_MIDDLE", "FIM_PREFIX", "FIM_SUFFIX", "IM_END", "IM_START", "SPECIAL_TOKENS",
           "load_tokenizer", "train_tokenizer"]

EOT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
SPECIAL_TOKENS = [EOT, IM_START, IM_END, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX]


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | os.PathLike | None = None):
    """Train a byte-level BPE on `texts`; returns a `PreTrainedTokenizerFast` (saved if `out_dir`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise TokenizerError(f"tokenizer vocab_size {vocab_size} is below the 256 bytes plus special tokens")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOT, pad_token=EOT, unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.model_max_length = 1 << 20
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def load_tokenizer(path: str | os.PathLike):
    """Load a tokenizer directory (ours or the user's) and check it has every special token."""
    from transformers import AutoTokenizer

    if not Path(path).exists():
        raise TokenizerError(f"tokenizer directory {path} does not exist")
    tok = AutoTokenizer.from_pretrained(str(path))
    check_special_tokens(tok, source=str(path))
    return tok


def check_special_tokens(tok, source: str = "tokenizer") -> None:
    vocab = tok.get_vocab()
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise TokenizerError(f"{source} lacks special token(s) {', '.join(missing)}; the trainer needs "
                             f"{', '.join(SPECIAL_TOKENS)}")


def special_ids(tok) -> dict[str, int]:
    return {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
