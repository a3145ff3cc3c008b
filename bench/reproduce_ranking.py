"""Regenerate the ranking table in docs/results.md: DIN on the S3-Rec protocol (Amazon Beauty and Sports).

    python bench/reproduce_ranking.py --data-root ../shared/data [--seeds 5] [--jobs 2] [--no-run]

Leave-one-out, as the Amazon datasets are prepared: each user's last item is the test positive, the
second-to-last the validation one. Test ranks each positive among the 99 negatives of the S3-Rec code's
``<Name>_sample.txt`` (the published candidates); validation among 99 drawn uniformly (seed 0) from the items
the user never interacted with. Rows: popularity (the number of positive training samples of an item), and
BaseModel, DIN-PReLU and DIN-Dice with the full schema (brand and categories), MBA at the λ the real-data table
chose, each selecting its epoch on validation NDCG@10. Whether the negatives the data were prepared with (one
per positive, drawn once) or 4 per positive drawn again every epoch (``--train-negatives 4``) train better is
chosen per model on seed 0's validation NDCG@10. Mean ± sample std over seeds; every run is cached as JSON
(config, data fingerprint, commit) under --cache, its checkpoint under --runs. The table replaces what lies
between the ``ranking-table`` markers of --out.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minidin import metrics  # noqa: E402
from minidin.checkpoint import load  # noqa: E402
from minidin.data import Dataset  # noqa: E402
from minidin.ranking import evaluate_ranking, popularity, read_candidates_file  # noqa: E402
from minidin.train import TrainConfig, train  # noqa: E402
from bench._cache import COMMIT, RESULTS_VERSION, read_cached, replace_table, run_cells, run_identity  # noqa: E402
from bench.reproduce_real import DATASETS, ROWS, TRAIN  # noqa: E402

SETS = {"beauty": "Beauty_sample.txt", "sports": "Sports_and_Outdoors_sample.txt"}
MODELS = ("BaseModel", "DIN-PReLU", "DIN-Dice")
LAMBDA = {("beauty", "BaseModel"): 1.0, ("beauty", "DIN-PReLU"): 1.0, ("beauty", "DIN-Dice"): 1.0,
          ("sports", "BaseModel"): 3.0, ("sports", "DIN-PReLU"): 1.0, ("sports", "DIN-Dice"): 0.1}
NEGATIVES = (None, 4)  # the prepared negatives, or 4 per positive drawn every epoch
PUBLISHED = {  # S3-Rec paper (Zhou et al., CIKM 2020), Table 2: HR@10 / NDCG@10 with 99 sampled negatives
    "beauty": [("PopRec", 0.3386, 0.1803), ("FM", 0.2311, 0.1207), ("AutoInt", 0.2872, 0.1440),
               ("SASRec", 0.4696, 0.3156), ("S3-Rec", 0.5506, 0.3732)],
    "sports": [("PopRec", 0.3423, 0.1902), ("FM", 0.2491, 0.1334), ("AutoInt", 0.2967, 0.1633),
               ("SASRec", 0.4622, 0.2869), ("S3-Rec", 0.5614, 0.3538)]}


def _config(ds_name, name, neg, seed):
    return dict(next(k for n, k in ROWS if n == name), **TRAIN, reg="mba", reg_lambda=LAMBDA[(ds_name, name)],
                seed=seed, use_fields="all", field_dim=16, select="ndcg@10", train_negatives=neg)


def _path(cache, ds_name, name, neg, seed):
    return os.path.join(cache, ds_name, f"{name}-neg{neg or 'prepared'}-seed{seed}.json")


def _key(ds_name, data, name, neg, seed, sample_file):
    key, sha = run_identity(TrainConfig(**_config(ds_name, name, neg, seed)), data)
    return key + ":" + os.path.basename(sample_file), sha


def _run(data_dir, root, cache, runs, ds_name, name, neg, seed):
    data = Dataset.load(os.path.join(data_dir, ds_name))
    sample = os.path.join(root, "amazon-s3rec-5core", SETS[ds_name])
    key, sha = _key(ds_name, data, name, neg, seed, sample)
    path = _path(cache, ds_name, name, neg, seed)
    if read_cached(path, key) is not None:
        return
    cfg = TrainConfig(**_config(ds_name, name, neg, seed))
    out = os.path.join(runs, ds_name, f"{name}-neg{neg or 'prepared'}-seed{seed}")
    t0 = time.time()
    summary, _ = train(data, cfg, out=out, force=True, log=lambda *a: None, progress=None)
    train_s = time.time() - t0
    model = load(out)
    res = {"train": summary, "train_seconds": train_s,
           "valid": evaluate_ranking(model, data, "valid", "99", seed=0),
           "test": evaluate_ranking(model, data, "test", candidates_file=sample),
           "provenance": {"key": key, "config": cfg.to_json(), "data_sha256": sha, "results_version": RESULTS_VERSION,
                          "commit": COMMIT}}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(res, f)
    os.replace(path + ".tmp", path)
    print(f"{ds_name:7s} {name:10s} neg={neg or 'prepared':8} seed={seed}: valid NDCG@10 {res['valid']['ndcg@10']:.4f} "
          f"test HR@10 {res['test']['hr@10']:.4f} NDCG@10 {res['test']['ndcg@10']:.4f} ({train_s:.0f}s)", flush=True)


FULL_QUERIES = 1000  # full ranking (every item the user never touched) on this many test users, seed 0's model


def _full(data_dir, root, cache, runs, ds_name, name, neg):
    """Full ranking of seed 0's checkpoint on FULL_QUERIES test positives drawn at random (seed 0), cached."""
    data = Dataset.load(os.path.join(data_dir, ds_name))
    sample = os.path.join(root, "amazon-s3rec-5core", SETS[ds_name])
    key = _key(ds_name, data, name, neg, 0, sample)[0] + f":full{FULL_QUERIES}"
    path = _path(cache, ds_name, name, neg, 0)[:-5] + f"-full{FULL_QUERIES}.json"
    if read_cached(path, key) is not None:
        return
    model = load(os.path.join(runs, ds_name, f"{name}-neg{neg or 'prepared'}-seed0"))
    res = {"test": evaluate_ranking(model, data, "test", "all", seed=0, max_queries=FULL_QUERIES),
           "provenance": {"key": key, "commit": COMMIT}}
    with open(path + ".tmp", "w") as f:
        json.dump(res, f)
    os.replace(path + ".tmp", path)


