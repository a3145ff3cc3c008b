"""Fused inference: the whole DIN / BaseModel forward in one kernel call per batch.

Inference has no batch statistics (Dice uses its running averages), so samples
are independent. This kernel cuts the batch into fixed chunks of samples and,
in parallel over chunks, runs for each chunk the embedding lookups, the local
activation unit, pooling, the interaction, the main MLP and the optional
per-goods bias, as small GEMMs over the chunk's rows (single-threaded BLAS
inside each parallel task) on scratch that stays in cache. One kernel call
replaces ~25, which is what one-sample latency is made of; the chunk GEMMs are
what inference throughput is made of.

The first attention layer is computed one of two ways, the same function,
both starting from the split of ``attention_split_forward``, ``q·(Wq+Wd) + b``
once per sample plus ``[k, q⊙k]·[Wk−Wd; Wp]`` per behaviour:
- from ``SPLIT_MIN_ROWS`` behaviours on, the combined weights are built once
  per call and each chunk's rows go through one GEMM;
- below that (a one-sample call), q is folded into the weights instead,
  ``k·((Wk − Wd) + diag(q)·Wp)``, half the split's work per behaviour and no
  set-up (``_folded_first_layer``): the same function, rounded differently.

It computes exactly what the per-layer kernels compute in inference mode
(``model.logits(batch, fused=False)`` is the clear reference the tests compare
against); it has no backward, because training needs the per-layer caches.

Deviations: none in what is computed; rounding differs from the per-layer path.

Docs: docs/benchmarks.md
"""
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .alloc import empty
from .attention import softmax_segment, split_weights
from .chunks import prange_only
from .dice import dice_column, dice_out, dice_xhat
from .prefetch import PREFETCH_AHEAD, prefetch_table_row
from .prelu import prelu
from .sigmoid import sigmoid_exact, sigmoid_fast

ACT_DICE, ACT_PRELU, ACT_SIGMOID = 0, 1, 2
POOL_ATTENTION, POOL_SUM, POOL_MEAN = 0, 1, 2
SAMPLES_PER_CHUNK = 32  # samples per parallel task below LARGE_BATCH
SAMPLES_PER_CHUNK_LARGE = 64  # from LARGE_BATCH samples on: larger GEMMs, fewer chunks to set up (about 1.1x
# the samples/s of 32-sample chunks at batch 1024 on 2 threads; 128 is no faster, and from 160 a chunk's
# intermediates outgrow L2)
LARGE_BATCH = 512  # a batch of 512 still has 8 chunks, enough for 8 threads
SPLIT_MIN_ROWS = 256  # behaviours in the batch from which the split first layer pays for its set-up
FOLD = 8  # rows of a sample's folded first-layer weights built at a time (_folded_first_layer), which its
# loop is written for (one sample's first layer at a history of 9: 3.7 µs; 4 rows at a time 4.5 µs)
ALIGN = 16  # elements: every array carved from the scratch starts on a 64-byte boundary (as a fresh
# allocation would), so SIMD loads and BLAS stay aligned
# layout columns: W offset, rows (in), cols (out), b offset, alpha offset (-1: none), state offset (-1: none;
# the Dice running mean at state[off:off+out], the running variance at state[off+out:off+2·out])
L_W, L_IN, L_OUT, L_B, L_ALPHA, L_STAT = 0, 1, 2, 3, 4, 5


class FusedArch(NamedTuple):
    """The architecture as the fused kernel reads it; the model builds it once from ``Params``' layout."""

    layout: np.ndarray  # (L, 6) int64: one row per dense layer, att.0 .. att.out then mlp.0 .. mlp.out
    n_att: int  # attention hidden layers (0: BaseModel)
    att_act: int  # ACT_DICE / ACT_PRELU / ACT_SIGMOID
    mlp_act: int
    pool: int  # POOL_ATTENTION / POOL_SUM / POOL_MEAN
    softmax: bool  # softmax of softmax_scale · scores within each history (attention_softmax)
    softmax_scale: float  # 1/sqrt(D)
    eps: float  # Dice's ε
    n_user: int  # columns of FusedBatch.extra that go before [u, q, u⊙q] in the MLP input (user fields)


