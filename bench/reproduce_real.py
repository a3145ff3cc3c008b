"""Regenerate the real-data table in docs/results.md (Amazon Beauty, Amazon Sports, MovieLens latest-small).

    python bench/reproduce_real.py --data-root ../shared/data [--seeds 5] [--cache bench/results/real] [--only beauty]
                                   [--jobs 2]

Rows: BaseModel, DIN-PReLU and DIN-Dice, each with reg none and mba (λ tuned on validation GAUC of seed 0
over a grid). Columns: test GAUC (the paper's metric) and AUC as mean ± sample std (n − 1) over seeds, RelaImpr vs the
BaseModel without regularization, and each run's best epoch. The prepared data stay fixed (built once under
--data-dir, rebuilt when absent); seeds vary initialisation and shuffling. Every run's summary is cached as
JSON under --cache (committed with the repository, so any checkout resumes), so the script resumes
where it stopped; the table replaces what lies between the ``real-table`` markers of --out.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minidin.data import Dataset  # noqa: E402
from minidin.data.prepare import prepare_amazon, prepare_movielens  # noqa: E402
from minidin.metrics import rela_impr  # noqa: E402
from bench._cache import cached_run, cached_summary, replace_table, run_cells  # noqa: E402

DATASETS = {
    "beauty": lambda root, out: prepare_amazon(out, sequences=os.path.join(root, "amazon-s3rec-5core", "Beauty.txt"),
                                               attributes=os.path.join(root, "amazon-s3rec-5core",
                                                                       "Beauty_item2attributes.json")),
    "sports": lambda root, out: prepare_amazon(
        out, sequences=os.path.join(root, "amazon-s3rec-5core", "Sports_and_Outdoors.txt"),
        attributes=os.path.join(root, "amazon-s3rec-5core", "Sports_and_Outdoors_item2attributes.json")),
    "ml-latest-small": lambda root, out: prepare_movielens(out, os.path.join(root, "ml-latest-small", "ratings.csv"),
                                                           os.path.join(root, "ml-latest-small", "movies.csv")),
}
ROWS = [("BaseModel", dict(model="base", activation="dice")),
        ("DIN-PReLU", dict(model="din", activation="prelu")),
        ("DIN-Dice", dict(model="din", activation="dice"))]
# λ grid of MBA, tuned on seed 0's validation GAUC. Beauty ran first, on {0.01, 0.1, 1}; λ = 1 won there for
# every model, at the grid's edge, so the later datasets moved the grid up.
MBA_GRID = {"beauty": [0.01, 0.1, 1.0]}
MBA_GRID_DEFAULT = [0.1, 1.0, 3.0]


def grid(ds_name):
    return {"none": [0.0], "mba": MBA_GRID.get(ds_name, MBA_GRID_DEFAULT)}
# Training settings, chosen on Beauty validation (docs/results.md): Adagrad (lr 0.1 beat 0.05 on validation
# from a zero accumulator, batch 32, global-norm clip 5), the official code's per-goods logit bias, and a
# single-threaded process per run (--jobs of them side by side). Every model peaks early on real data.
TRAIN = dict(batch_size=32, lr=0.1, lr_decay=1.0, lr_warmup=0, adagrad_init=0.0, clip_norm=5.0, goods_bias=True,
             epochs=4, patience=1, threads=1)


def _path(cache, ds_name, name, reg, lam, seed):
    return os.path.join(cache, ds_name, f"{name}-{reg}-{lam:g}-seed{seed}.json")


def _config(name, reg, lam, seed):
    # goods and categories only: the prepared data also carry schema fields (genres; brand, categories), which
    # the feature-group table (bench/reproduce_fields.py) compares against this
    return dict(next(k for n, k in ROWS if n == name), **TRAIN, reg=reg, reg_lambda=lam, seed=seed, use_fields="none")


def _run_cell(data_dir, cache, ds_name, name, reg, lam, seed):
    """One training run in a worker process (the dataset loads in a second or two)."""
    data = Dataset.load(os.path.join(data_dir, ds_name))
    return cached_run(_path(cache, ds_name, name, reg, lam, seed), data, _config(name, reg, lam, seed),
                      f"{ds_name:16s} {name:10s} {reg:4s} lambda={lam:<6g} seed={seed}")


def _cached(cell, data):
    """A cell's cached summary when its provenance key matches this config, data and RESULTS_VERSION (data
    None, for --no-run without the prepared data: trust the key recorded in the file)."""
    return cached_summary(_path(*cell), data, _config(*cell[2:]))


def _run_all(pool, data_dir, data, cells, run=True):
    """Run the cells without a valid cached result (in parallel with a pool), then return every valid cached
    cell's summary (with run=False, only what is already on disk)."""
    if run:
        run_cells(_run_cell, (data_dir,), [c for c in cells if _cached(c, data) is None], pool)
    out = {}
    for c in cells:
        summary = _cached(c, data)
        if summary is not None:
            out[c] = summary
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True, help="folder holding amazon-s3rec-5core/ and ml-latest-small/")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--cache", default="bench/results/real", help="one JSON summary per run (committed)")
    ap.add_argument("--data-dir", default="runs/real/data", help="the prepared datasets (not committed)")
    ap.add_argument("--only", choices=list(DATASETS), action="append", help="restrict to these datasets")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="runs side by side, one single-threaded process each (default: one per core)")
    ap.add_argument("--regs", choices=["none", "all"], default="all",
                    help="none: run only the unregularized rows (the table still shows every cached row)")
    ap.add_argument("--no-run", action="store_true",
                    help="train nothing: build the table from the cached runs (cells with fewer seeds say so)")
    ap.add_argument("--out", default="docs/results.md")
    args = ap.parse_args()
    lines = ["| data | model | reg | λ | seeds | test GAUC | test AUC | RelaImpr (GAUC) | best epochs | min/run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    total_seconds = 0.0
    t0 = time.time()
    pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) if args.jobs > 1 else None
    for ds_name in args.only or list(DATASETS):
        ddir = os.path.join(args.data_dir, ds_name)
        if not args.no_run and not os.path.exists(os.path.join(ddir, "meta.json")):
            DATASETS[ds_name](args.data_root, ddir)
        data = Dataset.load(ddir) if os.path.exists(os.path.join(ddir, "meta.json")) else None
        G = grid(ds_name)
        # phase 1: the unregularized rows, every seed (the main comparison, no tuning needed); phase 2: every
        # λ of the MBA grid on seed 0 (λ is chosen on validation GAUC); phase 3: the chosen λ's other seeds
        _run_all(pool, args.data_dir, data,
                 [(args.cache, ds_name, name, "none", 0.0, s) for name, _ in ROWS for s in range(args.seeds)],
                 not args.no_run)
        run_mba = not args.no_run and args.regs == "all"
        tune = _run_all(pool, args.data_dir, data, [(args.cache, ds_name, name, reg, lam, 0)
                               for name, _ in ROWS for reg, lams in G.items() for lam in lams], run_mba)
        chosen = {}
        for name, _ in ROWS:
            for reg, lams in G.items():
                done = [x for x in lams if (args.cache, ds_name, name, reg, x, 0) in tune]
                if done:
                    chosen[(name, reg)] = max(done, key=lambda x: tune[(args.cache, ds_name, name, reg, x, 0)]
                                              ["valid"]["gauc"])
        runs = _run_all(pool, args.data_dir, data, [(args.cache, ds_name, name, reg, lam, s)
                               for (name, reg), lam in chosen.items() for s in range(args.seeds)], run_mba)
        base = None
        for (name, reg), lam in chosen.items():
            cell = [runs[c] for c in ((args.cache, ds_name, name, reg, lam, s) for s in range(args.seeds)) if c in runs]
            gauc = np.array([r["test"]["gauc"] for r in cell])
            auc = np.array([r["test"]["auc"] for r in cell])
            minutes = np.mean([r.get("wall_seconds", 0.0) for r in cell]) / 60
            if base is None and name == "BaseModel" and reg == "none":
                base = gauc.mean()
            lines.append(f"| {ds_name} | {name} | {reg} | {'–' if reg == 'none' else f'{lam:g}'} | {len(cell)} | "
                         f"{gauc.mean():.4f} ± {gauc.std(ddof=1):.4f} | {auc.mean():.4f} ± {auc.std(ddof=1):.4f} | "
                         f"{rela_impr(gauc.mean(), base):+.2f}% | "
                         f"{', '.join(str(r['best_epoch']) for r in cell)} | {minutes:.1f} |"
                         if base is not None else "")
        total_seconds += sum(r.get("wall_seconds", 0.0) for r in {**tune, **runs}.values())
    if pool is not None:
        pool.shutdown()
    text = "\n".join(line for line in lines if line) + "\n"
    text += (f"\nTraining time of the runs in this table, summed: {total_seconds / 3600:.1f} h of single-threaded "
             f"runs ({total_seconds / 3600 / max(1, args.jobs):.1f} h of wall time at --jobs {args.jobs}).\n")
    replace_table(args.out, "real-table", text)
    print(text)
    print(f"{args.seeds} seeds; {time.time() - t0:.0f}s this invocation (cached runs are not re-run)")


if __name__ == "__main__":
    main()
