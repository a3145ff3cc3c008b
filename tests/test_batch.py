"""Batch structure checks: each violation raises ValueError naming the field."""
import numpy as np
import pytest

import minidin


def good(**over):
    args = dict(hist_goods=[3, 5, 1], hist_cates=[1, 2, 0], hist_offsets=[0, 2, 2, 3], cand_goods=[4, 2, 0],
                cand_cates=[1, 0, 0], labels=[1, 0, 1], users=[7, 8, 7])
    args.update(over)
    return args


def test_valid_batch_and_from_lists_agree():
    a = minidin.Batch(**good())
    b = minidin.Batch.from_lists([[3, 5], [], [1]], [[1, 2], [], [0]], [4, 2, 0], [1, 0, 0], [1, 0, 1], [7, 8, 7])
    for f in ("hist_goods", "hist_cates", "hist_offsets", "cand_goods", "cand_cates", "labels", "users"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert a.hist_goods.dtype == np.int64 and a.labels.dtype == np.float64
    assert a.size == 3 and len(a) == 3 and a.lengths.tolist() == [2, 0, 1]


def test_labels_optional_and_users_default():
    b = minidin.Batch(**good(labels=None, users=None))
    assert b.labels is None and b.users.tolist() == [0, 1, 2]


@pytest.mark.parametrize("over,match", [
    (dict(hist_goods=[3, -5, 1]), "hist_goods: negative id"),
    (dict(hist_cates=[1, 2, -1]), "hist_cates: negative id"),
    (dict(cand_goods=[-4, 2, 0]), "cand_goods: negative id"),
    (dict(cand_cates=[1, -1, 0]), "cand_cates: negative id"),
    (dict(hist_offsets=[0, 2, 1, 3]), "hist_offsets: not monotone"),
    (dict(hist_offsets=[0, 2, 2, 4]), "hist_offsets: last offset"),
    (dict(hist_offsets=[1, 2, 2, 3]), "hist_offsets: must start at 0"),
    (dict(hist_offsets=[0, 2, 3]), "hist_offsets: length"),
    (dict(hist_cates=[1, 2]), "hist_cates: length 2 disagrees"),
    (dict(cand_cates=[1, 0]), "cand_cates: length"),
    (dict(users=[7, 8]), "users: length"),
    (dict(labels=[1, 0]), "labels: length"),
    (dict(labels=[1, 2, 0]), "labels: must be 0 or 1"),
    (dict(labels=[1, 0.5, 0]), "labels: must be 0 or 1"),
    (dict(labels=[1, float("nan"), 0]), "labels: contains NaN"),
    (dict(hist_goods=[3.5, 5, 1]), "hist_goods: expected integer"),
    (dict(hist_goods=[3, float("nan"), 1]), "hist_goods: contains NaN"),
    (dict(hist_goods=[[3, 5, 1]]), "hist_goods: expected a 1-D"),
    (dict(cand_goods=[], cand_cates=[], labels=[], users=[], hist_offsets=[0]), "at least one sample"),
    (dict(hist_goods=["a", "b", "c"]), "hist_goods: expected integer ids"),
])
def test_structural_errors(over, match):
    with pytest.raises(ValueError, match=match):
        minidin.Batch(**good(**over))


def test_from_lists_errors():
    with pytest.raises(ValueError, match="hist_cates: sample 0"):
        minidin.Batch.from_lists([[3, 5]], [[1]], [4], [1])
    with pytest.raises(ValueError, match="hist_cates"):
        minidin.Batch.from_lists([[3, 5], []], [[1, 2]], [4, 2], [1, 0])
    with pytest.raises(ValueError, match="cand_goods"):
        minidin.Batch.from_lists([[3, 5], []], [[1, 2], []], [4], [1])


def test_check_vocab():
    b = minidin.Batch(**good())
    b.check_vocab(6, 3)
    with pytest.raises(ValueError, match="hist_goods: id 5 .* vocabulary of 5"):
        b.check_vocab(5, 3)
    with pytest.raises(ValueError, match="hist_cates: id 2"):
        b.check_vocab(6, 2)


def test_a_batch_owns_its_arrays():
    """Validation cannot be bypassed by changing an input array after the batch was built: the batch holds
    copies (a changed id would otherwise read another embedding row, or memory outside the table)."""
    import numpy as np

    from tests.helpers import tiny_model

    goods, cates, off = np.array([1, 2, 3]), np.array([0, 1, 1]), np.array([0, 2, 3])
    cand, ccat, labels = np.array([4, 5]), np.array([1, 0]), np.array([1.0, 0.0])
    b = minidin.Batch(goods, cates, off, cand, ccat, labels)
    m = tiny_model()
    p = m.predict(b)
    for arr in (goods, cates, off, cand, ccat, labels):
        arr[...] = 10**9 if arr.dtype.kind == "i" else 7.0
    assert np.array_equal(m.predict(b), p)
    assert b.hist_goods.tolist() == [1, 2, 3] and b.labels.tolist() == [1.0, 0.0]
