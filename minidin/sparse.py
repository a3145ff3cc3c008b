"""Sparse gradient of an embedding table: only the rows a batch touched."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# Regularization (l2 / mba) applies to every embedding table (goods, category and each schema field's) but not
# to these: the optional per-goods logit bias (also row-sparse) is not regularized (as in the official code and
# common practice).
UNREGULARIZED_TABLES = ("goods_bias",)


@dataclass(frozen=True, eq=False)
class SparseGrad:
    """Gradient of a ``(V, D)`` table that is zero outside ``rows``.

    rows:   (U,) int64, sorted unique row ids present in the batch
    values: (U, D) float, the gradient of those rows (repeated ids already summed)
    n_rows: V, the table's row count (so ``to_dense`` and ``shape`` work)
    """

    rows: np.ndarray
    values: np.ndarray
    n_rows: int

    @property
    def shape(self):
        return (self.n_rows, self.values.shape[1])

    @property
    def dtype(self):
        return self.values.dtype

    def to_dense(self) -> np.ndarray:
        """The full ``(V, D)`` gradient, zeros outside ``rows``."""
        out = np.zeros(self.shape, dtype=self.values.dtype)
        out[self.rows] = self.values
        return out
