"""Fixed chunking for deterministic parallel reductions.

Numba's threading layers may hand any ``prange`` iteration to any thread, so a
reduction that sums into per-*thread* buffers is not reproducible. Instead a
reduction over M rows is cut into ``n_chunks(M)`` chunks whose number and
boundaries depend only on M; each chunk writes its partial sum into its own
row of a ``(n_chunks, H)`` buffer, and the partials are added in chunk order.
The result is bitwise identical for any thread count.
"""
import numpy as np
from numba import njit

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


# Zeroed buffers for parallel kernels. Inside a ``parallel=True`` function Numba turns np.zeros/np.ones
# (and whole-array expressions) into parallel regions of their own: a thread-pool round trip each,
# which at batch 32 costs more than the arithmetic. Allocating in these serial helpers avoids that.
@njit(cache=True)
def zeros_f64(*shape):
    return np.zeros(shape, dtype=np.float64)


@njit(cache=True)
def zeros_like_dtype(like, *shape):
    return np.zeros(shape, dtype=like.dtype)


@njit(cache=True)
def bools(n, value):
    out = np.empty(n, dtype=np.bool_)
    for i in range(n):
        out[i] = value
    return out
