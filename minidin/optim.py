"""Optimizers: sparse Adagrad and SGD, with mini-batch aware (MBA) regularization.

Adagrad, per element (``SparseAdagrad``):

    g = grad (+ regularization);   acc += g²;   w −= lr · g / (sqrt(acc) + eps)

Embedding tables are updated **only on the rows present in the batch** (the
rows of their ``SparseGrad``): with ``reg`` "none" or "mba" every other row and
its accumulator stay bitwise unchanged.

Regularization of the embedding tables (dense parameters are never regularized):

- ``"mba"`` (paper §5.1, Eq. 4–6 and the update rule): for each row j present in
  the mini-batch (α_mj = 1, however often it occurs), add λ · w_j / n_j to its
  gradient, where n_j = ``counts[table][j]`` is the number of *training samples*
  that contain id j (history or candidate, once per sample, over the whole
  training set: see ``feature_counts``). Summed over an epoch this is about the
  full L2 penalty λ·w_j, since id j is present in about n_j / B ... n_j batches.
- ``"l2"``: the plain penalty λ·w over every row of every table, every step. It
  touches all V rows (the cost the paper avoids); per epoch it is about as many
  times stronger than MBA at the same λ as there are batches, so tune λ per reg.
- ``"none"``.

The paper states the MBA rule for SGD; with Adagrad the regularization term is
added to the raw gradient before the accumulator update (the natural reading).

Optional: ``clip_norm`` rescales all gradients together when their global L2
norm exceeds it (the official code clips at 5); the learning rate can be changed
between steps through ``lr`` (the trainer's ``--lr-decay`` does that per epoch).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .sparse import EMBEDDING_TABLES, SPARSE_TABLES, SparseGrad

REGS = ("none", "l2", "mba")


# The Adagrad kernels divide by sqrt(acc) + eps with eps > 0 (checked by SparseAdagrad), so they compile with
# error_model="numpy": without the ZeroDivisionError branch the loops vectorize. Serial on purpose: the dense
# step over all ~140k MLP weights takes 150 us vectorized on one thread, against 460 us for the scalar loop
# split over 2 threads, and a parallel region would cost a thread-pool round trip and a parfor compile.
@njit(cache=True, error_model="numpy")
def adagrad_dense_step(w, acc, g, lr, eps, scale):
    """Adagrad on a flat array: g' = scale·g; acc += g'²; w −= lr·g'/(sqrt(acc)+eps).

    w, acc, g: (P,) float (flat views of a parameter, its accumulator and gradient)
    eps:       float > 0
    """
    for i in range(w.shape[0]):
        gi = scale * g[i]
        acc[i] += gi * gi
        w[i] -= lr * gi / (np.sqrt(acc[i]) + eps)


@njit(cache=True, error_model="numpy")
def adagrad_rows_step(table, acc, rows, values, reg_coef, lr, eps, scale):
    """Adagrad on the rows present in a batch, with per-row regularization.

    table, acc: (V, D) float, updated in place on ``rows`` only
    rows:       (U,) int64 sorted unique rows;  values: (U, D) their gradient
    reg_coef:   (U,) float, the coefficient c_j of the term c_j · w_j added to row j's gradient
                (λ / n_j for MBA, 0 for none)
    """
    D = table.shape[1]
    for u in range(rows.shape[0]):
        j = rows[u]
        for d in range(D):
            gi = scale * values[u, d] + reg_coef[u] * table[j, d]
            acc[j, d] += gi * gi
            table[j, d] -= lr * gi / (np.sqrt(acc[j, d]) + eps)


@njit(cache=True, error_model="numpy")
def adagrad_l2_table_step(table, acc, rows, values, lam, lr, eps, scale):
    """Adagrad with plain L2 on every row of a table: g_j = grad_j (0 if absent) + λ·w_j, for all V rows."""
    V, D = table.shape
    u = 0
    U = rows.shape[0]
    for j in range(V):
        present = u < U and rows[u] == j
        for d in range(D):
            gi = lam * table[j, d]
            if present:
                gi += scale * values[u, d]
            acc[j, d] += gi * gi
            table[j, d] -= lr * gi / (np.sqrt(acc[j, d]) + eps)
        if present:
            u += 1


@njit(cache=True)
def sgd_dense_step(w, g, lr, scale):
    for i in range(w.shape[0]):
        w[i] -= lr * scale * g[i]


@njit(cache=True)
def sgd_rows_step(table, rows, values, reg_coef, lr, scale):
    D = table.shape[1]
    for u in range(rows.shape[0]):
        j = rows[u]
        for d in range(D):
            table[j, d] -= lr * (scale * values[u, d] + reg_coef[u] * table[j, d])


def feature_counts(train_data, n_goods=None, n_cates=None) -> dict:
    """n_j for MBA: {"goods_emb": int64 (n_goods,), "cate_emb": int64 (n_cates,)}.

    ``train_data`` is a ``minidin.data.Dataset`` (its train split, with its
    ``max_history`` window; the vocabulary sizes are the dataset's) or a
    ``Batch`` or list of Batches (the vocabulary sizes default to the largest id
    + 1; pass the model's). Each sample counts an id once, whether it appears in
    the history, as the candidate, or several times.
    """
    from .batch import Batch
    from .data.dataset import Dataset

    if isinstance(train_data, Dataset):
        return train_data.feature_counts("train")
    batches = [train_data] if isinstance(train_data, Batch) else list(train_data)
    if not batches or not all(isinstance(b, Batch) for b in batches):
        raise ValueError("train_data: expected a Dataset, a Batch or a list of Batches")
    need_g = max(int(max(b.hist_goods.max(initial=0), b.cand_goods.max())) for b in batches) + 1
    need_c = max(int(max(b.hist_cates.max(initial=0), b.cand_cates.max())) for b in batches) + 1
    n_goods, n_cates = n_goods or need_g, n_cates or need_c
    if n_goods < need_g or n_cates < need_c:
        raise ValueError(f"n_goods/n_cates: the batches hold ids up to {need_g - 1} / {need_c - 1}")
    out = {"goods_emb": np.zeros(n_goods, np.int64), "cate_emb": np.zeros(n_cates, np.int64)}
    for b in batches:
        seg = np.repeat(np.arange(b.size), b.lengths)
        for table, h, c in (("goods_emb", b.hist_goods, b.cand_goods), ("cate_emb", b.hist_cates, b.cand_cates)):
            pairs = np.unique(np.stack([np.r_[seg, np.arange(b.size)], np.r_[h, c]]), axis=1)
            out[table] += np.bincount(pairs[1], minlength=out[table].shape[0])
    return out


class _Optimizer:
    def __init__(self, params, lr, reg, reg_lambda, counts, clip_norm):
        if not isinstance(params, dict) or not params:
            raise ValueError("params: expected the model's params dict")
        if reg not in REGS:
            raise ValueError(f"reg: must be one of {REGS}, got {reg!r}")
        if lr <= 0:
            raise ValueError(f"lr: must be positive, got {lr}")
        if reg_lambda < 0:
            raise ValueError(f"reg_lambda: must be non-negative, got {reg_lambda}")
        if clip_norm is not None and clip_norm <= 0:
            raise ValueError(f"clip_norm: must be positive, got {clip_norm}")
        self.params, self.lr, self.reg, self.reg_lambda, self.clip_norm = params, float(lr), reg, float(reg_lambda), clip_norm
        self.tables = [t for t in SPARSE_TABLES if t in params]
        self.reg_tables = [t for t in EMBEDDING_TABLES if t in params]
        if reg == "mba":
            if counts is None:
                raise ValueError("counts: reg='mba' needs feature counts (minidin.feature_counts(train_data))")
            for t in self.reg_tables:
                if t not in counts:
                    raise ValueError(f"counts: missing {t!r}")
                n = np.asarray(counts[t])
                if n.shape != (params[t].shape[0],):
                    raise ValueError(f"counts[{t!r}]: shape {n.shape}, expected ({params[t].shape[0]},)")
            self.counts = {t: np.asarray(counts[t], dtype=np.int64) for t in self.reg_tables}
        else:
            self.counts = None
        self.steps = 0
        self._flat = self._flat_layout(params)

    def _flat_layout(self, params):
        """(base, lo, hi, offsets) when every dense parameter is a C-contiguous view of one 1-D buffer,
        back to back in dict order (the models' ``dense_flat``); None otherwise. Then a step updates all
        of them with one kernel call instead of one per parameter."""
        dense = [n for n in params if n not in self.tables]
        if not dense:
            return None
        base = params[dense[0]].base
        if base is None or base.ndim != 1 or not base.flags.c_contiguous:
            return None
        item, start, offsets = base.itemsize, base.ctypes.data, {}
        for n in dense:
            p = params[n]
            if p.base is not base or not p.flags.c_contiguous:
                return None
            offsets[n] = (p.ctypes.data - start) // item
        pos = offsets[dense[0]]
        for n in dense:
            if offsets[n] != pos:
                return None
            pos += params[n].size
        return base, offsets[dense[0]], pos, offsets

    def _flat_grads(self, grads):
        """The 1-D gradient buffer laid out like the parameters' (the models return one), or None."""
        if self._flat is None:
            return None
        _, lo, hi, offsets = self._flat
        names = list(offsets)
        g0 = grads[names[0]]
        gb = g0.base
        if gb is None or gb.ndim != 1 or gb.dtype != self._flat[0].dtype or not gb.flags.c_contiguous:
            return None
        start = g0.ctypes.data  # where the first parameter's gradient, hence the flat region, begins
        for n in names:
            g = grads[n]
            if g.base is not gb or not g.flags.c_contiguous or g.ctypes.data - start != (offsets[n] - lo) * gb.itemsize:
                return None
        first = (start - gb.ctypes.data) // gb.itemsize
        if first + (hi - lo) > gb.size:
            return None
        return gb[first:first + (hi - lo)]

    def _check_grads(self, grads):
        for name in self.params:
            if name not in grads:
                raise ValueError(f"grads: missing {name!r}")
            g = grads[name]
            if name in self.tables:
                if not isinstance(g, SparseGrad):
                    raise ValueError(f"grads[{name!r}]: expected a SparseGrad")
            elif g.shape != self.params[name].shape:
                raise ValueError(f"grads[{name!r}]: shape {g.shape}, expected {self.params[name].shape}")

    def _scale(self, grads):
        """Global-norm clipping factor (1.0 without clipping)."""
        if self.clip_norm is None:
            return 1.0
        sq = 0.0
        for name, g in grads.items():
            v = g.values if isinstance(g, SparseGrad) else g
            sq += float(np.dot(v.ravel().astype(np.float64), v.ravel().astype(np.float64)))
        norm = np.sqrt(sq)
        return float(self.clip_norm / norm) if norm > self.clip_norm else 1.0

    def _reg_coef(self, table, rows):
        dt = self.params[table].dtype
        if self.reg != "mba" or table not in self.reg_tables:
            return np.zeros(rows.shape[0], dtype=dt)
        n = self.counts[table][rows]
        if np.any(n <= 0):
            j = int(rows[np.flatnonzero(n <= 0)[0]])
            raise ValueError(f"counts[{table!r}]: id {j} is in the batch but has count 0 in the training data")
        return (self.reg_lambda / n).astype(dt)

    def step(self, grads):
        """One update from ``grads`` (keyed like params; embedding tables as SparseGrad)."""
        self._check_grads(grads)
        scale = self._scale(grads)
        gflat = self._flat_grads(grads)
        for name, p in self.params.items():
            if name in self.tables:
                self._table_step(name, p, grads[name], scale)
            elif gflat is None:
                self._dense_step(name, p, grads[name], scale)
        if gflat is not None:  # every dense parameter at once (same update, element by element)
            base, lo, hi, _ = self._flat
            self._flat_step(base[lo:hi], gflat, scale)
        self.steps += 1

    def regularization_penalty(self) -> float:
        """The full-table L2 penalty (λ/2)·Σ‖w‖² that reg='l2' descends (for reporting)."""
        return 0.5 * self.reg_lambda * sum(float(np.sum(self.params[t].astype(np.float64) ** 2)) for t in self.reg_tables)


class SparseAdagrad(_Optimizer):
    """Adagrad with row-sparse embedding updates and none / l2 / mba regularization (see module docs).

    ``SparseAdagrad(model.params, lr=0.05, reg="mba", reg_lambda=0.01, counts=counts,
    initial_accumulator_value=0.1, eps=1e-10, clip_norm=None)``, then ``opt.step(grads)``.
    Accumulators live in ``opt.acc`` (keyed like params; saved in checkpoints).
    """

    def __init__(self, params, lr=0.05, reg="none", reg_lambda=0.0, counts=None, initial_accumulator_value=0.1,
                 eps=1e-10, clip_norm=None):
        super().__init__(params, lr, reg, reg_lambda, counts, clip_norm)
        if initial_accumulator_value < 0:
            raise ValueError("initial_accumulator_value: must be non-negative")
        if not (np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps: must be positive and finite, got {eps}")
        self.eps = float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.acc = {n: np.full_like(p, initial_accumulator_value) for n, p in params.items()}
        if self._flat is not None:  # accumulators laid out like the flat parameters, for the one-call step
            base, lo, hi, offsets = self._flat
            self._acc_flat = np.full(hi - lo, initial_accumulator_value, dtype=base.dtype)
            for n, off in offsets.items():
                self.acc[n] = self._acc_flat[off - lo:off - lo + params[n].size].reshape(params[n].shape)

    def _table_step(self, name, p, g, scale):
        if self.reg == "l2" and name in self.reg_tables:
            adagrad_l2_table_step(p, self.acc[name], g.rows, g.values, self.reg_lambda, self.lr, self.eps, scale)
        else:
            adagrad_rows_step(p, self.acc[name], g.rows, g.values, self._reg_coef(name, g.rows), self.lr, self.eps,
                              scale)

    def _flat_step(self, p, g, scale):
        adagrad_dense_step(p, self._acc_flat, g, self.lr, self.eps, scale)

    def _dense_step(self, name, p, g, scale):
        adagrad_dense_step(p.reshape(-1), self.acc[name].reshape(-1), np.ascontiguousarray(g).reshape(-1), self.lr,
                           self.eps, scale)

    def state_arrays(self):
        return {f"acc/{n}": a for n, a in self.acc.items()}

    def load_state_arrays(self, arrays):
        for n in self.acc:
            a = arrays[f"acc/{n}"]
            if a.shape != self.acc[n].shape:
                raise ValueError(f"checkpoint: optimizer accumulator {n} has shape {a.shape}, "
                                 f"expected {self.acc[n].shape}")
            self.acc[n][...] = a


class SGD(_Optimizer):
    """Plain SGD (the official code's optimizer) with the same regularization rules.

    ``SGD(params, lr, reg="none", reg_lambda=0.0, counts=None, clip_norm=None)``.
    """

    def __init__(self, params, lr, reg="none", reg_lambda=0.0, counts=None, clip_norm=None):
        super().__init__(params, lr, reg, reg_lambda, counts, clip_norm)
        self.acc = {}

    def _table_step(self, name, p, g, scale):
        if self.reg == "l2" and name in self.reg_tables:
            p *= (1.0 - self.lr * self.reg_lambda)  # λ·w on every row, then the data gradient on its rows
            sgd_rows_step(p, g.rows, g.values, np.zeros(g.rows.shape[0], p.dtype), self.lr, scale)
        else:
            sgd_rows_step(p, g.rows, g.values, self._reg_coef(name, g.rows), self.lr, scale)

    def _flat_step(self, p, g, scale):
        sgd_dense_step(p, g, self.lr, scale)

    def _dense_step(self, name, p, g, scale):
        sgd_dense_step(p.reshape(-1), np.ascontiguousarray(g).reshape(-1), self.lr, scale)

    def state_arrays(self):
        return {}

    def load_state_arrays(self, arrays):
        return None
