"""layers/alloc.py: the kernels' empty and zeros, compiled and in pure Python, and that kernels use them."""
import ast
import pathlib

import numpy as np
import pytest
from numba import njit

from minidin.layers.alloc import empty, zeros


@njit(cache=True)
def _make(x, n):
    a = zeros((n, 3), np.float64)
    b = empty(n, x.dtype)
    c = zeros(n, np.bool_)
    d = zeros((2, n, 3), x.dtype)
    e = empty(0, np.int64)
    for i in range(n):
        b[i] = i
    return a, b, c, d, e


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_empty_and_zeros_match_numpy_compiled_and_in_python(dt):
    x = np.ones(3, dt)
    for fn in (_make, _make.py_func):
        a, b, c, d, e = fn(x, 4)
        want = [((4, 3), np.float64), ((4,), dt), ((4,), np.bool_), ((2, 4, 3), dt), ((0,), np.int64)]
        for arr, (shape, dtype) in zip((a, b, c, d, e), want):
            assert arr.shape == shape and arr.dtype == dtype and arr.flags.c_contiguous and arr.flags.writeable
        assert not a.any() and not c.any() and not d.any()
        np.testing.assert_array_equal(b, np.arange(4))
    a, *_ = _make(x, 4)
    a[0, 0] = 1.0  # an array of its own: writing it touches nothing else
    assert _make(x, 4)[0].sum() == 0.0


def test_negative_dimension_raises_like_numpy():
    with pytest.raises(ValueError, match="negative dimensions"):
        _make(np.ones(3), -1)


def test_kernels_allocate_with_alloc_not_numpy():
    """np.empty / np.zeros / np.ones in an njit function compile an overload per dtype, shape type and caller
    (docs/benchmarks.md, "Compile and start-up time"): kernels use layers/alloc.py's."""
    root = pathlib.Path(__file__).resolve().parent.parent / "minidin"
    found = []
    for path in sorted(root.rglob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef) or not any("jit" in ast.unparse(d) for d in fn.decorator_list):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "np"
                        and node.func.attr in ("empty", "zeros", "ones", "full", "empty_like", "zeros_like")):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {fn.name}: {ast.unparse(node)}")
    assert not found, "\n".join(found)
