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
  training set: see ``feature_counts``). Summed over an epoch of S samples in
  batches of B, the term is λ·w_j·b_j/n_j, where b_j ≤ min(n_j, S/B) is the
  number of batches that contain j. A rare id sits in n_j different batches,
  so it gets about the full λ·w_j per epoch; an id in nearly every batch gets
  λ·w_j·(S/B)/n_j, weaker by the number of its samples per batch, n_j·B/S
  (docs/optimizer.md has measured figures).
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

from .config import REGS, default
from .params import Grads, Params
from .sparse import UNREGULARIZED_TABLES, SparseGrad



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


class NonFiniteGradient(ValueError):
    """A gradient holds NaN or infinity (``step`` raises it before anything moves)."""


def _finite(name, v, lo, lo_open=False, optional=False):
    from .config import check_real

    if optional and v is None:
        return None
    return check_real(name, v, lo, lo_open=lo_open)


_EXP_MASK = {np.dtype(np.float32): (np.int32, np.int32(0x7F800000)),
             np.dtype(np.float64): (np.int64, np.int64(0x7FF0000000000000))}


@njit(cache=True)
def count_nonfinite(bits, mask):
    """How many entries of a float array, given as its raw bits (int view), are NaN or ±inf: those whose
    exponent bits are all ones. Integer compares vectorize; np.isfinite over an array would allocate."""
    n = 0
    for i in range(bits.shape[0]):
        n += (bits[i] & mask) == mask
    return n


@njit(cache=True)
def rows_status(rows, V):
    """0 when rows are sorted, unique and in [0, V); 1 when not sorted or not unique; 2 when out of range."""
    for u in range(rows.shape[0]):
        if rows[u] < 0 or rows[u] >= V:
            return 2
        if u > 0 and rows[u] <= rows[u - 1]:
            return 1
    return 0


def _all_finite(a) -> bool:
    """Every entry of a C-contiguous float array finite (one vectorized pass over its bits)."""
    int_type, mask = _EXP_MASK[a.dtype]
    return count_nonfinite(a.reshape(-1).view(int_type), mask) == 0


class _Optimizer:
    """Shared by SparseAdagrad and SGD: checks, regularization coefficients, clipping, the step's order."""

    def __init__(self, params, lr, reg, reg_lambda, counts, clip_norm):
        if not isinstance(params, Params):
            raise TypeError(f"params: expected the model's params (a minidin.Params), got {type(params).__name__}")
        if reg not in REGS:
            raise ValueError(f"reg: must be one of {', '.join(REGS)}; got {reg!r}")
        self.params = params
        self.lr = _finite("lr", lr, 0.0, lo_open=True)
        self.reg, self.reg_lambda = reg, _finite("reg_lambda", reg_lambda, 0.0)
        self.clip_norm = _finite("clip_norm", clip_norm, 0.0, lo_open=True, optional=True)
        self.reg_tables = [t for t in params.tables if t not in UNREGULARIZED_TABLES]
        self.counts = None
        if reg == "mba":
            self.set_counts(counts)
        self.steps = 0

    def set_counts(self, counts):
        """MBA's n_j per table ({table: (V,) counts of training samples}), checked; a run whose training samples
        change between epochs (re-drawn negatives) sets them again."""
        if counts is None:
            raise ValueError("counts: reg='mba' needs feature counts (minidin.feature_counts(train_data))")
        checked = {}
        for t in self.reg_tables:
            if t not in counts:
                raise ValueError(f"counts: missing {t!r}")
            n = np.asarray(counts[t])
            if n.shape != (self.params[t].shape[0],):
                raise ValueError(f"counts[{t!r}]: shape {n.shape}, expected ({self.params[t].shape[0]},)")
            if n.dtype.kind not in "iuf":
                raise ValueError(f"counts[{t!r}]: expected numbers of samples, got dtype {n.dtype}")
            for bad, what in ((~np.isfinite(n), "NaN or infinite"), (n < 0, "negative"),
                              (n != np.floor(n), "fractional")):
                if np.any(bad):
                    j = int(np.flatnonzero(bad)[0])
                    raise ValueError(f"counts[{t!r}]: id {j} has a {what} count ({n[j]}); counts are numbers of "
                                     f"training samples")
            checked[t] = n.astype(np.int64)
        self.counts = checked

    def _check_grads(self, grads):
        """Every gradient matches its parameter before anything moves: ValueError names the parameter."""
        if not isinstance(grads, Grads):
            raise TypeError(f"grads: expected a minidin.Grads (model.loss_and_grad), got {type(grads).__name__}")
        P = self.params
        if grads.layout != P.layout or grads.dense.shape != P.dense.shape:
            raise ValueError("grads: dense layout differs from the parameters' (a gradient of another model?)")
        if set(grads.tables) != set(P.tables):
            raise ValueError(f"grads: tables {sorted(grads.tables)}, expected {sorted(P.tables)}")
        for name, g in grads.tables.items():
            V, width = P.tables[name].shape
            if not isinstance(g, SparseGrad):
                raise TypeError(f"grads[{name!r}]: expected a SparseGrad")
            r, v = g.rows, g.values
            if (not isinstance(r, np.ndarray) or r.ndim != 1 or r.dtype != np.int64 or not isinstance(v, np.ndarray)
                    or v.shape != (r.shape[0], width) or v.dtype != P.dtype or not v.flags.c_contiguous):
                raise ValueError(f"grads[{name!r}]: rows (U,) int64 and values (U, {width}) C-contiguous {P.dtype}, "
                                 f"got rows {getattr(r, 'shape', r)} {getattr(r, 'dtype', '')} and values "
                                 f"{getattr(v, 'shape', v)} {getattr(v, 'dtype', '')}")
            if rows_status(r, V):
                raise ValueError(f"grads[{name!r}]: rows must be sorted, unique and in [0, {V})")
            if not _all_finite(v):
                raise NonFiniteGradient(f"grads[{name!r}]: contains NaN or infinity")
        if not _all_finite(grads.dense):
            bad = int(np.flatnonzero(~np.isfinite(grads.dense))[0])
            name = next(n for n, _ in reversed(P.layout) if P.offsets[n] <= bad)
            raise NonFiniteGradient(f"grads[{name!r}]: contains NaN or infinity")

    def _scale(self, grads):
        """Global-norm clipping factor (1.0 without clipping)."""
        if self.clip_norm is None:
            return 1.0
        sq = float(np.dot(grads.dense.astype(np.float64), grads.dense.astype(np.float64)))
        for g in grads.tables.values():
            v = g.values.ravel().astype(np.float64)
            sq += float(np.dot(v, v))
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
        """One update from ``grads`` (a ``Grads``): every dense parameter in one kernel call, then one row
        kernel per table. Everything is checked first, so a bad gradient moves nothing."""
        self._check_grads(grads)
        coefs = {t: self._reg_coef(t, g.rows) for t, g in grads.tables.items()}
        scale = self._scale(grads)
        self._dense_step(grads.dense, scale)
        for name, g in grads.tables.items():
            self._table_step(name, self.params.tables[name], g, coefs[name], scale)
        self.steps += 1



