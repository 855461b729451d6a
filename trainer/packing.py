"""Best-fit-decreasing packing of samples into fixed-length rows, with document ids for masking.

Each sample becomes (inputs = ids[:-1], labels = ids[1:] where a target, else -100), so a row never
predicts across a document boundary. Samples longer than a row are split into row-sized chunks
(counted as `num_split`); a sample that fits is never split. Positions restart at 0 in every
document; `doc_ids` let the model mask attention between documents (`trainer.model.doc_mask`).
Padding has label -100 and doc id -1.

Trajectories (samples with a ``head``: the system turn with the tool definitions) are never cut
away from their tool definitions: one longer than a row is split only at turn boundaries and every
piece starts with the head (its tokens are context, never targets); see ``turn_chunks``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from trainer.data import Sample

__all__ = ["IGNORE", "PackStats", "Packed", "best_fit_decreasing", "pack", "turn_chunks"]

IGNORE = -100


@dataclass(frozen=True)
class PackStats:
    num_samples: int
    num_pieces: int
    num_split: int        # samples longer than a row, split into chunks
    num_rows: int
    num_tokens: int       # real tokens placed
    num_padding: int
    num_dropped: int = 0  # trajectories whose tool definitions leave no room in a row for a turn

    @property
    def padding_fraction(self) -> float:
        total = self.num_tokens + self.num_padding
        return self.num_padding / total if total else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "padding_fraction": round(self.padding_fraction, 6)}


@dataclass(frozen=True)
class Packed:
    """R rows of T tokens: input_ids, labels, position_ids, doc_ids, all (R, T) int64."""
    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    doc_ids: torch.Tensor
    stats: PackStats

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins of item indices: items in decreasing length, each into the fullest bin it fits.

    Ties break by index, so the result is deterministic. Every length must be <= capacity.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, bin index)
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"item {i} of length {n} exceeds capacity {capacity}")
        j = bisect.bisect_left(free, (n, -1))
        if j < len(free):
            rem, b = free.pop(j)
        else:
            rem, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if rem - n > 0:
            bisect.insort(free, (rem - n, b))
    return bins


MIN_TURN_ROOM = 16  # a row must hold the tool definitions and at least this many tokens of a turn


def turn_chunks(s: Sample, seq_len: int) -> list[tuple[tuple[int, ...], tuple[bool, ...]]] | None:
    """A trajectory longer than a row, as pieces of at most ``seq_len + 1`` ids, each the head
    (system turn with the tool definitions) followed by whole turns; a turn longer than the room
    left is cut into head-led pieces of its own. None when the head leaves no room."""
    room = seq_len + 1 - s.head
    if room < MIN_TURN_ROOM:
        return None
    head_ids, head_loss = s.ids[:s.head], s.loss[:s.head]
    bounds = [s.head, *[b for b in s.breaks if b > s.head], len(s.ids)]
    spans = [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    out, cur = [], []

    def flush():
        if cur:
            a, b = cur[0][0], cur[-1][1]
            out.append((head_ids + s.ids[a:b], head_loss + s.loss[a:b]))
            cur.clear()

    for a, b in spans:
        if b - a > room:
            flush()
            for k in range(a, b, room):
                out.append((head_ids + s.ids[k:min(b, k + room)], head_loss + s.loss[k:min(b, k + room)]))
        else:
            if cur and b - cur[0][0] > room:
                flush()
            cur.append((a, b))
    flush()
    return out


def pack(samples: list[Sample], seq_len: int, pad_id: int) -> Packed:
    pieces: list[tuple[list[int], list[int]]] = []
    num_split = 0
    num_dropped = 0
    for s in samples:
        if len(s.ids) < 2:
            continue
        if s.head and len(s.ids) - 1 > seq_len:
            chunks = turn_chunks(s, seq_len)
            if chunks is None:
                num_dropped += 1
                continue
            num_split += 1
            for ids, keep in chunks:
                labels = [t if k else IGNORE for t, k in zip(ids[1:], keep[1:], strict=True)]
                if any(lab != IGNORE for lab in labels):
                    pieces.append((list(ids[:-1]), labels))
            continue
        inputs = list(s.ids[:-1])
        labels = [t if keep else IGNORE for t, keep in zip(s.ids[1:], s.loss[1:], strict=True)]
        if len(inputs) > seq_len:
            num_split += 1
        for k in range(0, len(inputs), seq_len):
            if any(lab != IGNORE for lab in labels[k:k + seq_len]):  # a chunk with no target teaches nothing
                pieces.append((inputs[k:k + seq_len], labels[k:k + seq_len]))
    bins = best_fit_decreasing([len(p[0]) for p in pieces], seq_len)
    R = len(bins)
    input_ids = torch.full((R, seq_len), pad_id, dtype=torch.long)
    labels_RT = torch.full((R, seq_len), IGNORE, dtype=torch.long)
    pos_RT = torch.zeros((R, seq_len), dtype=torch.long)
    doc_RT = torch.full((R, seq_len), -1, dtype=torch.long)
    num_tokens = 0
    for r, b in enumerate(bins):
        at = 0
        for d, i in enumerate(b):
            inp, lab = pieces[i]
            n = len(inp)
            input_ids[r, at:at + n] = torch.tensor(inp)
            labels_RT[r, at:at + n] = torch.tensor(lab)
            pos_RT[r, at:at + n] = torch.arange(n)
            doc_RT[r, at:at + n] = d
            at += n
        num_tokens += at
    stats = PackStats(len(samples), len(pieces), num_split, R, num_tokens, R * seq_len - num_tokens, num_dropped)
    return Packed(input_ids, labels_RT, pos_RT, doc_RT, stats)
