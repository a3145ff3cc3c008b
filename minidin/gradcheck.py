"""Finite-difference gradient checks, small and public because the docs teach with them.

The criterion, everywhere (kernels and whole model): an analytic entry ``a``
and a numerical entry ``n`` agree where

    |a − n| ≤ 1e-9     or     |a − n| / max(1e-8, |a| + |n|) ≤ 1e-6.

The absolute floor matters: float64 rounding noise in a central difference is
about ε_mach·|f|/h ≈ 1e-10·|f|, so a purely relative test fails spuriously
where the true gradient is 0.

Numerical derivatives are central differences in float64 with h = 1e-6. Where
that estimate misses the criterion, the entry is re-estimated with Ridders'
polynomial extrapolation (Numerical Recipes §5.7) from several starting steps
(``refined_estimate``). This matters for Dice on nearly identical rows: its
curvature scale there is sqrt(ε) ≈ 1e-4, too fine for h = 1e-6. The criterion
is the same either way; only the numerical estimate improves (and a gradient 1%
off still fails: see the tests).

PReLU has a kink at 0. A perturbation that moves any PReLU input across 0
makes the difference quotient meaningless there; such entries are excluded and
counted (``GradReport.excluded``), never silently passed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RTOL = 1e-6
ATOL = 1e-9
H = 1e-6


def rel_error(a, n):
    """Element-wise |a − n| / max(1e-8, |a| + |n|)."""
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    return np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))


def entries_pass(a, n, rtol=RTOL, atol=ATOL):
    """Boolean array: where analytic ``a`` and numerical ``n`` agree by the criterion."""
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    return (np.abs(a - n) <= atol) | (rel_error(a, n) <= rtol)


def assert_grad_close(analytic, numeric, name="", rtol=RTOL, atol=ATOL):
    """Raise AssertionError, with the max relative error, unless every entry passes."""
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if analytic.shape != numeric.shape:
        raise AssertionError(f"{name}: shape {analytic.shape} != {numeric.shape}")
    ok = entries_pass(analytic, numeric, rtol, atol)
    if not np.all(ok):
        rel = rel_error(analytic, numeric)
        i = np.unravel_index(int(np.argmax(np.where(ok, -1.0, rel))), analytic.shape)
        raise AssertionError(
            f"{name}: {int((~ok).sum())} of {ok.size} entries off; max rel_error={rel.max():.2e} "
            f"(at {tuple(int(j) for j in i)}: analytic {analytic[i]:.10g}, numeric {numeric[i]:.10g})")


def central_difference(fun, x, i, h, dout=None):
    """(f(x + h e_i) − f(x − h e_i)) / 2h; with ``dout``, f returns an array and the result is
    <f(x + h e_i) − f(x − h e_i), dout> / 2h (differences first, so unaffected outputs cancel exactly)."""
    old = x[i]
    x[i] = old + h
    fp = fun()
    fp = np.array(fp, dtype=np.float64, copy=True) if dout is not None else fp
    x[i] = old - h
    fm = fun()
    x[i] = old
    if dout is not None:
        return float(np.vdot(fp - np.asarray(fm, dtype=np.float64), dout)) / (2.0 * h)
    return (fp - fm) / (2.0 * h)


def ridders(fun, x, i, h0=1e-4, con=2.0, ntab=12, safe=2.0, dout=None):
    """Derivative of scalar ``fun()`` (or of <fun(), dout>) w.r.t. ``x[i]`` by Ridders' extrapolation;
    returns (estimate, error estimate)."""
    a = np.zeros((ntab, ntab))
    hh = h0
    a[0, 0] = central_difference(fun, x, i, hh, dout)
    best, err = a[0, 0], np.inf
    for k in range(1, ntab):
        hh /= con
        a[0, k] = central_difference(fun, x, i, hh, dout)
        fac = con * con
        for j in range(1, k + 1):
            a[j, k] = (a[j - 1, k] * fac - a[j - 1, k - 1]) / (fac - 1.0)
            fac *= con * con
            errt = max(abs(a[j, k] - a[j - 1, k]), abs(a[j, k] - a[j - 1, k - 1]))
            if errt <= err:
                err, best = errt, a[j, k]
        if abs(a[k, k] - a[k - 1, k - 1]) >= safe * err:
            break
    return best, err


def refined_estimate(fun, x, i, dout=None, crosses=None):
    """A derivative estimate for entries where h = 1e-6 is too coarse.

    Ridders' extrapolation started from steps 1e-1 ... 1e-6 (those that cross no
    PReLU kink, per ``crosses(step)``); the estimate with the smallest error
    estimate wins. Narrow starts resolve Dice's sqrt(ε) ≈ 1e-4 curvature scale,
    wide starts beat rounding noise.
    """
    best, best_err = central_difference(fun, x, i, H, dout), np.inf
    for h0 in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
        if crosses is not None and crosses(h0):
            continue
        est, err = ridders(fun, x, i, h0=h0, con=1.4, ntab=15, dout=dout)
        if err < best_err:
            best, best_err = est, err
    return best


@dataclass
class GradReport:
    """Outcome of checking one array: worst relative error and entry counts."""

    name: str
    max_rel: float  # max |a−n| / max(1e-8, |a|+|n|) over the checked entries
    max_abs: float  # max |a−n| over the checked entries
    checked: int
    excluded: int  # entries next to a PReLU kink, not compared
    failed: int
    refined: int  # entries re-estimated with Ridders' extrapolation

    @property
    def passed(self) -> bool:
        return self.failed == 0


def check_array(name, analytic, fun, x, h=H, kinks=None, dout=None):
    """Compare ``analytic`` with the numerical gradient of scalar ``fun()`` w.r.t. every entry of ``x``.

    dout: for a vector-valued ``fun()``, the upstream gradient: the check is then of the
    vector-Jacobian product d<fun(), dout>/dx.
    kinks: optional callable returning a sign pattern (array) of every PReLU input;
    an entry whose ±h (or Ridders) perturbation changes that pattern is excluded.
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    max_rel, max_abs, checked, excluded, failed, refined = 0.0, 0.0, 0, 0, 0, 0
    base = kinks() if kinks is not None else None

    def crosses(i, step):
        if base is None or base.size == 0:
            return False
        old = x[i]
        out = False
        for s in (step, -step):
            x[i] = old + s
            if not np.array_equal(kinks(), base):
                out = True
        x[i] = old
        return out

    for i in np.ndindex(x.shape):
        if crosses(i, h):
            excluded += 1
            continue
        a = analytic[i]
        n = central_difference(fun, x, i, h, dout)
        if not entries_pass(a, n):
            n = refined_estimate(fun, x, i, dout, lambda step: crosses(i, step))
            refined += 1
        ok = bool(entries_pass(a, n))
        checked += 1
        failed += 0 if ok else 1
        max_rel = max(max_rel, float(rel_error(a, n)))
        max_abs = max(max_abs, float(abs(a - n)))
    return GradReport(name, max_rel, max_abs, checked, excluded, failed, refined)


