"""New arrays inside kernels, ``empty(shape, dtype)`` and ``zeros(shape, dtype)``, allocated inline.

They do what ``np.empty`` and ``np.zeros`` do in njit code: a fresh C-contiguous array of ``shape`` (an
integer, or a tuple of them) and ``dtype`` (``np.float64``, ``np.int64``, ``np.bool_``, ... or an array's
``.dtype``), uninitialised or zeroed, owned by Numba's runtime like any other; a negative dimension raises
``ValueError`` as NumPy's does.

Why not ``np.empty``: in njit code NumPy's constructors are overloads, small functions that Numba compiles
through its whole pipeline (typing, lowering, LLVM) for every dtype, shape type and dtype spelling they
meet, and again for parallel and serial kernels. A cold first training step compiled 21 of them, about 2 s
of its compile, and the backward kernels 12, about 1.1 s of the compile helper's (Numba's compile events;
docs/benchmarks.md, "Compile and start-up time"). These two are typed and lowered directly instead (Numba's
low-level extension API, as its own builtins are): their code is emitted straight into the kernel that
calls them, with Numba's own array allocator (``_empty_nd_impl``, what ``np.empty`` itself ends in), so
there is nothing else to compile. Called from Python (a kernel's ``py_func``, as the tests run them) they
are ``np.empty`` and ``np.zeros``. Kernels that call them stay cacheable. ``_empty_nd_impl`` and
``_parse_shape`` are Numba's private helpers (unchanged for many releases); a rename in a future Numba fails
every kernel's compile, which the tests catch at once.
"""
import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_new_ref, lower_builtin
from numba.extending import type_callable
from numba.np.arrayobj import _empty_nd_impl, _parse_shape


def empty(shape, dtype):
    """``np.empty(shape, dtype)``: a new C-contiguous array, uninitialised."""
    return np.empty(shape, dtype)


def zeros(shape, dtype):
    """``np.zeros(shape, dtype)``: a new C-contiguous array of zeros (all bits zero: 0, 0.0, False)."""
    return np.zeros(shape, dtype)


def _array_type(shape, dtype):
    """The Array type that ``shape`` and ``dtype`` (their Numba types) describe, or None if they do not."""
    if isinstance(dtype, types.DType):
        dt = dtype.dtype
    elif isinstance(dtype, types.NumberClass):
        dt = dtype.instance_type
    else:
        return None
    if isinstance(shape, types.Integer):
        ndim = 1
    elif isinstance(shape, types.BaseTuple) and len(shape) > 0 and all(isinstance(t, types.Integer) for t in shape):
        ndim = len(shape)
    else:
        return None
    return types.Array(dt, ndim, "C")


def _allocate(context, builder, sig, args, zero):
    arrty = sig.return_type
    shapes = _parse_shape(context, builder, sig.args[0], args[0])  # raises on a negative dimension
    ary = _empty_nd_impl(context, builder, arrty, shapes)
    if zero:
        cgutils.memset(builder, ary.data, builder.mul(ary.itemsize, ary.nitems), 0)
    return impl_ret_new_ref(context, builder, arrty, ary._getvalue())


for _fn, _zero in ((empty, False), (zeros, True)):
    @type_callable(_fn)
    def _typer(context):
        return _array_type

    @lower_builtin(_fn, types.Any, types.Any)
    def _lower(context, builder, sig, args, _zero=_zero):
        return _allocate(context, builder, sig, args, _zero)
