"""``minidin prepare csv``: a user's own logs, described by a schema file, into a minidin dataset.

The schema file (JSON; its paths are relative to it) names the files and columns:

    {"interactions": {"file": "clicks.csv", "user": "user_id", "item": "item_id", "time": "ts",
                      "label": "clicked", "context": ["hour", "device"]},
     "items": {"file": "items.csv", "item": "item_id", "category": "category",
               "one_hot": ["category", "brand"], "multi_hot": {"tags": "|"}},
     "users": {"file": "users.csv", "user": "user_id",
               "one_hot": ["gender", "age"], "multi_hot": {"interests": "|"}}}

``label``, ``context``, ``items``, ``users`` and each list in them are optional.
Files are comma-separated with a header row. Ids and values are arbitrary
strings, mapped to 0-based indices (sorted) and stored with the dataset
(``Dataset.vocab``), so results map back to them.

- DIN's category is the item table's ``category`` column, by default its first
  ``one_hot`` column; without one, every item has the one category "(none)".
  Every other item column is an item field (concatenated onto the item's
  embedding), every user column a user field, every context column a context
  field (one-hot).
- Labels: without a label column every interaction is a positive and gets one
  negative drawn uniformly (seeded) from the items that user never interacted
  with, at the same time and context (the Amazon protocol); with one, the labels
  are used as they are.
- The history of a sample is its user's positives strictly before its own
  timestamp, in time order (file order breaks ties), cut to ``max_history``.
- Splits (``split``): ``last``, each user's last interaction for test and the
  second-to-last for validation (the default without labels); ``time``, one global
  time cut at 80% / 90% of the interactions (the default with labels); ``user``,
  users split 80/10/10 at random (seeded; at least one user each for validation
  and test), each user's samples in one split.

Every error names ``file:line`` and the column; nothing is written to ``out``
unless the whole run succeeds (``Dataset.save``).
"""
from __future__ import annotations

import csv
import json
import math
import os

import numpy as np

from ..batch import Bag
from ..config import RESERVED_FIELDS, _NAME
from ..io import check_output_dir
from .dataset import Dataset, Split

SPLITS = ("last", "time", "user")
NO_CATEGORY = "(none)"
_KEYS = {"interactions": ({"file", "user", "item", "time"}, {"label", "context"}),
         "items": ({"file", "item"}, {"one_hot", "multi_hot", "category"}),
         "users": ({"file", "user"}, {"one_hot", "multi_hot"})}


