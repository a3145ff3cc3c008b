"""Embedding layer: goods and category lookups, concatenated.

Paper §4.2 / Fig. 2: each behaviour and the candidate ad are represented by the
concatenation of their goods-id and category-id embeddings,
``e = [W_goods[g], W_cate[c]]`` with ``e`` of width ``D = goods_dim + cate_dim``.

Symbols: ``M`` rows looked up (``N`` behaviours or ``B`` candidates), ``Dg`` and
``Dc`` the table widths, ``V`` the table rows, ``U`` the unique ids in a batch.

Deviations: none from the paper. The official code also adds a per-item scalar
bias ``item_b`` to the logit; minidin offers it as an option (``goods_bias=True``,
the ``goods_bias_*`` kernels below), a one-wide embedding of the candidate's
goods id. There is no padding id: every id is a real row.

Docs: docs/layers/embedding.md
"""
import numpy as np
from numba import njit

from .alloc import empty


@njit(cache=True)  # serial: memory-bound and cheap (docs/benchmarks.md, "Compile")
def embedding_forward(out, goods_ids, cate_ids, goods_table, cate_table):
    """Gather and concatenate embedding rows.

    out:         (M, Dg + Dc) float, written
    goods_ids:   (M,) int64, each in [0, Vg)
    cate_ids:    (M,) int64, each in [0, Vc)
    goods_table: (Vg, Dg) float
    cate_table:  (Vc, Dc) float

    out[m] = [goods_table[goods_ids[m]], cate_table[cate_ids[m]]]
    Nothing is cached: the ids are all backward needs.
    Docs: docs/layers/embedding.md
    """
    M = goods_ids.shape[0]
    Dg = goods_table.shape[1]
    Dc = cate_table.shape[1]
    for m in range(M):
        g = goods_ids[m]
        c = cate_ids[m]
        for d in range(Dg):
            out[m, d] = goods_table[g, d]
        for d in range(Dc):
            out[m, Dg + d] = cate_table[c, d]


@njit(cache=True)
def embedding_backward(dvalues, dout, inverse, col0):
    """Scatter-add upstream gradients into the sparse rows of one table.

    dvalues: (U, D) float, accumulates: the gradient of the table's unique rows
    dout:    (M, Dtot) float, gradient of the forward output
    inverse: (M,) int64, dvalues row of each looked-up id (see ``unique_rows``)
    col0:    first column of this table inside dout (0 for goods, Dg for cates)

    forward was: out[m, col0:col0+D] = table[ids[m]]
    so now:      dtable[ids[m]] += dout[m, col0:col0+D]; repeated ids sum.
    Serial in m: a parallel scatter-add would race on repeated ids. The inner loop runs on row views (one
    contiguous source and destination row), which LLVM vectorizes: 2.2x faster than indexing both arrays
    element by element, the same additions in the same order.
    Docs: docs/layers/embedding.md
    """
    M = inverse.shape[0]
    D = dvalues.shape[1]
    for m in range(M):
        src = dout[m, col0:col0 + D]
        dst = dvalues[inverse[m]]
        for d in range(D):
            dst[d] += src[d]


@njit(cache=True)
def goods_bias_forward(logits, goods_ids, bias):
    """Add each candidate's per-goods bias to its logit (the official code's ``item_b``).

    logits:    (B,) float, accumulates
    goods_ids: (B,) int64, candidate goods ids, each in [0, Vg)
    bias:      (Vg, 1) float, a one-wide embedding table

    logits[b] += bias[goods_ids[b], 0]
    Docs: docs/layers/embedding.md
    """
    for b in range(goods_ids.shape[0]):
        logits[b] += bias[goods_ids[b], 0]


@njit(cache=True)
def goods_bias_backward(dvalues, dlogits, inverse):
    """Scatter-add the logit gradient into the sparse rows of the bias table.

    dvalues: (U, 1) float, accumulates: gradient of the unique candidate goods' biases
    dlogits: (B,) float, gradient of the logits
    inverse: (B,) int64, dvalues row of each candidate (see ``unique_rows``)

    forward was: logits[b] += bias[ids[b], 0]
    so now:      dbias[ids[b], 0] += dlogits[b]; repeated ids sum.
    Docs: docs/layers/embedding.md
    """
    for b in range(inverse.shape[0]):
        dvalues[inverse[b], 0] += dlogits[b]


@njit(cache=True)
def _argsort(keys):
    """Stable argsort of an int64 array: a bottom-up merge sort.

    It does what np.argsort(kind="mergesort") does. Numba's generic sort took about
    2 s of the cold compile, and this loop takes a fraction of a second.
    """
    M = keys.shape[0]
    a = empty(M, np.int64)
    b = empty(M, np.int64)
    for m in range(M):
        a[m] = m
    width = 1
    while width < M:
        for lo in range(0, M, 2 * width):
            mid = min(lo + width, M)
            hi = min(lo + 2 * width, M)
            i, j = lo, mid
            for k in range(lo, hi):
                if j >= hi or (i < mid and keys[a[i]] <= keys[a[j]]):
                    b[k] = a[i]
                    i += 1
                else:
                    b[k] = a[j]
                    j += 1
        a, b = b, a
        width *= 2
    return a


@njit(cache=True)
def _radix_argsort(keys):
    """Stable argsort of an int64 array, the fast path of ``_argsort`` (equal to it: both are stable).

    Least-significant-digit radix sort, 11 bits a pass, as many passes as the largest key needs (two for a
    vocabulary below 4 million): a counting pass and a scatter pass over the keys each, against the merge
    sort's log2(M) passes. A negative key (never an id) falls back to ``_argsort``.
    """
    M = keys.shape[0]
    a = empty(M, np.int64)
    for m in range(M):
        a[m] = m
    top = 0
    for m in range(M):
        if keys[m] < 0:
            return _argsort(keys)
        top = max(top, keys[m])
    b = empty(M, np.int64)
    count = empty(2049, np.int64)
    shift = 0
    while shift == 0 or (top >> shift) > 0:
        for k in range(2049):
            count[k] = 0
        for m in range(M):
            count[((keys[a[m]] >> shift) & 2047) + 1] += 1
        for k in range(2048):
            count[k + 1] += count[k]
        for m in range(M):
            digit = (keys[a[m]] >> shift) & 2047
            b[count[digit]] = a[m]
            count[digit] += 1
        a, b = b, a
        shift += 11
    return a


@njit(cache=True)
def unique_rows(ids):
    """Sorted unique ids and the position of each id among them.

    ids: (M,) int64 -> rows (U,) int64 sorted unique, inverse (M,) int64 with
    rows[inverse[m]] == ids[m].
    """
    M = ids.shape[0]
    inverse = empty(M, np.int64)
    if M == 0:
        return empty(0, np.int64), inverse
    order = _radix_argsort(ids)
    rows = empty(M, np.int64)
    U = 0
    for t in range(M):
        m = order[t]
        if U == 0 or ids[m] != rows[U - 1]:
            rows[U] = ids[m]
            U += 1
        inverse[m] = U - 1
    return rows[:U].copy(), inverse
