"""Malformed input gets a ValueError or TypeError with a message, never another exception or a silent wrong
result: random values thrown at Batch, the model constructors, the optimizer and load."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidin
from minidin.config import ModelConfig
from minidin.data import Dataset

ANY = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                st.text(max_size=5), st.lists(st.integers(-3, 300), max_size=4),
                st.tuples(st.floats(-3, 300)), st.just(()))


def _clear_or_ok(fn):
    try:
        return fn()
    except (ValueError, TypeError) as e:
        assert str(e), "an error without a message"
        return None


@settings(max_examples=60)
@given(field=st.sampled_from([f for f in ModelConfig.__dataclass_fields__]), value=ANY)
def test_model_config_takes_a_valid_value_or_names_the_field(field, value):
    kw = {"n_goods": 7, "n_cates": 3, "goods_dim": 2, "cate_dim": 2, "attention_units": (3,), "hidden_units": (3,)}
    kw[field] = value
    try:
        cfg = ModelConfig(**kw)
    except (ValueError, TypeError) as e:
        assert field in str(e) or "n_goods and n_cates" in str(e)
        return
    from minidin.model import from_config

    m = from_config(cfg)  # an accepted config builds a working model
    b = minidin.Batch.from_lists([[1, 2]], [[0, 1]], [3], [2], [1])
    assert np.all(np.isfinite(m.predict(b)))


ids = st.lists(st.one_of(st.integers(-5, 12), st.floats(allow_nan=True, allow_infinity=True, width=32)),
               max_size=6)


@settings(max_examples=80)
@given(hg=ids, hc=ids, off=ids, cg=ids, cc=ids, labels=st.one_of(st.none(), ids))
def test_batch_is_valid_or_a_clear_error(hg, hc, off, cg, cc, labels):
    b = _clear_or_ok(lambda: minidin.Batch(hg, hc, off, cg, cc, labels))
    if b is None:
        return
    m = minidin.DIN(n_goods=13, n_cates=13, goods_dim=2, cate_dim=2, attention_units=(3,), hidden_units=(3,))
    p = _clear_or_ok(lambda: m.predict(b))  # ids beyond the vocabulary: a clear error, never a crash
    if p is not None:
        assert p.shape == (b.size,) and np.all(np.isfinite(p))


@settings(max_examples=60)
@given(kw=st.fixed_dictionaries({}, optional={"lr": ANY, "reg": ANY, "reg_lambda": ANY, "clip_norm": ANY,
                                              "initial_accumulator_value": ANY, "eps": ANY}))
def test_optimizer_arguments_are_checked(kw):
    m = minidin.DIN(n_goods=5, n_cates=2, goods_dim=2, cate_dim=2, attention_units=(3,), hidden_units=(3,))
    opt = _clear_or_ok(lambda: minidin.SparseAdagrad(m.params, **kw))
    if opt is not None:
        assert opt.lr > 0 and np.isfinite(opt.lr) and opt.eps > 0


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "m.npz"
    minidin.save(minidin.DIN(n_goods=5, n_cates=2, goods_dim=2, cate_dim=2, attention_units=(3,),
                             hidden_units=(3,)), path)
    return path


@settings(max_examples=40)
@given(data=st.data())
def test_load_of_a_mutated_checkpoint_is_a_model_or_a_clear_error(saved, tmp_path_factory, data):
    raw = bytearray(saved.read_bytes())
    kind = data.draw(st.sampled_from(["flip", "truncate", "config"]))
    path = tmp_path_factory.mktemp("bad") / "m.npz"
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        path.write_bytes(bytes(raw))
    elif kind == "truncate":
        path.write_bytes(bytes(raw[:data.draw(st.integers(0, len(raw) - 1))]))
    else:
        with np.load(saved) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays["meta_json"]))
        key = data.draw(st.sampled_from(sorted(meta["model_config"])))
        meta["model_config"][key] = data.draw(ANY)
        arrays["meta_json"] = np.array(json.dumps(meta))
        np.savez(path, **arrays)
    m = _clear_or_ok(lambda: minidin.load(path))
    if m is not None:
        assert all(np.all(np.isfinite(p)) for p in m.params.values())


FIX = __import__("pathlib").Path(__file__).parent / "fixtures"
PREPARE_INPUTS = {
    "ratings.csv": FIX / "movielens" / "csv_ratings.fixture", "movies.csv": FIX / "movielens" / "csv_movies.fixture",
    "ratings.dat": FIX / "movielens" / "dat_ratings.fixture", "movies.dat": FIX / "movielens" / "dat_movies.fixture",
    "seq.txt": FIX / "amazon_seq.txt", "attr.json": FIX / "amazon_attr.json", "reviews.json": FIX / "reviews_5.json",
    "meta.json": FIX / "meta.json",
}
RUNS = {"ratings.csv": ("movielens", "movies.csv"), "movies.csv": ("movielens", "ratings.csv"),
        "ratings.dat": ("movielens", "movies.dat"), "movies.dat": ("movielens", "ratings.dat"),
        "seq.txt": ("sequences", "attr.json"), "attr.json": ("sequences", "seq.txt"),
        "reviews.json": ("reviews", "meta.json"), "meta.json": ("reviews", "reviews.json")}


def _mutate(data, raw):
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "cell"]))
    raw = bytearray(raw)
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 6))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    elif kind == "insert":
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.sampled_from([b"#", b"nan", b"-", b"\n\n", b",", b"::", b"\xff", b"[", b"1e400",
                                              b"true", b"1.5", b'"', b"\x00"]))
    else:  # replace one comma- or space-separated cell
        text = raw.decode("latin-1")
        sep = data.draw(st.sampled_from([",", " ", ":"]))
        cells = text.split(sep)
        i = data.draw(st.integers(0, len(cells) - 1))
        cells[i] = data.draw(st.sampled_from(["", "x", "-1", "nan", "inf", "1e30", "2.5", "99999999999999999999",
                                              "[]", "{}", "null", "true"]))
        raw = bytearray(sep.join(cells).encode("latin-1"))
    return bytes(raw)


@settings(max_examples=120)
@given(data=st.data())
def test_prepare_parsers_on_mutated_files_succeed_or_name_the_problem(tmp_path_factory, data):
    """Random byte flips, truncations, inserted characters and replaced cells in each input file: prepare
    succeeds (and writes a loadable dataset) or raises a ValueError with a message; nothing else escapes."""
    from minidin.data.prepare import prepare_amazon, prepare_movielens

    d = tmp_path_factory.mktemp("in")
    target = data.draw(st.sampled_from(sorted(PREPARE_INPUTS)))
    kind, other = RUNS[target]
    (d / target).write_bytes(_mutate(data, PREPARE_INPUTS[target].read_bytes()))
    (d / other).write_bytes(PREPARE_INPUTS[other].read_bytes())
    out = d / "out"
    try:
        if kind == "movielens":
            r, m = (target, other) if target.startswith("ratings") else (other, target)
            prepare_movielens(out, d / r, d / m)
        elif kind == "sequences":
            s, a = (target, other) if target == "seq.txt" else (other, target)
            prepare_amazon(out, sequences=d / s, attributes=d / a)
        else:
            rv, mt = (target, other) if target == "reviews.json" else (other, target)
            prepare_amazon(out, reviews=d / rv, meta=d / mt)
    except ValueError as e:
        assert str(e)
        assert not out.exists()  # nothing written
        return
    ds = Dataset.load(out)
    assert len(ds.splits["train"]) + len(ds.splits["test"]) > 0


RISKY = r"""
import numpy as np, minidin
rng = np.random.default_rng(SEED)
m = minidin.DIN(n_goods=13, n_cates=5, goods_dim=2, cate_dim=2, attention_units=(3,), hidden_units=(3,))
opt = minidin.SparseAdagrad(m.params, lr=0.1)
ok = errors = 0
for _ in range(300):
    B = int(rng.integers(1, 5)); N = int(rng.integers(0, 8))
    pick = lambda n, hi: rng.integers(-3, hi + 3, n) if rng.random() < 0.3 else rng.integers(0, hi, n)
    arrays = [pick(N, 13), pick(N, 5), np.sort(rng.integers(0, N + 1, B + 1)), pick(B, 13), pick(B, 5)]
    if rng.random() < 0.5:
        arrays[2][0], arrays[2][-1] = 0, N
    labels = rng.integers(0, 2, B).astype(float)
    try:
        b = minidin.Batch(*arrays, labels)
        for a in arrays:  # mutate the caller's arrays afterwards: must not reach the kernels
            a[...] = 10**12
        p = m.predict(b)
        assert np.all(np.isfinite(p)) and p.shape == (B,)
        loss, g = m.loss_and_grad(b)
        opt.step(g)
        ok += 1
    except (ValueError, TypeError) as e:
        assert str(e)
        errors += 1
print(ok, errors)
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_risky_inputs_never_crash_the_process(seed):
    """Malformed batches through predict, loss_and_grad and an optimizer step, in a child process, so that a
    segfault (an unchecked id reaching a kernel) fails this test instead of killing the suite."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", RISKY.replace("SEED", str(seed))], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    ok, errors = map(int, out.stdout.split())
    assert ok > 0 and errors > 0  # both kinds of input were exercised
