"""``minidin tune``: a seeded random search over the training settings that matter, chosen on validation GAUC.

Trial 0 is the base configuration itself (the defaults, with whatever options were given), so the search
never ends below it on validation. Trial t > 0 draws every searched setting from its own stream, seeded by
(seed, t): the same seed gives the same trials whatever --trials or --jobs say, so a search can be extended
(more trials into the same --out) and resumed after a kill.

Each trial is one ``train`` run with early stopping on validation GAUC, checkpointed under
``OUT/trials/NNN``; the test split is not evaluated during the search (``train(test=False)``), so no test
figure can steer a choice. A trial killed mid-run resumes from its last checkpoint. When every trial is
done, the trial with the best validation GAUC (the lower number on a tie) is evaluated once on test, and

    OUT/best.json     its settings, which ``minidin train --config OUT/best.json`` reads, and its metrics
    OUT/trials.csv    every trial: its settings, validation metrics, best epoch and time
    OUT/tune.json     what the search is (data fingerprint, seed, base settings, searched settings): a resumed
                      search must be the same search
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time

import numpy as np

from . import __version__
from .config import TrainConfig
from .io import atomic_write, check_output_dir, write_json, write_marker

# name: how a trial draws it. "log": log-uniform in [lo, hi]; "choice": one of the values, uniformly.
SPACE = {
    "lr": ("log", 0.01, 0.3),
    "reg_lambda": ("log", 0.01, 10.0),
    "batch_size": ("choice", (32, 64, 128, 256)),
    "emb_dim": ("choice", (16, 32, 64)),  # goods_dim and cate_dim together
    "attention_units": ("choice", ((40, 20), (80, 40), (160, 80))),
    "hidden_units": ("choice", ((100, 40), (200, 80), (400, 160))),
    "activation": ("choice", ("dice", "prelu")),
}
COLUMNS = ("trial", "status", "valid_gauc", "valid_auc", "valid_logloss", "best_epoch", "epochs_run",
           "train_minutes")


def searched(base: TrainConfig, names=None) -> tuple:
    """The settings a search over ``base`` draws: ``names`` (default: all of SPACE) less those that do not
    apply (λ without regularisation, attention widths for the BaseModel)."""
    names = tuple(SPACE) if names is None else tuple(names)
    for n in names:
        if n not in SPACE:
            raise ValueError(f"--search: unknown setting {n!r} (the searchable ones: {', '.join(SPACE)})")
    return tuple(n for n in names if not (n == "reg_lambda" and base.reg == "none")
                 and not (n == "attention_units" and base.model == "base"))


def draw(base: TrainConfig, names, seed: int, trial: int) -> dict:
    """The TrainConfig JSON of ``trial``: the base settings with the searched ones drawn from the stream
    (seed, trial); trial 0 is the base itself. Every setting of SPACE is drawn, in SPACE's order, whether
    searched or not, so that a setting's value in a trial does not depend on which others are searched."""
    cfg = base.to_json()
    cfg["seed"] = int(seed)
    if trial == 0:
        return cfg
    rng = np.random.default_rng([int(seed), 11, int(trial)])
    for name, spec in SPACE.items():
        if spec[0] == "log":
            v = float(math.exp(rng.uniform(math.log(spec[1]), math.log(spec[2]))))
            v = float(f"{v:.3g}")
        else:
            v = spec[1][int(rng.integers(len(spec[1])))]
        if name not in names:
            continue
        if name == "emb_dim":
            cfg["goods_dim"] = cfg["cate_dim"] = v
        elif name.endswith("_units"):
            cfg[name] = list(v)
        else:
            cfg[name] = v
    return cfg


def settings(cfg: dict, names) -> dict:
    """The searched settings of a trial's config, as they appear in trials.csv."""
    out = {}
    for n in names:
        v = cfg["goods_dim"] if n == "emb_dim" else cfg[n]
        out[n] = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else "default" if v is None else v
    return out


def _trial_dir(out, t):
    return os.path.join(out, "trials", f"{t:03d}")


def run_trial(data_spec, data_overrides, cfg_json, trial_dir, threads=None):
    """One trial (in a worker process): train ``cfg_json`` on the data with checkpoints in ``trial_dir`` (resuming
    its last checkpoint when a killed run left one), validation only; writes and returns its record."""
    from .cli import load_data
    from .train import TrainingError, train

    data = load_data(data_spec, data_overrides)
    cfg = TrainConfig.from_json(cfg_json)
    cfg.threads = threads
    resume = None
    if os.path.isfile(os.path.join(trial_dir, "last.npz")):  # a killed trial: resume it if it is this trial
        from .checkpoint import read_checkpoint

        _, meta = read_checkpoint(trial_dir, "last")
        if dict(meta["train_config"], threads=None) == dict(TrainConfig.from_json(cfg_json).to_json(), threads=None):
            resume = trial_dir
    t0 = time.time()
    try:
        summary, _ = train(data, cfg, out=trial_dir, resume=resume, log=lambda *a: None, progress=None, force=True,
                           test=False)
        record = {"status": "ok", "valid": summary["valid"], "best_epoch": summary["best_epoch"],
                  "epochs_run": summary["epochs_run"], "train_seconds": summary["train_seconds"]}
    except TrainingError as e:
        record = {"status": "failed", "error": str(e), "valid": None, "best_epoch": None, "epochs_run": None,
                  "train_seconds": time.time() - t0}
    record["config"] = cfg_json
    write_json(os.path.join(trial_dir, "result.json"), record)
    return record


