"""Fully connected layer: out = x W + b.

Used for every layer of the attention MLP and of the main MLP (paper Fig. 2).
Weights are stored ``(in, out)`` so that the forward is a plain row-major GEMM
(Numba hands ``np.dot`` on contiguous 2-D arrays to BLAS).

The products themselves (chunked BLAS, or loops for small ones) are in
``gemm.py``; this module is only the layer.

Deviations: none. (The official code puts a BatchNorm in inference mode, i.e. a
fixed affine map, before the main MLP and after pooling; minidin does not.)

Docs: docs/layers/dense.md
"""
from numba import njit

from .gemm import matmul_add, matmul_nt_add, matmul_tn_add

@njit(cache=True)
def dense_forward(out, x, W, b):
    """out = x W + b.

    out: (M, O) float, written
    x:   (M, I) float
    W:   (I, O) float
    b:   (O,) float
    Nothing is cached beyond x (the input) and W.
    Docs: docs/layers/dense.md
    """
    M = x.shape[0]
    O = W.shape[1]
    for m in range(M):
        for o in range(O):
            out[m, o] = b[o]
    matmul_add(out, x, W)


@njit(cache=True)
def dense_backward(dx, dW, db, dout, x, W):
    """Backward of ``dense_forward``; accumulates into dx, dW and db.

    dx:   (M, I) float, accumulates
    dW:   (I, O) float, accumulates
    db:   (O,) float, accumulates
    dout: (M, O) float

    forward was: out = x W + b
    so now:      dx += dout Wᵀ;   dW += xᵀ dout;   db += Σ_m dout[m]
    Docs: docs/layers/dense.md
    """
    M = x.shape[0]
    O = W.shape[1]
    matmul_nt_add(dx, dout, W)
    matmul_tn_add(dW, x, dout)
    for m in range(M):
        for o in range(O):
            db[o] += dout[m, o]
