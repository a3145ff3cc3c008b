"""How the cost of a training step grows: with the goods vocabulary (reg none / mba / l2), and with the history.

    python bench/scaling.py [--vocab 1e3,1e4,1e5,1e6,1e7] [--lengths 5,10,20,50,100,200] [--batch 256]
                            [--threads 2] [--png docs/figures/scaling.png] [--json PATH]

The paper's argument for mini-batch aware regularization (§5.1): with sparse updates a step touches only the
embedding rows of its batch, so its cost does not depend on the vocabulary; L2 on the whole table touches every
row on every step. Left: the step time (forward, backward, SparseAdagrad) of the default DIN (float32, Dice, no
goods bias) on batches of lognormal histories (mean 9) as the goods vocabulary grows, for reg none, mba and l2.
Right: the time per training sample as the mean history length grows (vocabulary 1e5, reg mba). Each point is
the median step time over repeated steps (at least 3, and at least --seconds of stepping); every configuration
runs in this one process, side by side, so the curves compare within one run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numba  # noqa: E402

from minidin import DIN, SparseAdagrad  # noqa: E402
from minidin.bench import machine, make_batches  # noqa: E402
from minidin.io import write_json  # noqa: E402
from bench._cache import COMMIT  # noqa: E402

N_CATES = 200


def batches(rng, n, B, V, mean):
    return make_batches(rng, B, n, V, N_CATES, mean=mean, cap=max(100, int(5 * mean)))


def step_seconds(model, opt, data, seconds):
    """Median wall time of one training step over the batches, cycled for at least ``seconds`` (≥ 3 steps)."""
    _, g = model.loss_and_grad(data[0])  # warm-up: compile
    opt.step(g)
    times, t_end, i = [], time.perf_counter() + seconds, 0
    while len(times) < 3 or time.perf_counter() < t_end:
        b = data[i % len(data)]
        t = time.perf_counter()
        _, g = model.loss_and_grad(b)
        opt.step(g)
        times.append(time.perf_counter() - t)
        i += 1
    return float(np.median(times)), len(times)


def optimizer(model, reg, V):
    if reg == "none":
        return SparseAdagrad(model.params, lr=0.01)
    if reg == "l2":
        return SparseAdagrad(model.params, lr=0.01, reg="l2", reg_lambda=1e-5)
    counts = {"goods_emb": np.full(V, 100, np.int64), "cate_emb": np.full(N_CATES, 1000, np.int64)}
    return SparseAdagrad(model.params, lr=0.01, reg="mba", reg_lambda=1.0, counts=counts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default="1e3,1e4,1e5,1e6,1e7")
    ap.add_argument("--lengths", default="5,10,20,50,100,200")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    ap.add_argument("--seconds", type=float, default=2.0, help="stepping time per point (at least 3 steps)")
    ap.add_argument("--png", default=None, help="write the two curves here (needs matplotlib: pip install '.[plot]')")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    vocab = [int(float(v)) for v in args.vocab.split(",")]
    lengths = [float(v) for v in args.lengths.split(",")]
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    res = {"batch": args.batch, "threads": args.threads, "commit": COMMIT, "machine": machine(), "vocab": [],
           "lengths": []}
    print(f"batch {args.batch}, {args.threads} threads; step = forward + backward + SparseAdagrad")
    for V in vocab:
        model = DIN(n_goods=V, n_cates=N_CATES, seed=0, goods_bias=False)
        data = batches(rng, 8, args.batch, V, 9.0)
        row = {"n_goods": V}
        for reg in ("none", "mba", "l2"):
            opt = optimizer(model, reg, V)
            sec, row[reg + "_steps"] = step_seconds(model, opt, data, args.seconds)
            row[reg + "_ms"] = 1e3 * sec
            del opt
        res["vocab"].append(row)
        print(f"vocabulary {V:>10,}: step none {row['none_ms']:8.2f} ms, mba {row['mba_ms']:8.2f} ms, "
              f"l2 {row['l2_ms']:9.2f} ms", flush=True)
        del model
    model = DIN(n_goods=100_000, n_cates=N_CATES, seed=0, goods_bias=False)
    opt = optimizer(model, "mba", 100_000)
    for L in lengths:
        data = batches(rng, 8, args.batch, 100_000, L)
        mean = float(np.mean([np.diff(b.hist_offsets).mean() for b in data]))
        sec, n = step_seconds(model, opt, data, args.seconds)
        res["lengths"].append({"mean_history": L, "measured_mean": mean, "us_per_sample": 1e6 * sec / args.batch,
                               "steps": n})
        print(f"mean history {L:>5g} (measured {mean:6.1f}): {1e6 * sec / args.batch:8.1f} µs per sample",
              flush=True)
    if args.json:
        write_json(args.json, res)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        for reg, style in (("none", "o-"), ("mba", "s-"), ("l2", "^-")):
            a.loglog([r["n_goods"] for r in res["vocab"]], [r[reg + "_ms"] for r in res["vocab"]], style, label=reg)
        a.set_xlabel("goods vocabulary (rows of goods_emb)")
        a.set_ylabel("ms per training step")
        a.set_title(f"step time vs vocabulary (batch {args.batch})")
        a.legend(title="regularization")
        a.grid(True, which="both", alpha=0.3)
        b.plot([r["measured_mean"] for r in res["lengths"]], [r["us_per_sample"] for r in res["lengths"]], "o-")
        b.set_xlabel("mean history length (behaviours per sample)")
        b.set_ylabel("µs per training sample")
        b.set_title("cost per sample vs history length (MBA, V = 1e5)")
        b.set_ylim(bottom=0)
        b.grid(True, alpha=0.3)
        fig.suptitle(f"minidin training step, {args.threads} threads")
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"figure: {args.png}")


if __name__ == "__main__":
    main()
