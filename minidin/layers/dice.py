"""Dice: a PReLU whose switch point follows the data (paper §5.2, Eq. 9).

    f(s) = p(s) · s + (1 − p(s)) · α · s,     p(s) = σ( (s − E[s]) / sqrt(Var[s] + ε) )

per unit, with α learned per unit.

- Training: E[s] and Var[s] are the mean and the biased variance over the rows
  present in the mini-batch: B samples in the main MLP, the N behaviours
  actually present in the attention unit (the ragged layout has no padding, so
  statistics never see it). The backward goes through both statistics.
- Inference: E[s] and Var[s] are running averages, starting at mean 0 and
  variance 1, updated after each training forward as
      running = (1 − momentum) · running + momentum · batch_statistic
  with momentum 0.1 by default (``dice_momentum``), the biased variance being
  averaged. A forward over zero rows leaves them unchanged.
- ε = 1e-8, the paper's value. With E[s] = 0 and Var[s] = 0 Dice is PReLU with
  a smooth switch.

Deviations: the official ``Dice.py`` adds a learned per-unit slope β inside the
sigmoid and, because its BatchNorm never receives ``training=True``, never
centres on batch statistics at all (so its Dice is σ(β·s) gating). minidin
follows the paper: no β, real batch statistics in training, running averages at
inference. α is initialised to 0.25.

Docs: docs/layers/dice.md
"""
import numpy as np
from numba import njit, prange

from .alloc import empty, zeros
from .chunks import chunk_bounds, column_stats, n_chunks, prange_only
from .sigmoid import sigmoid_fast


@njit(cache=True, inline="always")
def dice_xhat(s, mean_hi, mean_lo, r):
    """x̂ = ((s − mean_hi) − mean_lo)·r, the normalised input of Dice's gate (mean as hi + lo parts)."""
    return ((s - mean_hi) - mean_lo) * r


@njit(cache=True, inline="always")
def dice_out(s, p, alpha, ac):
    """Eq. (9) given the gate p = σ(x̂): f(s) = s·(α + (1 − α)·p), with ac = 1 − α."""
    return s * (alpha + ac * p)


@njit(cache=True, inline="always")
def dice_column(mean_hi, mean_lo, r, ac, inv_std, h, mean, var, const, alpha, eps):
    """Column h's coefficients for ``dice_xhat`` / ``dice_out``, in the arrays' dtype, from float64 statistics:
    inv_std = 1/sqrt(var + ε); the mean as hi + lo parts (mean_hi = mean rounded to the dtype);
    r = inv_std, or 0 for a constant column; ac = 1 − α. Shared with the fused inference kernel."""
    inv_std[h] = 1.0 / np.sqrt(var + eps)
    mean_hi[h] = mean
    mean_lo[h] = mean - mean_hi[h]
    r[h] = 0.0 if const else inv_std[h]
    ac[h] = 1.0 - alpha


@njit(cache=True, parallel=prange_only(), error_model="numpy")  # no ZeroDivisionError check: the gate loop vectorizes
def dice_forward(out, xhat, p, inv_std, x, alpha, running_mean, running_var, training, momentum, eps):
    """Dice forward, in training (batch statistics) or inference (running averages) mode.

    out:          (M, H) float, written: f(s)
    xhat:         (M, H) float, written, cached: (s − E[s]) / sqrt(Var[s] + ε)
    p:            (M, H) float, written, cached: σ(xhat)
    inv_std:      (H,) float, written, cached: 1 / sqrt(Var[s] + ε)
    x:            (M, H) float, s
    alpha:        (H,) float, α
    running_mean: (H,) float, updated in place when training and momentum > 0 and M > 0
    running_var:  (H,) float, likewise
    training:     bool, batch statistics (True) or running averages (False); in training, a
                  column whose rows agree to within rounding has Var = 0 and x̂ = 0 exactly
    momentum:     float, running-average momentum; 0 leaves the averages untouched
    eps:          float, ε (1e-8)

    Eq. (9): f(s) = s · (α + (1 − α) · p(s)).
    Docs: docs/layers/dice.md
    """
    M, H = x.shape
    mean = empty(H, np.float64)  # statistics in float64 for either dtype
    var = empty(H, np.float64)
    const = zeros(H, np.bool_)  # columns whose rows are equal up to rounding: x̂ = 0 exactly
    if training:
        mean, var, const = column_stats(x)
        if momentum > 0 and M > 0:
            for h in range(H):
                running_mean[h] = (1.0 - momentum) * running_mean[h] + momentum * mean[h]
                running_var[h] = (1.0 - momentum) * running_var[h] + momentum * var[h]
    else:
        for h in range(H):
            mean[h] = running_mean[h]
            var[h] = running_var[h]
    # The element loop runs in x's dtype, so a float32 model vectorizes 8 wide (2.2x faster than
    # float64 statistics in the loop). The mean goes in as hi + lo parts, mean_hi = mean rounded to x's
    # dtype: s − mean_hi is exact when s is near the mean (where precision matters), so x̂ keeps the
    # accuracy of the float64 statistics. A constant column gets r = 0: x̂ = (s − μ)·0 = 0 exactly.
    mean_hi = empty(H, x.dtype)
    mean_lo = empty(H, x.dtype)
    r = empty(H, x.dtype)
    ac = empty(H, x.dtype)  # 1 − α
    for h in range(H):
        dice_column(mean_hi, mean_lo, r, ac, inv_std, h, mean[h], var[h], const[h], alpha[h], eps)
    for m in prange(M):
        for h in range(H):
            s = x[m, h]
            xh = dice_xhat(s, mean_hi[h], mean_lo[h], r[h])
            pp = sigmoid_fast(xh)  # float32: a branch-free σ that vectorizes (sigmoid.py)
            xhat[m, h] = xh
            p[m, h] = pp
            out[m, h] = dice_out(s, pp, alpha[h], ac[h])


