"""Fused inference: the whole DIN / BaseModel forward in one kernel call per batch.

Inference has no batch statistics (Dice uses its running averages), so samples
are independent. This kernel cuts the batch into fixed chunks of samples and,
in parallel over chunks, runs for each chunk the embedding lookups, the local
activation unit, pooling, the interaction, the main MLP and the optional
per-goods bias, as small GEMMs over the chunk's rows (single-threaded BLAS
inside each parallel task) on scratch that stays in cache. One kernel call
replaces ~25, which is what one-sample latency is made of; the chunk GEMMs are
what inference throughput is made of.

The first attention layer is computed one of two ways, the same function:
both the split of ``attention_split_forward``, ``q·(Wq+Wd) + b`` once per
sample plus ``[k, q⊙k]·[Wk−Wd; Wp]``:
- from ``SPLIT_MIN_ROWS`` behaviours on, the combined weights are built once
  per call and each chunk's rows go through one GEMM;
- below that (a one-sample call), loops read the four row blocks of W
  directly: building the combined weights would cost more than the sample.

It computes exactly what the per-layer kernels compute in inference mode
(``model.logits(batch, fused=False)`` is the clear reference the tests compare
against); it has no backward, because training needs the per-layer caches.

Deviations: none in what is computed; rounding differs from the per-layer path.

Docs: docs/benchmarks.md
"""
import numpy as np
from numba import njit, prange

from .chunks import prange_only
from .attention import split_weights
from .sigmoid import sigmoid_exact, sigmoid_fast

ACT_DICE, ACT_PRELU, ACT_SIGMOID = 0, 1, 2
POOL_ATTENTION, POOL_SUM, POOL_MEAN = 0, 1, 2
SAMPLES_PER_CHUNK = 32  # samples per parallel task (fixed: results never depend on the thread count)
SPLIT_MIN_ROWS = 256  # behaviours in the batch from which the split first layer pays for its set-up
# layout columns: W offset, rows (in), cols (out), b offset, alpha offset (-1: none), state offset (-1: none;
# the Dice running mean at state[off:off+out], the running variance at state[off+out:off+2·out])
L_W, L_IN, L_OUT, L_B, L_ALPHA, L_STAT = 0, 1, 2, 3, 4, 5


@njit(cache=True)
def _weights(flat, layout, r):
    """Layer r's W (in, out) and b (out,) as views of the flat parameter buffer."""
    w0, n_in, n_out, b0 = layout[r, L_W], layout[r, L_IN], layout[r, L_OUT], layout[r, L_B]
    return flat[w0:w0 + n_in * n_out].reshape((n_in, n_out)), flat[b0:b0 + n_out]


@njit(cache=True, error_model="numpy")  # as dice_forward: the Dice gate loop vectorizes
def _activate_rows(z, rows, act, flat, state, layout, r, eps):
    """z[:rows] = act(z[:rows]) in inference mode (Dice with its running mean and variance)."""
    O = layout[r, L_OUT]
    a0, s0 = layout[r, L_ALPHA], layout[r, L_STAT]
    if act == ACT_SIGMOID:
        for m in range(rows):
            for o in range(O):
                z[m, o] = sigmoid_exact(z[m, o])  # not sigmoid_fast: inlined twice in one kernel, it trips a Numba IR check
        return
    alpha = flat[a0:a0 + O]
    if act == ACT_PRELU:
        for m in range(rows):
            for o in range(O):
                v = z[m, o]
                z[m, o] = v if v > 0 else alpha[o] * v
        return
    mean = state[s0:s0 + O]
    inv = np.empty(O, dtype=z.dtype)
    ac = np.empty(O, dtype=z.dtype)  # 1 − α in z's dtype: a float32 model stays in float32 arithmetic
    for o in range(O):
        inv[o] = 1.0 / np.sqrt(state[s0 + O + o] + eps)
        ac[o] = 1.0 - alpha[o]
    for m in range(rows):
        for o in range(O):
            v = z[m, o]
            z[m, o] = v * (alpha[o] + ac[o] * sigmoid_fast((v - mean[o]) * inv[o]))


@njit(cache=True)
def _mlp_rows(x, rows, first, n_hidden, act, flat, state, layout, eps):
    """Hidden layers first .. first+n_hidden−1, then the one-unit output layer, on x[:rows]: (rows,) outputs."""
    for i in range(n_hidden):
        W, b = _weights(flat, layout, first + i)
        z = np.dot(x[:rows], W)
        for m in range(rows):
            for o in range(b.shape[0]):
                z[m, o] += b[o]
        _activate_rows(z, rows, act, flat, state, layout, first + i, eps)
        x = z
    W, b = _weights(flat, layout, first + n_hidden)
    out = np.empty(rows, dtype=x.dtype)
    for m in range(rows):
        s = b[0]
        for i in range(W.shape[0]):
            s += x[m, i] * W[i, 0]
        out[m] = s
    return out


