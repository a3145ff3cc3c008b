"""Regenerate the defaults table in docs/results.md: `minidin train --data DIR` with no option, on the shared sets.

    python bench/reproduce_defaults.py --data-root ../shared/data [--seeds 3] [--jobs 2] [--only ml-latest-small]
                                       [--schema none|all|both] [--no-run]

Each run is ``TrainConfig()`` at its defaults except the model and activation of its row, the seed and one thread
per process (``--jobs`` of them side by side): what a user gets from ``minidin train --data DIR [--model base]
[--activation prelu]``. ``--schema none`` rows take the two fields of the real-data table (``--use-fields none``),
like for like against its best (tuned) row of the same model; ``all`` rows take every schema field of the data
(the true no-option run). Columns: test GAUC mean ± sample std over seeds, the best tuned row's figure and the
gap to it, RelaImpr over the BaseModel of the same schema, the highest mean training loss of any epoch over the
seeds beside the loss of predicting the training base rate (an epoch that blows up shows here), best epochs and
minutes per run. Every run's summary is cached as JSON under --cache (config, data fingerprint, commit); the
table replaces what lies between the ``defaults-table`` markers of --out.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minidin.data import Dataset  # noqa: E402
from minidin.metrics import rela_impr  # noqa: E402
from bench._cache import cached_run, cached_summary, replace_table, run_cells  # noqa: E402
from bench.reproduce_real import DATASETS, ROWS  # noqa: E402

# the best row of the real-data table (bench/reproduce_real.py, 5 seeds, λ tuned on validation) per model
TUNED = {"beauty": {"BaseModel": 0.7941, "DIN-PReLU": 0.7979, "DIN-Dice": 0.7927},
         "sports": {"BaseModel": 0.8233, "DIN-PReLU": 0.8282, "DIN-Dice": 0.8264},
         "ml-latest-small": {"BaseModel": 0.6637, "DIN-PReLU": 0.6670, "DIN-Dice": 0.6605}}


# schema "none-lambda1": the two-field rows with MBA's λ fixed at 1 instead of scaled to the data (the check of
# the scaling rule on validation, docs/training.md)
SCHEMAS = {"none": dict(use_fields="none"), "all": dict(use_fields="all"),
           "none-lambda1": dict(use_fields="none", reg_lambda=1.0)}


def _config(name, schema, seed):
    return dict(next(k for n, k in ROWS if n == name), seed=seed, threads=1, **SCHEMAS[schema])


def _path(cache, ds_name, name, schema, seed):
    return os.path.join(cache, ds_name, f"{name}-fields-{schema}-seed{seed}.json")


def _run_cell(data_dir, cache, ds_name, name, schema, seed):
    data = Dataset.load(os.path.join(data_dir, ds_name))
    return cached_run(_path(cache, ds_name, name, schema, seed), data, _config(name, schema, seed),
                      f"{ds_name:16s} {name:10s} fields={schema:12s} seed={seed}")


def _cached(cell, data):
    return cached_summary(_path(*cell), data, _config(*cell[2:]))


def base_rate_loss(data) -> float:
    """Mean log-loss on the training split of predicting its positive rate for every sample."""
    p = float(np.mean(data.splits["train"].labels))
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True, help="folder holding amazon-s3rec-5core/ and ml-latest-small/")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cache", default="bench/results/defaults", help="one JSON summary per run (committed)")
    ap.add_argument("--data-dir", default="runs/real/data", help="the prepared datasets (not committed)")
    ap.add_argument("--only", choices=list(DATASETS), action="append", help="restrict to these datasets")
    ap.add_argument("--schema", choices=["none", "all", "both", "none-lambda1"], default="both",
                    help="which rows to run: the two fields (none), every schema field (all), both, or the two "
                         "fields with λ = 1 (none-lambda1, the λ check)")
    ap.add_argument("--all-seeds", type=int, default=3, help="seeds of the every-field rows")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-run", action="store_true", help="train nothing: build the table from the cached runs")
    ap.add_argument("--out", default="docs/results.md")
    args = ap.parse_args()
    schemas = ["none", "all"] if args.schema == "both" else [args.schema]
    sets = args.only or list(DATASETS)
    datas = {}
    for ds_name in sets:
        ddir = os.path.join(args.data_dir, ds_name)
        if not args.no_run and not os.path.exists(os.path.join(ddir, "meta.json")):
            DATASETS[ds_name](args.data_root, ddir)
        datas[ds_name] = Dataset.load(ddir) if os.path.exists(os.path.join(ddir, "meta.json")) else None
    seeds = {"all": args.all_seeds}
    cells = [(args.cache, ds, name, schema, s) for schema in schemas for s in range(seeds.get(schema, args.seeds))
             for ds in sets for name, _ in ROWS]
    if not args.no_run:
        todo = [c for c in cells if _cached(c, datas[c[1]]) is None]
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                run_cells(_run_cell, (args.data_dir,), todo, pool)
        else:
            run_cells(_run_cell, (args.data_dir,), todo)
    lines = ["| data | fields | model | λ | seeds | test GAUC | best tuned row (two fields) | gap | RelaImpr vs BaseModel | "
             "worst epoch loss / base rate | best epochs | min/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    check = ["| data | model | valid GAUC, λ = 1 | valid GAUC, λ scaled | λ scaled | test GAUC, λ = 1 | "
             "test GAUC, λ scaled |", "|---|---|---|---|---|---|---|"]
    for ds_name in sets:
        base_loss = base_rate_loss(datas[ds_name]) if datas[ds_name] is not None else float("nan")
        for schema in ["none", "all"]:
            base = None
            for name, _ in ROWS:
                runs = [r for r in (_cached((args.cache, ds_name, name, schema, s), datas[ds_name])
                                    for s in range(seeds.get(schema, args.seeds))) if r is not None]
                if not runs:
                    continue
                g = np.array([r["test"]["gauc"] for r in runs])
                if name == "BaseModel":
                    base = g.mean()
                tuned = TUNED[ds_name][name]
                worst = max(h["train_loss"] for r in runs for h in r["history"])
                std = f" ± {g.std(ddof=1):.4f}" if len(g) > 1 else ""
                lam = runs[0]["reg_lambda"]
                lines.append(f"| {ds_name} | {schema} | {name} | {lam:.3g} | {len(runs)} | {g.mean():.4f}{std} | "
                             f"{tuned:.4f} | "
                             f"{g.mean() - tuned:+.4f} | "
                             f"{'–' if base is None or name == 'BaseModel' else f'{rela_impr(g.mean(), base):+.2f}%'}"
                             f" | {worst:.3f} / {base_loss:.3f} | {', '.join(str(r['best_epoch']) for r in runs)} | "
                             f"{np.mean([r.get('wall_seconds', 0.0) for r in runs]) / 60:.1f} |")
    for ds_name in sets:
        for name, _ in ROWS:
            pair = [[r for r in (_cached((args.cache, ds_name, name, schema, s), datas[ds_name])
                                 for s in range(args.seeds)) if r is not None] for schema in ("none-lambda1", "none")]
            if not all(pair):
                continue
            v = [np.mean([r["valid"]["gauc"] for r in runs]) for runs in pair]
            t = [np.mean([r["test"]["gauc"] for r in runs]) for runs in pair]
            check.append(f"| {ds_name} | {name} | {v[0]:.4f} | {v[1]:.4f} | {pair[1][0]['reg_lambda']:.3g} | "
                         f"{t[0]:.4f} | {t[1]:.4f} |")
    text = "\n".join(lines) + "\n"
    replace_table(args.out, "defaults-table", text)
    print(text)
    text = "\n".join(check) + "\n"
    replace_table(os.path.join(os.path.dirname(args.out), "training.md"), "lambda-table", text)
    print(text)


if __name__ == "__main__":
    main()
