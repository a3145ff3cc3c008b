"""Logistic sigmoid, the official code's activation in both MLPs.

    σ(s) = 1 / (1 + exp(−s)), computed without overflow for any finite s.

Also used to turn logits into click probabilities in ``predict``.

Deviations: the paper uses PReLU/Dice in both MLPs; the official code uses
sigmoid in both (the author calls it "only an example"). minidin offers all
three for either MLP.

Docs: docs/layers/activations.md
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import overload


def round_like(v, like):
    """v rounded to like's precision (float32 for float32 arrays); in pure Python, v itself."""
    return v


@overload(round_like)
def _round_like(v, like):
    if isinstance(like, types.Float) and like.bitwidth == 32:
        return lambda v, like: np.float32(v)
    return lambda v, like: v


@njit(cache=True)
def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + np.exp(-v))
    e = np.exp(v)
    return e / (1.0 + e)


@njit(cache=True, parallel=True)
def sigmoid_forward(out, x):
    """out = σ(x), element-wise over a 2-D array.

    out: (M, H) float, written; cached for backward
    x:   (M, H) float
    Docs: docs/layers/activations.md
    """
    M, H = x.shape
    for m in prange(M):
        for h in range(H):
            out[m, h] = _sigmoid(x[m, h])


@njit(cache=True, parallel=True)
def sigmoid_backward(dx, dout, out):
    """Backward of ``sigmoid_forward``; accumulates into dx.

    forward was: y = σ(s)
    so now:      ds += dout · y · (1 − y)
    Docs: docs/layers/activations.md
    """
    M, H = out.shape
    for m in prange(M):
        for h in range(H):
            y = out[m, h]
            dx[m, h] += dout[m, h] * y * (1.0 - y)
