"""Fully connected layer: out = x W + b.

Used for every layer of the attention MLP and of the main MLP (paper Fig. 2).
Weights are stored ``(in, out)`` so that the forward is a plain row-major GEMM
(Numba hands ``np.dot`` on contiguous 2-D arrays to BLAS).

Small products (M·I·O < ``SMALL_GEMM``) run as plain loops instead of BLAS: they
skip BLAS's call overhead, and every row is computed by the same instructions,
so identical input rows give bitwise identical outputs (BLAS rounds edge rows
of a tile differently). Dice divides by sqrt(Var + ε) with ε = 1e-8, which
turns those last-bit differences between "identical" rows into noise 10⁴
times larger; the finite-difference checks on tiny vocabularies need it gone.

Deviations: none. (The official code puts a BatchNorm in inference mode, i.e. a
fixed affine map, before the main MLP and after pooling; minidin does not.)

Docs: docs/layers/dense.md
"""
import numpy as np
from numba import njit

SMALL_GEMM = 1 << 16  # below this many multiply-adds, loops instead of BLAS


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
    M, I = x.shape
    O = W.shape[1]
    if M == 0:
        return
    if M * I * O < SMALL_GEMM:
        for m in range(M):
            for o in range(O):
                out[m, o] = b[o]
            for i in range(I):
                xi = x[m, i]
                for o in range(O):
                    out[m, o] += xi * W[i, o]
        return
    out[:, :] = np.dot(x, W)
    for m in range(M):
        for o in range(O):
            out[m, o] += b[o]


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
    M, I = x.shape
    O = W.shape[1]
    if M == 0:
        return
    if M * I * O < SMALL_GEMM:
        for m in range(M):
            for i in range(I):
                acc = 0.0
                xi = x[m, i]
                for o in range(O):
                    acc += dout[m, o] * W[i, o]
                    dW[i, o] += xi * dout[m, o]
                dx[m, i] += acc
        for m in range(M):
            for o in range(O):
                db[o] += dout[m, o]
        return
    dx += np.dot(dout, W.T)
    dW += np.dot(x.T, dout)
    for m in range(M):
        for o in range(O):
            db[o] += dout[m, o]
