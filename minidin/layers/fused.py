"""Fused inference: the whole DIN / BaseModel forward in one kernel, one sample at a time.

Inference has no batch statistics (Dice uses its running averages), so every
sample is independent: this kernel runs the embedding lookups, the local
activation unit (with the split first layer of ``attention_split_forward``),
pooling, the interaction, the main MLP and the optional per-goods bias for one
sample in registers and small scratch rows, in parallel over samples. No
(N, ·) intermediate is ever materialised and there is one kernel call per batch
instead of ~25, which is what one-sample latency is made of.

It computes exactly what the per-layer kernels compute in inference mode
(``DIN.logits(..., training=False)`` with ``fused=False`` is the clear
reference the tests compare against); it has no backward, because training
needs the per-layer caches.

Deviations: none in what is computed; rounding differs from the per-layer path.

Docs: docs/benchmarks.md
"""
import numpy as np
from numba import njit, prange

from .sigmoid import _sigmoid

ACT_DICE, ACT_PRELU, ACT_SIGMOID = 0, 1, 2
POOL_ATTENTION, POOL_SUM, POOL_MEAN = 0, 1, 2
SAMPLES_PER_CHUNK = 16  # samples one parallel task handles with one set of scratch rows
# layout columns: W offset, rows (in), cols (out), b offset, alpha offset (-1: none), stats offset (-1: none)
L_W, L_IN, L_OUT, L_B, L_ALPHA, L_STAT = 0, 1, 2, 3, 4, 5


@njit(cache=True)
def _dense_act(out, x, n_in, flat, row, stats_mean, stats_r, act):
    """out[:O] = act(x[:n_in] W + b) for one row, W and b read from the flat parameter buffer."""
    w0, O, b0, a0, s0 = row[L_W], row[L_OUT], row[L_B], row[L_ALPHA], row[L_STAT]
    # 2-D views with non-negative loop indices: Numba's negative-index wraparound check on
    # computed flat offsets stops LLVM from vectorizing the inner loop (10x slower)
    W = flat[w0:w0 + n_in * O].reshape((n_in, O))
    bias = flat[b0:b0 + O]
    for o in range(O):
        out[o] = bias[o]
    for i in range(n_in):
        xi = x[i]
        for o in range(O):
            out[o] += xi * W[i, o]
    _activate_row(out, O, act, flat, row, stats_mean, stats_r)


@njit(cache=True)
def _activate_row(out, O, act, flat, row, stats_mean, stats_r):
    """out[:O] = act(out[:O]) in inference mode, alpha and Dice statistics located by ``row``."""
    a0, s0 = row[L_ALPHA], row[L_STAT]
    if act == ACT_SIGMOID:
        for o in range(O):
            out[o] = _sigmoid(out[o])
    elif act == ACT_PRELU:
        alpha = flat[a0:a0 + O]
        for o in range(O):
            z = out[o]
            out[o] = z if z > 0 else alpha[o] * z
    else:
        alpha = flat[a0:a0 + O]
        mean = stats_mean[s0:s0 + O]
        r = stats_r[s0:s0 + O]
        for o in range(O):
            z = out[o]
            out[o] = z * (alpha[o] + (1.0 - alpha[o]) * _sigmoid((z - mean[o]) * r[o]))


@njit(cache=True)
def _out_unit(x, n_in, flat, row):
    """The one-unit output layer: x[:n_in] · W + b."""
    s = flat[row[L_B]]
    for i in range(n_in):
        s += x[i] * flat[row[L_W] + i]
    return s


@njit(cache=True)
def _setup(hist_offsets, flat, layout, pool, D, B, dt):
    """Scratch width, longest history, and the split first attention layer: Wq + Wd, Wk − Wd, Wp, b."""
    width = 3 * D
    for r in range(layout.shape[0]):
        if layout[r, L_OUT] > width:
            width = layout[r, L_OUT]
    max_len = 1
    for b in range(B):
        t = hist_offsets[b + 1] - hist_offsets[b]
        if t > max_len:
            max_len = t
    # first attention layer, split (attention_split_forward): Wqd = Wq + Wd, Wkd = Wk − Wd, Wp
    H = layout[0, L_OUT] if pool == POOL_ATTENTION else 1
    Wqd = np.zeros((D, H), dtype=dt)
    Wkd = np.zeros((D, H), dtype=dt)
    Wp = np.zeros((D, H), dtype=dt)
    b1 = np.zeros(H, dtype=dt)
    if pool == POOL_ATTENTION:
        W1 = flat[layout[0, L_W]:layout[0, L_W] + 4 * D * H].reshape((4 * D, H))
        for d in range(D):
            for o in range(H):
                Wqd[d, o] = W1[d, o] + W1[2 * D + d, o]
                Wkd[d, o] = W1[D + d, o] - W1[2 * D + d, o]
                Wp[d, o] = W1[3 * D + d, o]
        for o in range(H):
            b1[o] = flat[layout[0, L_B] + o]
    return width, max_len, H, Wqd, Wkd, Wp, b1


