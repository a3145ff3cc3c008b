"""MBA's n_j: in how many training samples each id appears (once per sample), one implementation.

A sample contains id j when j is its candidate's id or appears anywhere in its
history window, however often. ``count_presence`` counts over samples laid out
as CSR histories (a ``Batch``); a ``Dataset`` is counted batch by batch through
the same kernel, with the window its training uses.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..batch import Batch

COUNT_CHUNK = 65536  # samples per batch when counting a Dataset (bounds the memory of the flat histories)


@njit(cache=True)
def count_presence(counts, stamp, hist_ids, hist_offsets, cand_ids, first):
    """counts[j] += 1 for every sample that contains id j (history or candidate), once per sample.

    counts:       (V,) int64, accumulated
    stamp:        (V,) int64 scratch, the last sample id that counted j (start at -1; never reused across
                  calls with overlapping sample ids)
    hist_ids:     (N,) int64, histories in CSR order;  hist_offsets: (S+1,) int64
    cand_ids:     (S,) int64
    first:        global id of this call's first sample (so one stamp array serves several calls)
    """
    for s in range(cand_ids.shape[0]):
        g = first + s
        for n in range(hist_offsets[s], hist_offsets[s + 1]):
            j = hist_ids[n]
            if stamp[j] != g:
                stamp[j] = g
                counts[j] += 1
        j = cand_ids[s]
        if stamp[j] != g:
            stamp[j] = g
            counts[j] += 1


def _count_batches(batches, n_goods, n_cates):
    out = {"goods_emb": np.zeros(n_goods, np.int64), "cate_emb": np.zeros(n_cates, np.int64)}
    stamps = {t: np.full(c.shape[0], -1, np.int64) for t, c in out.items()}
    first = 0
    for b in batches:
        count_presence(out["goods_emb"], stamps["goods_emb"], b.hist_goods, b.hist_offsets, b.cand_goods, first)
        count_presence(out["cate_emb"], stamps["cate_emb"], b.hist_cates, b.hist_offsets, b.cand_cates, first)
        first += b.size
    return out


def feature_counts(train_data, n_goods=None, n_cates=None, max_history=None) -> dict:
    """n_j for MBA: {"goods_emb": int64 (n_goods,), "cate_emb": int64 (n_cates,)}.

    ``train_data`` is a ``minidin.data.Dataset`` (its train split, within the window ``max_history``, default
    the dataset's own; the vocabulary sizes are the dataset's) or a ``Batch`` or list of Batches (the vocabulary
    sizes default to the largest id + 1; pass the model's).
    """
    from .dataset import Dataset

    if isinstance(train_data, Dataset):
        return train_data.feature_counts("train", max_history)
    batches = [train_data] if isinstance(train_data, Batch) else list(train_data)
    if not batches or not all(isinstance(b, Batch) for b in batches):
        raise TypeError("train_data: expected a Dataset, a Batch or a list of Batches")
    need_g = max(int(max(b.hist_goods.max(initial=0), b.cand_goods.max(initial=0))) for b in batches) + 1
    need_c = max(int(max(b.hist_cates.max(initial=0), b.cand_cates.max(initial=0))) for b in batches) + 1
    n_goods, n_cates = n_goods or need_g, n_cates or need_c
    if n_goods < need_g or n_cates < need_c:
        raise ValueError(f"n_goods/n_cates: the batches hold ids up to {need_g - 1} / {need_c - 1}")
    return _count_batches(batches, n_goods, n_cates)


def dataset_counts(dataset, split, max_history):
    """``Dataset.feature_counts``: the split in order, ``COUNT_CHUNK`` samples per batch."""
    batches = (b for _, b in dataset.batches(split, COUNT_CHUNK, max_history=max_history))
    return _count_batches(batches, dataset.n_goods, dataset.n_cates)
