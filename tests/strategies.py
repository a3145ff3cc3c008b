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
