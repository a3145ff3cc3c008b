"""Ranking evaluation and recommendation: each held-out positive against many candidates, top-K lists.

A **query** is a positive sample of a split (for the Amazon protocol: each user's
held-out next item; for logs with several positives per user, each one): its
history, user and context, and its positive item, ranked among negatives:

- ``negatives="N"``: N items drawn uniformly (seeded) from the items the user
  never interacted with (the S3-Rec protocol: 99);
- ``"pop"`` / ``"pop:N"``: N (default 99) drawn with probability proportional to
  an item's number of positive training samples, again excluding the user's items;
- ``"all"``: every item of the catalogue the user never interacted with (full
  ranking);
- ``candidates_file``: the negatives given per user, one line ``user neg1 neg2 ...``
  with ids as in the source files (the S3-Rec code's ``*_sample.txt``), so that
  results are on exactly the candidates of a published table.

"Interacted with" is the user's whole sequence and every positive sample of the
user in any split. Scores come from ``model.score`` (the history computed once
for all its candidates); ranks and metrics from ``minidin.metrics``, where a tie
counts against the positive.
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import metrics
from .batch import Bag, Candidates
from .layers.bag import gather_sets

DEFAULT_NEGATIVES = 99


def _interacted_keys(dataset):
    """Sorted int64 keys user · n_goods + goods of every (user, goods) pair the user interacted with."""
    I = dataset.n_goods
    off = dataset.seq_offsets
    users = np.repeat(np.arange(dataset.n_users, dtype=np.int64), np.diff(off))
    keys = [users * I + dataset.seq_goods]
    for s in dataset.splits.values():
        pos = s.labels == 1
        keys.append(s.users[pos] * I + s.cand_goods[pos])
    return np.unique(np.concatenate(keys))


def popularity(dataset) -> np.ndarray:
    """(n_goods,) how many positive training samples each goods id is the candidate of (the popularity
    baseline's score and the 'pop' sampler's weight; validation and test never count)."""
    s = dataset.splits["train"]
    return np.bincount(s.cand_goods[s.labels == 1], minlength=dataset.n_goods).astype(np.float64)


def resample_train_negatives(dataset, k, mode, rng):
    """A copy of ``dataset`` whose train split is its positives, each followed by ``k`` negatives drawn from the
    items its user never interacted with (uniformly, or ``mode="pop"`` by popularity), sharing the positive's
    history and context. The caller's dataset is not changed."""
    import dataclasses

    from .data.dataset import Split

    s = dataset.splits["train"]
    pos = np.flatnonzero(s.labels == 1)
    if pos.size == 0:
        raise ValueError("train_negatives: the train split has no positive sample")
    I = dataset.n_goods
    keys = _interacted_keys(dataset)
    users = np.repeat(s.users[pos], k)
    p = None
    if mode == "pop":
        p = popularity(dataset)
        p /= p.sum()
    neg = rng.choice(I, size=users.shape[0], p=p) if p is not None else rng.integers(0, I, users.shape[0])
    for _ in range(1000):
        bad = np.isin(users * I + neg, keys)
        if not bad.any():
            break
        neg[bad] = rng.choice(I, size=int(bad.sum()), p=p) if p is not None else rng.integers(0, I, int(bad.sum()))
    else:
        u = int(users[np.flatnonzero(bad)[0]])
        raise ValueError(f"train_negatives: no negative could be drawn for user {u} (they interacted with (almost) "
                         f"every item{' that has a popularity' if p is not None else ''})")
    rows = np.repeat(pos, k + 1)  # each positive, then its k negatives, share the sample's history and context
    cand = s.cand_goods[rows].copy()
    is_neg = np.ones(rows.shape[0], bool)
    is_neg[::k + 1] = False
    cand[is_neg] = neg
    labels = (~is_neg).astype(np.float64)
    cates = s.cand_cates[rows].copy()
    cates[is_neg] = item_categories(dataset)[neg]
    context = {f: Bag(*gather_sets(rows, *bag)) for f, bag in s.context.items()}
    train = Split(s.users[rows], s.ends[rows], cand, cates, labels, None, context)
    return dataclasses.replace(dataset, splits=dict(dataset.splits, train=train))


