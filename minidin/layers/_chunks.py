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
