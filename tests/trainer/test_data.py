"""Rendering tasks into repair and FIM samples, and refusing unusable datasets by name."""

from __future__ import annotations

import pytest

from tests.trainer.conftest import _BUGS, task_rows, unified_diff, write_dataset
from trainer.config import DataConfig
from trainer.data import (
    Task,
    fixed_files,
    load_splits,
    render_fim,
    render_repair,
    tasks_from_split,
    tokenize_tasks,
)
from trainer.errors import EmptySplitError, MissingColumnsError
from trainer.patches import apply_file_patch, parse_patch
from trainer.tokenizer import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, IM_END, train_tokenizer


def _task(old: str, new: str, path: str = "pkg/mod.py", problem: str = "it is broken") -> Task:
    return Task("t-1", "acme/x", problem, unified_diff(path, old, new), ((path, old),))


def test_gold_patch_applied_to_start_files_gives_the_fixed_file():
    for _, path, old, new, _ in _BUGS:
        assert fixed_files(_task(old, new, path)) == {path: new}


def test_patch_with_several_hunks_and_no_final_newline_applies():
    old = "".join(f"line {i}\n" for i in range(40)) + "tail"
    new = old.replace("line 3\n", "line three\n").replace("line 30\n", "").replace("tail", "TAIL")
    fps = parse_patch(unified_diff("f.txt", old, new))
    assert len(fps) == 1 and len(fps[0].hunks) == 3
    assert apply_file_patch(old, fps[0]) == new


def test_repair_sample_prompt_holds_statement_and_broken_file_and_loss_is_on_patch_only(tmp_path):
    _, path, old, new, problem = _BUGS[1]
    task = _task(old, new, path, problem)
    prompt, target = render_repair(task, max_file_chars=10_000)
    assert problem in prompt and old.rstrip("\n") in prompt and path in prompt
    assert new not in prompt and target == task.patch + IM_END
    tok = train_tokenizer([prompt, target] * 5, 400)
    (sample, *fims), stats = tokenize_tasks([task], tok, DataConfig(), seed=0)
    assert sample.kind == "repair" and stats.num_repair == 1
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert not any(sample.loss[:n_prompt]) and all(sample.loss[n_prompt:])
    assert tok.decode(list(sample.ids[n_prompt:])) == target + "<|endoftext|>"


def test_fim_sample_is_prefix_suffix_middle_with_the_repaired_region_as_middle():
    _, path, old, new, _ = _BUGS[0]  # mean(): the return line is the fix
    [(prefix, suffix, middle)] = render_fim(_task(old, new, path), seed=0)
    assert middle == "    return total / len(xs)\n"
    assert prefix + middle + suffix == new
    tok = train_tokenizer([new] * 5, 400)
    samples, stats = tokenize_tasks([_task(old, new, path)], tok, DataConfig(fim_loss="middle"), seed=0)
    fim = samples[1]
    assert fim.kind == "fim" and stats.num_fim == 1
    text = tok.decode(list(fim.ids))
    assert text.index(FIM_PREFIX) < text.index(FIM_SUFFIX) < text.index(FIM_MIDDLE)
    assert text.endswith(middle + "<|endoftext|>")
    n_head = fim.loss.index(True)
    assert tok.decode(list(fim.ids[n_head:])) == middle + "<|endoftext|>"


def test_task_whose_patch_does_not_apply_is_dropped_with_a_reason():
    _, path, old, new, _ = _BUGS[2]
    bad = Task("t-bad", "acme/x", "p", unified_diff(path, old, new), ((path, "something else\n"),))
    tok = train_tokenizer([old] * 5, 300)
    samples, stats = tokenize_tasks([bad, _task(old, new, path)], tok, DataConfig(), seed=0)
    assert stats.dropped == {"patch_does_not_apply": 1}
    assert stats.as_dict()["dropped_patch_does_not_apply"] == 1 and len(samples) == 2


def test_dataset_folder_loads_with_train_and_held_out_splits(make_dataset):
    splits = load_splits(str(make_dataset(copies=1)))
    assert set(splits) == {"train", "test"}
    test_repos = {t.repo for t in tasks_from_split(splits["test"])}
    assert test_repos == {"acme/heldout"}
    assert all(t.start_files for t in tasks_from_split(splits["train"]))


def test_dataset_without_needed_columns_names_them(make_dataset):
    path = make_dataset(drop_columns=("start_files", "patch"))
    with pytest.raises(MissingColumnsError, match="lacks required column.*patch, start_files"):
        load_splits(str(path))


def test_empty_split_is_refused(tmp_path):
    path = write_dataset(tmp_path / "ds", {"train": task_rows(1)[:2], "test": []})
    with pytest.raises(EmptySplitError, match="'test' has no rows"):
        load_splits(str(path))


def test_created_and_deleted_files_in_a_patch():
    body = "def helper():\n    return 42\n"
    created = unified_diff("pkg/new.py", "", body).replace("--- a/pkg/new.py", "--- /dev/null")
    deleted = unified_diff("pkg/old.py", body, "").replace("+++ b/pkg/old.py", "+++ /dev/null")
    task = Task("t-2", "acme/x", "p", created + deleted, (("pkg/old.py", body),))
    assert fixed_files(task) == {"pkg/new.py": body}
    assert render_fim(task, seed=0) == [("", "", body)]


def test_files_too_long_for_the_prompt_are_left_out_and_counted():
    _, path, old, new, _ = _BUGS[0]
    tok = train_tokenizer([old] * 5, 300)
    samples, stats = tokenize_tasks([_task(old, new, path)], tok, DataConfig(max_file_chars=10), seed=0)
    assert stats.dropped == {"file_omitted_from_prompt_too_long": 1}
    assert old.splitlines()[0] not in tok.decode(list(samples[0].ids))


def test_patch_touching_two_files_gives_one_repair_sample_with_both_and_one_fim_per_file():
    (_, p1, o1, n1, _), (_, p2, o2, n2, _) = _BUGS[3], _BUGS[4]
    task = Task("t-3", "acme/textkit", "two bugs", unified_diff(p1, o1, n1) + unified_diff(p2, o2, n2),
                ((p1, o1), (p2, o2)))
    assert fixed_files(task) == {p1: n1, p2: n2}
    prompt, _ = render_repair(task, max_file_chars=10_000)
    assert f"### {p1}" in prompt and f"### {p2}" in prompt
    fims = render_fim(task, seed=0)
    assert [pre + mid + suf for pre, suf, mid in fims] == [n1, n2]
