"""PReLU with one learned slope per unit (paper §5.2, Eq. 8 with p(s) = I(s > 0)).

    f(s) = s            if s > 0
         = α · s        otherwise

Deviations: the official code's DIN uses sigmoid (PReLU is defined but unused);
DeepCTR-Torch's 'prelu' shares one α across units. minidin learns one α per
unit, initialised to 0.25 (PyTorch's default).

Docs: docs/layers/activations.md
"""
import numpy as np
from numba import njit, prange

from .alloc import zeros
from .chunks import chunk_bounds, n_chunks, prange_only


@njit(cache=True, inline="always")
def prelu(v, a):
    """PReLU of one element: v for v > 0, a·v otherwise (shared with the fused inference kernel)."""
    return v if v > 0 else a * v


@njit(cache=True, parallel=prange_only())
def prelu_forward(out, x, alpha):
    """out = max(x, 0) + α · min(x, 0), per unit.

    out:   (M, H) float, written
    x:     (M, H) float
    alpha: (H,) float
    Nothing is cached beyond x.
    Docs: docs/layers/activations.md
    """
    M, H = x.shape
    for m in prange(M):
        for h in range(H):
            out[m, h] = prelu(x[m, h], alpha[h])


@njit(cache=True, parallel=prange_only())
def prelu_backward(dx, dalpha, dout, x, alpha):
    """Backward of ``prelu_forward``; accumulates into dx and dalpha.

    dx:     (M, H) float, accumulates
    dalpha: (H,) float, accumulates
    dout:   (M, H) float

    forward was: f = s if s > 0 else α s
    so now:      ds += dout · (1 if s > 0 else α);   dα += Σ_m dout · s · I(s ≤ 0)
    dα is reduced in fixed chunks (see ``chunks``), so it is deterministic.
    Docs: docs/layers/activations.md
    """
    M, H = x.shape
    C = n_chunks(M)
    part = zeros((C, H), dalpha.dtype)
    for c in prange(C):
        lo, hi = chunk_bounds(c, C, M)
        for m in range(lo, hi):
            for h in range(H):
                v = x[m, h]
                g = dout[m, h]
                if v > 0:
                    dx[m, h] += g
                else:
                    dx[m, h] += alpha[h] * g
                    part[c, h] += g * v
    for c in range(C):
        for h in range(H):
            dalpha[h] += part[c, h]
