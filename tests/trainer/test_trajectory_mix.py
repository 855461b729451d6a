"""Trajectory datasets beside task datasets: multi-turn samples with loss on the assistant's turns
only, packing that keeps tool definitions with their turns, mixture weights, and loss falling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollouts.dataset import write_dataset
from rollouts.oracle import SYSTEM, TOOLS
from rollouts.record import Message, ToolCall, Trajectory
from rollouts.templates import FORMATS
from tests.trainer.conftest import _BUGS
from trainer.data import load_trajectory_texts, mix, trajectory_sample
from trainer.packing import IGNORE, pack, turn_chunks
from trainer.tokenizer import IM_END, IM_START, train_tokenizer


def _trajectory(i: int, repo: str, path: str, old: str, new: str, problem: str) -> Trajectory:
    """An agent session on one of the trainer fixtures' bugs: reproduce, read, edit, test, submit."""
    test = f"tests/test_{i}.py::test_fix"
    a, b = next((x, y) for x, y in zip(old.splitlines(), new.splitlines(), strict=False) if x != y)
    calls = [
        ("I'll reproduce the failure first.", ToolCall("bash", {"command": f"python -m pytest -q {test}"}),
         f"F\n=== FAILURES ===\n{test}\nE   AssertionError: {problem}\n1 failed in 0.05s\n[exit code 1]"),
        (f"Let me read `{path}`.", ToolCall("read", {"path": path}), old),
        ("Fix the faulty line.", ToolCall("edit", {"path": path, "old": a, "new": b}),
         f"edited {path}: replaced 1 occurrence at line 2."),
        ("Run the test again.", ToolCall("bash", {"command": f"python -m pytest -q {test}", "timeout": 60}),
         ".\n1 passed in 0.02s\n[exit code 0]"),
        ("Submit.", ToolCall("submit", {}), "reward 1 (resolved): FAIL_TO_PASS 1/1 pass, PASS_TO_PASS 0/0 pass"),
    ]
    msgs = [Message("system", SYSTEM), Message("user", f"{problem}\n\nRepository: {repo}")]
    for thought, call, obs in calls:
        msgs += [Message("assistant", thought, (call,)), Message("tool", obs, name=call.name)]
    msgs.append(Message("assistant", "The fix is submitted."))
    return Trajectory(TOOLS, tuple(msgs), {"instance_id": f"{repo}-{i}", "variant": "direct", "reward": 1.0,
                                           "source": "test"}).check()


@pytest.fixture(scope="module")
def traj_dataset(tmp_path_factory) -> Path:
    trajs = [_trajectory(i, *bug) for i, bug in enumerate(_BUGS)]
    return write_dataset(trajs, tmp_path_factory.mktemp("traj_ds"), list(FORMATS))


@pytest.fixture(scope="module")
def tok(traj_dataset, tmp_path_factory):
    return train_tokenizer(load_trajectory_texts(str(traj_dataset)), 1024, tmp_path_factory.mktemp("tok"))


def test_dataset_has_one_text_per_format_and_the_record(traj_dataset):
    import datasets

    ds = datasets.load_dataset(str(traj_dataset))["train"]
    assert len(ds) == len(_BUGS)
    assert {f"text_{f.replace('-', '_')}" for f in FORMATS} <= set(ds.column_names)
    row = ds[0]
    assert json.loads(row["messages"])[2]["tool_calls"][0]["function"]["name"] == "bash"
    assert len(load_trajectory_texts(str(traj_dataset))) == len(_BUGS) * len(FORMATS)
    assert len(load_trajectory_texts(str(traj_dataset), ["pythonic"])) == len(_BUGS)


def test_targets_are_exactly_the_assistant_turns(traj_dataset, tok):
    for text in load_trajectory_texts(str(traj_dataset)):
        s = trajectory_sample(text, tok)
        got = tok.decode([t for t, k in zip(s.ids, s.loss, strict=True) if k])
        turns = [p for p in text.split(IM_START)[1:] if p.startswith("assistant\n")]
        assert got == "".join(p[len("assistant\n"):-1] for p in turns)  # body + <|im_end|>, not the newline
        assert all(p.endswith(IM_END + "\n") for p in turns)
        assert not any(s.loss[:s.head])  # tool definitions are context
        assert tok.decode(s.ids[:s.head]).startswith(IM_START + "system\n")
        assert tok.decode(s.ids[s.head:s.breaks[1]]).startswith(IM_START + "user\n")


