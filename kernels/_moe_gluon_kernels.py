"""Gluon (Hopper) kernels of the fused MoE path: persistent, warp-specialised grouped GEMMs.

Why Gluon: Triton's own pipeliner feeds gathered rows (X[tok] in gate/up, dY[tok] in the G GEMM)
with cp.async issued by the same warps that run the wgmma, with a barrier across all of them every
K step, and Hopper's TMA cannot gather; its flattened persistent loop does not take the weight-grad
GEMMs' data-dependent K loops at all. Here a producer partition of 4 warps (_stage_producer, or
_wgrad_producer) fills a ring of shared-memory stages: gathered rows by cp.async (one arrival per
thread once its copies land), sorted rows and weights by TMA, each stage's mbarrier completing when
all have landed. The 8 consumer warps (two warpgroups) only wait, multiply and hand each stage back.
Every kernel is persistent, so the producer runs ahead into the next tile while the consumers
finish this one.

  grouped_mm_ws_kernel  down, G and dX: c = a[row] @ B[e] (* scale); whole tiles stored by TMA
  wgrad_ws_kernel       dWd and dWgu (transposed): out[e] = a[tok]^T b over the expert's rows
  gate_up_ws_kernel     gate/up with SwiGLU: GU and h, the epilogue in the consumers
  g_swiglu_ws_kernel    G = dY[tok] @ Wd[e] with the SwiGLU backward in the consumers' epilogue:
                        dGU, h*w and per-N-tile routing-weight grads; G never leaves the SM
  down_bwd_ws_kernel    G = dY[tok] @ Wd[e] with the SwiGLU backward in a third partition (4 warps)
                        that takes finished G tiles through shared memory, prefetches the tile's GU
                        by TMA, and writes dGU, h*w and per-N-tile routing-weight grads

The first two are the default on Hopper (CONFIG.grouped_mm_ws, wgrad_ws in kernels/moe_triton.py,
for GEMMs of at least CONFIG.gluon_min_flops); the last two are tested options that did not beat
the Triton paths (kernels/NOTES.md, v9, v10). With 16 warps a kernel launches at 128 registers per
thread at most and ptxas compiles every partition under that cap, so down_bwd_ws is limited to a
(128, 128) tile. bench/gluon_sm90_compile.py compiles all of them for sm_90 without a GPU and
bench/moe_gluon_check.py compares them with the Triton paths.

Imported only by kernels/moe_triton.py, only on a GPU with compute capability 9.x (the layouts
below are Hopper's: wgmma accumulators, 128-byte swizzled NVMMA shared memory).
"""

# ruff: noqa: E741  (I is the expert width, as in the shape legend)

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    async_copy,
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

PRODUCER_WARPS = gl.constexpr(4)
PRODUCER_REGS = gl.constexpr(48)


@gluon.jit
def _add(a, b):
    return a + b


@gluon.jit
def _tile_space(counts_ptr, N, E: gl.constexpr, E_P: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr,
                NW: gl.constexpr):  # fmt: skip
    """The real (BM, BN) tiles of an (S, N) grouped output: the per-expert table (assignments,
    M-tiles, both running sums), N-tiles per M-tile, and the tile count. Every warp holds the whole
    table (a replicated layout), so _tile_of reduces inside a warp, with no shared memory."""
    L: gl.constexpr = gl.BlockedLayout([max(E_P // 32, 1)], [32], [NW], [0])
    offs_e = gl.arange(0, E_P, layout=L)
    cnt = gl.load(counts_ptr + offs_e, mask=offs_e < E, other=0)
    tiles = (cnt + BM - 1) // BM
    table = (offs_e, cnt, tiles, gl.associative_scan(tiles, 0, _add), gl.associative_scan(cnt, 0, _add))
    num_n = gl.cdiv(N, BN)
    return table, num_n, gl.sum(tiles, axis=0) * num_n


@gluon.jit
def _tile_of(tile_id, table, num_n, BM: gl.constexpr):
    """(expert, first sorted row, end row, N-tile) of a tile (the same map as the Triton kernels')."""
    offs_e, cnt, tiles, cum_tiles, cum_rows = table
    pid_m = tile_id // num_n
    e = gl.sum((cum_tiles <= pid_m).to(gl.int32), axis=0)
    sel = offs_e == e
    tile0 = gl.sum(gl.where(sel, cum_tiles - tiles, 0), axis=0)
    row0 = gl.sum(gl.where(sel, cum_rows - cnt, 0), axis=0)
    n_rows = gl.sum(gl.where(sel, cnt, 0), axis=0)
    return e, row0 + (pid_m - tile0) * BM, row0 + n_rows, tile_id % num_n


# How a stage's weight box is laid out (the B operand of the M-grouped GEMMs).
B_KN = gl.constexpr(0)  # w viewed (E*K, N), box [BK, BN]: dX's gate_up, the G GEMM's down
B_NK = gl.constexpr(1)  # w viewed (E*N, K), box [BN, BK]: the down projection
B_GATE_UP = gl.constexpr(2)  # gate_up viewed (E*2N, K): the tile's gate rows, then its up rows


@gluon.jit
def _stage_producer(
    a_src, tok_ptr, counts_ptr, b_desc, a_bufs, b_bufs, ready, empty, K, N,
    E: gl.constexpr, E_P: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr,
    STAGES: gl.constexpr, NUM_PROGRAMS: gl.constexpr, GATHER: gl.constexpr, B_MODE: gl.constexpr,
):  # fmt: skip
    """Per K step of every tile of this program: wait for a free stage, TMA the weight box(es), and
    load the tile's A rows: GATHER, a_src[tok] rows of a (rows, K) pointer by cp.async (one arrival
    per thread once its copies land); else a_src is the TMA descriptor of the sorted (S, K) rows."""
    NW: gl.constexpr = PRODUCER_WARPS
    blk: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [NW, 1], [1, 0])
    table, num_n, num_tiles = _tile_space(counts_ptr, N, E, E_P, BM, BN, NW)
    k_steps = gl.cdiv(K, BK)
    offs_k = gl.arange(0, BK, layout=gl.SliceLayout(0, blk))
    it = 0
    for tile_id in range(gl.program_id(0), num_tiles, NUM_PROGRAMS):
        e, m_start, m_end, pid_n = _tile_of(tile_id, table, num_n, BM)
        if GATHER:
            rows = m_start + gl.arange(0, BM, layout=gl.SliceLayout(1, blk))
            # Rows past the expert's end read token 0: finite values in rows that are never stored.
            tok = gl.load(tok_ptr + rows, mask=rows < m_end, other=0).to(gl.int64)
            a_ptrs = a_src + tok[:, None] * K + offs_k[None, :]
        n0 = pid_n * BN
        for ki in range(k_steps):
            s = it % STAGES
            mbarrier.wait(empty.index(s), ((it // STAGES) & 1) ^ 1)  # a fresh barrier passes parity 1
            bar = ready.index(s)
            k0 = ki * BK
            b = b_bufs.index(s)
            nbytes: gl.constexpr = b_desc.block_type.nbytes * (2 if B_MODE == B_GATE_UP else 1)
            if GATHER:
                mbarrier.expect(bar, nbytes)
            else:
                mbarrier.expect(bar, nbytes + a_src.block_type.nbytes)
                # Rows past the expert's end (the next expert's, or zero fill past S) are not stored.
                tma.async_copy_global_to_shared(a_src, [m_start, k0], bar, a_bufs.index(s))
            if B_MODE == B_GATE_UP:
                tma.async_copy_global_to_shared(b_desc, [e * (2 * N) + n0, k0], bar, b.slice(0, BN))
                tma.async_copy_global_to_shared(b_desc, [e * (2 * N) + N + n0, k0], bar, b.slice(BN, BN))
            elif B_MODE == B_NK:
                tma.async_copy_global_to_shared(b_desc, [e * N + n0, k0], bar, b)
            else:
                tma.async_copy_global_to_shared(b_desc, [e * K + k0, n0], bar, b)
            if GATHER:
                async_copy.async_copy_global_to_shared(a_bufs.index(s), a_ptrs + k0)
                async_copy.mbarrier_arrive(bar, increment_count=False)  # once this thread's copies land
            it += 1


@gluon.jit
def _gate_up_consumer(
    counts_ptr, gu_ptr, h_ptr, a_bufs, b_bufs, ready, empty, D, I,
    E: gl.constexpr, E_P: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr,
    STAGES: gl.constexpr, NUM_PROGRAMS: gl.constexpr, NW: gl.constexpr, EPI_MMA: gl.constexpr,
):  # fmt: skip
    """Per tile: two (BM, BN) wgmma accumulators (gate, up) over the stages, then GU and h: stored
    from a blocked layout (16-byte runs per thread; the conversion goes through shared memory), or
    with EPI_MMA straight from the accumulators' layout (no conversion, 4-byte runs)."""
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[NW, 1], instr_shape=[16, BN, 16])
    if EPI_MMA:
        st: gl.constexpr = mma
    else:
        st: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [NW, 1], [1, 0])
    table, num_n, num_tiles = _tile_space(counts_ptr, I, E, E_P, BM, BN, NW)
    k_steps = gl.cdiv(D, BK)
    it = 0
    for tile_id in range(gl.program_id(0), num_tiles, NUM_PROGRAMS):
        e, m_start, m_end, pid_n = _tile_of(tile_id, table, num_n, BM)
        acc_g = gl.zeros((BM, BN), gl.float32, mma)
        acc_u = gl.zeros((BM, BN), gl.float32, mma)
        for ki in range(k_steps):
            s = it % STAGES
            mbarrier.wait(ready.index(s), (it // STAGES) & 1)
            fence_async_shared()  # the cp.async writes (generic proxy) before wgmma's reads (async proxy)
            a = a_bufs.index(s)
            b = b_bufs.index(s)
            acc_g = warpgroup_mma(a, b.slice(0, BN).permute((1, 0)), acc_g, is_async=True)
            acc_u = warpgroup_mma(a, b.slice(BN, BN).permute((1, 0)), acc_u, is_async=True)
            # This step's two groups stay in flight; the previous step's are done: free its stage.
            acc_g, acc_u = warpgroup_mma_wait(num_outstanding=2, deps=(acc_g, acc_u))
            mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES), pred=ki > 0)
            it += 1
        acc_g, acc_u = warpgroup_mma_wait(num_outstanding=0, deps=(acc_g, acc_u))
        mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES))
        # Epilogue, as in the Triton kernel: GU rounded to the output dtype, h from the rounded values.
        if EPI_MMA:
            g = acc_g.to(gu_ptr.dtype.element_ty)
            u = acc_u.to(gu_ptr.dtype.element_ty)
        else:
            g = gl.convert_layout(acc_g.to(gu_ptr.dtype.element_ty), st)
            u = gl.convert_layout(acc_u.to(gu_ptr.dtype.element_ty), st)
        rows = m_start + gl.arange(0, BM, layout=gl.SliceLayout(1, st))
        cols = pid_n * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, st))
        mask = (rows < m_end)[:, None] & (cols < I)[None, :]
        rows64 = rows.to(gl.int64)
        gu_off = rows64[:, None] * (2 * I) + cols[None, :]
        gl.store(gu_ptr + gu_off, g, mask=mask)
        gl.store(gu_ptr + gu_off + I, u, mask=mask)
        gf = g.to(gl.float32)
        h = gf / (1.0 + gl.exp(-gf)) * u.to(gl.float32)
        gl.store(h_ptr + rows64[:, None] * I + cols[None, :], h.to(h_ptr.dtype.element_ty), mask=mask)


