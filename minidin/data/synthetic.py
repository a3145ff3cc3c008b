"""Synthetic DIN-shaped data from a known click model: the embedded default dataset.

The world:
- ``n_cates`` categories of ``goods_per_cate`` goods each (ids shuffled, so a
  goods id says nothing about its category).
- Each user has ``n_interests`` distinct interest categories (Dirichlet
  weights) and, in each, ``favourites`` favourite goods. Their time-ordered
  history draws each behaviour from an interest (probability 1 − ``noise``;
  a favourite with probability ``favourite_prob``, else any good of the
  category) or from a random category.
- A sample shows the user a candidate good at some point ``end`` of their
  history: from one of their interests with probability
  ``cand_interest_prob`` (a favourite with probability
  ``cand_favourite_prob``), else from a random category.

The click model: only the part of the history relevant to the candidate matters.
With r the number of behaviours in the candidate's category and g the number
that are the candidate good itself,

    P(click) = σ( bias + cate_strength · tanh(r / saturation)
                       + goods_strength · tanh(g / saturation) + item_bias[candidate] ).

The user returns to goods they keep coming back to, and to their interests.
Sum pooling adds every behaviour into one vector: finding out how often *this
good* occurs in it means telling ``n_goods`` goods apart inside a D-dimensional
sum, far more goods than dimensions, so the interference of the other
behaviours swamps it. Attention looks at each behaviour next to the candidate
(its inputs include q − k, exactly 0 for the same good) and can keep the
relevant ones.

Every sample's true probability is kept (``Split.probs``), so training reports
the oracle AUC/GAUC (each sample scored by its true probability) as the
ceiling; ``SyntheticTruth.relevance`` gives the true relevance of every
behaviour to its candidate (2: the same good, 1: the same category, 0: other)
for checking attention.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .dataset import Dataset, Split


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 2500  # users (each contributes train/valid/test samples)
    n_cates: int = 50  # categories
    goods_per_cate: int = 10  # goods per category: n_goods = n_cates * goods_per_cate
    n_interests: int = 3  # interest categories per user
    favourites: int = 3  # favourite goods per user and interest
    min_len: int = 4  # shortest user sequence
    max_len: int = 30  # longest user sequence
    noise: float = 0.2  # probability that a behaviour falls outside the user's interests
    favourite_prob: float = 0.6  # probability that an interest behaviour is a favourite good
    cand_interest_prob: float = 0.7  # probability that a candidate comes from the user's interests
    cand_favourite_prob: float = 0.4  # ... and then that it is one of their favourites
    train_per_user: int = 20  # samples per user in each split
    valid_per_user: int = 6
    test_per_user: int = 6
    bias: float = -2.5  # click model: logit offset
    cate_strength: float = 1.5  # click model: weight of behaviours in the candidate's category
    goods_strength: float = 6.0  # click model: weight of behaviours on the candidate good itself
    saturation: float = 1.0  # click model: count at which tanh reaches 0.76
    item_bias_std: float = 0.1  # click model: spread of per-good appeal
    seed: int = 0  # the data's seed (independent of model and shuffling seeds)

    def validate(self):
        for f in ("n_users", "n_cates", "goods_per_cate", "n_interests", "favourites", "min_len"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f}: must be at least 1, got {getattr(self, f)}")
        if self.n_interests > self.n_cates:
            raise ValueError(f"n_interests: {self.n_interests} exceeds n_cates {self.n_cates}")
        if self.favourites > self.goods_per_cate:
            raise ValueError(f"favourites: {self.favourites} exceeds goods_per_cate {self.goods_per_cate}")
        if self.max_len < self.min_len:
            raise ValueError(f"max_len: {self.max_len} is below min_len {self.min_len}")
        for f in ("noise", "favourite_prob", "cand_interest_prob", "cand_favourite_prob"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise ValueError(f"{f}: must be a probability, got {getattr(self, f)}")
        for f in ("train_per_user", "valid_per_user", "test_per_user"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f}: must be non-negative")


class SyntheticTruth:
    """The generator's ground truth, kept out of the stored samples (nothing per behaviour is stored)."""

    def __init__(self, config: SyntheticConfig, good_cate, item_bias):
        self.config, self.good_cate, self.item_bias = config, good_cate, item_bias

    def relevance(self, batch) -> np.ndarray:
        """(N,) true relevance of every behaviour to its candidate: 2 same good, 1 same category, 0 other."""
        seg = np.repeat(np.arange(batch.size), batch.lengths)
        same_cate = batch.hist_cates == batch.cand_cates[seg]
        same_good = batch.hist_goods == batch.cand_goods[seg]
        return same_cate.astype(np.float64) + same_good

    def click_prob(self, r, g, cand_goods) -> np.ndarray:
        """True P(click) from r (behaviours in the candidate's category) and g (on the candidate good)."""
        c = self.config
        z = (c.bias + c.cate_strength * np.tanh(np.asarray(r, np.float64) / c.saturation)
             + c.goods_strength * np.tanh(np.asarray(g, np.float64) / c.saturation) + self.item_bias[cand_goods])
        return 1.0 / (1.0 + np.exp(-z))


