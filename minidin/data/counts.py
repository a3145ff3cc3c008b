"""MBA's n_j: in how many training samples each id appears (once per sample), one implementation.

A sample contains id j when j is its candidate's id or appears anywhere in its
history window, however often. ``count_presence`` counts over samples laid out
as CSR histories (a ``Batch``); a ``Dataset`` is counted batch by batch through
the same kernel, with the window its training uses.
"""
from __future__ import annotations

from types import SimpleNamespace

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


@njit(cache=True)
def count_set_presence(counts, stamp, ids, set_offsets, row_offsets, cand_ids, cand_offsets, first):
    """counts[j] += 1 for every sample in whose sets id j appears (a schema field), once per sample.

    ids, set_offsets:        a bag over rows: row r owns ids[set_offsets[r]:set_offsets[r+1]]
    row_offsets:             (S+1,) int64, sample s owns rows [row_offsets[s], row_offsets[s+1]): its behaviours
                             (item field), or its one row (user / context field: row_offsets = 0, 1, ..., S)
    cand_ids, cand_offsets:  a second bag with one row per sample, counted with it: the candidate's set of an
                             item field (an empty bag for user and context fields)
    counts, stamp, first:    as in ``count_presence``
    A sample's rows and its candidate are counted in one pass: an id in both counts once.
    """
    for s in range(row_offsets.shape[0] - 1):
        g = first + s
        for r in range(row_offsets[s], row_offsets[s + 1]):
            for k in range(set_offsets[r], set_offsets[r + 1]):
                j = ids[k]
                if stamp[j] != g:
                    stamp[j] = g
                    counts[j] += 1
        for k in range(cand_offsets[s], cand_offsets[s + 1]):
            j = cand_ids[k]
            if stamp[j] != g:
                stamp[j] = g
                counts[j] += 1


def _count_batches(batches, n_goods, n_cates, fields=()):
    out = {"goods_emb": np.zeros(n_goods, np.int64), "cate_emb": np.zeros(n_cates, np.int64)}
    for f in fields:
        out[f.table] = np.zeros(f.vocab, np.int64)
    stamps = {t: np.full(c.shape[0], -1, np.int64) for t, c in out.items()}
    first = 0
    for b in batches:
        count_presence(out["goods_emb"], stamps["goods_emb"], b.hist_goods, b.hist_offsets, b.cand_goods, first)
        count_presence(out["cate_emb"], stamps["cate_emb"], b.hist_cates, b.hist_offsets, b.cand_cates, first)
        each = np.arange(b.size + 1, dtype=np.int64)  # one row per sample
        none = (np.zeros(0, np.int64), np.zeros(b.size + 1, np.int64))  # an empty set per sample
        for f in fields:
            t = f.table
            if f.kind == "item":
                hist, cand = b.item_fields[f.name]
                count_set_presence(out[t], stamps[t], hist.ids, hist.offsets, b.hist_offsets, cand.ids, cand.offsets,
                                   first)
            else:
                bag = b.sample_fields[f.name]
                count_set_presence(out[t], stamps[t], bag.ids, bag.offsets, each, *none, first)
        first += b.size
    return out


def feature_counts(train_data, n_goods=None, n_cates=None, max_history=None, fields=()) -> dict:
    """n_j for MBA: {"goods_emb": int64 (n_goods,), "cate_emb": int64 (n_cates,), "<field>_emb": ...}.

    ``train_data`` is a ``minidin.data.Dataset`` (its train split, within the window ``max_history``, default
    the dataset's own; the vocabulary sizes are the dataset's, and every field of its schema is counted) or a
    ``Batch`` or list of Batches (the vocabulary sizes default to the largest id + 1; pass the model's, and its
    schema fields as ``fields``, a sequence of FieldSpec, ``model.cfg.fields``).
    A sample counts id j once, wherever in it j appears: its history, its candidate, its profile or context.
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
    from ..config import _fields

    schema = SimpleNamespace(fields=_fields("fields", fields))
    for b in batches:  # exactly these fields, every id inside its vocabulary (ValueError names the field)
        b.check_fields(schema)
    fields = schema.fields
    return _count_batches(batches, n_goods, n_cates, tuple(fields))


def dataset_counts(dataset, split, max_history):
    """``Dataset.feature_counts``: the split in order, ``COUNT_CHUNK`` samples per batch."""
    batches = (b for _, b in dataset.batches(split, COUNT_CHUNK, max_history=max_history))
    return _count_batches(batches, dataset.n_goods, dataset.n_cates, dataset.field_specs())
