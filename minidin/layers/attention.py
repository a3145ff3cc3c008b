"""Local activation unit (paper §4.3, Fig. 2): the attention input and the optional softmax.

Eq. (3): v_U(A) = f(v_A, e_1, ..., e_H) = Σ_j a(e_j, v_A) · e_j

``a(·)`` is a small MLP. Its input, per behaviour j of a sample with candidate
``q = v_A`` (``cand_emb[b]``) and behaviour ``k = e_j`` (``hist_emb[n]`` with
``n = hist_offsets[b] + j``), is built here:

    x_n = [q, k, q − k, q ⊙ k]            (N, 4D)

then dense layers with an activation and a final dense layer to one score per
behaviour (composed in ``minidin.model`` from ``dense`` and the activation kernels).

Deviations:
- Paper: the MLP input is "the behaviour, the ad and their out product". Every
  public implementation, the official one included, uses ``[q, k, q−k, q⊙k]``
  (element-wise, not an outer product); minidin follows that, in that order.
- Paper: the weights are *not* normalised (no softmax): Σ_j w_j carries the
  intensity of the user's interest. That is minidin's default. The official code
  always applies a softmax to the scores scaled by 1/sqrt(D) (padding masked with
  −2³²+1); ``attention_softmax=True`` reproduces that on the ragged layout, where
  there is nothing to mask (``attention_softmax_*`` below).
- Official code: sigmoid in the attention MLP; paper: PReLU/Dice. minidin's
  ``attention_activation`` chooses; by default it follows the main MLP's.

Docs: docs/layers/attention.md
"""
import numpy as np
from numba import njit, prange

from .alloc import empty, zeros
from .chunks import prange_only
from .gemm import matmul_add, matmul_nt_add, matmul_tn_add


@njit(cache=True, parallel=prange_only())
def attention_input_forward(out, cand_emb, hist_emb, hist_offsets):
    """Build the local activation unit's input for every behaviour.

    out:          (N, 4D) float, written
    cand_emb:     (B, D) float, q for each sample
    hist_emb:     (N, D) float, k for each behaviour
    hist_offsets: (B+1,) int64, CSR offsets: sample b owns rows [off[b], off[b+1])

    out[n] = [q_b, k_n, q_b − k_n, q_b ⊙ k_n]   for n in sample b
    Nothing is cached: backward needs only q and k.
    Docs: docs/layers/attention.md
    """
    B = cand_emb.shape[0]
    D = cand_emb.shape[1]
    for b in prange(B):
        for n in range(hist_offsets[b], hist_offsets[b + 1]):
            for d in range(D):
                q = cand_emb[b, d]
                k = hist_emb[n, d]
                out[n, d] = q
                out[n, D + d] = k
                out[n, 2 * D + d] = q - k
                out[n, 3 * D + d] = q * k


@njit(cache=True, parallel=prange_only())
def attention_input_backward(dcand_emb, dhist_emb, dout, cand_emb, hist_emb, hist_offsets):
    """Backward of ``attention_input_forward``; accumulates into dcand_emb and dhist_emb.

    dcand_emb: (B, D) float, accumulates
    dhist_emb: (N, D) float, accumulates
    dout:      (N, 4D) float

    forward was: x = [q, k, q − k, q ⊙ k]
    so now:      dq += dx0 + dx2 + dx3 ⊙ k   (summed over the sample's behaviours)
                 dk += dx1 − dx2 + dx3 ⊙ q
    Parallel over samples: each writes only its own rows.
    Docs: docs/layers/attention.md
    """
    B = cand_emb.shape[0]
    D = cand_emb.shape[1]
    for b in prange(B):
        for n in range(hist_offsets[b], hist_offsets[b + 1]):
            for d in range(D):
                q = cand_emb[b, d]
                k = hist_emb[n, d]
                g0 = dout[n, d]
                g1 = dout[n, D + d]
                g2 = dout[n, 2 * D + d]
                g3 = dout[n, 3 * D + d]
                dcand_emb[b, d] += g0 + g2 + g3 * k
                dhist_emb[n, d] += g1 - g2 + g3 * q


