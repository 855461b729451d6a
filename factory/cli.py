"""The ``factory`` command: the user's contract (DESIGN.md, "Command line").

Every command takes ``--run-dir``, shows progress for long work on stderr, and on failure exits
non-zero with a one-line reason (the reason is also written into the run directory).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from factory import defaults
from factory.config import DEFAULT_CONFIG, SandboxConfig, load_config
from factory.errors import FactoryError
from factory.interrupt import terminate_as_interrupt
from factory.pipeline import StageOutcome, run_pipeline, stage_baseline, stage_env
from factory.schema import RepoSpec
from factory.store import RunStore

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Manufacture verifiable coding tasks.")
env_app = typer.Typer(no_args_is_help=True, help="Environment images and baselines.")
app.add_typer(env_app, name="env")
err = Console(stderr=True)
out = Console()

RunDir = typer.Option(Path("runs/default"), "--run-dir", help="The run directory.")
# validate and publish name the run as their argument; --run-dir, as env, mine and mutate spell it, works too.
RunArg = typer.Argument(None, help="The run directory (or --run-dir).", show_default=False)
RunDirToo = typer.Option(None, "--run-dir", help="The run directory, as the stages before this one take it.")


def _the_run(run: Path | None, run_dir: Path | None) -> Path:
    """The run named as the argument or by --run-dir (one of them; both only if they agree)."""
    if run is not None and run_dir is not None and run.resolve() != run_dir.resolve():
        raise typer.BadParameter(f"two runs named: {run} and --run-dir {run_dir}")
    if run is None and run_dir is None:
        raise typer.BadParameter("name the run directory: RUN or --run-dir RUN")
    return run if run is not None else run_dir


@app.callback()
def _every_command() -> None:
    # Before any command: SIGTERM unwinds like Ctrl-C (factory/interrupt.py), so a stopped run's
    # worker containers are closed and its sweep runs. (No docstring: it would become the help.)
    terminate_as_interrupt()


def _fail(msg: str, code: int = 1) -> None:
    from rich.markup import escape  # noqa: PLC0415  (reasons hold brackets: "system_packages: [libffi-dev]")

    err.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _log(msg: str) -> None:
    err.print(f"[dim]·[/] {msg}", highlight=False, soft_wrap=True)


def _spec(spec: str, python: str | None, commit: str | None, test_cmd: str | None) -> RepoSpec:
    kw = {"source": spec}
    if python:
        kw["python"] = python
    if commit:
        kw["commit"] = commit
    if test_cmd:
        kw["test_cmd"] = test_cmd
    try:
        rs = RepoSpec.parse(kw)
        if rs.kind == "pypi":
            rs.pypi  # noqa: B018 (validates the NAME==VERSION form)
        elif rs.kind == "npm":
            rs.npm  # noqa: B018 (validates the NAME@VERSION form)
        return rs
    except ValueError as e:
        _fail(str(e), 2)
        raise


def _report(outcome: StageOutcome) -> None:
    if not outcome.ok:
        _fail(f"{outcome.stage} {outcome.repo}: {outcome.reason}")
    verb = "reused" if outcome.skipped else "done"
    err.print(f"[green]✓[/] {outcome.stage} {outcome.repo}: {verb} in {outcome.seconds:.1f}s", highlight=False)


PythonOpt = typer.Option(None, "--python", help="Python version in the image (default 3.11).")
CommitOpt = typer.Option(None, "--commit", help="Commit to use (default HEAD).")
TestCmdOpt = typer.Option(None, "--test-cmd", help="Replace the detected test command (a pytest invocation).")


@env_app.command("build")
def env_build(spec: str = typer.Argument(..., help="A path, a git URL, pypi:NAME==VERSION or npm:NAME@VERSION."),
              run_dir: Path = RunDir, python: str | None = PythonOpt, commit: str | None = CommitOpt,
              test_cmd: str | None = TestCmdOpt,
              force: bool = typer.Option(False, "--force", help="Rebuild even if the image exists.")) -> None:
    """Build (or reuse) the environment image for SPEC."""
    rs = _spec(spec, python, commit, test_cmd)
    store = RunStore(run_dir)
    with err.status(f"environment image for {rs.source} ..."):
        outcome = stage_env(rs, store, force=force, log=_log)
    _report(outcome)
    out.print(f"{outcome.detail['tag']}  ({'cache hit' if outcome.detail['cached'] else 'built'}, "
              f"{outcome.seconds:.1f}s)", highlight=False)


@env_app.command("baseline")
def env_baseline(spec: str = typer.Argument(..., help="A path, a git URL, pypi:NAME==VERSION or npm:NAME@VERSION."),
                 run_dir: Path = RunDir, reruns: int = typer.Option(defaults.RERUNS, "--reruns", min=1, max=20),
                 coverage: bool = typer.Option(True, "--coverage/--no-coverage"),
                 timeout: float = typer.Option(defaults.TEST_TIMEOUT_S, "--timeout", help="Wall-clock limit of one run, seconds."),
                 python: str | None = PythonOpt, commit: str | None = CommitOpt,
                 test_cmd: str | None = TestCmdOpt,
                 max_error_share: float = typer.Option(0.05, "--max-error-share", min=0, max=1,
                                                       help="Refuse the baseline when more tests than this error."),
                 max_skip_share: float = typer.Option(0.05, "--max-skip-share", min=0, max=1,
                                                      help="Warn when more tests than this skip."),
                 warn_only: bool = typer.Option(False, "--warn-only", help="Warn instead of refusing (errors, "
                                                "modules that fail to collect)."),
                 force: bool = typer.Option(False, "--force", help="Redo even if a baseline exists.")) -> None:
    """Build (or reuse) SPEC's environment, then run its suite N times: outcomes, flaky set, coverage map."""
    from verifiers.truth import TruthLimits  # noqa: PLC0415

    rs = _spec(spec, python, commit, test_cmd)
    store = RunStore(run_dir)
    # The command is the two stages in order (each stage only reads the other's output).
    with err.status(f"environment image for {rs.source} ..."):
        outcome = stage_env(rs, store, log=_log)
    if not outcome.ok:
        _report(outcome)
    with err.status(f"baseline of {rs.source} ..."):
        outcome = stage_baseline(rs, store, reruns=reruns, coverage=coverage,
                                 sandbox=SandboxConfig(timeout_s=timeout), force=force, log=_log,
                                 truth=TruthLimits(max_error_share, max_skip_share, refuse=not warn_only))
    _report(outcome)
    _print_baseline(store, rs.key)


