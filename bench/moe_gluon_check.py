"""The Gluon kernels against the Triton paths they replace: same outputs, and each timed alone (H200).

Gate/up (CONFIG.gate_up_ws) against the Triton gate/up; the fused down-projection backward
(CONFIG.down_bwd_ws, and the G GEMM with its SwiGLU backward in the consumers, CONFIG.g_swiglu_ws) against the split Triton path (G GEMM + SwiGLU-backward pass); the weight-grad
GEMMs dWd and dWgu (CONFIG.wgrad_ws) against the Triton weight-grad kernel; down, dX and the G GEMM
(CONFIG.grouped_mm_ws) against the Triton grouped GEMM; on the same routed inputs per shape. Prints one table row per (shape, kernel, stages).

    python3 bench/moe_gluon_check.py
"""

from __future__ import annotations

import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.moe_kernels import cuda_time_ms  # noqa: E402

SHAPES = [(1000, 256, 192, 16, 4), (777, 128, 96, 40, 8), (515, 128, 256, 24, 4), (8192, 2048, 768, 128, 8),
          (32768, 2048, 768, 128, 8)]


def _diff(a: torch.Tensor, b: torch.Tensor) -> str:
    d = a.float() - b.float()
    return f"{d.abs().max().item():.1e} / {(d.norm() / b.float().norm().clamp_min(1e-30)).item():.1e}"


def check_shape(mt, shape) -> None:
    """Print the gate/up, down_bwd, weight-grad and grouped-GEMM rows of one shape (each Triton timing
    once, the Gluon kernel per configuration)."""
    from kernels.moe_inputs import make_moe_inputs

    G, default = mt.GemmConfig, mt.CONFIG
    # The references run the Triton kernels only (the default runs some GEMMs in Gluon on Hopper).
    # gluon_min_flops=0: the Gluon kernels take the small shapes too.
    base = mt.CONFIG = dataclasses.replace(default, wgrad_ws=None, grouped_mm_ws=None, g_swiglu_ws=None,
                                           gluon_min_flops=0)  # fmt: skip
    x, rw, gu, dn = make_moe_inputs(*shape, "uniform", device="cuda", seed=1, requires_grad=False).tensors()
    r = mt.route(torch.nn.functional.linear(x, rw), shape[4], True)
    dy = torch.randn_like(x)
    gu_ref, h_ref = mt._gate_up(x, gu, r)
    db_ref = mt._down_bwd(dy, dn, gu_ref, r)

    def gate_up():
        return mt._gate_up(x, gu, r)

    def down_bwd():
        return mt._down_bwd(dy, dn, gu_ref, r)

    t_gu, t_db = cuda_time_ms(gate_up, 2, 10), cuda_time_ms(down_bwd, 2, 10)
    try:
        for stages in (3, 4):
            mt.CONFIG = dataclasses.replace(base, gate_up_ws=G(128, 128, 64, 8, stages, 168))
            out = gate_up()
            diffs = f"GU {_diff(out[0], gu_ref)}, h {_diff(out[1], h_ref)}"
            print(f"| {shape} | gate_up | {stages} | {diffs} | {t_gu:.3f} | {cuda_time_ms(gate_up, 2, 10):.3f} |")
            mt.CONFIG = dataclasses.replace(base, down_bwd_ws=G(128, 128, 64, 8, stages, 128))
            out = down_bwd()
            diffs = ", ".join(f"{n} {_diff(a, b)}" for n, a, b in zip(("dGU", "hw", "dw"), out, db_ref, strict=True))
            print(f"| {shape} | down_bwd | {stages} | {diffs} | {t_db:.3f} | {cuda_time_ms(down_bwd, 2, 10):.3f} |")
        mt.CONFIG = dataclasses.replace(base, g_swiglu_ws=G(128, 256, 64, 8, 3, 168))
        mt.LAUNCH_INFO.clear()
        out = down_bwd()
        if "g_swiglu_ws" in mt.LAUNCH_INFO:
            diffs = ", ".join(f"{n} {_diff(a, b)}" for n, a, b in zip(("dGU", "hw", "dw"), out, db_ref, strict=True))
            print(f"| {shape} | G + SwiGLU bwd (g_swiglu_ws) | 3 | {diffs} | {t_db:.3f} | "
                  f"{cuda_time_ms(down_bwd, 2, 10):.3f} |", flush=True)

        def wgrad():
            return mt._dwd(dy, db_ref[1], r, x.dtype), mt._dwgu(db_ref[0], x, r, x.dtype)

        mt.CONFIG = base
        (dwd_ref, dwgu_ref), t_wg = wgrad(), cuda_time_ms(wgrad, 2, 10)
        for cfg in (G(128, 256, 64, 8, 3, 168), G(128, 256, 32, 8, 6, 168)):
            mt.CONFIG = dataclasses.replace(base, wgrad_ws=cfg)
            mt.LAUNCH_INFO.clear()
            out = wgrad()
            if not any(k.startswith("wgrad_ws") for k in mt.LAUNCH_INFO):
                print(f"| {shape} | wgrad BK={cfg.bk} | {cfg.num_stages} | (Gluon does not apply: D or I not a "
                      f"multiple of the tile) | {t_wg:.3f} | |")
                continue
            diffs = f"dWd {_diff(out[0], dwd_ref)}, dWgu {_diff(out[1], dwgu_ref)}"
            print(f"| {shape} | wgrad BK={cfg.bk} | {cfg.num_stages} | {diffs} | {t_wg:.3f} | "
                  f"{cuda_time_ms(wgrad, 2, 10):.3f} |", flush=True)
        h = torch.randn_like(db_ref[1])

        def mms():
            return mt._down(h, dn, r), mt._dxs(db_ref[0], gu, r), mt._g_gemm(dy, dn, r)

        mt.CONFIG = base
        mm_ref, t_mm = mms(), cuda_time_ms(mms, 2, 10)
        mt.CONFIG = dataclasses.replace(base, grouped_mm_ws=G(128, 256, 64, 8, 3, 168))
        mt.LAUNCH_INFO.clear()
        out = mms()
        ran = sorted(k for k in mt.LAUNCH_INFO if k.endswith("_ws"))
        diffs = ", ".join(f"{n} {_diff(a, b)}" for n, a, b in zip(("O", "dXs", "G"), out, mm_ref, strict=True))
        print(f"| {shape} | down+dx+G (Gluon: {', '.join(ran) or 'none'}) | 3 | {diffs} | {t_mm:.3f} | "
              f"{cuda_time_ms(mms, 2, 10):.3f} |", flush=True)
    finally:
        mt.CONFIG = default


def main() -> int:
    import kernels.moe_triton as mt

    print("| shape | kernel | stages | max / rel diff of the outputs | Triton ms | Gluon ms |")
    print("|---|---|---:|---|---:|---:|", flush=True)
    for shape in SHAPES:
        check_shape(mt, shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