@njit(cache=True)
def softmax_segment(out, scores, lo, hi, scale):
    """out[lo:hi] = softmax(scale · scores[lo:hi]) for one history (max subtracted; nothing for hi == lo).
    ``out`` may be ``scores`` itself. Shared by ``attention_softmax_forward`` and the fused inference kernel."""
    if hi == lo:
        return
    m = scale * scores[lo]
    for n in range(lo + 1, hi):
        v = scale * scores[n]
        if v > m:
            m = v
    total = 0.0
    for n in range(lo, hi):
        e = np.exp(scale * scores[n] - m)
        out[n] = e
        total += e
    for n in range(lo, hi):
        out[n] = out[n] / total


@njit(cache=True, parallel=prange_only())
def attention_softmax_forward(out, scores, hist_offsets, scale):
    """Softmax of scaled scores within each history (the official code's option).

    out:          (N,) float, written: the pooling weights w
    scores:       (N,) float, the attention MLP's outputs s
    hist_offsets: (B+1,) int64
    scale:        float, 1/sqrt(D) in the official code

    w_n = exp(scale·s_n − m_b) / Σ_{n' in b} exp(scale·s_n' − m_b),  m_b = max_{n in b} scale·s_n
    An empty history has no weights. Cached: out (w).
    Docs: docs/layers/attention.md
    """
    B = hist_offsets.shape[0] - 1
    for b in prange(B):
        softmax_segment(out, scores, hist_offsets[b], hist_offsets[b + 1], scale)


@njit(cache=True, parallel=prange_only())
def attention_softmax_backward(dscores, dout, out, hist_offsets, scale):
    """Backward of ``attention_softmax_forward``; accumulates into dscores.

    dscores: (N,) float, accumulates
    dout:    (N,) float, gradient of the weights w
    out:     (N,) float, the weights w from forward

    forward was: w = softmax(scale · s) within each history
    so now:      ds_n += scale · w_n · (dw_n − Σ_{n' in b} w_n' dw_n')
    Docs: docs/layers/attention.md
    """
    B = hist_offsets.shape[0] - 1
    for b in prange(B):
        lo = hist_offsets[b]
        hi = hist_offsets[b + 1]
        dot = 0.0
        for n in range(lo, hi):
            dot += out[n] * dout[n]
        for n in range(lo, hi):
            dscores[n] += scale * out[n] * (dout[n] - dot)


@njit(cache=True)
def split_weights(W, D):
    """(Wq + Wd) (D, H) and [Wk − Wd; Wp] (2D, H) from the first layer's W (4D, H)."""
    H = W.shape[1]
    Wqd = empty((D, H), W.dtype)
    W2 = empty((2 * D, H), W.dtype)
    for d in range(D):
        for h in range(H):
            Wqd[d, h] = W[d, h] + W[2 * D + d, h]
            W2[d, h] = W[D + d, h] - W[2 * D + d, h]
            W2[D + d, h] = W[3 * D + d, h]
    return Wqd, W2