@njit(cache=True, parallel=prange_only())
def dice_backward(dx, dalpha, dout, x, xhat, p, inv_std, alpha, training):
    """Backward of ``dice_forward``; accumulates into dx and dalpha.

    dx:     (M, H) float, accumulates
    dalpha: (H,) float, accumulates
    dout:   (M, H) float
    x, xhat, p, inv_std, alpha: as in forward;  training: the forward's mode

    forward was: f = s (α + (1 − α) p),  p = σ(x̂),  x̂ = (s − μ) r,  r = (Var + ε)^(−1/2)
    so now:      dα  += Σ_m dout · s · (1 − p)
                 dx̂  = dout · s · (1 − α) · p (1 − p)
                 ds  += dout · (α + (1 − α) p)
                      + r · (dx̂ − mean_m(dx̂) − x̂ · mean_m(dx̂ · x̂))    (training: through μ and Var)
                      + r · dx̂                                          (inference: μ, Var fixed)
    The row means and dα are fixed-chunk reductions (deterministic).
    Docs: docs/layers/dice.md
    """
    M, H = x.shape
    if M == 0:
        return
    C = n_chunks(M)
    part = zeros((C, 3, H), np.float64)  # Σ dx̂, Σ dx̂·x̂, Σ dα per chunk
    for c in prange(C):
        lo, hi = chunk_bounds(c, C, M)
        for m in range(lo, hi):
            for h in range(H):
                s = x[m, h]
                g = dout[m, h]
                pp = p[m, h]
                dxh = g * s * (1.0 - alpha[h]) * pp * (1.0 - pp)
                part[c, 0, h] += dxh
                part[c, 1, h] += dxh * xhat[m, h]
                part[c, 2, h] += g * s * (1.0 - pp)
    mean_dxh = zeros(H, np.float64)
    mean_dxh_xh = zeros(H, np.float64)
    for c in range(C):
        for h in range(H):
            mean_dxh[h] += part[c, 0, h]
            mean_dxh_xh[h] += part[c, 1, h]
            dalpha[h] += part[c, 2, h]
    # The element loop runs in x's dtype (as in the forward: float32 vectorizes twice as wide); the
    # sums above stay float64, rounded once into m1, m2. pp − pp² is p(1 − p) without widening.
    m1 = zeros(H, x.dtype)
    m2 = zeros(H, x.dtype)
    ac = empty(H, x.dtype)  # 1 − α
    for h in range(H):  # element loops, not array expressions: those would be parallel regions
        if training:
            m1[h] = mean_dxh[h] / M
            m2[h] = mean_dxh_xh[h] / M
        ac[h] = 1.0 - alpha[h]
    for m in prange(M):
        for h in range(H):
            s = x[m, h]
            g = dout[m, h]
            pp = p[m, h]
            dxh = g * s * ac[h] * (pp - pp * pp)
            dx[m, h] += g * (alpha[h] + ac[h] * pp) + inv_std[h] * (dxh - m1[h] - xhat[m, h] * m2[h])