@njit(cache=True, parallel=True)
def din_infer_forward(logits, hist_goods, hist_cates, hist_offsets, cand_goods, cand_cates, goods_table, cate_table,
                      goods_bias, flat, layout, stats_mean, stats_r, n_att, att_act, mlp_act, pool, softmax_scale,
                      probabilities):
    """Inference logits of every sample, the whole model fused.

    logits:       (B,) float, written: logits z, or σ(z) when ``probabilities``
    hist_*, cand_*, hist_offsets: the batch (CSR histories)
    goods_table (Vg, Dg), cate_table (Vc, Dc): embeddings;  goods_bias (Vg, 1) or (0, 1): none
    flat:         every dense parameter, one buffer (``model.dense_flat``)
    layout:       (L, 6) int64, one row per dense layer in order att.0 .. att.out, mlp.0 .. mlp.out:
                  W offset, in, out, b offset, alpha offset (-1), Dice stats offset (-1)
    stats_mean, stats_r: Dice running means and 1/sqrt(running_var + eps), flat (the model's dtype)
    n_att:        attention hidden layers (0 for the BaseModel)
    att_act, mlp_act: ACT_DICE / ACT_PRELU / ACT_SIGMOID
    pool:         POOL_ATTENTION / POOL_SUM / POOL_MEAN
    softmax_scale: > 0: softmax of scale·scores within each history (attention_softmax); 0: raw scores

    Per sample b, with q = [Wg[cand], Wc[cand]] and k_n the behaviours (paper Eq. (3), Fig. 2):
      z1_n = (q·(Wq + Wd) + b) + k_n·(Wk − Wd) + (q⊙k_n)·Wp        (attention_split_forward)
      s_n  = MLP_att(z1_n);  w = s or softmax(scale·s);  u = Σ_n w_n k_n
      logit = MLP([u, q, u⊙q]) (+ goods_bias[cand])
    Docs: docs/benchmarks.md
    """
    B = cand_goods.shape[0]
    Dg = goods_table.shape[1]
    D = Dg + cate_table.shape[1]
    dt = goods_table.dtype
    # Setup in a serial helper: in a parallel=True function even np.zeros becomes a parallel region,
    # a thread-pool round trip that costs more than one sample's whole forward.
    width, max_len, H, Wqd, Wkd, Wp, b1 = _setup(hist_offsets, flat, layout, pool, D, B, dt)
    n_chunks = (B + SAMPLES_PER_CHUNK - 1) // SAMPLES_PER_CHUNK
    args = (logits, hist_goods, hist_cates, hist_offsets, cand_goods, cand_cates, goods_table, cate_table,
            goods_bias, flat, layout, stats_mean, stats_r, n_att, att_act, mlp_act, pool, softmax_scale, Wqd, Wkd,
            Wp, b1, H, width, max_len, probabilities)
    if n_chunks == 1:  # one sample or a few: no thread-pool round trip (latency)
        _infer_chunk(0, *args)
    else:
        for c in prange(n_chunks):
            _infer_chunk(c, *args)