class SparseAdagrad(_Optimizer):
    """Adagrad with row-sparse embedding updates and none / l2 / mba regularization (see module docs).

    ``SparseAdagrad(model.params, lr=0.05, reg="mba", reg_lambda=0.01, counts=counts,
    initial_accumulator_value=0.1, eps=1e-10, clip_norm=None)``, then ``opt.step(grads)``.
    Accumulators live in ``opt.acc``, a ``Params`` laid out like the parameters (saved in checkpoints).
    An optimizer regularizes only when asked (``reg`` names it and MBA needs the counts); the training defaults
    (``TrainConfig``: MBA at the data-scaled λ of ``config.reg_strength``) are `minidin train`'s, which passes
    them explicitly.
    """

    def __init__(self, params, lr=0.05, reg="none", reg_lambda=0.0, counts=None,
                 initial_accumulator_value=default("adagrad_init"), eps=1e-10, clip_norm=default("clip_norm")):
        super().__init__(params, lr, reg, reg_lambda, counts, clip_norm)
        self.initial_accumulator_value = _finite("initial_accumulator_value", initial_accumulator_value, 0.0)
        self.eps = _finite("eps", eps, 0.0, lo_open=True)
        self.acc = params.like(self.initial_accumulator_value)

    def _table_step(self, name, p, g, coef, scale):
        if self.reg == "l2" and name in self.reg_tables:
            adagrad_l2_table_step(p, self.acc[name], g.rows, g.values, self.reg_lambda, self.lr, self.eps, scale)
        else:
            adagrad_rows_step(p, self.acc[name], g.rows, g.values, coef, self.lr, self.eps, scale)

    def _dense_step(self, g, scale):
        adagrad_dense_step(self.params.dense, self.acc.dense, g, self.lr, self.eps, scale)

    def state_arrays(self):
        return {f"acc/{n}": a for n, a in self.acc.items()}

    def load_state_arrays(self, arrays):
        """Accumulators from a checkpoint's ``acc/<name>`` arrays; ValueError names a missing, misshapen,
        negative or non-finite one."""
        for n in self.acc:
            key = f"acc/{n}"
            if key not in arrays:
                raise ValueError(f"checkpoint: missing optimizer accumulator {key}")
            a = arrays[key]
            if a.shape != self.acc[n].shape:
                raise ValueError(f"checkpoint: optimizer accumulator {key} has shape {a.shape}, "
                                 f"expected {self.acc[n].shape}")
            if a.dtype.kind != "f" or not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"checkpoint: optimizer accumulator {key} must be finite and non-negative")
            self.acc[n][...] = a


class SGD(_Optimizer):
    """Plain SGD (the official code's optimizer) with the same regularization rules.

    ``SGD(params, lr, reg="none", reg_lambda=0.0, counts=None, clip_norm=None)``.
    """

    def __init__(self, params, lr, reg="none", reg_lambda=0.0, counts=None,
                 clip_norm=default("clip_norm")):
        super().__init__(params, lr, reg, reg_lambda, counts, clip_norm)
        self.acc = {}

    def _table_step(self, name, p, g, coef, scale):
        if self.reg == "l2" and name in self.reg_tables:
            p *= (1.0 - self.lr * self.reg_lambda)  # λ·w on every row, then the data gradient on its rows
            sgd_rows_step(p, g.rows, g.values, np.zeros(g.rows.shape[0], p.dtype), self.lr, scale)
        else:
            sgd_rows_step(p, g.rows, g.values, coef, self.lr, scale)

    def _dense_step(self, g, scale):
        sgd_dense_step(self.params.dense, g, self.lr, scale)

    def state_arrays(self):
        return {}

    def load_state_arrays(self, arrays):
        return None
