"""Ranking: model.score on many candidates per history equals predict on the expanded pairs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidin
from minidin.batch import Candidates
from tests.helpers import tiny_model
from tests.strategies import full_schema

ACTS = ["dice", "prelu", "sigmoid"]
CONFIGS = [("din", a, sm) for a in ACTS for sm in (False, True)] + [("base", a, p) for a in ACTS for p in ("sum", "mean")]


def make(kind, act, opt, dtype=np.float64, fields=(), seed=0):
    kw = {"attention_softmax": opt} if kind == "din" else {"pooling": opt}
    m = tiny_model(kind, 12, 3, attention_units=(5, 3), hidden_units=(6, 4), activation=act, dtype=dtype,
                   goods_bias=True, fields=fields, seed=seed, **kw)
    rng = np.random.default_rng(seed + 1)
    for name, p in m.params.items():
        p[...] = rng.standard_normal(p.shape) * 0.4
    for name, v in m.state.items():  # Dice's running averages away from their start
        v[...] = np.abs(rng.standard_normal(v.shape)) + (0.5 if "var" in name else 0.0)
    return m


@st.composite
def histories_and_candidates(draw, max_b=4):
    B = draw(st.integers(1, max_b))
    lengths = draw(st.lists(st.integers(0, 6), min_size=B, max_size=B))
    N = sum(lengths)
    batch = minidin.Batch(draw(st.lists(st.integers(0, 11), min_size=N, max_size=N)),
                          draw(st.lists(st.integers(0, 2), min_size=N, max_size=N)), np.r_[0, np.cumsum(lengths)],
                          [0] * B, [0] * B)
    goods = [draw(st.lists(st.integers(0, 11), max_size=20)) for _ in range(B)]  # duplicates, none, one
    cates = [[g % 3 for g in row] for row in goods]
    return batch, Candidates.from_lists(goods, cates)


@pytest.mark.parametrize("kind,act,opt", CONFIGS)
@settings(max_examples=8, deadline=None)
@given(data=histories_and_candidates())
def test_score_equals_predict_on_expanded_pairs(kind, act, opt, data):
    batch, cands = data
    m = make(kind, act, opt)
    got = m.score(batch, cands)
    assert got.shape == (cands.size,)
    if cands.size:
        pairs = cands.expand(batch)
        np.testing.assert_allclose(got, m.predict(pairs, fused=False), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(m.score(batch, cands, probabilities=False), m.logits(pairs, fused=False),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind,act,opt", [("din", "dice", False), ("din", "prelu", True), ("base", "dice", "mean")])
def test_score_in_float32_and_on_large_calls(kind, act, opt):
    """float32 agrees to float32 rounding; 40 candidates per history cross the step of 16 candidates."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 30, 25)
    N = int(lengths.sum())
    batch = minidin.Batch(rng.integers(0, 12, N), rng.integers(0, 3, N), np.r_[0, np.cumsum(lengths)], [0] * 25,
                          [0] * 25)
    goods = [list(rng.integers(0, 12, 40)) for _ in range(25)]
    cands = Candidates.from_lists(goods, [[g % 3 for g in row] for row in goods])
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 2e-4)):
        m = make(kind, act, opt, dtype=dtype)
        got = m.score(batch, cands)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, m.predict(cands.expand(batch)), rtol=tol, atol=tol)


@pytest.mark.parametrize("kind,act,opt", [("din", "dice", False), ("din", "sigmoid", True), ("base", "prelu", "sum")])
def test_score_with_a_schema(kind, act, opt):
    """Item fields on the candidates, user and context fields per history."""
    schema = full_schema()
    m = make(kind, act, opt, fields=schema)
    rng = np.random.default_rng(4)
    lengths = [3, 0, 2]
    N, B = 5, 3

    def sets(f, rows):
        return [list(rng.integers(0, f.vocab, rng.integers(0, 3) if f.multi_hot else 1)) for _ in range(rows)]

    batch = minidin.Batch(rng.integers(0, 12, N), rng.integers(0, 3, N), np.r_[0, np.cumsum(lengths)], [0] * B,
                          [0] * B, item_fields={f.name: (sets(f, N), sets(f, B)) for f in schema if f.kind == "item"},
                          sample_fields={f.name: sets(f, B) for f in schema if f.kind != "item"})
    goods = [[1, 2, 2], [5], [0, 3, 7, 7]]
    K = 8
    flat = {f.name: sets(f, K) for f in schema if f.kind == "item"}
    cands = Candidates([g for row in goods for g in row], [g % 3 for row in goods for g in row], [0, 3, 4, 8], flat)
    np.testing.assert_allclose(m.score(batch, cands), m.predict(cands.expand(batch), fused=False), rtol=1e-10,
                               atol=1e-12)


def test_score_errors():
    m = make("din", "dice", False)
    batch = minidin.Batch.from_lists([[1, 2]], [[0, 1]], [0], [0])
    with pytest.raises(ValueError, match=r"candidates.goods: id 99 at position 1 is out of range"):
        m.score(batch, Candidates.from_lists([[1, 99]], [[0, 0]]))
    with pytest.raises(ValueError, match=r"candidates.offsets: 2 histories, but the batch has 1"):
        m.score(batch, Candidates.from_lists([[1], [2]], [[0], [0]]))
    with pytest.raises(ValueError, match=r"candidates.offsets: must start at 0"):
        Candidates([1, 2], [0, 0], [0, 3])
    with pytest.raises(TypeError, match="candidates: expected"):
        m.score(batch, [[1, 2]])
    with pytest.raises(ValueError, match=r"candidates.item_fields: the model's schema has no item field 'brand'"):
        m.score(batch, Candidates([1], [0], [0, 1], {"brand": [0]}))
    assert m.score(batch, Candidates.from_lists([[]], [[]])).shape == (0,)