@njit(cache=True)
def _split_first_layer(flat, layout, D, split):
    """Wq + Wd (D, H) and [Wk − Wd; Wp] (2D, H) of the first attention layer (empty unless ``split``)."""
    W1, _ = _weights(flat, layout, 0)
    H = W1.shape[1]
    if not split:
        return np.empty((0, H), dtype=flat.dtype), np.empty((0, H), dtype=flat.dtype)
    return split_weights(W1, D)


@njit(cache=True, parallel=prange_only())
def din_infer_forward(out, hist_goods, hist_cates, hist_offsets, cand_goods, cand_cates, goods_table, cate_table,
                      goods_bias, flat, state, layout, n_att, att_act, mlp_act, pool, softmax_scale, eps,
                      probabilities):
    """Inference logits (or probabilities) of every sample, the whole model fused.

    out:          (B,) float, written: logits z, or σ(z) when ``probabilities``
    hist_*, cand_*, hist_offsets: the batch (CSR histories)
    goods_table (Vg, Dg), cate_table (Vc, Dc): embeddings;  goods_bias (Vg, 1), or (0, 1) for none
    flat:         every dense parameter, one buffer (``model.dense_flat``)
    state:        every Dice running mean and variance, one buffer (``model.state_flat``)
    layout:       (L, 6) int64, one row per dense layer in order att.0 .. att.out, mlp.0 .. mlp.out:
                  W offset, in, out, b offset, alpha offset (-1), state offset (-1)
    n_att:        attention hidden layers (0 for the BaseModel)
    att_act, mlp_act: ACT_DICE / ACT_PRELU / ACT_SIGMOID
    pool:         POOL_ATTENTION / POOL_SUM / POOL_MEAN
    softmax_scale: > 0: softmax of scale·scores within each history (attention_softmax); 0: raw scores
    eps:          Dice's ε

    Per sample b, with q = [Wg[cand], Wc[cand]] and behaviours k_n (paper Eq. (3), Fig. 2):
      z1_n = [q, k_n, q−k_n, q⊙k_n]·W + b = (q·(Wq + Wd) + b) + [k_n, q⊙k_n]·[Wk − Wd; Wp]
      s_n  = MLP_att(z1_n);  w = s, or softmax(scale·s);  u = Σ_n w_n k_n   (BaseModel: w = 1 or 1/T)
      z    = MLP([u, q, u⊙q]) (+ goods_bias[cand]);  out = z or σ(z)
    Docs: docs/benchmarks.md
    """
    B = cand_goods.shape[0]
    D = goods_table.shape[1] + cate_table.shape[1]
    N = hist_goods.shape[0]
    split = pool == POOL_ATTENTION and N >= SPLIT_MIN_ROWS
    Wqd, W2 = _split_first_layer(flat, layout, D, split)
    C = (B + SAMPLES_PER_CHUNK - 1) // SAMPLES_PER_CHUNK
    # the chunk index is passed as int64 at both calls: one compiled signature of _infer_chunk, not three
    if C == 1:  # one sample or a few: no thread-pool round trip (latency)
        _infer_chunk(np.int64(0), out, hist_goods, hist_cates, hist_offsets, cand_goods, cand_cates, goods_table,
                     cate_table, goods_bias, flat, state, layout, n_att, att_act, mlp_act, pool, softmax_scale, eps,
                     probabilities, split, Wqd, W2)
    else:
        for c in prange(C):
            _infer_chunk(np.int64(c), out, hist_goods, hist_cates, hist_offsets, cand_goods, cand_cates, goods_table,
                         cate_table, goods_bias, flat, state, layout, n_att, att_act, mlp_act, pool, softmax_scale,
                         eps, probabilities, split, Wqd, W2)


