"""minidin: a from-scratch Deep Interest Network in NumPy and Numba.

Glossary: B batch, N behaviours in a batch (all histories together), T one
history's length, D embedding width (goods_dim + cate_dim), A attention hidden
width, H MLP hidden width, V vocabulary rows, U unique ids in a batch.
"""
import os

# Numba parallelises across samples (prange) and calls OpenBLAS for the dense
# layers. Two thread pools on a small CPU spin against each other (OpenBLAS
# threads busy-wait after each call): measured 20x slower at batch 32 on 2
# cores. So BLAS runs single-threaded unless you set OPENBLAS_NUM_THREADS
# yourself before importing minidin (or scipy.linalg).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

from . import metrics  # noqa: E402
from .batch import Batch  # noqa: E402
from .checkpoint import load, save  # noqa: E402
from .config import ModelConfig  # noqa: E402
from .model import DIN, BaseModel, DeepInterestModel  # noqa: E402
from .optim import SGD, SparseAdagrad, feature_counts  # noqa: E402
from .params import Grads, Params  # noqa: E402
from .sparse import SparseGrad  # noqa: E402

__all__ = ["Batch", "DIN", "BaseModel", "DeepInterestModel", "ModelConfig", "Params", "Grads", "SparseGrad",
           "SparseAdagrad", "SGD", "feature_counts", "load", "save", "metrics", "__version__"]
