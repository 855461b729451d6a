"""One rank of test_ep.py's end-to-end check: `trainer.train.run` under expert parallelism (gloo, CPU).

    torchrun --standalone --nproc-per-node N tests/trainer/ep_train_worker.py --dataset D --tokenizer T \\
        --out DIR --ep EP

Three runs of the tiny recipe in one process group, each into its own folder under DIR:
    whole/  4 steps, checkpoint and export at the end;
    cut/    the same run stopped after 2 steps as if interrupted, then resumed (`resume=True`) to 4;
    relayout/  a copy of cut/ at step 2, resumed to 4 with FSDP2 alone (ep 1): checkpoints hold full
            tensors, so another layout can continue them.
Rank 0 writes DIR/result.json with what each run returned.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ep", type=int, required=True)
    a = p.parse_args()
    import torch
    import torch.distributed as dist

    from trainer.config import tiny
    from trainer.train import run

    torch.set_num_threads(1)
    out = Path(a.out)
    cfg = tiny().replace(steps=4, micro_batch_size=1, grad_accum=1, fsdp=True, ep=a.ep, save_every=0)
    kw = {"tokenizer": a.tokenizer, "progress": False, "device": "cpu"}
    whole = run(cfg, a.dataset, out / "whole", **kw)
    cut = run(cfg, a.dataset, out / "cut", stop_after=2, **kw)
    if int(os.environ["RANK"]) == 0:
        shutil.copytree(out / "cut", out / "relayout")
    dist.barrier()
    resumed = run(cfg, a.dataset, out / "cut", resume=True, export_model=False, **kw)
    relayout = run(cfg.replace(ep=1), a.dataset, out / "relayout", resume=True, export_model=False, **kw)
    if int(os.environ["RANK"]) == 0:
        summary = lambda r: {"steps_done": r.steps_done, "eval_loss": r.eval_loss,  # noqa: E731
                             "export": str(r.export_dir) if r.export_dir else None}
        (out / "result.json").write_text(json.dumps({"whole": summary(whole), "cut": summary(cut),
                                                     "resumed": summary(resumed),
                                                     "relayout": summary(relayout)}))
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # as trainer.train._exit: no interpreter finalization with FSDP2's gloo threads alive


if __name__ == "__main__":
    main()
