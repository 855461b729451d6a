"""trainer.cudagraph.GraphedStep: a captured training step replays to the same losses as eager steps."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainer.config import tiny
from trainer.cudagraph import GraphedStep
from trainer.model import MoEDecoder


def test_warmup_must_be_positive():
    with pytest.raises(ValueError, match="warmup"):
        GraphedStep(lambda b: b, warmup=0)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # no optimizer step here
def test_capturable_optimizer_learning_rate_is_one_tensor_the_scheduler_fills():
    # A captured step reads the learning rate from device memory; the schedule reaches it only if
    # every scheduler step writes into that same tensor instead of replacing it.
    from trainer.train import _optimizer, lr_lambda

    cfg = tiny(256)
    model = MoEDecoder(cfg.model)
    opt = _optimizer(model, cfg, torch.device("cpu"), capturable=True)
    tensors = [g["lr"] for g in opt.param_groups]
    assert all(isinstance(t, torch.Tensor) for t in tensors)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    seen = []
    for _ in range(4):
        sched.step()
        assert all(g["lr"] is t for g, t in zip(opt.param_groups, tensors, strict=True))
        seen.append(float(tensors[0]))
    expected = [cfg.lr * lr_lambda(cfg)(s) for s in range(1, 5)]
    assert seen == pytest.approx(expected)
    assert len(set(seen)) == len(seen)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graphed_steps_equal_eager_steps_and_new_batches_are_used():
    cfg = dataclasses.replace(tiny(256).model, attn_impl="flex")
    torch.manual_seed(0)
    init = MoEDecoder(cfg).state_dict()
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(6):
        ids = torch.randint(0, 256, (2, 128), generator=g)
        doc = torch.cat([torch.zeros(2, 50, dtype=torch.long), torch.ones(2, 78, dtype=torch.long)], 1)
        pos = torch.cat([torch.arange(50), torch.arange(78)]).expand(2, 128)
        batches.append({"input_ids": ids.cuda(), "labels": torch.roll(ids, -1, 1).cuda(),
                        "position_ids": pos.contiguous().cuda(), "doc_ids": doc.cuda()})
    curves = []
    for graphed in (False, True):
        model = MoEDecoder(cfg).cuda().to(torch.bfloat16)
        model.load_state_dict(init)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True, capturable=graphed)

        def step(b, model=model, opt=opt):
            out = model(b["input_ids"], b["position_ids"], b["doc_ids"], b["labels"])
            loss = out.ce_sum / b["labels"].numel()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return {"loss": loss.detach()}

        run = GraphedStep(step, warmup=2) if graphed else step
        curves.append([run(b)["loss"].item() for b in batches])
        if graphed:
            assert run.captured
    eager, graphed = curves
    assert len(set(graphed)) == len(graphed)  # each replay saw its own batch and updated weights
    torch.testing.assert_close(torch.tensor(graphed), torch.tensor(eager), rtol=2e-3, atol=2e-3)


def _losses(out):
    import json

    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trainer_with_cuda_graph_repeats_the_eager_curve_and_resumes(tiny_dataset, tmp_path):
    from trainer.train import train

    kw = {"steps": 6, "progress": False, "compile": True, "device": "cuda"}
    eager = train(str(tiny_dataset), "tiny", tmp_path / "eager", cuda_graph=False, **kw)
    graphed = train(str(tiny_dataset), "tiny", tmp_path / "graph", cuda_graph=True, **kw)
    torch.testing.assert_close(torch.tensor(_losses(graphed.out_dir)), torch.tensor(_losses(eager.out_dir)),
                               rtol=2e-2, atol=2e-2)
    assert graphed.export_dir is not None and (graphed.export_dir / "config.json").exists()
    # Interrupted after 3 steps and resumed: the restored learning rate must reach the captured step.
    from trainer.config import tiny as tiny_recipe
    from trainer.train import run

    cfg = tiny_recipe().replace(steps=6, compile=True, cuda_graph=True)
    run(cfg, str(tiny_dataset), tmp_path / "resumed", stop_after=3, device="cuda", progress=False)
    run(cfg, str(tiny_dataset), tmp_path / "resumed", resume=True, device="cuda", progress=False)
    torch.testing.assert_close(torch.tensor(_losses(tmp_path / "resumed")), torch.tensor(_losses(graphed.out_dir)),
                               rtol=2e-2, atol=2e-2)
