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
from numba import njit, prange

SMALL_GEMM = 1 << 16  # below this many multiply-adds, loops instead of BLAS
GEMM_CHUNK_ROWS = 512  # rows per parallel BLAS call; fixed, so results never depend on the thread count


# Large products run as one single-threaded BLAS call per fixed chunk of rows, the chunks spread over
# Numba's threads (prange). OpenBLAS itself is kept to one thread (minidin/__init__.py): its own pool
# spinning against Numba's made batch-32 steps 20x slower. Measured on 2 cores at (9000, 256)·(256, 80):
# 105 GFLOP/s chunked against 62 for one single-threaded call and 86 for OpenBLAS's own 2 threads.
# Every product accumulates (out += ...): callers that want out = ... start from zeros (or from the bias).
# One signature per dtype keeps the cold compile down: a bool flag passed as a constant would be typed
# as a literal, and every literal value would compile the parallel kernel again.
@njit(cache=True)
def _add_rows(out, lo, r):
    """out[lo:lo+len(r)] += r (element loops: an array expression would add a shape-error path to compile)."""
    for m in range(r.shape[0]):
        for o in range(r.shape[1]):
            out[lo + m, o] += r[m, o]


@njit(cache=True, parallel=True)
def gemm_nn(out, x, W):
    """out (M, O) += x (M, I) · W (I, O), BLAS per fixed chunk of rows (each row written by one chunk)."""
    M = x.shape[0]
    C = max(1, M // GEMM_CHUNK_ROWS)
    if C == 1:  # one chunk: no parallel region (a thread-pool round trip) around one BLAS call
        _add_rows(out, 0, np.dot(x, W))
        return
    for c in prange(C):
        lo, hi = c * M // C, (c + 1) * M // C
        _add_rows(out, lo, np.dot(x[lo:hi], W))


@njit(cache=True)
def gemm_nt(out, x, W):
    """out (M, I) += x (M, O) · W (I, O)ᵀ: ``gemm_nn`` on a row-major copy of Wᵀ.

    The copy costs I·O against the product's M·I·O, and keeps ``gemm_nn`` at one compiled
    signature: the transposed view is a different array layout, a second parallel compile.
    """
    gemm_nn(out, x, np.ascontiguousarray(W.T))


@njit(cache=True, parallel=True)
def gemm_tn(out, x, dout):
    """out (I, O) += x (M, I)ᵀ · dout (M, O): a partial product per fixed chunk of rows, added in chunk order."""
    M, I = x.shape
    O = dout.shape[1]
    C = max(1, M // GEMM_CHUNK_ROWS)
    if C == 1:
        _add_rows(out, 0, np.dot(x.T, dout))
        return
    part = np.empty((C, I, O), dtype=out.dtype)
    for c in prange(C):
        lo, hi = c * M // C, (c + 1) * M // C
        r = np.dot(x[lo:hi].T, dout[lo:hi])
        for i in range(I):
            for o in range(O):
                part[c, i, o] = r[i, o]
    for i in range(I):
        for o in range(O):
            acc = part[0, i, o]
            for c in range(1, C):
                acc += part[c, i, o]
            out[i, o] += acc


# The products every layer uses: loops below SMALL_GEMM multiply-adds (no BLAS call overhead, and each
# row computed by the same instructions, so identical rows give identical results), chunked BLAS above.
@njit(cache=True)
def matmul_add(out, x, W):
    """out (M, O) += x (M, I) · W (I, O)."""
    M, I = x.shape
    O = W.shape[1]
    if M * I * O >= SMALL_GEMM:
        gemm_nn(out, x, W)
        return
    for m in range(M):
        for i in range(I):
            xi = x[m, i]
            for o in range(O):
                out[m, o] += xi * W[i, o]


@njit(cache=True)
def matmul_tn_add(out, x, dout):
    """out (I, O) += x (M, I)ᵀ · dout (M, O), without materialising xᵀ."""
    M, I = x.shape
    O = dout.shape[1]
    if M * I * O >= SMALL_GEMM:
        gemm_tn(out, x, dout)
        return
    for m in range(M):
        for i in range(I):
            xi = x[m, i]
            for o in range(O):
                out[i, o] += xi * dout[m, o]


@njit(cache=True)
def matmul_nt_add(out, x, W):
    """out (M, I) += x (M, O) · W (I, O)ᵀ."""
    M, O = x.shape
    I = W.shape[0]
    if M * I * O >= SMALL_GEMM:
        gemm_nt(out, x, W)
        return
    for m in range(M):
        for i in range(I):
            acc = 0.0
            for o in range(O):
                acc += x[m, o] * W[i, o]
            out[m, i] += acc


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
