"""The ``minidin`` command line, every command in this one module:

    minidin gradcheck   the whole-model finite-difference check on a small random float64 model
    minidin train       train DIN or the BaseModel (synthetic data or a prepared dataset directory)
    minidin evaluate    a checkpoint's validation and test metrics
    minidin explain     a DIN checkpoint's attention weights, attention recovery, the embedding map
    minidin tune        seeded random search of the training settings, chosen on validation GAUC
    minidin prepare     Amazon or MovieLens files -> a dataset directory (amazon | movielens)
    minidin bench       training / inference throughput and latency (PyTorch side by side when installed)
    minidin exercise    grade a backward pass you wrote (docs/exercises.md) by finite differences

Every command is a thin layer over the Python API; errors in options or files
are reported in one line (``minidin: error: ...``) with exit status 2. The
heavy modules (Numba kernels, SciPy) are imported inside the commands that use
them, so ``minidin --help`` answers at once. From Python, ``minidin train`` is::

    from minidin.data import SYNTHETIC_TRAIN, make_synthetic
    from minidin.train import TrainConfig, train
    summary, model = train(make_synthetic(), TrainConfig(**SYNTHETIC_TRAIN, model="din"), out="runs/din")
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from . import __version__
from .config import SYNTHETIC_TRAIN, add_options, choices, default
from .io import write_json as _write_json

class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus where to find help), not the whole usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------- gradcheck
def cmd_gradcheck(args):
    from .gradcheck import ATOL, RTOL, check_model, format_reports, random_check_setup

    m, batch = random_check_setup(args.model, args.activation, args.attention_softmax, args.seed, args.pooling)
    print(f"minidin gradcheck: {m!r}")
    print(f"batch: B={batch.size}, history lengths {batch.lengths.tolist()}, "
          f"goods ids {batch.hist_goods.tolist()} | candidates {batch.cand_goods.tolist()}")
    print(f"central differences in float64, h=1e-6 (Ridders' extrapolation where that misses); "
          f"an entry passes where |a-n| <= {ATOL:g} or |a-n|/max(1e-8,|a|+|n|) <= {RTOL:g}")
    print("Dice layers run in training mode: the gradient goes through the batch mean and variance.\n")
    reports = check_model(m, batch)
    print(format_reports(reports))
    failed = sum(r.failed for r in reports.values())
    excluded = sum(r.excluded for r in reports.values())
    total = sum(r.checked for r in reports.values())
    print(f"\n{total} entries checked, {excluded} excluded (within a step of a PReLU kink), {failed} failed")
    print("PASS" if failed == 0 else "FAIL")
    return 0 if failed == 0 else 1


# ---------------------------------------------------------------------------- train, evaluate, explain, prepare, bench
SUMMARY_KEYS = ("model", "activation", "reg", "epochs_run", "best_epoch", "valid", "test", "oracle",
                "train_seconds", "train_samples_per_second")


def _units(text):
    try:
        units = tuple(int(u) for u in text.split(",") if u.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 80,40, got {text!r}") from None
    if not units or any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"expected positive layer sizes, got {text!r}")
    return units


def _positive(cast, what):
    """An argparse type: ``cast(text)``, which must be positive and finite (``what`` names the kind)."""

    def parse(text):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (0 < v < float("inf")):
            raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
        return v

    return parse


_positive_int = _positive(int, "an integer")
_positive_float = _positive(float, "a number")


def _add_data_options(p, default="synthetic"):
    g = p.add_argument_group("data")
    g.add_argument("--data", default=default, metavar="synthetic|DIR",
                   help="'synthetic' (built-in generator with a known click model; train and tune use its "
                        "protocol's settings there, minidin.data.SYNTHETIC_TRAIN: "
                        + ", ".join(f"{k} {v}" for k, v in SYNTHETIC_TRAIN.items()).replace("%", "%%")
                        + ") or a prepared dataset directory (meta.json + the .npz it names)" + (" (default: %(default)s)" if default else
                                                             " (default: the checkpoint's own data)"))
    g.add_argument("--synthetic-users", type=_positive_int, default=None, help="synthetic: number of users")
    g.add_argument("--synthetic-cates", type=_positive_int, default=None, help="synthetic: number of categories")
    g.add_argument("--synthetic-goods-per-cate", type=_positive_int, default=None,
                   help="synthetic: goods per category")
    g.add_argument("--data-seed", type=int, default=None, help="synthetic: the generator's seed (default 0)")


def _add_checkpoint_parser(sub, name, **kw):
    """A subcommand that reads a CHECKPOINT, with the data options defaulting to the checkpoint's own data."""
    p = sub.add_parser(name, **kw)
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    _add_data_options(p, default=None)
    return p