class FusedParams(NamedTuple):
    """Every parameter the fused kernel reads."""

    goods_table: np.ndarray  # (Vg, Dg)
    cate_table: np.ndarray  # (Vc, Dc)
    goods_bias: np.ndarray  # (Vg, 1), or (0, 1) without the per-goods bias
    flat: np.ndarray  # every dense parameter, one buffer (Params.dense)
    state: np.ndarray  # every Dice running mean and variance, one buffer (model.state_flat)


class FusedBatch(NamedTuple):
    """A batch's arrays (``minidin.Batch``): CSR histories and the candidates."""

    hist_goods: np.ndarray  # (N,) int64
    hist_cates: np.ndarray  # (N,) int64
    hist_offsets: np.ndarray  # (B+1,) int64
    cand_goods: np.ndarray  # (B,) int64
    cand_cates: np.ndarray  # (B,) int64
    extra: np.ndarray  # (B, E) float: the user fields' then the context fields' pooled embeddings, or (0, 0)


@njit(cache=True, inline="always")
def _weights(flat, layout, r):
    """Layer r's W (in, out) and b (out,) as views of the flat parameter buffer."""
    w0, n_in, n_out, b0 = layout[r, L_W], layout[r, L_IN], layout[r, L_OUT], layout[r, L_B]
    return flat[w0:w0 + n_in * n_out].reshape((n_in, n_out)), flat[b0:b0 + n_out]


@njit(cache=True)
def _dice_coefficients(dice, params, arch):
    """Every Dice layer's ``dice_column`` coefficients from its running averages, once per call."""
    layout = arch.layout
    inv_std = empty(params.state.shape[0], params.flat.dtype)
    for r in range(layout.shape[0]):
        s0, a0, O = layout[r, L_STAT], layout[r, L_ALPHA], layout[r, L_OUT]
        if s0 < 0:
            continue
        for o in range(O):
            dice_column(dice[0], dice[1], dice[2], dice[3], inv_std, s0 + o, params.state[s0 + o],
                        params.state[s0 + O + o], False, params.flat[a0 + o], arch.eps)


@njit(cache=True, error_model="numpy")  # as dice_forward: the Dice element loop vectorizes
def _activate_rows(z, rows, act, params, arch, dice, r):
    """z[:rows] = act(z[:rows]) in inference mode (Dice with its running mean and variance)."""
    layout = arch.layout
    O = layout[r, L_OUT]
    a0, s0 = layout[r, L_ALPHA], layout[r, L_STAT]
    if act == ACT_SIGMOID:
        for m in range(rows):
            for o in range(O):
                z[m, o] = sigmoid_exact(z[m, o])  # not sigmoid_fast: inlined twice in one kernel, it trips a Numba IR check
        return
    alpha = params.flat[a0:a0 + O]
    if act == ACT_PRELU:
        for m in range(rows):
            for o in range(O):
                z[m, o] = prelu(z[m, o], alpha[o])
        return
    mean_hi, mean_lo, rr, ac = dice[0, s0:s0 + O], dice[1, s0:s0 + O], dice[2, s0:s0 + O], dice[3, s0:s0 + O]
    for m in range(rows):
        for o in range(O):
            v = z[m, o]
            z[m, o] = dice_out(v, sigmoid_fast(dice_xhat(v, mean_hi[o], mean_lo[o], rr[o])), alpha[o], ac[o])


@njit(cache=True)
def _dense_rows(out, x, rows, params, arch, r):
    """out[:rows] = x[:rows] · W + b of layer r. np.dot with an ``out`` array allocates nothing and calls
    single-threaded BLAS: gemv for one row (a one-sample call; 10x faster there than gemm), gemm otherwise."""
    W, b = _weights(params.flat, arch.layout, r)
    P = W.shape[1]
    np.dot(x[:rows], W, out[:rows])
    for m in range(rows):
        for o in range(P):
            out[m, o] += b[o]


