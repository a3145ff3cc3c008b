"""One cached training run per JSON file, shared by the reproduce_* scripts (so they can resume).

Every cached summary carries its provenance under ``"provenance"``: the full training config, the data's
sha256 (``Dataset.fingerprint``), ``RESULTS_VERSION``, the package version and the git commit that ran it.
A cached file is reused only when its key, a hash of (config, data sha256, RESULTS_VERSION), matches the
run asked for: a changed setting, changed data or changed arithmetic runs again, while a commit that
changes none of them reuses the result. One policy for synthetic and real results.

The rule for ``RESULTS_VERSION``: raise it in the commit that changes what a run computes (the model, the
loss, an optimizer update, batching or sampling of the data, a metric). A change of floating-point
evaluation order alone (a faster kernel equal to rounding, tested so) does not raise it: such a change moves
a run by less than the spread over seeds that the tables report.
"""
from __future__ import annotations

import hashlib
import json
import os
import time

from minidin import __version__
from minidin.bench import source_commit
from minidin.train import TrainConfig, train

RESULTS_VERSION = 1
# The options of schema fields. A run whose model takes no schema field computes what a run did before they
# existed, so its key leaves them out (and fingerprints the data as goods and categories alone): its cached
# result stays valid.
FIELD_OPTIONS = ("use_fields", "field_dim", "field_dims", "multi_hot_pooling")
# Options added after results were cached, each at a default that computes what runs did before it existed:
# a config at these defaults leaves them out of its key, so those results stay valid.
LATER_DEFAULTS = {"train_negatives": None, "train_negative_sampling": "uniform", "select": "gauc",
                  "select_negatives": "99", "lr_warmup": 0}


# read once, when this module is imported: the code a process runs is the code it imported, whatever the
# checkout holds by the time a later run in the same process finishes
COMMIT = source_commit()


def run_key(config: dict, data_sha256: str) -> str:
    text = json.dumps({"config": config, "data": data_sha256, "results_version": RESULTS_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_identity(cfg: TrainConfig, data):
    """(key, data sha256) of the run of ``cfg`` on ``data``: the data fingerprinted as its model sees it (only
    the schema fields it takes), the config without the field options where it takes none (FIELD_OPTIONS)."""
    used = [f.name for f in cfg.model_config(data.n_goods, data.n_cates, data.fields).fields]
    config = {k: v for k, v in cfg.to_json().items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}
    if not used:
        config = {k: v for k, v in config.items() if k not in FIELD_OPTIONS}
    sha = data.fingerprint(fields=used)
    return run_key(config, sha), sha


def provenance(cfg: TrainConfig, data) -> dict:
    key, sha = run_identity(cfg, data)
    return {"key": key, "config": cfg.to_json(), "data_sha256": sha, "results_version": RESULTS_VERSION,
            "minidin_version": __version__, "commit": COMMIT}


def read_cached(path, key):
    """The cached summary at ``path`` when it was made by the run ``key`` names, else None."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        summary = json.load(f)
    return summary if summary.get("provenance", {}).get("key") == key else None


def cached_summary(path, data, config: dict):
    """The summary cached at ``path`` when its provenance key matches the run of ``config`` on ``data`` (data None,
    for a table rebuilt without the prepared data: trust the key recorded in the file); else None."""
    if not os.path.exists(path):
        return None
    if data is None:
        with open(path) as f:
            key = json.load(f).get("provenance", {}).get("key", "")
    else:
        key, _ = run_identity(TrainConfig(**config), data)
    return read_cached(path, key)


def cached_run(path, data, config: dict, label: str):
    """The summary of ``train(data, TrainConfig(**config))``: read from ``path`` when its provenance key
    matches, else run, and saved there with its provenance."""
    cfg = TrainConfig(**config)
    prov = provenance(cfg, data)
    summary = read_cached(path, prov["key"])
    if summary is not None:
        return summary
    t = time.time()
    summary, _ = train(data, cfg, log=lambda *a: None, progress=None)
    summary["wall_seconds"] = time.time() - t
    summary["provenance"] = prov
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f)
    os.replace(path + ".tmp", path)
    print(f"{label}: valid GAUC {summary['valid']['gauc']:.4f} test GAUC {summary['test']['gauc']:.4f} "
          f"(best epoch {summary['best_epoch']}, {summary['wall_seconds']:.0f}s)", flush=True)
    return summary


def run_cells(fn, prefix, cells, pool=None):
    """``fn(*prefix, *cell)`` for every cell: in the pool's worker processes when one is given (all submitted,
    then waited for, so a failed run raises here), else one after the other in this process."""
    if pool is None:
        for c in cells:
            fn(*prefix, *c)
    else:
        for f in [pool.submit(fn, *prefix, *c) for c in cells]:
            f.result()


def replace_table(path, name, text):
    """Put ``text`` between the ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers of ``path`` (written to a
    temporary file, then renamed); without the markers, say so and leave the file alone."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    with open(path) as f:
        doc = f.read()
    if start not in doc or end not in doc:
        print(f"{path}: no {start} ... {end} markers; printing only")
        return
    doc = doc[:doc.index(start) + len(start)] + "\n" + text + doc[doc.index(end):]
    with open(path + ".tmp", "w") as f:
        f.write(doc)
    os.replace(path + ".tmp", path)