def _print_baseline(store: RunStore, key: str) -> None:
    path = store.repo(key).root / "baseline.json"
    if not path.exists():
        return
    from factory.schema import BaselineSummary  # noqa: PLC0415

    s = BaselineSummary.from_json(json.loads(path.read_text()))
    t = Table(title=f"baseline {key}", show_header=True)
    t.add_column("tests", justify="right")
    for k in sorted(s.outcomes):
        t.add_column(k, justify="right")
    t.add_column("flaky", justify="right")
    t.add_column("run wall s", justify="right")
    t.add_column("coverage lines", justify="right")
    t.add_row(str(s.num_tests), *[str(s.outcomes[k]) for k in sorted(s.outcomes)],
              str(s.num_flaky), ", ".join(f"{x:.1f}" for x in s.run_wall_s), str(s.coverage_lines))
    out.print(t)
    for w in s.warnings:
        err.print("warning: " + w, highlight=False, markup=False, style="yellow")
    for hint in s.checks.get("suggestions", []):
        err.print(f"suggestion: {hint}", highlight=False, markup=False)


@app.command("run")
def run(config: Path = typer.Argument(DEFAULT_CONFIG, help="A run config (YAML)."),
        run_dir: Path | None = typer.Option(None, "--run-dir", help="Default: runs/<config name>."),
        executor: str = typer.Option("local", "--executor",
                                     help="local: a process pool on this machine; ray: a Ray cluster."),
        ray_address: str | None = typer.Option(None, "--ray-address",
                                               help="ray: the cluster to join (auto: the one `ray start` made)."),
        registry: str | None = typer.Option(None, "--registry",
                                            help="ray: HOST[:PORT] nodes push built images to and pull from."),
        workers: int = typer.Option(0, "--workers", min=0,
                                    help="Work items (repositories) in parallel; default: one per core.")) -> None:
    """Any stages, from one config file: env, baseline, mine, mutate, combine, validate, publish, train."""
    from factory.executors import LocalExecutor  # noqa: PLC0415

    try:
        cfg = load_config(config)
    except FactoryError as e:
        _fail(str(e), 2)
        return
    if executor not in ("local", "ray"):
        _fail(f"--executor {executor!r}: choose local or ray", 2)
    store = RunStore(run_dir or Path("runs") / cfg.name)
    err.print(f"run [bold]{cfg.name}[/]: {len(cfg.repos)} repo(s), stages {', '.join(cfg.stages)} → {store.root}",
              highlight=False)
    try:
        if executor == "ray":
            from factory.executors_ray import RayExecutor  # noqa: PLC0415

            chosen = RayExecutor(address=ray_address, registry=registry)
        else:
            chosen = LocalExecutor(workers or None)
        outcomes = run_pipeline(cfg, store, log=_log, executor=chosen)
    except FactoryError as e:
        _fail(str(e), 2)
        return
    failed = [o for o in outcomes if not o.ok]
    for o in outcomes:
        mark = "[green]✓[/]" if o.ok else "[red]✗[/]"
        note = o.reason if not o.ok else f"(skipped: {o.reason})" if o.skipped and o.reason else ""
        err.print(f"{mark} {o.stage} {o.repo} {note}", highlight=False)
        if o.ok and o.stage == "baseline":
            _print_baseline(store, o.repo)
        if o.ok and o.stage in ("mutate", "validate", "train"):
            shown = {k: v for k, v in o.detail.items() if k in ("candidates", "accepted", "reasons", "steps",
                                                                 "final_loss", "eval_loss", "export")}
            out.print(f"  {o.stage}: {shown}", highlight=False, soft_wrap=True)
        if o.ok and o.stage == "publish":
            from factory.inspect_stats import inspect_dataset  # noqa: PLC0415

            inspect_dataset(store.dataset, run_dir=store.root, console=out, plots=True)
    if any(n not in ("publish", "train") for n in cfg.stages):
        from factory.summary import repo_summaries, summary_table, write_summary  # noqa: PLC0415

        rows = repo_summaries(cfg, store, outcomes)
        write_summary(store, rows)
        out.print(summary_table(rows, title=f"{cfg.name}: per repository"))
    if failed:
        _fail(f"{len(failed)} stage(s) failed; reasons in {store.root}/repos/*/failure.json")


