"""A direct BLAS ``?gemm`` call for Numba kernels: C = op(A) · op(B) + β C, in place.

Numba already links a small C helper, ``numba_xxgemm``, that forwards to
SciPy's BLAS (``scipy.linalg.cython_blas``, single-threaded here, see
``minidin/__init__.py``); ``np.dot`` in njit code uses it. ``np.dot`` always
allocates its result and takes whole arrays, so accumulating a row chunk of a
product cost a temporary, a copy loop and, for a transposed operand, a second
compiled layout. Calling the helper directly gives BLAS's own interface:
row offsets into the arrays, transposes as flags and β = 1 to accumulate in
place. It also compiles to a few lines of IR instead of ``np.dot``'s checks,
which matters because every kernel that calls a product re-optimises the
product's code (about 1.2 s against 2.8 s of cold compile for one parallel GEMM).

Row-major arrays are column-major arrays of the transposed shape, so a
row-major product out (M, P) += x (M, K) · W (K, P) is the column-major call
``gemm('n', 'n', P, M, K, W, P, x, K, out, P)``. ``dense.py`` spells out each use.
The symbol resolves by name when the cached machine code is loaded, so kernels
that call this stay cacheable.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import ensure_blas

ensure_blas()  # SciPy's BLAS present, or a clear ImportError now rather than inside a kernel

NO_TRANS = ord("n")
TRANS = ord("t")


@intrinsic
def xgemm(typingctx, transa, transb, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """Column-major ``?gemm``: C[m×n] = op(A)[m×k] · op(B)[k×n] + beta · C, α = 1; returns BLAS's status.

    transa, transb: int, ``NO_TRANS`` or ``TRANS``
    a, b, c:        C-contiguous float32 or float64 arrays of one dtype (s- or d-gemm),
                    used from element a_off, b_off, c_off of their flat data
    lda, ldb, ldc:  leading dimensions, in elements (≥ 1)
    beta:           float, 0 to overwrite C, 1 to accumulate into it
    """
    arrays = (a, b, c)
    if not all(isinstance(t, types.Array) and t.layout == "C" for t in arrays):
        return None
    dt = c.dtype
    if dt not in (types.float32, types.float64) or any(t.dtype != dt for t in arrays):
        return None
    kind = ord("s") if dt == types.float32 else ord("d")
    sig = types.intc(transa, transb, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc)

    def codegen(context, builder, signature, args):
        argtys = signature.args
        intp = context.get_value_type(types.intp)
        char = ir.IntType(8)
        voidp = cgutils.voidptr_t
        fnty = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp, voidp, voidp, intp,
                                                voidp, intp, voidp, voidp, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        def as_intp(i):
            return context.cast(builder, args[i], argtys[i], types.intp)

        def as_char(i):
            return builder.trunc(as_intp(i), char)

        def scalar_slot(value):  # BLAS takes α and β by pointer
            slot = cgutils.alloca_once(builder, context.get_value_type(dt))
            builder.store(value, slot)
            return builder.bitcast(slot, voidp)

        def data_at(i_arr, i_off):
            data = context.make_array(argtys[i_arr])(context, builder, args[i_arr]).data
            return builder.bitcast(builder.gep(data, [as_intp(i_off)]), voidp)

        alpha = scalar_slot(context.get_constant(dt, 1.0))
        beta_ = scalar_slot(context.cast(builder, args[11], argtys[11], dt))
        return builder.call(fn, [ir.Constant(char, kind), as_char(0), as_char(1), as_intp(2), as_intp(3), as_intp(4),
                                 alpha, data_at(5, 6), as_intp(7), data_at(8, 9), as_intp(10), beta_,
                                 data_at(12, 13), as_intp(14)])

    return sig, codegen
