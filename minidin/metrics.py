"""Evaluation metrics: AUC, the paper's GAUC, RelaImpr and log loss.

- ``auc``: the Mann–Whitney statistic from scipy's average ranks, so tied scores
  count ½ (a positive and a negative with equal scores are half a correct pair).
- ``gauc`` (paper §6.3): Σ_u #impressions_u · AUC_u / Σ_u #impressions_u over the
  users whose samples contain both classes; users with one class only are
  skipped (their AUC is undefined), and their impressions do not count. The
  official code weights users equally and counts ties as losses; this is the
  paper's definition.
- ``rela_impr`` (paper §6.3): ((metric_model − 0.5) / (metric_base − 0.5) − 1) × 100 %.
- Ranking (``positive_ranks``, ``ranking_metrics``): each user's held-out positive is
  ranked among its candidates; rank = 1 + the number of candidates scoring **at
  least** as high, so a tie counts against the positive (a model that scores
  everything equal gets the worst rank, not a lucky one). HR@K = share of users
  with rank ≤ K; NDCG@K = mean of 1/log2(rank + 1) over users with rank ≤ K (one
  relevant item: the ideal DCG is 1); MRR = mean of 1/rank.
"""
from __future__ import annotations

import numpy as np


def _check(labels, scores, name="scores"):
    labels = np.asarray(labels, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{name}: length {scores.shape[0]} disagrees with labels length {labels.shape[0]}")
    if np.any((labels != 0) & (labels != 1)):
        raise ValueError("labels: must be 0 or 1")
    if np.any(np.isnan(scores)):
        raise ValueError(f"{name}: contains NaN")
    return labels, scores


def auc(labels, scores) -> float:
    """Area under the ROC curve; ties count ½. Raises ValueError unless both classes are present."""
    labels, scores = _check(labels, scores)
    n1 = labels.sum()
    n0 = labels.shape[0] - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("labels: AUC needs at least one positive and one negative")
    ranks = _rankdata(scores)  # average ranks: ties share
    return float((ranks[labels == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def gauc(labels, scores, users) -> float:
    """Impression-weighted per-user AUC (paper §6.3); single-class users are skipped."""
    labels, scores = _check(labels, scores)
    users = np.asarray(users).ravel()
    if users.shape != labels.shape:
        raise ValueError(f"users: length {users.shape[0]} disagrees with labels length {labels.shape[0]}")
    uid, group = np.unique(users, return_inverse=True)
    G = uid.shape[0]
    # ranks within each user: rank a key that orders by (user, score), then subtract the group's start
    dense = _rankdata(scores, method="dense")
    key = group.astype(np.float64) * (dense.max() + 1) + dense
    ranks = _rankdata(key)  # average ranks over ties, which only occur within a user
    size = np.bincount(group, minlength=G).astype(np.float64)
    start = np.concatenate([[0.0], np.cumsum(size)[:-1]])
    ranks -= start[group]
    n1 = np.bincount(group, weights=labels, minlength=G)
    n0 = size - n1
    r1 = np.bincount(group, weights=ranks * labels, minlength=G)
    ok = (n1 > 0) & (n0 > 0)
    if not np.any(ok):
        raise ValueError("labels: GAUC needs at least one user with both a positive and a negative")
    per_user = (r1[ok] - n1[ok] * (n1[ok] + 1) / 2) / (n1[ok] * n0[ok])
    return float(np.sum(size[ok] * per_user) / np.sum(size[ok]))


def rela_impr(metric_model: float, metric_base: float) -> float:
    """RelaImpr in percent (paper §6.3): ((model − 0.5) / (base − 0.5) − 1) × 100."""
    if metric_base == 0.5:
        raise ValueError("metric_base: RelaImpr is undefined for a base metric of 0.5")
    return float(((metric_model - 0.5) / (metric_base - 0.5) - 1.0) * 100.0)


def logloss(labels, probs, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood; probabilities are kept inside [eps, 1 − eps] so a 0 or 1 is finite."""
    labels, probs = _check(labels, probs, "probs")
    if np.any((probs < 0) | (probs > 1)):
        raise ValueError("probs: must lie in [0, 1]")
    p = np.clip(probs, eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def positive_ranks(pos_scores, neg_scores, offsets=None) -> np.ndarray:
    """(U,) int64 rank of each user's positive among its candidates (1 = first); a tie counts against it.

    pos_scores: (U,) the positive's score per user
    neg_scores: (U, n) a matrix, or with ``offsets`` (U+1,) a flat array of each user's candidates (CSR)
    """
    pos = np.asarray(pos_scores, dtype=np.float64).ravel()
    neg = np.asarray(neg_scores, dtype=np.float64)
    if offsets is None:
        if neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
            raise ValueError(f"neg_scores: expected ({pos.shape[0]}, n), got shape {neg.shape}")
        if np.any(np.isnan(pos)) or np.any(np.isnan(neg)):
            raise ValueError("scores: contain NaN")
        return 1 + np.sum(neg >= pos[:, None], axis=1).astype(np.int64)
    off = np.asarray(offsets, dtype=np.int64).ravel()
    neg = neg.ravel()
    if off.shape[0] != pos.shape[0] + 1 or off[0] != 0 or off[-1] != neg.shape[0] or np.any(np.diff(off) < 0):
        raise ValueError("offsets: must have one entry per user + 1, start at 0, be monotone and end at len(neg_scores)")
    if np.any(np.isnan(pos)) or np.any(np.isnan(neg)):
        raise ValueError("scores: contain NaN")
    ahead = (neg >= np.repeat(pos, np.diff(off))).astype(np.int64)
    return 1 + np.add.reduceat(np.r_[ahead, 0], off[:-1]) * (np.diff(off) > 0)


def ranking_metrics(ranks, hr_ks=(1, 5, 10), ndcg_ks=(5, 10)) -> dict:
    """{"hr@K" for K in hr_ks, "ndcg@K" for K in ndcg_ks, "mrr", "users"} from positive ranks
    (``positive_ranks``)."""
    r = np.asarray(ranks, dtype=np.float64).ravel()
    if r.size == 0:
        raise ValueError("ranks: no user to rank")
    if np.any(r < 1) or np.any(r != np.floor(r)):
        raise ValueError("ranks: must be whole numbers >= 1")
    out = {f"hr@{k}": float((r <= k).mean()) for k in hr_ks}
    for k in ndcg_ks:
        out[f"ndcg@{k}"] = float(np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0).mean())
    out["mrr"] = float((1.0 / r).mean())
    out["users"] = int(r.size)
    return out


def _rankdata(*args, **kwargs):
    from scipy.stats import rankdata  # imported on first use: scipy.stats takes most of a second to import

    return rankdata(*args, **kwargs)