def _specs_in_run(store: RunStore) -> list[RepoSpec]:
    specs = []
    for key in store.repo_keys():
        data = store.repo(key).read_spec()
        if data is not None:
            specs.append(RepoSpec.parse(data))
    return specs


@app.command("mutate")
def mutate(spec: str = typer.Argument(..., help="A path, a git URL, pypi:NAME==VERSION or npm:NAME@VERSION."),
           run_dir: Path = RunDir,
           max_per_function: int = typer.Option(3, "--max-per-function", min=1),
           operators: str | None = typer.Option(None, "--operators", help="Comma-separated operator names."),
           seed: int = typer.Option(0, "--seed"),
           max_candidates: int | None = typer.Option(None, "--max", min=1, help="At most this many (a seeded sample)."),
           python: str | None = PythonOpt, commit: str | None = CommitOpt,
           combine: bool = typer.Option(False, "--combine", help="Combine 2-3 validated bugs of one file into harder candidates."),
           force: bool = typer.Option(False, "--force", help="Regenerate even if candidates exist.")) -> None:
    """Candidates from injected bugs, on code the baseline's stable tests execute."""
    from factory.task_stages import stage_combine, stage_mutate  # noqa: PLC0415

    rs = _spec(spec, python, commit, None)
    store = RunStore(run_dir)
    if combine:
        with err.status(f"combining validated bugs of {rs.source} ..."):
            outcome = stage_combine(rs, store, seed=seed, log=_log)
        _report(outcome)
        out.print(f"{outcome.detail['candidates']} combined candidates from {outcome.detail['validated_bugs']} "
                  f"validated bugs → {store.repo(rs.key).candidates} (run `factory validate` next)", highlight=False)
        return
    ops = tuple(o.strip() for o in operators.split(",") if o.strip()) if operators else None
    with err.status(f"mutating {rs.source} ..."):
        outcome = stage_mutate(rs, store, seed=seed, max_per_function=max_per_function, operators=ops,
                               max_candidates=max_candidates, force=force, log=_log)
    _report(outcome)
    d = outcome.detail
    if d:
        skipped = {k: v for k, v in d.items() if k.startswith("skipped_")}
        out.print(f"{d['candidates']} candidates → {store.repo(rs.key).candidates}"
                  + (f"  (skipped: {skipped})" if skipped else ""), highlight=False)


