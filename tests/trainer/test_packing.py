"""Best-fit-decreasing packing: no sample that fits is split, documents are separated, waste reported."""

from __future__ import annotations

import random

import torch

from trainer.data import Sample
from trainer.packing import IGNORE, best_fit_decreasing, pack


def test_best_fit_decreasing_places_each_item_in_the_fullest_bin_it_fits():
    assert best_fit_decreasing([5, 4, 3, 3, 1], 8) == [[0, 2], [1, 3, 4]]
    rng = random.Random(0)
    lengths = [rng.randint(1, 64) for _ in range(300)]
    bins = best_fit_decreasing(lengths, 64)
    assert sorted(i for b in bins for i in b) == list(range(300))
    assert all(sum(lengths[i] for i in b) <= 64 for b in bins)
    assert len(bins) <= 1.23 * sum(lengths) / 64 + 1  # BFD's 11/9 OPT + 1 bound, OPT >= total / capacity


def _sample(n: int, start: int, prompt: int = 0) -> Sample:
    return Sample(tuple(range(start, start + n)), tuple([False] * prompt + [True] * (n - prompt)), "repair")


def test_pack_keeps_samples_whole_with_own_positions_and_doc_ids():
    samples = [_sample(6, 100, prompt=2), _sample(4, 200), _sample(3, 300), _sample(9, 400)]
    p = pack(samples, seq_len=8, pad_id=0)
    # a sample of n ids is n-1 (input, label) pairs: 5, 3, 2, 8 -> rows [8], [5, 3], [2]
    assert len(p) == 3 and p.stats.num_split == 0
    for r in range(len(p)):
        docs = p.doc_ids[r]
        for d in docs.unique().tolist():
            if d < 0:
                continue
            sel = docs == d
            n = int(sel.sum())
            assert torch.equal(p.position_ids[r][sel], torch.arange(n))
            inp = p.input_ids[r][sel]
            assert torch.equal(inp, inp[0] + torch.arange(n))  # contiguous: the sample was not split
    first = (p.input_ids == 100).nonzero()[0]
    r, c = first.tolist()
    assert p.labels[r, c].item() == IGNORE  # label of token 100 is token 101, a prompt token
    assert p.labels[r, c + 1].item() == 102
    assert p.stats.num_padding == 3 * 8 - 18 and abs(p.stats.padding_fraction - 6 / 24) < 1e-9
    assert ((p.doc_ids < 0) == (p.labels == IGNORE) & (p.input_ids == 0)).all()


def test_sample_longer_than_a_row_is_split_and_counted():
    p = pack([_sample(21, 0)], seq_len=8, pad_id=0)
    assert p.stats.num_split == 1 and p.stats.num_pieces == 3 and len(p) == 3
    assert p.stats.num_tokens == 20
