"""Whole-model tests: finite differences on every parameter, NumPy reference, API contracts."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidin
from minidin.gradcheck import check_array, check_model, prelu_inputs
from minidin.layers.fused import FOLD, LARGE_BATCH, SPLIT_MIN_ROWS
from minidin import reference as ref
from tests.helpers import at_one_and_all_threads, dense, offsets_from_lengths, tiny_model
from tests.strategies import batches

ACTS = ["dice", "prelu", "sigmoid"]
CONFIGS = ([("din", a, sm) for a in ACTS for sm in (False, True)]
           + [("base", a, pool) for a in ACTS for pool in ("sum", "mean")])


def make_model(kind, act, opt, n_goods, n_cates, dtype=np.float64, seed=0, **kw):
    # Half the configurations carry the per-goods logit bias (DIN with softmax, Base with mean pooling),
    # so every whole-model test covers it without doubling the run time.
    kw.setdefault("goods_bias", opt in (True, "mean"))
    kw.update({"attention_softmax": opt} if kind == "din" else {"pooling": opt})
    return tiny_model(kind, n_goods, n_cates, attention_units=(4, 3), hidden_units=(5, 3), activation=act,
                      dtype=dtype, seed=seed, **kw)


def spread_params(model, rng, scale=0.6):
    """Larger random parameters than the initialisation, so every gradient is far from 0."""
    for name, p in model.params.items():
        if not name.endswith(".alpha"):
            p[...] = rng.standard_normal(p.shape) * scale


def zero_variance_dice_columns(model, batch):
    """How many Dice columns have batch variance 0 over two or more rows (training forward)."""
    cache = model.forward(batch, training=True)
    r0 = 1.0 / np.sqrt(model.dice_eps)
    return sum(int(np.sum(c.inv_std == r0)) for c in cache.att_layers + cache.mlp_layers
               if c.inv_std is not None and c.z.shape[0] >= 2)


def paper_batch(labels=(1, 0)):
    return minidin.Batch.from_lists(hist_goods=[[3, 5], []], hist_cates=[[1, 2], []], cand_goods=[4, 2],
                                    cand_cates=[1, 0], labels=list(labels), users=[7, 8])


# ---------------------------------------------------------------- finite differences, whole model
@pytest.mark.parametrize("kind,act,opt", CONFIGS)
@settings(max_examples=6)
@given(data=batches(), seed=st.integers(0, 2**31 - 1))
def test_whole_model_gradients_match_finite_differences(kind, act, opt, data, seed):
    batch, n_goods, n_cates = data
    model = make_model(kind, act, opt, n_goods, n_cates, seed=seed % 1000)
    spread_params(model, np.random.default_rng(seed))
    if zero_variance_dice_columns(model, batch):
        # Every row of a Dice column identical (e.g. one sample repeated with other labels): the exact
        # backward carries per-row terms 1/sqrt(eps) = 1e4 times larger per such layer, which cancel
        # in float64 only to ~1e-8 (docs/layers/dice.md, "Zero variance"). Check it where float64 can.
        model = make_model(kind, act, opt, n_goods, n_cates, seed=seed % 1000, dice_eps=1e-4)
        spread_params(model, np.random.default_rng(seed))
    reports = check_model(model, batch)
    assert set(reports) == set(model.params)
    total = sum(r.checked + r.excluded for r in reports.values())
    excluded = sum(r.excluded for r in reports.values())
    bad = {n: (r.failed, f"{r.max_rel:.2e}") for n, r in reports.items() if not r.passed}
    assert not bad, f"failed entries (count, max rel) per parameter: {bad}"
    if act != "prelu":
        assert excluded == 0
    assert excluded <= 0.05 * total, f"{excluded} of {total} entries next to a PReLU kink"


@pytest.mark.parametrize("kind,act,opt", CONFIGS)
def test_whole_model_adversarial_batches(kind, act, opt):
    """Batch of 1, all-empty histories, and repeated ids shared by history and candidate."""
    rng = np.random.default_rng(11)
    cases = [
        minidin.Batch.from_lists([[0, 0, 1]], [[0, 0, 0]], [0], [0], [1]),  # B=1, repeats, candidate in history
        minidin.Batch.from_lists([[], []], [[], []], [1, 0], [0, 1], [1, 0]),  # every history empty
        minidin.Batch.from_lists([[1], [1], []], [[0], [0], []], [1, 1, 0], [0, 0, 0], [1, 0, 1]),  # duplicates
        # every row of every layer identical: Dice's variance is 0, its curvature scale sqrt(eps)
        minidin.Batch.from_lists([[0], [0, 0]], [[0], [0, 0]], [0, 0], [0, 0], [0, 0]),
    ]
    for batch in cases:
        model = make_model(kind, act, opt, n_goods=2, n_cates=2)
        spread_params(model, rng)
        reports = check_model(model, batch)
        assert all(r.passed for r in reports.values()), {n: r.max_rel for n, r in reports.items()}


def test_dice_zero_variance_with_differing_labels():
    """One sample three times with labels 0, 1, 1: every Dice column of every layer has variance exactly 0,
    yet the rows' upstream gradients differ, so the backward's r·(dx̂ − mean dx̂) term is live at r = ε^-½.
    Two stacked attention Dice layers amplify float64 rounding by 1/ε (docs/layers/dice.md), so the exact
    gradient is checked at ε = 1e-4, where it passes, and the loss of digits is shown to be that conditioning:
    the error falls as ε grows."""
    batch = minidin.Batch.from_lists([[0], [0], [0]], [[0], [0], [0]], [0, 0, 0], [0, 0, 0], [0, 1, 1])

    def worst(eps):
        m = make_model("din", "dice", False, n_goods=1, n_cates=1, dice_eps=eps)  # attention units (4, 3)
        spread_params(m, np.random.default_rng(0))
        assert zero_variance_dice_columns(m, batch) == 4 + 3 + 5 + 3
        _, grads = m.loss_and_grad(batch, update_stats=False)
        assert np.abs(grads["att.0.b"]).max() > 1e-5  # the statistics' term is live, not 0
        reports = check_model(m, batch)
        return reports, max(r.max_rel for r in reports.values())

    reports, _ = worst(1e-4)
    assert all(r.passed for r in reports.values()), {n: r.max_rel for n, r in reports.items()}
    errs = [worst(eps)[1] for eps in (1e-8, 1e-6)]
    assert errs[0] > errs[1], errs  # conditioning: the error shrinks with 1/ε


@pytest.mark.parametrize("kind,act,opt", [("din", "dice", False), ("base", "prelu", "sum"), ("din", "sigmoid", True)])
def test_whole_model_check_fails_on_one_percent_error(kind, act, opt):
    rng = np.random.default_rng(12)
    batch = minidin.Batch.from_lists([[0, 1, 2], [2]], [[0, 1, 1], [1]], [1, 0], [0, 1], [1, 0])
    model = make_model(kind, act, opt, n_goods=3, n_cates=2)
    spread_params(model, rng)
    _, grads = model.loss_and_grad(batch, update_stats=False)
    fun = lambda: model.loss(batch)  # noqa: E731
    for name in model.params:
        if name == "att.out.b" and opt is True:
            continue  # softmax is shift-invariant: the score bias's gradient is exactly 0
        g = grads[name]
        g = dense(g).copy()
        i = np.unravel_index(np.argmax(np.abs(g)), g.shape)
        assert abs(g[i]) > 1e-6, f"{name}: gradient too small for the test to mean anything"
        g[i] *= 1.01
        assert not check_array(name, g, fun, model.params[name]).passed, name


# ---------------------------------------------------------------- forward against NumPy
@pytest.mark.parametrize("kind,act,opt", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=5)
@given(data=batches(max_b=6, max_t=6))
def test_forward_matches_numpy_reference(kind, act, opt, dtype, data):
    batch, n_goods, n_cates = data
    model = make_model(kind, act, opt, n_goods, n_cates, dtype=dtype)
    spread_params(model, np.random.default_rng(0), scale=0.4)
    for training in (True, False):
        got = model.logits(batch, training=training)
        want = ref.model_logits(model, batch, training)
        tol = dict(rtol=1e-10, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got, want, **tol)
    loss, _ = model.loss_and_grad(batch, update_stats=False)
    np.testing.assert_allclose(loss, ref.bce(ref.model_logits(model, batch, True), batch.labels),
                               rtol=1e-10 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("kind,act,opt", CONFIGS)
def test_float32_agrees_with_float64(kind, act, opt):
    batch = minidin.Batch.from_lists([[0, 3, 2], [], [1, 1]], [[0, 1, 1], [], [0, 0]], [1, 0, 2], [0, 1, 1],
                                     [1, 0, 1])
    m64 = make_model(kind, act, opt, 4, 2, dtype=np.float64)
    spread_params(m64, np.random.default_rng(3), scale=0.4)
    m32 = make_model(kind, act, opt, 4, 2, dtype=np.float32)
    for n, p in m64.params.items():
        m32.params[n][...] = p
    l64, g64 = m64.loss_and_grad(batch)
    l32, g32 = m32.loss_and_grad(batch)
    assert abs(l64 - l32) <= 1e-5 * max(1.0, abs(l64))  # stated float32 tolerance: 1e-5 relative
    for n in m64.params:
        a, b = dense(g64[n]), dense(g32[n])
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5 * max(1.0, np.abs(a).max()), err_msg=n)
    for n in m64.state:
        np.testing.assert_allclose(m32.state[n], m64.state[n], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- API contracts
def test_public_api_example():
    batch = paper_batch()
    model = minidin.DIN(n_goods=10, n_cates=3, goods_dim=4, cate_dim=2, attention_units=(8, 4),
                        hidden_units=(6, 3), activation="dice", attention_activation=None,
                        attention_softmax=False, dtype=np.float64, seed=0)
    loss, grads = model.loss_and_grad(batch)
    assert isinstance(loss, float) and math.isfinite(loss)
    assert set(grads) == set(model.params)
    assert model.params["goods_emb"].shape == (10, 4) and model.params["cate_emb"].shape == (3, 2)
    for name, g in grads.items():
        if name in ("goods_emb", "cate_emb"):
            assert isinstance(g, minidin.SparseGrad)
            assert g.rows.dtype == np.int64 and np.all(np.diff(g.rows) > 0)
            assert g.values.shape == (len(g.rows), model.params[name].shape[1])
            assert g.shape == model.params[name].shape
        else:
            assert g.shape == model.params[name].shape and g.dtype == np.float64
    assert grads["goods_emb"].rows.tolist() == [2, 3, 4, 5]
    assert grads["cate_emb"].rows.tolist() == [0, 1, 2]
    assert model.params["att.0.W"].shape == (24, 8)
    assert model.params["mlp.0.W"].shape == (18, 6)
    p = model.predict(batch)
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))
    w = model.attention(batch)
    assert w.shape == (2,)
    unlabeled = minidin.Batch.from_lists([[3, 5], []], [[1, 2], []], [4, 2], [1, 0])
    np.testing.assert_allclose(model.predict(unlabeled), model.predict(batch))
    base = minidin.BaseModel(n_goods=10, n_cates=3, goods_dim=4, cate_dim=2, hidden_units=(6, 3),
                             activation="prelu", dtype=np.float64, seed=0, pooling="mean")
    assert base.attention(batch).tolist() == [0.5, 0.5]  # the BaseModel's fixed weights: 1/T (mean pooling)
    assert math.isfinite(base.loss_and_grad(batch)[0])


def test_defaults():
    m = minidin.DIN(n_goods=5, n_cates=2)
    assert m.dtype == np.float32 and m.goods_dim == 64 and m.cate_dim == 64
    assert m.hidden_units == (200, 80) and m.attention_units == (80, 40)
    assert m.activation == "dice" and m.attention_activation == "dice" and not m.attention_softmax
    assert all(p.dtype == np.float32 for p in m.params.values())
    assert minidin.BaseModel(n_goods=5, n_cates=2).pooling == "sum"


def test_dense_params_are_views_of_one_buffer():
    m = make_model("din", "dice", False, 4, 2)
    for name in m.dense_names:
        assert np.shares_memory(m.params[name], m.dense_flat)
    assert sum(m.params[n].size for n in m.dense_names) == m.dense_flat.size


def test_update_stats_and_running_averages():
    batch = paper_batch()
    m = make_model("din", "dice", False, 10, 3)
    before = {k: v.copy() for k, v in m.state.items()}
    m.loss_and_grad(batch, update_stats=False)
    assert all(np.array_equal(before[k], m.state[k]) for k in before)
    m.predict(batch), m.attention(batch), m.loss(batch)
    assert all(np.array_equal(before[k], m.state[k]) for k in before)
    m.loss_and_grad(batch)
    assert all(not np.array_equal(before[k], m.state[k]) for k in before)
    assert "att.0.running_mean" in m.state and "att.0.running_mean" not in m.params


def test_all_empty_batch_leaves_attention_dice_averages_unchanged():
    batch = minidin.Batch.from_lists([[], []], [[], []], [1, 2], [0, 1], [1, 0])
    m = make_model("din", "dice", False, 4, 2)
    before = {k: v.copy() for k, v in m.state.items()}
    loss, grads = m.loss_and_grad(batch)
    assert math.isfinite(loss)
    for k in before:
        changed = not np.array_equal(before[k], m.state[k])
        assert changed == k.startswith("mlp."), k
    for n, g in grads.items():
        if n.startswith("att."):
            assert np.all(g == 0), n
    assert m.attention(batch).shape == (0,)


@pytest.mark.parametrize("kind,act,opt", CONFIGS)
def test_prediction_independent_of_other_samples(kind, act, opt):
    rng = np.random.default_rng(5)
    m = make_model(kind, act, opt, 6, 3)
    spread_params(m, rng, 0.4)
    big = minidin.Batch.from_lists([[0, 1, 5], [], [2, 2, 3, 4], [1]], [[0, 1, 2], [], [1, 1, 0, 2], [2]],
                                   [3, 4, 0, 1], [1, 0, 2, 2], [1, 0, 1, 0])
    m.loss_and_grad(big)  # move the running averages away from their start
    p_all = m.predict(big)
    for b in range(big.size):
        lo, hi = big.hist_offsets[b], big.hist_offsets[b + 1]
        one = minidin.Batch(big.hist_goods[lo:hi], big.hist_cates[lo:hi], [0, hi - lo], big.cand_goods[b:b + 1],
                            big.cand_cates[b:b + 1])
        np.testing.assert_allclose(m.predict(one), p_all[b:b + 1], rtol=1e-12)
        perm = np.arange(lo, hi)[::-1]  # a permuted history gives the same prediction
        rev = minidin.Batch(big.hist_goods[perm], big.hist_cates[perm], [0, hi - lo], big.cand_goods[b:b + 1],
                            big.cand_cates[b:b + 1])
        np.testing.assert_allclose(m.predict(rev), p_all[b:b + 1], rtol=1e-12)


def test_empty_history_pools_to_zero():
    m = make_model("din", "prelu", False, 10, 3)
    batch = paper_batch()
    cache = m.forward(batch, training=False)
    assert np.all(cache.interest[1] == 0.0) and np.all(np.isfinite(cache.interest))
    m2 = make_model("din", "prelu", True, 10, 3)
    assert np.all(m2.forward(batch, training=False).interest[1] == 0.0)


def test_softmax_weights_sum_to_one_per_history():
    m = make_model("din", "sigmoid", True, 10, 3)
    batch = minidin.Batch.from_lists([[3, 5, 1], [], [2]], [[1, 2, 0], [], [0]], [4, 2, 2], [1, 0, 0])
    w = m.attention(batch)
    assert w.shape == (4,)
    np.testing.assert_allclose([w[:3].sum(), w[3]], [1.0, 1.0])


def test_initial_loss_is_near_ln2():
    rng = np.random.default_rng(0)
    B = 64
    lens = rng.integers(0, 8, B)
    batch = minidin.Batch(rng.integers(0, 50, lens.sum()), rng.integers(0, 5, lens.sum()),
                          offsets_from_lengths(lens), rng.integers(0, 50, B), rng.integers(0, 5, B),
                          np.tile([0, 1], B // 2))
    for kind, act, opt in CONFIGS:
        loss = make_model(kind, act, opt, 50, 5, dtype=np.float32).loss(batch)
        assert abs(loss - math.log(2)) < 0.1, (kind, act, opt, loss)


# ---------------------------------------------------------------- bad input reaches no kernel
@pytest.mark.parametrize("field,kwargs", [
    ("hist_goods", dict(hist_goods=[[3, 10], []])),
    ("cand_goods", dict(cand_goods=[4, 11])),
    ("hist_cates", dict(hist_cates=[[1, 3], []])),
    ("cand_cates", dict(cand_cates=[5, 0])),
])
def test_ids_out_of_vocabulary(field, kwargs):
    args = dict(hist_goods=[[3, 5], []], hist_cates=[[1, 2], []], cand_goods=[4, 2], cand_cates=[1, 0],
                labels=[1, 0], users=[7, 8])
    args.update(kwargs)
    batch = minidin.Batch.from_lists(**args)
    for m in (make_model("din", "dice", False, 10, 3), make_model("base", "prelu", "sum", 10, 3)):
        for call in (m.loss_and_grad, m.predict, m.loss, m.logits):
            with pytest.raises(ValueError, match=f"{field}.*out of range"):
                call(batch)
    with pytest.raises(ValueError, match=field):
        make_model("din", "dice", False, 10, 3).attention(batch)


def test_model_needs_labels_and_a_batch():
    m = make_model("din", "dice", False, 10, 3)
    with pytest.raises(ValueError, match="labels"):
        m.loss_and_grad(minidin.Batch.from_lists([[3]], [[1]], [4], [1]))
    with pytest.raises(TypeError, match="batch"):
        m.predict({"hist_goods": [1]})


@pytest.mark.parametrize("kwargs,match", [
    (dict(activation="relu"), "activation"),
    (dict(attention_activation="tanh"), "attention_activation"),
    (dict(n_goods=0), "n_goods"),
    (dict(goods_dim=0), "goods_dim"),
    (dict(hidden_units=(4, 0)), "hidden_units"),
    (dict(attention_units=(0,)), "attention_units"),
    (dict(dtype=np.float16), "dtype"),
])
def test_bad_model_arguments(kwargs, match):
    args = dict(n_goods=5, n_cates=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        minidin.DIN(**args)


def test_bad_pooling():
    with pytest.raises(ValueError, match="pooling"):
        minidin.BaseModel(n_goods=5, n_cates=2, pooling="max")


def test_entries_next_to_a_prelu_kink_are_excluded_and_counted():
    batch = minidin.Batch.from_lists([[0, 1], [2]], [[0, 1], [1]], [1, 0], [0, 1], [1, 0])
    m = make_model("base", "prelu", "sum", 3, 2)
    spread_params(m, np.random.default_rng(4))
    z = m.forward(batch, training=True).mlp_layers[0].z
    m.params["mlp.0.b"][0] -= z[0, 0] - 3e-7  # sample 0's first unit sits 3e-7 above the kink
    reports = check_model(m, batch)
    assert all(r.passed for r in reports.values())
    assert reports["mlp.0.b"].excluded == 1 and reports["mlp.0.W"].excluded >= 1
    assert sum(r.excluded for r in reports.values()) < sum(r.checked for r in reports.values())


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("size", ["loops", "blas"])
def test_attention_split_matches_the_reference_path(act, size):
    """DIN's default first attention layer (attention_split_*) against the clear path
    (attention_input_* then dense_*): same loss, logits, gradients and Dice statistics."""
    rng = np.random.default_rng(11)
    B, dims = (5, (3, 2)) if size == "loops" else (48, (16, 16))
    lens = rng.integers(0, 12, B)
    lens[0] = 0
    batch = minidin.Batch.from_lists(hist_goods=[list(rng.integers(0, 30, t)) for t in lens],
                                     hist_cates=[list(rng.integers(0, 4, t)) for t in lens],
                                     cand_goods=list(rng.integers(0, 30, B)), cand_cates=list(rng.integers(0, 4, B)),
                                     labels=list(rng.integers(0, 2, B)))
    models = [minidin.DIN(30, 4, goods_dim=dims[0], cate_dim=dims[1], attention_units=(7, 3), hidden_units=(5, 3),
                          activation=act, dtype=np.float64, seed=3, attention_split=s) for s in (True, False)]
    for m in models:
        spread_params(m, np.random.default_rng(4), scale=0.3)
    (l1, g1), (l2, g2) = (m.loss_and_grad(batch) for m in models)
    assert l1 == pytest.approx(l2, rel=1e-12, abs=1e-13)
    np.testing.assert_allclose(models[0].logits(batch), models[1].logits(batch), rtol=1e-11, atol=1e-12)
    for name in g1:
        a, b = (dense(g[name]) for g in (g1, g2))
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11, err_msg=name)
    for name in models[0].state:
        np.testing.assert_allclose(models[0].state[name], models[1].state[name], rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("kind,act,opt", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_inference_matches_the_per_layer_kernels(kind, act, opt, dtype):
    """predict/logits run one fused kernel in inference mode; fused=False composes the per-layer kernels."""
    rng = np.random.default_rng(12)
    B = 40  # several parallel chunks of 16 samples, plus a one-sample batch below (the serial path)
    lens = rng.integers(0, 9, B)
    lens[:3] = 0
    batch = minidin.Batch.from_lists(hist_goods=[list(rng.integers(0, 30, t)) for t in lens],
                                     hist_cates=[list(rng.integers(0, 4, t)) for t in lens],
                                     cand_goods=list(rng.integers(0, 30, B)), cand_cates=list(rng.integers(0, 4, B)),
                                     labels=list(rng.integers(0, 2, B)))
    model = make_model(kind, act, opt, n_goods=30, n_cates=4, dtype=dtype)
    spread_params(model, rng, scale=0.4)
    model.loss_and_grad(batch)  # Dice running averages away from (0, 1)
    one = minidin.Batch.from_lists(hist_goods=[[3, 5, 3]], hist_cates=[[1, 2, 1]], cand_goods=[3], cand_cates=[1])
    # enough behaviours for the fused kernel's split first layer (combined weights, one GEMM per chunk)
    big_lens = rng.integers(0, 13, 90)
    big = minidin.Batch.from_lists(hist_goods=[list(rng.integers(0, 30, t)) for t in big_lens],
                                   hist_cates=[list(rng.integers(0, 4, t)) for t in big_lens],
                                   cand_goods=list(rng.integers(0, 30, 90)), cand_cates=list(rng.integers(0, 4, 90)))
    assert batch.hist_goods.size < SPLIT_MIN_ROWS <= big.hist_goods.size
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    for b in (batch, big, one):
        np.testing.assert_allclose(model.logits(b), model.logits(b, fused=False), **tol)
        p = model.predict(b)
        assert p.dtype == dtype
        np.testing.assert_allclose(p, model.predict(b, fused=False), **tol)


@pytest.mark.parametrize("goods_dim,cate_dim", [(3, 2), (5, 3), (7, 4), (12, 4)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_small_path_folds_the_candidate_into_the_weights(goods_dim, cate_dim, dtype):
    """Below SPLIT_MIN_ROWS the fused first attention layer folds q into the weights, FOLD rows of them at a
    time: widths D under, at, between and at twice FOLD give the per-layer result (empty histories included)."""
    assert FOLD == 8 and goods_dim + cate_dim in (5, 8, 11, 16)
    rng = np.random.default_rng(14)
    model = tiny_model("din", 30, 4, goods_dim=goods_dim, cate_dim=cate_dim, attention_units=(6, 3),
                       hidden_units=(5,), dtype=dtype)
    spread_params(model, rng, scale=0.4)
    lens = [9, 0, 1, 4, 0, 12]
    batch = minidin.Batch.from_lists(hist_goods=[list(rng.integers(0, 30, t)) for t in lens],
                                     hist_cates=[list(rng.integers(0, 4, t)) for t in lens],
                                     cand_goods=list(rng.integers(0, 30, 6)), cand_cates=list(rng.integers(0, 4, 6)),
                                     labels=list(rng.integers(0, 2, 6)))
    model.loss_and_grad(batch)  # Dice running averages away from (0, 1)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    one = minidin.Batch(batch.hist_goods[:9], batch.hist_cates[:9], [0, 9], batch.cand_goods[:1],
                        batch.cand_cates[:1])
    for b in (batch, one):
        np.testing.assert_allclose(model.logits(b), model.logits(b, fused=False), **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_inference_large_batches_any_thread_count(dtype):
    """From LARGE_BATCH samples on the fused kernel cuts larger chunks: still the per-layer result, and
    bitwise the same with 1 thread and with all of them (chunks depend on the batch alone)."""
    rng = np.random.default_rng(13)
    model = make_model("din", "dice", False, n_goods=30, n_cates=4, dtype=dtype)
    spread_params(model, rng, scale=0.4)
    B = LARGE_BATCH + 37  # an uneven last chunk
    lens = rng.integers(0, 7, B)
    batch = minidin.Batch.from_lists(hist_goods=[list(rng.integers(0, 30, t)) for t in lens],
                                     hist_cates=[list(rng.integers(0, 4, t)) for t in lens],
                                     cand_goods=list(rng.integers(0, 30, B)), cand_cates=list(rng.integers(0, 4, B)),
                                     labels=list(rng.integers(0, 2, B)))
    model.loss_and_grad(batch)  # Dice running averages away from (0, 1)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    out = at_one_and_all_threads(lambda: model.logits(batch))
    np.testing.assert_allclose(out[0], model.logits(batch, fused=False), **tol)
    assert np.array_equal(out[0], out[1])


@pytest.mark.parametrize("kind,act,opt", CONFIGS)
def test_numpy_reference_backward_matches_the_model_and_finite_differences(kind, act, opt):
    """minidin/reference.py, DIN in one screen, has its own backward: equal to the kernels' gradients, and
    checked against central differences of its own forward loss (the same criterion as every other check)."""
    rng = np.random.default_rng(5)
    model = make_model(kind, act, opt, n_goods=9, n_cates=4, seed=2)
    spread_params(model, rng)
    lens = [3, 0, 1, 4, 2]
    goods = rng.integers(0, 9, sum(lens))
    goods[1] = goods[0]
    batch = minidin.Batch(goods, rng.integers(0, 4, sum(lens)), offsets_from_lengths(lens),
                          np.r_[goods[0], rng.integers(0, 9, 4)], rng.integers(0, 4, 5), [1, 0, 1, 0, 1])
    loss, g = ref.loss_and_grad(model, batch)
    want_loss, want = model.loss_and_grad(batch, update_stats=False)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert set(g) == set(model.params)
    for name in model.params:
        np.testing.assert_allclose(g[name], dense(want[name]), rtol=1e-8, atol=1e-11, err_msg=name)
    kinks = (lambda: np.signbit(prelu_inputs(model, model.forward(batch, training=True)))) if act == "prelu" else None
    for name in ("goods_emb", "mlp.0.W", "mlp.0.alpha" if act != "sigmoid" else "mlp.0.b"):
        report = check_array(name, g[name], lambda: ref.bce(ref.model_logits(model, batch, True),
                                                             batch.labels.astype(float)),
                             model.params[name], kinks=kinks)
        assert report.passed, (name, report)