@app.command("mine")
def mine(spec: str = typer.Argument(..., help="A path, a git URL, pypi:NAME==VERSION or npm:NAME@VERSION."),
         run_dir: Path = RunDir,
         github: str | None = typer.Option(None, "--github", help="OWNER/REPO: merged PRs through the GitHub API."),
         mirror: bool = typer.Option(False, "--mirror", help="Re-introduce merged fixes on HEAD (PR mirror)."),
         since: str | None = typer.Option(None, "--since", help="Only changes after this date (YYYY-MM-DD)."),
         max_candidates: int | None = typer.Option(None, "--max", min=1),
         commits: bool | None = typer.Option(
             None, "--commits/--no-commits",
             help="Direct fix commits too, in every mode (default: only when the history has no PRs)."),
         python: str | None = PythonOpt) -> None:
    """Candidates from merged pull requests (local history, GitHub, or the PR mirror)."""
    from factory.task_stages import stage_mine  # noqa: PLC0415

    if github and mirror:
        _fail("--github and --mirror are separate modes; pick one", 2)
    rs = _spec(spec, python, None, None)
    store = RunStore(run_dir)
    with err.status(f"mining {rs.source} ..."):
        outcome = stage_mine(rs, store, github=github, mirror=mirror, since=since, max_candidates=max_candidates,
                             include_commits=commits, log=_log)
    _report(outcome)
    d = outcome.detail
    out.print(f"{rs.key}: {d['funnel']} ({d.get('added', 0)} new)", highlight=False, soft_wrap=True)


@app.command("validate")
def validate(run: Path | None = RunArg, run_dir: Path | None = RunDirToo,
             workers: int = typer.Option(0, "--workers", help="Containers in parallel (default: CPU cores, one container each)."),
             strategy: str = typer.Option(defaults.STRATEGY, "--strategy", help="selected | full"),
             timeout: float | None = typer.Option(
                 None, "--timeout", help="Wall-clock limit of one test run, seconds (default: 10x the median baseline run)."),
             max_f2p: int = typer.Option(defaults.MAX_F2P, "--max-f2p", min=1,
                                         help="Reject bugs that break more tests."),
             confirm_fraction: float = typer.Option(
                 defaults.CONFIRM_FRACTION, "--confirm-fraction", min=0.0, max=1.0,
                 help="Audit: judge this seeded share of the selected rule's acceptances again with the full suite."),
             allow_disagreement: bool = typer.Option(
                 False, "--allow-disagreement", help="An audit disagreement is reported but does not fail the stage.")) -> None:
    """Verify every repository's candidates in containers → validations and RUN/instances.parquet."""
    run = _the_run(run, run_dir)
    import dataclasses  # noqa: PLC0415
    import time  # noqa: PLC0415

    import pyarrow.parquet as pq  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from factory.config import RunConfig  # noqa: PLC0415
    from factory.executors import LocalExecutor  # noqa: PLC0415

    if strategy not in ("selected", "full"):
        _fail(f"--strategy must be selected or full, not {strategy!r}", 2)
    store = RunStore(run)
    specs = [s for s in _specs_in_run(store) if store.repo(s.key).candidates.exists()]
    if not specs:
        _fail(f"{run}: no repository with candidates (run `factory mutate` or `factory mine` first)")
    # The same runner as `factory run`, over this run's repositories, with the validate stage only.
    cfg = RunConfig.model_validate({
        "name": store.root.name, "repos": [dataclasses.asdict(s) for s in specs], "stages": ["validate"],
        "validate": {"strategy": strategy, "workers": workers or defaults.cpu_cores(), "timeout_s": timeout,
                     "max_f2p": max_f2p, "confirm_fraction": confirm_fraction,
                     "allow_disagreement": allow_disagreement}})
    counts: dict[str, dict[str, int]] = {s.key: {} for s in specs}
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[status]}"), console=err) as bar:
        tasks = {s.key: bar.add_task(f"validate {s.key}", total=pq.read_metadata(store.repo(s.key).candidates).num_rows,
                                     status="") for s in specs}

        def _tick(v) -> None:
            c = counts.setdefault(v.repo, {})
            c[v.reason] = c.get(v.reason, 0) + 1
            acc, rej = c.get("accepted", 0), sum(n for k, n in c.items() if k != "accepted")
            reasons = ", ".join(f"{k} {n}" for k, n in sorted(c.items()) if k != "accepted")
            if v.repo in tasks:
                bar.update(tasks[v.repo], advance=1)
                t = next(x for x in bar.tasks if x.id == tasks[v.repo])
                left = (t.total or 0) - t.completed
                per_min = sum(sum(x.values()) for x in counts.values()) / max(time.monotonic() - started, 1e-6) * 60
                bar.update(tasks[v.repo], status=f"accepted {acc} · rejected {rej} ({reasons}) · {left:.0f} left · "
                                                 f"{per_min:.1f}/min")

        # One repository at a time here: each already runs --workers containers in parallel.
        outcomes = run_pipeline(cfg, store, log=_log, executor=LocalExecutor(1), progress=_tick,
                                record_config=False)
    failed = []
    for outcome in outcomes:
        if not outcome.ok:
            failed.append(outcome)
            err.print(f"[red]✗[/] validate {outcome.repo}: {outcome.reason}", highlight=False)
            continue
        d = outcome.detail
        err.print(f"[green]✓[/] validate {outcome.repo}: {d['accepted']} accepted of {d['judged']} "
                  f"({', '.join(f'{k} {n}' for k, n in sorted(d['reasons'].items()))}) in {outcome.seconds:.1f}s",
                  highlight=False)
    out.print(f"instances → {store.instances}", highlight=False)
    if failed:
        _fail(f"{len(failed)} repository(ies) could not be validated")


