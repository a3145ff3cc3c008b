"""Regenerate the `minidin tune` rows of the defaults table in docs/results.md: 20 trials per shared set.

    python bench/reproduce_tune.py --data-root ../shared/data [--trials 20] [--jobs 2] [--only beauty] [--no-run]

For each set: ``minidin tune --data DIR --trials 20 --seed 0 --jobs 2 --use-fields none`` (DIN, the two fields of
the real-data table, every other setting at its default as trial 0), its trials under --runs (checkpoints, not
committed; a killed search resumes there). The chosen trial's ``best.json`` and the ``trials.csv`` are copied to
--cache with a provenance record (data sha256, commit). The chosen settings then train with seeds 0-2
(``--seeds``; ``minidin train --config best.json --seed S``, cached per run as the other tables are), for a
figure comparable with the defaults table. The table between the ``tune-table`` markers of --out lists, per
set, the chosen settings, the search's validation and test GAUC, the 3-seed test GAUC beside the defaults' DIN
row of the same activation, and the search's time.
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

import numpy as np  # noqa: E402

from minidin.data import Dataset  # noqa: E402
from minidin.io import write_json  # noqa: E402
from minidin.train import TrainConfig  # noqa: E402
from minidin.tune import _describe, settings, tune  # noqa: E402
from bench._cache import COMMIT, cached_run, replace_table  # noqa: E402
from bench.reproduce_real import DATASETS  # noqa: E402

BASE = dict(use_fields="none")


def _seed_runs(args, ds_name, run):
    """The chosen settings of ``ds_name``'s search trained with seeds 0..args.seeds-1 (cached; with run=False
    only what is already cached, without loading the data)."""
    keep = os.path.join(args.cache, ds_name)
    with open(os.path.join(keep, "best.json")) as f:
        cfg = dict(json.load(f)["train_config"], threads=1)
    data = Dataset.load(os.path.join(args.data_dir, ds_name)) if run else None
    out = []
    for s in range(args.seeds):
        path = os.path.join(keep, f"chosen-seed{s}.json")
        if run:
            out.append(cached_run(path, data, dict(cfg, seed=s), f"{ds_name:16s} tuned settings seed={s}"))
        elif os.path.exists(path):
            with open(path) as f:
                out.append(json.load(f))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3, help="seeds the chosen settings train with afterwards")
    ap.add_argument("--defaults-cache", default="bench/results/defaults",
                    help="the defaults table's runs, for the comparison column")
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
        kept = os.path.join(keep, "best.json")
        if os.path.exists(kept):
            with open(kept) as f:
                old = json.load(f)
            if {k: old[k] for k in ("train_config", "tune")} == {k: best[k] for k in ("train_config", "tune")}:
                continue  # the same search, already kept with the provenance of the run that made it
        best["provenance"] = {"commit": COMMIT, "data_sha256": best["tune"]["data_sha256"],
                              "command": f"minidin tune --data DIR --trials {args.trials} --seed 0 "
                                         f"--jobs {args.jobs} --use-fields none",
                              "wall_seconds_this_invocation": time.time() - t}
        write_json(kept, best)
        shutil.copyfile(os.path.join(out, "trials.csv"), os.path.join(keep, "trials.csv"))
    for ds_name in sets if not args.no_run else []:
        _seed_runs(args, ds_name, run=True)
    lines = ["| data | chosen trial (of 20) | settings | best epoch | valid GAUC | test GAUC | trial 0 (the defaults) "
             "valid GAUC | chosen settings, test GAUC, seeds 0-2 | defaults (DIN, same activation), seeds 0-2 | "
             "search time (min, single-threaded trials summed) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
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
        seeded = _seed_runs(args, ds_name, run=False)
        g = np.array([r["test"]["gauc"] for r in seeded])
        mine = f"{g.mean():.4f} ± {g.std(ddof=1):.4f}" if len(g) > 1 else (f"{g.mean():.4f}" if len(g) else "–")
        act = {"dice": "DIN-Dice", "prelu": "DIN-PReLU"}.get(cfg["activation"])
        dflt = []
        for s in range(args.seeds):
            p = os.path.join(args.defaults_cache, ds_name, f"{act}-fields-none-seed{s}.json")
            if os.path.exists(p):
                with open(p) as f:
                    dflt.append(json.load(f)["test"]["gauc"])
        dflt = f"{np.mean(dflt):.4f} ({act})" if dflt else "–"
        lines.append(f"| {ds_name} | {tr['trial']} | {_describe(settings(cfg, names))} | {tr['best_epoch']} | "
                     f"{tr['valid']['gauc']:.4f} | {tr['test']['gauc']:.4f} | {float(rows[0]['valid_gauc']):.4f} | "
                     f"{mine} | {dflt} | {minutes:.0f} |")
    text = "\n".join(lines) + "\n"
    replace_table(args.out, "tune-table", text)
    print(text)


if __name__ == "__main__":
    main()
