"""Hypothesis strategies: tiny shapes, empty histories, tiny vocabularies (so ids repeat)."""
import numpy as np
from hypothesis import strategies as st

import minidin
from tests.helpers import offsets_from_lengths  # noqa: F401  (also used by importers)


@st.composite
def batches(draw, max_b=4, max_t=5, n_goods=None, n_cates=None, labels=True, allow_all_empty=True):
    """A random valid ``Batch``; vocabularies of 1-6 rows force repeated ids."""
    B = draw(st.integers(1, max_b))
    n_goods = n_goods or draw(st.integers(1, 6))
    n_cates = n_cates or draw(st.integers(1, 3))
    lengths = draw(st.lists(st.integers(0, max_t), min_size=B, max_size=B))
    if not allow_all_empty and sum(lengths) == 0:
        lengths[0] = 1
    N = sum(lengths)
    ids = st.lists(st.integers(0, n_goods - 1), min_size=N, max_size=N)
    cids = st.lists(st.integers(0, n_cates - 1), min_size=N, max_size=N)
    hg, hc = draw(ids), draw(cids)
    cg = draw(st.lists(st.integers(0, n_goods - 1), min_size=B, max_size=B))
    cc = draw(st.lists(st.integers(0, n_cates - 1), min_size=B, max_size=B))
    y = draw(st.lists(st.integers(0, 1), min_size=B, max_size=B)) if labels else None
    return minidin.Batch(hg, hc, offsets_from_lengths(lengths), cg, cc, y, list(range(B))), n_goods, n_cates


@st.composite
def ragged(draw, max_b=4, max_t=5):
    """(B, offsets) with lengths in [0, max_t], all-zero included."""
    B = draw(st.integers(1, max_b))
    lengths = draw(st.lists(st.integers(0, max_t), min_size=B, max_size=B))
    return B, offsets_from_lengths(lengths)


FIELD_POOL = [("brand", "item", False), ("genres", "item", True), ("gender", "user", False),
              ("tags", "user", True), ("hour", "context", False), ("device", "context", True)]


def full_schema(pooling=("mean", "sum", "mean", "sum", "mean", "sum")):
    """The issue's checking schema: besides goods and category (two one-hot item fields), a one-hot and a
    multi-hot item field, a one-hot and a multi-hot user field, a one-hot and a multi-hot context field."""
    return tuple(minidin.FieldSpec(name, kind, vocab=3 + i % 2, dim=2 + i % 2, multi_hot=multi, pooling=p)
                 for i, ((name, kind, multi), p) in enumerate(zip(FIELD_POOL, pooling)))


@st.composite
def schemas(draw):
    """A random subset of FIELD_POOL's fields, vocabularies of 1-4 rows, widths 1-3, sum or mean."""
    chosen = draw(st.lists(st.sampled_from(FIELD_POOL), unique=True, max_size=len(FIELD_POOL)))
    return tuple(minidin.FieldSpec(name, kind, vocab=draw(st.integers(1, 4)), dim=draw(st.integers(1, 3)),
                                   multi_hot=multi, pooling=draw(st.sampled_from(["sum", "mean"])))
                 for name, kind, multi in chosen)


def _sets(draw, f, rows):
    """``rows`` entries of field f: an id, or (multi-hot) a set of 0-3 ids (empty sets and repeats included)."""
    if f.multi_hot:
        return [draw(st.lists(st.integers(0, f.vocab - 1), max_size=3)) for _ in range(rows)]
    return draw(st.lists(st.integers(0, f.vocab - 1), min_size=rows, max_size=rows))


@st.composite
def schema_batches(draw, schema, max_b=4, max_t=4, n_goods=4, n_cates=2):
    """A random Batch carrying every field of ``schema``; tiny vocabularies force repeated ids."""
    batch, _, _ = draw(batches(max_b=max_b, max_t=max_t, n_goods=n_goods, n_cates=n_cates))
    N, B = batch.hist_goods.shape[0], batch.size
    items = {f.name: (minidin.Bag.from_sets(_per_row(_sets(draw, f, N))),
                      minidin.Bag.from_sets(_per_row(_sets(draw, f, B))))
             for f in schema if f.kind == "item"}
    samples = {f.name: minidin.Bag.from_sets(_per_row(_sets(draw, f, B))) for f in schema if f.kind != "item"}
    return minidin.Batch(batch.hist_goods, batch.hist_cates, batch.hist_offsets, batch.cand_goods,
                         batch.cand_cates, batch.labels, batch.users, items, samples)


def _per_row(entries):
    return [e if isinstance(e, list) else [e] for e in entries]