@app.command("evaluate")
def evaluate_cmd(dataset: str = typer.Argument(..., help="instances.parquet, a dataset folder, or a Hub id."),
                 predictions: Path = typer.Argument(..., help="SWE-bench predictions (JSONL or JSON)."),
                 run_dir: Path = RunDir, workers: int = typer.Option(defaults.GRADE_WORKERS, "--workers", min=1),
                 timeout: float = typer.Option(defaults.GRADE_TIMEOUT_S, "--timeout")) -> None:
    """Grade model patches in the sandbox; writes RUN/evaluation/<model>.json as SWE-bench does."""
    from factory.evaluate import evaluate  # noqa: PLC0415

    store = RunStore(run_dir)
    try:
        with err.status("grading ..."):
            summaries = evaluate(dataset, predictions, store, workers=workers, timeout_s=timeout,
                                 progress=lambda iid, ok: _log(f"{iid}: {'resolved' if ok else 'not resolved'}"),
                                 log=lambda m: err.print(f"[yellow]{m}[/]", highlight=False))
    except FactoryError as e:
        _fail(str(e), 2)
        return
    for model, s in summaries.items():
        out.print(f"{model}: resolved {s['resolved_instances']}/{s['submitted_instances']} "
                  f"(empty {s['empty_patch_instances']}, errors {s['error_instances']}, "
                  f"tampered {len(s['tampered_ids'])}, flagged by the screen {len(s['suspicious_ids'])}) → "
                  f"{store.root / 'evaluation'}", highlight=False)
        if s["unknown_ids"]:
            out.print(f"  unknown instance ids: {', '.join(s['unknown_ids'])}", highlight=False)


@app.command("shell")
def shell(dataset: str = typer.Argument(..., help="instances.parquet, a dataset folder, or a Hub id."),
          instance_id: str = typer.Argument(..., help="The task to open."),
          print_only: bool = typer.Option(False, "--print", help="Print the docker command instead of running it.")) -> None:
    """Open a shell in a task's image with grading's isolation (no network, no capabilities, limits)."""
    import os  # noqa: PLC0415
    import shlex  # noqa: PLC0415

    from factory.evaluate import load_instances  # noqa: PLC0415
    from verifiers.isolation import agent_command  # noqa: PLC0415

    try:
        rows = load_instances(dataset)
    except FactoryError as e:
        _fail(str(e), 2)
        return
    if instance_id not in rows:
        _fail(f"{instance_id}: not in {dataset}", 2)
        return
    cmd = agent_command(rows[instance_id]["image_name"])
    if print_only:
        out.print(shlex.join(cmd), highlight=False, soft_wrap=True)
        return
    os.execvp(cmd[0], cmd)