@njit(cache=True)
def _mlp_rows(x, rows, first, n_hidden, act, params, arch, dice, buf_a, buf_b, out):
    """Hidden layers first .. first+n_hidden−1, then the one-unit output layer, on x[:rows]; writes out[:rows].
    Layer outputs alternate between buf_a and buf_b."""
    layout = arch.layout
    for i in range(n_hidden):
        O = layout[first + i, L_OUT]
        buf = buf_a if i % 2 == 0 else buf_b
        z = buf[:rows * O].reshape((rows, O))
        _dense_rows(z, x, rows, params, arch, first + i)
        _activate_rows(z, rows, act, params, arch, dice, first + i)
        x = z
    W, b = _weights(params.flat, layout, first + n_hidden)
    # four partial sums: one running sum is a chain of dependent adds (an add's latency each), and the
    # attention unit's output layer runs once per behaviour (3% of inference at batch 1024)
    I = W.shape[0]
    I4 = I - I % 4
    zero = x.dtype.type(0.0)
    for m in range(rows):
        s0, s1, s2, s3 = zero, zero, zero, zero
        for i in range(0, I4, 4):
            s0 += x[m, i] * W[i, 0]
            s1 += x[m, i + 1] * W[i + 1, 0]
            s2 += x[m, i + 2] * W[i + 2, 0]
            s3 += x[m, i + 3] * W[i + 3, 0]
        s = b[0] + ((s0 + s1) + (s2 + s3))
        for i in range(I4, I):
            s += x[m, i] * W[i, 0]
        out[m] = s


@njit(cache=True, inline="always")
def _widest(layout, lo, hi):
    w = 1
    for r in range(lo, hi):
        w = max(w, layout[r, L_OUT])
    return w


@njit(cache=True, inline="always")
def samples_per_chunk(B):
    """Samples per chunk in a batch of B. It depends on B alone, never on the thread count, so neither do
    the results (a chunk's GEMMs round each row the same way whichever thread runs it)."""
    return SAMPLES_PER_CHUNK_LARGE if B >= LARGE_BATCH else SAMPLES_PER_CHUNK


@njit(cache=True)
def _plan(batch, D, arch):
    """(split, S, C, A, H, R, slot): the split first layer or not, samples per chunk, chunks, widest
    attention and MLP hidden layers, most behaviours in one chunk, and the elements of one thread's slot of
    the scratch."""
    layout = arch.layout
    B, N = batch.cand_goods.shape[0], batch.hist_goods.shape[0]
    attend = arch.pool == POOL_ATTENTION
    split = attend and N >= SPLIT_MIN_ROWS
    S = samples_per_chunk(B)
    C = (B + S - 1) // S
    A = _widest(layout, 0, arch.n_att) if attend else 1
    H = _widest(layout, arch.n_att + 1 if attend else 0, layout.shape[0] - 1)
    R = 0
    for c in range(C):
        R = max(R, batch.hist_offsets[min(B, (c + 1) * S)] - batch.hist_offsets[c * S])
    slot = ALIGN  # room to align the slot's own start
    for n in _slot_sizes(S, R, D, A, H, split, batch.extra.shape[1]):
        slot += _round_up(n)
    return split, S, C, A, H, R, slot