def parse_negatives(value) -> tuple:
    """``"99"`` -> ("uniform", 99); ``"pop"`` / ``"pop:50"`` -> ("pop", 99 / 50); ``"all"`` -> ("all", None)."""
    from .config import _negatives

    try:
        v = _negatives("--negatives", value)
    except ValueError:
        raise ValueError(f"--negatives: expected a count (99), pop, pop:N or all, got {value!r}") from None
    if v == "all":
        return "all", None
    if v == "pop":
        return "pop", DEFAULT_NEGATIVES
    if v.startswith("pop:") and v[4:].isdigit() and int(v[4:]) > 0:
        return "pop", int(v[4:])
    if v.isdigit() and int(v) > 0:
        return "uniform", int(v)
    raise ValueError(f"--negatives: expected a count (99), pop, pop:N or all, got {value!r}")


def item_categories(dataset) -> np.ndarray:
    """(n_goods,) int64 the category of every goods id, as the data show it (0 for a goods id never seen)."""
    cate = np.zeros(dataset.n_goods, np.int64)
    cate[dataset.seq_goods] = dataset.seq_cates
    for s in dataset.splits.values():
        cate[s.cand_goods] = s.cand_cates
    return cate


def interacted(dataset) -> list:
    """Per user, the set of goods ids they interacted with (sequence and every positive candidate)."""
    out = [set() for _ in range(dataset.n_users)]
    off = dataset.seq_offsets
    for u in range(dataset.n_users):
        out[u].update(dataset.seq_goods[off[u]:off[u + 1]].tolist())
    for s in dataset.splits.values():
        pos = s.labels == 1
        for u, g in zip(s.users[pos].tolist(), s.cand_goods[pos].tolist()):
            out[u].add(g)
    return out


