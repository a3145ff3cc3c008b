"""The training loop: epochs, evaluation, early stopping on validation, checkpoints, resume.

Model selection and early stopping use the **validation** split only (GAUC,
the paper's metric); test metrics are computed after each epoch for the record
but never steer anything. (The official code selects on test; we do not.)

Determinism: the model is initialised from ``seed`` and the training order is
shuffled by a generator seeded from ``seed`` whose state is checkpointed, so the
same seed and thread count give identical metrics, and a resumed run continues
exactly where the interrupted one stopped.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numba
import numpy as np

from . import metrics
from .checkpoint import read_checkpoint, restore_model, save_checkpoint
from .config import LAMBDA_SAMPLES_PER_ID, TrainConfig, reg_strength
from .io import MARKER, check_output_dir, write_marker
from .model import from_config
from .optim import SGD, NonFiniteGradient, SparseAdagrad


class TrainingError(RuntimeError):
    """Training cannot continue (e.g. the loss became NaN); earlier checkpoints are intact."""


def build_model(cfg: TrainConfig, n_goods: int, n_cates: int, schema=()):
    """The model of a run's config for a dataset's vocabulary sizes and schema (``Dataset.fields``)."""
    return from_config(cfg.model_config(n_goods, n_cates, schema))


def field_names(model) -> list:
    """The schema fields a model takes (what its batches must carry)."""
    return [f.name for f in model.cfg.fields]


def build_optimizer(cfg: TrainConfig, model, counts, reg_lambda=None):
    """The run's optimizer; ``reg_lambda``: the resolved λ (``reg_strength``), needed when ``cfg.reg_lambda`` is
    None (the data-scaled default)."""
    lam = cfg.reg_lambda if cfg.reg_lambda is not None else reg_lambda
    if lam is None:
        raise ValueError("reg_lambda: the data-scaled default needs the data (pass reg_strength(cfg, S, V))")
    kw = dict(lr=cfg.lr, reg=cfg.reg, reg_lambda=lam, counts=counts, clip_norm=cfg.clip_norm)
    if cfg.optimizer == "adagrad":
        return SparseAdagrad(model.params, initial_accumulator_value=cfg.adagrad_init, **kw)
    return SGD(model.params, **kw)


def predict_split(model, dataset, split, batch_size=1024, max_history=None):
    """(S,) inference-mode click probabilities for every sample of a split (``max_history``: see
    ``Dataset.batch``; None uses the dataset's own window)."""
    out = np.empty(len(dataset.splits[split]), dtype=np.float64)
    for idx, batch in dataset.batches(split, batch_size, max_history=max_history, fields=field_names(model)):
        out[idx] = model.predict(batch)
    return out


def score(labels, probs, users) -> dict:
    return {"auc": metrics.auc(labels, probs), "gauc": metrics.gauc(labels, probs, users),
            "logloss": metrics.logloss(labels, probs)}


def evaluate(model, dataset, split, batch_size=1024, max_history=None) -> dict:
    """{"auc", "gauc", "logloss"} of a model on one split (inference mode; the window as in ``predict_split``)."""
    s = dataset.splits[split]
    return score(s.labels, predict_split(model, dataset, split, batch_size, max_history), s.users)


def oracle(dataset, split) -> dict | None:
    """AUC and GAUC of scoring each sample by its true click probability (None where unknown)."""
    s = dataset.splits[split]
    if s.probs is None:
        return None
    return {"auc": metrics.auc(s.labels, s.probs), "gauc": metrics.gauc(s.labels, s.probs, s.users)}


class _Progress:
    """One progress line: samples/s, loss, ETA. Rewritten in place on a terminal, every 10 s otherwise."""

    def __init__(self, stream, total, epoch, epochs):
        self.stream, self.total, self.epoch, self.epochs = stream, total, epoch, epochs
        self.tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
        self.t0 = self.last = time.perf_counter()

    def update(self, done, loss, force=False):
        if self.stream is None:
            return
        now = time.perf_counter()
        if not force and now - self.last < (0.5 if self.tty else 10.0):
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.total - done) / max(rate, 1e-9)
        line = (f"epoch {self.epoch + 1}/{self.epochs}  {done}/{self.total}  {rate / 1000:.1f}k samples/s  "
                f"loss {loss:.4f}  ETA {eta:.0f}s")
        if self.tty:
            self.stream.write("\r" + line + " " * 4)
            if force:
                self.stream.write("\r" + " " * (len(line) + 4) + "\r")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _fmt(m):
    """'auc 0.7000 gauc 0.6900 ...', a ranking selection's metrics included."""
    flat = {k: v for k, v in m.items() if isinstance(v, float)}
    flat.update({k: v for k, v in m.get("ranking", {}).items() if k in ("hr@10", "ndcg@10", "mrr")})
    return " ".join(f"{k} {v:.4f}" for k, v in flat.items())


