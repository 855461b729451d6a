"""How one fwd+bwd of the MoE block is timed, four ways, for ours and transformers grouped_mm.

bench/moe_kernels.py times each call with its own pair of CUDA events and a sync after it. This
script checks what that number contains, on the same inputs and weights:
    per-call        the bench's way: median over calls, each its own event pair, sync after each
    back-to-back    10 calls between one event pair, divided by 10 (no sync in between)
    host-ahead      ~9 ms of matmuls queued before the timed call, so the host is ahead when the
                    call's kernels start: what is left is device time, not launch gaps
    host enqueue    host wall time to issue one call while the GPU is kept busy
and the same for one CUDA-graph replay of the call. If per-call is much slower than host-ahead, the
call is launch-bound; if the graph is much faster, so is the eager path.

    python3 bench/moe_timing.py                       # (32768, 2048, 768, 128, 8), uniform
    python3 bench/moe_timing.py --shape 8192,2048,768,128,8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moe_kernels import capture_graph, cuda_times_ms, event_ms, make_hf_block, ours_fwd_bwd  # noqa: E402

from kernels.moe_inputs import make_moe_inputs  # noqa: E402


def per_call(fn, reps: int = 30) -> float:
    return statistics.median(cuda_times_ms(fn, 3, reps))


def back_to_back(fn, n: int = 10, reps: int = 5) -> float:
    out = []
    for _ in range(reps):
        torch.cuda.synchronize()
        out.append(event_ms(fn, n))
    return statistics.median(out)


def host_ahead(fn, big, reps: int = 15) -> float:
    out = []
    for _ in range(reps):
        torch.cuda.synchronize()
        for _ in range(6):
            big @ big
        out.append(event_ms(fn))
    return statistics.median(out)


def host_enqueue_ms(fn, big, reps: int = 10) -> float:
    out = []
    for _ in range(reps):
        torch.cuda.synchronize()
        for _ in range(20):  # keeps the GPU busy for longer than one call takes to issue
            big @ big
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
        torch.cuda.synchronize()
    return statistics.median(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="32768,2048,768,128,8", help="T,D,I,E,K")
    args = ap.parse_args(argv)
    T, D, I, E, K = (int(v) for v in args.shape.split(","))  # noqa: E741
    inputs = make_moe_inputs(T, D, I, E, K, "uniform", device="cuda", seed=1, requires_grad=True)
    x = inputs.tensors()[0]
    dy = torch.randn_like(x)
    hf = make_hf_block(inputs, True, "grouped_mm")
    hf_params = [x, hf.gate.weight, hf.experts.gate_up_proj, hf.experts.down_proj]

    def hf_grouped():
        torch.autograd.grad(hf(x[None])[0], hf_params, dy)

    big = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    print(f"device {torch.cuda.get_device_name()} torch {torch.__version__}; shape {(T, D, I, E, K)}, fwd+bwd ms")
    print("| impl | per-call | back-to-back | host-ahead | host enqueue | graph per-call | graph back-to-back |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, fn in (("ours", ours_fwd_bwd(inputs, True)), ("hf_grouped", hf_grouped)):
        fn()
        torch.cuda.synchronize()
        eager = (per_call(fn), back_to_back(fn), host_ahead(fn, big), host_enqueue_ms(fn, big))
        graph = capture_graph(fn)
        replay = (per_call(graph.replay), back_to_back(graph.replay))
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in (*eager, *replay)) + " |", flush=True)
        del graph
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
