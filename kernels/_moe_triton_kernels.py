"""Triton kernels of the fused MoE path (imported only by kernels/moe_triton.py, only when it runs).

Layout (legend in kernels/moe_reference.py). "Sorted" rows are the S = T*K token-expert assignments
grouped by expert, expert e owning rows [offsets[e], offsets[e] + counts[e]), and inside an expert
ordered by token (deterministic, like a stable sort). tok_S[s] is the token of sorted row s,
w_S[s] its routing weight (float32 of the x-dtype value), pos_TK[t, j] the sorted row of token t's
j-th choice. Weights: gate_up (E, 2I, D) and down (E, D, I), both contiguous (last stride 1).

Kernels, in call order:
  router     _router_topk_kernel  per chunk of tokens: softmax(fp32) + top-k + renorm, the rank of
                                  each assignment inside its chunk, the chunk's histogram, and exact
                                  integer counts per expert
             _scatter_kernel      per chunk: its first sorted row per expert (offsets + earlier
                                  chunks' histograms) -> sorted position of each assignment
  forward    _gate_up_swiglu_kernel  gathers X rows in its loads; writes pre-activation GU (S, 2I)
                                     (saved for backward) and h = silu(g) * u (S, I); by default
                                     one 3-D TMA box per step holds a tile's gate and up rows (JOINT)
             _grouped_mm_kernel      down projection, scaled by w_S in the epilogue -> O (S, D)
             _combine_kernel         y[t] = sum_j O[pos[t, j]] in float32
  backward   _grouped_mm_kernel      (default, "split") G = dY[tok] @ Wd[e] with gathered A rows, then
             _swiglu_bwd_kernel      one pass: recompute h from GU, routing-weight grad h.G, dGU, h*w
         or  _down_bwd_swiglu_kernel (down_bwd_split=False) the same in the GEMM's epilogue: fewer
                                     bytes, but it spills registers and runs slower (kernels/NOTES.md)
             _grouped_wgrad_kernel   dWd[e] = dY[tok]^T (h w), dWgu[e] = dGU^T X[tok], gathering
                                     (the gather indices carried one step ahead: IDX_PREFETCH);
                                     dWgu by default as (X[tok]^T dGU) stored transposed (OUT_T),
                                     so the gathered rows are the tile's M side, as in dWd
             _grouped_mm_kernel      dXs = dGU @ Wgu[e], then _combine_kernel adds the K rows per token
             _router_bwd_kernel      dlogits from the routing-weight grads (softmax/top-k/renorm)
The grouped GEMMs (and gate/up) also come as persistent kernels (*_persistent_kernel: one program per
SM walking the real tiles), which CONFIG picks (kernels/moe_triton.py, TritonMoEConfig).
No kernel synchronises with the host: tile-to-expert maps are derived on the device from counts.
TMA descriptors (host-made, triton.tools.tensor_descriptor) load the weights and every operand that
is not gathered; gathered rows go through pointer loads. Where a TMA tile runs past an expert's rows
the extra rows either are never stored or meet zeroed (masked) rows of the other operand.
"""

# ruff: noqa: E741  (I is the expert width, as in the shape legend)

import triton
import triton.language as tl

# --------------------------------------------------------------------------------------------
# Router and permutation
# --------------------------------------------------------------------------------------------


@triton.jit
def _softmax_rows(logits_ptr, offs_t, offs_e, mask_t, mask_e, E):
    """float32 softmax of the (offs_t, offs_e) tile of (T, E) logits: 0 at masked experts, finite
    (and unused) on masked rows. The forward's top-k and the backward read the same probabilities."""
    logits = tl.load(
        logits_ptr + offs_t[:, None].to(tl.int64) * E + offs_e[None, :],
        mask=mask_t[:, None] & mask_e[None, :],
        other=float("-inf"),
    ).to(tl.float32)
    row_max = tl.where(mask_t, tl.max(logits, axis=1), 0.0)
    num = tl.exp(logits - row_max[:, None])
    den = tl.where(mask_t, tl.sum(num, axis=1), 1.0)
    return num / den[:, None]


