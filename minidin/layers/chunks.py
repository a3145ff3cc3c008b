"""Fixed chunking for deterministic parallel reductions, and the reductions built on it.

Numba's threading layers may hand any ``prange`` iteration to any thread, so a
reduction that sums into per-*thread* buffers is not reproducible. Instead a
reduction over M rows is cut into ``n_chunks(M)`` chunks whose number and
boundaries depend only on M; each chunk writes its partial sum into its own
row of a ``(n_chunks, H)`` buffer, and the partials are added in chunk order.
The result is bitwise identical for any thread count.
"""
import numpy as np
from numba import njit, prange

from .alloc import empty, zeros

ROWS_PER_CHUNK = 256  # rows a chunk sums before its partial is stored
MAX_CHUNKS = 32  # upper bound, independent of the thread count


@njit(cache=True)
def n_chunks(M):
    """Number of chunks for a reduction over M rows (1 when M == 0)."""
    c = (M + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    if c < 1:
        c = 1
    if c > MAX_CHUNKS:
        c = MAX_CHUNKS
    return c


@njit(cache=True)
def chunk_bounds(c, C, M):
    """Rows [lo, hi) of chunk c out of C over M rows."""
    return (c * M) // C, ((c + 1) * M) // C


def prange_only():
    """The ``parallel=`` option of every parallel kernel: only the explicit ``prange`` loops run in parallel.

    With ``parallel=True`` Numba also turns np.zeros/np.ones, array expressions and
    slice assignments inside the kernel into parallel regions of their own (a
    thread-pool round trip each, which at batch 32 costs more than the arithmetic,
    and each one more to compile), and np.sum-style reductions into per-thread
    partial sums, which are not reproducible. Every parallel loop in minidin is a
    ``prange`` written out, with its partials in fixed chunks. A new dict per call:
    Numba consumes the one it is given.
    """
    return dict(prange=True, comprehension=False, reduction=False, inplace_binop=False, setitem=False,
                numpy=False, stencil=False, fusion=False)


@njit(cache=True, parallel=prange_only())
def column_stats(x):
    """Per-column mean and biased variance over the rows of x, as float64 (fixed-chunk reductions).

    Accumulates in float64 whatever x's dtype. Also returns ``const`` (H,): the
    columns whose rows agree to within rounding (spread ≤ 8 ulps of x's dtype),
    which get variance exactly 0. Dice divides by sqrt(Var + 1e-8): rows that are
    identical in exact arithmetic but differ in their last bits (a mean pooled
    over 3 copies is not bitwise the copy) would otherwise turn rounding into
    noise 10⁴ times larger, and float32 would disagree with float64 by 1e-3.

    One parallel pass: each fixed chunk of rows takes its own mean and sum of squared
    deviations (two passes over rows that stay in cache), and the chunks are merged in
    chunk order (Chan et al.): M2 = Σ_c M2_c + Σ_c n_c (mean_c − mean)².
    """
    M, H = x.shape
    C = n_chunks(M)
    mean_c = zeros((C, H), np.float64)
    m2_c = zeros((C, H), np.float64)
    lo_v = empty((C, H), np.float64)
    hi_v = empty((C, H), np.float64)
    for c in prange(C):
        lo, hi = chunk_bounds(c, C, M)
        for h in range(H):
            lo_v[c, h] = np.inf
            hi_v[c, h] = -np.inf
        for m in range(lo, hi):
            for h in range(H):
                v = x[m, h]
                mean_c[c, h] += v
                lo_v[c, h] = min(lo_v[c, h], v)
                hi_v[c, h] = max(hi_v[c, h], v)
        if hi > lo:
            for h in range(H):
                mean_c[c, h] /= hi - lo
        for m in range(lo, hi):
            for h in range(H):
                d = x[m, h] - mean_c[c, h]
                m2_c[c, h] += d * d
    mean = zeros(H, np.float64)
    var = zeros(H, np.float64)
    const = empty(H, np.bool_)
    if M == 0:
        for h in range(H):
            const[h] = True
        return mean, var, const
    ulp = np.finfo(x.dtype).eps
    for h in range(H):
        vmin, vmax = np.inf, -np.inf
        for c in range(C):
            lo, hi = chunk_bounds(c, C, M)
            mean[h] += mean_c[c, h] * (hi - lo)
            vmin = min(vmin, lo_v[c, h])
            vmax = max(vmax, hi_v[c, h])
        mean[h] /= M
        const[h] = vmax - vmin <= 8.0 * ulp * max(abs(vmin), abs(vmax))
        if not const[h]:
            for c in range(C):
                lo, hi = chunk_bounds(c, C, M)
                d = mean_c[c, h] - mean[h]
                var[h] += m2_c[c, h] + (hi - lo) * d * d
            var[h] /= M
    return mean, var, const
