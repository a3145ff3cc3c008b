"""Every kernel: forward vs NumPy, finite-difference VJP in float64, accumulation, serial == parallel."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidin.layers as L
from minidin.gradcheck import assert_grad_close, check_array
from tests.helpers import at_one_and_all_threads
from tests.kernel_cases import (ALL, attention_input_case, attention_softmax_case, attention_split_case, dice_case,
                                embedding_bag_case, pooling_case)

KERNELS = sorted(ALL)
F32_RTOL, F32_ATOL = 2e-5, 2e-6  # float32 agrees with float64 to about 100 ulp


def vjp_reports(case, rng):
    out = case.forward()
    dout = rng.standard_normal(out.shape)  # a random upstream gradient, never ones
    analytic = case.backward(dout)
    return [check_array(n, analytic[n], case.forward, case.inputs[n], dout=dout) for n in case.wrt], analytic, dout


def assert_vjp(case, rng):
    reports, _, _ = vjp_reports(case, rng)
    for r in reports:
        assert r.passed, f"{case.name}.{r.name}: {r.failed} entries failed, max rel {r.max_rel:.2e}"
        assert r.excluded == 0


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_matches_numpy_reference(kernel, dtype):
    case = ALL[kernel](np.random.default_rng(0), dtype)
    got = case.forward()
    assert got.dtype == dtype
    want = case.reference()
    if dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    else:  # float32 rounding is absolute at the scale of the terms summed, not of a cancelled result
        np.testing.assert_allclose(got, want, rtol=F32_RTOL, atol=F32_ATOL * max(1.0, float(np.abs(want).max(initial=0))))


@pytest.mark.parametrize("kernel", KERNELS)
def test_float32_backward_agrees_with_float64(kernel):
    c64 = ALL[kernel](np.random.default_rng(1), np.float64)
    c32 = ALL[kernel](np.random.default_rng(1), np.float32)
    dout = np.random.default_rng(2).standard_normal(c64.forward().shape)
    g64, g32 = c64.backward(dout), c32.backward(dout.astype(np.float32))
    for n in c64.wrt:
        assert g32[n].dtype == np.float32
        scale = max(1.0, float(np.abs(g64[n]).max(initial=0)))
        np.testing.assert_allclose(g32[n], g64[n], rtol=1e-4, atol=1e-5 * scale, err_msg=n)


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=8)
@given(seed=st.integers(0, 2**31 - 1))
def test_vjp_matches_finite_differences(kernel, seed):
    rng = np.random.default_rng(seed)
    assert_vjp(ALL[kernel](rng, np.float64), rng)


@pytest.mark.parametrize("make", [attention_input_case, attention_softmax_case, attention_split_case, pooling_case])
@pytest.mark.parametrize("lengths", [[0], [3], [0, 0, 0], [2, 0, 3], [0, 1]])
def test_ragged_kernels_on_empty_and_single_histories(make, lengths):
    rng = np.random.default_rng(3)
    case = make(rng, np.float64, B=len(lengths), lengths=lengths)
    out = case.forward()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, case.reference(), rtol=1e-12, atol=1e-13)
    if make is pooling_case:  # an empty history pools to exactly zero
        for b, t in enumerate(lengths):
            if t == 0:
                assert np.all(out[b] == 0.0)
    assert_vjp(case, rng)


@pytest.mark.parametrize("mean", [True, False])
@pytest.mark.parametrize("lengths", [[0], [1], [0, 0, 0], [3, 0, 1], [0, 2]])
def test_embedding_bag_on_empty_and_single_sets(mean, lengths):
    """An empty set pools to exactly zero and gets no gradient; a one-id set is a plain lookup."""
    rng = np.random.default_rng(4)
    case = embedding_bag_case(rng, np.float64, lengths=lengths, mean=mean)
    out = case.forward()
    np.testing.assert_allclose(out, case.reference(), rtol=1e-12, atol=1e-13)
    for m, t in enumerate(lengths):
        if t == 0:
            assert np.all(out[m] == 0.0)
    assert_vjp(case, rng)


def test_gather_sets_matches_python():
    ids, off = np.array([3, 1, 2, 0, 0], np.int64), np.array([0, 2, 2, 5], np.int64)  # entity 1's set is empty
    rows = np.array([2, 1, 0, 2], np.int64)
    got_ids, got_off = L.gather_sets(rows, ids, off)
    sets = [ids[off[e]:off[e + 1]].tolist() for e in rows]
    assert got_ids.tolist() == [x for s in sets for x in s]
    assert got_off.tolist() == [0, 3, 3, 5, 8]
    e_ids, e_off = L.gather_sets(np.zeros(0, np.int64), ids, off)
    assert e_ids.shape == (0,) and e_off.tolist() == [0]


@pytest.mark.parametrize("M", [0, 1, 2, 7])
@pytest.mark.parametrize("training", [True, False])
def test_dice_edge_rows(M, training):
    rng = np.random.default_rng(M)
    case = dice_case(rng, np.float64, M=M, training=training)
    assert np.all(np.isfinite(case.forward()))
    np.testing.assert_allclose(case.forward(), case.reference(), rtol=1e-12, atol=1e-13)
    assert_vjp(case, rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dice_on_rows_identical_up_to_rounding(dtype):
    """Rows equal in exact arithmetic but not bitwise (a mean of 3 copies): Var = 0, x̂ = 0 exactly,
    so float32 and float64 agree instead of Dice blowing the last bit up by 1/sqrt(eps)."""
    v = np.array([0.2073505, -0.7818943, 0.5432135], dtype=dtype)
    x = np.stack([v, (v / 3 + v / 3 + v / 3).astype(dtype), v])
    assert not np.array_equal(x[0], x[1]) or dtype == np.float64
    out, xhat, p, inv = np.empty_like(x), np.empty_like(x), np.empty_like(x), np.empty(3, dtype)
    L.dice_forward(out, xhat, p, inv, x, np.full(3, 0.25, dtype), np.zeros(3, dtype), np.ones(3, dtype), True, 0.0,
                   1e-8)
    assert np.all(xhat == 0) and np.all(p == 0.5)
    np.testing.assert_allclose(out, x * 0.625, rtol=1e-6)


def test_float32_dice_keeps_the_float64_statistics_accuracy_on_a_narrow_column():
    """The float32 element loop takes the mean as float32 hi + lo parts: on a column whose values
    spread over ~40 ulps, x̂ matches the float64 computation from the same float32 inputs to float32
    rounding; a mean rounded to float32 is off by up to half an ulp, a few % of this spread."""
    rng = np.random.default_rng(3)
    c = np.float32(1.2345678)
    x32 = (c + rng.integers(0, 40, (257, 1)) * np.spacing(c)).astype(np.float32)
    x32 = np.hstack([x32, rng.standard_normal((257, 1)).astype(np.float32)])
    x64 = x32.astype(np.float64)
    want = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-8)
    out, xhat, p, inv = np.empty_like(x32), np.empty_like(x32), np.empty_like(x32), np.empty(2, np.float32)
    L.dice_forward(out, xhat, p, inv, x32, np.full(2, 0.25, np.float32), np.zeros(2, np.float32),
                   np.ones(2, np.float32), True, 0.0, 1e-8)
    np.testing.assert_allclose(xhat, want, rtol=1e-6, atol=1e-6)
    mean_rounded = np.float32(x64[:, 0].mean())
    naive = (x32[:, 0] - mean_rounded).astype(np.float64) / np.sqrt(x64[:, 0].var() + 1e-8)
    assert np.abs(naive - want[:, 0]).max() > 1e-4  # 100x the tolerance: the case really needs the lo part


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), M=st.integers(2, 6))
def test_dice_on_nearly_identical_rows(seed, M):
    """Curvature scale sqrt(eps) = 1e-4: Ridders' extrapolation keeps the criterion exact."""
    rng = np.random.default_rng(seed)
    assert_vjp(dice_case(rng, np.float64, M=M, training=True, near_identical=True), rng)


