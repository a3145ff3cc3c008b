"""Checkpoints: one ``.npz`` holds everything needed to rebuild and resume; a ``.json`` beside it is for people.

``NAME.npz`` keys:
    param/<name>   model parameters            state/<name>  Dice running averages
    acc/<name>     optimizer accumulators      meta_json     JSON text: model config, training config,
                                                             vocab sizes, version, data description,
                                                             metrics, epoch, RNG state, history
``NAME.json`` is the same JSON, indented. Loading reads only the ``.npz``.

Both files are written to a temporary file in the same directory and renamed
into place (``os.replace`` is atomic on POSIX), so a run killed mid-write
leaves the previous checkpoint loadable.
"""
from __future__ import annotations

import json
import os

import numpy as np

from . import __version__
from .config import ModelConfig
from .io import atomic_write
from .model import from_config

FORMAT = "minidin-checkpoint-1"


def save(model, path):
    """Write a model's weights, Dice running averages and config to ``path`` (.npz, atomically);
    ``minidin.load(path)`` reads it back."""
    save_checkpoint(path, model, {"kind": "model"})


def save_checkpoint(path, model, meta: dict, optimizer=None):
    """Write ``path`` (.npz) and the JSON beside it, atomically (model, optimizer state and ``meta``)."""
    if not str(path).endswith(".npz"):
        raise ValueError(f"checkpoint: path must end in .npz, got {path}")
    meta = dict(meta, format=FORMAT, version=__version__, model_config=model.config())
    arrays = {f"param/{n}": p for n, p in model.params.items()}
    arrays.update({f"state/{n}": s for n, s in model.state.items()})
    if optimizer is not None:
        arrays.update(optimizer.state_arrays())
    text = json.dumps(meta, indent=2, sort_keys=True)
    arrays["meta_json"] = np.array(text)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    atomic_write(str(path)[:-4] + ".json", lambda f: f.write(text.encode()))


def resolve(path, name="best"):
    """A checkpoint directory means its ``name``.npz; an .npz path is used as is."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint: expected a path (str or os.PathLike), got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, f"{name}.npz")
    if not os.path.exists(path):
        raise ValueError(f"checkpoint: {path} does not exist")
    return path


def read_checkpoint(path, name="best"):
    """(arrays dict, meta dict) of a checkpoint; ValueError if it is missing or corrupt."""
    path = resolve(path, name)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta_json")))
    except Exception as e:  # zipfile.BadZipFile, KeyError, ValueError, EOFError, JSONDecodeError ...
        raise ValueError(f"checkpoint: {path} is corrupt or not a minidin checkpoint ({type(e).__name__}: {e})") \
            from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint: {path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    return arrays, meta


def model_from_config(cfg: dict):
    """The model a checkpoint's ``model_config`` describes, field for field (ModelConfig checks it)."""
    return from_config(ModelConfig.from_json(cfg))


def restore_model(arrays, meta, path="checkpoint"):
    if "model_config" not in meta:
        raise ValueError(f"checkpoint: {path} is corrupt: missing model_config")
    try:
        model = model_from_config(meta["model_config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint: {path} has a bad model_config: {e}") from None
    expected = {f"{group}/{n}" for group, target in (("param", model.params), ("state", model.state))
                for n in target}
    unknown = sorted(k for k in arrays if k.split("/", 1)[0] in ("param", "state") and k not in expected)
    if unknown:
        raise ValueError(f"checkpoint: {path} is corrupt: unknown array {unknown[0]} (not in its model_config)")
    for group, target in (("param", model.params), ("state", model.state)):
        for n, dst in target.items():
            key = f"{group}/{n}"
            if key not in arrays:
                raise ValueError(f"checkpoint: {path} is corrupt: missing {key}")
            a = arrays[key]
            if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
                raise ValueError(f"checkpoint: {path} is corrupt: {key} is not a numeric array")
            if a.shape != dst.shape:
                raise ValueError(f"checkpoint: {path} is corrupt: {key} has shape {a.shape}, expected {dst.shape}")
            with np.errstate(over="ignore"):
                dst[...] = a  # in place: dense parameters stay views of the flat buffer
            if not np.all(np.isfinite(dst)):  # NaN or infinity, or a float64 value beyond float32's range
                raise ValueError(f"checkpoint: {path} is corrupt: {key} contains NaN or infinity, or values "
                                 f"beyond {model.dtype.name}'s range")
            if n.endswith("running_var") and np.any(dst < 0):
                raise ValueError(f"checkpoint: {path} is corrupt: {key} has a negative variance")
    return model


def load(path):
    """Load a model from a checkpoint directory (its best.npz) or an .npz path."""
    path = resolve(path)
    arrays, meta = read_checkpoint(path)
    return restore_model(arrays, meta, path)
