"""Feature groups: a schema's item, user and context fields (one-hot and multi-hot) through the whole model."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidin
from minidin.gradcheck import check_array, check_model
from tests.helpers import dense, tiny_model
from tests.strategies import full_schema, schema_batches, schemas

ACTS = ["dice", "prelu", "sigmoid"]
CONFIGS = [("din", a, sm) for a in ACTS for sm in (False, True)] + [("base", a, p) for a in ACTS for p in ("sum", "mean")]


def make(kind, act, opt, fields, dtype=np.float64, seed=0, **kw):
    kw.setdefault("goods_bias", opt in (True, "mean"))
    kw.update({"attention_softmax": opt} if kind == "din" else {"pooling": opt})
    return tiny_model(kind, 4, 2, attention_units=(4, 3), hidden_units=(5, 3), activation=act, dtype=dtype,
                      seed=seed, fields=fields, **kw)


def spread(model, rng, scale=0.6):
    for name, p in model.params.items():
        if not name.endswith(".alpha"):
            p[...] = rng.standard_normal(p.shape) * scale


def assert_gradients(model, batch):
    reports = check_model(model, batch)
    assert set(reports) == set(model.params)
    bad = {n: (r.failed, f"{r.max_rel:.2e}") for n, r in reports.items() if not r.passed}
    assert not bad, f"failed entries (count, max rel) per parameter: {bad}"
    total = sum(r.checked + r.excluded for r in reports.values())
    assert sum(r.excluded for r in reports.values()) <= 0.05 * total


def fixed_batch(schema, B=3):
    """Batch of the full schema: an empty history, repeated ids, empty multi-hot sets (item and user)."""
    hist_goods = [[0, 0, 1], [], [3, 2]]
    hist_cates = [[0, 0, 1], [], [1, 1]]
    items, samples = {}, {}
    for f in schema:
        if f.kind == "item":
            if f.multi_hot:
                hist = [[[0, 0], [], [1]], [], [[], [2 % f.vocab, 0]]]
                cand = [[1], [], [0, 1]]
            else:
                hist = [[0, 0, 1 % f.vocab], [], [2 % f.vocab, 0]]
                cand = [0, 1 % f.vocab, 0]
            items[f.name] = (hist, cand)
        else:
            samples[f.name] = [[0, 0], [], [1 % f.vocab]] if f.multi_hot else [0, 1 % f.vocab, 0]
    return minidin.Batch.from_lists(hist_goods, hist_cates, [0, 3, 0], [0, 1, 0], [1, 0, 1], item_fields=items,
                                    sample_fields=samples)


# ---------------------------------------------------------------- finite differences
@pytest.mark.parametrize("kind,act,opt", CONFIGS)
def test_full_schema_gradients_match_finite_differences(kind, act, opt):
    """The issue's schema: two one-hot item fields (goods, category) plus a one-hot and a multi-hot item
    field, a one-hot and a multi-hot user field, a one-hot and a multi-hot context field; empty sets and
    an empty history, repeated ids."""
    schema = full_schema()
    model = make(kind, act, opt, schema)
    spread(model, np.random.default_rng(1))
    assert_gradients(model, fixed_batch(schema))


@pytest.mark.parametrize("kind,act,opt", [("din", "dice", False), ("din", "prelu", True), ("base", "sigmoid", "mean")])
def test_full_schema_batch_of_one(kind, act, opt):
    schema = full_schema()
    batch = minidin.Batch.from_lists([[]], [[]], [2], [1], [1], item_fields={
        "brand": ([[]], [2]), "genres": ([[]], [[]])}, sample_fields={"gender": [1], "tags": [[]], "hour": [0],
                                                                       "device": [[1, 1]]})
    model = make(kind, act, opt, schema)
    spread(model, np.random.default_rng(2))
    assert_gradients(model, batch)


@pytest.mark.parametrize("kind,act,opt", [("din", "dice", False), ("din", "sigmoid", True), ("base", "prelu", "sum")])
@settings(max_examples=6, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_drawn_schemas_gradients_match_finite_differences(kind, act, opt, data, seed):
    schema = data.draw(schemas())
    batch = data.draw(schema_batches(schema))
    model = make(kind, act, opt, schema, seed=seed % 1000, dice_eps=1e-4)
    spread(model, np.random.default_rng(seed))
    assert_gradients(model, batch)


@pytest.mark.parametrize("kind,act,opt", [("din", "dice", False), ("base", "prelu", "mean")])
def test_schema_check_fails_on_one_percent_error(kind, act, opt):
    schema = full_schema()
    model = make(kind, act, opt, schema)
    spread(model, np.random.default_rng(3))
    batch = fixed_batch(schema)
    _, grads = model.loss_and_grad(batch, update_stats=False)
    fun = lambda: model.loss(batch)  # noqa: E731
    for f in schema:
        g = dense(grads[f.table]).copy()
        i = np.unravel_index(np.argmax(np.abs(g)), g.shape)
        assert abs(g[i]) > 1e-6, f.table
        g[i] *= 1.01
        assert not check_array(f.table, g, fun, model.params[f.table]).passed, f.table


# ---------------------------------------------------------------- the model's structure
def test_schema_widens_the_item_embedding_and_the_mlp_input():
    schema = full_schema()
    model = make("din", "dice", False, schema)
    item = sum(f.dim for f in schema if f.kind == "item")
    assert model.D == 3 + 2 + item
    assert model.params["att.0.W"].shape[0] == 4 * model.D
    assert model.params["mlp.0.W"].shape[0] == 3 * model.D + sum(f.dim for f in schema if f.kind != "item")
    for f in schema:
        assert model.params[f.table].shape == (f.vocab, f.dim)


def test_mlp_input_is_user_then_interaction_then_context():
    """[user fields, v_U, v_A, v_U ⊙ v_A, context fields], each field's columns its pooled embedding."""
    schema = full_schema()
    model = make("base", "sigmoid", "sum", schema)
    batch = fixed_batch(schema)
    cache = model.forward(batch)
    x, P, D = cache.mlp_in, model.params, model.D
    gender, tags, hour, device = (next(f for f in schema if f.name == n) for n in ("gender", "tags", "hour", "device"))
    np.testing.assert_allclose(x[:, :gender.dim], P["gender_emb"][[0, 1, 0]])
    np.testing.assert_allclose(x[0, gender.dim:gender.dim + tags.dim], 2 * P["tags_emb"][0])  # sum pooling
    assert np.all(x[1, gender.dim:gender.dim + tags.dim] == 0)  # an empty set pools to zeros
    U = gender.dim + tags.dim
    np.testing.assert_allclose(x[:, U:U + D], cache.interest)
    np.testing.assert_allclose(x[:, U + D:U + 2 * D], cache.cand_emb)
    np.testing.assert_allclose(x[:, U + 3 * D:U + 3 * D + hour.dim], P["hour_emb"][[0, 1 % hour.vocab, 0]])
    np.testing.assert_allclose(x[0, U + 3 * D + hour.dim:], 2 * P["device_emb"][0])  # sum of {0, 0}
    # the candidate's embedding: goods, category, brand, then genres (the sum of its set)
    genres = next(f for f in schema if f.name == "genres")
    np.testing.assert_allclose(cache.cand_emb[2, -genres.dim:], P["genres_emb"][[0, 1]].sum(axis=0))


