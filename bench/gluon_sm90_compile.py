"""Compile the Gluon MoE kernels for sm_90 without a GPU and print registers, spills and shared memory.

Needs only `pip install triton` (its bundled ptxas); no CUDA device. This is how the Gluon kernels'
register budgets (kernels/_moe_gluon_kernels.py: EPILOGUE_REGS, SR) and stage counts were chosen
before spending device time: a spill or a shared-memory overflow shows here in seconds.

    python3 bench/gluon_sm90_compile.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SMEM_LIMIT = 232448  # bytes of dynamic shared memory per block on sm_90

# (kernel, BM, BN, BK, stages, maxnreg)
CASES = [
    ("gate_up", 128, 128, 64, 3, 168),
    ("gate_up", 128, 128, 64, 4, 168),
    ("gate_up", 128, 128, 32, 8, 168),
    ("gate_up_mma", 128, 128, 64, 4, 168),  # GU and h stored from the accumulators' layout
    ("gate_up_pp", 128, 64, 64, 4, 168),  # ping-pong: two 4-warp consumers, (128, 2 x 64) each
    ("gate_up_pp", 128, 64, 64, 5, 168),
    ("down_bwd", 128, 128, 64, 3, 128),
    ("down_bwd", 128, 128, 64, 4, 128),
    ("wgrad", 128, 256, 64, 3, 168),
    ("wgrad_t", 128, 256, 64, 3, 168),
    ("wgrad_t", 128, 256, 32, 6, 168),
    ("mm_down", 128, 256, 64, 3, 168),
    ("mm_dx", 128, 256, 64, 3, 168),
    ("mm_g", 128, 256, 64, 3, 168),
    ("mm_down_early", 128, 256, 64, 3, 168),  # scale and the next tile's coordinates early
    ("pp_down", 128, 128, 64, 4, 168),  # ping-pong: two 4-warp consumers, a (128, 128) tile each
    ("pp_down", 128, 128, 64, 5, 168),
    ("pp_dx", 128, 128, 64, 5, 168),
    ("mm_dx_early", 128, 256, 64, 3, 168),
    ("mm_down_sub", 128, 256, 64, 4, 168),  # and the tile stored in two halves: room for a 4th stage
    ("mm_dx_sub", 128, 256, 64, 4, 168),
    ("g_swiglu", 128, 256, 64, 3, 168),  # SR = 16 (G_SWIGLU_SR)
    ("g_swiglu32", 128, 256, 64, 3, 168),  # SR = 32
    ("g_swiglu_pf2", 128, 256, 64, 3, 168),  # SR = 16, two slices ahead
    ("g_swiglu8_pf2", 128, 256, 64, 3, 168),  # SR = 8, two slices ahead
]


def compile_case(kernel: str, bm: int, bn: int, bk: int, stages: int, maxnreg: int) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon._runtime import GluonASTSource

    from kernels import _moe_gluon_kernels as g

    def desc(block):
        return f"tensordesc<bf16[{block[0]},{block[1]}],{gl.NVMMASharedLayout.get_default_for(block, gl.bfloat16)!r}>"

    if kernel.startswith("gate_up"):
        fn = g.gate_up_pp_kernel if kernel == "gate_up_pp" else g.gate_up_ws_kernel
        ptrs = {"x_ptr": "*bf16", "tok_ptr": "*i32", "counts_ptr": "*i32", "gu_ptr": "*bf16", "h_ptr": "*bf16"}
        sig = {**ptrs, "w_desc": desc([bn, bk]), "D": "i32", "I": "i32"}
        warps = 4 if kernel == "gate_up_pp" else 8
        const = dict(E=128, E_P=128, BM=bm, BN=bn, BK=bk, STAGES=stages, NUM_PROGRAMS=132, num_warps=warps)
        if kernel == "gate_up_mma":
            const["EPI_MMA"] = True
    elif kernel.startswith("wgrad"):
        fn = g.wgrad_ws_kernel
        out_t = kernel == "wgrad_t"
        ptrs = {"a_ptr": "*bf16", "tok_ptr": "*i32", "counts_ptr": "*i32", "offsets_ptr": "*i32"}
        out_block = [bn, bm] if out_t else [bm, bn]
        sig = {**ptrs, "b_desc": desc([bk, bn]), "out_desc": desc(out_block), "M": "i32", "N": "i32",
               "stride_a": "i32"}
        const = dict(E=128, BM=bm, BN=bn, BK=bk, STAGES=stages, NUM_PROGRAMS=132, OUT_T=out_t, num_warps=8)
        sizes = ["M", "N", "stride_a"]
    elif kernel.startswith("mm_"):
        fn = g.grouped_mm_ws_kernel
        gather, b_nk = kernel.startswith("mm_g"), kernel.startswith("mm_down")
        ptrs = {"tok_ptr": "*i32", "counts_ptr": "*i32", "c_ptr": "*bf16", "scale_ptr": "*fp32"}
        sig = {"a_src": "*bf16" if gather else desc([bm, bk]), "tok_ptr": "*i32", "counts_ptr": "*i32",
               "b_desc": desc([bn, bk] if b_nk else [bk, bn]), "c_ptr": "*bf16",
               "c_desc": desc([bm, bn // 2] if kernel.endswith("_sub") else [bm, bn]),
               "scale_ptr": "*fp32", "K": "i32", "N": "i32"}
        if gather:
            ptrs["a_src"] = "*bf16"
        const = dict(E=128, E_P=128, BM=bm, BN=bn, BK=bk, STAGES=stages, NUM_PROGRAMS=132, GATHER=gather,
                     B_MODE=int(b_nk), HAS_SCALE=b_nk, num_warps=8, EARLY=kernel.endswith(("_early", "_sub")),
                     SUB=kernel.endswith("_sub"))
        sizes = ["K", "N"]
    elif kernel.startswith("pp_"):
        fn = g.grouped_mm_pp_kernel
        b_nk = kernel == "pp_down"
        ptrs = {"tok_ptr": "*i32", "counts_ptr": "*i32", "c_ptr": "*bf16", "scale_ptr": "*fp32"}
        sig = {"a_desc": desc([bm, bk]), "tok_ptr": "*i32", "counts_ptr": "*i32",
               "b_desc": desc([bn, bk] if b_nk else [bk, bn]), "c_ptr": "*bf16", "c_desc": desc([bm, bn]),
               "scale_ptr": "*fp32", "K": "i32", "N": "i32"}
        const = dict(E=128, E_P=128, BM=bm, BN=bn, BK=bk, STAGES=stages, NUM_PROGRAMS=132, B_MODE=int(b_nk),
                     HAS_SCALE=b_nk, num_warps=4)
        sizes = ["K", "N"]
    elif kernel.startswith("g_swiglu"):
        fn = g.g_swiglu_ws_kernel
        ptrs = {"dy_ptr": "*bf16", "tok_ptr": "*i32", "counts_ptr": "*i32"}
        outs = {"gu_ptr": "*bf16", "w_ptr": "*fp32", "dgu_ptr": "*bf16", "hw_ptr": "*bf16", "dw_ptr": "*fp32"}
        sig = {**ptrs, "wd_desc": desc([bk, bn]), **outs, "D": "i32", "I": "i32"}
        ptrs.update(outs)
        sr = 32 if kernel.endswith("32") else 8 if kernel.startswith("g_swiglu8") else 16
        pf = 2 if kernel.endswith("pf2") else 1
        const = dict(E=128, E_P=128, BM=bm, BN=bn, BK=bk, STAGES=stages, SR=sr, PF=pf, NUM_PROGRAMS=132,
                     num_warps=8)
    else:
        fn = g.down_bwd_ws_kernel
        ptrs = {"dy_ptr": "*bf16", "tok_ptr": "*i32", "counts_ptr": "*i32"}
        outs = {"w_ptr": "*fp32", "dgu_ptr": "*bf16", "hw_ptr": "*bf16", "dw_ptr": "*fp32"}
        sig = {**ptrs, "gu_desc": desc([bm, bn]), **outs, "wd_desc": desc([bk, bn]), "D": "i32", "I": "i32"}
        ptrs.update(outs)
        const = dict(E=128, E_P=128, BM=bm, BN=bn, BK=bk, STAGES=stages, SR=8, NUM_PROGRAMS=132, num_warps=8)
    for c in const:
        sig[c] = "constexpr"
    # What the launcher specialises at run time for 16-aligned pointers and sizes (D=2048, I=768).
    sizes = sizes if kernel.startswith(("wgrad", "mm_", "pp_")) else ["D", "I"]
    attrs = {(fn.arg_names.index(n),): [["tt.divisibility", 16]] for n in [*ptrs, *sizes]}
    cc = triton.compile(
        GluonASTSource(fn=fn, signature=sig, constexprs=const, attrs=attrs),
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": const["num_warps"], "maxnreg": maxnreg},
    )
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.ptx")
        with open(path, "w") as f:
            f.write(cc.asm["ptx"])
        info = subprocess.run(
            [ptxas, "-v", "-arch=sm_90a", path, "-o", os.devnull], capture_output=True, text=True, check=True
        ).stderr
    spills = re.search(r"(\d+) bytes spill stores", info)
    maxn = [int(v) for v in re.findall(r"setmaxnreg\.\w+\.sync\.aligned\.u32\s+(\d+)", cc.asm["ptx"])]
    return dict(
        warps=cc.metadata.num_warps,
        spill=int(spills.group(1)) if spills else -1,
        shared=cc.metadata.shared,
        partition_regs=sorted(set(maxn)),
    )


def main() -> int:
    print("| kernel | BM x BN x BK | stages | maxnreg | warps | spill bytes | shared bytes (limit 232448) | setmaxnreg values |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    bad = 0
    for kernel, bm, bn, bk, stages, maxnreg in CASES:
        r = compile_case(kernel, bm, bn, bk, stages, maxnreg)
        bad += r["spill"] != 0 or r["shared"] > SMEM_LIMIT
        print(
            f"| {kernel} | {bm}x{bn}x{bk} | {stages} | {maxnreg} | {r['warps']} | {r['spill']} | {r['shared']} | "
            f"{r['partition_regs']} |",
            flush=True,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