def _read_record(trial_dir, cfg_json):
    path = os.path.join(trial_dir, "result.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        record = json.load(f)
    return record if record.get("config") == cfg_json else None


def _best(records):
    """The trial with the best validation GAUC among the finished ones (the lower number on a tie), or None."""
    ok = [t for t in sorted(records) if records[t] is not None and records[t]["status"] == "ok"
          and math.isfinite(records[t]["valid"]["gauc"])]
    return max(ok, key=lambda t: (records[t]["valid"]["gauc"], -t), default=None)


def tune(data_spec, base: TrainConfig, trials: int, seed: int = 0, out: str = "runs/tune", jobs: int = 1,
         names=None, data_overrides=None, log=print, progress=sys.stderr):
    """Run (or resume, or extend) the search; return (best record with its "test" metrics, all records).

    data_spec: "synthetic" or a prepared dataset directory (each worker loads it); data_overrides: the
    synthetic generator's options. ValueError, before any trial runs, for an --out that holds something else
    or another search.
    """
    from .cli import load_data

    if trials < 1:
        raise ValueError(f"--trials: must be at least 1, got {trials}")
    if jobs < 1:
        raise ValueError(f"--jobs: must be at least 1, got {jobs}")
    base.validate()
    names = searched(base, names)
    data = load_data(data_spec, data_overrides)
    identity = {"data_sha256": data.fingerprint(), "seed": int(seed), "base": dict(base.to_json(), seed=None,
                threads=None), "searched": list(names)}
    previous = check_output_dir(out, "tune")
    state_path = os.path.join(out, "tune.json")
    if previous:
        with open(state_path) as f:
            old = json.load(f)
        for k in identity:
            if old.get(k) != identity[k]:
                raise ValueError(f"--out: {out} holds another search (its {k} differs: {old.get(k)!r} vs "
                                 f"{identity[k]!r}); choose another --out (nothing was touched)")
    else:
        os.makedirs(out, exist_ok=True)
        write_marker(out, "tune")
        write_json(state_path, dict(identity, minidin_version=__version__))
    configs = [draw(base, names, seed, t) for t in range(trials)]
    for t in range(trials):  # every trial's settings are valid before any runs
        TrainConfig.from_json(configs[t])
    records = {t: _read_record(_trial_dir(out, t), configs[t]) for t in range(trials)}
    todo = [t for t in range(trials) if records[t] is None]
    if len(todo) < trials:
        log(f"tune: {trials - len(todo)} of {trials} trials already done in {out}; running {len(todo)}")
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else base.threads
    t0 = time.time()

    def report(t):
        r, best_t = records[t], _best(records)
        what = f"valid GAUC {r['valid']['gauc']:.4f}" if r["status"] == "ok" else f"failed ({r['error']})"
        done = sum(r is not None for r in records.values())
        best = "none yet" if best_t is None else f"{records[best_t]['valid']['gauc']:.4f} (trial {best_t})"
        if progress is not None:
            print(f"trial {t} ({_describe(settings(configs[t], names))}): {what} | {done}/{trials} done, best {best} | "
                  f"{_clock(time.time() - t0)}", file=progress, flush=True)

    if jobs == 1 or len(todo) <= 1:
        for t in todo:
            records[t] = run_trial(data_spec, data_overrides, configs[t], _trial_dir(out, t), threads)
            report(t)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(run_trial, data_spec, data_overrides, configs[t], _trial_dir(out, t), threads): t
                       for t in todo}
            for f in as_completed(futures):
                t = futures[f]
                records[t] = f.result()
                report(t)
    best_t = _best(records)
    _write_trials(os.path.join(out, "trials.csv"), records, configs, names)
    if best_t is None:
        raise ValueError(f"tune: every trial failed (see {os.path.join(out, 'trials.csv')})")
    best = dict(records[best_t], trial=best_t, test=_test_metrics(data, _trial_dir(out, best_t)))
    write_json(os.path.join(out, "best.json"), {
        "train_config": dict(configs[best_t], threads=None),
        "tune": {"trial": best_t, "trials": trials, "seed": int(seed), "searched": list(names),
                 "valid": best["valid"], "test": best["test"], "best_epoch": best["best_epoch"],
                 "data_sha256": identity["data_sha256"], "data": data.description, "minidin_version": __version__}})
    return best, [records[t] for t in range(trials)]


def _test_metrics(data, trial_dir):
    """The chosen trial's best checkpoint on test: the one test evaluation of a search."""
    from .checkpoint import read_checkpoint, resolve, restore_model
    from .train import evaluate

    path = resolve(trial_dir)
    arrays, meta = read_checkpoint(path)
    model = restore_model(arrays, meta, path)
    return evaluate(model, data, "test", max_history=data.window(meta.get("max_history")))


def _write_trials(path, records, configs, names):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(COLUMNS) + list(names))
    for t in sorted(records):
        r = records[t]
        v = r["valid"] or {}
        w.writerow([t, r["status"], _num(v.get("gauc")), _num(v.get("auc")), _num(v.get("logloss")),
                    r["best_epoch"] if r["best_epoch"] is not None else "", r["epochs_run"] or "",
                    f"{r['train_seconds'] / 60:.2f}"] + list(settings(configs[t], names).values()))
    text = buf.getvalue()
    atomic_write(path, lambda f: f.write(text.encode()))


def _num(v):
    return "" if v is None else f"{v:.4f}"


def _clock(s):
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def _describe(s):
    return " ".join(f"{k}={v}" for k, v in s.items())
