"""Why DIN's attention score layer starts with bias 1: the same run with the bias started at 0.

    python bench/score_bias.py [--epochs 6] [--seed 0]

Trains DIN-Dice on the default synthetic data twice, identical except for the initial value of ``att.out.b``
(1, minidin's default, and 0), and the BaseModel for reference, with every other setting at the defaults;
prints the validation GAUC after each epoch (docs/results.md).
"""
from __future__ import annotations

import argparse
import os
import sys
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minidin import train as T  # noqa: E402
from minidin.data import SYNTHETIC_TRAIN, make_synthetic  # noqa: E402


def run(data, bias, epochs, seed, model="din"):
    build = T.build_model

    def build_with_bias(cfg, n_goods, n_cates):
        m = build(cfg, n_goods, n_cates)
        if bias is not None:
            m.params["att.out.b"][...] = bias
        return m

    with mock.patch.object(T, "build_model", build_with_bias):
        cfg = T.TrainConfig(**dict(SYNTHETIC_TRAIN, model=model, epochs=epochs, patience=epochs, seed=seed))
        summary, _ = T.train(data, cfg, log=lambda *a: None, progress=None)
    return [h["valid"]["gauc"] for h in summary["history"]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = make_synthetic()
    rows = [("DIN-Dice, score bias 1 (default)", run(data, 1.0, args.epochs, args.seed)),
            ("DIN-Dice, score bias 0", run(data, 0.0, args.epochs, args.seed)),
            ("BaseModel", run(data, None, args.epochs, args.seed, model="base"))]
    print("validation GAUC after each epoch")
    for name, g in rows:
        print(f"{name:34s} " + " ".join(f"{x:.4f}" for x in g))


if __name__ == "__main__":
    main()