def _synthetic_overrides(args):
    o = {}
    for opt, key in (("synthetic_users", "n_users"), ("synthetic_cates", "n_cates"),
                     ("synthetic_goods_per_cate", "goods_per_cate"), ("data_seed", "seed")):
        if getattr(args, opt) is not None:
            o[key] = getattr(args, opt)
    return o


def load_data(spec, overrides=None, description=None):
    """A Dataset from 'synthetic', a prepared directory, or (spec None) a checkpoint's data description."""
    from .data import Dataset, make_synthetic

    if spec is None:
        if not description:
            raise ValueError("data: the checkpoint has no data description; pass --data")
        if description.get("kind") == "synthetic":
            return make_synthetic(**dict(description["options"], **(overrides or {})))
        if description.get("kind") == "prepared":
            return Dataset.load(description["path"])
        raise ValueError(f"data: unknown data description {description.get('kind')!r}; pass --data")
    if spec == "synthetic":
        return make_synthetic(**(overrides or {}))
    return Dataset.load(spec)


def _table(rows):
    lines = [f"{'':<22} {'valid AUC':>9} {'valid GAUC':>10} {'test AUC':>9} {'test GAUC':>9}"]
    for name, v, t in rows:
        lines.append(f"{name:<22} {v['auc']:>9.4f} {v['gauc']:>10.4f} {t['auc']:>9.4f} {t['gauc']:>9.4f}")
    return "\n".join(lines)


def _summary_table(label, summary):
    rows = [(label, summary["valid"], summary["test"])]
    if summary.get("oracle"):
        rows.append(("oracle (true prob.)", summary["oracle_valid"], summary["oracle"]))
    return _table(rows)


def config_from_args(cls, args):
    """``cls(**options)`` from parsed options; a bad value's error names the option (``--lr: ...``)."""
    from dataclasses import fields

    try:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})
    except (TypeError, ValueError) as e:
        name, _, rest = str(e).partition(":")
        raise ValueError(f"--{name.split('[')[0].replace('_', '-')}:{rest}") from None


def cmd_train(args):
    from .train import TrainConfig, TrainingError, train

    args.epochs_given = args.epochs
    if args.epochs is None:
        args.epochs = default("epochs")
    cfg = config_from_args(TrainConfig, args)  # every check runs here, before any data is read
    if args.resume:
        from .checkpoint import read_checkpoint

        _, meta = read_checkpoint(args.resume, "last")
        data = load_data(None if args.data == "synthetic" and not _synthetic_overrides(args) else args.data,
                         _synthetic_overrides(args), meta.get("data"))
    else:
        data = load_data(args.data, _synthetic_overrides(args))
    print(f"data: {data.description.get('kind')}, {data.n_users} users, {data.n_goods} goods, "
          f"{data.n_cates} categories; " + ", ".join(f"{k} {len(s)}" for k, s in data.splits.items()) + " samples"
          + (f"; fields {', '.join(f['name'] for f in data.fields)}" if data.fields else ""))
    if not args.resume:
        lam = "scaled to the data" if cfg.reg_lambda is None else cfg.reg_lambda
        print(f"model: {cfg.model}, activation {cfg.activation}, reg {cfg.reg} (lambda {lam}), "
              f"{cfg.optimizer} lr {cfg.lr}, batch {cfg.batch_size}, {cfg.dtype}")
    try:
        summary, _ = train(data, cfg, out=args.out or args.resume if args.resume else args.out,
                           resume=args.resume, log=print, resume_epochs=args.epochs_given, force=args.force)
    except TrainingError as e:
        print(f"minidin: error: {e}", file=sys.stderr)
        return 1
    name = {"din": "DIN", "base": "BaseModel"}[summary["model"]] + f" ({summary['activation']})"
    print(f"\nbest epoch {summary['best_epoch']} of {summary['epochs_run']} (selected on validation GAUC); "
          f"{summary['train_samples_per_second']:.0f} training samples/s")
    print(_summary_table(name, summary))
    if args.out:
        print(f"checkpoints: {os.path.join(args.out, 'best.npz')} (best on validation), "
              f"{os.path.join(args.out, 'last.npz')}")
    if args.json:
        _write_json(args.json, {k: summary[k] for k in SUMMARY_KEYS if k in summary} | {
            "reg_lambda": summary["reg_lambda"], "history": summary["history"]})
    if args.plot:
        from .plots import plot_history

        plot_history(summary["history"], args.plot, title=f"{name}, reg {summary['reg']} (λ {summary['reg_lambda']}), "
                     f"lr {cfg.lr}, batch {cfg.batch_size}, seed {cfg.seed}", best_epoch=summary["best_epoch"])
        print(f"training curves: {args.plot}")
    return 0