@gluon.jit
def gate_up_ws_kernel(
    x_ptr,  # (T, D)
    tok_ptr,  # (S,) int32
    counts_ptr,  # (E,) int32
    gu_ptr,  # (S, 2I) out: pre-activation [gate | up]
    h_ptr,  # (S, I) out: silu(gate) * up
    w_desc,  # gluon TMA descriptor of gate_up viewed (E*2I, D), block [BN, BK]
    D,
    I,
    E: gl.constexpr,
    E_P: gl.constexpr,
    BM: gl.constexpr,
    BN: gl.constexpr,
    BK: gl.constexpr,
    STAGES: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr,
    num_warps: gl.constexpr,
    EPI_MMA: gl.constexpr = False,
):
    """Persistent, warp-specialised gate/up grouped GEMM (D % BK == 0; the caller checks). EPI_MMA:
    GU and h stored from the accumulators' own layout (_gate_up_consumer)."""
    dtype: gl.constexpr = x_ptr.dtype.element_ty
    # X rows and weight rows are both [*, BK] K-contiguous tiles: the same swizzled layout.
    a_bufs = gl.allocate_shared_memory(dtype, [STAGES, BM, BK], w_desc.layout)
    b_bufs = gl.allocate_shared_memory(dtype, [STAGES, 2 * BN, BK], w_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        # ready: the TMA's expect-arrive plus one cp.async arrival per producer thread.
        mbarrier.init(ready.index(i), count=1 + 32 * PRODUCER_WARPS)
        mbarrier.init(empty.index(i), count=1)
    gl.warp_specialize(
        [
            (_gate_up_consumer, (counts_ptr, gu_ptr, h_ptr, a_bufs, b_bufs, ready, empty, D, I,
                                 E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, num_warps, EPI_MMA)),
            (_stage_producer, (x_ptr, tok_ptr, counts_ptr, w_desc, a_bufs, b_bufs, ready, empty, D, I,
                               E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, True, B_GATE_UP)),
        ],
        [PRODUCER_WARPS],
        [PRODUCER_REGS],
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Gate/up with a ping-pong schedule (issue 25)
# --------------------------------------------------------------------------------------------
@gluon.jit
def _gate_up_pp_consumer(
    counts_ptr, gu_ptr, h_ptr, a_bufs, b_bufs, ready, empty, e_bufs, order, D, I,
    E: gl.constexpr, E_P: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr,
    STAGES: gl.constexpr, NUM_PROGRAMS: gl.constexpr, NW: gl.constexpr, ROLE: gl.constexpr,
):  # fmt: skip
    """One warpgroup of the ping-pong gate/up: every other tile of this program (ROLE 0 the even
    ones, 1 the odd ones), each a (BM, 2*BN) wgmma accumulator over a stage's [gate; up] box (one
    N = 2*BN instruction per K slice, so A is read from shared memory once for both halves). The
    producer fills the stages in tile order, so this warpgroup's next tile is loaded while the other
    one's runs: its epilogue (GU and h through its own shared buffer) overlaps the other's MMAs.

    The two main loops take turns (``order``: each waits for the other's previous tile to leave its
    main loop, then hands the turn back): an mbarrier's parity wait tells only the current phase from
    the one before it, so a warpgroup that waited on a stage two phases ahead of the producer (the
    odd warpgroup's first tile, k_steps >= STAGES steps ahead of the even one's) would pass at once
    and read a stage not yet filled. In turn, every wait is at most one phase ahead."""
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[NW, 1],
                                                  instr_shape=[16, 2 * BN, 16])  # fmt: skip
    st: gl.constexpr = gl.BlockedLayout([1, 8], [32 // (BN // 8), BN // 8], [NW, 1], [1, 0])
    table, num_n, num_tiles = _tile_space(counts_ptr, I, E, E_P, BM, BN, NW)
    k_steps = gl.cdiv(D, BK)
    e_buf = e_bufs.index(ROLE)
    t = ROLE  # this program's tile count before this tile (the producer's order)
    j = 0  # this warpgroup's tiles before this one
    for tile_id in range(gl.program_id(0) + ROLE * NUM_PROGRAMS, num_tiles, 2 * NUM_PROGRAMS):
        e, m_start, m_end, pid_n = _tile_of(tile_id, table, num_n, BM)
        it = t * k_steps
        acc = gl.zeros((BM, 2 * BN), gl.float32, mma)
        # Our turn: the other warpgroup's tile t - 1 has left its main loop (its (j - ROLE)-th hand-over).
        mbarrier.wait(order.index(ROLE), (j - 1 + ROLE) & 1, pred=t > 0)
        for ki in range(k_steps):
            s = it % STAGES
            mbarrier.wait(ready.index(s), (it // STAGES) & 1)
            fence_async_shared()  # the cp.async writes (generic proxy) before wgmma's reads (async proxy)
            acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s).permute((1, 0)), acc, is_async=True)
            # This step's group stays in flight; the previous step's is done: free its stage.
            acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
            mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES), pred=ki > 0)
            it += 1
        mbarrier.arrive(order.index(1 - ROLE))  # every stage of this tile waited on: the other's turn
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES))
        # Epilogue, as in the Triton kernel: GU rounded to the output dtype, h from the rounded values.
        gl.thread_barrier()  # this warpgroup has read its previous tile out of e_buf
        e_buf.store(acc.to(e_buf.dtype))
        gl.thread_barrier()
        g = e_buf.slice(0, BN, dim=1).load(st)
        u = e_buf.slice(BN, BN, dim=1).load(st)
        rows = m_start + gl.arange(0, BM, layout=gl.SliceLayout(1, st))
        cols = pid_n * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, st))
        mask = (rows < m_end)[:, None] & (cols < I)[None, :]
        rows64 = rows.to(gl.int64)
        gu_off = rows64[:, None] * (2 * I) + cols[None, :]
        gl.store(gu_ptr + gu_off, g, mask=mask)
        gl.store(gu_ptr + gu_off + I, u, mask=mask)
        gf = g.to(gl.float32)
        h = gf / (1.0 + gl.exp(-gf)) * u.to(gl.float32)
        gl.store(h_ptr + rows64[:, None] * I + cols[None, :], h.to(h_ptr.dtype.element_ty), mask=mask)
        t += 2
        j += 1


