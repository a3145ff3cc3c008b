"""Datasets in the compact layout shared by the synthetic generator and real-data loaders.

Each user's behaviour sequence is stored **once**, in CSR form over users:

    seq_goods   (L,)    int64   goods id of every behaviour, user after user, oldest first
    seq_cates   (L,)    int64   category id of every behaviour
    seq_offsets (U+1,)  int64   user u owns behaviours [seq_offsets[u], seq_offsets[u+1])

A sample is ``(user, end, cand_goods, cand_cates, label)``: its history is the
window ``[max(0, end − max_history), end)`` of that user's sequence. Storing a
history per sample would grow quadratically with sequence length; this layout
grows linearly. ``Split`` holds the samples of one split (train/valid/test).

A schema (``fields``: name, kind item/user/context, vocabulary, multi-hot or not)
adds feature fields, each a ``Bag`` (CSR sets of ids) stored once per entity:

    item_attrs[name]      Bag over the n_goods items    an item's brand, its genres...
    user_attrs[name]      Bag over the n_users users    the profile
    split.context[name]   Bag over the split's samples  hour, device...

so sequences hold item ids only, and a batch gathers each behaviour's and
candidate's attributes from ``item_attrs`` (as the official code looks a goods'
category up through ``cate_list``). ``vocab`` keeps the original id strings of
users, goods, categories and every field, so results map back to them.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field

import numpy as np

from ..batch import Bag, Batch
from ..layers.bag import gather_sets
from ..io import atomic_write, check_output_dir, umask, write_marker

SPLITS = ("train", "valid", "test")


@dataclass(eq=False)
class Split:
    """The samples of one split. ``probs`` is the true click probability where known (synthetic data)."""

    users: np.ndarray  # (S,) int64
    ends: np.ndarray  # (S,) int64, history = sequence[max(0, end − max_history) : end]
    cand_goods: np.ndarray  # (S,) int64
    cand_cates: np.ndarray  # (S,) int64
    labels: np.ndarray  # (S,) float64 in {0, 1}
    probs: np.ndarray | None = None  # (S,) float64 true click probability, or None
    context: dict = field(default_factory=dict)  # name -> Bag over the S samples (context fields)

    def __len__(self):
        return int(self.users.shape[0])


@dataclass(eq=False)
class Dataset:
    """User sequences stored once, plus train/valid/test samples that point into them."""

    seq_goods: np.ndarray
    seq_cates: np.ndarray
    seq_offsets: np.ndarray
    n_goods: int
    n_cates: int
    splits: dict  # name -> Split
    max_history: int | None = None
    description: dict = field(default_factory=dict)  # how to rebuild it (JSON-serialisable)
    truth: object = None  # synthetic ground truth (relevance of behaviours), else None
    fields: list = field(default_factory=list)  # the schema: [{"name", "kind", "vocab", "multi_hot"}], in order
    item_attrs: dict = field(default_factory=dict)  # item field -> Bag over the n_goods items
    user_attrs: dict = field(default_factory=dict)  # user field -> Bag over the n_users users
    vocab: dict = field(default_factory=dict)  # "users" / "goods" / "cates" / field -> original id strings

    def __post_init__(self):
        self.validate()

    def field_specs(self, names=None) -> tuple:
        """The schema as FieldSpecs (``dim`` 1: the width is the model's choice), all or those ``names``."""
        from ..config import FieldSpec

        return tuple(FieldSpec(f["name"], f["kind"], f["vocab"], 1, f["multi_hot"]) for f in self.fields
                     if names is None or f["name"] in names)

    @property
    def n_users(self):
        return int(self.seq_offsets.shape[0] - 1)

    def window(self, max_history=None) -> int | None:
        """The history window in force: ``max_history`` when given (one run's override), else the
        dataset's own (``None``: unlimited). Checked here, so every batching path rejects a bad one."""
        w = self.max_history if max_history is None else max_history
        if w is not None and (isinstance(w, bool) or int(w) != w or w < 1):
            raise ValueError(f"max_history: must be a positive integer, got {w!r}")
        return None if w is None else int(w)

    def _span(self, max_history):
        w = self.window(max_history)
        return np.iinfo(np.int64).max // 4 if w is None else w

    def validate(self):
        """Check every array before any kernel sees it; ValueError names the field."""
        off = self.seq_offsets
        L = self.seq_goods.shape[0]
        if self.seq_cates.shape != (L,):
            raise ValueError(f"seq_cates: length {self.seq_cates.shape[0]} disagrees with seq_goods length {L}")
        if off.ndim != 1 or off.shape[0] < 1 or off[0] != 0 or off[-1] != L or np.any(np.diff(off) < 0):
            raise ValueError("seq_offsets: must start at 0, be monotone and end at len(seq_goods)")
        for name, arr, lim in (("seq_goods", self.seq_goods, self.n_goods), ("seq_cates", self.seq_cates, self.n_cates)):
            if arr.size and (arr.min() < 0 or arr.max() >= lim):
                raise ValueError(f"{name}: ids must be in [0, {lim}), got range [{arr.min()}, {arr.max()}]")
        if self.max_history is not None and self.max_history < 1:
            raise ValueError(f"max_history: must be at least 1, got {self.max_history}")
        lengths = np.diff(off)
        for name, s in self.splits.items():
            S = len(s)
            for f in ("ends", "cand_goods", "cand_cates", "labels"):
                if getattr(s, f).shape != (S,):
                    raise ValueError(f"{name}.{f}: length {getattr(s, f).shape} disagrees with users ({S},)")
            if S == 0:
                continue
            if s.users.min() < 0 or s.users.max() >= self.n_users:
                raise ValueError(f"{name}.users: ids must be in [0, {self.n_users})")
            if np.any(s.ends < 0) or np.any(s.ends > lengths[s.users]):
                raise ValueError(f"{name}.ends: a history end lies outside its user's sequence")
            for f, lim in (("cand_goods", self.n_goods), ("cand_cates", self.n_cates)):
                arr = getattr(s, f)
                if arr.min() < 0 or arr.max() >= lim:
                    raise ValueError(f"{name}.{f}: ids must be in [0, {lim})")
            if np.any((s.labels != 0) & (s.labels != 1)):
                raise ValueError(f"{name}.labels: must be 0 or 1")
        self._validate_fields()

    def _validate_fields(self):
        from ..config import _fields

        specs = _fields("fields", [dict(f, dim=1) for f in self.fields])  # names, kinds, vocabularies
        where = {"item": (self.item_attrs, "item_attrs", self.n_goods), "user": (self.user_attrs, "user_attrs",
                                                                                 self.n_users)}
        for attrs, label, _ in where.values():
            for name in attrs:
                if not any(f.name == name and f.kind == label[:4] for f in specs):
                    raise ValueError(f"{label}: {name!r} is not an {label[:4]} field of the schema")
        for sname, s in self.splits.items():
            for name in s.context:
                if not any(f.name == name and f.kind == "context" for f in specs):
                    raise ValueError(f"{sname}.context: {name!r} is not a context field of the schema")
        for f in specs:
            bags = ([(f"{where[f.kind][1]}[{f.name!r}]", where[f.kind][0].get(f.name), where[f.kind][2])]
                    if f.kind != "context" else
                    [(f"{sname}.context[{f.name!r}]", s.context.get(f.name), len(s)) for sname, s in self.splits.items()])
            for label, bag, rows in bags:
                if bag is None:
                    raise ValueError(f"{label}: missing (the schema declares the field)")
                ids, off = bag
                if off.shape != (rows + 1,) or off[0] != 0 or off[-1] != ids.shape[0] or np.any(np.diff(off) < 0):
                    raise ValueError(f"{label}: offsets must have {rows} + 1 entries, start at 0, be monotone and "
                                     f"end at the number of ids")
                if ids.size and (ids.min() < 0 or ids.max() >= f.vocab):
                    raise ValueError(f"{label}: ids must be in [0, {f.vocab}), got range [{ids.min()}, {ids.max()}]")
                if not f.multi_hot and np.any(np.diff(off) != 1):
                    raise ValueError(f"{label}: a one-hot field needs exactly one id per row")

    # ------------------------------------------------------------------ batching
    def batch(self, split: str, idx=None, max_history=None, fields=None) -> Batch:
        """The samples ``idx`` (default: all) of a split as one ``Batch``, built without per-behaviour loops.

        ``max_history`` overrides the dataset's own window for this call only (the dataset is never changed).
        ``fields``: the schema fields the batch carries (a model's: ``[f.name for f in model.cfg.fields]``);
        None: every field of the schema.
        """
        s = self.splits[split]
        idx = np.arange(len(s)) if idx is None else np.asarray(idx, dtype=np.int64)
        users, ends = s.users[idx], s.ends[idx]
        starts = np.maximum(0, ends - self._span(max_history))
        lengths = ends - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # flat positions into the sequence arrays: start of each window, then 0, 1, 2, ... inside it
        pos = np.repeat(self.seq_offsets[users] + starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        hist_goods, cand_goods = self.seq_goods[pos], s.cand_goods[idx]
        items, samples = {}, {}
        for f in self.fields:
            name = f["name"]
            if fields is not None and name not in fields:
                continue
            if f["kind"] == "item":
                bag = self.item_attrs[name]
                items[name] = (Bag(*gather_sets(hist_goods, *bag)), Bag(*gather_sets(cand_goods, *bag)))
            else:
                bag, rows = (self.user_attrs[name], users) if f["kind"] == "user" else (s.context[name], idx)
                samples[name] = Bag(*gather_sets(rows, *bag))
        if fields is not None:
            for name in fields:
                if name not in items and name not in samples:
                    raise ValueError(f"fields: the data has no field {name!r} (its schema: "
                                     f"{', '.join(f['name'] for f in self.fields) or 'none'})")
        return Batch(hist_goods, self.seq_cates[pos], offsets, cand_goods, s.cand_cates[idx], s.labels[idx], users,
                     items, samples)

    def candidates(self, split: str, k: int, goods, cates, fields=None, max_history=None) -> Batch:
        """Sample ``k`` of a split (its history, user and context) once per candidate in ``goods`` (with
        categories ``cates``): a Batch of len(goods) samples, each candidate's item fields gathered from
        ``item_attrs``; ``fields`` and ``max_history`` as in ``batch``."""
        from ..batch import Candidates

        goods = np.asarray(goods, dtype=np.int64)
        one = self.batch(split, [k], max_history, fields)
        fields = {name: Bag(*gather_sets(goods, *self.item_attrs[name])) for name in one.item_fields}
        return Candidates(goods, cates, [0, goods.shape[0]], fields).expand(one)

    def batches(self, split: str, batch_size: int, shuffle: bool = False, rng=None, max_history=None, fields=None):
        """Yield ``(idx, Batch)`` over a split; ``shuffle`` needs an explicit ``np.random.Generator``;
        ``max_history`` and ``fields`` as in ``batch``."""
        self.window(max_history)
        if batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
        S = len(self.splits[split])
        order = np.arange(S)
        if shuffle:
            if rng is None:
                raise ValueError("rng: shuffling needs an explicit numpy Generator")
            order = rng.permutation(S)
        for lo in range(0, S, batch_size):
            idx = order[lo:lo + batch_size]
            yield idx, self.batch(split, idx, max_history, fields)

    # ------------------------------------------------------------------ statistics
    def feature_counts(self, split: str = "train", max_history=None) -> dict:
        """n_j per table: the number of samples of ``split`` whose history window or candidate contains id j
        (the window as in ``batch``)."""
        from .counts import dataset_counts

        return dataset_counts(self, split, max_history)

    def fingerprint(self, fields=None) -> str:
        """sha256 of the data's content (sequences, every split, vocabulary sizes, window, and the schema
        fields with their arrays): equal fingerprints mean the same samples, whatever file or process they came
        from. Recorded by checkpoints and cached results. ``fields``: the fingerprint of the data as a model
        taking only these fields sees it (``[]``: goods and categories alone, the fingerprint of the same data
        without a schema)."""
        h = hashlib.sha256()
        h.update(json.dumps([self.n_goods, self.n_cates, self.max_history, sorted(self.splits)]).encode())
        arrays = [self.seq_goods, self.seq_cates, self.seq_offsets]
        for name in sorted(self.splits):
            s = self.splits[name]
            arrays += [s.users, s.ends, s.cand_goods, s.cand_cates, s.labels]
        schema = [f for f in self.fields if fields is None or f["name"] in fields]
        if schema:  # without a schema, the fingerprint a dataset always had
            h.update(json.dumps(schema, sort_keys=True).encode())
            names = {f["name"] for f in schema}
            for name in sorted(set(self.item_attrs) & names):
                arrays += list(self.item_attrs[name])
            for name in sorted(set(self.user_attrs) & names):
                arrays += list(self.user_attrs[name])
            for sname in sorted(self.splits):
                for name in sorted(set(self.splits[sname].context) & names):
                    arrays += list(self.splits[sname].context[name])
        for a in arrays:
            a = np.ascontiguousarray(a, dtype=np.float64 if a.dtype.kind == "f" else np.int64)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def summary(self) -> dict:
        d = {"n_users": self.n_users, "n_goods": self.n_goods, "n_cates": self.n_cates,
             "behaviours": int(self.seq_goods.shape[0]), "max_history": self.max_history}
        if self.fields:
            d["fields"] = [dict(f) for f in self.fields]
        for name, s in self.splits.items():
            d[name] = {"samples": len(s), "positive_rate": float(s.labels.mean()) if len(s) else None}
        return d

    # ------------------------------------------------------------------ files
    def save(self, path, meta: dict | None = None):
        """Write the dataset into directory ``path``: ``meta.json``, the arrays in the data file it names, and
        minidin's marker.

        ``path`` must not exist, be empty, or hold a previous minidin dataset (``io.check_output_dir``):
        anything else is a ValueError and nothing is touched. A new directory appears whole (built beside it,
        then renamed). A previous dataset is replaced so that at every instant one of the two is loadable: the
        new arrays go to a new file, then ``meta.json`` is replaced atomically to name it, then the old file
        is removed.
        """
        path = os.path.abspath(path)
        replace = check_output_dir(path, "dataset")
        # a new directory gets data.npz; a replacement a new name, so the old file stays whole until meta.json
        # stops naming it
        data_file = f"data-{uuid.uuid4().hex[:12]}.npz" if replace else "data.npz"
        info = dict(meta or {})
        info.update(format="minidin-dataset-1", data_file=data_file, n_goods=self.n_goods, n_cates=self.n_cates,
                    max_history=self.max_history, splits=list(self.splits), summary=self.summary(),
                    description=self.description, fields=self.fields)
        text = json.dumps(info, indent=2).encode()
        if replace:
            atomic_write(os.path.join(path, data_file), self._write_arrays)
            atomic_write(os.path.join(path, "meta.json"), lambda f: f.write(text))
            for name in os.listdir(path):  # the previous data file(s), and any a killed run left behind
                if name != data_file and name.startswith("data") and name.endswith(".npz"):
                    os.remove(os.path.join(path, name))
            return
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
        try:
            atomic_write(os.path.join(tmp, data_file), self._write_arrays)
            atomic_write(os.path.join(tmp, "meta.json"), lambda f: f.write(text))
            write_marker(tmp, "dataset")
            os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700
            os.rename(tmp, path)  # onto a missing or empty directory only
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write_arrays(self, f):
        arrays = {"seq_goods": self.seq_goods, "seq_cates": self.seq_cates, "seq_offsets": self.seq_offsets}
        for name, s in self.splits.items():
            for k in ("users", "ends", "cand_goods", "cand_cates", "labels"):
                arrays[f"{name}/{k}"] = getattr(s, k)
            if s.probs is not None:
                arrays[f"{name}/probs"] = s.probs
            for fname, bag in s.context.items():
                arrays[f"{name}/context/{fname}/ids"], arrays[f"{name}/context/{fname}/offsets"] = bag
        for group, attrs in (("item", self.item_attrs), ("user", self.user_attrs)):
            for fname, bag in attrs.items():
                arrays[f"{group}/{fname}/ids"], arrays[f"{group}/{fname}/offsets"] = bag
        for key, strings in self.vocab.items():
            arrays[f"vocab/{key}"] = np.asarray(strings, dtype=str)
        np.savez(f, **arrays)

    @classmethod
    def load(cls, path, max_history="meta"):
        """Load a dataset directory written by ``save`` (or ``minidin prepare``)."""
        meta_path = os.path.join(path, "meta.json")
        if not os.path.isdir(path):
            raise ValueError(f"data: {path} is not a dataset directory")
        if not os.path.exists(meta_path):
            raise ValueError(f"data: {path} has no meta.json (not a prepared dataset)")
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            data_file = meta.get("data_file", "data.npz") if isinstance(meta, dict) else None
            if not isinstance(data_file, str) or os.path.basename(data_file) != data_file or not data_file:
                raise ValueError(f"meta.json: data_file must be a file name in the directory, got {data_file!r}")
            data_path = os.path.join(path, data_file)
            if not os.path.exists(data_path):
                raise ValueError(f"meta.json names {data_file}, which is missing")
            z = np.load(data_path, allow_pickle=False)
            names = meta["splits"]
            if not isinstance(names, list) or not set(SPLITS) <= set(names):
                raise ValueError(f"meta.json: splits must list {', '.join(SPLITS)}, got {names!r}")

            def ints(key):
                a = z[key]
                if a.dtype.kind not in "iu" or a.ndim != 1:
                    raise ValueError(f"{data_file}: {key} must be a 1-D integer array, got {a.dtype} {a.shape}")
                return a.astype(np.int64)

            splits = {}
            for name in names:
                probs = z[f"{name}/probs"] if f"{name}/probs" in z.files else None
                labels = z[f"{name}/labels"]
                if labels.dtype.kind not in "iuf" or labels.ndim != 1:
                    raise ValueError(f"{data_file}: {name}/labels must be a 1-D array of 0 and 1")
                schema = meta.get("fields") or []
                if not isinstance(schema, list) or not all(isinstance(x, dict) for x in schema):
                    raise ValueError(f"meta.json: fields must be a list of objects, got {str(schema)[:60]}")
                ctx = {x["name"]: Bag(ints(f"{name}/context/{x['name']}/ids"),
                                      ints(f"{name}/context/{x['name']}/offsets"))
                       for x in schema if x.get("kind") == "context"}
                splits[name] = Split(*(ints(f"{name}/{f}") for f in ("users", "ends", "cand_goods", "cand_cates")),
                                     labels.astype(np.float64), probs, ctx)
            attrs = {kind: {x["name"]: Bag(ints(f"{kind}/{x['name']}/ids"), ints(f"{kind}/{x['name']}/offsets"))
                            for x in schema if x.get("kind") == kind} for kind in ("item", "user")}
            vocab = {}
            for key in z.files:
                if key.startswith("vocab/"):
                    a = z[key]
                    if a.dtype.kind != "U" or a.ndim != 1:
                        raise ValueError(f"{data_file}: {key} must be a 1-D array of strings")
                    vocab[key[6:]] = a.tolist()
            seq = [ints(k) for k in ("seq_goods", "seq_cates", "seq_offsets")]
            n_goods, n_cates = meta["n_goods"], meta["n_cates"]
            for key, v in (("n_goods", n_goods), ("n_cates", n_cates)):
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v < 2**31:
                    raise ValueError(f"meta.json: {key} must be a whole number in [1, 2^31), got {v!r}")
        except (KeyError, OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, ValueError, TypeError,
                AttributeError) as e:
            raise ValueError(f"data: {path} is corrupt or incomplete ({type(e).__name__}: {e})") from None
        mh = meta.get("max_history") if max_history == "meta" else max_history
        try:
            desc = dict(meta.get("description") or {}, kind="prepared", path=os.path.abspath(path))
            return cls(*seq, n_goods, n_cates, splits, mh, desc, fields=schema, item_attrs=attrs["item"],
                       user_attrs=attrs["user"], vocab=vocab)
        except (ValueError, TypeError) as e:
            raise ValueError(f"data: {path} is corrupt: {e}") from None