def cmd_tune(args):
    from .train import TrainConfig
    from .tune import tune

    args.seed = args.search_seed  # every trial trains with the search's seed
    args.epochs = default("epochs") if args.epochs is None else args.epochs
    base = config_from_args(TrainConfig, args)
    names = [n.strip() for n in args.search.split(",")] if args.search else None
    best, records = tune(args.data, base, args.trials, seed=args.search_seed, out=args.out, jobs=args.jobs,
                         names=names, data_overrides=_synthetic_overrides(args))
    ok = sum(r["status"] == "ok" for r in records)
    print(f"\nbest of {len(records)} trials ({ok} finished): trial {best['trial']}, best epoch {best['best_epoch']}")
    from .tune import _describe, searched, settings

    cfg = json.load(open(os.path.join(args.out, "best.json")))["train_config"]
    print("settings: " + _describe(settings(cfg, searched(base, names))))
    print(_table([("chosen (valid, test)", best["valid"], best["test"])]))
    print(f"every trial: {os.path.join(args.out, 'trials.csv')}; train with these settings: "
          f"minidin train --data {args.data} --config {os.path.join(args.out, 'best.json')}")
    return 0


def _checkpoint_and_data(args):
    """(path, meta, model, data) for commands that take CHECKPOINT [--data ...]: the checkpoint's own data by
    default, with the window (max_history) it was trained with."""
    from .checkpoint import read_checkpoint, resolve, restore_model

    path = resolve(args.checkpoint)
    arrays, meta = read_checkpoint(path)
    model = restore_model(arrays, meta, path)
    data = load_data(args.data, _synthetic_overrides(args), meta.get("data"))
    if data.n_goods > model.n_goods or data.n_cates > model.n_cates:
        raise ValueError(f"data: vocabulary ({data.n_goods} goods, {data.n_cates} categories) is larger than the "
                         f"checkpoint's ({model.n_goods}, {model.n_cates})")
    have = {f["name"]: f for f in data.fields}
    for f in model.cfg.fields:
        if f.name not in have or have[f.name]["kind"] != f.kind or have[f.name]["multi_hot"] != f.multi_hot:
            raise ValueError(f"data: the checkpoint's model takes the {f.kind} field {f.name!r}, which the data "
                             f"does not have as such (its fields: {', '.join(have) or 'none'})")
        if have[f.name]["vocab"] > f.vocab:
            raise ValueError(f"data: field {f.name!r} has {have[f.name]['vocab']} values, more than the "
                             f"checkpoint's {f.vocab}")
    # the window the run trained with (older checkpoints: its --max-history, else the dataset's own), applied to
    # a copy: the loaded dataset object is not changed
    window = meta["max_history"] if "max_history" in meta else meta.get("train_config", {}).get("max_history")
    data = dataclasses.replace(data, max_history=data.window(window))
    return path, meta, model, data


def cmd_evaluate(args):
    from .train import evaluate, oracle

    path, meta, model, data = _checkpoint_and_data(args)
    cfg = meta.get("train_config", {})
    res = {"model": meta["model_config"]["model"], "activation": meta["model_config"]["activation"],
           "reg": cfg.get("reg"), "epochs_run": len(meta.get("history", [])), "best_epoch": meta.get("epoch", -1) + 1,
           "valid": evaluate(model, data, "valid"), "test": evaluate(model, data, "test")}
    o = oracle(data, "test")
    if o is not None:
        res["oracle"] = o
    hist = meta.get("history", [])
    secs = sum(h["train_seconds"] for h in hist)
    res["train_seconds"] = secs
    res["train_samples_per_second"] = sum(h["train_samples"] for h in hist) / secs if secs else None
    print(f"checkpoint: {path} (epoch {res['best_epoch']})")
    rows = [(res["model"], res["valid"], res["test"])]
    if o is not None:
        rows.append(("oracle (true prob.)", oracle(data, "valid"), o))
    print(_table(rows))
    for split in ("valid", "test"):
        print(f"{split} logloss {res[split]['logloss']:.4f}")
    if args.ranking:
        from .ranking import evaluate_ranking

        if args.candidates is not None and args.negatives != "99":
            raise ValueError("--candidates: give either --candidates or --negatives")
        res["ranking"] = {}
        for split in ("valid", "test"):
            if args.candidates is not None and split == "valid":
                continue  # a candidates file holds the test split's negatives
            res["ranking"][split] = evaluate_ranking(model, data, split, args.negatives, args.candidates,
                                                     args.ranking_seed, max_queries=args.ranking_queries)
        res["ranking_protocol"] = [m.pop("protocol") for m in res["ranking"].values()][0]  # the same for both
        print(f"ranking ({res['ranking_protocol']}):")
        print(f"{'':8} {'HR@1':>7} {'HR@5':>7} {'HR@10':>7} {'NDCG@5':>7} {'NDCG@10':>7} {'MRR':>7} {'users':>7} "
              f"{'seconds':>8}")
        for split, m in res["ranking"].items():
            print(f"{split:8} {m['hr@1']:>7.4f} {m['hr@5']:>7.4f} {m['hr@10']:>7.4f} {m['ndcg@5']:>7.4f} "
                  f"{m['ndcg@10']:>7.4f} {m['mrr']:>7.4f} {m['users']:>7} {m['seconds']:>8.1f}")
    if args.json:
        _write_json(args.json, res)
    return 0