@app.command("publish")
def publish(run: Path | None = RunArg, run_dir: Path | None = RunDirToo,
            dataset_dir: Path | None = typer.Option(None, "--dataset-dir", help="Default: RUN/dataset."),
            push_to_hub: str | None = typer.Option(None, "--push-to-hub", help="OWNER/NAME on the Hub (HF_TOKEN)."),
            private: bool = typer.Option(False, "--private"),
            max_shard_size: str = typer.Option("500MB", "--max-shard-size"),
            fmt: str = typer.Option("hf", "--format",
                                    help="hf (a dataset folder), swebench (JSONL) or swebench-task-repo (a folder)."),
            out_file: Path | None = typer.Option(None, "--out",
                                                 help="The JSONL file (swebench) or folder (swebench-task-repo)."),
            push_images: str | None = typer.Option(None, "--push-images",
                                                   help="Push the task images to a registry (HOST:PORT or HOST:PORT/NAMESPACE); rows name them there."),
            dataset_name: str | None = typer.Option(None, "--dataset-name",
                                                    help="swebench-task-repo: the dataset sweb.yaml names."),
            tag_local_images: bool = typer.Option(False, "--tag-local-images",
                                                  help="swebench-task-repo: tag local images with the harness's names."),
            decontam: list[str] = typer.Option([], "--decontam", help="A benchmark file or Hub id (repeatable)."),
            test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of repositories held out."),
            max_per_repo: int | None = typer.Option(None, "--max-per-repo", min=1),
            max_per_operator: int | None = typer.Option(None, "--max-per-operator", min=1),
            min_f2p: int = typer.Option(1, "--min-f2p", min=1),
            overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset folder that holds another dataset.")) -> None:
    """Curate RUN's instances and write a Hugging Face dataset (or a SWE-bench JSONL)."""
    run = _the_run(run, run_dir)
    from factory.curate import CurateConfig  # noqa: PLC0415
    from factory.publish import PublishConfig, export_swebench, export_task_repo, publish_run  # noqa: PLC0415

    try:
        cfg = PublishConfig(
            curate=CurateConfig(min_f2p=min_f2p, max_per_repo=max_per_repo, max_per_operator=max_per_operator,
                                test_fraction=test_fraction),
            benchmarks=tuple(decontam), max_shard_size=max_shard_size, overwrite=overwrite,
            push_to_hub=push_to_hub, private=private, push_images=push_images)
    except ValueError as e:
        _fail(str(e), 2)
        return
    try:
        with err.status("publishing ..."):
            if fmt == "swebench":
                if out_file is None:
                    _fail("--format swebench needs --out FILE.jsonl", 2)
                report = export_swebench(run, out_file, cfg, log=_log)
            elif fmt == "swebench-task-repo":
                if out_file is None:
                    _fail("--format swebench-task-repo needs --out DIR", 2)
                report, trep = export_task_repo(run, out_file, cfg, dataset=dataset_name, tag_local=tag_local_images,
                                                log=_log)
                out.print(trep.summary(), highlight=False, soft_wrap=True)
            elif fmt == "hf":
                report = publish_run(run, dataset_dir, cfg, log=_log)
            else:
                _fail(f"--format must be hf, swebench or swebench-task-repo, not {fmt!r}", 2)
                return
    except FactoryError as e:
        _fail(str(e))
        return
    out.print(report.summary(), highlight=False, soft_wrap=True)


@app.command("pull")
def pull(dataset: str = typer.Argument(..., help="A dataset folder, instances.parquet, a JSONL export, or a Hub id."),
         only: list[str] = typer.Option([], "--instance", help="Only this instance's image (repeatable).")) -> None:
    """Pull the task images a dataset names (skips those already here; an interrupted pull resumes)."""
    from factory.evaluate import load_instances  # noqa: PLC0415
    from factory.registry import pull_images, read_images_file  # noqa: PLC0415
    from verifiers.engine import ensure_engine  # noqa: PLC0415

    try:
        shards = sorted(Path(dataset).glob("data/*.parquet")) if Path(dataset).is_dir() else []
        if shards:  # a local folder is read as it is now (datasets' cache can hold an older copy of it)
            import pyarrow.parquet as pq  # noqa: PLC0415

            rows = {r["instance_id"]: r for s in shards for r in pq.read_table(s).to_pylist()}
        else:
            rows = load_instances(dataset)
        if only:
            missing = sorted(set(only) - set(rows))
            if missing:
                _fail(f"not in {dataset}: {', '.join(missing)}", 2)
            rows = {k: v for k, v in rows.items() if k in only}
        refs = sorted({r["image_name"] for r in rows.values() if r.get("image_name")})
        records = read_images_file(Path(dataset)) if Path(dataset).is_dir() else {}
        client = ensure_engine(quiet=True)
        report = pull_images(client, refs, records, log=_log)
    except FactoryError as e:
        _fail(str(e))
        return
    out.print(report.summary(), highlight=False, soft_wrap=True)


@app.command("inspect")
def inspect(dataset_dir: Path = typer.Argument(..., help="A published dataset folder (or, with --statements, a run)."),
            run_dir: Path | None = typer.Option(None, "--run-dir", help="The run, for validation yield."),
            plots_dir: Path | None = typer.Option(None, "--plots-dir", help="Default: DIR-plots beside DIR."),
            plots: bool = typer.Option(True, "--plots/--no-plots"),
            statements: bool = typer.Option(False, "--statements", help="Print problem statements for an audit."),
            limit: int = typer.Option(30, "--limit", min=1, help="With --statements: how many (spread over sources)."),
            source: str | None = typer.Option(None, "--source", help="With --statements: only this source.")) -> None:
    """Stats tables in the terminal and PNG plots of a published dataset; --statements for an audit."""
    from factory.inspect_stats import inspect_dataset, print_statements  # noqa: PLC0415

    try:
        if statements:
            print_statements(dataset_dir, console=out, limit=limit, source=source)
            return
        inspect_dataset(dataset_dir, plots_dir=plots_dir, run_dir=run_dir, console=out, plots=plots)
    except FactoryError as e:
        _fail(str(e))


@app.command("train")
def train_cmd(dataset: str = typer.Option(..., "--dataset", help="A dataset folder or a Hub id."),
              recipe: str = typer.Option("tiny", "--recipe", help="tiny | small | medium"),
              out_dir: Path = typer.Option(Path("runs/train"), "--out"),
              steps: int | None = typer.Option(None, "--steps", min=1),
              resume: bool = typer.Option(False, "--resume", help="Continue from OUT's latest checkpoint."),
              tokenizer: str | None = typer.Option(None, "--tokenizer", help="An existing tokenizer directory."),
              seed: int | None = typer.Option(None, "--seed"),
              device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda if present)."),
              compile_model: bool | None = typer.Option(
                  None, "--compile/--no-compile", help="torch.compile layers and loss head (default: on CUDA)."),
              cuda_graph: bool | None = typer.Option(
                  None, "--cuda-graph/--no-cuda-graph", help="Replay each step as one CUDA graph (default: on CUDA)."),
              trajectories: list[str] = typer.Option(
                  [], "--trajectories", help="A trajectory dataset (factory trajectories) to mix in, DIR[@WEIGHT]; repeatable."),
              task_weight: float = typer.Option(1.0, "--task-weight", min=0.0, help="Mixture weight of --dataset."),
              trajectory_formats: str | None = typer.Option(
                  None, "--trajectory-formats", help="Comma-separated tool-call formats to train on (default: all present)."),
              seq_len: int | None = typer.Option(None, "--seq-len", min=16,
                                                 help="Tokens per packed row (default: the recipe's)."),
              ) -> None:
    """Train the bundled Qwen3-MoE-style model on a published dataset (single process; torchrun for more).

    With --trajectories, multi-turn agent trajectories are mixed in by token share (loss on the
    assistant's turns only)."""
    from trainer.errors import TrainerError  # noqa: PLC0415
    from trainer.train import parse_weighted, train  # noqa: PLC0415

    switches = {k: v for k, v in (("compile", compile_model), ("cuda_graph", cuda_graph)) if v is not None}
    try:
        res = train(dataset, recipe, out_dir, steps=steps, resume=resume, tokenizer=tokenizer, seed=seed, device=device,
                    trajectories=tuple(parse_weighted(t) for t in trajectories), task_weight=task_weight,
                    trajectory_formats=tuple(trajectory_formats.split(",")) if trajectory_formats else None,
                    seq_len=seq_len, **switches)
    except TrainerError as e:
        _fail(str(e), 2)
        return
    out.print(f"trained {res.steps_done} steps: loss {res.final_loss}, eval loss {res.eval_loss}; "
              f"export → {res.export_dir}; metrics → {res.metrics_path}", highlight=False)


