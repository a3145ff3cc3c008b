"""How strong MBA is per id: the fraction b_j / n_j of the full L2 term λ·w_j that one epoch applies to row j.

    python bench/mba_strength.py [--data DIR | synthetic] [--batch-size 32] [--seed 0]

MBA adds λ·w_j/n_j to row j's gradient in every batch that contains j, so one epoch adds λ·w_j·b_j/n_j, where
n_j counts the training samples that contain j and b_j the batches that do (b_j ≤ min(n_j, batches)). Prints,
for goods ids grouped by n_j, the median and range of b_j / n_j over one shuffled epoch (docs/optimizer.md).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minidin.data import Dataset, make_synthetic  # noqa: E402


def strength(data, batch_size, seed):
    n = data.feature_counts("train")["goods_emb"]
    b = np.zeros_like(n)
    rng = np.random.default_rng(seed)
    for _, batch in data.batches("train", batch_size, shuffle=True, rng=rng):
        b[np.unique(np.concatenate([batch.hist_goods, batch.cand_goods]))] += 1  # present in this batch
    return n, b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = make_synthetic() if args.data == "synthetic" else Dataset.load(args.data)
    n, b = strength(data, args.batch_size, args.seed)
    S = len(data.splits["train"])
    batches = -(-S // args.batch_size)
    print(f"{args.data}: {S} training samples, {batches} batches of {args.batch_size}, "
          f"{int(np.sum(n > 0))} goods ids in training")
    print(f"{'n_j (samples with id j)':>26} {'ids':>7} {'median b_j/n_j':>15} {'range':>15}")
    edges = [1, 2, 5, 10, 30, 100, 300, 1000, 3000, 10**9]
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (n >= lo) & (n < hi)
        if sel.any():
            r = b[sel] / n[sel]
            label = f"{lo}-{hi - 1}" if hi < 10**9 else f">= {lo}"
            print(f"{label:>26} {int(sel.sum()):>7} {np.median(r):>15.3f} {r.min():>7.3f}-{r.max():.3f}")


if __name__ == "__main__":
    main()
