"""Metrics against brute-force references."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidin import metrics


def brute_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    total = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return total / (len(pos) * len(neg))


def brute_gauc(y, s, u):
    num = den = 0.0
    for user in np.unique(u):
        m = u == user
        if 0 < y[m].sum() < m.sum():
            num += m.sum() * brute_auc(y[m], s[m])
            den += m.sum()
    return num / den


@settings(max_examples=60)
@given(data=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4)), min_size=2, max_size=40))
def test_auc_matches_pairwise_brute_force_with_ties(data):
    y = np.array([d[0] for d in data], float)
    s = np.array([d[1] for d in data], float) / 4  # few distinct scores: many ties
    if 0 < y.sum() < len(y):
        assert metrics.auc(y, s) == pytest.approx(brute_auc(y, s), abs=1e-12)
    else:
        with pytest.raises(ValueError, match="positive and one negative"):
            metrics.auc(y, s)


@settings(max_examples=60)
@given(data=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3), st.integers(0, 4)), min_size=2, max_size=50))
def test_gauc_matches_per_user_brute_force(data):
    y = np.array([d[0] for d in data], float)
    s = np.array([d[1] for d in data], float)
    u = np.array([d[2] for d in data]) * 7 + 100  # arbitrary, non-contiguous user ids
    has_both = any(0 < y[u == x].sum() < (u == x).sum() for x in np.unique(u))
    if has_both:
        assert metrics.gauc(y, s, u) == pytest.approx(brute_gauc(y, s, u), abs=1e-12)
    else:
        with pytest.raises(ValueError, match="GAUC"):
            metrics.gauc(y, s, u)


def test_gauc_weights_by_impressions_and_skips_single_class_users():
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    s = np.array([0.9, 0.1, 0.5, 0.2, 0.3, 0.8, 0.4, 0.6])
    u = np.array([1, 1, 1, 1, 2, 2, 3, 3])  # user 2 has only positives: skipped
    # user 1: AUC 1.0 over 4 impressions; user 3: AUC 0.0 over 2
    assert metrics.gauc(y, s, u) == pytest.approx((4 * 1.0 + 2 * 0.0) / 6)


def test_rela_impr_and_logloss():
    assert metrics.rela_impr(0.7348, 0.7300) == pytest.approx(((0.2348 / 0.2300) - 1) * 100)
    assert metrics.rela_impr(0.7337, 0.7300) == pytest.approx(1.61, abs=0.01)  # paper Table 3
    with pytest.raises(ValueError):
        metrics.rela_impr(0.6, 0.5)
    y = np.array([1, 0, 1.0])
    p = np.array([0.8, 0.3, 0.6])
    assert metrics.logloss(y, p) == pytest.approx(-np.mean(np.log([0.8, 0.7, 0.6])))
    assert np.isfinite(metrics.logloss([1, 0], [0.0, 1.0]))


def test_metric_input_errors():
    with pytest.raises(ValueError, match="labels"):
        metrics.auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="length"):
        metrics.auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        metrics.auc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="users"):
        metrics.gauc([0, 1], [0.1, 0.2], [1])
    with pytest.raises(ValueError, match="probs"):
        metrics.logloss([0, 1], [0.1, 1.2])


# ---------------------------------------------------------------- ranking
def _brute_rank(pos, negs):
    """1 + how many candidates score at least as high as the positive: ties count against it."""
    return 1 + sum(1 for x in negs if x >= pos)


@settings(max_examples=60)
@given(rows=st.lists(st.tuples(st.integers(0, 4), st.lists(st.integers(0, 4), max_size=12)), min_size=1, max_size=8))
def test_ranks_and_metrics_match_brute_force(rows):
    """Integer scores in 0..4 force ties; ragged candidate lists (empty included) through the CSR form."""
    from minidin.metrics import positive_ranks, ranking_metrics

    pos = np.array([p for p, _ in rows], float)
    flat = np.array([x for _, n in rows for x in n], float)
    off = np.r_[0, np.cumsum([len(n) for _, n in rows])]
    want = [_brute_rank(p, n) for p, n in rows]
    assert positive_ranks(pos, flat, off).tolist() == want
    m = ranking_metrics(want)
    for k in (1, 5, 10):
        assert m[f"hr@{k}"] == pytest.approx(np.mean([r <= k for r in want]))
    for k in (5, 10):
        assert m[f"ndcg@{k}"] == pytest.approx(np.mean([1 / np.log2(r + 1) if r <= k else 0 for r in want]))
    assert m["mrr"] == pytest.approx(np.mean([1 / r for r in want])) and m["users"] == len(rows)
    if all(len(n) == len(rows[0][1]) for _, n in rows):  # the matrix form agrees
        assert positive_ranks(pos, flat.reshape(len(rows), -1)).tolist() == want


def test_a_tie_counts_against_the_positive():
    from minidin.metrics import positive_ranks, ranking_metrics

    assert positive_ranks([0.5], [[0.5, 0.5, 0.1]]).tolist() == [3]  # not 1, not the average 2
    m = ranking_metrics([1, 2])
    assert m["hr@1"] == 0.5 and m["ndcg@5"] == pytest.approx((1 + 1 / np.log2(3)) / 2) and m["mrr"] == 0.75
    assert set(m) == {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr", "users"}
    with pytest.raises(ValueError, match="NaN"):
        positive_ranks([np.nan], [[0.1]])
    with pytest.raises(ValueError, match="no user"):
        ranking_metrics([])