@app.command("trajectories")
def trajectories_cmd(
        run: Path = typer.Argument(..., help="A run directory (its instances.parquet) or a published dataset folder."),
        out_dir: Path = typer.Option(..., "--out", help="The trajectory dataset folder to write."),
        formats: str = typer.Option("json,qwen-xml,xml-invoke,pythonic,typescript", "--formats",
                                    help="Tool-call formats, one text column each."),
        variants: str = typer.Option("direct,recovery", "--variants", help="Oracle variants: direct, recovery."),
        workers: int = typer.Option(2, "--workers", min=1, help="Sessions in parallel."),
        instance: list[str] = typer.Option([], "--instance", help="Only these instance ids (repeatable)."),
        max_tasks: int | None = typer.Option(None, "--max", min=1, help="At most this many tasks."),
        mini: list[Path] = typer.Option([], "--mini-swe-agent", help="mini-swe-agent .traj.json files to import too."),
        replay_check: bool = typer.Option(True, "--replay/--no-replay", help="Replay each kept trajectory to reward 1."),
        push_to_hub: str | None = typer.Option(None, "--push-to-hub", help="OWNER/NAME on the Hub (HF_TOKEN)."),
        private: bool = typer.Option(False, "--private")) -> None:
    """Oracle trajectories on a run's tasks (reward 1 only) → a dataset with one text per tool-call format."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from rollouts.dataset import build_trajectories, write_dataset  # noqa: PLC0415
    from rollouts.mini import import_mini_swe_agent  # noqa: PLC0415
    from rollouts.runtime import Runtime  # noqa: PLC0415
    from rollouts.tasks import load_tasks  # noqa: PLC0415

    fmts = [f for f in formats.split(",") if f]
    try:
        rows = list(load_tasks(run).values())
        if instance:
            unknown = sorted(set(instance) - {r["instance_id"] for r in rows})
            if unknown:
                _fail(f"not in {run}: {', '.join(unknown)}", 2)
            rows = [r for r in rows if r["instance_id"] in instance]
        rows = rows[:max_tasks] if max_tasks else rows
        out_dir.mkdir(parents=True, exist_ok=True)
        with Runtime() as rt, Progress(TextColumn("trajectories"), BarColumn(), MofNCompleteColumn(),
                                       TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=err) as bar:
            job = bar.add_task("t", total=len(rows) * len(variants.split(",")), last="")
            kept, skipped = build_trajectories(
                rows, out_dir, rt, variants=tuple(v for v in variants.split(",") if v), workers=workers,
                replay_check=replay_check, progress=lambda d, n, key: bar.update(job, completed=d, last=key))
        kept += [import_mini_swe_agent(p) for p in mini]
        write_dataset(kept, out_dir, fmts, name=f"trajectories of {run}")
    except FactoryError as e:
        _fail(str(e), 2)
        return
    out.print(f"{len(kept)} trajectories ({len(mini)} imported) in {len(fmts)} formats → {out_dir}; "
              f"{len(skipped)} task variants without one (why: {out_dir / 'skipped.json'})", highlight=False)
    for key, why in sorted(skipped.items()):
        err.print(f"  {key}: {why}", highlight=False)
    if push_to_hub:
        from factory.hub import push_dataset_dir  # noqa: PLC0415

        try:
            push_dataset_dir(out_dir, push_to_hub, private=private)
        except FactoryError as e:
            _fail(str(e), 2)
        out.print(f"pushed → https://huggingface.co/datasets/{push_to_hub}", highlight=False)


@app.command("engine")
def engine() -> None:
    """Make sure a Docker engine runs (installs docker.io and starts dockerd where root on Debian)."""
    from verifiers.engine import ensure_engine  # noqa: PLC0415

    try:
        client = ensure_engine()
    except FactoryError as e:
        _fail(str(e))
        return
    out.print(f"docker engine {client.version().get('Version', '?')} is running", highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