def train(dataset, cfg: TrainConfig, out=None, resume=None, log=print, progress="stderr", resume_epochs=None,
          force=False, test=True):
    """Train on ``dataset`` (a ``minidin.data.Dataset``); return ``(summary dict, model)``.

    out:    directory for best.npz/.json and last.npz/.json (None: no checkpoints)
    resume: a checkpoint directory (its last.npz) or .npz path to continue from; the run's
            configuration comes from the checkpoint (``cfg`` is ignored), except that
            ``resume_epochs`` can raise its total number of epochs; the data must be the data it was
            trained on (compared by ``Dataset.fingerprint``)
    force:  let ``out`` replace another run's checkpoints (never anything minidin did not write)
    progress: a stream for the progress line ("stderr": sys.stderr at the start of the run; None: none)
    test:   evaluate the test split after every epoch (False: validation only, as ``minidin tune``'s trials do,
            so that no test figure can steer a choice; the summary's and history's "test" are then None)

    ``out`` must not exist, be empty, or be the run being resumed; another run's checkpoints need
    ``force``; a folder minidin did not write is refused (ValueError, before anything runs).
    """
    arrays = saved = None
    if out is not None:
        previous = check_output_dir(out, "run")
        same_run = previous and resume is not None and os.path.isdir(resume) and os.path.samefile(out, resume)
        if previous and not same_run and not force:
            raise ValueError(f"--out: {out} holds another run's checkpoints; pass --force to replace them, or "
                             f"--resume {out} to continue that run (nothing was touched)")
    if resume is not None:
        arrays, saved = read_checkpoint(resume, "last")
        cfg = TrainConfig.from_json(saved["train_config"])
        if resume_epochs is not None:
            cfg.epochs = int(resume_epochs)
    cfg.validate()
    threads = numba.get_num_threads()
    if cfg.threads is not None:
        numba.set_num_threads(cfg.threads)
    try:
        # "stderr": the stream sys.stderr is when the run starts (not when this module was imported)
        return _train(dataset, cfg, out, log, sys.stderr if progress == "stderr" else progress, arrays, saved,
                      test)
    finally:
        numba.set_num_threads(threads)