# ---------------------------------------------------------------------------- the schema file
def read_schema(path) -> dict:
    """The schema file, checked: every key known, every value of the right type; paths made absolute.
    ValueError names the file and the key."""
    where = os.fspath(path)
    if not os.path.isfile(where):
        raise ValueError(f"--schema: {where} is not a file")
    try:
        with open(where, encoding="utf-8") as f:
            schema = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}:{e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not UTF-8 text") from None
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: expected a JSON object with 'interactions' (and optionally 'items', 'users')")
    for key in schema:
        if key not in _KEYS:
            raise ValueError(f"{where}: unknown key {key!r} (expected {', '.join(_KEYS)})")
    if "interactions" not in schema:
        raise ValueError(f"{where}: missing 'interactions'")
    base = os.path.dirname(os.path.abspath(where))
    out = {}
    for part, spec in schema.items():
        need, optional = _KEYS[part]
        label = f"{where}: {part}"
        if not isinstance(spec, dict):
            raise ValueError(f"{label}: expected an object, got {type(spec).__name__}")
        for key in spec:
            if key not in need | optional:
                raise ValueError(f"{label}: unknown key {key!r} (expected {', '.join(sorted(need | optional))})")
        for key in need:
            if key not in spec:
                raise ValueError(f"{label}: missing {key!r}")
        for key in need | {"label", "category"}:
            if key in spec and (not isinstance(spec[key], str) or not spec[key]):
                raise ValueError(f"{label}.{key}: expected a column name (a non-empty string), got {spec[key]!r}")
        lists = {"context": spec.get("context", []), "one_hot": spec.get("one_hot", [])}
        for key, v in lists.items():
            if not isinstance(v, list) or not all(isinstance(c, str) and c for c in v):
                raise ValueError(f"{label}.{key}: expected a list of column names, got {v!r}")
        multi = spec.get("multi_hot", {})
        if not isinstance(multi, dict) or not all(isinstance(s, str) and s for s in multi.values()):
            raise ValueError(f"{label}.multi_hot: expected an object column -> separator (e.g. {{\"tags\": \"|\"}}), "
                             f"got {multi!r}")
        for sep in multi.values():
            if sep in (",", '"', "\n", "\r"):
                raise ValueError(f"{label}.multi_hot: separator {sep!r} cannot be used inside a comma-separated cell")
        spec = dict(spec, file=os.path.join(base, spec["file"]), context=lists["context"],
                    one_hot=lists["one_hot"], multi_hot=dict(multi))
        if "category" in spec and spec["category"] not in spec["one_hot"]:
            raise ValueError(f"{label}.category: {spec['category']!r} must be one of its one_hot columns")
        out[part] = spec
    names = {}
    for part in out:
        cols = out[part]["context"] + out[part]["one_hot"] + list(out[part]["multi_hot"])
        for col in cols:
            if part == "items" and col == out["items"].get("category", (out["items"]["one_hot"] or [None])[0]):
                continue  # DIN's category, not a field
            if not _NAME.match(col) or col in RESERVED_FIELDS:
                raise ValueError(f"{where}: {part}: column {col!r} cannot name a field (letters, digits and _, "
                                 f"not starting with a digit, and not {', '.join(RESERVED_FIELDS)})")
            if col in names:
                raise ValueError(f"{where}: {part}: column {col!r} is also a field of {names[col]}; field names "
                                 f"must be unique")
            names[col] = part
    return out


# ---------------------------------------------------------------------------- CSV files
def _read_csv(path, columns):
    """(line numbers, {column: list of str}) of a comma-separated file with a header row; ValueError names
    file:line for a missing column, a row of the wrong width, an empty file or undecodable text."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    lines, data = [], {c: [] for c in columns}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            while header is not None and not any(h.strip() for h in header):
                header = next(reader, None)
            if header is None:
                raise ValueError(f"{path}: empty file (expected a header row)")
            header = [h.strip() for h in header]
            head_line = reader.line_num
            for c in columns:
                if c not in header:
                    raise ValueError(f"{path}:{head_line}: missing column {c!r} (the header has: "
                                     f"{', '.join(header)})")
            idx = [header.index(c) for c in columns]
            for row in reader:
                if not row or not any(x.strip() for x in row):
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path}:{reader.line_num}: {len(row)} fields, but the header has "
                                     f"{len(header)}")
                lines.append(reader.line_num)
                for c, i in zip(columns, idx):
                    data[c].append(row[i].strip())
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.object[e.start:e.start + 1]!r})") from None
    except csv.Error as e:
        raise ValueError(f"{path}:{reader.line_num}: {e}") from None
    if not lines:
        raise ValueError(f"{path}: empty file (a header row and no data)")
    return lines, data


def _split_cell(value, sep, path, line, col):
    """A multi-hot cell's values: '' is the empty set; an empty value between separators is an error."""
    if value == "":
        return []
    parts = [p.strip() for p in value.split(sep)]
    if any(p == "" for p in parts):
        raise ValueError(f"{path}:{line}: column {col!r}: malformed multi-hot cell {value!r} (an empty value "
                         f"between {sep!r} separators; an empty cell is the empty set)")
    return parts


def _vocabulary(values):
    """Sorted distinct strings and a dict string -> index."""
    names = sorted(set(values))
    return names, {v: i for i, v in enumerate(names)}


def _table(spec, key_col, kind):
    """An item or user table: {key: line}, {column: [values per key order]}, the keys in file order."""
    path = spec["file"]
    cols = spec["one_hot"] + list(spec["multi_hot"])
    lines, data = _read_csv(path, [key_col] + [c for c in cols if c != key_col])
    seen = {}
    for i, (k, ln) in enumerate(zip(data[key_col], lines)):
        if k in seen:
            raise ValueError(f"{path}:{ln}: {kind} {k!r} is listed twice (first at line {seen[k][1]})")
        seen[k] = (i, ln)
    values = {}
    for c in cols:
        if c in spec["multi_hot"]:
            values[c] = [_split_cell(v, spec["multi_hot"][c], path, ln, c) for v, ln in zip(data[c], lines)]
        else:
            values[c] = data[c]
    return seen, values


def _bag(per_row_sets, vocab_index):
    lengths = [len(s) for s in per_row_sets]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((vocab_index[v] for s in per_row_sets for v in s), dtype=np.int64, count=int(offsets[-1]))
    return Bag(ids, offsets)


# ---------------------------------------------------------------------------- the dataset
def prepare_csv(out, schema_path, split=None, seed=1234, max_history=100):
    """``minidin prepare csv``: returns the info written to meta.json. See the module docstring."""
    check_output_dir(out, "dataset")  # before any input is read: refuse a folder minidin may not write into
    if split is not None and split not in SPLITS:
        raise ValueError(f"--split: must be one of {', '.join(SPLITS)}, got {split!r}")
    schema = read_schema(schema_path)
    inter = schema["interactions"]
    path = inter["file"]
    cols = [inter["user"], inter["item"], inter["time"]] + ([inter["label"]] if "label" in inter else [])
    cols += [c for c in inter["context"] if c not in cols]
    lines, data = _read_csv(path, cols)
    n = len(lines)
    times = np.empty(n, dtype=np.float64)
    for i, (v, ln) in enumerate(zip(data[inter["time"]], lines)):
        try:
            t = float(v)
        except ValueError:
            t = math.nan
        if not math.isfinite(t):
            raise ValueError(f"{path}:{ln}: column {inter['time']!r}: timestamp {v!r} is not a finite number")
        times[i] = t
    has_labels = "label" in inter
    labels = np.ones(n, dtype=np.float64)
    if has_labels:
        for i, (v, ln) in enumerate(zip(data[inter["label"]], lines)):
            try:
                y = float(v)
            except ValueError:
                y = math.nan
            if y not in (0.0, 1.0):
                raise ValueError(f"{path}:{ln}: column {inter['label']!r}: a label must be 0 or 1, got {v!r}")
            labels[i] = y
    split = split or ("time" if has_labels else "last")

    # items: DIN's category, item fields
    item_strings = data[inter["item"]]
    fields, item_attrs, user_attrs, vocab = [], {}, {}, {}
    cate_of = None
    if "items" in schema:
        spec = schema["items"]
        keys, values = _table(spec, spec["item"], "item")
        for i, (it, ln) in enumerate(zip(item_strings, lines)):
            if it not in keys:
                raise ValueError(f"{path}:{ln}: column {inter['item']!r}: item {it!r} is not in "
                                 f"{os.path.basename(spec['file'])}")
        goods_names, goods_index = _vocabulary(list(keys))
        order = [keys[g][0] for g in goods_names]  # table row of each goods id
        cat_col = spec.get("category", spec["one_hot"][0] if spec["one_hot"] else None)
        if cat_col is not None:
            cate_names, cate_index = _vocabulary(values[cat_col])
            cate_of = np.array([cate_index[values[cat_col][r]] for r in order], dtype=np.int64)
        for c in spec["one_hot"] + list(spec["multi_hot"]):
            if c == cat_col:
                continue
            multi = c in spec["multi_hot"]
            rows = [values[c][r] if multi else [values[c][r]] for r in order]
            names, index = _vocabulary(v for s in rows for v in s)
            if not names:
                names, index = [NO_CATEGORY], {NO_CATEGORY: 0}  # every set empty: a vocabulary of one unused id
            fields.append({"name": c, "kind": "item", "vocab": len(names), "multi_hot": multi})
            item_attrs[c] = _bag(rows, index)
            vocab[c] = names
    else:
        goods_names, goods_index = _vocabulary(item_strings)
    if cate_of is None:
        cate_names, cate_of = [NO_CATEGORY], np.zeros(len(goods_names), dtype=np.int64)
    goods = np.fromiter((goods_index[v] for v in item_strings), dtype=np.int64, count=n)

    # users and their profile
    user_strings = data[inter["user"]]
    if "users" in schema:
        spec = schema["users"]
        keys, values = _table(spec, spec["user"], "user")
        for it, ln in zip(user_strings, lines):
            if it not in keys:
                raise ValueError(f"{path}:{ln}: column {inter['user']!r}: user {it!r} is not in "
                                 f"{os.path.basename(spec['file'])}")
        user_names, user_index = _vocabulary(user_strings)  # users with interactions only
        order = [keys[u][0] for u in user_names]
        for c in spec["one_hot"] + list(spec["multi_hot"]):
            multi = c in spec["multi_hot"]
            rows = [values[c][r] if multi else [values[c][r]] for r in order]
            names, index = _vocabulary(v for s in rows for v in s)
            if not names:
                names, index = [NO_CATEGORY], {NO_CATEGORY: 0}
            fields.append({"name": c, "kind": "user", "vocab": len(names), "multi_hot": multi})
            user_attrs[c] = _bag(rows, index)
            vocab[c] = names
    else:
        user_names, user_index = _vocabulary(user_strings)
    users = np.fromiter((user_index[v] for v in user_strings), dtype=np.int64, count=n)
    U, I = len(user_names), len(goods_names)

    # context: one value per interaction
    ctx_ids = {}
    for c in inter["context"]:
        names, index = _vocabulary(data[c])
        fields.append({"name": c, "kind": "context", "vocab": len(names), "multi_hot": False})
        ctx_ids[c] = np.fromiter((index[v] for v in data[c]), dtype=np.int64, count=n)
        vocab[c] = names

    # sequences: each user's positives in (time, file order)
    order = np.lexsort((np.arange(n), times, users))
    pos_rows = order[labels[order] == 1.0]
    seq_goods = goods[pos_rows]
    lengths = np.bincount(users[pos_rows], minlength=U).astype(np.int64)
    seq_offsets = np.zeros(U + 1, dtype=np.int64)
    np.cumsum(lengths, out=seq_offsets[1:])
    # a sample's history end: how many of its user's positives are strictly earlier in time
    ends = _history_ends(users, times, seq_offsets, times[pos_rows])

    # which split each interaction belongs to
    which = _assign_splits(split, users, times, order, U, n, seed)

    # negatives for a log without labels: one per positive, uniform over the items the user never touched
    rng = np.random.default_rng(seed)
    if not has_labels:
        seen = np.unique(users * I + goods)
        distinct = np.bincount(seen // I, minlength=U)
        if np.any(distinct >= I):
            u = int(np.flatnonzero(distinct >= I)[0])
            raise ValueError(f"{path}: user {user_names[u]!r} interacted with every item, so no negative can be "
                             f"drawn for them")
        neg = rng.integers(0, I, n)
        for _ in range(10000):
            bad = np.isin(users * I + neg, seen)
            if not bad.any():
                break
            neg[bad] = rng.integers(0, I, int(bad.sum()))
        rows = np.repeat(np.arange(n), 2)
        cand = np.empty(2 * n, dtype=np.int64)
        cand[0::2], cand[1::2] = goods, neg
        y = np.tile([1.0, 0.0], n)
    else:
        rows, cand, y = np.arange(n), goods, labels
    splits = {}
    for k, name in enumerate(("train", "valid", "test")):
        m = which[rows] == k
        r = rows[m]
        # samples in (time, file order) within a split
        o = np.lexsort((r, times[r]))
        r, c, yy = r[o], cand[m][o], y[m][o]
        context = {f: Bag(ids[r], np.arange(r.shape[0] + 1, dtype=np.int64)) for f, ids in ctx_ids.items()}
        splits[name] = Split(users[r], ends[r], c, cate_of[c], yy, None, context)
    vocab.update(users=user_names, goods=goods_names, cates=list(cate_names))
    desc = {"kind": "prepared", "protocol": "csv", "path": os.path.abspath(out)}
    ds = Dataset(seq_goods, cate_of[seq_goods], seq_offsets, I, len(cate_names), splits, max_history, desc,
                 fields=fields, item_attrs=item_attrs, user_attrs=user_attrs, vocab=vocab)
    for name, s in ds.splits.items():
        if len(s) == 0:
            raise ValueError(f"{path}: the {name} split is empty with --split {split} ({n} interactions, {U} users); "
                             f"a dataset needs samples in train, valid and test")
    from .prepare import _meta_common

    files = [schema_path, path] + [schema[p]["file"] for p in ("items", "users") if p in schema]
    stats = {"users": U, "items": I, "categories": len(cate_names), "interactions": n,
             "labels": "from the file" if has_labels else "every interaction a positive, one sampled negative each",
             "category": schema.get("items", {}).get("category") or (schema.get("items", {}).get("one_hot") or
                                                                      [NO_CATEGORY])[0],
             "fields": [f["name"] for f in fields]}
    info = _meta_common(ds, stats, files, dict(split=split, seed=seed, max_history=max_history))
    ds.save(out, meta=info)
    return info


def _history_ends(users, times, seq_offsets, pos_times):
    """For every interaction i, the number of its user's positives with a time strictly before times[i]
    (pos_times: the positives' times, user after user, each user's in ascending order)."""
    ends = np.empty(users.shape[0], dtype=np.int64)
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    for grp in np.split(order, bounds):
        if grp.size == 0:
            continue
        u = users[grp[0]]
        lo, hi = seq_offsets[u], seq_offsets[u + 1]
        ends[grp] = np.searchsorted(pos_times[lo:hi], times[grp], side="left")
    return ends


def _assign_splits(split, users, times, order, U, n, seed):
    """0 / 1 / 2 (train / valid / test) for every interaction."""
    which = np.zeros(n, dtype=np.int64)
    if split == "last":  # within a user, ``order`` is (time, file order): the last two rows of each user
        u_sorted = users[order]
        last = np.r_[u_sorted[1:] != u_sorted[:-1], True]
        second = np.zeros(n, dtype=bool)
        second[:-1] = last[1:] & (u_sorted[:-1] == u_sorted[1:])
        which[order[second]] = 1
        which[order[last]] = 2
    elif split == "time":
        t = np.sort(times)
        cut1, cut2 = t[int(0.8 * n)] if n else 0, t[min(n - 1, int(0.9 * n))] if n else 0
        which[times >= cut1] = 1
        which[times >= cut2] = 2
    else:
        perm = np.random.default_rng([seed, 2]).permutation(U)
        n_test = n_valid = max(1, int(round(0.1 * U))) if U >= 3 else 0  # at least a user each where there are 3
        part = np.zeros(U, dtype=np.int64)
        part[perm[:n_test]] = 2
        part[perm[n_test:n_test + n_valid]] = 1
        which = part[users]
    return which
