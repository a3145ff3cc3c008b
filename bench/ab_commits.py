"""This checkout against another commit, side by side in one process: training, inference and latency ratios.

    python bench/ab_commits.py 02c975f [--repeats 15] [--json PATH]

The other commit's ``minidin/`` is exported (``git archive``) into a temporary directory as the package
``minidin_base`` and imported next to this checkout's ``minidin``; both build the default DIN (float32, seed 0)
and time the same batches (lognormal histories, mean 9), passes alternating between the two so that the
machine's noise hits both alike. Each figure is this checkout's speed over the other's (> 1: faster), the
ratio of median pass times, at batch 32 / 256 / 1024 and 1 / 2 threads; latency is one sample with a
history of 9.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numba
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import minidin as H  # noqa: E402
from minidin.bench import make_batches  # noqa: E402


def export(commit, into):
    """The commit's minidin/ as ``into/minidin_base``."""
    tar = os.path.join(into, "src.tar")
    with open(tar, "wb") as f:
        subprocess.run(["git", "archive", commit, "minidin"], cwd=ROOT, stdout=f, check=True)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    os.rename(os.path.join(into, "minidin"), os.path.join(into, "minidin_base"))
    sys.path.insert(0, into)
    import minidin_base

    return minidin_base


def _alternate(pairs, repeats):
    """Median time of each side's pass, passes alternating (and the order flipping every repeat)."""
    times = [[], []]
    for rep in range(repeats):
        order = (0, 1) if rep % 2 == 0 else (1, 0)
        for side in order:
            fn = pairs[side]
            t0 = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("commit")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        A = export(args.commit, tmp)
        models = [A.DIN(10000, 200, seed=0), H.DIN(10000, 200, seed=0)]
        opts = [A.SparseAdagrad(models[0].params, lr=0.01), H.SparseAdagrad(models[1].params, lr=0.01)]
        mods = [A, H]

        def convert(side, bs, labels=False):
            mod = mods[side]
            return [mod.Batch(b.hist_goods, b.hist_cates, b.hist_offsets, b.cand_goods, b.cand_cates,
                              b.labels if labels else None) for b in bs]

        res = {}
        for t in (1, 2):
            numba.set_num_threads(t)
            for B in (32, 256, 1024):
                bs = make_batches(np.random.default_rng(B), B, max(1, 8192 // B), 10000, 200)
                sides = [convert(0, bs), convert(1, bs)]
                fns = [lambda s=s: [models[s].predict(b) for b in sides[s]] for s in (0, 1)]
                for f in fns:
                    f()
                ta, th = _alternate(fns, args.repeats)
                res[f"infer batch {B}, {t} thread(s)"] = ta / th
                train = [convert(0, bs, True), convert(1, bs, True)]

                def step(s):
                    for b in train[s]:
                        _, g = models[s].loss_and_grad(b)
                        opts[s].step(g)

                fns = [lambda s=s: step(s) for s in (0, 1)]
                for f in fns:
                    f()
                ta, th = _alternate(fns, max(5, args.repeats // 2))
                res[f"train batch {B}, {t} thread(s)"] = ta / th
        one = [A.Batch(list(range(1, 10)), [1] * 9, [0, 9], [1], [1]), H.Batch(list(range(1, 10)), [1] * 9, [0, 9],
                                                                            [1], [1])]
        lat = [[], []]
        for _ in range(4000):
            for s in (0, 1):
                t0 = time.perf_counter_ns()
                models[s].predict(one[s])
                lat[s].append(time.perf_counter_ns() - t0)
        res["latency, one sample"] = float(np.median(lat[0]) / np.median(lat[1]))
        out = {"this": head, "other": args.commit, "speed_ratio_this_over_other": res,
               "latency_us": {"other": float(np.median(lat[0]) / 1e3), "this": float(np.median(lat[1]) / 1e3)}}
    for k, v in res.items():
        print(f"{k:28s} {v:6.3f}×")
    print(f"latency: {out['latency_us']['this']:.1f} µs here, {out['latency_us']['other']:.1f} µs at {args.commit}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