PP_CONSUMER_REGS = gl.constexpr(168)


@gluon.jit
def gate_up_pp_kernel(
    x_ptr,  # (T, D)
    tok_ptr,  # (S,) int32
    counts_ptr,  # (E,) int32
    gu_ptr,  # (S, 2I) out: pre-activation [gate | up]
    h_ptr,  # (S, I) out: silu(gate) * up
    w_desc,  # gluon TMA descriptor of gate_up viewed (E*2I, D), block [BN, BK]
    D,
    I,
    E: gl.constexpr,
    E_P: gl.constexpr,
    BM: gl.constexpr,
    BN: gl.constexpr,
    BK: gl.constexpr,
    STAGES: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr,
    num_warps: gl.constexpr,
):
    """Persistent gate/up grouped GEMM with a ping-pong schedule (D % BK == 0; the caller checks):
    v9's producer (gathered X rows by cp.async, the tile's gate and up weight rows by TMA) and two
    consumer warpgroups (num_warps = 4 each), each with its own (BM, 2*BN) tile, so that one's
    epilogue runs under the other's MMAs (gate_up_ws_kernel's two warpgroups share a tile and wait
    for its epilogue together)."""
    dtype: gl.constexpr = x_ptr.dtype.element_ty
    a_bufs = gl.allocate_shared_memory(dtype, [STAGES, BM, BK], w_desc.layout)
    b_bufs = gl.allocate_shared_memory(dtype, [STAGES, 2 * BN, BK], w_desc.layout)
    e_layout: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
    e_bufs = gl.allocate_shared_memory(dtype, [2, BM, 2 * BN], e_layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    order = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1 + 32 * PRODUCER_WARPS)
        mbarrier.init(empty.index(i), count=1)
    for i in gl.static_range(2):
        mbarrier.init(order.index(i), count=1)
    gl.warp_specialize(
        [
            (_gate_up_pp_consumer, (counts_ptr, gu_ptr, h_ptr, a_bufs, b_bufs, ready, empty, e_bufs, order, D, I,
                                    E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, num_warps, 0)),
            (_gate_up_pp_consumer, (counts_ptr, gu_ptr, h_ptr, a_bufs, b_bufs, ready, empty, e_bufs, order, D, I,
                                    E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, num_warps, 1)),
            (_stage_producer, (x_ptr, tok_ptr, counts_ptr, w_desc, a_bufs, b_bufs, ready, empty, D, I,
                               E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, True, B_GATE_UP)),
        ],
        [num_warps, PRODUCER_WARPS],
        [PP_CONSUMER_REGS, PRODUCER_REGS],
    )  # fmt: skip


@gluon.jit
def _tma_store_tile(out, c_desc, c_buf, row0, col0):
    """A finished tile (registers) to global memory through c_buf by a TMA store, once the previous
    store from c_buf has read it; the store drains while the caller goes on."""
    tma.store_wait(pendings=0)
    gl.thread_barrier()
    c_buf.store(out)
    fence_async_shared()
    gl.thread_barrier()
    tma.async_copy_shared_to_global(c_desc, [row0, col0], c_buf)