@triton.jit
def _router_topk_kernel(
    logits_ptr,  # (T, E) x dtype
    top_idx_ptr,  # (T, K) int32, out
    top_w_ptr,  # (T, K) x dtype, out
    rank_ptr,  # (T, K) int32, out: rank among the same-expert assignments of this chunk
    hist_ptr,  # (NC, E) int32, out: assignments per (chunk, expert)
    counts_ptr,  # (E,) int32, zeroed: assignments per expert
    T,
    CT,  # tokens per chunk, a multiple of BT
    E: tl.constexpr,
    E_P: tl.constexpr,
    K: tl.constexpr,
    K_P: tl.constexpr,
    BT: tl.constexpr,
    NORM: tl.constexpr,
    GATHER: tl.constexpr = False,
):
    """One program per chunk of CT tokens, BT at a time: softmax(fp32), top-k, renorm, and the rank
    of each assignment among the chunk's earlier ones with the same expert (token order).

    GATHER: each pick is one (max, index) reduction over the row (lowest index on ties) and the ranks
    are read with tl.gather, instead of two reductions per pick and one masked reduction over the
    (BT, E) tile per rank: the loop is reductions end to end, which is what it costs at E = 512."""
    pid = tl.program_id(0)
    offs_e = tl.arange(0, E_P)
    offs_k = tl.arange(0, K_P)
    mask_e = offs_e < E
    run = tl.zeros((E_P,), dtype=tl.int32)  # this chunk's assignments per expert so far
    for t0 in range(pid * CT, pid * CT + CT, BT):  # the last chunk's rows past T are masked
        offs_t = t0 + tl.arange(0, BT)
        mask_t = offs_t < T
        p = _softmax_rows(logits_ptr, offs_t, offs_e, mask_t, mask_e, E)
        p = tl.where(mask_e[None, :], p, -1.0)

        idx_tk = tl.zeros((BT, K_P), dtype=tl.int32)
        val_tk = tl.zeros((BT, K_P), dtype=tl.float32)
        for j in tl.static_range(K):
            if GATHER:
                m, am = tl.max(p, axis=1, return_indices=True, return_indices_tie_break_left=True)
            else:
                m = tl.max(p, axis=1)
                am = tl.min(tl.where(p == m[:, None], offs_e[None, :], E_P), axis=1)  # lowest index on ties
            idx_tk = tl.where(offs_k[None, :] == j, am[:, None], idx_tk)
            val_tk = tl.where(offs_k[None, :] == j, m[:, None], val_tk)
            p = tl.where(offs_e[None, :] == am[:, None], -1.0, p)
        if NORM:
            val_tk = val_tk / tl.sum(val_tk, axis=1)[:, None]
        valid = mask_t[:, None] & (offs_k[None, :] < K)
        out_off = offs_t[:, None] * K + offs_k[None, :]
        tl.store(top_idx_ptr + out_off, idx_tk, mask=valid)
        tl.store(top_w_ptr + out_off, val_tk.to(top_w_ptr.dtype.element_ty), mask=valid)

        # The K chosen experts of a token are distinct, so the rank of (t, j) is the number of
        # earlier tokens of the chunk that chose the same expert: a scan of the one-hot choices.
        # (p is -1 exactly at the chosen experts of valid rows.)
        chosen = (p == -1.0) & mask_e[None, :] & mask_t[:, None]
        onehot = chosen.to(tl.int32)
        before = tl.cumsum(onehot, axis=0) - onehot + run[None, :]  # (BT, E_P)
        if GATHER:
            rank_tk = tl.gather(before, idx_tk, axis=1)  # padded columns (K..K_P) read column 0, unstored
        else:
            rank_tk = tl.zeros((BT, K_P), dtype=tl.int32)
            for j in tl.static_range(K):
                e_j = tl.sum(tl.where(offs_k[None, :] == j, idx_tk, 0), axis=1)
                r_j = tl.sum(tl.where(offs_e[None, :] == e_j[:, None], before, 0), axis=1)
                rank_tk = tl.where(offs_k[None, :] == j, r_j[:, None], rank_tk)
        tl.store(rank_ptr + out_off, rank_tk, mask=valid)
        run += tl.sum(onehot, axis=0)
    tl.store(hist_ptr + pid * E + offs_e, run, mask=mask_e)
    tl.atomic_add(counts_ptr + offs_e, run, mask=mask_e & (run > 0))