@pytest.mark.parametrize("kind,act,opt", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_inference_matches_the_per_layer_kernels(kind, act, opt, dtype):
    schema = full_schema()
    model = make(kind, act, opt, schema, dtype=dtype)
    spread(model, np.random.default_rng(4), 0.4)
    for name, v in model.state.items():  # running averages away from their initial values
        v[...] = np.abs(np.random.default_rng(5).standard_normal(v.shape)) + (0.5 if "var" in name else 0)
    rng = np.random.default_rng(6)
    lengths = rng.integers(0, 12, 70)
    lengths[:3] = 0
    N, B = int(lengths.sum()), 70
    items = {f.name: (minidin.Bag.from_sets([list(rng.integers(0, f.vocab, rng.integers(0, 3) if f.multi_hot else 1))
                                             for _ in range(N)]),
                      minidin.Bag.from_sets([list(rng.integers(0, f.vocab, rng.integers(0, 3) if f.multi_hot else 1))
                                             for _ in range(B)])) for f in schema if f.kind == "item"}
    samples = {f.name: minidin.Bag.from_sets([list(rng.integers(0, f.vocab, rng.integers(0, 3) if f.multi_hot else 1))
                                              for _ in range(B)]) for f in schema if f.kind != "item"}
    batch = minidin.Batch(rng.integers(0, 4, N), rng.integers(0, 2, N), np.r_[0, np.cumsum(lengths)],
                          rng.integers(0, 4, B), rng.integers(0, 2, B), item_fields=items, sample_fields=samples)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(model.logits(batch), model.logits(batch, fused=False), **tol)
    np.testing.assert_allclose(model.predict(batch), model.predict(batch, fused=False), **tol)


def test_empty_schema_is_todays_model():
    """fields=() is the two-field model: same parameters, same logits."""
    batch = fixed_batch(())
    a = tiny_model("din", 4, 2, seed=3)
    b = tiny_model("din", 4, 2, seed=3, fields=())
    assert list(a.params) == list(b.params)
    np.testing.assert_array_equal(a.logits(batch), b.logits(batch))


def test_schema_fields_do_not_change_the_default_tables_initialisation():
    a = tiny_model("din", 4, 2, seed=3)
    b = tiny_model("din", 4, 2, seed=3, fields=full_schema())
    for t in ("goods_emb", "cate_emb"):
        np.testing.assert_array_equal(a.params[t], b.params[t])


def test_training_reduces_the_loss_and_updates_the_field_tables():
    schema = full_schema()
    model = make("din", "dice", False, schema, dtype=np.float32)
    batch = fixed_batch(schema)
    opt = minidin.SparseAdagrad(model.params, lr=0.1)
    before = {f.table: model.params[f.table].copy() for f in schema}
    first = model.loss(batch)
    for _ in range(30):
        _, g = model.loss_and_grad(batch)
        opt.step(g)
    assert model.loss(batch) < first
    for t, v in before.items():
        assert not np.array_equal(v, model.params[t]), t


def test_mba_counts_every_table_once_per_sample():
    schema = full_schema()
    batch = fixed_batch(schema)
    counts = minidin.feature_counts(batch, n_goods=4, n_cates=2, fields=schema)
    # genres: sample 0 has {0, 0}, {}, {1} in its history and {1} as candidate -> 0 and 1 once each;
    # sample 1 nothing; sample 2 has {}, {2 % 4, 0} and candidate {0, 1}
    g = next(f for f in schema if f.name == "genres")
    want = np.zeros(g.vocab, np.int64)
    want[[0, 1]] += 1
    want[[2 % g.vocab, 0, 1]] += 1
    np.testing.assert_array_equal(counts["genres_emb"], want)
    np.testing.assert_array_equal(counts["tags_emb"], [1, 1, 0, 0][:next(f for f in schema if f.name == "tags").vocab])
    model = make("din", "dice", False, schema)
    opt = minidin.SparseAdagrad(model.params, lr=0.1, reg="mba", reg_lambda=0.1, counts=counts)
    _, grads = model.loss_and_grad(batch)
    opt.step(grads)
    assert set(opt.reg_tables) == {"goods_emb", "cate_emb"} | {f.table for f in schema}


# ---------------------------------------------------------------- bad input, before any kernel runs
@pytest.mark.parametrize("change,match", [
    (lambda i, s: i.pop("brand"), r"item_fields: the batch has no field 'brand'"),
    (lambda i, s: s.pop("hour"), r"sample_fields: the batch has no field 'hour'"),
    (lambda i, s: s.update(colour=[0, 0, 0]), r"sample_fields: the model's schema has no user/context field 'colour'"),
    (lambda i, s: s.update(brand=[0, 0, 0]), r"'brand' \(it is a field of another kind\)"),
    (lambda i, s: s.update(gender=[0, 9, 0]), r"sample_fields\['gender'\]: id 9 at position 1 is out of range"),
    (lambda i, s: i.update(genres=(i["genres"][0], [[0], [7], []])),
     r"item_fields\['genres'\] candidates: id 7 .* out of range"),
    (lambda i, s: s.update(gender=[[0], [0, 1], [1]]), r"sample_fields\['gender'\]: a one-hot field needs exactly one"),
])
def test_bad_fields_are_named(change, match):
    schema = full_schema()
    model = make("din", "dice", False, schema)
    good = fixed_batch(schema)
    items = {k: (v[0], v[1]) for k, v in good.item_fields.items()}
    samples = dict(good.sample_fields)
    change(items, samples)
    batch = minidin.Batch(good.hist_goods, good.hist_cates, good.hist_offsets, good.cand_goods, good.cand_cates,
                          good.labels, good.users, items, samples)
    with pytest.raises(ValueError, match=match):
        model.loss_and_grad(batch)
    with pytest.raises(ValueError, match=match):
        model.predict(batch)


def test_bad_offsets_are_named():
    with pytest.raises(ValueError, match=r"item_fields\['genres'\] history: offsets of 2 rows, expected 3"):
        minidin.Batch([0, 1, 2], [0, 0, 0], [0, 3], [0], [0], item_fields={
            "genres": (minidin.Bag(np.array([0, 1]), np.array([0, 1, 2])), [[0]])})
    with pytest.raises(ValueError, match=r"item_fields\['genres'\]: expected one entry per behaviour"):
        minidin.Batch.from_lists([[0, 1, 2]], [[0, 0, 0]], [0], [0], item_fields={"genres": ([[0, 1]], [[0]])})
    with pytest.raises(ValueError, match=r"sample_fields\['tags'\]: offsets must start at 0"):
        minidin.Batch.from_lists([[0]], [[0]], [0], [0], sample_fields={"tags": minidin.Bag(np.array([0]), np.array([1, 1]))})
    with pytest.raises(ValueError, match=r"sample_fields\['tags'\]: negative id -1"):
        minidin.Batch.from_lists([[0]], [[0]], [0], [0], sample_fields={"tags": [[-1]]})


def test_bad_field_specs_are_named():
    with pytest.raises(ValueError, match=r"fields\['x'\].kind: must be one of item, user, context"):
        minidin.FieldSpec("x", "shop", 3, 2)
    with pytest.raises(ValueError, match="reserved"):
        minidin.FieldSpec("goods", "item", 3, 2)
    with pytest.raises(ValueError, match="declared twice"):
        minidin.ModelConfig(n_goods=2, n_cates=2, fields=[minidin.FieldSpec("a", "user", 2, 2)] * 2)
    with pytest.raises(ValueError, match=r"fields\['a'\].vocab: must be in"):
        minidin.FieldSpec("a", "user", 0, 2)


@pytest.mark.parametrize("act", ACTS)
def test_split_and_clear_first_attention_layer_agree_with_a_schema(act):
    """The split first layer (default) and the (N, 4D) input give the same logits and gradients on the wider D."""
    schema = full_schema()
    a = make("din", act, False, schema)
    b = make("din", act, False, schema, attention_split=False)
    spread(a, np.random.default_rng(7))
    b.params.dense[...] = a.params.dense
    for t in a.params.tables:
        b.params[t][...] = a.params[t]
    batch = fixed_batch(schema)
    np.testing.assert_allclose(a.logits(batch, fused=False), b.logits(batch, fused=False), rtol=1e-12, atol=1e-12)
    _, ga = a.loss_and_grad(batch, update_stats=False)
    _, gb = b.loss_and_grad(batch, update_stats=False)
    np.testing.assert_allclose(ga.dense, gb.dense, rtol=1e-10, atol=1e-12)
    for t in a.params.tables:
        np.testing.assert_allclose(dense(ga[t]), dense(gb[t]), rtol=1e-10, atol=1e-12)


def test_dataset_counts_cover_every_field(tmp_path):
    """MBA's n_j from a dataset with a schema: every field's table, counted once per training sample."""
    import shutil
    from pathlib import Path

    from minidin.data import Dataset
    from minidin.data.csv_prepare import prepare_csv

    src = Path(__file__).parent / "fixtures" / "csv"
    shutil.copytree(src, tmp_path / "logs")
    prepare_csv(tmp_path / "d", tmp_path / "logs" / "schema.json")
    ds = Dataset.load(tmp_path / "d")
    counts = ds.feature_counts()
    assert set(counts) == {"goods_emb", "cate_emb"} | {f"{f['name']}_emb" for f in ds.fields}
    S = len(ds.splits["train"])
    b = ds.batch("train")
    for f in ds.fields:
        want = np.zeros(f["vocab"], np.int64)
        for k in range(S):
            present = set()
            if f["kind"] == "item":
                hist, cand = b.item_fields[f["name"]]
                for r in list(range(b.hist_offsets[k], b.hist_offsets[k + 1])):
                    present |= set(hist.ids[hist.offsets[r]:hist.offsets[r + 1]].tolist())
                present |= set(cand.ids[cand.offsets[k]:cand.offsets[k + 1]].tolist())
            else:
                bag = b.sample_fields[f["name"]]
                present |= set(bag.ids[bag.offsets[k]:bag.offsets[k + 1]].tolist())
            for j in present:
                want[j] += 1
        np.testing.assert_array_equal(counts[f"{f['name']}_emb"], want, err_msg=f["name"])
