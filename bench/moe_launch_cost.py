"""Host cost of one launch against GPU time of one call, Triton against Gluon kernels (H200).

Per shape and kernel choice: the host's microseconds per launch of the down GEMM and of dWd (50
calls, no sync between them), and the GPU's microseconds per call with the host far ahead (the calls
queued behind a long sleep kernel, so launch gaps do not show). Where the host time exceeds the GPU
time, a per-call timing measures the launch, which is why CONFIG.gluon_min_flops leaves small GEMMs
to the Triton kernels.

    python3 bench/moe_launch_cost.py
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHAPES = [(1000, 256, 256, 16, 4), (4096, 1024, 512, 32, 4), (8192, 2048, 768, 128, 8)]


def host_and_gpu_us(fn, n: int = 50) -> tuple[float, float]:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    host = (time.perf_counter() - t0) / n * 1e6
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(int(2e8))  # keeps the GPU busy while the host queues every call
    a.record()
    for _ in range(n):
        fn()
    b.record()
    b.synchronize()
    return host, a.elapsed_time(b) / n * 1e3


def main() -> int:
    import kernels.moe_triton as mt
    from kernels.moe_inputs import make_moe_inputs

    default = mt.CONFIG
    configs = {
        "triton": dataclasses.replace(default, wgrad_ws=None, grouped_mm_ws=None, g_swiglu_ws=None),
        "gluon": dataclasses.replace(default, gluon_min_flops=0),
    }
    print("| shape | kernels | down: host us / GPU us | dWd: host us / GPU us |")
    print("|---|---|---:|---:|")
    try:
        for shape in SHAPES:
            T, D, I, E, K = shape
            x, rw, _, dn = make_moe_inputs(*shape, "uniform", device="cuda", seed=1, requires_grad=False).tensors()
            r = mt.route(torch.nn.functional.linear(x, rw), K, True)
            h = torch.randn(T * K, I, device="cuda", dtype=x.dtype)
            for name, cfg in configs.items():
                mt.CONFIG = cfg
                down = host_and_gpu_us(lambda h=h, dn=dn, r=r: mt._down(h, dn, r))
                dwd = host_and_gpu_us(lambda x=x, h=h, r=r: mt._dwd(x, h, r, x.dtype))
                print(f"| {shape} | {name} | {down[0]:.0f} / {down[1]:.0f} | {dwd[0]:.0f} / {dwd[1]:.0f} |", flush=True)
    finally:
        mt.CONFIG = default
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