def cmd_recommend(args):
    import csv
    import io as _io

    from .io import atomic_write
    from .ranking import recommend

    _, _, model, data = _checkpoint_and_data(args)
    names = data.vocab.get("users")
    if not names:
        raise ValueError("data: this dataset keeps no original ids (prepare it again with this version)")
    index = {u: i for i, u in enumerate(names)}
    if args.user is not None:
        wanted = [(args.user, "--user")]
    else:
        if not os.path.isfile(args.users):
            raise ValueError(f"--users: {args.users} is not a file")
        with open(args.users, encoding="utf-8") as f:
            wanted = [(line.strip(), f"{args.users}:{ln}") for ln, line in enumerate(f, 1) if line.strip()]
        if not wanted:
            raise ValueError(f"{args.users}: empty file (no user ids)")
    for u, where in wanted:
        if u not in index:
            raise ValueError(f"{where}: unknown user {u!r} (not in the data)")
    recs = recommend(model, data, [index[u] for u, _ in wanted], args.top_k, args.exclude_seen,
                     with_attention=args.attention)
    goods = data.vocab["goods"]
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["user", "rank", "item", "score"] + (["attention"] if args.attention else []))
    for (u, _), entries in zip(wanted, recs):
        for rank, e in enumerate(entries, 1):
            row = [u, rank, goods[e[0]], f"{e[1]:.6g}"]
            if args.attention:
                row.append(" ".join(f"{x:.4g}" for x in e[2]) if len(e) > 2 else "")
            w.writerow(row)
    if args.out:
        if os.path.exists(args.out):
            raise ValueError(f"--out: {args.out} exists; minidin does not overwrite a file it did not create")
        atomic_write(args.out, lambda f: f.write(buf.getvalue().encode()))
        print(f"{sum(len(r) for r in recs)} recommendations for {len(wanted)} user(s): {args.out}")
    else:
        print(buf.getvalue(), end="")
    return 0


def cmd_explain(args):
    from . import explain

    modes = [args.recovery, bool(args.embedding_map), args.sample is not None or args.user is not None]
    if sum(modes) == 0:
        raise ValueError("explain: choose one of --sample K, --user U, --recovery or --embedding-map PNG")
    if args.recovery and sum(modes) > 1 or args.sample is not None and args.user is not None:
        raise ValueError("explain: --recovery, --sample and --user do not combine (--sample goes with "
                         "--embedding-map)")
    if args.png and (args.recovery or args.embedding_map):
        raise ValueError("explain: --png draws a --sample/--user figure")
    _, _, model, data = _checkpoint_and_data(args)
    if args.recovery:
        res = explain.attention_recovery(model, data)
        print(f"attention recovery on {res['samples']} of {res['test_samples']} test samples (2+ behaviours, "
              f"non-constant truth): mean Spearman {res['spearman']:.3f} between learned weights and true "
              f"relevance; random weights: {res['random_baseline']:.3f}")
        if args.json:
            _write_json(args.json, res)
        return 0
    k = explain.test_sample_index(data, args.sample if args.sample is not None else 0, args.user)
    if args.embedding_map:
        res = explain.embedding_map(model, data, k, args.embedding_map)
        print(f"embedding map of {res['goods']} goods ({100 * res['explained_variance']:.0f}% of variance in 2 "
              f"PCs), coloured by predicted CTR after test sample {k}'s history: {args.embedding_map}")
        return 0
    info = explain.sample_table(model, data, k)
    print(explain.format_sample(info))
    if args.png:
        from .plots import plot_attention

        plot_attention(info, args.png)
        print(f"figure: {args.png}")
    if args.json:
        _write_json(args.json, info)
    return 0