def _train(dataset, cfg, out, log, progress, arrays, saved, test=True):
    """The loop of ``train``; ``arrays``/``saved`` are the checkpoint to resume from (None: a new run)."""
    history, best, bad_epochs = [], None, 0
    start = 0 if saved is None else saved["epoch"] + 1  # the first epoch this call trains
    where = dataset.description.get("path") or dataset.description.get("kind", "the dataset")
    for split in ("train", "valid", "test"):
        labels = dataset.splits[split].labels
        if labels.size == 0 or np.all(labels == labels[0]):
            raise ValueError(f"data: {where}: the {split} split has "
                             + ("no samples" if labels.size == 0 else f"only one class (every label {labels[0]:g})")
                             + "; training and model selection need clicks and non-clicks in every split")
    data_sha = dataset.fingerprint()
    if saved is not None and saved.get("data_sha256") not in (None, data_sha):
        raise ValueError(f"--data: not the data the checkpoint was trained on (sha256 {data_sha[:12]}..., "
                         f"checkpoint {saved['data_sha256'][:12]}...); resume with the same data")
    # The window is an argument of every batching call, never written into the caller's dataset: the run's
    # --max-history when given, else the dataset's own (a prepared dataset's recommended window). A resumed
    # run keeps the window it started with.
    window = dataset.window(cfg.max_history)
    if saved is not None and "max_history" in saved:
        window = dataset.window(saved["max_history"])

    def epoch_data(epoch):
        """The data of one epoch: the dataset, or (--train-negatives) its train positives with negatives drawn
        for this epoch, from a stream seeded by (seed, epoch) alone, so a resumed run draws the same."""
        if not cfg.train_negatives:
            return dataset
        from .ranking import resample_train_negatives

        return resample_train_negatives(dataset, cfg.train_negatives, cfg.train_negative_sampling,
                                        np.random.default_rng([cfg.seed, 3, epoch]))

    data0 = epoch_data(start)
    counts = data0.feature_counts("train", window) if cfg.reg == "mba" else None
    n_train = len(data0.splits["train"])
    lam = reg_strength(cfg, n_train, dataset.n_goods)
    if cfg.reg != "none" and cfg.reg_lambda is None:
        log(f"reg {cfg.reg}: lambda {lam:.4g} (the default: {n_train} training samples / "
            f"({LAMBDA_SAMPLES_PER_ID} x {dataset.n_goods} goods ids))")
    if saved is not None:
        model = restore_model(arrays, saved)
        opt = build_optimizer(cfg, model, counts, lam)
        opt.load_state_arrays(arrays)
        rng = np.random.default_rng()
        rng.bit_generator.state = saved["rng_state"]
        history, best, bad_epochs = saved["history"], saved.get("best"), saved["bad_epochs"]
        log(f"resumed from epoch {saved['epoch'] + 1} of {cfg.epochs}")
    else:
        model = build_model(cfg, dataset.n_goods, dataset.n_cates, dataset.fields)
        opt = build_optimizer(cfg, model, counts, lam)
        rng = np.random.default_rng([cfg.seed, 1])  # shuffling stream, separate from initialisation
    names = field_names(model)
    oracles = {s: oracle(dataset, s) for s in ("valid", "test")}
    train_seconds = sum(h["train_seconds"] for h in history)
    samples_seen = sum(h["train_samples"] for h in history)
    steps = sum(-(-h["train_samples"] // cfg.batch_size) for h in history)  # optimizer steps so far (warmup)

    def meta(epoch):
        return {"kind": "training", "train_config": cfg.to_json(), "reg_lambda": lam, "max_history": window,
                "data_sha256": data_sha,
                "n_goods": dataset.n_goods,
                "n_cates": dataset.n_cates, "data": dataset.description, "epoch": epoch, "history": history,
                "best": best, "bad_epochs": bad_epochs, "rng_state": rng.bit_generator.state,
                "metrics": history[epoch]["metrics"] if history else None, "oracle": oracles}

    where = f"; the last good checkpoint is in {out}" if out else ""
    for epoch in range(start, cfg.epochs):
        if bad_epochs > 0 and bad_epochs >= cfg.patience:
            break  # a resumed run that had already stopped early
        lr = cfg.lr * cfg.lr_decay ** epoch
        data = data0 if epoch == start else epoch_data(epoch)
        if epoch != start and cfg.train_negatives and cfg.reg == "mba":
            opt.set_counts(data.feature_counts("train", window))  # n_j of this epoch's samples
        n_train = len(data.splits["train"])
        bar = _Progress(progress, n_train, epoch, cfg.epochs)
        t0 = time.perf_counter()
        loss_sum, done = 0.0, 0
        for idx, batch in data.batches("train", cfg.batch_size, shuffle=True, rng=rng, max_history=window,
                                       fields=names):
            steps += 1
            opt.lr = lr * min(1.0, steps / cfg.lr_warmup) if cfg.lr_warmup else lr
            loss, grads = model.loss_and_grad(batch)
            if not math.isfinite(loss):
                raise TrainingError(f"loss became {loss} at epoch {epoch + 1}, after {done} samples "
                                    f"(try a smaller --lr or --clip-norm){where}")
            try:
                opt.step(grads)
            except NonFiniteGradient as e:  # nothing moved: the checkpoints are the last good ones
                raise TrainingError(f"training stopped at epoch {epoch + 1}, after {done} samples: {e} "
                                    f"(try a smaller --lr or --clip-norm){where}") from None
            loss_sum += loss * len(idx)
            done += len(idx)
            bar.update(done, loss_sum / done)
        seconds = time.perf_counter() - t0
        bar.update(done, loss_sum / max(done, 1), force=True)
        train_seconds += seconds
        samples_seen += done
        m = {s: evaluate(model, dataset, s, max_history=window) if s == "valid" or test else None
             for s in ("valid", "test")}
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(done, 1), "train_seconds": seconds,
                        "train_samples": done, "lr": lr, "metrics": m})
        if cfg.select in ("gauc", "auc"):
            selected = m["valid"][cfg.select]
        else:  # a ranking metric over sampled validation negatives, seeded the same every epoch
            from .ranking import evaluate_ranking

            r = evaluate_ranking(model, dataset, "valid", cfg.select_negatives, seed=cfg.seed, max_history=window)
            r.pop("protocol"), r.pop("seconds")  # the metrics only: a resumed run's history equals a straight one
            m["valid"]["ranking"] = r
            selected = r[cfg.select]
        previous = None if best is None else best.get("selected", best["valid"].get(cfg.select))
        improved = previous is None or selected > previous
        if improved:
            best = {"epoch": epoch + 1, **m}
            if cfg.select != "gauc":
                best["selected"] = selected
            bad_epochs = 0
        else:
            bad_epochs += 1
        tested = f"test {_fmt(m['test'])} | " if test else ""
        log(f"epoch {epoch + 1}: train loss {loss_sum / max(done, 1):.4f} | valid {_fmt(m['valid'])} | {tested}"
            f"{done / seconds / 1000:.1f}k samples/s{'  *' if improved else ''}")
        if out is not None:
            if not os.path.isfile(os.path.join(out, MARKER)):
                os.makedirs(out, exist_ok=True)
                write_marker(out, "run")
            if improved:
                save_checkpoint(os.path.join(out, "best.npz"), model, meta(epoch), opt)
            save_checkpoint(os.path.join(out, "last.npz"), model, meta(epoch), opt)
        if bad_epochs > 0 and bad_epochs >= cfg.patience:
            log(f"early stop: no better validation {cfg.select.upper()} for {bad_epochs} epoch(s)")
            break
    summary = {"model": cfg.model, "activation": cfg.activation, "reg": cfg.reg, "reg_lambda": lam,
               "max_history": window,
               "epochs_run": len(history), "best_epoch": best["epoch"] if best else None,
               "valid": best["valid"] if best else None, "test": best["test"] if best else None,
               "train_seconds": train_seconds, "train_samples_per_second": samples_seen / max(train_seconds, 1e-9),
               "history": [{"epoch": h["epoch"], "train_loss": h["train_loss"], "valid": h["metrics"]["valid"],
                            "test": h["metrics"]["test"]} for h in history]}
    if oracles["test"] is not None:
        summary["oracle"] = oracles["test"]
        summary["oracle_valid"] = oracles["valid"]
    return summary, model
