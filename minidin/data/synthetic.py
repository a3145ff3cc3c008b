"""Synthetic DIN-shaped data from a known click model: the embedded default dataset.

The world:
- ``n_cates`` categories come in groups of ``n_styles``: each group is a *topic*
  (say, shoes) and its categories are the topic's styles (running shoes, formal
  shoes). Category ids are shuffled, so an id says nothing about its topic.
  Each category has ``goods_per_cate`` goods.
- Each user has ``n_interests`` distinct interest topics (Dirichlet weights)
  and, **per interest**, a preferred style. Their time-ordered history draws each
  behaviour from an interest (probability 1 − ``noise``; in the preferred style
  with probability ``style_consistency``) or from a random topic and style.
- A sample shows the user a candidate good at some point ``end`` of their
  history: from one of their interest topics with probability
  ``cand_interest_prob``, else from a random topic; its style is random.

The click model: only the part of the history relevant to the candidate matters.
A behaviour is *relevant* when it belongs to the candidate's topic. Among the
relevant behaviours, m are in the candidate's own category (style) and x in
another style of the same topic:

    P(click) = σ( bias + strength · tanh((m − x) / saturation) + item_bias[candidate] ).

So the user clicks a candidate whose style matches what they chose *in that
topic*, and a user likes different styles in different interests. Sum pooling
adds every behaviour into one vector, mixing the style evidence of all topics;
reading the style of the candidate's topic out of that sum needs a separate
direction per (topic, style), more than the embedding has. Attention can keep
only the relevant behaviours (same topic) and read their style directly.

Every sample's true probability is kept (``Split.probs``), so training reports
the oracle AUC/GAUC (each sample scored by its true probability) as the
ceiling, and ``SyntheticTruth.relevance`` gives the true relevance of every
behaviour to its candidate (1 for the candidate's topic, else 0) for checking
attention.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .dataset import Dataset, Split


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 2500  # users (each contributes train/valid/test samples)
    n_cates: int = 200  # categories = topics x styles
    goods_per_cate: int = 10  # goods per category: n_goods = n_cates * goods_per_cate
    n_interests: int = 3  # interest topics per user
    min_len: int = 10  # shortest user sequence
    max_len: int = 50  # longest user sequence
    n_styles: int = 2  # categories (styles) per topic; n_cates must be a multiple
    style_consistency: float = 0.9  # probability that an interest behaviour has the user's style for it
    noise: float = 0.2  # probability that a behaviour falls outside the user's interests
    cand_interest_prob: float = 0.7  # probability that a candidate comes from the user's interests
    train_per_user: int = 12  # samples per user in each split
    valid_per_user: int = 4
    test_per_user: int = 4
    bias: float = 0.0  # click model: logit offset
    strength: float = 3.0  # click model: weight of the relevant history's style evidence
    saturation: float = 2.0  # click model: m − x at which tanh reaches 0.76
    item_bias_std: float = 0.1  # click model: spread of per-good appeal
    seed: int = 0  # the data's seed (independent of model and shuffling seeds)

    def validate(self):
        for f in ("n_users", "n_cates", "goods_per_cate", "n_interests", "min_len", "n_styles"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f}: must be at least 1, got {getattr(self, f)}")
        if self.n_cates % self.n_styles:
            raise ValueError(f"n_cates: {self.n_cates} is not a multiple of n_styles {self.n_styles}")
        if self.n_interests > self.n_cates // self.n_styles:
            raise ValueError(f"n_interests: {self.n_interests} exceeds the {self.n_cates // self.n_styles} topics")
        if self.max_len < self.min_len:
            raise ValueError(f"max_len: {self.max_len} is below min_len {self.min_len}")
        for f in ("noise", "cand_interest_prob", "style_consistency"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                raise ValueError(f"{f}: must be a probability, got {getattr(self, f)}")
        for f in ("train_per_user", "valid_per_user", "test_per_user"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f}: must be non-negative")


class SyntheticTruth:
    """The generator's ground truth, kept out of the stored samples (nothing per behaviour is stored)."""

    def __init__(self, config: SyntheticConfig, cate_topic, cate_style, item_bias):
        self.config, self.cate_topic, self.cate_style, self.item_bias = config, cate_topic, cate_style, item_bias

    def relevance(self, batch) -> np.ndarray:
        """(N,) true relevance of every behaviour to its sample's candidate: 1 (same topic) or 0."""
        seg = np.repeat(np.arange(batch.size), batch.lengths)
        return (self.cate_topic[batch.hist_cates] == self.cate_topic[batch.cand_cates[seg]]).astype(np.float64)

    def click_prob(self, m, x, cand_goods) -> np.ndarray:
        """True P(click) from m (same category) and x (same topic, other style) behaviours."""
        c = self.config
        evidence = (np.asarray(m, np.float64) - np.asarray(x, np.float64)) / c.saturation
        z = c.bias + c.strength * np.tanh(evidence) + self.item_bias[cand_goods]
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
    C, G, U, K, S = c.n_cates, c.goods_per_cate, c.n_users, c.n_interests, c.n_styles
    T = C // S  # topics
    n_goods = C * G
    # shuffled ids: neither a category id nor a goods id says anything about topic or style
    cate_of = rng.permutation(C).reshape(T, S)  # cate_of[topic, style] -> category id
    cate_topic = np.empty(C, np.int64)
    cate_style = np.empty(C, np.int64)
    cate_topic[cate_of] = np.arange(T)[:, None]
    cate_style[cate_of] = np.arange(S)[None, :]
    goods_of = rng.permutation(n_goods).reshape(C, G)  # goods_of[category] -> its goods ids
    good_cate = np.empty(n_goods, np.int64)
    good_cate[goods_of] = np.arange(C)[:, None]
    item_bias = rng.normal(0.0, c.item_bias_std, n_goods)
    interests = np.argsort(rng.random((U, T)), axis=1)[:, :K]  # K distinct topics per user
    style_pref = rng.integers(0, S, (U, K))  # the style each user likes in each interest
    cum_w = np.cumsum(rng.dirichlet(np.ones(K), size=U), axis=1)

    def draw(rows, p_interest, consistency):
        k = _pick_interest(rng, cum_w, rows)
        topics, styles = interests[rows, k], style_pref[rows, k]
        off_style = rng.random(rows.shape[0]) >= consistency
        styles[off_style] = rng.integers(0, S, int(off_style.sum()))
        off = rng.random(rows.shape[0]) >= p_interest
        topics[off] = rng.integers(0, T, int(off.sum()))
        styles[off] = rng.integers(0, S, int(off.sum()))
        return goods_of[cate_of[topics, styles], rng.integers(0, G, rows.shape[0])]

    lengths = rng.integers(c.min_len, c.max_len + 1, U)
    offsets = np.zeros(U + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    owner = np.repeat(np.arange(U), lengths)
    seq_goods = draw(owner, 1.0 - c.noise, c.style_consistency)
    seq_cates = good_cate[seq_goods]

    per_user = c.train_per_user + c.valid_per_user + c.test_per_user
    users = np.repeat(np.arange(U), per_user)
    low = np.minimum(3, lengths[users])
    ends = rng.integers(low, lengths[users] + 1)
    cand_goods = draw(users, c.cand_interest_prob, 0.0)  # candidate style: uniform
    cand_cates = good_cate[cand_goods]
    # m: behaviours in the candidate's category; x: same topic, another style
    m = np.zeros(users.shape[0], dtype=np.int64)
    x = np.zeros(users.shape[0], dtype=np.int64)
    L = seq_goods.shape[0]
    for s0 in range(0, users.shape[0], 20000):  # chunked (chunk, max_len) boolean matrices
        sl = slice(s0, s0 + 20000)
        pos = np.minimum(offsets[users[sl], None] + np.arange(c.max_len)[None, :], L - 1)
        inside = np.arange(c.max_len)[None, :] < ends[sl, None]
        hc = seq_cates[pos]
        rel = inside & (cate_topic[hc] == cate_topic[cand_cates[sl], None])
        same = hc == cand_cates[sl, None]
        m[sl] = (rel & same).sum(axis=1)
        x[sl] = (rel & ~same).sum(axis=1)
    truth = SyntheticTruth(c, cate_topic, cate_style, item_bias)
    probs = truth.click_prob(m, x, cand_goods)
    labels = (rng.random(users.shape[0]) < probs).astype(np.float64)
    which = np.tile(np.repeat([0, 1, 2], [c.train_per_user, c.valid_per_user, c.test_per_user]), U)
    splits = {}
    for i, name in enumerate(("train", "valid", "test")):
        m = which == i
        splits[name] = Split(users[m], ends[m], cand_goods[m], cand_cates[m], labels[m], probs[m])
    desc = {"kind": "synthetic", "options": asdict(c)}
    return Dataset(seq_goods.astype(np.int64), seq_cates.astype(np.int64), offsets, n_goods, C, splits,
                   max_history, desc, truth)