def prelu_inputs(model, cache):
    """Every PReLU layer's pre-activations in a forward cache, flat (for kink detection)."""
    parts = []
    for layers, act in ((cache.att_layers, model.attention_activation), (cache.mlp_layers, model.activation)):
        if act == "prelu":
            parts += [c.z.ravel() for c in layers[:-1]]
    return np.concatenate(parts) if parts else np.zeros(0)


def check_model(model, batch, h=H, names=None):
    """Check every parameter gradient of a float64 model on ``batch``, in training mode.

    Dice layers use batch statistics (the gradient goes through them); running
    averages are left untouched. Returns one GradReport per parameter name.
    """
    if model.dtype != np.float64:
        raise ValueError("model: gradient checks need a float64 model (dtype=np.float64)")
    _, grads = model.loss_and_grad(batch, update_stats=False)
    fun = lambda: model.loss(batch, training=True)  # noqa: E731
    kinks = None
    if "prelu" in (model.activation, model.attention_activation if model.uses_attention else None):
        kinks = lambda: np.signbit(prelu_inputs(model, model.forward(batch, training=True)))  # noqa: E731
    reports = {}
    for name in names or list(model.params):
        g = grads[name]
        analytic = g.to_dense() if hasattr(g, "to_dense") else g
        reports[name] = check_array(name, analytic, fun, model.params[name], h=h, kinks=kinks)
    return reports


def format_reports(reports) -> str:
    """A table: parameter, entry counts, the max relative and absolute errors, and the verdict.

    An entry passes where its absolute error is ≤ 1e-9 *or* its relative error
    ≤ 1e-6, so a max relative error above 1e-6 can still pass when it comes
    from an entry whose gradient is ~0 (its absolute error is then tiny).
    """
    lines = [f"{'parameter':<16} {'checked':>8} {'excluded':>8} {'refined':>8} {'max rel err':>12} "
             f"{'max abs err':>12}  result"]
    for r in reports.values():
        lines.append(f"{r.name:<16} {r.checked:>8} {r.excluded:>8} {r.refined:>8} {r.max_rel:>12.2e} "
                     f"{r.max_abs:>12.2e}  {'ok' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def random_check_setup(model="din", activation="dice", attention_softmax=False, seed=0, pooling="sum"):
    """A small float64 model and an adversarial batch for a whole-model gradient check (``minidin gradcheck``).

    The batch has 5 samples over a 6-goods / 3-category vocabulary: an empty
    history, a history of one, repeated ids inside a history and shared with
    candidates. Parameters are drawn N(0, 0.5²) (α stays 0.25) so that every
    gradient is far from zero and the relative error means something.
    """
    from .batch import Batch
    from .config import ModelConfig
    from .model import from_config

    rng = np.random.default_rng(seed)
    m = from_config(ModelConfig(model=model, n_goods=6, n_cates=3, goods_dim=3, cate_dim=2, attention_units=(4, 3),
                                hidden_units=(5, 3), activation=activation, attention_softmax=attention_softmax,
                                pooling=pooling, dtype="float64", seed=seed))
    for name, p in m.params.items():
        if not name.endswith(".alpha"):
            p[...] = rng.standard_normal(p.shape) * 0.5
    lengths = [3, 0, 1, 4, 2]
    goods = rng.integers(0, 6, sum(lengths))
    goods[1] = goods[0]  # a repeated id inside one history
    batch = Batch(goods, rng.integers(0, 3, sum(lengths)), np.concatenate([[0], np.cumsum(lengths)]),
                  np.r_[goods[0], rng.integers(0, 6, 4)], rng.integers(0, 3, 5), [1, 0, 1, 0, 1])
    return m, batch