@njit(cache=True)
def _infer_chunk(c, logits, hist_goods, hist_cates, hist_offsets, cand_goods, cand_cates, goods_table, cate_table,
                 goods_bias, flat, layout, stats_mean, stats_r, n_att, att_act, mlp_act, pool, softmax_scale, Wqd, Wkd,
                 Wp, b1, H, width, max_len, probabilities):
    """Samples [c·SAMPLES_PER_CHUNK, (c+1)·SAMPLES_PER_CHUNK) of ``din_infer_forward``, with their own scratch rows."""
    B = cand_goods.shape[0]
    Dg = goods_table.shape[1]
    D = Dg + cate_table.shape[1]
    dt = goods_table.dtype
    q = np.empty(D, dtype=dt)
    k = np.empty(D, dtype=dt)
    qz = np.empty(width, dtype=dt)
    h1 = np.empty(width, dtype=dt)
    h2 = np.empty(width, dtype=dt)
    u = np.empty(D, dtype=dt)
    x = np.empty(3 * D, dtype=dt)
    scores = np.empty(max_len, dtype=dt)
    for b in range(c * SAMPLES_PER_CHUNK, min(B, (c + 1) * SAMPLES_PER_CHUNK)):
        lo, hi = hist_offsets[b], hist_offsets[b + 1]
        g, cc = cand_goods[b], cand_cates[b]
        for d in range(Dg):
            q[d] = goods_table[g, d]
        for d in range(D - Dg):
            q[Dg + d] = cate_table[cc, d]
        for d in range(D):
            u[d] = 0.0
        if pool == POOL_ATTENTION:
            row0 = layout[0]
            # the per-sample term: q·(Wq + Wd) + b
            for o in range(H):
                qz[o] = b1[o]
            for d in range(D):
                qd = q[d]
                for o in range(H):
                    qz[o] += qd * Wqd[d, o]
            for n in range(lo, hi):
                gk, ck = hist_goods[n], hist_cates[n]
                for d in range(Dg):
                    k[d] = goods_table[gk, d]
                for d in range(D - Dg):
                    k[Dg + d] = cate_table[ck, d]
                for o in range(H):
                    h1[o] = qz[o]
                for d in range(D):
                    kd = k[d]
                    qk = q[d] * kd
                    for o in range(H):
                        h1[o] += kd * Wkd[d, o] + qk * Wp[d, o]
                _activate_row(h1, H, att_act, flat, row0, stats_mean, stats_r)
                cur, nxt, n_in = h1, h2, H
                for i in range(1, n_att):
                    _dense_act(nxt, cur, n_in, flat, layout[i], stats_mean, stats_r, att_act)
                    n_in = layout[i, L_OUT]
                    cur, nxt = nxt, cur
                s = _out_unit(cur, n_in, flat, layout[n_att])
                if softmax_scale > 0:
                    scores[n - lo] = s
                else:
                    for d in range(D):
                        u[d] += s * k[d]
            if softmax_scale > 0 and hi > lo:
                m = softmax_scale * scores[0]
                for j in range(1, hi - lo):
                    v = softmax_scale * scores[j]
                    if v > m:
                        m = v
                total = 0.0
                for j in range(hi - lo):
                    e = np.exp(softmax_scale * scores[j] - m)
                    scores[j] = e
                    total += e
                for n in range(lo, hi):
                    w = scores[n - lo] / total
                    gk, ck = hist_goods[n], hist_cates[n]
                    for d in range(Dg):
                        u[d] += w * goods_table[gk, d]
                    for d in range(D - Dg):
                        u[Dg + d] += w * cate_table[ck, d]
        else:
            w = 1.0
            if pool == POOL_MEAN and hi > lo:
                w = 1.0 / (hi - lo)
            for n in range(lo, hi):
                gk, ck = hist_goods[n], hist_cates[n]
                for d in range(Dg):
                    u[d] += w * goods_table[gk, d]
                for d in range(D - Dg):
                    u[Dg + d] += w * cate_table[ck, d]
        for d in range(D):
            x[d] = u[d]
            x[D + d] = q[d]
            x[2 * D + d] = u[d] * q[d]
        n_mlp = layout.shape[0] - (n_att + 1 if pool == POOL_ATTENTION else 0) - 1
        first = n_att + 1 if pool == POOL_ATTENTION else 0
        cur, nxt, n_in = x, h1, 3 * D
        for i in range(n_mlp):
            _dense_act(nxt, cur, n_in, flat, layout[first + i], stats_mean, stats_r, mlp_act)
            n_in = layout[first + i, L_OUT]
            if i == 0:
                cur, nxt = nxt, h2
            else:
                cur, nxt = nxt, cur
        z = _out_unit(cur, n_in, flat, layout[first + n_mlp])
        if goods_bias.shape[0] > 0:
            z += goods_bias[g, 0]
        logits[b] = _sigmoid(z) if probabilities else z