def cmd_prepare(args):
    from .data import prepare

    if args.source == "csv":
        from .data.csv_prepare import prepare_csv

        info = prepare_csv(args.out, args.schema, split=args.split, seed=args.seed, max_history=args.max_history)
    elif args.source == "amazon":
        info = prepare.prepare_amazon(args.out, sequences=args.sequences, attributes=args.attributes,
                                      reviews=args.reviews, meta=args.meta, seed=args.seed,
                                      max_history=args.max_history)
    else:
        info = prepare.prepare_movielens(args.out, args.ratings, args.movies, seed=args.seed,
                                         max_history=args.max_history, users=args.users)
    c = info["counts"]
    print(f"{args.out}: {info['n_users']} users, {info['n_goods']} goods, {info['n_cates']} categories; "
          + ", ".join(f"{k} {v['samples']} samples ({100 * (v['positive_rate'] or 0):.1f}% positive)"
                      for k, v in c.items()))
    if info["stats"].get("fields"):
        print(f"fields: {', '.join(info['stats']['fields'])}")
    skipped = info["stats"].get("users_skipped_fewer_than_3")
    if skipped:
        print(f"skipped {skipped} users with fewer than 3 behaviours")
    for key, what in (("duplicate_ratings_dropped", "ratings"), ("duplicate_reviews_dropped", "reviews")):
        if info["stats"].get(key):
            print(f"dropped {info['stats'][key]} exact duplicate {what} (same user, item and time: a copy would sit "
                  f"in its own sample's history)")
    return 0


def cmd_bench(args):
    import platform

    import numba
    import numpy as np

    from . import __version__
    from .bench import format_table, run

    if any(t > numba.config.NUMBA_NUM_THREADS for t in args.threads):
        raise ValueError(f"threads: at most {numba.config.NUMBA_NUM_THREADS} on this machine")
    print(f"minidin {__version__} bench: numba {numba.__version__}, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}; training = forward + backward + SparseAdagrad step")
    dataset = None
    if args.data:
        from .data import Dataset
        dataset = Dataset.load(args.data)
    res = run(args.batch_sizes, args.threads, samples=args.samples, repeats=args.repeats, compare=not args.no_torch,
              schema=not args.no_schema, rank=not args.no_ranking, ranking_histories=args.ranking_histories,
              dataset=dataset, peak_gflops=args.peak_gflops, torch_compile=args.torch_compile)
    print(format_table(res))
    if args.json:
        _write_json(args.json, res)
    return 0


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one and the help does not already say it."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _show_defaults(parser):
    """Every option's default in --help: argparse prints none for an option without help text."""
    parser.formatter_class = _DefaultsHelp
    for a in parser._actions:
        if a.help is None and a.default is not None:
            a.help = "default: " + (",".join(map(str, a.default)) if isinstance(a.default, tuple) else "%(default)s")