def test_a_long_trajectory_is_split_at_turns_and_every_piece_starts_with_the_tools(traj_dataset, tok):
    s = trajectory_sample(load_trajectory_texts(str(traj_dataset), ["qwen-xml"])[0], tok)
    seq_len = s.head + 80
    assert len(s.ids) - 1 > seq_len
    chunks = turn_chunks(s, seq_len)
    assert len(chunks) >= 2
    for ids, keep in chunks:
        assert ids[:s.head] == s.ids[:s.head] and not any(keep[:s.head])
        assert len(ids) <= seq_len + 1
    # every assistant target token appears in exactly one piece
    assert sum(sum(k) for _, k in chunks) == sum(s.loss)
    p = pack([s], seq_len, pad_id=0)
    assert p.stats.num_split == 1 and p.stats.num_dropped == 0
    head = list(s.ids[:s.head - 1])
    for r in range(len(p)):
        for d in p.doc_ids[r].unique().tolist():
            if d >= 0:
                inp = p.input_ids[r][p.doc_ids[r] == d].tolist()
                assert inp[:len(head)] == head  # no document without its tool definitions
                lab = p.labels[r][p.doc_ids[r] == d].tolist()
                assert all(x == IGNORE for x in lab[:len(head)])
    assert pack([s], s.head - 5, pad_id=0).stats.num_dropped == 1  # no room for a turn: dropped, counted


def test_mixture_token_shares_follow_the_weights(traj_dataset, tok):
    from trainer.data import Sample

    trajs = [trajectory_sample(t, tok) for t in load_trajectory_texts(str(traj_dataset))]
    tasks = [Sample(tuple(range(50)), tuple([True] * 50), "repair") for _ in range(40)]
    for w_task, w_traj in ((1.0, 1.0), (3.0, 1.0), (1.0, 4.0)):
        _, stats = mix({"tasks": (tasks, w_task), "traj": (trajs, w_traj)}, seed=0)
        want = w_traj / (w_task + w_traj)
        assert abs(stats["traj"]["share"] - want) < 0.06, stats
    again, _ = mix({"tasks": (tasks, 1.0), "traj": (trajs, 4.0)}, seed=0)
    assert again == mix({"tasks": (tasks, 1.0), "traj": (trajs, 4.0)}, seed=0)[0]  # deterministic


def test_loss_falls_on_a_task_and_trajectory_mix(tiny_dataset, traj_dataset, tmp_path):
    from trainer.config import DataConfig
    from trainer.train import train

    out = tmp_path / "mix"
    res = train(str(tiny_dataset), "tiny", out, steps=24, progress=False, device="cpu",
                trajectories=((str(traj_dataset), 2.0),), data=DataConfig(seq_len=2048))
    stats = json.loads((out / "data_stats.json").read_text())
    mixture = stats["mixture"]
    assert set(mixture) == {"tasks", f"trajectories[0]:{traj_dataset}"}
    assert abs(mixture[f"trajectories[0]:{traj_dataset}"]["share"] - 2 / 3) < 0.06
    assert stats["train"]["num_dropped"] == 0
    losses = [json.loads(ln)["loss"] for ln in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in ln]
    assert len(losses) == 24
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, losses  # 30 steps measured: 6.68 -> 4.09
    assert res.export_dir is not None


def test_factory_train_cli_on_a_task_and_trajectory_mix(tiny_dataset, traj_dataset, tmp_path):
    from typer.testing import CliRunner

    from factory.cli import app

    out = tmp_path / "cli"
    r = CliRunner().invoke(app, ["train", "--dataset", str(tiny_dataset), "--recipe", "tiny", "--out", str(out),
                                 "--steps", "3", "--device", "cpu", "--trajectories", f"{traj_dataset}@0.5",
                                 "--trajectory-formats", "json,typescript", "--seq-len", "2048"])
    assert r.exit_code == 0, r.output
    assert "trained 3 steps" in r.output
    mixture = json.loads((out / "data_stats.json").read_text())["mixture"]
    key = f"trajectories[0]:{traj_dataset}"
    assert mixture[key]["samples"] == len(_BUGS) * 2 and mixture[key]["dropped_tools_fill_a_row"] == 0  # two formats
    short = CliRunner().invoke(app, ["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "short"),
                                     "--steps", "1", "--device", "cpu", "--trajectories", str(traj_dataset),
                                     "--seq-len", "64"])
    assert short.exit_code == 2 and "train with a longer --seq-len" in short.output
    bad = CliRunner().invoke(app, ["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "bad"),
                                   "--steps", "1", "--device", "cpu", "--trajectories", f"{traj_dataset}@x"])
    assert bad.exit_code == 2 and "must be a number" in bad.output