def test_dice_running_averages():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3))
    rm, rv = np.zeros(3), np.ones(3)
    bufs = [np.empty((6, 3)) for _ in range(3)] + [np.empty(3)]
    L.dice_forward(*bufs, x, np.full(3, 0.25), rm, rv, True, 0.1, 1e-8)
    np.testing.assert_allclose(rm, 0.1 * x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(0), rtol=1e-12)
    # zero rows: the averages stay exactly where they were
    before = rm.copy(), rv.copy()
    e = np.empty((0, 3))
    L.dice_forward(e, e.copy(), e.copy(), np.empty(3), e.copy(), np.full(3, 0.25), rm, rv, True, 0.1, 1e-8)
    assert np.array_equal(rm, before[0]) and np.array_equal(rv, before[1])
    # momentum 0 (update_stats=False) leaves them too
    L.dice_forward(*bufs, x, np.full(3, 0.25), rm, rv, True, 0.0, 1e-8)
    assert np.array_equal(rm, before[0]) and np.array_equal(rv, before[1])


@pytest.mark.parametrize("kernel", KERNELS)
def test_backward_accumulates(kernel):
    rng = np.random.default_rng(4)
    case = ALL[kernel](rng, np.float64)
    dout = rng.standard_normal(case.forward().shape)
    once = case.backward(dout)
    twice = case.backward(dout, grads={n: v.copy() for n, v in once.items()})
    for n in case.wrt:
        np.testing.assert_allclose(twice[n], 2 * once[n], rtol=1e-14, atol=0, err_msg=n)