def _pick_interest(rng, cum_weights, rows):
    """Index of the interest drawn for each row, by inverse CDF over the row's cumulative weights."""
    r = rng.random(rows.shape[0])
    k = (r[:, None] > cum_weights[rows]).sum(axis=1)
    return np.minimum(k, cum_weights.shape[1] - 1)


def make_synthetic(config: SyntheticConfig | None = None, max_history=None, **overrides) -> Dataset:
    """Generate the dataset (deterministic in ``config.seed``)."""
    config = config or SyntheticConfig()
    if overrides:
        config = SyntheticConfig(**{**asdict(config), **overrides})
    config.validate()
    c = config
    rng = np.random.default_rng(c.seed)
    C, G, U, K, F = c.n_cates, c.goods_per_cate, c.n_users, c.n_interests, c.favourites
    n_goods = C * G
    goods_of = rng.permutation(n_goods).reshape(C, G)  # goods_of[category] -> its goods ids (shuffled)
    good_cate = np.empty(n_goods, np.int64)
    good_cate[goods_of] = np.arange(C)[:, None]
    item_bias = rng.normal(0.0, c.item_bias_std, n_goods)
    interests = np.argsort(rng.random((U, C)), axis=1)[:, :K]  # K distinct categories per user
    favs = np.argsort(rng.random((U, K, G)), axis=2)[:, :, :F]  # F favourite goods (positions) per interest
    cum_w = np.cumsum(rng.dirichlet(np.ones(K), size=U), axis=1)

    def draw(rows, p_interest, p_favourite):
        n = rows.shape[0]
        k = _pick_interest(rng, cum_w, rows)
        cates = interests[rows, k]
        pos = rng.integers(0, G, n)
        fav = rng.random(n) < p_favourite
        pos[fav] = favs[rows[fav], k[fav], rng.integers(0, F, int(fav.sum()))]
        off = rng.random(n) >= p_interest
        cates[off] = rng.integers(0, C, int(off.sum()))
        return goods_of[cates, pos]

    lengths = rng.integers(c.min_len, c.max_len + 1, U)
    offsets = np.zeros(U + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    owner = np.repeat(np.arange(U), lengths)
    seq_goods = draw(owner, 1.0 - c.noise, c.favourite_prob)
    seq_cates = good_cate[seq_goods]

    per_user = c.train_per_user + c.valid_per_user + c.test_per_user
    users = np.repeat(np.arange(U), per_user)
    low = np.minimum(3, lengths[users])
    ends = rng.integers(low, lengths[users] + 1)
    cand_goods = draw(users, c.cand_interest_prob, c.cand_favourite_prob)
    cand_cates = good_cate[cand_goods]
    # r: behaviours in the candidate's category; g: behaviours on the candidate good
    r = np.zeros(users.shape[0], dtype=np.int64)
    g = np.zeros(users.shape[0], dtype=np.int64)
    L = seq_goods.shape[0]
    for s0 in range(0, users.shape[0], 20000):  # chunked (chunk, max_len) boolean matrices
        sl = slice(s0, s0 + 20000)
        pos = np.minimum(offsets[users[sl], None] + np.arange(c.max_len)[None, :], L - 1)
        inside = np.arange(c.max_len)[None, :] < ends[sl, None]
        r[sl] = (inside & (seq_cates[pos] == cand_cates[sl, None])).sum(axis=1)
        g[sl] = (inside & (seq_goods[pos] == cand_goods[sl, None])).sum(axis=1)
    truth = SyntheticTruth(c, good_cate, item_bias)
    probs = truth.click_prob(r, g, cand_goods)
    labels = (rng.random(users.shape[0]) < probs).astype(np.float64)
    which = np.tile(np.repeat([0, 1, 2], [c.train_per_user, c.valid_per_user, c.test_per_user]), U)
    splits = {}
    for i, name in enumerate(("train", "valid", "test")):
        m = which == i
        splits[name] = Split(users[m], ends[m], cand_goods[m], cand_cates[m], labels[m], probs[m])
    desc = {"kind": "synthetic", "options": asdict(c)}
    return Dataset(seq_goods.astype(np.int64), seq_cates.astype(np.int64), offsets, n_goods, C, splits,
                   max_history, desc, truth)
