"""The matrix products every layer uses: chunked BLAS for large ones, plain loops for small ones.

Small products (M·I·O < ``SMALL_GEMM``) run as plain loops instead of BLAS: they
skip BLAS's call overhead, and every row is computed by the same instructions,
so identical input rows give bitwise identical outputs (BLAS rounds edge rows
of a tile differently). Dice divides by sqrt(Var + ε) with ε = 1e-8, which
turns those last-bit differences between "identical" rows into noise 10⁴
times larger; the finite-difference checks on tiny vocabularies need it gone.

Every product accumulates (out += ...). BLAS is called directly (``blas.py``).

Docs: docs/layers/dense.md
"""
import numpy as np
from numba import njit, prange

from .alloc import empty
from .blas import NO_TRANS, TRANS, xgemm
from .chunks import prange_only

SMALL_GEMM = 1 << 16  # below this many multiply-adds, loops instead of BLAS
GEMM_CHUNK_ROWS = 512  # rows per parallel BLAS call; fixed, so results never depend on the thread count
GEMM_TN_MAX_CHUNKS = 4  # the weight gradient's partial products (chunk count depends only on M)


# Large products run as one single-threaded BLAS call per fixed chunk of rows, the chunks spread over
# Numba's threads (prange). OpenBLAS itself is kept to one thread (minidin/__init__.py): its own pool
# spinning against Numba's made batch-32 steps 20x slower. Measured on 2 cores at (9000, 256)·(256, 80):
# 105 GFLOP/s chunked against 62 for one single-threaded call and 86 for OpenBLAS's own 2 threads.
# BLAS is called directly (blas.py): row offsets, transposes as flags, β = 1 to accumulate in place.
# Every product accumulates (out += ...): callers that want out = ... start from zeros (or from the bias).
# One signature per dtype keeps the cold compile down: a constant flag would be typed as a literal, and
# every literal value would compile the parallel kernel again, so the transpose flag arrives as np.int64.
@njit(cache=True, parallel=prange_only())
def gemm_rows(out, x, W, trans_w):
    """out (M, P) += x (M, K) · op(W), BLAS per fixed chunk of rows (each row of out written by one chunk).

    op(W) = W (K, P) when trans_w is ``NO_TRANS``, Wᵀ of W (P, K) when ``TRANS``.
    Column-major, out is P×M: outᵀ += op(W)ᵀ · xᵀ, i.e. ``gemm(op, 'n', P, rows, K, W, x, out)``.
    """
    M, K = x.shape
    P = out.shape[1]
    if M == 0 or K == 0 or P == 0:
        return
    ldw = P if trans_w == NO_TRANS else K
    C = max(1, M // GEMM_CHUNK_ROWS)
    if C == 1:  # one chunk: no parallel region (a thread-pool round trip) around one BLAS call
        xgemm(trans_w, NO_TRANS, P, M, K, W, 0, ldw, x, 0, K, 1.0, out, 0, P)
        return
    for c in prange(C):
        lo, hi = c * M // C, (c + 1) * M // C
        xgemm(trans_w, NO_TRANS, P, hi - lo, K, W, 0, ldw, x, lo * K, K, 1.0, out, lo * P, P)


@njit(cache=True, parallel=prange_only())
def gemm_tn(out, x, dout):
    """out (I, O) += x (M, I)ᵀ · dout (M, O): a partial product per fixed chunk of rows, added in chunk order.

    One chunk: column-major, out is O×I, so outᵀ += doutᵀ · x is ``gemm('n', 't', O, I, M, dout, x, out)``.
    Several: chunk c writes part[c] = (x[rows]ᵀ · dout[rows])ᵀ, i.e. the (I×O) column-major product
    ``gemm('n', 't', I, O, rows, x, dout, part[c])``; OpenBLAS runs this orientation (the long side I as
    BLAS's m) about 1.3x faster at (9200, 256)ᵀ·(9200, 80). At most ``GEMM_TN_MAX_CHUNKS`` chunks: each
    chunk's k (its rows) stays long, and there are still enough chunks for 2-4 threads.
    """
    M, I = x.shape
    O = dout.shape[1]
    if M == 0 or I == 0 or O == 0:
        return
    C = max(1, min(M // GEMM_CHUNK_ROWS, GEMM_TN_MAX_CHUNKS))
    if C == 1:
        xgemm(NO_TRANS, TRANS, O, I, M, dout, 0, O, x, 0, I, 1.0, out, 0, O)
        return
    part = empty((C, O, I), out.dtype)
    for c in prange(C):  # β = 0: BLAS overwrites its slot without reading it
        lo, hi = c * M // C, (c + 1) * M // C
        xgemm(NO_TRANS, TRANS, I, O, hi - lo, x, lo * I, I, dout, lo * O, O, 0.0, part, c * O * I, I)
    for i in range(I):
        for o in range(O):
            acc = part[0, o, i]
            for c in range(1, C):
                acc += part[c, o, i]
            out[i, o] += acc


# The products every layer uses: loops below SMALL_GEMM multiply-adds (no BLAS call overhead, and each
# row computed by the same instructions, so identical rows give identical results), chunked BLAS above.
@njit(cache=True)
def matmul_add(out, x, W):
    """out (M, O) += x (M, I) · W (I, O)."""
    M, I = x.shape
    O = W.shape[1]
    if M * I * O >= SMALL_GEMM:
        gemm_rows(out, x, W, np.int64(NO_TRANS))
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
        gemm_rows(out, x, W, np.int64(TRANS))
        return
    for m in range(M):
        for i in range(I):
            acc = 0.0
            for o in range(O):
                acc += x[m, o] * W[i, o]
            out[m, i] += acc
