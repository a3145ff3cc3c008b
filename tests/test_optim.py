"""SparseAdagrad / SGD against a small dense NumPy reference of the update rules."""
import numpy as np
import pytest

import minidin
from minidin.sparse import SparseGrad
from minidin.optim import NonFiniteGradient
from tests.helpers import dense, offsets_from_lengths, tiny_model


def prelu_model(seed=0):
    return tiny_model(activation="prelu", seed=seed)


def batch_with_repeats():
    # goods 1 appears three times (twice in a history, once as a candidate); goods 0, 4-7 and cate 3 never
    return minidin.Batch.from_lists([[1, 1, 2], [3]], [[0, 0, 1], [2]], [1, 2], [0, 1], [1, 0], [0, 1])


def ref_adagrad(w, acc, g, lr, eps):
    acc = acc + g * g
    return w - lr * g / (np.sqrt(acc) + eps), acc


@pytest.mark.parametrize("reg", ["none", "mba"])
def test_untouched_rows_and_accumulators_are_bitwise_unchanged(reg):
    m = prelu_model()
    counts = {"goods_emb": np.full(8, 3), "cate_emb": np.full(4, 5)}
    opt = minidin.SparseAdagrad(m.params, lr=0.1, reg=reg, reg_lambda=0.5, counts=counts)
    before = {n: p.copy() for n, p in m.params.items()}
    acc_before = {n: a.copy() for n, a in opt.acc.items()}
    _, grads = m.loss_and_grad(batch_with_repeats())
    opt.step(grads)
    for t in ("goods_emb", "cate_emb"):
        present = grads[t].rows
        absent = np.setdiff1d(np.arange(m.params[t].shape[0]), present)
        assert absent.size > 0
        assert np.array_equal(m.params[t][absent], before[t][absent])
        assert np.array_equal(opt.acc[t][absent], acc_before[t][absent])
        assert not np.array_equal(m.params[t][present], before[t][present])


def test_adagrad_equals_dense_reference_with_repeated_ids():
    m = prelu_model()
    opt = minidin.SparseAdagrad(m.params, lr=0.05, initial_accumulator_value=0.1, eps=1e-10)
    ref_w = {n: p.copy() for n, p in m.params.items()}
    ref_acc = {n: np.full_like(p, 0.1) for n, p in m.params.items()}
    batch = batch_with_repeats()
    for _ in range(3):
        _, grads = m.loss_and_grad(batch)
        for n in m.params:
            g = dense(grads[n])
            if n in ("goods_emb", "cate_emb"):  # only present rows move, with the summed gradient
                rows = grads[n].rows
                w_new, acc_new = ref_adagrad(ref_w[n][rows], ref_acc[n][rows], g[rows], 0.05, 1e-10)
                ref_w[n][rows], ref_acc[n][rows] = w_new, acc_new
            else:
                ref_w[n], ref_acc[n] = ref_adagrad(ref_w[n], ref_acc[n], g, 0.05, 1e-10)
        opt.step(grads)
        for n in m.params:
            np.testing.assert_allclose(m.params[n], ref_w[n], rtol=1e-13, atol=1e-15, err_msg=n)
            np.testing.assert_allclose(opt.acc[n], ref_acc[n], rtol=1e-13, err_msg=n)
    # the repeated goods id 1 got one update with the sum of its three occurrences' gradients
    assert 1 in grads["goods_emb"].rows.tolist()


def test_sparse_adagrad_equals_dense_adagrad_when_every_row_is_present():
    m = minidin.BaseModel(n_goods=3, n_cates=2, goods_dim=2, cate_dim=2, hidden_units=(4,), activation="sigmoid",
                          dtype=np.float64)
    batch = minidin.Batch.from_lists([[0, 1], [2]], [[0, 1], [1]], [2, 0], [0, 1], [1, 0])
    opt = minidin.SparseAdagrad(m.params, lr=0.1, initial_accumulator_value=0.1)
    w0 = {n: p.copy() for n, p in m.params.items()}
    _, grads = m.loss_and_grad(batch)
    assert grads["goods_emb"].rows.tolist() == [0, 1, 2] and grads["cate_emb"].rows.tolist() == [0, 1]
    opt.step(grads)
    for n in m.params:
        want, _ = ref_adagrad(w0[n], np.full_like(w0[n], 0.1), dense(grads[n]), 0.1, 1e-10)
        np.testing.assert_allclose(m.params[n], want, rtol=1e-13, err_msg=n)


