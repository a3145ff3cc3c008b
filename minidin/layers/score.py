"""Many candidates per history (ranking): the inference forward with everything shared computed once.

Scoring K candidates for one history with ``predict`` repeats the history K
times. Most of the work does not depend on both:

- the behaviour embeddings k_n, and k·(Wk − Wd) of DIN's split first attention
  layer: once per **history**;
- q·(Wq + Wd) + b of that layer, and the candidate's share q·W_q of the main MLP's
  first layer: once per **distinct candidate item** of the call (an item that
  is a candidate of many histories, as in full ranking, pays once);
- the user and context fields' share of the main MLP's first layer: once per
  history.

What is left per (history, candidate) pair is what truly depends on both: the
bilinear part (q ⊙ k_n)·Wp of the first attention layer, the rest of the
attention MLP, pooling, and (u, u ⊙ q) through the main MLP's first layer; the
layers after it. Every split is exact: the first layers are linear, so
``[q, k, q−k, q⊙k]·W = q·(Wq+Wd) + k·(Wk−Wd) + (q⊙k)·Wp`` and
``[e_user, u, q, u⊙q, e_ctx]·W = e_user·W_user + u·W_u + q·W_q + (u⊙q)·W_uq +
e_ctx·W_ctx``. The BaseModel's pooled interest does not depend on the candidate
and is computed once per history.

It computes what ``predict`` computes on the expanded pairs
(``Candidates.expand``), in inference mode (Dice with its running averages);
rounding differs. Docs: docs/ranking.md
"""
import numpy as np
from numba import njit, prange

from .alloc import empty, zeros
from .attention import softmax_segment
from .chunks import prange_only
from .fused import (L_OUT, POOL_ATTENTION, POOL_SUM, FusedArch, FusedParams, _activate_rows, _dice_coefficients,
                    _mlp_rows)
from .sigmoid import sigmoid_exact

CANDIDATES_PER_STEP = 64  # a history's candidates are scored this many at a time: (64·T, A) rows per GEMM