def _add_commands(sub):
    t = sub.add_parser("train", help="train DIN or the BaseModel (default: DIN on the built-in synthetic data)",
                       description="Train a model, select the best epoch on validation GAUC, and report "
                                   "validation and test AUC/GAUC (next to the oracle on synthetic data).")
    _add_data_options(t)
    groups = add_options(t, _positive_int, _units)  # names, defaults, choices and help: minidin/config.py
    r = groups["run"]
    r.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"maximum epochs (default {default('epochs')}; with --resume: the new total, default the "
                        "checkpoint's)")
    r.add_argument("--out", metavar="DIR", default=None,
                   help="write best.npz/.json and last.npz/.json here: a new or empty directory, or this run's own "
                        "(with --resume); minidin never writes into a folder it did not create")
    r.add_argument("--force", action="store_true",
                   help="let --out replace another minidin run's checkpoints (never anything else)")
    r.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run checkpointed in DIR (its last.npz), with that run's options; "
                        "checkpoints keep going to DIR unless --out is given")
    r.add_argument("--json", metavar="PATH", default=None, help="write the run's summary as JSON")
    r.add_argument("--config", metavar="FILE", default=None,
                   help="take the settings of a JSON file (TrainConfig keys, e.g. the best.json of 'minidin tune', "
                        "or a checkpoint's .json); options given on the command line override it")
    r.add_argument("--plot", metavar="PNG", default=None,
                   help="draw train/validation loss and AUC per epoch (needs matplotlib: pip install 'minidin[plot]')")
    t.set_defaults(func=cmd_train)
    _show_defaults(t)

    u = sub.add_parser("tune", help="seeded random search of the training settings on validation GAUC",
                       description="Train --trials configurations (trial 0: the options given, the rest drawn at "
                                   "random around them, seeded) in --jobs worker processes, choose the best on "
                                   "validation GAUC, evaluate only that one on test, and write OUT/best.json (for "
                                   "'minidin train --config'), OUT/trials.csv and every trial's checkpoints. "
                                   "Run it again with the same options to resume after a kill, or with more "
                                   "--trials to extend it.")
    _add_data_options(u)
    ug = u.add_argument_group("search")
    ug.add_argument("--trials", type=_positive_int, default=20, help="number of trials, trial 0 included")
    ug.add_argument("--seed", dest="search_seed", type=int, default=0,
                    help="seeds the draws and every trial's training (default: 0)")
    ug.add_argument("--out", default="runs/tune", metavar="DIR", help="the search's directory (default: %(default)s)")
    ug.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1,
                    help="trials run side by side, each in its own process (default: the number of cores)")
    ug.add_argument("--search", metavar="S1,S2,...", default=None,
                    help="the settings to draw (default: lr, reg_lambda, batch_size, emb_dim, attention_units, "
                         "hidden_units, activation); the others keep the options' values")
    add_options(u, _positive_int, _units, exclude=("seed",))
    u.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"maximum epochs of each trial (default {default('epochs')})")
    u.set_defaults(func=cmd_tune)
    _show_defaults(u)

    e = _add_checkpoint_parser(sub, "evaluate", help="evaluate a checkpoint on validation and test",
                               description="Print validation and test AUC, GAUC and logloss of a checkpoint (a "
                                           "directory means its best.npz).")
    e.add_argument("--json", metavar="PATH", default=None, help="write the metrics as JSON (same keys as train; "
                                                                    "with --ranking also 'ranking')")
    e.add_argument("--ranking", action="store_true",
                   help="also rank each held-out positive of validation and test among negatives: HR@1/5/10, "
                        "NDCG@5/10, MRR (docs/ranking.md)")
    e.add_argument("--negatives", default="99", metavar="N|pop|pop:N|all",
                   help="with --ranking: N negatives drawn uniformly from the items the user never interacted "
                        "with, pop (99) or pop:N by popularity, or all (full ranking over the catalogue)")
    e.add_argument("--candidates", metavar="FILE", help="with --ranking: the negatives per user, one line 'user "
                                                        "neg1 neg2 ...' with the source files' ids (S3-Rec's "
                                                        "*_sample.txt); ranks the test split on them")
    e.add_argument("--ranking-seed", type=int, default=0, help="seed of the sampled negatives")
    e.add_argument("--ranking-queries", type=_positive_int, default=None, metavar="N",
                   help="rank only N positives of each split, drawn at random with --ranking-seed (full ranking over "
                        "a large catalogue costs the number of positives times the number of items)")
    e.set_defaults(func=cmd_evaluate)

    r = _add_checkpoint_parser(sub, "recommend", help="the top-K items of the whole catalogue for a user",
                               description="Score every item of the catalogue after a user's whole history (the "
                                           "checkpoint's window) and list the best, with original ids.")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="ID", help="a user id as in the source files")
    who.add_argument("--users", metavar="FILE", help="a file of user ids, one per line")
    r.add_argument("--top-k", type=_positive_int, default=10, metavar="K")
    r.add_argument("--exclude-seen", action="store_true", help="leave out the items the user interacted with")
    r.add_argument("--attention", action="store_true", help="also write the attention weight of each history "
                                                            "behaviour for each recommended item (DIN)")
    r.add_argument("--out", metavar="recs.csv", help="write a CSV (user, rank, item, score[, attention]) "
                                                     "instead of printing")
    r.set_defaults(func=cmd_recommend)

    bn = sub.add_parser("bench", help="training and inference throughput, one-sample latency",
                        description="Measure training samples/s (forward + backward + SparseAdagrad step), inference "
                                    "samples/s and one-sample latency of the default DIN in float32, on histories "
                                    "drawn lognormal with mean 9; with torch installed (extra 'compare'), the same "
                                    "model in PyTorch side by side, after checking loss and gradients agree.")
    bn.add_argument("--batch-sizes", type=_units, default=(32, 256, 1024), metavar="B1,B2,...")
    bn.add_argument("--threads", type=_units, default=(1, 2), metavar="T1,T2,...")
    bn.add_argument("--samples", type=_positive_int, default=8192, help="samples per timed pass")
    bn.add_argument("--repeats", type=_positive_int, default=3,
                    help="timed rounds; each runs one pass of minidin and of every torch twin in turn, and "
                         "rates and ratios are medians over rounds")
    bn.add_argument("--data", metavar="DIR", default=None,
                    help="draw batches from a prepared dataset's train split (real histories) instead of lognormal "
                         "ones, e.g. Amazon Beauty from 'minidin prepare amazon'")
    bn.add_argument("--peak-gflops", type=_positive_float, default=None,
                    help="one float32 GEMM rate for the denominator of '%% peak' (default: the best rate measured in "
                         "the same run at each thread count: as minidin calls BLAS and with multi-threaded BLAS at "
                         "the start, and the chunked GEMM timed again in every round for the 'paired' column, "
                         "which this option turns off)")
    bn.add_argument("--torch-compile", action="store_true",
                    help="also time the split torch twin through torch.compile(dynamic=True)")
    bn.add_argument("--no-schema", action="store_true",
                    help="skip the rows of the model with a schema (a multi-hot item field, two user fields)")
    bn.add_argument("--no-ranking", action="store_true",
                    help="skip the ranking row (model.score on 100 candidates per history against predict)")
    bn.add_argument("--ranking-histories", type=_positive_int, default=1000, metavar="N",
                    help="histories of the ranking row, 100 candidates each")
    bn.add_argument("--no-torch", action="store_true",
                    help="skip the PyTorch side-by-side columns even when torch is installed")
    bn.add_argument("--json", metavar="PATH", default=None,
                    help="also write every figure to PATH, with the commit, CPU, versions and settings that produced "
                         "them ('provenance')")
    bn.set_defaults(func=cmd_bench)
    _show_defaults(bn)

    pr = sub.add_parser("prepare", help="turn your CSV logs, Amazon or MovieLens files into a dataset directory",
                        description="Write a compact dataset directory (meta.json + one .npz) from public files, "
                                    "following the paper's protocols. See docs/data.md.")
    psub = pr.add_subparsers(dest="source", metavar="SOURCE", required=True)
    am = psub.add_parser("amazon", help="Amazon reviews: next reviewed good vs a random negative",
                         description="Either the original files (--reviews reviews_X_5.json[.gz] --meta "
                                     "meta_X.json[.gz]) or the compact sequence format (--sequences X.txt "
                                     "--attributes X_item2attributes.json). Last step: test; second-to-last: "
                                     "validation; earlier steps: train; one uniform negative per positive.")
    am.add_argument("--reviews", metavar="FILE")
    am.add_argument("--meta", metavar="FILE")
    am.add_argument("--sequences", metavar="FILE")
    am.add_argument("--attributes", metavar="FILE")
    am.add_argument("--out", metavar="DIR", required=True)
    am.add_argument("--max-history", type=_positive_int, default=None,
                    help="keep only the most recent behaviours of a history (default: all)")
    am.add_argument("--seed", type=int, default=1234, help="negative sampling seed")
    am.set_defaults(func=cmd_prepare)
    ml = psub.add_parser("movielens", help="MovieLens ratings: rating >= 4 is a click, split by user",
                         description="ratings.csv + movies.csv (ml-latest-small, ml-20m, ml-25m), ratings.dat + "
                                     "movies.dat (ml-1m) or u.data + u.item (ml-100k); .gz accepted. The "
                                     "category is the first listed genre; every genre is kept as the "
                                     "multi-hot item field genres.")
    ml.add_argument("--ratings", metavar="FILE", required=True)
    ml.add_argument("--movies", metavar="FILE", required=True)
    ml.add_argument("--users", metavar="FILE", help="u.user (ml-100k) or users.dat (ml-1m): adds the user profile "
                                                    "fields gender, age (ml-1m's buckets) and occupation")
    ml.add_argument("--out", metavar="DIR", required=True)
    ml.add_argument("--max-history", type=_positive_int, default=100,
                    help="most recent ratings kept per history: some users rate thousands of movies, and the "
                         "attention cost grows with the window")
    ml.add_argument("--seed", type=int, default=1234, help="user split seed")
    ml.set_defaults(func=cmd_prepare)
    cs = psub.add_parser("csv", help="your own logs: an interactions CSV, optional item and user tables, from a "
                                     "schema file",
                         description="Read the files a schema (JSON) names: interactions (user, item, time, "
                                     "optional label and context columns), an optional item table (one-hot and "
                                     "multi-hot attribute columns) and an optional user table (the profile). "
                                     "See docs/data.md for the schema format and a worked example.")
    cs.add_argument("--schema", metavar="SCHEMA.json", required=True, help="the schema file (paths in it are "
                                                                           "relative to it)")
    cs.add_argument("--out", metavar="DIR", required=True)
    cs.add_argument("--split", choices=("last", "time", "user"), default=None,
                    help="last: each user's last interaction is test, the second-to-last validation; time: one "
                         "global time cut, 80/10/10; user: users split 80/10/10 (default: last without a label "
                         "column, time with one)")
    cs.add_argument("--max-history", type=_positive_int, default=100,
                    help="most recent positives kept per history")
    cs.add_argument("--seed", type=int, default=1234, help="negative sampling and user split seed")
    cs.set_defaults(func=cmd_prepare)

    x = _add_checkpoint_parser(sub, "explain", help="show what a DIN checkpoint's attention learned",
                               description="Show one test sample's attention weights over its history (like the "
                                           "paper's Fig. 5), measure attention recovery against the synthetic "
                                           "data's true relevance, or draw a map of the goods embeddings (like "
                                           "Fig. 6). Figures need matplotlib: pip install 'minidin[plot]'.")
    x.add_argument("--sample", type=int, metavar="K", help="the K-th test sample (with --embedding-map: whose "
                                                            "history colours the map; default 0)")
    x.add_argument("--user", type=int, metavar="U", help="user U's (first) test sample")
    x.add_argument("--recovery", action="store_true",
                   help="Spearman correlation of weights with the true relevance over the test set (synthetic)")
    x.add_argument("--embedding-map", metavar="PNG", help="PCA map of goods embeddings coloured by the predicted "
                                                          "CTR of each good as the candidate for a test sample")
    x.add_argument("--png", metavar="PATH", help="with --sample/--user: draw the weights as a PNG")
    x.add_argument("--json", metavar="PATH", help="write the result as JSON")
    x.set_defaults(func=cmd_explain)


