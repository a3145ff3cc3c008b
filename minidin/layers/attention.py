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


@njit(cache=True, parallel=True)
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


@njit(cache=True, parallel=True)
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


@njit(cache=True, parallel=True)
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
        lo = hist_offsets[b]
        hi = hist_offsets[b + 1]
        if hi == lo:
            continue
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


@njit(cache=True, parallel=True)
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
