"""End-to-end throughput: training and inference samples/s, and one-sample latency (``minidin bench``).

Histories are drawn lognormal with mean 9 and a long tail (p99 ≈ 48, capped at
100), the shape of real review histories; the model is the core defaults
(goods 64 + category 64, attention 80-40, MLP 200-80, Dice, float32). Training
is forward + backward + a SparseAdagrad step with the data already in memory.
Timings are medians over repeated passes; report ratios measured side by side in
one run rather than absolute numbers on a shared machine.
"""
from __future__ import annotations

import time

import numba
import numpy as np

from .batch import Batch
from .model import DIN
from .optim import SparseAdagrad


def lognormal_lengths(rng, n, mean=9.0, sigma=0.89, cap=100):
    mu = np.log(mean) - sigma ** 2 / 2
    return np.clip(np.rint(rng.lognormal(mu, sigma, n)), 1, cap).astype(np.int64)


def make_batches(rng, batch_size, n_batches, n_goods, n_cates):
    out = []
    for _ in range(n_batches):
        lens = lognormal_lengths(rng, batch_size)
        N = int(lens.sum())
        out.append(Batch(rng.integers(0, n_goods, N), rng.integers(0, n_cates, N), np.r_[0, np.cumsum(lens)],
                         rng.integers(0, n_goods, batch_size), rng.integers(0, n_cates, batch_size),
                         rng.integers(0, 2, batch_size)))
    return out


def _rate(fn, batches, repeats):
    fn(batches[0])  # warm-up (compile)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for b in batches:
            fn(b)
        times.append(time.perf_counter() - t)
    return sum(b.size for b in batches) / float(np.median(times))


def run(batch_sizes=(32, 256, 1024), threads=(1, 2), samples=8192, repeats=3, seed=0, n_goods=10000, n_cates=200):
    """Rows of {batch, threads, train_sps, infer_sps} plus {"latency_us"} for a one-sample batch of history 9."""
    rng = np.random.default_rng(seed)
    model = DIN(n_goods=n_goods, n_cates=n_cates, seed=seed)
    opt = SparseAdagrad(model.params, lr=0.01)

    def train_step(b):
        _, g = model.loss_and_grad(b)
        opt.step(g)

    rows = []
    default_threads = numba.get_num_threads()
    try:
        for t in threads:
            numba.set_num_threads(t)
            for B in batch_sizes:
                batches = make_batches(rng, B, max(1, samples // B), n_goods, n_cates)
                rows.append({"batch": B, "threads": t, "train_sps": _rate(train_step, batches, repeats),
                             "infer_sps": _rate(model.predict, batches, repeats)})
        numba.set_num_threads(max(threads))
        one = Batch(rng.integers(0, n_goods, 9), rng.integers(0, n_cates, 9), [0, 9], [1], [1])
        model.predict(one)
        lat = []
        for _ in range(200):
            t0 = time.perf_counter_ns()
            model.predict(one)
            lat.append(time.perf_counter_ns() - t0)
    finally:
        numba.set_num_threads(default_threads)
    return {"rows": rows, "latency_us": float(np.median(lat)) / 1e3, "threads_max": max(threads),
            "model": model.config(), "histories": "lognormal, mean 9, capped at 100"}


def format_table(res):
    lines = [f"{'batch':>6} {'threads':>7} {'train samples/s':>16} {'infer samples/s':>16}"]
    for r in res["rows"]:
        lines.append(f"{r['batch']:>6} {r['threads']:>7} {r['train_sps']:>16,.0f} {r['infer_sps']:>16,.0f}")
    lines.append(f"one-sample latency (history 9, {res['threads_max']} threads): {res['latency_us']:.0f} µs")
    return "\n".join(lines)
