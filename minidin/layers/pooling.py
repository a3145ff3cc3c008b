"""Weighted sum pooling over ragged histories, and the main MLP's input.

Eq. (3): v_U(A) = Σ_j w_j · e_j, with w_j = a(e_j, v_A) for DIN, w_j = 1 for the
BaseModel's sum pooling (paper Fig. 2) and w_j = 1/T for its mean pooling (the
official code's base model). ``pooling_*`` implements all three.

The main MLP's input (``interaction_*``) is [u, i, u ⊙ i] with u = v_U(A) and
i = v_A, as in the official code (commit dc7fb76). The paper's Fig. 2 shows the
plain concatenation [u, i]; the product term is a deviation from the paper that
the official code and most re-implementations share.

An empty history pools to the zero vector (no NaN, no padding read).

Docs: docs/layers/pooling.md
"""
from numba import njit


@njit(cache=True)  # serial: memory-bound and cheap (docs/benchmarks.md, "Compile")
def pooling_forward(out, weights, hist_emb, hist_offsets):
    """Weighted sum of each sample's behaviour embeddings.

    out:          (B, D) float, written
    weights:      (N,) float, w_n
    hist_emb:     (N, D) float, e_n
    hist_offsets: (B+1,) int64

    out[b] = Σ_{n in b} w_n · e_n    (zero when sample b has no behaviours)
    Nothing is cached beyond the inputs.
    Docs: docs/layers/pooling.md
    """
    B = out.shape[0]
    D = out.shape[1]
    for b in range(B):
        for d in range(D):
            out[b, d] = 0.0
        for n in range(hist_offsets[b], hist_offsets[b + 1]):
            w = weights[n]
            for d in range(D):
                out[b, d] += w * hist_emb[n, d]


# serial: memory-bound and cheap (docs/benchmarks.md, "Compile"). fastmath "reassoc" lets LLVM split the
# dot product <du_b, e_n> over vector lanes (fixed at compile time: the same bits on every run): ~1.8x faster
@njit(cache=True, fastmath={"reassoc"})
def pooling_backward(dweights, dhist_emb, dout, weights, hist_emb, hist_offsets):
    """Backward of ``pooling_forward``; accumulates into dweights and dhist_emb.

    dweights:  (N,) float, accumulates
    dhist_emb: (N, D) float, accumulates
    dout:      (B, D) float

    forward was: u_b = Σ_n w_n e_n
    so now:      dw_n += <du_b, e_n>;   de_n += w_n · du_b
    Docs: docs/layers/pooling.md
    """
    B = dout.shape[0]
    D = dout.shape[1]
    for b in range(B):
        for n in range(hist_offsets[b], hist_offsets[b + 1]):
            w = weights[n]
            acc = 0.0
            for d in range(D):
                acc += dout[b, d] * hist_emb[n, d]
                dhist_emb[n, d] += w * dout[b, d]
            dweights[n] += acc


@njit(cache=True)  # serial: memory-bound and cheap (docs/benchmarks.md, "Compile")
def interaction_forward(out, interest, cand_emb):
    """Main MLP input: out[b] = [u_b, i_b, u_b ⊙ i_b].

    out:      (B, 3D) float, written
    interest: (B, D) float, u (pooled history)
    cand_emb: (B, D) float, i (candidate)
    Docs: docs/layers/pooling.md
    """
    B = interest.shape[0]
    D = interest.shape[1]
    for b in range(B):
        for d in range(D):
            u = interest[b, d]
            i = cand_emb[b, d]
            out[b, d] = u
            out[b, D + d] = i
            out[b, 2 * D + d] = u * i


@njit(cache=True)  # serial: memory-bound and cheap (docs/benchmarks.md, "Compile")
def interaction_backward(dinterest, dcand_emb, dout, interest, cand_emb):
    """Backward of ``interaction_forward``; accumulates into dinterest and dcand_emb.

    forward was: x = [u, i, u ⊙ i]
    so now:      du += dx0 + dx2 ⊙ i;   di += dx1 + dx2 ⊙ u
    Docs: docs/layers/pooling.md
    """
    B = interest.shape[0]
    D = interest.shape[1]
    for b in range(B):
        for d in range(D):
            u = interest[b, d]
            i = cand_emb[b, d]
            g2 = dout[b, 2 * D + d]
            dinterest[b, d] += dout[b, d] + g2 * i
            dcand_emb[b, d] += dout[b, D + d] + g2 * u
