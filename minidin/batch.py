"""A mini-batch with ragged histories in CSR form (no padding anywhere).

Fields (B samples, N behaviours in all of the batch's histories together):

    hist_goods   (N,)   int64  goods id of every behaviour, sample after sample
    hist_cates   (N,)   int64  category id of every behaviour
    hist_offsets (B+1,) int64  sample b owns behaviours [hist_offsets[b], hist_offsets[b+1])
    cand_goods   (B,)   int64  candidate ad's goods id
    cand_cates   (B,)   int64  candidate ad's category id
    labels       (B,)   float64 click (1) or not (0); None for predict/attention
    users        (B,)   int64  user id (for GAUC; never embedded)

Schema fields (``minidin.config.FieldSpec``) besides goods and category, each a ``Bag`` (a CSR set of ids
per row; a one-hot field has one id per row):

    item_fields   {name: (hist Bag over the N behaviours, cand Bag over the B candidates)}
    sample_fields {name: Bag over the B samples}   user profile and context fields

Ids are 0-based and every id is real: there is no padding id. ``Batch`` checks
structure when it is built; models check ids against their vocabularies. A
violation raises ``ValueError`` naming the field, before any kernel runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

_INT_FIELDS = ("hist_goods", "hist_cates", "hist_offsets", "cand_goods", "cand_cates", "users")


def _as_int_array(name, value):
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "b":
        raise ValueError(f"{name}: expected integer ids, got booleans")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains NaN or infinity")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name}: expected integer ids, got non-integer values")
        if np.any(np.abs(arr) >= 2.0**63):
            raise ValueError(f"{name}: id too large for int64")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: id too large for int64")
    return np.array(arr, dtype=np.int64, order="C", copy=True)  # owned: the caller's array can change freely


@njit(cache=True)
def _ids_below(a, b, limit):
    """True when every id in a and b is < limit (one pass, no temporaries)."""
    for i in range(a.shape[0]):
        if a[i] >= limit:
            return False
    for i in range(b.shape[0]):
        if b[i] >= limit:
            return False
    return True


class Bag(NamedTuple):
    """A set of ids per row in CSR form: row m owns ``ids[offsets[m]:offsets[m+1]]`` (an empty set is allowed)."""

    ids: np.ndarray  # (K,) int64
    offsets: np.ndarray  # (M+1,) int64

    @classmethod
    def from_sets(cls, sets) -> "Bag":
        """From a list of per-row lists of ids: ``Bag.from_sets([[1, 4], [], [2]])``."""
        lengths = [len(x) for x in sets]
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.array([i for x in sets for i in x], dtype=np.int64).reshape(-1), offsets)

    @classmethod
    def one_hot(cls, ids) -> "Bag":
        """One id per row."""
        ids = np.asarray(ids)
        return cls(ids, np.arange(ids.shape[0] + 1, dtype=np.int64))

    @property
    def rows(self) -> int:
        return int(self.offsets.shape[0] - 1)


def as_bag(name, value, rows) -> Bag:
    """A Bag of ``rows`` rows from a ``Bag``, a list of per-row sets, or one id per row; checked (ValueError
    naming ``name``) and owned (copied)."""
    if isinstance(value, Bag):
        ids, offsets = value
    else:
        value = list(value) if not isinstance(value, np.ndarray) else value
        if len(value) and not isinstance(value, np.ndarray) and all(
                isinstance(x, (list, tuple, np.ndarray)) for x in value):
            ids, offsets = Bag.from_sets(value)
        else:
            ids, offsets = Bag.one_hot(value)
    ids, offsets = _as_int_array(f"{name} ids", ids), _as_int_array(f"{name} offsets", offsets)
    if offsets.shape[0] != rows + 1:
        raise ValueError(f"{name}: offsets of {offsets.shape[0] - 1} rows, expected {rows}")
    if offsets[0] != 0 or offsets[-1] != ids.shape[0] or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{name}: offsets must start at 0, be monotone and end at the number of ids "
                         f"({ids.shape[0]}), got {offsets[0]} .. {offsets[-1]}")
    if ids.size and ids.min() < 0:
        i = int(np.argmin(ids))
        raise ValueError(f"{name}: negative id {ids[i]} at position {i}")
    return Bag(ids, offsets)


def check_field_ids(label, field, bag) -> None:
    """Raise ValueError (naming ``label``) unless a one-hot field's bag has one id per row and every id is
    inside the field's vocabulary."""
    sizes = np.diff(bag.offsets)
    if not field.multi_hot and np.any(sizes != 1):
        m = int(np.flatnonzero(sizes != 1)[0])
        raise ValueError(f"{label}: a one-hot field needs exactly one id per row; row {m} has {int(sizes[m])}")
    if bag.ids.size and bag.ids.max() >= field.vocab:
        i = int(np.argmax(bag.ids))
        raise ValueError(f"{label}: id {bag.ids[i]} at position {i} is out of range for a vocabulary of "
                         f"{field.vocab}")


