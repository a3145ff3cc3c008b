"""minidin: a from-scratch Deep Interest Network in NumPy and Numba.

Glossary: B batch, N behaviours in a batch (all histories together), T one
history's length, D embedding width (goods_dim + cate_dim), A attention hidden
width, H MLP hidden width, V vocabulary rows, U unique ids in a batch.
"""
from .batch import Batch
from .model import DIN, BaseModel
from .sparse import SparseGrad

__version__ = "0.1.0"

__all__ = ["Batch", "DIN", "BaseModel", "SparseGrad", "__version__"]