def read_candidates_file(path, dataset) -> dict:
    """{user index: goods indices} from ``user neg1 neg2 ...`` lines, ids as in the source files (mapped with
    ``dataset.vocab``); ValueError names file:line for an unknown user or item, a repeated user, a bad line."""
    users, goods = dataset.vocab.get("users"), dataset.vocab.get("goods")
    if not users or not goods:
        raise ValueError("--candidates: this dataset keeps no original ids (prepare it again with this version)")
    uidx = {u: i for i, u in enumerate(users)}
    gidx = {g: i for i, g in enumerate(goods)}
    out, seen = {}, {}
    if not os.path.isfile(path):
        raise ValueError(f"--candidates: {path} is not a file")
    with open(path, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise ValueError(f"{path}:{ln}: expected 'user neg1 neg2 ...', got {line.strip()!r}")
            if parts[0] not in uidx:
                raise ValueError(f"{path}:{ln}: user {parts[0]!r} is not in the data")
            u = uidx[parts[0]]
            if u in seen:
                raise ValueError(f"{path}:{ln}: user {parts[0]!r} already has candidates (line {seen[u]})")
            seen[u] = ln
            row = []
            for g in parts[1:]:
                if g not in gidx:
                    raise ValueError(f"{path}:{ln}: item {g!r} is not in the data")
                row.append(gidx[g])
            out[u] = np.array(row, dtype=np.int64)
    if not out:
        raise ValueError(f"{path}: empty file (no candidates)")
    return out


def _unseen(own, n_goods) -> np.ndarray:
    """The goods ids (sorted) outside ``own``, the set a user interacted with."""
    mask = np.ones(n_goods, bool)
    mask[list(own)] = False
    return np.flatnonzero(mask)


def _candidates(dataset, rows, names, cate) -> Candidates:
    """Candidates from per-history arrays of goods ids, their categories and the item fields ``names`` gathered
    from the dataset's item tables."""
    goods = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    offsets = np.r_[0, np.cumsum([r.shape[0] for r in rows])].astype(np.int64)
    fields = {f: Bag(*gather_sets(goods, *dataset.item_attrs[f])) for f in names}
    return Candidates(goods, cate[goods], offsets, fields)


def _negatives(mode, n, users, positives, seen, dataset, rng, given):
    """Per query, its negatives (a list of arrays)."""
    I = dataset.n_goods
    if mode == "pop":
        p = popularity(dataset)
        p /= p.sum()
    out = []
    for u, pos in zip(users.tolist(), positives.tolist()):
        own = seen[u]
        if given is not None:
            if u not in given:
                raise ValueError(f"--candidates: user {dataset.vocab['users'][u]!r} has a query but no line")
            neg = given[u]
            if np.any(neg == pos):
                raise ValueError(f"--candidates: user {dataset.vocab['users'][u]!r}'s candidates hold their own "
                                 f"held-out item {dataset.vocab['goods'][pos]!r}")
            out.append(neg)
            continue
        if mode == "all":
            out.append(_unseen(own, I))
            continue
        if mode == "pop":  # without replacement among the items with a popularity the user never touched
            mask = p > 0
            mask[list(own)] = False
            pool = np.flatnonzero(mask)
            if pool.shape[0] < n:
                raise ValueError(f"--negatives: user {u} has only {pool.shape[0]} items with a training positive "
                                 f"that they never interacted with; {n} negatives cannot be drawn by popularity")
            out.append(rng.choice(pool, size=n, replace=False, p=p[pool] / p[pool].sum()).astype(np.int64))
            continue
        free = I - len(own)
        if free < n:
            raise ValueError(f"--negatives: user {u} interacted with all but {free} of the {I} items; {n} negatives "
                             f"cannot be drawn")
        picked, got = [], set()
        while len(picked) < n:  # uniform, without replacement, by rejection: ends, since free >= n
            for g in rng.integers(0, I, 2 * (n - len(picked))).tolist():
                if g not in own and g not in got:
                    got.add(g)
                    picked.append(g)
                    if len(picked) == n:
                        break
        out.append(np.array(picked, dtype=np.int64))
    return out


def evaluate_ranking(model, dataset, split, negatives="99", candidates_file=None, seed=0, histories_per_call=256,
                     max_history=None, max_queries=None) -> dict:
    """HR@{1,5,10}, NDCG@{5,10}, MRR and "users" of ranking each positive sample of ``split`` among its
    negatives (see the module docstring), plus "seconds"; the protocol in words under "protocol".
    ``max_queries``: rank only that many positives, drawn at random (seeded by ``seed``), e.g. to afford full
    ranking over a large catalogue."""
    s = dataset.splits[split]
    q = np.flatnonzero(s.labels == 1)
    if q.size == 0:
        raise ValueError(f"{split}: no positive sample to rank")
    sampled = max_queries is not None and q.size > max_queries
    if sampled:
        q = np.sort(np.random.default_rng([seed, 7]).choice(q, size=max_queries, replace=False))
    mode, n = parse_negatives(negatives) if candidates_file is None else ("file", None)
    given = read_candidates_file(candidates_file, dataset) if candidates_file is not None else None
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, {"train": 0, "valid": 1, "test": 2}.get(split, 3)])
    users, pos = s.users[q], s.cand_goods[q]
    negs = _negatives(mode, n, users, pos, interacted(dataset), dataset, rng, given)
    cate = item_categories(dataset)
    names = [f.name for f in model.cfg.fields]
    ranks = np.empty(q.size, dtype=np.int64)
    for lo in range(0, q.size, histories_per_call):
        hi = min(q.size, lo + histories_per_call)
        batch = dataset.batch(split, q[lo:hi], max_history, names)
        cands = _candidates(dataset, [np.r_[pos[i], negs[i]] for i in range(lo, hi)], batch.item_fields, cate)
        scores = model.score(batch, cands)
        offsets = cands.offsets
        first = offsets[:-1]
        neg_mask = np.ones(cands.size, bool)
        neg_mask[first] = False
        ranks[lo:hi] = metrics.positive_ranks(scores[first], scores[neg_mask], offsets - np.arange(hi - lo + 1))
    out = metrics.ranking_metrics(ranks)
    out["seconds"] = time.perf_counter() - t0
    out["protocol"] = ("candidates from " + os.path.basename(candidates_file) if mode == "file" else
                       "full ranking over every item the user never interacted with" if mode == "all" else
                       f"{n} negatives drawn {'uniformly' if mode == 'uniform' else 'by popularity'} from the items "
                       f"the user never interacted with (seed {seed})")
    if sampled:
        out["protocol"] += f", for {max_queries} positives drawn at random (seed {seed})"
    return out