# ---------------------------------------------------------------------------- exercise
def cmd_exercise(args):
    from . import exercises as ex

    if args.action == "list":
        for e in ex.EXERCISES.values():
            print(f"{e.name:16s} {e.title}\n{'':16s} {e.signature}")
        return 0
    if args.name not in ex.EXERCISES:
        raise ValueError(f"exercise: unknown name {args.name!r}; one of {', '.join(ex.EXERCISES)}")
    if args.file is None:
        raise ValueError("exercise check: give the file with your backward (FILE.py)")
    e = ex.EXERCISES[args.name]
    grades = ex.grade(e, ex.load_backward(args.file), seed=args.seed)
    print(ex.format_grades(e, grades))
    return 0 if all(g.passed for g in grades) else 1


# ---------------------------------------------------------------------------- parser
def build_parser():
    p = _Parser(prog="minidin", description="A from-scratch Deep Interest Network in NumPy + Numba.")
    p.add_argument("--version", action="version", version=f"minidin {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("gradcheck", help="check every gradient of a small random model by finite differences",
                       description="Run the whole-model finite-difference check on a random small float64 model "
                                   "and print the max relative error per parameter. Exits 1 above tolerance.")
    g.add_argument("--model", choices=choices("model"), default=default("model"))
    g.add_argument("--activation", choices=choices("activation"), default=default("activation"))
    g.add_argument("--attention-softmax", action="store_true", help="softmax over each history (official code)")
    g.add_argument("--pooling", choices=choices("pooling"), default=default("pooling"), help="BaseModel pooling")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_gradcheck)

    _add_commands(sub)

    x = sub.add_parser("exercise", help="grade a backward pass you wrote, by finite differences",
                       description="Exercises in writing a layer's backward (docs/exercises.md): 'list' shows them; "
                                   "'check NAME FILE.py' grades the backward(dout, ...) in FILE.py against central "
                                   "differences and prints the entries that are wrong. Exits 1 when any is.")
    x.add_argument("action", choices=["list", "check"])
    x.add_argument("name", nargs="?", metavar="NAME")
    x.add_argument("file", nargs="?", metavar="FILE.py")
    x.add_argument("--seed", type=int, default=0, help="the random inputs' seed (default: 0)")
    x.set_defaults(func=cmd_exercise)
    return p


def _settle_defaults(parser, args, argv):
    """The training options' defaults for ``train`` and ``tune``, then the command line parsed again over them:
    on the synthetic data its protocol's settings (``SYNTHETIC_TRAIN``) replace the defaults, and ``train
    --config FILE`` puts the file's settings over those; an option given on the command line wins over both."""
    from .config import read_config_file

    config = getattr(args, "config", None)
    if config and args.resume:
        raise ValueError("--config: a resumed run keeps the settings of its checkpoint; drop --config or --resume")
    settings = dict(SYNTHETIC_TRAIN) if args.data == "synthetic" and not getattr(args, "resume", None) else {}
    if config:
        settings.update(read_config_file(config))
    if not settings:
        return args
    sub = next(a for a in parser._subparsers._group_actions).choices[args.command]
    sub.set_defaults(**settings)
    return parser.parse_args(argv)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command in ("train", "tune"):
            args = _settle_defaults(parser, args, argv)
        return args.func(args)
    except (ValueError, TypeError, OSError) as e:
        print(f"minidin: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minidin: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