@njit(cache=True)
def _infer_chunk(c, out, hist_goods, hist_cates, hist_offsets, cand_goods, cand_cates, goods_table, cate_table,
                 goods_bias, flat, state, layout, n_att, att_act, mlp_act, pool, softmax_scale, eps, probabilities,
                 split, Wqd, W2):
    """Samples [c·SAMPLES_PER_CHUNK, (c+1)·SAMPLES_PER_CHUNK) of ``din_infer_forward``."""
    B = cand_goods.shape[0]
    Dg = goods_table.shape[1]
    D = Dg + cate_table.shape[1]
    dt = goods_table.dtype
    b_lo = c * SAMPLES_PER_CHUNK
    b_hi = min(B, b_lo + SAMPLES_PER_CHUNK)
    S = b_hi - b_lo
    r_lo, r_hi = hist_offsets[b_lo], hist_offsets[b_hi]
    R = r_hi - r_lo
    q = np.empty((S, D), dtype=dt)
    for s in range(S):
        for d in range(Dg):
            q[s, d] = goods_table[cand_goods[b_lo + s], d]
        for d in range(D - Dg):
            q[s, Dg + d] = cate_table[cand_cates[b_lo + s], d]
    k = np.empty((R, D), dtype=dt)
    for n in range(R):
        for d in range(Dg):
            k[n, d] = goods_table[hist_goods[r_lo + n], d]
        for d in range(D - Dg):
            k[n, Dg + d] = cate_table[hist_cates[r_lo + n], d]
    w = np.empty(R, dtype=dt)  # pooling weights
    if pool == POOL_ATTENTION and R > 0:
        W1, b1 = _weights(flat, layout, 0)
        if split:
            kx = np.empty((R, 2 * D), dtype=dt)
            for s in range(S):
                for n in range(hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo):
                    for d in range(D):
                        kx[n, d] = k[n, d]
                        kx[n, D + d] = q[s, d] * k[n, d]
            z = np.dot(kx, W2)
            qz = np.dot(q, Wqd)
        else:  # few rows: the same split, read straight from W (rows Wq, Wk, Wd, Wp) without set-up.
            # d outermost: each row of W is read once per chunk (not once per behaviour) and z stays in
            # L1; a one-sample history of 9 takes 9 µs here instead of 17.
            H = W1.shape[1]
            qz = np.zeros((S, H), dtype=dt)
            z = np.zeros((R, H), dtype=dt)
            wqd = np.empty(H, dtype=dt)  # row d of Wq + Wd
            wkd = np.empty(H, dtype=dt)  # row d of Wk − Wd
            for d in range(D):
                for o in range(H):
                    wqd[o] = W1[d, o] + W1[2 * D + d, o]
                    wkd[o] = W1[D + d, o] - W1[2 * D + d, o]
                for s in range(S):
                    qd = q[s, d]
                    for o in range(H):
                        qz[s, o] += qd * wqd[o]
                    for n in range(hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo):
                        kd = k[n, d]
                        qk = qd * kd
                        for o in range(H):
                            z[n, o] += kd * wkd[o] + qk * W1[3 * D + d, o]
        for s in range(S):
            for n in range(hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo):
                for o in range(W1.shape[1]):
                    z[n, o] += qz[s, o] + b1[o]
        _activate_rows(z, R, att_act, flat, state, layout, 0, eps)
        scores = _mlp_rows(z, R, 1, n_att - 1, att_act, flat, state, layout, eps)
        for n in range(R):  # element loop: an array assignment would add a shape-error path to compile
            w[n] = scores[n]
        if softmax_scale > 0:
            for s in range(S):
                lo, hi = hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo
                if hi == lo:
                    continue
                m = softmax_scale * w[lo]
                for n in range(lo + 1, hi):
                    m = max(m, softmax_scale * w[n])
                total = 0.0
                for n in range(lo, hi):
                    w[n] = np.exp(softmax_scale * w[n] - m)
                    total += w[n]
                for n in range(lo, hi):
                    w[n] = w[n] / total
    elif pool != POOL_ATTENTION:
        for s in range(S):
            lo, hi = hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo
            for n in range(lo, hi):
                w[n] = 1.0 if pool == POOL_SUM else 1.0 / (hi - lo)
    x = np.zeros((S, 3 * D), dtype=dt)  # [u, q, u⊙q]
    for s in range(S):
        for n in range(hist_offsets[b_lo + s] - r_lo, hist_offsets[b_lo + s + 1] - r_lo):
            for d in range(D):
                x[s, d] += w[n] * k[n, d]
        for d in range(D):
            x[s, D + d] = q[s, d]
            x[s, 2 * D + d] = x[s, d] * q[s, d]
    first = n_att + 1 if pool == POOL_ATTENTION else 0
    z_out = _mlp_rows(x, S, first, layout.shape[0] - first - 1, mlp_act, flat, state, layout, eps)
    for s in range(S):
        v = z_out[s]
        if goods_bias.shape[0] > 0:
            v += goods_bias[cand_goods[b_lo + s], 0]
        out[b_lo + s] = sigmoid_exact(v) if probabilities else v
