"""``python -m rollouts``: sessions from the shell, replays, renderings, imports.

    python -m rollouts open DATASET INSTANCE_ID            prints the session's name
    python -m rollouts exec NAME 'python -m pytest -x' [--timeout 60]
    python -m rollouts read NAME PATH [--start 1 --end 40]
    python -m rollouts write NAME PATH < content
    python -m rollouts edit NAME PATH --old TEXT --new TEXT
    python -m rollouts diff NAME
    python -m rollouts submit NAME                         grades the diff; prints the reward (JSON)
    python -m rollouts close NAME | sweep [--all]
    python -m rollouts replay DATASET TRAJ_DIR [--workers 2]   every trajectory in a fresh session → rewards
    python -m rollouts render TRAJ.json --format qwen-xml
    python -m rollouts import-mini RUN.traj.json --out TRAJ.json

A CLI session is a container owned by ``cli``: it outlives the command, so close it (or
``sweep --all``). The API (``rollouts.runtime.Runtime``) cleans up after itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from factory.errors import FactoryError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])


def _client():
    from verifiers.engine import ensure_engine  # noqa: PLC0415

    return ensure_engine(quiet=True)


def _session(name: str):
    from rollouts.runtime import DATASET, INSTANCE, attach  # noqa: PLC0415
    from rollouts.tasks import load_tasks  # noqa: PLC0415

    client = _client()
    try:
        labels = client.containers.get(name).labels or {}
    except Exception:
        _die(f"no session {name!r}")
    row = load_tasks(labels[DATASET])[labels[INSTANCE]]
    return attach(client, name, row)


def _die(msg: str, code: int = 2):
    print(f"error: {msg}", file=sys.stderr)
    raise typer.Exit(code)


@app.command("open")
def open_(dataset: str, instance_id: str) -> None:
    """Start a session container on a task; print its name."""
    from rollouts.runtime import Runtime  # noqa: PLC0415
    from rollouts.tasks import load_tasks  # noqa: PLC0415

    rows = load_tasks(dataset)
    if instance_id not in rows:
        _die(f"{instance_id}: not in {dataset}")
    rt = Runtime(_client(), owner="cli", dataset=str(Path(dataset).resolve()) if Path(dataset).exists() else dataset)
    s = rt.open(rows[instance_id])
    from rollouts.runtime import _LIVE  # noqa: PLC0415

    _LIVE.discard(rt)  # outlives this command
    print(s.name)


@app.command("exec")
def exec_(name: str, command: str, timeout: float = typer.Option(60.0, "--timeout")) -> None:
    obs = _session(name).exec(command, timeout)
    print(obs.text())
    raise typer.Exit(0 if obs.exit_code == 0 else 1)


@app.command("read")
def read(name: str, path: str, start: int | None = typer.Option(None, "--start"),
         end: int | None = typer.Option(None, "--end")) -> None:
    sys.stdout.write(_session(name).call("read", {"path": path, **({"start_line": start} if start else {}),
                                                 **({"end_line": end} if end else {})}))


@app.command("write")
def write(name: str, path: str) -> None:
    print(_session(name).call("write", {"path": path, "content": sys.stdin.read()}))


@app.command("edit")
def edit(name: str, path: str, old: str = typer.Option(..., "--old"), new: str = typer.Option(..., "--new")) -> None:
    print(_session(name).call("edit", {"path": path, "old": old, "new": new}))


@app.command("diff")
def diff(name: str) -> None:
    sys.stdout.write(_session(name).diff())


@app.command("submit")
def submit(name: str) -> None:
    sub = _session(name).submit()
    print(json.dumps({"reward": sub.reward, **sub.result.report()}, indent=1))


@app.command("close")
def close(name: str) -> None:
    _session(name).close()


@app.command("sweep")
def sweep(everything: bool = typer.Option(False, "--all", help="CLI sessions too.")) -> None:
    from rollouts.runtime import sweep_orphans  # noqa: PLC0415

    print(f"removed {sweep_orphans(_client(), everything)} container(s)")


@app.command("replay")
def replay_cmd(dataset: str, trajectories: Path, workers: int = typer.Option(2, "--workers", min=1)) -> None:
    """Replay every trajectory of a folder in a fresh session; print each reward; exit 1 unless all are 1."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    from rich.progress import track  # noqa: PLC0415

    from rollouts.dataset import load_trajectories  # noqa: PLC0415
    from rollouts.oracle import replay  # noqa: PLC0415
    from rollouts.runtime import Runtime  # noqa: PLC0415
    from rollouts.tasks import load_tasks  # noqa: PLC0415

    rows = load_tasks(dataset)
    trajs = load_trajectories(trajectories)
    with Runtime(_client()) as rt, ThreadPoolExecutor(workers) as pool:
        futs = [pool.submit(replay, rt, rows[t.meta["instance_id"]], t) for t in trajs]
        results = [f.result() for f in track(futs, description="replay", console=None)]
    bad = 0
    for t, (reward, diffs) in zip(trajs, results, strict=True):
        bad += reward != 1.0
        print(f"{t.meta['instance_id']}.{t.meta.get('variant')}: reward {reward:g}"
              + (f" (observations differ at {diffs})" if diffs else ""))
    print(f"{len(trajs) - bad}/{len(trajs)} replayed to reward 1")
    raise typer.Exit(1 if bad else 0)


@app.command("render")
def render_cmd(trajectory: Path, fmt: str = typer.Option("json", "--format")) -> None:
    from rollouts.record import Trajectory  # noqa: PLC0415
    from rollouts.templates import render  # noqa: PLC0415

    sys.stdout.write(render(fmt, Trajectory.from_json(trajectory.read_text())))


@app.command("import-mini")
def import_mini(traj: Path, out: Path = typer.Option(..., "--out")) -> None:
    from rollouts.mini import import_mini_swe_agent  # noqa: PLC0415

    t = import_mini_swe_agent(traj)
    out.write_text(json.dumps(t.to_dict(), ensure_ascii=False, indent=1))
    print(f"{len(t.messages)} messages, {t.num_calls} calls → {out}")


def main() -> None:
    try:
        app()
    except FactoryError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