@pytest.mark.parametrize("kernel", KERNELS)
def test_parallel_kernels_match_serial(kernel):
    """The jitted (prange) kernels against their pure-Python bodies, where prange is range."""
    rng = np.random.default_rng(5)
    case = ALL[kernel](rng, np.float64, **({"M": 700} if kernel in ("prelu", "dice_train", "dice_infer") else {}))
    dout = rng.standard_normal(case.forward().shape)
    np.testing.assert_allclose(case.forward(), case.forward(serial=True), rtol=1e-13, atol=1e-14)
    gp, gs = case.backward(dout), case.backward(dout, serial=True)
    for n in case.wrt:
        np.testing.assert_allclose(gp[n], gs[n], rtol=1e-12, atol=1e-13, err_msg=n)


@pytest.mark.parametrize("kernel", KERNELS)
def test_deterministic_for_any_thread_count(kernel):
    """Fixed-chunk reductions: bitwise identical results with 1 thread and with all threads."""
    rng = np.random.default_rng(6)
    case = ALL[kernel](rng, np.float64, **({"M": 3000} if kernel in ("prelu", "dice_train", "dice_infer") else {}))
    dout = rng.standard_normal(case.forward().shape)
    results = at_one_and_all_threads(lambda: (case.forward(), case.backward(dout)))
    assert np.array_equal(results[0][0], results[1][0])
    for n in case.wrt:
        assert np.array_equal(results[0][1][n], results[1][1][n]), n


def test_kernels_compile_for_float32_and_float64():
    for kernel in KERNELS:
        for dt in (np.float32, np.float64):
            case = ALL[kernel](np.random.default_rng(7), dt)
            case.backward(np.ones_like(case.forward()))
    names = [n for n in L.__all__ if n.endswith(("_forward", "_backward"))]
    for name in names:
        fn = getattr(L, name)
        sigs = " ".join(str(s) for s in fn.signatures)
        assert "float32" in sigs and "float64" in sigs, f"{name} signatures: {fn.signatures}"


@pytest.mark.parametrize("kernel", KERNELS)
def test_checker_fails_on_one_percent_error(kernel):
    """A gradient 1% wrong in a single entry must fail the same check that passes above."""
    rng = np.random.default_rng(8)
    case = ALL[kernel](rng, np.float64)
    dout = rng.standard_normal(case.forward().shape)
    analytic = case.backward(dout)
    for n in case.wrt:
        wrong = analytic[n].copy()
        i = np.unravel_index(np.argmax(np.abs(wrong)), wrong.shape)
        wrong[i] *= 1.01
        assert not check_array(n, wrong, case.forward, case.inputs[n], dout=dout).passed
        numeric = np.array(analytic[n])
        with pytest.raises(AssertionError, match="max rel_error"):
            assert_grad_close(wrong, numeric, name=n)


@settings(max_examples=30)
@given(ids=st.lists(st.integers(0, 20), max_size=300))
def test_unique_rows_sort_matches_numpy(ids):
    from minidin.layers.embedding import _argsort
    ids = np.array(ids, dtype=np.int64)
    np.testing.assert_array_equal(_argsort(ids), np.argsort(ids, kind="stable"))
    rows, inv = L.unique_rows(ids)
    want_rows, want_inv = np.unique(ids, return_inverse=True)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(inv, want_inv.ravel())


@settings(max_examples=40)
@given(ids=st.lists(st.integers(-3, 2**40), max_size=300), small=st.booleans())
def test_radix_argsort_equals_the_merge_sort(ids, small):
    """unique_rows' radix sort (the fast path) against the stable merge sort (the clear one) and numpy: the same
    permutation, repeated keys in their original order, any key width, a negative key falling back."""
    from minidin.layers.embedding import _argsort, _radix_argsort
    ids = np.array(ids, dtype=np.int64) % (50 if small else 2**62)
    np.testing.assert_array_equal(_radix_argsort(ids), _argsort(ids))
    np.testing.assert_array_equal(_radix_argsort(ids), np.argsort(ids, kind="stable"))
    neg = np.array([3, -1, 3, 0], dtype=np.int64)
    np.testing.assert_array_equal(_radix_argsort(neg), np.argsort(neg, kind="stable"))


def test_unique_rows():
    rows, inv = L.unique_rows(np.array([4, 1, 4, 0, 1, 1], dtype=np.int64))
    assert rows.tolist() == [0, 1, 4]
    assert inv.tolist() == [2, 1, 2, 0, 1, 1]
    rows, inv = L.unique_rows(np.zeros(0, dtype=np.int64))
    assert rows.shape == (0,) and inv.shape == (0,)