@njit(cache=True, inline="always")
def _round_up(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


@njit(cache=True, inline="always")
def _slot_sizes(S, R, D, A, H, split, E):
    """Elements of each array carved from a slot, in carving order, for S samples with R behaviours:
    q (S, D), k (R, D), w (R,), kx (R, 2D) on the split path, qz (S, A), att_a and att_b (R, A),
    x (S, E + 3D), mlp_a and mlp_b (S, H), logits (S,), wrow (FOLD·A). ``_plan`` sizes a slot for the largest
    chunk; ``_infer_chunk`` carves its own chunk in the same order."""
    return (S * D, R * D, R, R * 2 * D if split else 0, S * A, R * A, R * A, S * (E + 3 * D), S * H, S * H, S,
            FOLD * A)


@njit(cache=True)
def _interaction_rows(x, w, k, q, S, D, hist_offsets, b_lo, r_lo):
    """x[s] = [u_s, q_s, u_s ⊙ q_s] with u_s = Σ_n w_n k_n over sample s's behaviours (x: (S, 3D))."""
    for s in range(S):
        for d in range(D):
            x[s, d] = 0.0
        for n in range(hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo):
            for d in range(D):
                x[s, d] += w[n] * k[n, d]
        for d in range(D):
            x[s, D + d] = q[s, d]
            x[s, 2 * D + d] = x[s, d] * q[s, d]


@njit(cache=True)
def _folded_first_layer(z, qz, wf, W1, q, k, S, hist_offsets, b_lo, r_lo):
    """The first attention layer without its bias for a chunk's few behaviours, q folded into the weights:
    z_n = k_n·W'_s and qz_s = q_s·(Wq + Wd) for each behaviour n of sample s, where
    W'_s = (Wk − Wd) + diag(q_s)·Wp, since [k, q⊙k]·[Wk − Wd; Wp] = k·(Wk − Wd) + Σ_d k_d q_d Wp[d].
    Per behaviour that is D·A multiply-adds instead of the split's 2D·A; W'_s costs D·A once per sample, which
    pays for a one-sample call (the first layer of a history of 9: 3.7 µs, the split loops 9.6 µs) but not in
    a batch, where reading W once per sample evicts the chunk from cache (0.75× the split GEMM at batch 1024).

    z:  (R, A) written, the chunk's rows; qz: (S, A) written; wf: (FOLD, A) scratch, FOLD rows of W'_s;
    W1: (4D, A) the layer's weights, row blocks Wq, Wk, Wd, Wp; q: (S, D); k: (R, D).
    W'_s is built FOLD rows at a time, and each z row takes those FOLD rows in one pass: an eighth of the
    loads and stores of z that one row at a time would need.
    """
    D, A = q.shape[1], W1.shape[1]
    for s in range(S):
        lo, hi = hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo
        if hi == lo:  # no behaviour reads qz_s
            continue
        for o in range(A):
            qz[s, o] = 0.0
        for n in range(lo, hi):
            for o in range(A):
                z[n, o] = 0.0
        for d0 in range(0, D, FOLD):
            m = min(FOLD, D - d0)
            for j in range(m):
                d = d0 + j
                qd = q[s, d]
                for o in range(A):
                    qz[s, o] += qd * (W1[d, o] + W1[2 * D + d, o])
                    wf[j, o] = (W1[D + d, o] - W1[2 * D + d, o]) + qd * W1[3 * D + d, o]
            if m == FOLD:
                for n in range(lo, hi):
                    k0, k1, k2, k3 = k[n, d0], k[n, d0 + 1], k[n, d0 + 2], k[n, d0 + 3]
                    k4, k5, k6, k7 = k[n, d0 + 4], k[n, d0 + 5], k[n, d0 + 6], k[n, d0 + 7]
                    for o in range(A):
                        z[n, o] += (((k0 * wf[0, o] + k1 * wf[1, o]) + (k2 * wf[2, o] + k3 * wf[3, o]))
                                    + ((k4 * wf[4, o] + k5 * wf[5, o]) + (k6 * wf[6, o] + k7 * wf[7, o])))
            else:  # the last D % FOLD rows
                for j in range(m):
                    for n in range(lo, hi):
                        kd = k[n, d0 + j]
                        for o in range(A):
                            z[n, o] += kd * wf[j, o]


# _carve, _interaction_rows, _plan and _dice_coefficients are plain calls, which LLVM inlines where it pays:
# Numba's own inline="always" types each call site's copy again, and _carve's 12 call sites alone cost about
# 8 s of the first predict's compile; the one-sample latency and batch throughput measured the same.
@njit(cache=True)
def _carve(scratch, pos, n):
    return scratch[pos:pos + n], pos + _round_up(n)


@njit(cache=True, parallel=prange_only())
def din_infer_forward(out, batch, params, arch, probabilities, scratch, threads):
    """Inference logits (or probabilities) of every sample, the whole model fused; returns 0, or, when
    ``scratch`` is too small, the number of elements it needs (and computes nothing).

    out:           (B,) float, written: logits z, or σ(z) when ``probabilities``
    batch:         FusedBatch (or a plain tuple of its fields), the CSR histories and candidates
    params:        FusedParams (or its fields), embeddings, per-goods bias, the flat buffer, Dice's averages
    arch:          FusedArch (or its fields), the layer layout, activations, pooling and softmax option
    scratch:       (≥ threads × slot,) float: the intermediates, one slot per group of chunks; the caller
                   keeps it across calls (fresh megabytes every call would cost a page fault per 4 KB)
    threads:       Numba's thread count: the chunks are cut into that many contiguous groups, one parallel
                   task each, and a group runs its chunks one after the other in its own slot, which so
                   stays in cache (a region per chunk of one large buffer would come from memory every time)

    Per sample b, with q = [Wg[cand], Wc[cand]] and behaviours k_n (paper Eq. (3), Fig. 2):
      z1_n = [q, k_n, q−k_n, q⊙k_n]·W + b = (q·(Wq + Wd) + b) + [k_n, q⊙k_n]·[Wk − Wd; Wp]
      s_n  = MLP_att(z1_n);  w = s, or softmax(scale·s);  u = Σ_n w_n k_n   (BaseModel: w = 1 or 1/T)
      z    = MLP([e_user, u, q, u⊙q, e_context]) (+ goods_bias[cand]);  out = z or σ(z)
    A model with schema fields passes its item embeddings as ``goods_table`` (one row per behaviour and
    candidate, the ids 0 .. N+B−1, a zero-width ``cate_table``) and e_user, e_context in ``batch.extra``.
    Nothing is allocated inside the parallel loop (with user or context fields, one (S, 3D) array per chunk).
    The grouping never changes a result: a chunk
    overwrites everything it reads, and chunks are fixed by the batch alone.
    Docs: docs/benchmarks.md
    """
    # Python passes plain tuples (Numba types a plain tuple of arrays in its C fast path, under 1 µs a call,
    # but a named tuple through Python, about 3 µs more: an eighth of a one-sample prediction); the names
    # come back here, and named tuples pass through unchanged
    batch, params, arch = FusedBatch(*batch), FusedParams(*params), FusedArch(*arch)
    D = params.goods_table.shape[1] + params.cate_table.shape[1]
    dt = params.flat.dtype
    split, S, C, A, H, R, slot = _plan(batch, D, arch)
    G = max(1, min(threads, C))  # groups of chunks
    if scratch.shape[0] < G * slot:
        return G * slot
    W1, _ = _weights(params.flat, arch.layout, 0)
    if split:
        Wqd, W2 = split_weights(W1, D)
    else:
        Wqd, W2 = empty((0, W1.shape[1]), dt), empty((0, W1.shape[1]), dt)
    dice = empty((4, params.state.shape[0]), dt)  # Dice's mean_hi, mean_lo, r, 1 − α per running average
    _dice_coefficients(dice, params, arch)
    # c and g are passed as int64 at both calls: one compiled signature of _infer_chunk, not two
    if G == 1:  # one sample or a few: no thread-pool round trip (latency)
        for c in range(C):
            _infer_chunk(np.int64(c), np.int64(0), S, out, batch, params, arch, probabilities, split, Wqd, W2, dice,
                         scratch, slot, A, H)
    else:  # group g runs chunks [g·C/G, (g+1)·C/G) one after the other in slot g
        for g in prange(G):
            for c in range(g * C // G, (g + 1) * C // G):
                _infer_chunk(np.int64(c), np.int64(g), S, out, batch, params, arch, probabilities, split, Wqd, W2,
                             dice, scratch, slot, A, H)
    return 0


@njit(cache=True)
def _infer_chunk(c, g, per_chunk, out, batch, params, arch, probabilities, split, Wqd, W2, dice, scratch, slot, A,
                 H):
    """Samples [c·per_chunk, (c+1)·per_chunk) of ``din_infer_forward`` (``samples_per_chunk``), in slot g."""
    hist_offsets, cand_goods = batch.hist_offsets, batch.cand_goods
    goods_table, cate_table = params.goods_table, params.cate_table
    B = cand_goods.shape[0]
    Dg = goods_table.shape[1]
    D = Dg + cate_table.shape[1]
    b_lo = c * per_chunk
    b_hi = min(B, b_lo + per_chunk)
    S = b_hi - b_lo  # this chunk's samples (the last chunk may have fewer)
    r_lo, r_hi = hist_offsets[b_lo], hist_offsets[b_hi]
    R = r_hi - r_lo
    # this chunk's intermediates, carved from slot g (row 0 = the chunk's first row; each 64-byte aligned)
    base = scratch[g * slot:(g + 1) * slot]
    pos = (-(base.ctypes.data // base.itemsize)) % ALIGN
    E = batch.extra.shape[1]
    n = _slot_sizes(S, R, D, A, H, split, E)
    q, pos = _carve(base, pos, n[0])  # (S, D) candidate embeddings
    k, pos = _carve(base, pos, n[1])  # (R, D) behaviour embeddings
    w, pos = _carve(base, pos, n[2])  # (R,) pooling weights
    kx, pos = _carve(base, pos, n[3])  # (R, 2D) [k, q⊙k], split path only
    qz, pos = _carve(base, pos, n[4])  # the per-sample term q·(Wq+Wd) of the first attention layer
    att_a, pos = _carve(base, pos, n[5])  # ping-pong activations of the attention MLP (A: its widest layer)
    att_b, pos = _carve(base, pos, n[6])
    x, pos = _carve(base, pos, n[7])  # (S, E + 3D) [user fields, u, q, u⊙q, context fields]
    mlp_a, pos = _carve(base, pos, n[8])  # ping-pong activations of the main MLP (H: its widest layer)
    mlp_b, pos = _carve(base, pos, n[9])
    logits, pos = _carve(base, pos, n[10])
    wrow, pos = _carve(base, pos, n[11])  # FOLD rows of a sample's folded weights (the small-history path)
    q, k = q.reshape((S, D)), k.reshape((R, D))
    for s in range(S):
        for d in range(Dg):
            q[s, d] = goods_table[cand_goods[b_lo + s], d]
        for d in range(D - Dg):
            q[s, Dg + d] = cate_table[batch.cand_cates[b_lo + s], d]
    for n in range(R):
        if n + PREFETCH_AHEAD < R:  # the goods table is larger than L2: ask for a row before it is copied
            prefetch_table_row(goods_table, batch.hist_goods[r_lo + n + PREFETCH_AHEAD])
        for d in range(Dg):
            k[n, d] = goods_table[batch.hist_goods[r_lo + n], d]
        for d in range(D - Dg):
            k[n, Dg + d] = cate_table[batch.hist_cates[r_lo + n], d]
    if arch.pool == POOL_ATTENTION and R > 0:
        W1, b1 = _weights(params.flat, arch.layout, 0)
        A1 = W1.shape[1]
        z = att_a[:R * A1].reshape((R, A1))
        qz = qz[:S * A1].reshape((S, A1))
        if split:
            kx = kx.reshape((R, 2 * D))
            for s in range(S):
                for n in range(hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo):
                    for d in range(D):
                        kx[n, d] = k[n, d]
                        kx[n, D + d] = q[s, d] * k[n, d]
            np.dot(kx, W2, z)  # one BLAS call each on this chunk's rows, into the slot (no allocation)
            np.dot(q, Wqd, qz)
        else:  # few rows (a one-sample call): q folded into the weights, no set-up
            _folded_first_layer(z, qz, wrow[:FOLD * A1].reshape((FOLD, A1)), W1, q, k, S, hist_offsets, b_lo, r_lo)
        for s in range(S):
            for n in range(hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo):
                for o in range(A1):
                    z[n, o] += qz[s, o] + b1[o]
        _activate_rows(z, R, arch.att_act, params, arch, dice, 0)
        # the layers after the first write to att_b, att_a, ... (the first layer's z lives in att_a)
        _mlp_rows(z, R, 1, arch.n_att - 1, arch.att_act, params, arch, dice, att_b, att_a, w)
        if arch.softmax:
            for s in range(S):
                softmax_segment(w, w, hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo,
                                arch.softmax_scale)
    elif arch.pool != POOL_ATTENTION:
        for s in range(S):
            lo, hi = hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo
            for n in range(lo, hi):
                w[n] = 1.0 if arch.pool == POOL_SUM else 1.0 / (hi - lo)
    x = x.reshape((S, E + 3 * D))
    if E == 0:  # no user or context field: [u, q, u⊙q] (this loop, free of the offsets below, vectorizes best)
        _interaction_rows(x, w, k, q, S, D, hist_offsets, b_lo, r_lo)
    else:  # [user fields, u, q, u⊙q, context fields]
        U = arch.n_user
        xi = empty((S, 3 * D), x.dtype)
        _interaction_rows(xi, w, k, q, S, D, hist_offsets, b_lo, r_lo)
        for s in range(S):
            for e in range(U):
                x[s, e] = batch.extra[b_lo + s, e]
            for d in range(3 * D):
                x[s, U + d] = xi[s, d]
            for e in range(U, E):
                x[s, 3 * D + e] = batch.extra[b_lo + s, e]
    first = arch.n_att + 1 if arch.pool == POOL_ATTENTION else 0
    _mlp_rows(x, S, first, arch.layout.shape[0] - first - 1, arch.mlp_act, params, arch, dice, mlp_a, mlp_b,
              logits)
    for s in range(S):
        v = logits[s]
        if params.goods_bias.shape[0] > 0:
            v += params.goods_bias[cand_goods[b_lo + s], 0]
        out[b_lo + s] = sigmoid_exact(v) if probabilities else v
