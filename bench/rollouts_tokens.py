"""Tokens per trajectory per tool-call format, with every renderer's round trip checked.

    python bench/rollouts_tokens.py --trajectories runs/demo/trajectories --dataset runs/demo/dataset

Renders every trajectory record in every format, checks ``parse(render(t)) == t``, and counts
tokens with the trainer's byte-level BPE (asked for 32768, the ``small`` recipe's size) trained on a
format-neutral corpus: the task dataset's texts (statements, patches, files) and the records' own
texts (messages, argument values, tool descriptions), never a rendering, so no format's markup is
learnt as whole tokens. Per format: characters and tokens per trajectory (mean, min, max), the tool
definitions' tokens (the system turn: the head packing never separates), and the share of tokens
that are training targets (the assistant's turns).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.progress import track  # noqa: E402

from rollouts.dataset import load_trajectories  # noqa: E402
from rollouts.templates import FORMATS, parse, render  # noqa: E402
from trainer.data import load_splits, tasks_from_split, text_corpus, trajectory_sample  # noqa: E402
from trainer.tokenizer import train_tokenizer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", default="runs/demo/trajectories")
    ap.add_argument("--dataset", default="runs/demo/dataset")
    ap.add_argument("--vocab", type=int, default=32768)
    a = ap.parse_args()
    trajs = load_trajectories(Path(a.trajectories))
    tasks = [t for split in load_splits(a.dataset).values() for t in tasks_from_split(split)]
    # Format-neutral corpus: the tasks' texts and the records' own texts (messages, argument values,
    # tool descriptions), never a rendering, so no format's markup is learnt as whole tokens.
    neutral = [m.content for t in trajs for m in t.messages] + [
        str(v) for t in trajs for m in t.messages for c in m.calls for v in c.arguments.values()] + [
        x for t in trajs[:1] for tool in t.tools for x in (tool.description, *(p.description for p in tool.params))]
    tok = train_tokenizer(itertools.chain(text_corpus(tasks), neutral), a.vocab)
    variants = {v: sum(t.meta.get("variant") == v for t in trajs) for v in sorted({t.meta.get("variant") for t in trajs})}
    print(f"{len(trajs)} trajectories ({', '.join(f'{k} {n}' for k, n in variants.items())}); "
          f"tokenizer: BPE of {len(tok)} tokens trained on {len(tasks)} tasks' texts and the records' texts\n")
    print("| format | round trips | chars / traj (mean) | tokens / traj (mean) | min | max | tool definitions (tokens) "
          "| target share |\n|---|---|---|---|---|---|---|---|")
    for f in FORMATS:
        ok, chars, toks, heads, share = 0, [], [], [], []
        for t in track(trajs, description=f, transient=True):
            text = render(f, t)
            ok += parse(f, text) == t
            s = trajectory_sample(text, tok)
            chars.append(len(text))
            toks.append(len(s.ids))
            heads.append(s.head)
            share.append(sum(s.loss) / len(s.loss))
        print(f"| {f} | {ok}/{len(trajs)} | {statistics.mean(chars):,.0f} | {statistics.mean(toks):,.0f} | {min(toks):,} | "
              f"{max(toks):,} | {statistics.mean(heads):,.0f} | {statistics.mean(share):.3f} |")


if __name__ == "__main__":
    main()