@njit(cache=True, parallel=prange_only())
def din_score_forward(out, hist_emb, hist_offsets, cand_index, cand_offsets, Q, QA, QM, HM, cand_bias, Wkd, Wp,
                      Wu, Wuq, params, arch, probabilities, threads):
    """Logits (or probabilities) of every (history, candidate) pair.

    out:          (K,) float, written: candidate j of history b at cand_offsets[b] + j
    hist_emb:     (N, D) float, every behaviour's embedding; hist_offsets (B+1,) int64, CSR
    cand_index:   (K,) int64, the distinct-item row (of Q, QA, QM) of each candidate; cand_offsets (B+1,) int64
    Q:            (Uq, D) float, the distinct candidate items' embeddings
    QA:           (Uq, A₁) float, q·(Wq + Wd) + b of the first attention layer (DIN; (0, 0) otherwise)
    QM:           (Uq, H₁) float, q·W_q, the candidate's rows of the main MLP's first layer
    HM:           (B, H₁) float, e_user·W_user + e_ctx·W_ctx + b of that layer, per history
    cand_bias:    (K,) float, the per-goods logit bias of each candidate (zeros without it)
    Wkd, Wp:      (D, A₁) float, Wk − Wd and Wp of the first attention layer (DIN)
    Wu, Wuq:      (D, H₁) float, the u and u⊙q rows of the main MLP's first layer
    params, arch: FusedParams and FusedArch (or plain tuples of their fields) for the layers after the first
                  ones and for Dice's running averages
    threads:      Numba's thread count: the histories are cut into that many contiguous groups, one parallel
                  task each, with its intermediates allocated once per task

    Per history b with behaviours k (T, D), for each candidate q:
      z1 = QA[q] + k·Wkd + (q⊙k)·Wp;  s = MLP_att(z1) from layer 1 on;  w = s or softmax(scale·s)
      u  = Σ_n w_n k_n (BaseModel: Σ_n k_n or their mean, once per history)
      h1 = act(HM[b] + QM[q] + u·Wu + (u⊙q)·Wuq);  z = MLP(h1) from layer 2 on + bias;  out = z or σ(z)
    Parallel over groups of histories; a history writes only its own candidates' outputs, so the result never
    depends on the thread count. Docs: docs/ranking.md
    """
    params, arch = FusedParams(*params), FusedArch(*arch)
    layout = arch.layout
    B = hist_offsets.shape[0] - 1
    D = hist_emb.shape[1]
    dt = hist_emb.dtype
    dice = empty((4, params.state.shape[0]), dt)
    _dice_coefficients(dice, params, arch)
    attend = arch.pool == POOL_ATTENTION
    m0 = arch.n_att + 1 if attend else 0  # the main MLP's first layer
    n_mlp = layout.shape[0] - m0 - 1  # its hidden layers
    H1 = layout[m0, L_OUT]
    A = 1
    for r in range(arch.n_att):
        A = max(A, layout[r, L_OUT])
    H = 1
    for r in range(m0, layout.shape[0] - 1):
        H = max(H, layout[r, L_OUT])
    C = CANDIDATES_PER_STEP
    A1 = Wp.shape[1] if attend else 1
    Tmax = 0
    for b in range(B):
        Tmax = max(Tmax, hist_offsets[b + 1] - hist_offsets[b])
    G = max(1, min(threads, B))  # groups of histories, one parallel task each, with its scratch allocated once
    for g in prange(G):
        u = zeros((C, D), dt)
        x = empty((C, D), dt)
        h1 = empty((C, H1), dt)
        tmp = empty((C, H1), dt)
        buf_a = empty(C * H, dt)
        buf_b = empty(C * H, dt)
        logits = empty(C, dt)
        kz_all = empty((Tmax, A1), dt)
        X_all = empty((C * Tmax, D), dt)
        Z_all = empty((C * Tmax, A1), dt)
        att_b = empty(C * Tmax * A, dt)
        att_c = empty(C * Tmax * A, dt)
        w = empty(C * Tmax, dt)
        for b in range(g * B // G, (g + 1) * B // G):
            lo, hi = hist_offsets[b], hist_offsets[b + 1]
            T = hi - lo
            k = hist_emb[lo:hi]
            c_lo, c_hi = cand_offsets[b], cand_offsets[b + 1]
            if c_hi == c_lo:
                continue
            if attend and T > 0:
                kz = kz_all[:T]
                np.dot(k, Wkd, kz)
            for s0 in range(c_lo, c_hi, C):
                m = min(C, c_hi - s0)
                if attend and T > 0:
                    X = X_all[:m * T]
                    Z = Z_all[:m * T]
                    for j in range(m):
                        q = Q[cand_index[s0 + j]]
                        for n in range(T):
                            for d in range(D):
                                X[j * T + n, d] = q[d] * k[n, d]
                    np.dot(X, Wp, Z)
                    for j in range(m):
                        qa = QA[cand_index[s0 + j]]
                        for n in range(T):
                            for o in range(A1):
                                Z[j * T + n, o] += kz[n, o] + qa[o]
                    _activate_rows(Z, m * T, arch.att_act, params, arch, dice, 0)
                    _mlp_rows(Z, m * T, 1, arch.n_att - 1, arch.att_act, params, arch, dice, att_b, att_c, w)
                    if arch.softmax:
                        for j in range(m):
                            softmax_segment(w, w, j * T, (j + 1) * T, arch.softmax_scale)
                    for j in range(m):
                        for d in range(D):
                            acc = 0.0
                            for n in range(T):
                                acc += w[j * T + n] * k[n, d]
                            u[j, d] = acc
                elif attend:  # an empty history pools to zero
                    for j in range(m):
                        for d in range(D):
                            u[j, d] = 0.0
                elif s0 == c_lo:  # the BaseModel: one pooled interest per history
                    scale = 1.0 if arch.pool == POOL_SUM or T == 0 else 1.0 / T
                    for d in range(D):
                        acc = 0.0
                        for n in range(T):
                            acc += k[n, d]
                        u[0, d] = acc * scale
                    for j in range(1, C):
                        for d in range(D):
                            u[j, d] = u[0, d]
                for j in range(m):
                    q = Q[cand_index[s0 + j]]
                    for d in range(D):
                        x[j, d] = u[j, d] * q[d]
                np.dot(u[:m], Wu, h1[:m])
                np.dot(x[:m], Wuq, tmp[:m])  # (u⊙q)·Wuq, added below (np.dot cannot add into its output)
                hm = HM[b]
                for j in range(m):
                    qm = QM[cand_index[s0 + j]]
                    for o in range(H1):
                        h1[j, o] += hm[o] + qm[o] + tmp[j, o]
                _activate_rows(h1, m, arch.mlp_act, params, arch, dice, m0)
                _mlp_rows(h1, m, m0 + 1, n_mlp - 1, arch.mlp_act, params, arch, dice, buf_a, buf_b, logits)
                for j in range(m):
                    v = logits[j] + cand_bias[s0 + j]
                    out[s0 + j] = sigmoid_exact(v) if probabilities else v
    return 0