def test_bce_is_stable_for_huge_logits():
    z = np.array([1e4, -1e4, 1e4, -1e4, 0.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    loss = L.bce_forward(z, y)
    np.testing.assert_allclose(loss, (0 + 0 + 1e4 + 1e4 + np.log(2)) / 5, rtol=1e-15)
    d = np.zeros(5)
    L.bce_backward(d, z, y, 1.0)
    np.testing.assert_allclose(d, np.array([0, 0, 1, -1, -0.5]) / 5, atol=1e-300)
    z32 = z.astype(np.float32)
    assert np.isfinite(L.bce_forward(z32, y.astype(np.float32)))


def test_float32_sigmoid_fast_is_within_4_ulp_of_the_exact_sigmoid():
    """sigmoid_fast's branch-free float32 σ (the vectorizable one Dice uses) against float64 libm, on a dense grid
    over ±100 plus the clamp and the edges of float32's range; float64 input keeps the exact σ."""
    from numba import njit

    from minidin.layers.sigmoid import sigmoid_fast

    @njit(error_model="numpy")
    def gate_all(out, v):
        for i in range(v.shape[0]):
            out[i] = sigmoid_fast(v[i])

    def exact_sigmoid(x):  # float64, without overflow
        e = np.exp(-np.abs(x.astype(np.float64)))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    v = np.concatenate([np.linspace(-100, 100, 400_001), [-1e30, -87.5, -87.0, -86.9, 0.0, -0.0, 1e-30, 88.0, 1e30]])
    v32 = v.astype(np.float32)
    got = np.empty_like(v32)
    gate_all(got, v32)
    exact = exact_sigmoid(v32)
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    ok = exact >= 1e-37  # below, float32 is denormal and the clamp gives exp(-87)-sized values instead
    assert np.all(np.abs(got[ok] - exact[ok]) <= 4 * ulp[ok]), np.max(np.abs(got[ok] - exact[ok]) / ulp[ok])
    assert np.all(got[~ok] <= 1.01e-37) and np.all(got >= 0) and np.all(got <= 1)
    got64 = np.empty_like(v)
    gate_all(got64, v)
    np.testing.assert_allclose(got64, exact_sigmoid(v), rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_stays_nan_through_sigmoid_dice_and_the_fused_path(dtype):
    """A NaN inside a model comes out as NaN, never as a finite wrong probability, in both inference paths."""
    x = np.array([[np.nan, 0.0, -np.inf, np.inf, -200.0, 200.0]], dtype=dtype)
    out = np.empty_like(x)
    L.sigmoid_forward(out, x)
    assert np.isnan(out[0, 0]) and out[0, 1] == 0.5 and 0.0 <= out[0, 2] < 1e-37 and out[0, 3] == 1.0
    import minidin
    from tests.helpers import tiny_model

    for act in ("dice", "sigmoid", "prelu"):
        m = tiny_model(n_goods=5, n_cates=2, hidden_units=(3,), activation=act, dtype=dtype)
        m.params["goods_emb"][2] = np.nan
        b = minidin.Batch.from_lists([[2, 1], [1]], [[0, 1], [1]], [3, 4], [0, 1])
        for fused in (True, False):
            p = m.predict(b, fused=fused)
            assert np.isnan(p[0]) and np.isfinite(p[1]), (act, fused, p)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prefetch_is_a_hint_that_changes_nothing(dtype):
    """layers/prefetch.py: prefetching rows (any, including one past the table) leaves every value as it was,
    and the intrinsic refuses what is not a 2-D array and integer indices."""
    from numba import njit
    from numba.core.errors import TypingError

    from minidin.layers.prefetch import prefetch_row, prefetch_table_row

    @njit
    def gather(out, table, ids):
        for m in range(ids.shape[0]):
            prefetch_table_row(table, ids[min(m + 4, ids.shape[0] - 1)])
            prefetch_row(table, table.shape[0], 0)  # past the end: a hint never faults
            for d in range(table.shape[1]):
                out[m, d] = table[ids[m], d]

    table = np.arange(60, dtype=dtype).reshape(12, 5)
    ids = np.array([3, 0, 11, 3, 7], dtype=np.int64)
    out = np.zeros((5, 5), dtype=dtype)
    before = table.copy()
    gather(out, table, ids)
    np.testing.assert_array_equal(out, before[ids])
    np.testing.assert_array_equal(table, before)

    @njit
    def bad(v):
        prefetch_row(v, 0, 0)

    with pytest.raises(TypingError):
        bad(np.zeros(3, dtype=dtype))