# --------------------------------------------------------------------------------------------
# Plain M-grouped GEMMs (down, dX, the G GEMM): c[s] = a[row(s)] @ B[e(s)] (* scale[s])
# --------------------------------------------------------------------------------------------
@gluon.jit
def _grouped_mm_consumer(
    counts_ptr, c_ptr, c_desc, scale_ptr, a_bufs, b_bufs, ready, empty, c_buf, K, N,
    E: gl.constexpr, E_P: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr,
    STAGES: gl.constexpr, NUM_PROGRAMS: gl.constexpr, NW: gl.constexpr, B_MODE: gl.constexpr,
    HAS_SCALE: gl.constexpr, EARLY: gl.constexpr, SUB: gl.constexpr,
):  # fmt: skip
    """One (BM, BN) accumulator per tile; a whole tile leaves through shared memory by a TMA store
    that drains during the next tile's MMAs, an expert's last, partial tile by a masked store (a
    TMA store would write the next expert's rows).

    Between two tiles the tensor cores wait for this partition (the last MMA's drain, the epilogue,
    the next tile's coordinates): bench/moe_tile_cost.py measured 3.6 us per tile here against 0.9
    for cuBLAS. EARLY takes two of those off that path: the row scale is loaded before the main
    loop, and the next tile's coordinates are worked out while the last K step's MMA runs. SUB
    stores a whole tile in two (BM, BN / 2) halves through one half-size buffer (c_desc's block),
    which leaves room for a 4th stage, as CUTLASS's epilogues store sub-tiles."""
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[NW, 1], instr_shape=[16, BN, 16])
    table, num_n, num_tiles = _tile_space(counts_ptr, N, E, E_P, BM, BN, NW)
    k_steps = gl.cdiv(K, BK)
    it = 0
    _, m_start, m_end, pid_n = _tile_of(gl.program_id(0), table, num_n, BM)
    for tile_id in range(gl.program_id(0), num_tiles, NUM_PROGRAMS):
        if not EARLY:
            _, m_start, m_end, pid_n = _tile_of(tile_id, table, num_n, BM)
        rows = m_start + gl.arange(0, BM, layout=gl.SliceLayout(1, mma))
        if HAS_SCALE and EARLY:  # its load's latency hidden under the main loop
            scale = gl.load(scale_ptr + rows, mask=rows < m_end, other=0.0)
        acc = gl.zeros((BM, BN), gl.float32, mma)
        for ki in range(k_steps):
            s = it % STAGES
            mbarrier.wait(ready.index(s), (it // STAGES) & 1)
            fence_async_shared()  # gathered rows arrive by cp.async (generic proxy)
            if B_MODE == B_NK:
                acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s).permute((1, 0)), acc, is_async=True)
            else:
                acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s), acc, is_async=True)
            acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
            mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES), pred=ki > 0)
            it += 1
        if EARLY:  # under the last K step's MMA, still in flight
            _, nm_start, nm_end, npid_n = _tile_of(tile_id + NUM_PROGRAMS, table, num_n, BM)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES))
        if HAS_SCALE:
            if EARLY:
                acc = acc * scale[:, None]
            else:
                acc = acc * gl.load(scale_ptr + rows, mask=rows < m_end, other=0.0)[:, None]
        out = acc.to(c_buf.dtype)
        if m_end - m_start >= BM:
            if SUB:
                lo, hi = gl.split(gl.permute(gl.reshape(out, (BM, 2, BN // 2)), (0, 2, 1)))
                _tma_store_tile(lo, c_desc, c_buf, m_start, pid_n * BN)
                _tma_store_tile(hi, c_desc, c_buf, m_start, pid_n * BN + BN // 2)
            else:
                _tma_store_tile(out, c_desc, c_buf, m_start, pid_n * BN)
        else:
            cols = pid_n * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, mma))
            mask = (rows < m_end)[:, None] & (cols < N)[None, :]
            gl.store(c_ptr + rows.to(gl.int64)[:, None] * N + cols[None, :], out, mask=mask)
        if EARLY:
            m_start, m_end, pid_n = nm_start, nm_end, npid_n
    tma.store_wait(pendings=0)


@gluon.jit
def grouped_mm_ws_kernel(
    a_src,  # GATHER: (T, K) pointer, rows a_src[tok]; else the TMA descriptor of (S, K), block [BM, BK]
    tok_ptr,  # (S,) int32 (GATHER)
    counts_ptr,  # (E,) int32
    b_desc,  # weights: B_KN (E*K, N) block [BK, BN]; B_NK (E*N, K) block [BN, BK]
    c_ptr,  # (S, N) out
    c_desc,  # TMA descriptor of c, block [BM, BN] ([BM, BN // 2] with SUB)
    scale_ptr,  # (S,) float32 row scale (HAS_SCALE)
    K,
    N,
    E: gl.constexpr,
    E_P: gl.constexpr,
    BM: gl.constexpr,
    BN: gl.constexpr,
    BK: gl.constexpr,
    STAGES: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr,
    GATHER: gl.constexpr,
    B_MODE: gl.constexpr,
    HAS_SCALE: gl.constexpr,
    num_warps: gl.constexpr,
    EARLY: gl.constexpr = False,
    SUB: gl.constexpr = False,
):
    """Persistent, warp-specialised M-grouped GEMM (K % BK == 0, so B boxes never cross experts;
    the caller checks). EARLY, SUB: see _grouped_mm_consumer."""
    dtype: gl.constexpr = c_ptr.dtype.element_ty
    a_layout: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
    a_bufs = gl.allocate_shared_memory(dtype, [STAGES, BM, BK], a_layout)
    if B_MODE == B_NK:
        b_bufs = gl.allocate_shared_memory(dtype, [STAGES, BN, BK], b_desc.layout)
    else:
        b_bufs = gl.allocate_shared_memory(dtype, [STAGES, BK, BN], b_desc.layout)
    c_buf = gl.allocate_shared_memory(dtype, c_desc.block_type.shape, c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        # ready: the TMA's expect-arrive, plus one cp.async arrival per producer thread when gathering.
        mbarrier.init(ready.index(i), count=1 + 32 * PRODUCER_WARPS if GATHER else 1)
        mbarrier.init(empty.index(i), count=1)
    gl.warp_specialize(
        [
            (_grouped_mm_consumer, (counts_ptr, c_ptr, c_desc, scale_ptr, a_bufs, b_bufs, ready, empty, c_buf, K, N,
                                    E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, num_warps, B_MODE, HAS_SCALE,
                                    EARLY, SUB)),
            (_stage_producer, (a_src, tok_ptr, counts_ptr, b_desc, a_bufs, b_bufs, ready, empty, K, N,
                               E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, GATHER, B_MODE)),
        ],
        [PRODUCER_WARPS],
        [PRODUCER_REGS],
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The same M-grouped GEMMs with a ping-pong schedule (issue 25, v16 try)
# --------------------------------------------------------------------------------------------
@gluon.jit
def _grouped_mm_pp_consumer(
    counts_ptr, c_ptr, c_desc, scale_ptr, a_bufs, b_bufs, ready, empty, c_bufs, order, K, N,
    E: gl.constexpr, E_P: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr,
    STAGES: gl.constexpr, NUM_PROGRAMS: gl.constexpr, NW: gl.constexpr, B_MODE: gl.constexpr,
    HAS_SCALE: gl.constexpr, ROLE: gl.constexpr,
):  # fmt: skip
    """One warpgroup of the ping-pong M-grouped GEMM: every other tile of this program (ROLE 0 the
    even ones), each its own (BM, BN) accumulator, its epilogue (row scale, then a TMA store through
    this warpgroup's own buffer, or a masked store for an expert's partial last tile) running while
    the other warpgroup's main loop keeps the tensor cores busy. The main loops take turns through
    ``order`` (why: _gate_up_pp_consumer), so the MMAs are never idle between two tiles for the time
    of an epilogue, as they are in _grouped_mm_consumer where both warpgroups share each tile."""
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[NW, 1], instr_shape=[16, BN, 16])
    table, num_n, num_tiles = _tile_space(counts_ptr, N, E, E_P, BM, BN, NW)
    k_steps = gl.cdiv(K, BK)
    c_buf = c_bufs.index(ROLE)
    t = ROLE  # this program's tile count before this tile (the producer's order)
    j = 0  # this warpgroup's tiles before this one
    for tile_id in range(gl.program_id(0) + ROLE * NUM_PROGRAMS, num_tiles, 2 * NUM_PROGRAMS):
        e, m_start, m_end, pid_n = _tile_of(tile_id, table, num_n, BM)
        rows = m_start + gl.arange(0, BM, layout=gl.SliceLayout(1, mma))
        if HAS_SCALE:  # loaded before the main loop: its latency is hidden there
            scale = gl.load(scale_ptr + rows, mask=rows < m_end, other=0.0)
        it = t * k_steps
        acc = gl.zeros((BM, BN), gl.float32, mma)
        mbarrier.wait(order.index(ROLE), (j - 1 + ROLE) & 1, pred=t > 0)
        for ki in range(k_steps):
            s = it % STAGES
            mbarrier.wait(ready.index(s), (it // STAGES) & 1)
            if B_MODE == B_NK:
                acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s).permute((1, 0)), acc, is_async=True)
            else:
                acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s), acc, is_async=True)
            acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
            mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES), pred=ki > 0)
            it += 1
        mbarrier.arrive(order.index(1 - ROLE))  # every stage of this tile waited on: the other's turn
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES))
        if HAS_SCALE:
            acc = acc * scale[:, None]
        out = acc.to(c_ptr.dtype.element_ty)
        if m_end - m_start >= BM:
            _tma_store_tile(out, c_desc, c_buf, m_start, pid_n * BN)  # c_buf: this warpgroup's own
        else:
            cols = pid_n * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, mma))
            mask = (rows < m_end)[:, None] & (cols < N)[None, :]
            gl.store(c_ptr + rows.to(gl.int64)[:, None] * N + cols[None, :], out, mask=mask)
        t += 2
        j += 1
    tma.store_wait(pendings=0)


