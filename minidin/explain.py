"""What did the attention unit learn? Per-sample weights, attention recovery, and an embedding map.

- ``sample_table``: one test sample's history in time order, each behaviour with
  its goods and category ids and its attention weight (paper Fig. 5), plus its
  true relevance on synthetic data.
- ``attention_recovery``: over the whole test set, the Spearman correlation
  between learned weights and the generator's true relevance, averaged over
  samples with at least 2 behaviours and non-constant truth, next to the same
  average for seeded random weights (the chance baseline).
- ``embedding_map``: goods embeddings projected to 2-D by PCA (numpy SVD), each
  good coloured by the model's predicted CTR when it is the candidate for one
  sample's history (in the spirit of the paper's Fig. 6, which uses t-SNE).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr



def _need_din(model):
    if not getattr(model, "uses_attention", False):
        raise ValueError("checkpoint: explain needs a DIN checkpoint (a BaseModel has no attention weights)")


def test_sample_index(dataset, sample=None, user=None):
    """Index into the test split: the K-th sample, or the first test sample of user U."""
    s = dataset.splits["test"]
    if user is not None:
        hits = np.flatnonzero(s.users == user)
        if hits.size == 0:
            raise ValueError(f"user: {user} has no test sample")
        return int(hits[0])
    if not 0 <= sample < len(s):
        raise ValueError(f"sample: must be in [0, {len(s)}), got {sample}")
    return int(sample)


def _names(dataset, key):
    """id -> original id string where the dataset keeps them (``Dataset.vocab``: prepared from CSV), else None."""
    names = dataset.vocab.get(key)
    return (lambda i: names[i]) if names else None


def sample_table(model, dataset, k):
    """Dict describing test sample k: history rows (time order) with weights, candidate, prediction; with
    the original id strings (``*_id`` keys) where the dataset keeps them."""
    _need_din(model)
    batch = dataset.batch("test", [k], fields=[f.name for f in model.cfg.fields])
    w = model.attention(batch)
    rel = dataset.truth.relevance(batch) if dataset.truth is not None else None
    s = dataset.splits["test"]
    goods, cates, users = _names(dataset, "goods"), _names(dataset, "cates"), _names(dataset, "users")
    rows = [{"position": j, "goods": int(g), "cate": int(c), "weight": float(w[j]),
             **({"goods_id": goods(g), "cate_id": cates(c)} if goods else {}),
             **({"true_relevance": float(rel[j])} if rel is not None else {})}
            for j, (g, c) in enumerate(zip(batch.hist_goods, batch.hist_cates))]
    info = {"sample": k, "user": int(s.users[k]), "candidate_goods": int(s.cand_goods[k]),
            "candidate_cate": int(s.cand_cates[k]), "label": int(s.labels[k]),
            "predicted": float(model.predict(batch)[0]),
            "true_prob": None if s.probs is None else float(s.probs[k]), "history": rows}
    if goods:
        info.update(user_id=users(s.users[k]), candidate_goods_id=goods(s.cand_goods[k]),
                    candidate_cate_id=cates(s.cand_cates[k]))
    return info


def format_sample(info):
    named = "candidate_goods_id" in info
    user = f"{info['user']}" + (f" {info['user_id']!r}" if named else "")
    cand = f"{info['candidate_goods']}" + (f" {info['candidate_goods_id']!r}" if named else "")
    cate = f"{info['candidate_cate']}" + (f" {info['candidate_cate_id']!r}" if named else "")
    lines = [f"test sample {info['sample']} (user {user}): candidate goods {cand} (category {cate}), label "
             f"{info['label']}, predicted CTR {info['predicted']:.3f}"
             + (f", true CTR {info['true_prob']:.3f}" if info["true_prob"] is not None else "")]
    has_truth = info["history"] and "true_relevance" in info["history"][0]
    lines.append(f"{'pos':>4} {'goods':>7} {'cate':>5} {'weight':>8}" + ("  true relevance" if has_truth else "")
                 + ("  original ids (goods, category)" if named else ""))
    top = max((abs(r["weight"]) for r in info["history"]), default=1.0) or 1.0
    for r in info["history"]:
        bar = "#" * int(round(20 * abs(r["weight"]) / top))
        same = "*" if r["cate"] == info["candidate_cate"] else " "
        lines.append(f"{r['position']:>4} {r['goods']:>7} {r['cate']:>5}{same}{r['weight']:>8.3f}"
                     + (f"  {r['true_relevance']:>14.0f}" if has_truth else "") + f"  {bar:<20}"
                     + (f"  {r['goods_id']}, {r['cate_id']}" if named else ""))
    if not info["history"]:
        lines.append("   (empty history)")
    lines.append("(* = same category as the candidate; oldest behaviour first)")
    return "\n".join(lines)


def attention_recovery(model, dataset, batch_size=1024, seed=0):
    """Mean Spearman correlation of learned weights with the true relevance, and a random baseline."""
    _need_din(model)
    if dataset.truth is None:
        raise ValueError("data: attention recovery needs synthetic data (the true relevance is unknown)")
    rng = np.random.default_rng(seed)
    learned, chance, used = [], [], 0
    for _, batch in dataset.batches("test", batch_size, fields=[f.name for f in model.cfg.fields]):
        w = model.attention(batch)
        rel = dataset.truth.relevance(batch)
        rand = rng.random(w.shape[0])
        off = batch.hist_offsets
        for b in range(batch.size):
            lo, hi = off[b], off[b + 1]
            if hi - lo < 2 or np.all(rel[lo:hi] == rel[lo]):
                continue
            used += 1
            learned.append(_spearman(w[lo:hi], rel[lo:hi]))
            chance.append(_spearman(rand[lo:hi], rel[lo:hi]))
    if not used:
        raise ValueError("data: no test sample has 2+ behaviours with non-constant true relevance")
    return {"spearman": float(np.mean(learned)), "random_baseline": float(np.mean(chance)), "samples": used,
            "test_samples": len(dataset.splits["test"])}


def _spearman(a, b):
    if np.all(a == a[0]):
        return 0.0  # constant weights carry no ranking: correlation 0 by convention
    return float(spearmanr(a, b).statistic)


def embedding_map(model, dataset, k, path):
    """PNG: PCA of goods embeddings, coloured by predicted CTR as candidates for test sample k's history."""
    from .plots import plot_embedding_map

    s = dataset.splits["test"]
    E = model.params["goods_emb"].astype(np.float64)
    centred = E - E.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    # every good as the candidate after this history (with its own category)
    if dataset.truth is not None and hasattr(dataset.truth, "good_cate"):
        good_cate = dataset.truth.good_cate
    else:
        good_cate = _good_categories(dataset)
    G = E.shape[0]
    batch = dataset.candidates("test", k, np.arange(G), good_cate, fields=[f.name for f in model.cfg.fields])
    ctr = model.predict(batch).astype(np.float64)
    explained = (sv[:2] ** 2).sum() / max((sv ** 2).sum(), 1e-300)
    plot_embedding_map(xy, ctr, good_cate, set(batch.hist_cates.tolist()), int(s.cand_cates[k]), path,
                       title=f"goods embeddings (PCA, {100 * explained:.0f}% of variance); colour: predicted CTR "
                             f"after test sample {k}'s history")
    return {"goods": G, "explained_variance": float(explained)}


def _good_categories(dataset):
    """Each good's category as seen in the data (goods never seen get category 0)."""
    cate = np.zeros(dataset.n_goods, np.int64)
    cate[dataset.seq_goods] = dataset.seq_cates
    for s in dataset.splits.values():
        cate[s.cand_goods] = s.cand_cates
    return cate
