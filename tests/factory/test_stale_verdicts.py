"""Verdicts belong to candidates (issue #19): after ``mutate --force`` replaces the candidates,
the old verdicts are neither counted, nor collected, nor published — and not lost either."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pyarrow.parquet as pq

import tests.factory.test_publish_fixtures as fx
from factory.curate import CurateConfig
from factory.publish import PublishConfig, prepare_rows
from factory.schema import Candidate, RepoSpec, TaskInstance, Validation
from factory.store import RunStore, write_json, write_records
from factory.task_stages import collect_instances, stage_validate

SPEC = RepoSpec.parse({"source": "/nonexistent/widgets"})  # validate reads no checkout when nothing is left
KEY = SPEC.key


def _cand(i: int) -> Candidate:
    return Candidate(candidate_id=f"c{i:015d}", repo=KEY, base_commit="0" * 40, origin="mutation",
                     patch=fx.make_patch(f"src/m{i}.py", 1, salt=str(i)))


def _judged(store: RunStore, cand: Candidate) -> TaskInstance:
    inst = replace(fx.make_instance(int(cand.candidate_id[1:]), repo=KEY), instance_id=f"{KEY}__{cand.candidate_id}",
                   patch=cand.patch, provenance=json.dumps({"candidate_id": cand.candidate_id}))
    val = Validation(cand.candidate_id, KEY, "accepted", "accepted", inst.FAIL_TO_PASS, inst.PASS_TO_PASS)
    write_json(store.repo(KEY).root / "validations" / f"{cand.candidate_id}.json",
               {"validation": asdict(val), "instance": asdict(inst)})
    return inst


def test_verdicts_of_candidates_no_longer_mined_are_set_aside(tmp_path):
    store = RunStore(tmp_path / "run")
    rd = store.repo(KEY)
    spec = SPEC
    old = [_cand(i) for i in range(5)]
    write_records(rd.candidates, old, Candidate)
    old_instances = [_judged(store, c) for c in old]
    collect_instances(store)
    assert pq.read_metadata(store.instances).num_rows == 5

    # `mutate --force`: other candidates, one of them the same as before.
    new = [old[0], _cand(7)]
    write_records(rd.candidates, new, Candidate)
    _judged(store, new[1])
    logs = []
    out = stage_validate(spec, store, log=logs.append)  # nothing to judge: no engine needed
    assert out.ok and out.detail["judged"] == 2 and out.detail["accepted"] == 2
    assert out.detail["stale_set_aside"] == 4
    assert logs[0].startswith(f"{KEY}: 2 candidates, 2 already judged, 0 to go; 4 verdicts of candidates no longer")
    vdir = rd.root / "validations"
    assert sorted(p.stem for p in vdir.glob("*.json")) == sorted(c.candidate_id for c in new)
    assert sorted(p.stem for p in (vdir / "stale").glob("*.json")) == sorted(c.candidate_id for c in old[1:])
    assert sorted(pq.read_table(store.instances).column("instance_id").to_pylist()) == \
        sorted(f"{KEY}__{c.candidate_id}" for c in new)
    assert pq.read_table(rd.validations).num_rows == 2

    # An instances.parquet written before the candidates changed: publish leaves the stale rows out.
    write_records(store.instances, old_instances, TaskInstance)
    rows, num_in, report, _ = prepare_rows(store.root, PublishConfig(curate=CurateConfig(min_f2p=0)))
    assert num_in == 5 and rows["instance_id"].to_list() == [old_instances[0].instance_id]
    assert report.dropped == {"stale_verdict": 4}

    # A candidate that comes back gets its verdict back.
    write_records(rd.candidates, [*new, old[3]], Candidate)
    logs.clear()
    out = stage_validate(spec, store, log=logs.append)
    assert out.detail["judged"] == 3 and "1 restored from validations/stale/" in logs[0]
    assert (vdir / f"{old[3].candidate_id}.json").exists()