@njit(cache=True, parallel=prange_only())
def attention_split_forward(out, kx, cand_emb, hist_emb, hist_offsets, W, b):
    """The attention unit's first dense layer on [q, k, q−k, q⊙k], without building that input.

    out:          (N, H) float, written: the first layer's pre-activation z
    kx:           (N, 2D) float, written and cached for backward: [k_n, q_b ⊙ k_n]
    cand_emb:     (B, D) float, q
    hist_emb:     (N, D) float, k
    hist_offsets: (B+1,) int64
    W:            (4D, H) float, rows [Wq; Wk; Wd; Wp] act on q, k, q−k, q⊙k
    b:            (H,) float

    z_n = [q, k, q−k, q⊙k]·W + b = q·(Wq + Wd) + k·(Wk − Wd) + (q⊙k)·Wp + b
        = (q_b·(Wq + Wd) + b)  +  [k_n, q_b⊙k_n]·[Wk − Wd; Wp]
    The first term is computed once per sample (B·D·H multiply-adds), the second
    is one (N, 2D)·(2D, H) product: half the multiply-adds of the (N, 4D)·(4D, H)
    that ``attention_input_forward`` + ``dense_forward`` do, with the same result
    up to rounding. Equal to those two kernels in exact arithmetic (paper Eq. (3)'s a(·)).
    Docs: docs/layers/attention.md
    """
    B, D = cand_emb.shape
    H = W.shape[1]
    Wqd, W2 = split_weights(W, D)
    qz = zeros((B, H), out.dtype)
    matmul_add(qz, cand_emb, Wqd)
    for b_ in prange(B):
        for h in range(H):
            qz[b_, h] += b[h]
        for n in range(hist_offsets[b_], hist_offsets[b_ + 1]):
            for d in range(D):
                k = hist_emb[n, d]
                kx[n, d] = k
                kx[n, D + d] = cand_emb[b_, d] * k
            for h in range(H):  # out starts as the per-sample term, then the GEMM adds the per-row one
                out[n, h] = qz[b_, h]
    matmul_add(out, kx, W2)


@njit(cache=True, parallel=prange_only())
def attention_split_backward(dcand_emb, dhist_emb, dW, db, dout, kx, cand_emb, hist_emb, hist_offsets, W):
    """Backward of ``attention_split_forward``; accumulates into dcand_emb, dhist_emb, dW and db.

    dcand_emb: (B, D), dhist_emb: (N, D), dW: (4D, H), db: (H,) float, accumulate
    dout:      (N, H) float, gradient of z
    kx:        (N, 2D) float, [k, q⊙k] from forward

    With S_b = Σ_{n in b} dz_n (B, H), A = kᵀ dz and P = (q⊙k)ᵀ dz, i.e. [A; P] = kxᵀ dz:
        dWq += qᵀ S;   dWd += qᵀ S − A;   dWk += A;   dWp += P;   db += Σ_b S_b
        [g_k, g_p] = dz · [Wk − Wd; Wp]ᵀ                    (N, 2D)
        dk_n += g_k[n] + q_b ⊙ g_p[n]
        dq_b += S_b · (Wq + Wd)ᵀ + Σ_{n in b} k_n ⊙ g_p[n]
    (the same gradients as ``dense_backward`` then ``attention_input_backward``).
    Docs: docs/layers/attention.md
    """
    B, D = cand_emb.shape
    N, H = dout.shape
    Wqd, W2 = split_weights(W, D)
    S = zeros((B, H), dout.dtype)
    for b_ in range(B):  # one read of dz: serial, a parallel region would cost more to start (and compile)
        for n in range(hist_offsets[b_], hist_offsets[b_ + 1]):
            for h in range(H):
                S[b_, h] += dout[n, h]
    # weight gradients: [A; P] = kxᵀ dz, Cq = qᵀ S
    AP = zeros((2 * D, H), dout.dtype)
    matmul_tn_add(AP, kx, dout)
    Cq = zeros((D, H), dout.dtype)
    matmul_tn_add(Cq, cand_emb, S)
    for d in range(D):
        for h in range(H):
            dW[d, h] += Cq[d, h]
            dW[D + d, h] += AP[d, h]
            dW[2 * D + d, h] += Cq[d, h] - AP[d, h]
            dW[3 * D + d, h] += AP[D + d, h]
    for b_ in range(B):
        for h in range(H):
            db[h] += S[b_, h]
    # input gradients
    g = zeros((N, 2 * D), dout.dtype)
    matmul_nt_add(g, dout, W2)
    gq = zeros((B, D), dout.dtype)
    matmul_nt_add(gq, S, Wqd)
    for b_ in prange(B):  # rows outer, features inner: contiguous, vectorized
        for d in range(D):
            dcand_emb[b_, d] += gq[b_, d]
        for n in range(hist_offsets[b_], hist_offsets[b_ + 1]):
            for d in range(D):
                gp = g[n, D + d]
                dcand_emb[b_, d] += hist_emb[n, d] * gp
                dhist_emb[n, d] += g[n, d] + cand_emb[b_, d] * gp
