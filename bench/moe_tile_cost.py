"""Where an M-grouped GEMM's time goes per tile: the main loop's K steps, and a fixed cost per tile.

The fifteenth session's ceiling (bench/moe_kernels.py, "dense") put ours 0.3-0.4 ms over cuBLAS on
the down and dX GEMMs, with main loops that looked at least as fast as cuBLAS's. This separates the
two: one GEMM shape of the MoE's, (S, N) = (T*k, D) over E experts with uniform routing, timed at
several K (the expert width's place), and a least-squares line t(K) = tiles_per_SM * (K / BK * step
+ fixed) per implementation. `step` is the time of one K step of a (BM, BN, BK) tile on one SM;
`fixed` what a tile costs beyond its K steps (the epilogue and whatever the pipeline loses between
tiles). cuBLAS runs the same work as a batched matmul over E equal groups (its tiles are its own, so
its "fixed" is per our tile-equivalent: the line's intercept spread over the same tile count).

    python3 bench/moe_tile_cost.py                                      # the default variants
    python3 bench/moe_tile_cost.py --variants tma3,early --ks 256,512,768,1536,3072

Variants (kernels/moe_triton.py CONFIG fields): tma3 = the default grouped_mm_ws (TMA-store epilogue,
3 stages); early = the row scale and the next tile's coordinates off the path between tiles
(grouped_mm_epi="early"); sub4 = early, with whole tiles stored in two halves through a half-size
buffer at 4 stages (grouped_mm_epi="sub"); pp4 / pp5 = the
ping-pong kernel (grouped_mm_pp, a (128, 128) tile per consumer warpgroup), 4 or 5 stages;
scale = the down GEMM's row scale (routing weight) on, as in the forward's down projection.
Needs a Hopper GPU (the Gluon kernels); prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.moe_kernels import cuda_time_ms  # noqa: E402
from kernels.moe_inputs import make_moe_inputs  # noqa: E402
from kernels.moe_triton import GemmConfig  # noqa: E402


def variants(default) -> dict:
    G = GemmConfig
    return {
        "tma3": default,
        "early": dataclasses.replace(default, grouped_mm_epi="early"),
        "sub4": dataclasses.replace(default, grouped_mm_epi="sub", grouped_mm_ws=G(128, 256, 64, 8, 4, 168)),
        "pp4": dataclasses.replace(default, grouped_mm_pp=G(128, 128, 64, 4, 4, 168)),
        "pp5": dataclasses.replace(default, grouped_mm_pp=G(128, 128, 64, 4, 5, 168)),
    }


def fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = a x + b: (a, b, r2)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    b = my - a * mx
    ss = sum((y - my) ** 2 for y in ys)
    r2 = 1 - sum((y - (a * x + b)) ** 2 for x, y in zip(xs, ys, strict=True)) / ss if ss else 1.0
    return a, b, r2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="32768,2048,128,8", help="T,N,E,k (N: the output width, D)")
    ap.add_argument("--ks", default="256,512,768,1536,3072")
    ap.add_argument("--variants", default="tma3,early,sub4,pp4,pp5")
    ap.add_argument("--scale", action="store_true", help="the row scale on (the down GEMM's routing weight)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] != 9:
        print("needs a Hopper GPU (the Gluon kernels): nothing timed")
        return 0
    import kernels.moe_triton as mt

    T, N, E, k = (int(v) for v in args.shape.split(","))
    ks = [int(v) for v in args.ks.split(",")]
    table = variants(mt.CONFIG)
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in table]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(table)}")
    inputs = make_moe_inputs(T, N, 64, E, k, "uniform", device="cuda", seed=3, requires_grad=False)
    x, rw = inputs.x_TD, inputs.router_w_ED
    r = mt.route(F.linear(x, rw), k, True)
    S = T * k
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    dt = torch.bfloat16
    got: dict[tuple[str, int], list[float]] = {}
    for K in ks:
        a = torch.randn(S, K, device="cuda", dtype=dt) * 0.1
        w = torch.randn(E, N, K, device="cuda", dtype=dt) * 0.1  # (E, N, K): the down projection's layout
        a3, wt, out = a.view(E, S // E, K), w.transpose(1, 2), torch.empty(E, S // E, N, device="cuda", dtype=dt)
        scale = r.w_S if args.scale else None
        for _ in range(args.rounds):
            for name in names:
                mt.CONFIG = dataclasses.replace(table[name], gluon_min_flops=0)

                def ours(a=a, w=w, K=K, scale=scale):
                    return mt._grouped_mm(a, w, N * K, 1, K, N, r, scale, mt.CONFIG.down, name="mm")

                got.setdefault((name, K), []).append(cuda_time_ms(ours, 2, args.reps))
            got.setdefault(("cublas", K), []).append(
                cuda_time_ms(lambda a3=a3, wt=wt, out=out: torch.bmm(a3, wt, out=out), 2, args.reps))
        del a, w, a3, wt, out
    mt.CONFIG = table["tma3"]
    cfg = table["tma3"].grouped_mm_ws
    tiles = int(((r.counts_E + cfg.bm - 1) // cfg.bm).sum()) * -(-N // cfg.bn)  # the real (BM, BN) tiles
    per_sm = tiles / sms
    print(f"(S, N, E) = ({S}, {N}, {E}), uniform routing (the router's, not exactly equal), scale {'on' if args.scale else 'off'}; "
          f"{tiles} tiles of {cfg.bm}x{cfg.bn}, {per_sm:.1f} per SM ({sms} SMs); ms = median of "
          f"{args.rounds} rounds of {args.reps} calls")
    print(f"(step and fixed per {cfg.bm}x{cfg.bn} tile's work, whatever tile an implementation runs: pp runs two "
          "128x128 tiles for one)")
    print("| impl | " + " | ".join(f"K={K} ms" for K in ks) + " | us per K step (BK=64) | us fixed per tile | r2 |")
    print("|---|" + "---:|" * (len(ks) + 3))
    for name in [*names, "cublas"]:
        ms = [statistics.median(got[name, K]) for K in ks]
        steps = [K / cfg.bk for K in ks]
        a_, b_, r2 = fit(steps, [m * 1e3 / per_sm for m in ms])
        print(f"| {name} | " + " | ".join(f"{m:.3f}" for m in ms) + f" | {a_:.3f} | {b_:.2f} | {r2:.4f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