@gluon.jit
def grouped_mm_pp_kernel(
    a_desc,  # TMA descriptor of the sorted (S, K) rows, block [BM, BK]
    tok_ptr,  # (S,) int32 (unused: A is never gathered here)
    counts_ptr,  # (E,) int32
    b_desc,  # weights: B_KN (E*K, N) block [BK, BN]; B_NK (E*N, K) block [BN, BK]
    c_ptr,  # (S, N) out
    c_desc,  # TMA descriptor of c, block [BM, BN]
    scale_ptr,  # (S,) float32 row scale (HAS_SCALE)
    K,
    N,
    E: gl.constexpr,
    E_P: gl.constexpr,
    BM: gl.constexpr,
    BN: gl.constexpr,
    BK: gl.constexpr,
    STAGES: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr,
    B_MODE: gl.constexpr,
    HAS_SCALE: gl.constexpr,
    num_warps: gl.constexpr,
):
    """Persistent M-grouped GEMM with TMA-fed A rows and a ping-pong schedule (K % BK == 0; the
    caller checks): grouped_mm_ws_kernel's producer and two consumer warpgroups (num_warps = 4 each)
    with a (BM, BN) tile each (_grouped_mm_pp_consumer)."""
    dtype: gl.constexpr = c_ptr.dtype.element_ty
    a_bufs = gl.allocate_shared_memory(dtype, [STAGES, BM, BK], a_desc.layout)
    if B_MODE == B_NK:
        b_bufs = gl.allocate_shared_memory(dtype, [STAGES, BN, BK], b_desc.layout)
    else:
        b_bufs = gl.allocate_shared_memory(dtype, [STAGES, BK, BN], b_desc.layout)
    c_bufs = gl.allocate_shared_memory(dtype, [2, BM, BN], c_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    order = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1)
        mbarrier.init(empty.index(i), count=1)
    for i in gl.static_range(2):
        mbarrier.init(order.index(i), count=1)
    gl.warp_specialize(
        [
            (_grouped_mm_pp_consumer, (counts_ptr, c_ptr, c_desc, scale_ptr, a_bufs, b_bufs, ready, empty, c_bufs,
                                       order, K, N, E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, num_warps, B_MODE,
                                       HAS_SCALE, 0)),
            (_grouped_mm_pp_consumer, (counts_ptr, c_ptr, c_desc, scale_ptr, a_bufs, b_bufs, ready, empty, c_bufs,
                                       order, K, N, E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, num_warps, B_MODE,
                                       HAS_SCALE, 1)),
            (_stage_producer, (a_desc, tok_ptr, counts_ptr, b_desc, a_bufs, b_bufs, ready, empty, K, N,
                               E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, False, B_MODE)),
        ],
        [num_warps, PRODUCER_WARPS],
        [PP_CONSUMER_REGS, PRODUCER_REGS],
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The G GEMM with the SwiGLU backward in the consumers' epilogue (issue 25)
# --------------------------------------------------------------------------------------------
@gluon.jit
def _g_swiglu_consumer(
    counts_ptr, gu_ptr, w_ptr, dgu_ptr, hw_ptr, dw_ptr, a_bufs, b_bufs, ready, empty, g_buf, K, N,
    E: gl.constexpr, E_P: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr,
    STAGES: gl.constexpr, NUM_PROGRAMS: gl.constexpr, NW: gl.constexpr, SR: gl.constexpr, PF: gl.constexpr,
):  # fmt: skip
    """G = dY[tok] @ Wd[e] per (BM, BN) tile, as _grouped_mm_consumer; then, in the same warps, the
    SwiGLU backward of the tile, SR rows at a time: G goes through shared memory (rounded to the
    dtype, as the split path stores it), GU's gate and up columns come from global memory PF (1 or 2)
    slices ahead (the first slice is requested before the last MMA is waited for), and dGU (the routing
    weight folded in), h*w and this N-tile's share of the routing-weight grad h.G leave by plain
    stores. G itself never reaches global memory."""
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[NW, 1], instr_shape=[16, BN, 16])
    # 8 elements (16 bytes) per thread, a warp spanning BN columns exactly: no replicated lanes.
    blk: gl.constexpr = gl.BlockedLayout([1, 8], [32 // (BN // 8), BN // 8], [NW, 1], [1, 0])
    table, num_n, num_tiles = _tile_space(counts_ptr, N, E, E_P, BM, BN, NW)
    k_steps = gl.cdiv(K, BK)
    offs_r = gl.arange(0, SR, layout=gl.SliceLayout(1, blk))
    it = 0
    for tile_id in range(gl.program_id(0), num_tiles, NUM_PROGRAMS):
        e, m_start, m_end, pid_n = _tile_of(tile_id, table, num_n, BM)
        m_stop = gl.minimum(m_end, m_start + BM)
        cols = pid_n * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, blk))
        mask_c = cols < N
        acc = gl.zeros((BM, BN), gl.float32, mma)
        for ki in range(k_steps):
            s = it % STAGES
            mbarrier.wait(ready.index(s), (it // STAGES) & 1)
            fence_async_shared()  # gathered rows arrive by cp.async (generic proxy)
            acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s), acc, is_async=True)
            acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
            mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES), pred=ki > 0)
            it += 1
        # The first slice's GU is requested while the last MMA runs.
        rows = m_start + offs_r
        mask = (rows < m_stop)[:, None] & mask_c[None, :]
        gu_off = rows.to(gl.int64)[:, None] * (2 * N) + cols[None, :]
        g_next = gl.load(gu_ptr + gu_off, mask=mask, other=0.0)
        u_next = gl.load(gu_ptr + gu_off + N, mask=mask, other=0.0)
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES))
        gl.thread_barrier()  # every warp has read the previous tile's G out of g_buf
        g_buf.store(acc.to(g_buf.dtype))
        if PF == 2:  # the second slice too, once the accumulator's registers are free
            rows = m_start + SR + offs_r
            mask = (rows < m_stop)[:, None] & mask_c[None, :]
            gu_off = rows.to(gl.int64)[:, None] * (2 * N) + cols[None, :]
            g_next2 = gl.load(gu_ptr + gu_off, mask=mask, other=0.0)
            u_next2 = gl.load(gu_ptr + gu_off + N, mask=mask, other=0.0)
        gl.thread_barrier()
        for j in gl.static_range(BM // SR):
            rows = m_start + j * SR + offs_r
            mask_r = rows < m_stop
            m = mask_r[:, None] & mask_c[None, :]
            rows64 = rows.to(gl.int64)
            gu_off = rows64[:, None] * (2 * N) + cols[None, :]
            g = g_next.to(gl.float32)
            u = u_next.to(gl.float32)
            # The slice PF ahead (past the last slice every row is past m_stop: no memory traffic).
            nmask = (rows + PF * SR < m_stop)[:, None] & mask_c[None, :]
            noff = gu_off + PF * SR * (2 * N)
            if PF == 2:
                g_next = g_next2
                u_next = u_next2
                g_next2 = gl.load(gu_ptr + noff, mask=nmask, other=0.0)
                u_next2 = gl.load(gu_ptr + noff + N, mask=nmask, other=0.0)
            else:
                g_next = gl.load(gu_ptr + noff, mask=nmask, other=0.0)
                u_next = gl.load(gu_ptr + noff + N, mask=nmask, other=0.0)
            G = g_buf.slice(j * SR, SR).load(blk).to(gl.float32)
            w = gl.load(w_ptr + rows, mask=mask_r, other=0.0)
            sig = 1.0 / (1.0 + gl.exp(-g))
            silu = g * sig
            h = silu * u
            gl.store(dw_ptr + rows64 * num_n + pid_n, gl.sum(h * G, axis=1), mask=mask_r)
            dh = G * w[:, None]
            gl.store(dgu_ptr + gu_off, (dh * u * sig * (1.0 + g * (1.0 - sig))).to(dgu_ptr.dtype.element_ty), mask=m)
            gl.store(dgu_ptr + gu_off + N, (dh * silu).to(dgu_ptr.dtype.element_ty), mask=m)
            gl.store(hw_ptr + rows64[:, None] * N + cols[None, :], (h * w[:, None]).to(hw_ptr.dtype.element_ty),
                     mask=m)  # fmt: skip


@gluon.jit
def g_swiglu_ws_kernel(
    dy_ptr,  # (T, D)
    tok_ptr,  # (S,) int32
    counts_ptr,  # (E,) int32
    wd_desc,  # gluon TMA descriptor of down viewed (E*D, I), block [BK, BN]
    gu_ptr,  # (S, 2I) saved pre-activation
    w_ptr,  # (S,) float32 routing weights of the sorted rows
    dgu_ptr,  # (S, 2I) out
    hw_ptr,  # (S, I) out: h * w
    dw_ptr,  # (S, cdiv(I, BN)) float32 out: per N-tile partial h . G
    D,
    I,
    E: gl.constexpr,
    E_P: gl.constexpr,
    BM: gl.constexpr,
    BN: gl.constexpr,
    BK: gl.constexpr,
    STAGES: gl.constexpr,
    SR: gl.constexpr,
    PF: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr,
    num_warps: gl.constexpr,
):
    """Persistent, warp-specialised down-projection backward in one kernel: the grouped GEMM's
    producer (dY rows gathered by cp.async, Wd boxes by TMA) and 8 consumer warps that run the G
    tile's wgmma and then its SwiGLU backward (_g_swiglu_consumer); D % BK == 0 (the caller checks).
    Unlike down_bwd_ws_kernel there is no third partition, so at 12 warps the consumers keep a
    (128, 256) accumulator; the epilogue is not overlapped with this program's next MMAs (the producer
    runs ahead into the next tile's stages; other SMs' MMAs overlap it)."""
    dtype: gl.constexpr = dy_ptr.dtype.element_ty
    smem: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
    a_bufs = gl.allocate_shared_memory(dtype, [STAGES, BM, BK], smem)
    b_bufs = gl.allocate_shared_memory(dtype, [STAGES, BK, BN], wd_desc.layout)
    g_buf = gl.allocate_shared_memory(dtype, [BM, BN], smem)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1 + 32 * PRODUCER_WARPS)
        mbarrier.init(empty.index(i), count=1)
    gl.warp_specialize(
        [
            (_g_swiglu_consumer, (counts_ptr, gu_ptr, w_ptr, dgu_ptr, hw_ptr, dw_ptr, a_bufs, b_bufs, ready, empty,
                                  g_buf, D, I, E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, num_warps, SR, PF)),
            (_stage_producer, (dy_ptr, tok_ptr, counts_ptr, wd_desc, a_bufs, b_bufs, ready, empty, D, I,
                               E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, True, B_KN)),
        ],
        [PRODUCER_WARPS],
        [PRODUCER_REGS],
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Down-projection backward with the SwiGLU backward fused (issue 8, part 3)
# --------------------------------------------------------------------------------------------
EPILOGUE_WARPS = gl.constexpr(4)
EPILOGUE_REGS = gl.constexpr(152)  # below it the unrolled slices spill (ptxas, SR=8)


@gluon.jit
def _down_bwd_mma(
    counts_ptr, a_bufs, b_bufs, ready, empty, g_buf, g_ready, g_free, D, I,
    E: gl.constexpr, E_P: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr,
    STAGES: gl.constexpr, NUM_PROGRAMS: gl.constexpr, NW: gl.constexpr,
):  # fmt: skip
    """G = dY[tok] @ Wd[e] per tile; the tile goes to shared memory (rounded to the dtype, as the
    split path stores it) for the epilogue partition, and the MMAs go on with the next tile."""
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[NW, 1], instr_shape=[16, BN, 16])
    table, num_n, num_tiles = _tile_space(counts_ptr, I, E, E_P, BM, BN, NW)
    k_steps = gl.cdiv(D, BK)
    it = 0
    t = 0
    for _tile in range(gl.program_id(0), num_tiles, NUM_PROGRAMS):
        acc = gl.zeros((BM, BN), gl.float32, mma)
        for ki in range(k_steps):
            s = it % STAGES
            mbarrier.wait(ready.index(s), (it // STAGES) & 1)
            fence_async_shared()
            acc = warpgroup_mma(a_bufs.index(s), b_bufs.index(s), acc, is_async=True)
            acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
            mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES), pred=ki > 0)
            it += 1
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES))
        mbarrier.wait(g_free, (t & 1) ^ 1)  # the epilogue has read the previous tile
        g_buf.store(acc.to(g_buf.dtype))
        mbarrier.arrive(g_ready)
        t += 1