@triton.jit
def _scatter_kernel(
    top_idx_ptr,  # (T, K) int32
    top_w_ptr,  # (T, K) x dtype
    rank_ptr,  # (T, K) int32: rank inside the chunk
    hist_ptr,  # (NC, E) int32
    counts_ptr,  # (E,) int32
    base_ptr,  # (NC, E) int32 scratch: sorted row of the chunk's first assignment per expert
    offsets_ptr,  # (E + 1,) int32, out: exclusive prefix of counts, then S
    pos_ptr,  # (T, K) int32, out
    tok_ptr,  # (S,) int32, out
    w_sorted_ptr,  # (S,) float32, out
    T,
    CT,
    E: tl.constexpr,
    E_P: tl.constexpr,
    K: tl.constexpr,
    RB: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """One program per chunk: the chunk's first sorted row per expert (expert offset plus the
    earlier chunks' histograms, re-summed by each program: NC is kept small), then the scatter.
    No cross-program waiting, and the order inside an expert is token order (deterministic)."""
    pid = tl.program_id(0)
    offs_e = tl.arange(0, E_P)
    mask_e = offs_e < E
    cnt = tl.load(counts_ptr + offs_e, mask=mask_e, other=0)
    start = tl.cumsum(cnt, axis=0) - cnt
    if pid == 0:
        tl.store(offsets_ptr + offs_e, start, mask=mask_e)
        tl.store(offsets_ptr + E, tl.sum(cnt, axis=0))
    before = tl.zeros((E_P,), dtype=tl.int32)
    for c0 in range(0, pid, RB):
        offs_c = c0 + tl.arange(0, RB)
        h = tl.load(hist_ptr + offs_c[:, None] * E + offs_e[None, :],
                    mask=(offs_c[:, None] < pid) & mask_e[None, :], other=0)
        before += tl.sum(h, axis=0)
    tl.store(base_ptr + pid * E + offs_e, start + before, mask=mask_e)
    tl.debug_barrier()  # the base row is read back below by other threads of this program
    end = tl.minimum(pid * CT + CT, T) * K
    for s0 in range(pid * CT * K, pid * CT * K + CT * K, BLOCK):
        offs = s0 + tl.arange(0, BLOCK)
        mask = offs < end
        e = tl.load(top_idx_ptr + offs, mask=mask, other=0)
        r = tl.load(rank_ptr + offs, mask=mask, other=0)
        pos = tl.load(base_ptr + pid * E + e, mask=mask, other=0) + r
        w = tl.load(top_w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(pos_ptr + offs, pos, mask=mask)
        tl.store(tok_ptr + pos, offs // K, mask=mask)
        tl.store(w_sorted_ptr + pos, w, mask=mask)


@triton.jit
def _router_bwd_kernel(
    logits_ptr,  # (T, E) x dtype
    top_idx_ptr,  # (T, K) int32
    pos_ptr,  # (T, K) int32
    dw_sorted_ptr,  # (S,) float32: grad of the routing weight of each sorted row
    dlogits_out_ptr,  # (T, E): grad arriving on the returned logits (HAS_DOUT)
    dlogits_ptr,  # (T, E) x dtype, out
    T,
    E: tl.constexpr,
    E_P: tl.constexpr,
    K: tl.constexpr,
    K_P: tl.constexpr,
    BT: tl.constexpr,
    NORM: tl.constexpr,
    HAS_DOUT: tl.constexpr,
    GATHER: tl.constexpr = False,
):
    """Backward of softmax(fp32) -> top-k -> renorm for BT tokens (kernels/moe_triton.py's
    router_backward is the same in PyTorch): with v the chosen probabilities and dv their grads
    (through the renorm), dlogits = p * (scatter(dv) - sum(v * dv)) + the direct grad."""
    offs_t = tl.program_id(0) * BT + tl.arange(0, BT)
    offs_e = tl.arange(0, E_P)
    offs_k = tl.arange(0, K_P)
    mask_t = offs_t < T
    mask_e = offs_e < E
    te_mask = mask_t[:, None] & mask_e[None, :]
    te_off = offs_t[:, None].to(tl.int64) * E + offs_e[None, :]
    p = _softmax_rows(logits_ptr, offs_t, offs_e, mask_t, mask_e, E)  # rows past T are never stored
    tk_mask = mask_t[:, None] & (offs_k[None, :] < K)
    tk_off = offs_t[:, None] * K + offs_k[None, :]
    idx = tl.load(top_idx_ptr + tk_off, mask=tk_mask, other=0)
    pos = tl.load(pos_ptr + tk_off, mask=tk_mask, other=0)
    dv = tl.load(dw_sorted_ptr + pos, mask=tk_mask, other=0.0)
    if GATHER:  # the chosen probabilities read with tl.gather (GATHER in _router_topk_kernel)
        v = tl.where(offs_k[None, :] < K, tl.gather(p, idx, axis=1), 0.0)
    else:
        v = tl.zeros((BT, K_P), dtype=tl.float32)
        for j in tl.static_range(K):
            e_j = tl.sum(tl.where(offs_k[None, :] == j, idx, 0), axis=1)
            p_j = tl.sum(tl.where(offs_e[None, :] == e_j[:, None], p, 0.0), axis=1)
            v = tl.where(offs_k[None, :] == j, p_j[:, None], v)
    if NORM:
        s = tl.where(mask_t, tl.sum(v, axis=1), 1.0)
        dv = (dv - tl.sum(dv * (v / s[:, None]), axis=1)[:, None]) / s[:, None]
        dv = tl.where(tk_mask, dv, 0.0)
    dp = tl.zeros((BT, E_P), dtype=tl.float32)
    for j in tl.static_range(K):
        sel_k = offs_k[None, :] == j
        e_j = tl.sum(tl.where(sel_k, idx, 0), axis=1)
        dv_j = tl.sum(tl.where(sel_k, dv, 0.0), axis=1)
        dp = tl.where(offs_e[None, :] == e_j[:, None], dv_j[:, None], dp)
    dlog = p * (dp - tl.sum(v * dv, axis=1)[:, None])
    if HAS_DOUT:
        dlog += tl.load(dlogits_out_ptr + te_off, mask=te_mask, other=0.0).to(tl.float32)
    tl.store(dlogits_ptr + te_off, dlog.to(dlogits_ptr.dtype.element_ty), mask=te_mask)


# --------------------------------------------------------------------------------------------
# Grouped GEMMs
# --------------------------------------------------------------------------------------------


@triton.jit
def _tile_table(counts_ptr, E: tl.constexpr, E_P: tl.constexpr, BM: tl.constexpr):
    """Per expert: assignments, M-tiles of BM rows, and both running sums (the tile-to-expert map)."""
    offs_e = tl.arange(0, E_P)
    cnt = tl.load(counts_ptr + offs_e, mask=offs_e < E, other=0)
    tiles = (cnt + BM - 1) // BM
    return offs_e, cnt, tiles, tl.cumsum(tiles, axis=0), tl.cumsum(cnt, axis=0)


@triton.jit
def _tile_lookup(pid_m, offs_e, cnt, tiles, cum_tiles, cum_rows, BM: tl.constexpr):
    """(expert, first sorted row, end row) of M-tile pid_m; expert == E means no such tile."""
    e = tl.sum((cum_tiles <= pid_m).to(tl.int32), axis=0)
    sel = offs_e == e
    tile0 = tl.sum(tl.where(sel, cum_tiles - tiles, 0), axis=0)
    row0 = tl.sum(tl.where(sel, cum_rows - cnt, 0), axis=0)
    n_rows = tl.sum(tl.where(sel, cnt, 0), axis=0)
    return e, row0 + (pid_m - tile0) * BM, row0 + n_rows


@triton.jit
def _expert_tile(pid_m, counts_ptr, E: tl.constexpr, E_P: tl.constexpr, BM: tl.constexpr):
    """Map an M-tile id to (expert, first sorted row, end row); expert == E means no such tile."""
    offs_e, cnt, tiles, cum_tiles, cum_rows = _tile_table(counts_ptr, E, E_P, BM)
    return _tile_lookup(pid_m, offs_e, cnt, tiles, cum_tiles, cum_rows, BM)


@triton.jit
def _gate_up_tile(
    x_ptr, w_ptr, tok_ptr, gu_ptr, h_ptr, w_desc, D, I, e, m_start, m_end, pid_n,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, EVEN_K: tl.constexpr, USE_TMA: tl.constexpr,
    JOINT: tl.constexpr,
):  # fmt: skip
    """One (BM, BN) tile of gate and up for expert e's sorted rows [m_start, m_end): GU and h.

    JOINT (TMA only): w_desc is w viewed (E*2, I, D) with block [2, BN, BK], so one box holds the
    gate and the up rows of this N-tile; one (BM, 2*BN) accumulator, split in the epilogue. Rows past
    I are zero-filled by the box's bounds. Else two (BM, BN) accumulators, one per half."""
    rows = m_start + tl.arange(0, BM)
    mask_m = rows < m_end
    tok = tl.load(tok_ptr + rows, mask=mask_m, other=0).to(tl.int64)
    offs_n = pid_n * BN + tl.arange(0, BN)
    mask_n = offs_n < I
    offs_k = tl.arange(0, BK)
    a_ptrs = x_ptr + tok[:, None] * D + offs_k[None, :]
    wg_ptrs = w_ptr + e.to(tl.int64) * (2 * I) * D + offs_n[None, :].to(tl.int64) * D + offs_k[:, None]
    wu_ptrs = wg_ptrs + I * D
    if JOINT:
        acc = tl.zeros((BM, 2 * BN), dtype=tl.float32)
        for ki in range(0, tl.cdiv(D, BK)):
            k0 = ki * BK
            if EVEN_K:
                a = tl.load(a_ptrs + k0)
            else:
                a = tl.load(a_ptrs + k0, mask=(offs_k < D - k0)[None, :], other=0.0)
            b = tl.reshape(w_desc.load([2 * e, pid_n * BN, k0]), (2 * BN, BK))
            acc = tl.dot(a, b.T, acc)
        acc_g, acc_u = tl.split(tl.permute(tl.reshape(acc, (BM, 2, BN)), (0, 2, 1)))
    else:
        acc_g = tl.zeros((BM, BN), dtype=tl.float32)
        acc_u = tl.zeros((BM, BN), dtype=tl.float32)
        # Rows of a gate tile past I (I % BN != 0) read up rows: they only feed columns never stored.
        row_g = e * (2 * I) + pid_n * BN
        for ki in range(0, tl.cdiv(D, BK)):
            k0 = ki * BK
            if EVEN_K:
                a = tl.load(a_ptrs + k0)
            else:
                mk = offs_k < D - k0
                a = tl.load(a_ptrs + k0, mask=mk[None, :], other=0.0)
            if USE_TMA:
                bg = w_desc.load([row_g, k0]).T
                bu = w_desc.load([row_g + I, k0]).T
            elif EVEN_K:
                bg = tl.load(wg_ptrs + k0, mask=mask_n[None, :], other=0.0)
                bu = tl.load(wu_ptrs + k0, mask=mask_n[None, :], other=0.0)
            else:
                bg = tl.load(wg_ptrs + k0, mask=mk[:, None] & mask_n[None, :], other=0.0)
                bu = tl.load(wu_ptrs + k0, mask=mk[:, None] & mask_n[None, :], other=0.0)
            acc_g = tl.dot(a, bg, acc_g)
            acc_u = tl.dot(a, bu, acc_u)
    g = acc_g.to(gu_ptr.dtype.element_ty)
    u = acc_u.to(gu_ptr.dtype.element_ty)
    rows64 = rows.to(tl.int64)
    smask = mask_m[:, None] & mask_n[None, :]
    gu_off = rows64[:, None] * (2 * I) + offs_n[None, :]
    tl.store(gu_ptr + gu_off, g, mask=smask)
    tl.store(gu_ptr + gu_off + I, u, mask=smask)
    gf = g.to(tl.float32)
    h = gf * tl.sigmoid(gf) * u.to(tl.float32)
    tl.store(h_ptr + rows64[:, None] * I + offs_n[None, :], h.to(h_ptr.dtype.element_ty), mask=smask)


@triton.jit
def _gate_up_swiglu_kernel(
    x_ptr,  # (T, D)
    w_ptr,  # (E, 2I, D)
    tok_ptr,  # (S,) int32
    counts_ptr,  # (E,) int32
    gu_ptr,  # (S, 2I) out: pre-activation [gate | up]
    h_ptr,  # (S, I) out: silu(gate) * up
    w_desc,  # TMA descriptor of w viewed (E*2I, D), block [BN, BK] (USE_TMA)
    D,
    I,
    E: tl.constexpr,
    E_P: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    EVEN_K: tl.constexpr,
    USE_TMA: tl.constexpr,
    JOINT: tl.constexpr,
):
    pid = tl.program_id(0)
    num_n = tl.cdiv(I, BN)
    e, m_start, m_end = _expert_tile(pid // num_n, counts_ptr, E, E_P, BM)
    if e >= E:
        return
    _gate_up_tile(x_ptr, w_ptr, tok_ptr, gu_ptr, h_ptr, w_desc, D, I, e, m_start, m_end, pid % num_n,
                  BM, BN, BK, EVEN_K, USE_TMA, JOINT)


@triton.jit
def _gate_up_swiglu_persistent_kernel(
    x_ptr, w_ptr, tok_ptr, counts_ptr, gu_ptr, h_ptr, w_desc, D, I,
    E: tl.constexpr, E_P: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
    EVEN_K: tl.constexpr, USE_TMA: tl.constexpr, JOINT: tl.constexpr, NUM_PROGRAMS: tl.constexpr,
    FLATTEN: tl.constexpr,
):  # fmt: skip
    """_gate_up_swiglu_kernel as a persistent kernel (see _grouped_mm_persistent_kernel)."""
    num_n = tl.cdiv(I, BN)
    offs_e, cnt, tiles, cum_tiles, cum_rows = _tile_table(counts_ptr, E, E_P, BM)
    num_tiles = tl.sum(tiles, axis=0) * num_n
    for tile_id in tl.range(tl.program_id(0), num_tiles, NUM_PROGRAMS, flatten=FLATTEN):
        e, m_start, m_end = _tile_lookup(tile_id // num_n, offs_e, cnt, tiles, cum_tiles, cum_rows, BM)
        _gate_up_tile(x_ptr, w_ptr, tok_ptr, gu_ptr, h_ptr, w_desc, D, I, e, m_start, m_end, tile_id % num_n,
                      BM, BN, BK, EVEN_K, USE_TMA, JOINT)


@triton.jit
def _mm_tile(
    a_ptr, b_ptr, c_ptr, scale_ptr, a_idx_ptr, a_desc, b_desc, N, K, stride_be, stride_bk, stride_bn,
    e, m_start, m_end, pid_n,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, HAS_SCALE: tl.constexpr, EVEN_K: tl.constexpr,
    GATHER_A: tl.constexpr, TMA_A: tl.constexpr, TMA_B: tl.constexpr, B_NK: tl.constexpr,
):  # fmt: skip
    """One (BM, BN) tile of c = a[row(s)] @ B[e] for expert e's sorted rows [m_start, m_end)."""
    rows = m_start + tl.arange(0, BM)
    mask_m = rows < m_end
    rows64 = rows.to(tl.int64)
    if GATHER_A:
        a_rows = tl.load(a_idx_ptr + rows, mask=mask_m, other=0).to(tl.int64)
    else:
        a_rows = tl.minimum(rows, m_end - 1).to(tl.int64)  # in-bounds loads; extra rows not stored
    offs_n = pid_n * BN + tl.arange(0, BN)
    mask_n = offs_n < N
    offs_k = tl.arange(0, BK)
    b_base = b_ptr + e.to(tl.int64) * stride_be + offs_n[None, :].to(tl.int64) * stride_bn
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    # TMA: A rows past this expert's end (another expert's, or zero fill past S) are never stored;
    # A columns past K are zero (fill or mask), so B rows read past K (next expert) add nothing.
    for ki in range(tl.cdiv(K, BK)):
        k0 = ki * BK
        mk = offs_k < K - k0
        if TMA_A:
            a = a_desc.load([m_start, k0])
        elif EVEN_K:
            a = tl.load(a_ptr + a_rows[:, None] * K + (k0 + offs_k)[None, :])
        else:
            a = tl.load(a_ptr + a_rows[:, None] * K + (k0 + offs_k)[None, :], mask=mk[None, :], other=0.0)
        if TMA_B:
            if B_NK:
                b = b_desc.load([e * N + pid_n * BN, k0]).T
            else:
                b = b_desc.load([e * K + k0, pid_n * BN])
        elif EVEN_K:
            b = tl.load(b_base + (k0 + offs_k)[:, None] * stride_bk, mask=mask_n[None, :], other=0.0)
        else:
            b = tl.load(b_base + (k0 + offs_k)[:, None] * stride_bk, mask=mk[:, None] & mask_n[None, :], other=0.0)
        acc = tl.dot(a, b, acc)
    if HAS_SCALE:
        acc = acc * tl.load(scale_ptr + rows, mask=mask_m, other=0.0)[:, None]
    tl.store(
        c_ptr + rows64[:, None] * N + offs_n[None, :],
        acc.to(c_ptr.dtype.element_ty),
        mask=mask_m[:, None] & mask_n[None, :],
    )


@triton.jit
def _grouped_mm_kernel(
    a_ptr,  # (S, K) sorted rows, or (T, K) rows gathered through a_idx (GATHER_A)
    b_ptr,  # (E, ...) per-expert (K, N) through strides
    c_ptr,  # (S, N) out
    scale_ptr,  # (S,) float32 row scale (HAS_SCALE)
    counts_ptr,  # (E,) int32
    a_idx_ptr,  # (S,) int32 (GATHER_A)
    a_desc,  # TMA_A: A (S, K), block [BM, BK]
    b_desc,  # TMA_B: B_NK: w viewed (E*N, K), block [BN, BK]; else (E*K, N), block [BK, BN]
    N,
    K,
    stride_be,
    stride_bk,
    stride_bn,
    E: tl.constexpr,
    E_P: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    EVEN_K: tl.constexpr,
    GATHER_A: tl.constexpr,
    TMA_A: tl.constexpr,
    TMA_B: tl.constexpr,
    B_NK: tl.constexpr,
):
    """One program per tile of an upper bound (S/BM + E M-tiles per N-tile); empty ones exit."""
    pid = tl.program_id(0)
    num_n = tl.cdiv(N, BN)
    pid_m = pid // num_n
    pid_n = pid % num_n
    e, m_start, m_end = _expert_tile(pid_m, counts_ptr, E, E_P, BM)
    if e >= E:
        return
    _mm_tile(a_ptr, b_ptr, c_ptr, scale_ptr, a_idx_ptr, a_desc, b_desc, N, K, stride_be, stride_bk, stride_bn,
             e, m_start, m_end, pid_n, BM, BN, BK, HAS_SCALE, EVEN_K, GATHER_A, TMA_A, TMA_B, B_NK)


@triton.jit
def _grouped_mm_persistent_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    scale_ptr,
    counts_ptr,
    a_idx_ptr,
    a_desc,
    b_desc,
    N,
    K,
    stride_be,
    stride_bk,
    stride_bn,
    E: tl.constexpr,
    E_P: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    EVEN_K: tl.constexpr,
    GATHER_A: tl.constexpr,
    TMA_A: tl.constexpr,
    TMA_B: tl.constexpr,
    B_NK: tl.constexpr,
    NUM_PROGRAMS: tl.constexpr,
    FLATTEN: tl.constexpr,
    WARP_SPECIALIZE: tl.constexpr,
):
    """_grouped_mm_kernel as a persistent kernel: NUM_PROGRAMS programs (one per SM) walk the real
    tiles only (their number comes from counts, on the device). With FLATTEN the tile loop and the
    K loop are pipelined as one, so a tile's epilogue overlaps the next tile's first loads; at one
    program per SM (the 128x256 tiles' shared memory) nothing else hides that latency."""
    num_n = tl.cdiv(N, BN)
    offs_e, cnt, tiles, cum_tiles, cum_rows = _tile_table(counts_ptr, E, E_P, BM)
    num_tiles = tl.sum(tiles, axis=0) * num_n
    for tile_id in tl.range(
        tl.program_id(0), num_tiles, NUM_PROGRAMS, flatten=FLATTEN, warp_specialize=WARP_SPECIALIZE
    ):
        e, m_start, m_end = _tile_lookup(tile_id // num_n, offs_e, cnt, tiles, cum_tiles, cum_rows, BM)
        _mm_tile(a_ptr, b_ptr, c_ptr, scale_ptr, a_idx_ptr, a_desc, b_desc, N, K, stride_be, stride_bk, stride_bn,
                 e, m_start, m_end, tile_id % num_n, BM, BN, BK, HAS_SCALE, EVEN_K, GATHER_A, TMA_A, TMA_B, B_NK)


@triton.jit
def _down_bwd_swiglu_kernel(
    dy_ptr,  # (T, D)
    wd_ptr,  # (E, D, I)
    tok_ptr,  # (S,) int32
    counts_ptr,  # (E,) int32
    gu_ptr,  # (S, 2I) saved pre-activation
    w_sorted_ptr,  # (S,) float32
    dgu_ptr,  # (S, 2I) out: grad of the pre-activation
    hw_ptr,  # (S, I) out: h * w, the input of dWd
    dw_part_ptr,  # (S, cdiv(I, BN)) float32 out: partial sums of the routing-weight grad
    wd_desc,  # USE_TMA: wd viewed (E*D, I), block [BK, BN]
    D,
    I,
    E: tl.constexpr,
    E_P: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    EVEN_K: tl.constexpr,
    USE_TMA: tl.constexpr,
    PREFETCH: tl.constexpr,
):
    pid = tl.program_id(0)
    num_n = tl.cdiv(I, BN)
    pid_m = pid // num_n
    pid_n = pid % num_n
    e, m_start, m_end = _expert_tile(pid_m, counts_ptr, E, E_P, BM)
    if e >= E:
        return
    rows = m_start + tl.arange(0, BM)
    mask_m = rows < m_end
    tok = tl.load(tok_ptr + rows, mask=mask_m, other=0).to(tl.int64)
    offs_n = pid_n * BN + tl.arange(0, BN)
    mask_n = offs_n < I
    offs_k = tl.arange(0, BK)
    a_ptrs = dy_ptr + tok[:, None] * D + offs_k[None, :]
    b_ptrs = wd_ptr + e.to(tl.int64) * D * I + offs_k[:, None].to(tl.int64) * I + offs_n[None, :]
    # PREFETCH: the epilogue's operands are loaded first, so their latency hides under the main
    # loop (at the price of registers held through it).
    rows64 = rows.to(tl.int64)
    smask = mask_m[:, None] & mask_n[None, :]
    gu_off = rows64[:, None] * (2 * I) + offs_n[None, :]
    if PREFETCH:
        g_raw = tl.load(gu_ptr + gu_off, mask=smask, other=0.0)
        u_raw = tl.load(gu_ptr + gu_off + I, mask=smask, other=0.0)
    w = tl.load(w_sorted_ptr + rows, mask=mask_m, other=0.0)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, tl.cdiv(D, BK)):
        if EVEN_K:
            a = tl.load(a_ptrs)
        else:
            mk = offs_k < D - k0 * BK
            a = tl.load(a_ptrs, mask=mk[None, :], other=0.0)
        if USE_TMA:
            b = wd_desc.load([e * D + k0 * BK, pid_n * BN])  # rows past D meet zeroed A columns
        elif EVEN_K:
            b = tl.load(b_ptrs, mask=mask_n[None, :], other=0.0)
        else:
            b = tl.load(b_ptrs, mask=mk[:, None] & mask_n[None, :], other=0.0)
        acc = tl.dot(a, b, acc)
        a_ptrs += BK
        b_ptrs += BK * I
    # acc = dL/dh / w for these rows (the unweighted down-projection input grad).
    if not PREFETCH:
        g_raw = tl.load(gu_ptr + gu_off, mask=smask, other=0.0)
        u_raw = tl.load(gu_ptr + gu_off + I, mask=smask, other=0.0)
    g = g_raw.to(tl.float32)
    u = u_raw.to(tl.float32)
    sig = tl.sigmoid(g)
    silu = g * sig
    h = silu * u
    tl.store(dw_part_ptr + rows64 * num_n + pid_n, tl.sum(h * acc, axis=1), mask=mask_m)
    dh = acc * w[:, None]
    du = dh * silu
    dg = dh * u * sig * (1.0 + g * (1.0 - sig))
    tl.store(dgu_ptr + gu_off, dg.to(dgu_ptr.dtype.element_ty), mask=smask)
    tl.store(dgu_ptr + gu_off + I, du.to(dgu_ptr.dtype.element_ty), mask=smask)
    tl.store(
        hw_ptr + rows64[:, None] * I + offs_n[None, :],
        (h * w[:, None]).to(hw_ptr.dtype.element_ty),
        mask=smask,
    )


@triton.jit
def _grouped_wgrad_kernel(
    a_ptr,  # rows a_src[r, m], row stride stride_a
    b_ptr,  # rows b_src[r, n], row stride stride_b
    out_ptr,  # (E, M, N) out; (E, N, M) with OUT_T
    a_idx_ptr,  # (S,) int32 row of a_src for sorted row s (GATHER_A)
    b_idx_ptr,  # (S,) int32 row of b_src for sorted row s (GATHER_B)
    counts_ptr,  # (E,) int32
    offsets_ptr,  # (E + 1,) int32
    a_desc,  # TMA_A: a_src, block [BK, BM]
    b_desc,  # TMA_B: b_src, block [BK, BN]
    M,
    N,
    stride_a,
    stride_b,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    GATHER_A: tl.constexpr,
    GATHER_B: tl.constexpr,
    TMA_A: tl.constexpr,
    TMA_B: tl.constexpr,
    IDX_PREFETCH: tl.constexpr,
    OUT_T: tl.constexpr,
):
    """out[e] = sum over expert e's sorted rows s of a_src[row_a(s)]^T b_src[row_b(s)], stored
    transposed with OUT_T (so a caller picks which operand is the tile's M side)."""
    pid = tl.program_id(0)
    e = tl.program_id(1)
    num_n = tl.cdiv(N, BN)
    pid_m = pid // num_n
    pid_n = pid % num_n
    start = tl.load(offsets_ptr + e)
    cnt = tl.load(counts_ptr + e)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = pid_n * BN + tl.arange(0, BN)
    mask_m = offs_m < M
    mask_n = offs_n < N
    offs_k = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    # IDX_PREFETCH: the next step's gather indices are loaded one step ahead and carried through the
    # loop, so the gathered load's address comes from a loop-carried value, not from a load in the
    # same step. Triton's pipeliner counts a load-fed address as one level of indirection and then
    # gives every load in the loop only (num_stages - 1) // 2 steps of lead (double buffering at 3
    # or 4 stages); without it the loads get num_stages - 1.
    if IDX_PREFETCH:
        nxt = start + offs_k
        if GATHER_A:
            ra_next = tl.load(a_idx_ptr + nxt, mask=offs_k < cnt, other=0)
        if GATHER_B:
            rb_next = tl.load(b_idx_ptr + nxt, mask=offs_k < cnt, other=0)
    for r0 in range(0, cnt, BK):
        mr = (r0 + offs_k) < cnt
        rows = start + r0 + offs_k
        if IDX_PREFETCH:
            mr_next = (r0 + BK + offs_k) < cnt
            if GATHER_A:
                ra = ra_next.to(tl.int64)
                ra_next = tl.load(a_idx_ptr + rows + BK, mask=mr_next, other=0)
            else:
                ra = rows.to(tl.int64)
            if GATHER_B:
                rb = rb_next.to(tl.int64)
                rb_next = tl.load(b_idx_ptr + rows + BK, mask=mr_next, other=0)
            else:
                rb = rows.to(tl.int64)
        else:
            if GATHER_A:
                ra = tl.load(a_idx_ptr + rows, mask=mr, other=0).to(tl.int64)
            else:
                ra = rows.to(tl.int64)
            if GATHER_B:
                rb = tl.load(b_idx_ptr + rows, mask=mr, other=0).to(tl.int64)
            else:
                rb = rows.to(tl.int64)
        # A TMA side reads whole row blocks: rows past this expert (other experts' finite values,
        # zero fill past S) meet rows of the other, gathered side, which are masked to zero.
        if TMA_A:
            a_t = a_desc.load([start + r0, pid_m * BM])
        else:
            a_t = tl.load(
                a_ptr + ra[:, None] * stride_a + offs_m[None, :],
                mask=mr[:, None] & mask_m[None, :],
                other=0.0,
            )
        if TMA_B:
            b = b_desc.load([start + r0, pid_n * BN])
        else:
            b = tl.load(
                b_ptr + rb[:, None] * stride_b + offs_n[None, :],
                mask=mr[:, None] & mask_n[None, :],
                other=0.0,
            )
        acc = tl.dot(tl.trans(a_t), b, acc)
    if OUT_T:
        out_off = e.to(tl.int64) * M * N + offs_n[None, :].to(tl.int64) * M + offs_m[:, None]
    else:
        out_off = e.to(tl.int64) * M * N + offs_m[:, None].to(tl.int64) * N + offs_n[None, :]
    tl.store(out_ptr + out_off, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _swiglu_bwd_kernel(
    g_ptr,  # (S, I) G = dY[tok] @ Wd[e], the unweighted grad of h
    gu_ptr,  # (S, 2I) saved pre-activation
    w_sorted_ptr,  # (S,) float32
    dgu_ptr,  # (S, 2I) out
    hw_ptr,  # (S, I) out: h * w; may be g_ptr (IN_PLACE)
    dw_ptr,  # (S,) float32 out: routing-weight grad h . G
    S,
    I,
    BR: tl.constexpr,
    BI: tl.constexpr,
    IN_PLACE: tl.constexpr,
):
    """The down-projection backward's epilogue as its own pass (the split variant). IN_PLACE: h*w
    overwrites G, tile by tile; a barrier between each tile's loads and stores keeps a thread from
    overwriting G values that another thread of the program has not loaded yet (rows of different
    programs are disjoint)."""
    rows = tl.program_id(0) * BR + tl.arange(0, BR)
    mask_r = rows < S
    rows64 = rows.to(tl.int64)
    w = tl.load(w_sorted_ptr + rows, mask=mask_r, other=0.0)
    dw = tl.zeros((BR,), dtype=tl.float32)
    for i0 in range(0, I, BI):
        offs = i0 + tl.arange(0, BI)
        m = mask_r[:, None] & (offs[None, :] < I)
        gu_off = rows64[:, None] * (2 * I) + offs[None, :]
        i_off = rows64[:, None] * I + offs[None, :]
        G = tl.load(g_ptr + i_off, mask=m, other=0.0).to(tl.float32)
        g = tl.load(gu_ptr + gu_off, mask=m, other=0.0).to(tl.float32)
        u = tl.load(gu_ptr + gu_off + I, mask=m, other=0.0).to(tl.float32)
        sig = tl.sigmoid(g)
        silu = g * sig
        h = silu * u
        dw += tl.sum(h * G, axis=1)
        dh = G * w[:, None]
        if IN_PLACE:
            tl.debug_barrier()
        tl.store(dgu_ptr + gu_off, (dh * u * sig * (1.0 + g * (1.0 - sig))).to(dgu_ptr.dtype.element_ty), mask=m)
        tl.store(dgu_ptr + gu_off + I, (dh * silu).to(dgu_ptr.dtype.element_ty), mask=m)
        tl.store(hw_ptr + i_off, (h * w[:, None]).to(hw_ptr.dtype.element_ty), mask=m)
    tl.store(dw_ptr + rows, dw, mask=mask_r)


# --------------------------------------------------------------------------------------------
# Combine
# --------------------------------------------------------------------------------------------


@triton.jit
def _combine_kernel(
    src_ptr,  # (S, D) sorted rows
    pos_ptr,  # (T, K) int32
    extra_ptr,  # (T, D) added before rounding (HAS_EXTRA)
    out_ptr,  # (T, D) out
    T,
    D,
    K: tl.constexpr,
    HAS_EXTRA: tl.constexpr,
    BT: tl.constexpr,
    BD: tl.constexpr,
):
    offs_t = tl.program_id(0) * BT + tl.arange(0, BT)
    offs_d = tl.program_id(1) * BD + tl.arange(0, BD)
    mask_t = offs_t < T
    mask = mask_t[:, None] & (offs_d[None, :] < D)
    acc = tl.zeros((BT, BD), dtype=tl.float32)
    for j in tl.static_range(K):
        p = tl.load(pos_ptr + offs_t * K + j, mask=mask_t, other=0).to(tl.int64)
        acc += tl.load(src_ptr + p[:, None] * D + offs_d[None, :], mask=mask, other=0.0).to(tl.float32)
    out_off = offs_t[:, None].to(tl.int64) * D + offs_d[None, :]
    if HAS_EXTRA:
        acc += tl.load(extra_ptr + out_off, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + out_off, acc.to(out_ptr.dtype.element_ty), mask=mask)
