"""minidin: a from-scratch Deep Interest Network in NumPy and Numba.

Notation (docs/index.md has the whole table): B samples in a batch, N behaviours
in a batch (all histories together), T one history's length, D embedding width
(goods_dim + cate_dim), A₁, A₂ attention hidden widths, H₁, H₂ main MLP widths,
V rows of a table, U distinct ids of a table in a batch; inside a kernel, (M, H)
is the array it works on.
"""
import os

# Numba parallelises across samples (prange) and calls OpenBLAS for the dense
# layers. Two thread pools on a small CPU spin against each other (OpenBLAS
# threads busy-wait after each call): measured 20x slower at batch 32 on 2
# cores. So BLAS runs single-threaded unless you set OPENBLAS_NUM_THREADS
# yourself before importing minidin (or scipy.linalg).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

# The public names load on first use (PEP 562), so ``minidin --help`` and ``import minidin.config`` do not
# pay for Numba and SciPy; ``from minidin import DIN`` and ``minidin.DIN`` work as usual.
_EXPORTS = {
    "Batch": "batch", "Bag": "batch", "FieldSpec": "config", "DIN": "model", "BaseModel": "model", "DeepInterestModel": "model",
    "ModelConfig": "config", "Params": "params", "Grads": "params", "SparseGrad": "sparse",
    "SparseAdagrad": "optim", "SGD": "optim", "feature_counts": "data.counts", "load": "checkpoint", "save": "checkpoint",
}
__all__ = [*_EXPORTS, "metrics", "__version__"]


def __getattr__(name):
    import importlib

    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name == "metrics":
        return importlib.import_module(".metrics", __name__)
    raise AttributeError(f"module 'minidin' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