def _field_dict(name, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name}: expected a dict of field name -> sets, got {type(value).__name__}")
    return value


@dataclass(frozen=True, eq=False)
class Batch:
    hist_goods: np.ndarray
    hist_cates: np.ndarray
    hist_offsets: np.ndarray
    cand_goods: np.ndarray
    cand_cates: np.ndarray
    labels: np.ndarray | None
    users: np.ndarray
    item_fields: dict
    sample_fields: dict

    def __init__(self, hist_goods, hist_cates, hist_offsets, cand_goods, cand_cates, labels=None, users=None,
                 item_fields=None, sample_fields=None):
        cand_goods_arr = _as_int_array("cand_goods", cand_goods)
        B = cand_goods_arr.shape[0]
        if users is None:
            users = np.arange(B, dtype=np.int64)
        values = {
            "hist_goods": _as_int_array("hist_goods", hist_goods),
            "hist_cates": _as_int_array("hist_cates", hist_cates),
            "hist_offsets": _as_int_array("hist_offsets", hist_offsets),
            "cand_goods": cand_goods_arr,
            "cand_cates": _as_int_array("cand_cates", cand_cates),
            "users": _as_int_array("users", users),
        }
        for k, v in values.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "labels", None if labels is None else self._check_labels(labels))
        self._validate()
        N = self.hist_goods.shape[0]
        items = {}
        for f, v in _field_dict("item_fields", item_fields).items():
            if not isinstance(v, (tuple, list)) or len(v) != 2 or isinstance(v, Bag):
                raise ValueError(f"item_fields[{f!r}]: expected (history sets, candidate sets)")
            items[f] = (as_bag(f"item_fields[{f!r}] history", v[0], N), as_bag(f"item_fields[{f!r}] candidates", v[1], B))
        object.__setattr__(self, "item_fields", items)
        object.__setattr__(self, "sample_fields", {f: as_bag(f"sample_fields[{f!r}]", v, B)
                                                   for f, v in _field_dict("sample_fields", sample_fields).items()})

    @staticmethod
    def _check_labels(labels):
        arr = np.asarray(labels)
        if arr.ndim != 1:
            raise ValueError(f"labels: expected a 1-D array, got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"labels: expected numbers 0 or 1, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        if np.any(np.isnan(arr)):
            raise ValueError("labels: contains NaN")
        bad = (arr != 0.0) & (arr != 1.0)
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"labels: must be 0 or 1, got {arr[i]!r} at position {i}")
        return np.ascontiguousarray(arr)

    def _validate(self):
        B = self.cand_goods.shape[0]
        N = self.hist_goods.shape[0]
        if B == 0:
            raise ValueError("cand_goods: a batch needs at least one sample (B = 0)")
        for name in ("cand_cates", "users"):
            n = getattr(self, name).shape[0]
            if n != B:
                raise ValueError(f"{name}: length {n} disagrees with cand_goods length {B}")
        if self.labels is not None and self.labels.shape[0] != B:
            raise ValueError(f"labels: length {self.labels.shape[0]} disagrees with cand_goods length {B}")
        if self.hist_cates.shape[0] != N:
            raise ValueError(f"hist_cates: length {self.hist_cates.shape[0]} disagrees with hist_goods length {N}")
        off = self.hist_offsets
        if off.shape[0] != B + 1:
            raise ValueError(f"hist_offsets: length {off.shape[0]}, expected B + 1 = {B + 1}")
        if off[0] != 0:
            raise ValueError(f"hist_offsets: must start at 0, got {off[0]}")
        if np.any(np.diff(off) < 0):
            i = int(np.flatnonzero(np.diff(off) < 0)[0])
            raise ValueError(f"hist_offsets: not monotone (offsets[{i}] = {off[i]} > offsets[{i + 1}] = {off[i + 1]})")
        if off[-1] != N:
            raise ValueError(f"hist_offsets: last offset {off[-1]} does not match len(hist_goods) = {N}")
        for name in ("hist_goods", "hist_cates", "cand_goods", "cand_cates"):
            arr = getattr(self, name)
            if arr.size and arr.min() < 0:
                i = int(np.argmin(arr))
                raise ValueError(f"{name}: negative id {arr[i]} at position {i}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_lists(cls, hist_goods, hist_cates, cand_goods, cand_cates, labels=None, users=None, item_fields=None,
                   sample_fields=None):
        """Build a batch from per-sample Python lists: ``hist_goods=[[3, 5], []]`` etc. ``item_fields`` maps a
        field to (history, candidates): the history per sample, one entry per behaviour (an id, or a list of
        ids for a multi-hot field), and one entry per candidate; ``sample_fields`` maps a field to one entry
        per sample."""
        if len(hist_goods) != len(hist_cates):
            raise ValueError(f"hist_cates: {len(hist_cates)} histories, but hist_goods has {len(hist_goods)}")
        lens = []
        for b, (g, c) in enumerate(zip(hist_goods, hist_cates)):
            if len(g) != len(c):
                raise ValueError(f"hist_cates: sample {b} has {len(c)} categories but {len(g)} goods")
            lens.append(len(g))
        if len(hist_goods) != len(cand_goods):
            raise ValueError(f"hist_goods: {len(hist_goods)} histories, but cand_goods has {len(cand_goods)} samples")
        offsets = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        flat_g = [x for h in hist_goods for x in h]
        flat_c = [x for h in hist_cates for x in h]
        items = {}
        for f, (hist, cand) in _field_dict("item_fields", item_fields).items():
            if len(hist) != len(lens) or any(len(h) != t for h, t in zip(hist, lens)):
                raise ValueError(f"item_fields[{f!r}]: expected one entry per behaviour of each history")
            items[f] = ([x for h in hist for x in h], cand)
        return cls(flat_g, flat_c, offsets, cand_goods, cand_cates, labels, users, items, sample_fields)

    # ------------------------------------------------------------------ helpers
    @property
    def size(self) -> int:
        """B, the number of samples."""
        return int(self.cand_goods.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """(B,) int64 history length of each sample."""
        return np.diff(self.hist_offsets)

    def check_vocab(self, n_goods: int, n_cates: int) -> None:
        """Raise ValueError if any id is outside a model's vocabulary."""
        if _ids_below(self.hist_goods, self.cand_goods, n_goods) and _ids_below(self.hist_cates, self.cand_cates,
                                                                                n_cates):
            return  # the common case in one compiled pass (this runs before every forward)
        for name, limit in (("hist_goods", n_goods), ("cand_goods", n_goods),
                            ("hist_cates", n_cates), ("cand_cates", n_cates)):
            arr = getattr(self, name)
            if arr.size and arr.max() >= limit:
                i = int(np.argmax(arr))
                raise ValueError(f"{name}: id {arr[i]} at position {i} is out of range for a vocabulary of {limit}")

    def check_fields(self, config) -> None:
        """Raise ValueError unless the batch has exactly the schema fields of ``config`` (a ModelConfig), each
        with ids inside its vocabulary."""
        for group, kinds in (("item_fields", ("item",)), ("sample_fields", ("user", "context"))):
            have, want = getattr(self, group), [f for f in config.fields if f.kind in kinds]
            for f in want:
                if f.name not in have:
                    raise ValueError(f"{group}: the batch has no field {f.name!r}, which the model's schema "
                                     f"needs ({f.kind} field)")
            names = {f.name for f in want}
            for name in have:
                if name not in names:
                    other = [f.name for f in config.fields if f.kind not in kinds]
                    raise ValueError(f"{group}: the model's schema has no {'/'.join(kinds)} field {name!r}"
                                     + (" (it is a field of another kind)" if name in other else ""))
            for f in want:
                bags = have[f.name] if group == "item_fields" else (have[f.name],)
                for part, bag in zip(("history", "candidates") if group == "item_fields" else ("",), bags):
                    check_field_ids(f"{group}[{f.name!r}]{' ' + part if part else ''}", f, bag)

    def fused_arrays(self, extra) -> tuple:
        """The arrays as the fused inference kernel's entry takes them (``FusedBatch``'s fields as a plain tuple,
        see ``layers.fused.din_infer_forward``) with ``extra`` (the model's (0, 0) array when it has no user or
        context field), built once per batch."""
        fused = self.__dict__.get("_fused")
        if fused is None or fused[5] is not extra:
            fused = (self.hist_goods, self.hist_cates, self.hist_offsets, self.cand_goods, self.cand_cates, extra)
            object.__setattr__(self, "_fused", fused)
        return fused

    def __len__(self):
        return self.size


@dataclass(frozen=True, eq=False)
class Candidates:
    """Candidate items per history, for ranking (``model.score``): history b's candidates are
    ``goods[offsets[b]:offsets[b+1]]`` (with their categories and item fields), in CSR form.

    goods, cates  (K,)    int64
    offsets       (B+1,)  int64
    item_fields   {name: Bag over the K candidates}   the model's item fields (a schema model only)
    """

    goods: np.ndarray
    cates: np.ndarray
    offsets: np.ndarray
    item_fields: dict

    def __init__(self, goods, cates, offsets, item_fields=None):
        goods = _as_int_array("candidates.goods", goods)
        K = goods.shape[0]
        object.__setattr__(self, "goods", goods)
        object.__setattr__(self, "cates", _as_int_array("candidates.cates", cates))
        object.__setattr__(self, "offsets", _as_int_array("candidates.offsets", offsets))
        if self.cates.shape[0] != K:
            raise ValueError(f"candidates.cates: length {self.cates.shape[0]} disagrees with goods length {K}")
        off = self.offsets
        if off.shape[0] < 1 or off[0] != 0 or off[-1] != K or np.any(np.diff(off) < 0):
            raise ValueError(f"candidates.offsets: must start at 0, be monotone and end at len(goods) = {K}")
        for name in ("goods", "cates"):
            arr = getattr(self, name)
            if arr.size and arr.min() < 0:
                raise ValueError(f"candidates.{name}: negative id {arr.min()}")
        object.__setattr__(self, "item_fields", {f: as_bag(f"candidates.item_fields[{f!r}]", v, K)
                                                 for f, v in _field_dict("item_fields", item_fields).items()})

    @classmethod
    def from_lists(cls, goods, cates, item_fields=None) -> "Candidates":
        """Per-history lists: ``goods=[[4, 2, 7], [1]]``; ``item_fields={name: [[sets of history 0's
        candidates...], ...]}`` (an id or a list of ids per candidate)."""
        if len(goods) != len(cates) or any(len(g) != len(c) for g, c in zip(goods, cates)):
            raise ValueError("candidates.cates: one category per candidate goods")
        offsets = np.zeros(len(goods) + 1, dtype=np.int64)
        np.cumsum([len(g) for g in goods], out=offsets[1:])
        fields = {f: [x for per in v for x in per] for f, v in (item_fields or {}).items()}
        return cls([x for g in goods for x in g], [x for c in cates for x in c], offsets, fields)

    def check(self, config) -> None:
        """Raise ValueError unless every id is inside the vocabularies of ``config`` (a ModelConfig) and the
        candidates carry exactly its item fields."""
        for name, limit in (("goods", config.n_goods), ("cates", config.n_cates)):
            arr = getattr(self, name)
            if arr.size and arr.max() >= limit:
                i = int(np.argmax(arr))
                raise ValueError(f"candidates.{name}: id {arr[i]} at position {i} is out of range for a vocabulary "
                                 f"of {limit}")
        want = {f.name: f for f in config.fields if f.kind == "item"}
        for name in self.item_fields:
            if name not in want:
                raise ValueError(f"candidates.item_fields: the model's schema has no item field {name!r}")
        for name, f in want.items():
            if name not in self.item_fields:
                raise ValueError(f"candidates.item_fields: no field {name!r}, which the model's schema needs")
            check_field_ids(f"candidates.item_fields[{name!r}]", f, self.item_fields[name])

    @property
    def size(self) -> int:
        """K, the number of candidates over every history."""
        return int(self.goods.shape[0])

    def expand(self, batch: "Batch") -> "Batch":
        """The (history, candidate) pairs as one Batch of K samples: history b repeated once per candidate, with
        its user and context (the clear reference ``model.score`` is tested against)."""
        B = batch.size
        if self.offsets.shape[0] != B + 1:
            raise ValueError(f"candidates.offsets: {self.offsets.shape[0] - 1} histories, but the batch has {B}")
        from .layers.bag import gather_sets

        owner = np.repeat(np.arange(B, dtype=np.int64), np.diff(self.offsets))  # history of each candidate
        lengths = np.diff(batch.hist_offsets)[owner]
        offsets = np.zeros(owner.shape[0] + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        rows = np.repeat(batch.hist_offsets[owner] - offsets[:-1], lengths) + np.arange(offsets[-1])
        items = {f: (Bag(*gather_sets(rows, *hist)), self.item_fields[f]) for f, (hist, _) in batch.item_fields.items()
                 if f in self.item_fields}
        for f in batch.item_fields:
            if f not in self.item_fields:
                raise ValueError(f"candidates.item_fields: no field {f!r}, which the batch's histories carry")
        samples = {f: Bag(*gather_sets(owner, *bag)) for f, bag in batch.sample_fields.items()}
        return Batch(batch.hist_goods[rows], batch.hist_cates[rows], offsets, self.goods, self.cates, None,
                     batch.users[owner], items, samples)