def test_mba_regularization_against_dense_reference():
    m = tiny_model(1)
    counts = {"goods_emb": np.arange(1, 9), "cate_emb": np.array([4, 2, 7, 1])}
    lam, lr = 0.3, 0.05
    opt = minidin.SparseAdagrad(m.params, lr=lr, reg="mba", reg_lambda=lam, counts=counts,
                               initial_accumulator_value=0.1)
    w0 = {n: p.copy() for n, p in m.params.items()}
    _, grads = m.loss_and_grad(batch_with_repeats())
    opt.step(grads)
    for t in ("goods_emb", "cate_emb"):
        rows = grads[t].rows
        alpha = np.zeros(w0[t].shape[0])
        alpha[rows] = 1.0  # α_mj: present at least once, counted once
        g = dense(grads[t]) + (lam * alpha / counts[t])[:, None] * w0[t]
        want, _ = ref_adagrad(w0[t], np.full_like(w0[t], 0.1), g, lr, 1e-10)
        want[alpha == 0] = w0[t][alpha == 0]
        np.testing.assert_allclose(m.params[t], want, rtol=1e-13, err_msg=t)
    # dense parameters are never regularized
    for n in m.dense_names:
        want, _ = ref_adagrad(w0[n], np.full_like(w0[n], 0.1), grads[n], lr, 1e-10)
        np.testing.assert_allclose(m.params[n], want, rtol=1e-13, err_msg=n)


def test_mba_term_alone_with_zero_data_gradient():
    """The regularization term checked separately from the data loss."""
    m = tiny_model(2)
    counts = {"goods_emb": np.full(8, 4), "cate_emb": np.full(4, 2)}
    opt = minidin.SGD(m.params, lr=0.5, reg="mba", reg_lambda=0.2, counts=counts)
    grads = m.zero_grads()
    grads["goods_emb"] = SparseGrad(np.array([2, 5]), np.zeros((2, 3)), 8)
    w0 = m.params["goods_emb"].copy()
    opt.step(grads)
    want = w0.copy()
    want[[2, 5]] *= 1 - 0.5 * 0.2 / 4
    np.testing.assert_allclose(m.params["goods_emb"], want, rtol=1e-14)


def test_l2_touches_every_row_every_step():
    m = tiny_model(3)
    lam, lr = 0.01, 0.05
    opt = minidin.SparseAdagrad(m.params, lr=lr, reg="l2", reg_lambda=lam, initial_accumulator_value=0.1)
    w0 = {t: m.params[t].copy() for t in ("goods_emb", "cate_emb")}
    _, grads = m.loss_and_grad(batch_with_repeats())
    opt.step(grads)
    for t, w in w0.items():
        want, acc = ref_adagrad(w, np.full_like(w, 0.1), dense(grads[t]) + lam * w, lr, 1e-10)
        np.testing.assert_allclose(m.params[t], want, rtol=1e-13)
        np.testing.assert_allclose(opt.acc[t], acc, rtol=1e-13)


@pytest.mark.parametrize("reg", ["none", "mba", "l2"])
def test_sgd_reference(reg):
    m = tiny_model(4)
    counts = {"goods_emb": np.full(8, 2), "cate_emb": np.full(4, 3)}
    opt = minidin.SGD(m.params, lr=0.1, reg=reg, reg_lambda=0.2, counts=counts)
    w0 = {n: p.copy() for n, p in m.params.items()}
    _, grads = m.loss_and_grad(batch_with_repeats())
    opt.step(grads)
    for n in m.params:
        g = dense(grads[n])
        if n in ("goods_emb", "cate_emb"):
            if reg == "l2":
                g = g + 0.2 * w0[n]
            elif reg == "mba":
                mask = np.zeros(w0[n].shape[0])
                mask[grads[n].rows] = 1
                g = g + (0.2 * mask / counts[n])[:, None] * w0[n]
        np.testing.assert_allclose(m.params[n], w0[n] - 0.1 * g, rtol=1e-13, atol=1e-16, err_msg=n)


def test_global_norm_clipping():
    m = tiny_model(5)
    opt = minidin.SGD(m.params, lr=1.0, clip_norm=1e-3)
    w0 = {n: p.copy() for n, p in m.params.items()}
    _, grads = m.loss_and_grad(batch_with_repeats())
    norm = np.sqrt(sum(float(np.sum(dense(g) ** 2)) for g in grads.values()))
    assert norm > 1e-3
    opt.step(grads)
    step = np.sqrt(sum(float(np.sum((m.params[n] - w0[n]) ** 2)) for n in m.params))
    np.testing.assert_allclose(step, 1e-3, rtol=1e-10)


def test_errors():
    m = prelu_model()
    with pytest.raises(ValueError, match="counts"):
        minidin.SparseAdagrad(m.params, reg="mba", reg_lambda=0.1)
    with pytest.raises(ValueError, match="reg"):
        minidin.SparseAdagrad(m.params, reg="l1")
    for eps in (0.0, -1e-10, np.nan, np.inf):  # the kernels divide by sqrt(acc) + eps without a zero check
        with pytest.raises(ValueError, match="eps: must be"):
            minidin.SparseAdagrad(m.params, eps=eps)
    with pytest.raises(ValueError, match=r"counts\['goods_emb'\]: shape"):
        minidin.SparseAdagrad(m.params, reg="mba", counts={"goods_emb": np.ones(3), "cate_emb": np.ones(4)})
    counts = {"goods_emb": np.ones(8, np.int64), "cate_emb": np.ones(4, np.int64)}
    counts["goods_emb"][2] = 0
    opt = minidin.SparseAdagrad(m.params, reg="mba", reg_lambda=0.1, counts=counts)
    _, grads = m.loss_and_grad(batch_with_repeats())
    before = m.params["goods_emb"].copy()
    with pytest.raises(ValueError, match="id 2 is in the batch but has count 0"):
        opt.step(grads)
    with pytest.raises(TypeError, match="grads"):
        opt.step({"goods_emb": grads["goods_emb"]})
    assert np.array_equal(before, m.params["goods_emb"])


