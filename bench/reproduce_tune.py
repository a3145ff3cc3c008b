"""Regenerate the `minidin tune` rows of the defaults table in docs/results.md: 20 trials per shared set.

    python bench/reproduce_tune.py --data-root ../shared/data [--trials 20] [--jobs 2] [--only beauty] [--no-run]

For each set: ``minidin tune --data DIR --trials 20 --seed 0 --jobs 2 --use-fields none`` (DIN, the two fields of
the real-data table, every other setting at its default as trial 0), its trials under --runs (checkpoints, not
committed; a killed search resumes there). The chosen trial's ``best.json`` and the ``trials.csv`` are copied to
--cache with a provenance record (data sha256, commit); the table between the ``tune-table`` markers of --out
lists, per set, the chosen settings, their validation and test GAUC, and the search's time.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minidin.train import TrainConfig  # noqa: E402
from minidin.tune import _describe, settings, tune  # noqa: E402
from bench._cache import COMMIT, replace_table  # noqa: E402
from bench.reproduce_real import DATASETS  # noqa: E402

BASE = dict(use_fields="none")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--data-dir", default="runs/real/data")
    ap.add_argument("--runs", default="runs/tune", help="every trial's checkpoints (not committed)")
    ap.add_argument("--cache", default="bench/results/tune", help="best.json and trials.csv per set (committed)")
    ap.add_argument("--only", choices=list(DATASETS), action="append")
    ap.add_argument("--no-run", action="store_true")
    ap.add_argument("--out", default="docs/results.md")
    args = ap.parse_args()
    sets = args.only or list(DATASETS)
    for ds_name in sets if not args.no_run else []:
        ddir = os.path.join(args.data_dir, ds_name)
        if not os.path.exists(os.path.join(ddir, "meta.json")):
            DATASETS[ds_name](args.data_root, ddir)
        out = os.path.join(args.runs, ds_name)
        t = time.time()
        tune(ddir, TrainConfig(**BASE), args.trials, seed=0, out=out, jobs=args.jobs)
        keep = os.path.join(args.cache, ds_name)
        os.makedirs(keep, exist_ok=True)
        with open(os.path.join(out, "best.json")) as f:
            best = json.load(f)
        best["provenance"] = {"commit": COMMIT, "data_sha256": best["tune"]["data_sha256"],
                              "command": f"minidin tune --data DIR --trials {args.trials} --seed 0 "
                                         f"--jobs {args.jobs} --use-fields none",
                              "wall_seconds_this_invocation": time.time() - t}
        with open(os.path.join(keep, "best.json.tmp"), "w") as f:
            json.dump(best, f, indent=1)
        os.replace(os.path.join(keep, "best.json.tmp"), os.path.join(keep, "best.json"))
        shutil.copyfile(os.path.join(out, "trials.csv"), os.path.join(keep, "trials.csv"))
    lines = ["| data | chosen trial (of 20) | settings | best epoch | valid GAUC | test GAUC | trial 0 (the defaults) "
             "valid GAUC | search time (min, single-threaded trials summed) |",
             "|---|---|---|---|---|---|---|---|"]
    for ds_name in sets:
        keep = os.path.join(args.cache, ds_name)
        if not os.path.exists(os.path.join(keep, "best.json")):
            continue
        with open(os.path.join(keep, "best.json")) as f:
            best = json.load(f)
        with open(os.path.join(keep, "trials.csv")) as f:
            rows = list(csv.DictReader(f))
        tr = best["tune"]
        cfg = best["train_config"]
        names = tr["searched"]
        minutes = sum(float(r["train_minutes"] or 0) for r in rows)
        lines.append(f"| {ds_name} | {tr['trial']} | {_describe(settings(cfg, names))} | {tr['best_epoch']} | "
                     f"{tr['valid']['gauc']:.4f} | {tr['test']['gauc']:.4f} | {float(rows[0]['valid_gauc']):.4f} | "
                     f"{minutes:.0f} |")
    text = "\n".join(lines) + "\n"
    replace_table(args.out, "tune-table", text)
    print(text)


if __name__ == "__main__":
    main()
