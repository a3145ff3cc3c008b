"""Embedding bag: a set of ids per row (a multi-hot field), pooled by sum or mean into columns of an output.

A schema field (``minidin.config.FieldSpec``) is one-hot (exactly one id per
row) or multi-hot (a ragged set per row, e.g. a movie's genres or a user's
tags). Both are a CSR bag here: ``ids (K,)`` and ``offsets (M+1,)``, row m owns
``ids[offsets[m]:offsets[m+1]]``; a one-hot field is the bag with
``offsets = 0, 1, ..., M``. The pooled embedding is written into columns
``col0 : col0 + width`` of a wider output, so the model concatenates every
field of an item (or of the MLP input) without a copy.

Symbols: ``M`` rows (behaviours, candidates or samples), ``K`` ids in all the
sets, ``V`` the table's rows, ``U`` the distinct ids, ``W`` the table's width.

Deviations: none from the paper (§4.2, Fig. 2: "multi-hot ... pooled"; the paper
sums, the official code has no multi-hot field). An empty set pools to zeros.

Docs: docs/layers/embedding.md
"""
import numpy as np
from numba import njit

from .alloc import empty, zeros


@njit(cache=True)  # serial: memory-bound, as embedding_forward
def embedding_bag_forward(out, ids, offsets, table, col0, mean):
    """Pool each row's set of embedding rows into ``out[:, col0:col0+W]``.

    out:     (M, ≥ col0 + W) float, columns col0 .. col0+W−1 written
    ids:     (K,) int64, each in [0, V): the sets, row after row
    offsets: (M+1,) int64, row m's set is ids[offsets[m]:offsets[m+1]]
    table:   (V, W) float
    col0:    first output column
    mean:    divide by the set's size (sum when False); an empty set gives zeros either way

    out[m, col0 + d] = s_m · Σ_{k in set m} table[ids[k], d],   s_m = 1/|set m| (mean) or 1 (sum)
    Nothing is cached: the ids and offsets are all backward needs.
    Docs: docs/layers/embedding.md
    """
    M = offsets.shape[0] - 1
    W = table.shape[1]
    for m in range(M):
        lo, hi = offsets[m], offsets[m + 1]
        for d in range(W):
            out[m, col0 + d] = 0.0
        for k in range(lo, hi):
            j = ids[k]
            for d in range(W):
                out[m, col0 + d] += table[j, d]
        if mean and hi > lo:
            s = 1.0 / (hi - lo)
            for d in range(W):
                out[m, col0 + d] *= s


@njit(cache=True)
def embedding_bag_backward(dvalues, dout, inverse, offsets, col0, mean):
    """Scatter-add each row's upstream gradient into the rows of its set.

    dvalues: (U, W) float, accumulates: the gradient of the table's distinct rows in the batch
    dout:    (M, ≥ col0 + W) float, gradient of the forward output
    inverse: (K,) int64, dvalues row of each id (``unique_rows`` of the ids)
    offsets: (M+1,) int64, as in the forward
    col0, mean: as in the forward

    forward was: out[m, col0+d] = s_m Σ_{k in set m} table[ids[k], d]
    so now:      dtable[ids[k], d] += s_m · dout[m, col0+d] for every k in set m; repeated ids sum.
    Serial: a parallel scatter-add would race on repeated ids.
    Docs: docs/layers/embedding.md
    """
    M = offsets.shape[0] - 1
    W = dvalues.shape[1]
    for m in range(M):
        lo, hi = offsets[m], offsets[m + 1]
        s = 1.0 / (hi - lo) if mean and hi > lo else 1.0
        for k in range(lo, hi):
            u = inverse[k]
            for d in range(W):
                dvalues[u, d] += s * dout[m, col0 + d]


@njit(cache=True)
def gather_sets(rows, ids, offsets):
    """The sets of ``rows`` from a bag over a table of entities (an item's genres, a user's tags).

    rows:    (M,) int64, entity ids, each in [0, len(offsets) − 1)
    ids, offsets: the bag over entities (entity e owns ids[offsets[e]:offsets[e+1]])
    returns (out_ids (K,), out_offsets (M+1,)): row m owns the set of entity rows[m]
    """
    M = rows.shape[0]
    out_off = zeros(M + 1, np.int64)
    for m in range(M):
        e = rows[m]
        out_off[m + 1] = out_off[m] + offsets[e + 1] - offsets[e]
    out = empty(out_off[M], np.int64)
    for m in range(M):
        e = rows[m]
        base = out_off[m] - offsets[e]
        for k in range(offsets[e], offsets[e + 1]):
            out[base + k] = ids[k]
    return out, out_off
