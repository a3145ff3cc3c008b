"""Dataset layout, batching windows, feature counts, the synthetic generator's truth."""
import json

import numpy as np
import pytest

import minidin
from minidin.data import Dataset, Split, make_synthetic

SMALL = dict(n_users=60, n_cates=10, goods_per_cate=3, min_len=2, max_len=12, train_per_user=4, valid_per_user=2,
             test_per_user=2)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(**SMALL)


def window(d, split, i, max_history=None):
    s = d.splits[split]
    u, e = s.users[i], s.ends[i]
    mh = d.max_history if max_history is None else max_history
    start = 0 if mh is None else max(0, e - mh)
    lo = d.seq_offsets[u]
    return d.seq_goods[lo + start:lo + e], d.seq_cates[lo + start:lo + e]


@pytest.mark.parametrize("max_history", [None, 1, 3])
def test_batch_windows_match_a_python_loop(data, max_history):
    idx = np.array([5, 0, 17, 3, 3])
    b = data.batch("train", idx, max_history=max_history)
    s = data.splits["train"]
    for k, i in enumerate(idx):
        g, c = window(data, "train", i, max_history)
        lo, hi = b.hist_offsets[k], b.hist_offsets[k + 1]
        assert b.hist_goods[lo:hi].tolist() == g.tolist() and b.hist_cates[lo:hi].tolist() == c.tolist()
        assert b.cand_goods[k] == s.cand_goods[i] and b.labels[k] == s.labels[i] and b.users[k] == s.users[i]
        if max_history:
            assert hi - lo <= max_history
    assert data.max_history is None  # an argument of the call, never written into the dataset


def test_the_dataset_window_is_the_default_and_an_argument_overrides_it(data):
    import dataclasses

    d3 = dataclasses.replace(data, max_history=3)
    lengths = d3.batch("train").lengths
    assert lengths.max() == 3 and np.array_equal(lengths, data.batch("train", max_history=3).lengths)
    assert d3.batch("train", max_history=1).lengths.max() == 1 and d3.max_history == 3
    assert data.batch("train").lengths.max() > 3
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="max_history"):
            data.batch("train", [0], max_history=bad)


def test_batches_cover_the_split_once_and_shuffle_deterministically(data):
    seen = np.concatenate([idx for idx, _ in data.batches("train", 7)])
    assert np.array_equal(seen, np.arange(len(data.splits["train"])))
    a = [idx for idx, _ in data.batches("train", 7, shuffle=True, rng=np.random.default_rng(1))]
    b = [idx for idx, _ in data.batches("train", 7, shuffle=True, rng=np.random.default_rng(1))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.array_equal(np.sort(np.concatenate(a)), np.arange(len(data.splits["train"])))
    with pytest.raises(ValueError, match="rng"):
        next(data.batches("train", 7, shuffle=True))


def test_feature_counts_match_brute_force(data):
    for mh in (None, 2):
        counts = data.feature_counts("train", mh) if mh else minidin.feature_counts(data)
        want_g, want_c = np.zeros(data.n_goods, int), np.zeros(data.n_cates, int)
        s = data.splits["train"]
        for i in range(len(s)):
            g, c = window(data, "train", i, mh)
            for j in set(g.tolist()) | {int(s.cand_goods[i])}:
                want_g[j] += 1
            for j in set(c.tolist()) | {int(s.cand_cates[i])}:
                want_c[j] += 1
        assert counts["goods_emb"].tolist() == want_g.tolist()
        assert counts["cate_emb"].tolist() == want_c.tolist()


def test_generator_is_deterministic_and_seeded():
    a, b = make_synthetic(**SMALL), make_synthetic(**SMALL)
    c = make_synthetic(**dict(SMALL, seed=1))
    assert np.array_equal(a.seq_goods, b.seq_goods) and np.array_equal(a.splits["test"].labels,
                                                                         b.splits["test"].labels)
    assert not np.array_equal(a.seq_goods, c.seq_goods)


def test_generator_truth_is_consistent(data):
    """Recompute every true probability from the stored sequences with a plain loop."""
    t = data.truth
    for split in ("train", "test"):
        s = data.splits[split]
        for i in range(len(s)):
            g, c = window(data, split, i)
            r, same = int((c == s.cand_cates[i]).sum()), int((g == s.cand_goods[i]).sum())
            assert s.probs[i] == pytest.approx(float(t.click_prob(r, same, np.array([s.cand_goods[i]]))[0]))
    b = data.batch("test", np.arange(6))
    rel = t.relevance(b)
    seg = np.repeat(np.arange(6), b.lengths)
    want = (b.hist_cates == b.cand_cates[seg]).astype(float) + (b.hist_goods == b.cand_goods[seg])
    assert np.array_equal(rel, want) and set(np.unique(rel)) <= {0.0, 1.0, 2.0}
    assert np.array_equal(t.good_cate[b.hist_goods], b.hist_cates)


def test_users_have_several_interests(data):
    # most of a user's behaviours fall in n_interests categories, and more than one of them
    for u in range(10):
        c = data.seq_cates[data.seq_offsets[u]:data.seq_offsets[u + 1]]
        if len(c) >= 8:
            assert len(np.unique(c)) >= 2


def test_generator_option_errors():
    with pytest.raises(ValueError, match="n_interests"):
        make_synthetic(n_cates=2, n_interests=3)
    with pytest.raises(ValueError, match="favourites"):
        make_synthetic(goods_per_cate=2, favourites=3)
    with pytest.raises(ValueError, match="noise"):
        make_synthetic(noise=1.5)


def test_save_load_roundtrip_and_atomic_replace(data, tmp_path):
    path = tmp_path / "ds"
    data.save(path)
    back = Dataset.load(path)
    for f in ("seq_goods", "seq_cates", "seq_offsets"):
        assert np.array_equal(getattr(back, f), getattr(data, f))
    for name in ("train", "valid", "test"):
        for f in ("users", "ends", "cand_goods", "cand_cates", "labels", "probs"):
            assert np.array_equal(getattr(back.splits[name], f), getattr(data.splits[name], f))
    data.save(path)  # replacing an existing directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert sorted(p.name for p in path.iterdir()) == sorted([".minidin", "meta.json",
                                                               json.loads((path / "meta.json").read_text())["data_file"]])
    (path / json.loads((path / "meta.json").read_text())["data_file"]).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt"):
        Dataset.load(path)
    with pytest.raises(ValueError, match="not a dataset directory"):
        Dataset.load(tmp_path / "missing")


def test_dataset_validation_names_the_field():
    seq = np.array([0, 1, 2]), np.array([0, 0, 1]), np.array([0, 3])
    ok = dict(users=np.array([0]), ends=np.array([2]), cand_goods=np.array([1]), cand_cates=np.array([0]),
              labels=np.array([1.0]))
    Dataset(*seq, 3, 2, {"train": Split(**ok)})
    for field, value, match in (("ends", [4], "train.ends"), ("cand_goods", [3], "train.cand_goods"),
                                ("users", [1], "train.users"), ("labels", [0.5], "train.labels")):
        bad = dict(ok, **{field: np.array(value)})
        with pytest.raises(ValueError, match=match):
            Dataset(*seq, 3, 2, {"train": Split(**bad)})
    with pytest.raises(ValueError, match="seq_goods"):
        Dataset(np.array([0, 1, 5]), seq[1], seq[2], 3, 2, {"train": Split(**ok)})