def test_feature_counts_on_batches_counts_once_per_sample():
    b = batch_with_repeats()  # sample 0: goods {1, 2} (1 three times), sample 1: goods {3, 2}
    c = minidin.feature_counts(b)
    assert c["goods_emb"].tolist() == [0, 1, 2, 1]
    assert c["cate_emb"].tolist() == [1, 2, 1]  # sample 0: cates {0, 1}; sample 1: {2, 1}


def test_model_overfits_32_examples():
    rng = np.random.default_rng(0)
    lens = rng.integers(0, 6, 32)
    batch = minidin.Batch(rng.integers(0, 20, lens.sum()), rng.integers(0, 4, lens.sum()),
                          offsets_from_lengths(lens), rng.integers(0, 20, 32), rng.integers(0, 4, 32),
                          rng.integers(0, 2, 32))
    m = minidin.DIN(n_goods=20, n_cates=4, goods_dim=8, cate_dim=4, attention_units=(16,), hidden_units=(32, 16),
                    dtype=np.float64, seed=0)
    opt = minidin.SparseAdagrad(m.params, lr=0.1)
    first = m.loss(batch)
    for _ in range(300):
        _, g = m.loss_and_grad(batch)
        opt.step(g)
    assert first > 0.6 and m.loss(batch) < 0.05


def _snapshot(m, opt):
    return [p.copy() for p in m.params.values()] + [a.copy() for a in getattr(opt.acc, "values", dict)()]


@pytest.mark.parametrize("make", [lambda p: minidin.SparseAdagrad(p, lr=0.1), lambda p: minidin.SGD(p, lr=0.1)])
def test_a_bad_gradient_is_named_and_moves_nothing(make):
    """Every gradient is checked before any parameter moves: a bad category table raises before the goods
    table (earlier in the order) is touched."""
    from minidin import SparseGrad

    m = prelu_model()
    opt = make(m.params)
    _, good = m.loss_and_grad(batch_with_repeats())
    cases = {
        "unsorted": ("cate_emb", SparseGrad(np.array([2, 0]), np.ones((2, 2)), 4), "sorted"),
        "repeated": ("cate_emb", SparseGrad(np.array([1, 1]), np.ones((2, 2)), 4), "unique"),
        "outside": ("cate_emb", SparseGrad(np.array([0, 4]), np.ones((2, 2)), 4), r"in \[0, 4\)"),
        "negative": ("cate_emb", SparseGrad(np.array([-1]), np.ones((1, 2)), 4), "sorted"),
        "width": ("cate_emb", SparseGrad(np.array([0]), np.ones((1, 3)), 4), "values"),
        "rows/values": ("cate_emb", SparseGrad(np.array([0, 1]), np.ones((1, 2)), 4), "values"),
        "float rows": ("cate_emb", SparseGrad(np.array([0.0]), np.ones((1, 2)), 4), "int64"),
        "nan": ("cate_emb", SparseGrad(np.array([0]), np.full((1, 2), np.nan), 4), "NaN"),
    }
    for case, (table, g, match) in cases.items():
        _, grads = m.loss_and_grad(batch_with_repeats(), update_stats=False)
        grads[table] = g
        before = _snapshot(m, opt)
        with pytest.raises(ValueError, match=match):
            opt.step(grads)
        assert all(np.array_equal(a, b) for a, b in zip(before, _snapshot(m, opt))), case
    _, grads = m.loss_and_grad(batch_with_repeats(), update_stats=False)
    grads["mlp.0.b"] = np.full_like(grads["mlp.0.b"], np.inf)
    with pytest.raises(NonFiniteGradient, match=r"grads\['mlp.0.b'\]: contains NaN"):
        opt.step(grads)
    other = tiny_model(attention_units=(5,), hidden_units=(4,))
    with pytest.raises(ValueError, match="layout"):
        opt.step(other.zero_grads())
    opt.step(good)  # and a good one goes through
    with pytest.raises(TypeError, match="params"):
        make({n: p for n, p in m.params.items()})


@pytest.mark.parametrize("value,what", [(-1, "negative"), (1.5, "fractional"), (np.nan, "NaN"), (np.inf, "infinite")])
def test_bad_mba_counts_say_what_is_wrong(value, what):
    m = prelu_model()
    counts = {"goods_emb": np.ones(8), "cate_emb": np.ones(4)}
    counts["goods_emb"][3] = value
    with pytest.raises(ValueError, match=rf"counts\['goods_emb'\]: id 3 has a .*{what}"):
        minidin.SparseAdagrad(m.params, reg="mba", reg_lambda=0.1, counts=counts)