def recommend(model, dataset, users, top_k, exclude_seen=True, histories_per_call=64, with_attention=False,
              max_history=None) -> list:
    """The top ``top_k`` goods of the whole catalogue for each user index in ``users``, after the user's whole
    sequence (the most recent ``max_history`` behaviours, default the dataset's window) and with the profile;
    context fields take the user's last test sample's. Returns per user a list of (goods index, score[,
    attention weights over the history]). ``exclude_seen`` leaves out the goods the user interacted with."""
    users = np.asarray(users, dtype=np.int64)
    if users.size and (users.min() < 0 or users.max() >= dataset.n_users):
        raise ValueError(f"users: indices must be in [0, {dataset.n_users})")
    seen = interacted(dataset) if exclude_seen else None
    cate = item_categories(dataset)
    names = [f.name for f in model.cfg.fields]
    window = dataset.window(max_history)
    test = dataset.splits["test"]
    last_test = np.full(dataset.n_users, -1, np.int64)  # each user's last test sample (its context), -1: none
    np.maximum.at(last_test, test.users, np.arange(len(test), dtype=np.int64))
    everything = np.arange(dataset.n_goods, dtype=np.int64)
    out = []
    for lo in range(0, users.size, histories_per_call):
        us = users[lo:lo + histories_per_call]
        ends = dataset.seq_offsets[us + 1] - dataset.seq_offsets[us]  # the whole sequence
        batch = _history_batch(dataset, us, ends, window, names, last_test[us])
        cands = _candidates(dataset, [_unseen(seen[u], dataset.n_goods) if exclude_seen else everything
                                      for u in us.tolist()], batch.item_fields, cate)
        scores = model.score(batch, cands)
        off = cands.offsets
        tops = [off[i] + np.argsort(-scores[off[i]:off[i + 1]], kind="stable")[:top_k] for i in range(us.size)]
        entries = [[(int(cands.goods[t]), float(scores[t])) for t in top] for top in tops]
        if with_attention and model.uses_attention and any(top.size for top in tops):
            best = _candidates(dataset, [cands.goods[top] for top in tops], batch.item_fields, cate)
            w = model.attention(best.expand(batch))  # each history against each of its top items
            T, pos = np.diff(batch.hist_offsets), 0
            for i, entry in enumerate(entries):
                for j, (g, sc) in enumerate(entry):
                    entry[j] = (g, sc, w[pos:pos + T[i]].tolist())
                    pos += T[i]
        out.extend(entries)
    return out


def _history_batch(dataset, users, ends, window, names, last_test):
    """A Batch of one sample per user: the last ``window`` behaviours before ``ends``, the user's profile and
    (context fields) the context of their last test sample (or value 0 where they have none)."""
    from .batch import Batch

    span = np.iinfo(np.int64).max // 4 if window is None else window
    starts = np.maximum(0, ends - span)
    lengths = ends - starts
    offsets = np.zeros(users.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    pos = np.repeat(dataset.seq_offsets[users] + starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    hist_goods = dataset.seq_goods[pos]
    items, samples = {}, {}
    zeros = np.zeros(users.size, np.int64)
    for f in dataset.fields:
        name = f["name"]
        if name not in names:
            continue
        if f["kind"] == "item":
            items[name] = (Bag(*gather_sets(hist_goods, *dataset.item_attrs[name])),
                           Bag(*gather_sets(zeros, *dataset.item_attrs[name])))
        elif f["kind"] == "user":
            samples[name] = Bag(*gather_sets(users, *dataset.user_attrs[name]))
        else:
            ctx = dataset.splits["test"].context[name]
            rows = np.where(last_test >= 0, last_test, 0)
            samples[name] = Bag(*gather_sets(rows, *ctx)) if len(dataset.splits["test"]) else Bag.one_hot(zeros)
    return Batch(hist_goods, dataset.seq_cates[pos], offsets, zeros, zeros, None, users, items, samples)