@gluon.jit
def _down_bwd_epilogue(
    counts_ptr, gu_desc, w_ptr, dgu_ptr, hw_ptr, dw_ptr, g_buf, g_ready, g_free, gu_bufs, gu_bar, I,
    E: gl.constexpr, E_P: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, SR: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr,
):  # fmt: skip
    """The SwiGLU backward of one G tile, SR rows at a time: recompute h from GU, write dGU (the
    routing weight folded in), h*w (dWd's input) and this N-tile's share of the routing-weight
    grad h.G (summed over the N-tiles by the caller). The tile's gate and up columns of GU (sorted
    rows: TMA-able) are loaded into shared memory while the MMA partition still computes G."""
    NW: gl.constexpr = EPILOGUE_WARPS
    # 8 elements (16 bytes) per thread, a warp spanning BN columns exactly: no replicated lanes.
    blk: gl.constexpr = gl.BlockedLayout([1, 8], [32 // (BN // 8), BN // 8], [NW, 1], [1, 0])
    table, num_n, num_tiles = _tile_space(counts_ptr, I, E, E_P, BM, BN, NW)
    t = 0
    for tile_id in range(gl.program_id(0), num_tiles, NUM_PROGRAMS):
        e, m_start, m_end, pid_n = _tile_of(tile_id, table, num_n, BM)
        # The previous tile's reads of gu_bufs are done (all warps): let the TMA overwrite them.
        gl.thread_barrier()
        fence_async_shared()
        mbarrier.expect(gu_bar, 2 * gu_desc.block_type.nbytes)
        tma.async_copy_global_to_shared(gu_desc, [m_start, pid_n * BN], gu_bar, gu_bufs.index(0))
        tma.async_copy_global_to_shared(gu_desc, [m_start, I + pid_n * BN], gu_bar, gu_bufs.index(1))
        cols = pid_n * BN + gl.arange(0, BN, layout=gl.SliceLayout(0, blk))
        mask_c = cols < I
        mbarrier.wait(gu_bar, t & 1)
        mbarrier.wait(g_ready, t & 1)
        for j in gl.static_range(BM // SR):
            rows = m_start + j * SR + gl.arange(0, SR, layout=gl.SliceLayout(1, blk))
            mask_r = rows < m_end
            m = mask_r[:, None] & mask_c[None, :]
            rows64 = rows.to(gl.int64)
            gu_off = rows64[:, None] * (2 * I) + cols[None, :]
            i_off = rows64[:, None] * I + cols[None, :]
            G = g_buf.slice(j * SR, SR).load(blk).to(gl.float32)
            # After the last slice is in registers the MMA partition may overwrite the buffer.
            mbarrier.arrive(g_free, pred=j == BM // SR - 1)
            g = gu_bufs.index(0).slice(j * SR, SR).load(blk).to(gl.float32)
            u = gu_bufs.index(1).slice(j * SR, SR).load(blk).to(gl.float32)
            w = gl.load(w_ptr + rows, mask=mask_r, other=0.0)
            sig = 1.0 / (1.0 + gl.exp(-g))
            silu = g * sig
            h = silu * u
            gl.store(dw_ptr + rows64 * num_n + pid_n, gl.sum(h * G, axis=1), mask=mask_r)
            dh = G * w[:, None]
            gl.store(dgu_ptr + gu_off, (dh * u * sig * (1.0 + g * (1.0 - sig))).to(dgu_ptr.dtype.element_ty), mask=m)
            gl.store(dgu_ptr + gu_off + I, (dh * silu).to(dgu_ptr.dtype.element_ty), mask=m)
            gl.store(hw_ptr + i_off, (h * w[:, None]).to(hw_ptr.dtype.element_ty), mask=m)
        t += 1


@gluon.jit
def down_bwd_ws_kernel(
    dy_ptr,  # (T, D)
    tok_ptr,  # (S,) int32
    counts_ptr,  # (E,) int32
    gu_desc,  # gluon TMA descriptor of the saved pre-activation GU (S, 2I), block [BM, BN]
    w_ptr,  # (S,) float32 routing weights of the sorted rows
    dgu_ptr,  # (S, 2I) out
    hw_ptr,  # (S, I) out: h * w
    dw_ptr,  # (S, cdiv(I, BN)) float32 out: per N-tile partial h . G
    wd_desc,  # gluon TMA descriptor of down viewed (E*D, I), block [BK, BN]
    D,
    I,
    E: gl.constexpr,
    E_P: gl.constexpr,
    BM: gl.constexpr,
    BN: gl.constexpr,
    BK: gl.constexpr,
    STAGES: gl.constexpr,
    SR: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr,
    num_warps: gl.constexpr,
):
    """Persistent, warp-specialised G = dY[tok] @ Wd[e] with the SwiGLU backward in a separate
    epilogue partition, overlapped with the next tile's MMAs (D % BK == 0; the caller checks)."""
    dtype: gl.constexpr = dy_ptr.dtype.element_ty
    smem: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
    a_bufs = gl.allocate_shared_memory(dtype, [STAGES, BM, BK], smem)
    b_bufs = gl.allocate_shared_memory(dtype, [STAGES, BK, BN], wd_desc.layout)
    # G tile handed to the epilogue partition: only these two partitions touch it (no TMA/wgmma).
    g_buf = gl.allocate_shared_memory(dtype, [BM, BN], gl.SwizzledSharedLayout(8, 1, 8, [1, 0]))
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    g_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    g_free = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    gu_bufs = gl.allocate_shared_memory(dtype, [2, BM, BN], gu_desc.layout)  # the tile's gate, up
    gu_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    mbarrier.init(gu_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1 + 32 * PRODUCER_WARPS)
        mbarrier.init(empty.index(i), count=1)
    mbarrier.init(g_ready, count=1)
    mbarrier.init(g_free, count=1)
    gl.warp_specialize(
        [
            (_down_bwd_mma, (counts_ptr, a_bufs, b_bufs, ready, empty, g_buf, g_ready, g_free, D, I,
                             E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, num_warps)),
            (_stage_producer, (dy_ptr, tok_ptr, counts_ptr, wd_desc, a_bufs, b_bufs, ready, empty, D, I,
                               E, E_P, BM, BN, BK, STAGES, NUM_PROGRAMS, True, B_KN)),
            (_down_bwd_epilogue, (counts_ptr, gu_desc, w_ptr, dgu_ptr, hw_ptr, dw_ptr, g_buf, g_ready, g_free,
                                  gu_bufs, gu_bar, I,
                                  E, E_P, BM, BN, SR, NUM_PROGRAMS)),
        ],
        [PRODUCER_WARPS, EPILOGUE_WARPS],
        [PRODUCER_REGS, EPILOGUE_REGS],
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Weight-gradient grouped GEMMs (dWd, dWgu): K-grouped, the reduction runs over an expert's rows
# --------------------------------------------------------------------------------------------
# The wgrad producer holds the next step's token ids as well as the copy addresses: at 48 registers
# it spills 8 bytes (bench/gluon_sm90_compile.py), at 64 it does not; the consumers keep 216.
WGRAD_PRODUCER_REGS = gl.constexpr(64)


@gluon.jit
def _wgrad_tile(tile_id, counts_ptr, offsets_ptr, num_m, num_n):
    """(expert, M-tile, N-tile, first sorted row, rows) of a tile; tiles run expert-major as in the
    Triton kernel's grid, so the programs in flight share one or two experts' rows in L2."""
    per_e = num_m * num_n
    e = tile_id // per_e
    rem = tile_id % per_e
    return e, rem // num_n, rem % num_n, gl.load(offsets_ptr + e), gl.load(counts_ptr + e)


@gluon.jit
def _wgrad_producer(
    a_ptr, tok_ptr, counts_ptr, offsets_ptr, b_desc, a_bufs, b_bufs, ready, empty, M, N, stride_a,
    E: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr,
):  # fmt: skip
    """Per step of BK sorted rows: TMA the (BK, BN) box of the sorted operand, cp.async the BK gathered
    rows' (BK, BM) slice of a_ptr (rows past the expert zero-filled: they meet the other operand's
    rows of the next expert). The next step's token ids are loaded one step ahead, so that load's
    latency overlaps the wait for a free stage instead of delaying the copies."""
    NW: gl.constexpr = PRODUCER_WARPS
    blk: gl.constexpr = gl.BlockedLayout([1, 8], [32 // (BM // 8), BM // 8], [NW, 1], [1, 0])
    num_m = gl.cdiv(M, BM)
    num_n = gl.cdiv(N, BN)
    offs_k = gl.arange(0, BK, layout=gl.SliceLayout(1, blk))
    offs_m = gl.arange(0, BM, layout=gl.SliceLayout(0, blk))
    it = 0
    for tile_id in range(gl.program_id(0), E * num_m * num_n, NUM_PROGRAMS):
        e, pid_m, pid_n, start, cnt = _wgrad_tile(tile_id, counts_ptr, offsets_ptr, num_m, num_n)
        cols = pid_m * BM + offs_m
        n0 = pid_n * BN
        tok_next = gl.load(tok_ptr + start + offs_k, mask=offs_k < cnt, other=0)
        for r0 in range(0, cnt, BK):
            tok = tok_next.to(gl.int64)
            valid = (r0 + offs_k) < cnt
            tok_next = gl.load(tok_ptr + start + r0 + BK + offs_k, mask=(r0 + BK + offs_k) < cnt, other=0)
            s = it % STAGES
            mbarrier.wait(empty.index(s), ((it // STAGES) & 1) ^ 1)
            bar = ready.index(s)
            mbarrier.expect(bar, b_desc.block_type.nbytes)
            tma.async_copy_global_to_shared(b_desc, [start + r0, n0], bar, b_bufs.index(s))
            async_copy.async_copy_global_to_shared(
                a_bufs.index(s), a_ptr + tok[:, None] * stride_a + cols[None, :], mask=valid[:, None]
            )
            async_copy.mbarrier_arrive(bar, increment_count=False)
            it += 1


@gluon.jit
def _wgrad_consumer(
    counts_ptr, offsets_ptr, out_desc, a_bufs, b_bufs, ready, empty, out_buf, M, N,
    E: gl.constexpr, BM: gl.constexpr, BN: gl.constexpr, BK: gl.constexpr, STAGES: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr, NW: gl.constexpr, OUT_T: gl.constexpr,
):  # fmt: skip
    """acc (BM, BN) += a_tile^T b_tile over the expert's rows (wgmma with the A tile read
    M-major from shared memory), then the tile through shared memory to a TMA store, which drains
    while the next tile's MMAs run. An expert with no rows gets a zero tile, as in the Triton kernel."""
    mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[NW, 1], instr_shape=[16, BN, 16])
    num_m = gl.cdiv(M, BM)
    num_n = gl.cdiv(N, BN)
    it = 0
    for tile_id in range(gl.program_id(0), E * num_m * num_n, NUM_PROGRAMS):
        e, pid_m, pid_n, start, cnt = _wgrad_tile(tile_id, counts_ptr, offsets_ptr, num_m, num_n)
        k_steps = gl.cdiv(cnt, BK)
        acc = gl.zeros((BM, BN), gl.float32, mma)
        for ki in range(k_steps):
            s = it % STAGES
            mbarrier.wait(ready.index(s), (it // STAGES) & 1)
            fence_async_shared()
            acc = warpgroup_mma(a_bufs.index(s).permute((1, 0)), b_bufs.index(s), acc, is_async=True)
            acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
            mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES), pred=ki > 0)
            it += 1
        acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
        mbarrier.arrive(empty.index((it + STAGES - 1) % STAGES), pred=k_steps > 0)
        tma.store_wait(pendings=0)  # the previous tile's store has read out_buf
        gl.thread_barrier()
        if OUT_T:
            out_buf.store(gl.permute(acc.to(out_buf.dtype), (1, 0)))
        else:
            out_buf.store(acc.to(out_buf.dtype))
        fence_async_shared()
        gl.thread_barrier()
        if OUT_T:
            tma.async_copy_shared_to_global(out_desc, [e * N + pid_n * BN, pid_m * BM], out_buf)
        else:
            tma.async_copy_shared_to_global(out_desc, [e * M + pid_m * BM, pid_n * BN], out_buf)
    tma.store_wait(pendings=0)


@gluon.jit
def wgrad_ws_kernel(
    a_ptr,  # (T, M) gathered operand: x or dY, row stride stride_a
    tok_ptr,  # (S,) int32 row of a_ptr of sorted row s
    counts_ptr,  # (E,) int32
    offsets_ptr,  # (E + 1,) int32
    b_desc,  # gluon TMA descriptor of the sorted operand (S, N): h*w or dGU, block [BK, BN]
    out_desc,  # gluon TMA descriptor of out viewed (E*M, N), block [BM, BN]; (E*N, M), [BN, BM] with OUT_T
    M,
    N,
    stride_a,
    E: gl.constexpr,
    BM: gl.constexpr,
    BN: gl.constexpr,
    BK: gl.constexpr,
    STAGES: gl.constexpr,
    NUM_PROGRAMS: gl.constexpr,
    OUT_T: gl.constexpr,
    num_warps: gl.constexpr,
):
    """Persistent, warp-specialised out[e] = a[tok]^T b over expert e's sorted rows (M % BM == 0 and
    N % BN == 0, so no tile crosses an expert in the flattened output; the caller checks)."""
    dtype: gl.constexpr = a_ptr.dtype.element_ty
    a_layout: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
    a_bufs = gl.allocate_shared_memory(dtype, [STAGES, BK, BM], a_layout)
    b_bufs = gl.allocate_shared_memory(dtype, [STAGES, BK, BN], b_desc.layout)
    out_buf = gl.allocate_shared_memory(dtype, out_desc.block_type.shape, out_desc.layout)
    ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(STAGES):
        mbarrier.init(ready.index(i), count=1 + 32 * PRODUCER_WARPS)
        mbarrier.init(empty.index(i), count=1)
    gl.warp_specialize(
        [
            (_wgrad_consumer, (counts_ptr, offsets_ptr, out_desc, a_bufs, b_bufs, ready, empty, out_buf, M, N,
                               E, BM, BN, BK, STAGES, NUM_PROGRAMS, num_warps, OUT_T)),
            (_wgrad_producer, (a_ptr, tok_ptr, counts_ptr, offsets_ptr, b_desc, a_bufs, b_bufs, ready, empty,
                               M, N, stride_a, E, BM, BN, BK, STAGES, NUM_PROGRAMS)),
        ],
        [PRODUCER_WARPS],
        [WGRAD_PRODUCER_REGS],
    )  # fmt: skip