def popularity_full(data):
    """The popularity baseline's full ranking on the same FULL_QUERIES test positives."""
    from minidin.ranking import interacted

    pop = popularity(data)
    s = data.splits["test"]
    q = np.flatnonzero(s.labels == 1)
    q = np.sort(np.random.default_rng([0, 7]).choice(q, size=min(FULL_QUERIES, q.size), replace=False))
    seen = interacted(data)
    negs = []
    for u in s.users[q]:
        mask = np.ones(data.n_goods, bool)
        mask[list(seen[u])] = False
        negs.append(np.flatnonzero(mask))
    off = np.r_[0, np.cumsum([len(n) for n in negs])]
    return metrics.ranking_metrics(metrics.positive_ranks(pop[s.cand_goods[q]], pop[np.concatenate(negs)], off))


def popularity_row(data, sample):
    """The popularity baseline on the same candidates: score = the item's number of positive training samples."""
    pop = popularity(data)
    given = read_candidates_file(sample, data)
    s = data.splits["test"]
    q = np.flatnonzero(s.labels == 1)
    pos, negs = s.cand_goods[q], [given[u] for u in s.users[q]]
    off = np.r_[0, np.cumsum([len(n) for n in negs])]
    ranks = metrics.positive_ranks(pop[pos], pop[np.concatenate(negs)], off)
    return metrics.ranking_metrics(ranks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--cache", default="bench/results/ranking")
    ap.add_argument("--runs", default="runs/ranking", help="checkpoints (not committed)")
    ap.add_argument("--data-dir", default="runs/real/data")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", choices=list(SETS), action="append")
    ap.add_argument("--no-run", action="store_true")
    ap.add_argument("--out", default="docs/results.md")
    args = ap.parse_args()
    pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) if args.jobs > 1 else None
    lines = ["| data | model | train negatives | seeds | HR@10 | NDCG@10 | HR@1 | MRR | valid NDCG@10 | "
             "train min | eval s | full HR@10 | full NDCG@10 | full eval s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    t0 = time.time()
    for ds_name in args.only or list(SETS):
        ddir = os.path.join(args.data_dir, ds_name)
        if not os.path.exists(os.path.join(ddir, "meta.json")):
            DATASETS[ds_name](args.data_root, ddir)
        data = Dataset.load(ddir)
        sample = os.path.join(args.data_root, "amazon-s3rec-5core", SETS[ds_name])
        read_candidates_file(sample, data)  # the test candidates fit these data, before any run trains

        def cell(name, neg, seed):
            return read_cached(_path(args.cache, ds_name, name, neg, seed),
                           _key(ds_name, data, name, neg, seed, sample)[0])

        def run_all(cells):
            todo = [c for c in cells if cell(*c) is None]
            if args.no_run or not todo:
                return
            run_cells(_run, (args.data_dir, args.data_root, args.cache, args.runs, ds_name), todo, pool)

        run_all([(n, neg, 0) for n in MODELS for neg in NEGATIVES])
        chosen = {}
        for n in MODELS:
            done = [neg for neg in NEGATIVES if cell(n, neg, 0) is not None]
            if done:
                chosen[n] = max(done, key=lambda neg: cell(n, neg, 0)["valid"]["ndcg@10"])
        run_all([(n, chosen[n], s) for n in chosen for s in range(args.seeds)])
        full = {}
        for n in chosen:
            fpath = _path(args.cache, ds_name, n, chosen[n], 0)[:-5] + f"-full{FULL_QUERIES}.json"
            fkey = _key(ds_name, data, n, chosen[n], 0, sample)[0] + f":full{FULL_QUERIES}"
            if read_cached(fpath, fkey) is None and not args.no_run and cell(n, chosen[n], 0) is not None:
                _full(args.data_dir, args.data_root, args.cache, args.runs, ds_name, n, chosen[n])
            full[n] = read_cached(fpath, fkey)
        p, pf = popularity_row(data, sample), popularity_full(data)
        lines.append(f"| {ds_name} | popularity | – | – | {p['hr@10']:.4f} | {p['ndcg@10']:.4f} | {p['hr@1']:.4f} | "
                     f"{p['mrr']:.4f} | – | – | – | {pf['hr@10']:.4f} | {pf['ndcg@10']:.4f} | – |")
        for n in MODELS:
            if n not in chosen:
                continue
            res = [r for r in (cell(n, chosen[n], s) for s in range(args.seeds)) if r is not None]
            if not res:
                continue

            def ms(key, split="test"):
                v = np.array([r[split][key] for r in res])
                return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"

            lines.append(f"| {ds_name} | {n} | {chosen[n] or 'prepared (1)'} | {len(res)} | {ms('hr@10')} | "
                         f"{ms('ndcg@10')} | {ms('hr@1')} | {ms('mrr')} | {ms('ndcg@10', 'valid')} | "
                         f"{np.mean([r['train_seconds'] for r in res]) / 60:.1f} | "
                         f"{np.mean([r['test']['seconds'] for r in res]):.0f} | "
                         + (f"{full[n]['test']['hr@10']:.4f} | {full[n]['test']['ndcg@10']:.4f} | "
                            f"{full[n]['test']['seconds']:.0f} |" if full.get(n) else "| | |"))
        for name, hr, ndcg in PUBLISHED[ds_name]:
            lines.append(f"| {ds_name} | {name} (S3-Rec paper) | | | {hr:.4f} | {ndcg:.4f} | | | | | | | | |")
    if pool is not None:
        pool.shutdown()
    text = "\n".join(lines) + "\n"
    replace_table(args.out, "ranking-table", text)
    print(text)
    print(f"{time.time() - t0:.0f}s this invocation (cached runs are not re-run)")


if __name__ == "__main__":
    main()
