"""Regenerate the feature-group table in docs/results.md: today's two fields against the full schema.

    python bench/reproduce_fields.py --data-root ../shared/data [--seeds 5] [--jobs 2] [--no-run]

For ml-latest-small (the full schema: every genre of a movie as a multi-hot item field; this MovieLens has no
user file) and Amazon Beauty (brand, one-hot, and every category, multi-hot, as item fields), BaseModel and
DIN-PReLU: the two-field rows are those of the real-data table (``bench/reproduce_real.py``: goods and leaf
category or first genre, MBA with the λ it chose on validation, the same cache files), and the full-schema rows
use the same settings plus the schema fields, their embedding width chosen on seed 0's validation GAUC from
FIELD_DIMS. Test GAUC and AUC are mean ± sample std over seeds (no time column: the two-field runs were cached
by an older, slower commit; ``minidin bench`` measures what the fields cost); every run is cached as JSON with its provenance
(``bench/_cache.py``), so the script resumes where it stopped. The table replaces what lies between the
``fields-table`` markers of --out.
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
from minidin.metrics import rela_impr  # noqa: E402
from minidin.train import TrainConfig  # noqa: E402
from bench._cache import cached_run, read_cached, replace_table, run_cells, run_identity  # noqa: E402
from bench.reproduce_real import DATASETS, ROWS, TRAIN  # noqa: E402

SETS = ("ml-latest-small", "beauty")
MODELS = ("BaseModel", "DIN-PReLU")
# the MBA λ that bench/reproduce_real.py chose on seed 0's validation GAUC for each two-field row
LAMBDA = {("ml-latest-small", "BaseModel"): 0.1, ("ml-latest-small", "DIN-PReLU"): 0.1,
          ("beauty", "BaseModel"): 1.0, ("beauty", "DIN-PReLU"): 1.0}
FIELD_DIMS = (8, 16)


def _config(ds_name, name, dim, seed):
    """dim None: the two fields (the real-data table's run); else every schema field at that width."""
    base = dict(next(k for n, k in ROWS if n == name), **TRAIN, reg="mba", reg_lambda=LAMBDA[(ds_name, name)],
                seed=seed)
    if dim is None:
        return dict(base, use_fields="none")
    return dict(base, use_fields="all", field_dim=dim)


def _path(cache, ds_name, name, dim, seed):
    if dim is None:  # the real-data table's own file
        return os.path.join(cache, "real", ds_name, f"{name}-mba-{LAMBDA[(ds_name, name)]:g}-seed{seed}.json")
    return os.path.join(cache, "fields", ds_name, f"{name}-fields{dim}-seed{seed}.json")


def _run(data_dir, cache, ds_name, name, dim, seed):
    data = Dataset.load(os.path.join(data_dir, ds_name))
    return cached_run(_path(cache, ds_name, name, dim, seed), data, _config(ds_name, name, dim, seed),
                      f"{ds_name:16s} {name:10s} {'two fields' if dim is None else f'fields dim {dim}':14s} "
                      f"seed={seed}")


def _cached(cell, data):
    key, _ = run_identity(TrainConfig(**_config(*cell[1:])), data)
    return read_cached(_path(*cell), key)


def _run_all(pool, data_dir, data, cells, run):
    if run:
        run_cells(_run, (data_dir,), [c for c in cells if _cached(c, data) is None], pool)
    return {c: s for c in cells if (s := _cached(c, data)) is not None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True, help="folder holding amazon-s3rec-5core/ and ml-latest-small/")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--cache", default="bench/results", help="holds real/ (the two-field runs) and fields/")
    ap.add_argument("--data-dir", default="runs/real/data", help="the prepared datasets (not committed)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-run", action="store_true", help="train nothing: the table from the cached runs")
    ap.add_argument("--out", default="docs/results.md")
    args = ap.parse_args()
    pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) if args.jobs > 1 else None
    lines = ["| data | model | input | field width | seeds | test GAUC | test AUC | RelaImpr vs BaseModel (GAUC) |",
             "|---|---|---|---|---|---|---|---|"]
    t0 = time.time()
    for ds_name in SETS:
        ddir = os.path.join(args.data_dir, ds_name)
        if not os.path.exists(os.path.join(ddir, "meta.json")):
            DATASETS[ds_name](args.data_root, ddir)
        data = Dataset.load(ddir)
        fields = ", ".join(f"{f['name']} ({'multi' if f['multi_hot'] else 'one'}-hot)" for f in data.fields)
        # seed 0 at every width, the width with the best validation GAUC for each model, then its other seeds
        tune = _run_all(pool, args.data_dir, data, [(args.cache, ds_name, n, d, 0) for n in MODELS
                                                     for d in FIELD_DIMS], not args.no_run)
        chosen = {n: max((d for d in FIELD_DIMS if (args.cache, ds_name, n, d, 0) in tune),
                         key=lambda d: tune[(args.cache, ds_name, n, d, 0)]["valid"]["gauc"], default=None)
                  for n in MODELS}
        cells = [(args.cache, ds_name, n, d, s) for n in MODELS for d in (None, chosen[n]) for s in range(args.seeds)]
        runs = _run_all(pool, args.data_dir, data, cells, not args.no_run)
        base = {}
        for input_, which in (("goods + category", None), (f"+ {fields}", "chosen")):
            for n in MODELS:
                d = None if which is None else chosen[n]
                if which is not None and d is None:
                    continue  # no full-schema run cached yet
                cell = [runs[c] for c in ((args.cache, ds_name, n, d, s) for s in range(args.seeds)) if c in runs]
                if not cell:
                    continue
                gauc = np.array([r["test"]["gauc"] for r in cell])
                auc = np.array([r["test"]["auc"] for r in cell])
                if n == "BaseModel":
                    base[which] = gauc.mean()
                gain = f"{rela_impr(gauc.mean(), base[which]):+.2f}%" if which in base else "–"
                lines.append(f"| {ds_name} | {n} | {input_} | {'–' if d is None else d} | {len(cell)} | "
                             f"{gauc.mean():.4f} ± {gauc.std(ddof=1):.4f} | {auc.mean():.4f} ± {auc.std(ddof=1):.4f} | "
                             f"{gain} |")
    if pool is not None:
        pool.shutdown()
    text = "\n".join(lines) + "\n"
    replace_table(args.out, "fields-table", text)
    print(text)
    print(f"{args.seeds} seeds; {time.time() - t0:.0f}s this invocation (cached runs are not re-run)")


if __name__ == "__main__":
    main()
