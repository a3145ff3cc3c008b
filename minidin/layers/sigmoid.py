"""Logistic sigmoid, the official code's activation in both MLPs.

    σ(s) = 1 / (1 + exp(−s)), computed without overflow for any finite s.

Also used to turn logits into click probabilities in ``predict``.

Deviations: the paper uses PReLU/Dice in both MLPs; the official code uses
sigmoid in both (the author calls it "only an example"). minidin offers all
three for either MLP.

Docs: docs/layers/activations.md
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .chunks import prange_only


@njit(cache=True)
def sigmoid_exact(v):
    """σ(v) = 1 / (1 + exp(−v)) with libm's exp, for a scalar of either dtype, without overflow."""
    if v >= 0:
        return 1.0 / (1.0 + np.exp(-v))
    e = np.exp(v)
    return e / (1.0 + e)


# ---------------------------------------------------------------- σ in float32, vectorizable (Dice's gate too)
# Dice spends most of its forward in exp (scalar libm calls: this Numba has no SVML to vectorize them).
# For float32 arrays, ``sigmoid_fast`` computes σ with a branch-free exp (Cephes expf: range reduction by
# ln 2, a degree-5 polynomial, the power of two put into the exponent bits), which LLVM vectorizes when
# the kernel uses error_model="numpy" (Python's ZeroDivisionError check on '/' would block it). Its
# error is at most 4 ulp of float32 (tests/test_kernels.py checks a dense grid over ±100); float64
# arrays keep libm's exp, so the float64 gradient checks are untouched.
F32 = np.float32


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bit pattern is the int32 ``bits``."""
    if not (isinstance(bits, types.Integer) and bits.bitwidth == 32):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(bits), codegen


@njit(cache=True, inline="always", error_model="numpy")
def _exp_nonpos_f32(a):
    """exp(a) for float32 a ≤ 0, branch-free (a below −87 is clamped: exp(−87) ≈ 1.6e-38)."""
    a = a if a > F32(-87.0) else F32(-87.0)
    n = np.floor(a * F32(1.44269504088896341) + F32(0.5))  # a = n ln2 + r, |r| ≤ ln2 / 2
    r = a - n * F32(0.693359375)  # ln 2 in two parts, so r is exact
    r = r - n * F32(-2.12194440e-4)
    p = F32(1.9875691500e-4)
    p = p * r + F32(1.3981999507e-3)
    p = p * r + F32(8.3334519073e-3)
    p = p * r + F32(4.1665795894e-2)
    p = p * r + F32(1.6666665459e-1)
    p = p * r + F32(5.0000001201e-1)
    y = p * (r * r) + r + F32(1.0)
    return y * _f32_from_bits(np.int32((np.int32(n) + np.int32(127)) * np.int32(1 << 23)))  # · 2^n


@njit(cache=True, inline="always", error_model="numpy")
def _sigmoid_f32(v):
    """σ(v) for float32 v, branch-free: e = exp(−|v|), σ = 1/(1+e) for v ≥ 0, e/(1+e) below; NaN stays NaN."""
    a = -v if v >= F32(0.0) else v
    e = _exp_nonpos_f32(a)
    q = F32(1.0) / (F32(1.0) + e)
    r = q if v >= F32(0.0) else e * q
    return r if v == v else v  # NaN in, NaN out (the clamp inside exp would turn it into ≈ 1.6e-38)


def sigmoid_fast(v):
    """σ(v): exact (libm exp) for float64 v, the vectorizable ``_sigmoid_f32`` for float32 v."""
    return sigmoid_exact(v)


@overload(sigmoid_fast, inline="always", jit_options={"error_model": "numpy"})
def _sigmoid_fast_impl(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        return lambda v: _sigmoid_f32(v)
    return lambda v: sigmoid_exact(v)


@njit(cache=True, parallel=prange_only(), error_model="numpy")  # as dice_forward: the loop vectorizes
def sigmoid_forward(out, x):
    """out = σ(x), element-wise over a 2-D array (float32: the vectorized ``sigmoid_fast``, within 4 ulp).

    out: (M, H) float, written; cached for backward
    x:   (M, H) float
    Docs: docs/layers/activations.md
    """
    M, H = x.shape
    for m in prange(M):
        for h in range(H):
            out[m, h] = sigmoid_fast(x[m, h])


@njit(cache=True, parallel=prange_only())
def sigmoid_backward(dx, dout, out):
    """Backward of ``sigmoid_forward``; accumulates into dx.

    forward was: y = σ(s)
    so now:      ds += dout · y · (1 − y)
    Docs: docs/layers/activations.md
    """
    M, H = out.shape
    for m in prange(M):
        for h in range(H):
            y = out[m, h]
            dx[m, h] += dout[m, h] * y * (1.0 - y)
