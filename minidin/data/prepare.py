"""Turn public review and rating files into minidin datasets (the compact layout of ``dataset.py``).

Amazon (paper §6.1 and the official code's ``build_dataset.py``): a user's
time-ordered behaviours are i1..in; a sample predicts i(k+1) from i1..ik, with
one negative per positive, drawn uniformly from the items the user never
reviewed (fixed seed). The **last** step (k = n−1) is the test sample, the
second-to-last (k = n−2) validation, and k = 1..n−3 train, so model selection
never sees test. Users with fewer than 3 behaviours are skipped and counted.
The category of an item is its leaf category; its brand (one-hot, "(no brand)"
where it has none) and all its categories (multi-hot) are kept as the item
fields ``brand`` and ``categories``.

MovieLens (paper §6.1): a rating ≥ 4 is a click. Every rating of a user is a
sample whose history is every movie that user rated earlier, whatever the
rating, ordered by (timestamp, file order); a user's first rating has an empty
history and is kept. The category is the **first** listed genre; every genre of
a movie is kept as the multi-hot item field ``genres``, and with a user file
(``u.user`` of ml-100k, ``users.dat`` of ml-1m) the profile as the one-hot user
fields ``gender``, ``age`` (ml-1m's buckets) and ``occupation``. Users are split
at random (seeded): 28% test, 10% validation, 62% train, as the paper splits
by user (about 72% / 28%) with a validation slice of the training users.

Every writer goes through ``Dataset.save``: a temporary directory, renamed into
place, so nothing half-written is left behind.
"""
from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import os
import warnings
import zlib

import numpy as np

from ..io import check_output_dir
from ..batch import Bag
from .dataset import Dataset, Split

MOVIELENS_100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                         "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
                         "Sci-Fi", "Thriller", "War", "Western"]


def _open_text(path, encoding="utf-8"):
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    if str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


_READ_ERRORS = (UnicodeDecodeError, EOFError, zlib.error, gzip.BadGzipFile, RecursionError)


def _read_error(path, e, ln=None):
    """One line for what Python raises on an unreadable file: bad bytes, a corrupt or truncated .gz, a
    nesting too deep to parse."""
    where = f"{path}:{ln}" if ln else str(path)
    if isinstance(e, UnicodeDecodeError):
        return ValueError(f"{where}: not valid {e.encoding} text (byte {e.object[e.start:e.start + 1]!r})")
    if isinstance(e, RecursionError):
        return ValueError(f"{where}: nested too deeply to parse")
    return ValueError(f"{where}: corrupt or truncated gzip file ({type(e).__name__})")


def _lines(path, encoding="utf-8"):
    """(line number, text) of every line; an unreadable file is a ValueError naming file:line."""
    ln = 0
    try:
        with _open_text(path, encoding) as f:
            for ln, line in enumerate(f, 1):
                yield ln, line
    except _READ_ERRORS as e:
        raise _read_error(path, e, ln + 1) from None


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sources(*paths):
    return [{"file": os.path.basename(p), "sha256": _sha256(p)} for p in paths]


# ------------------------------------------------------------------------------------------------ Amazon
def read_sequences(path):
    """``user item item ...`` lines (oldest first) -> list of (user, [items], line number)."""
    out, seen = [], {}
    for ln, line in _lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise ValueError(f"{path}:{ln}: expected 'user_id item_id item_id ...', got {line.strip()!r}")
        if parts[0] in seen:
            raise ValueError(f"{path}:{ln}: user {parts[0]!r} already has a sequence (line {seen[parts[0]]}); "
                             f"one line per user")
        seen[parts[0]] = ln
        out.append((parts[0], parts[1:], ln))
    if not out:
        raise ValueError(f"{path}: empty file (no user sequences)")
    return out


def read_attributes(path):
    """(item -> leaf category, item -> (brand or None, [categories])) from an item->attribute-ids JSON object
    (S3-Rec's format: the brand first when the item has one, then every category level below the root; the
    leaf category last). The first id is a brand when it is never a later element of any item's list."""
    try:
        with _open_text(path) as f:
            attrs = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except _READ_ERRORS as e:
        raise _read_error(path, e) from None
    if not isinstance(attrs, dict) or not attrs:
        raise ValueError(f"{path}: expected a non-empty JSON object item -> [attribute ids]")
    leaf = {}
    for item, a in attrs.items():
        if not isinstance(a, list) or not a or not all(isinstance(x, (int, str)) and not isinstance(x, bool)
                                                       for x in a):
            raise ValueError(f"{path}: item {item!r}: expected a non-empty list of attribute ids (numbers or "
                             f"strings), got {str(a)[:60]}")
        leaf[str(item)] = str(a[-1])
    later = {str(x) for a in attrs.values() for x in a[1:]}
    extra = {}
    for item, a in attrs.items():
        a = [str(x) for x in a]
        brand = a[0] if a[0] not in later else None
        extra[str(item)] = (brand, list(dict.fromkeys(a[1:] if brand is not None else a)))
    return leaf, extra


def _parse_record(line, path, ln):
    try:
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            r = ast.literal_eval(line)  # some Amazon meta files are Python literals
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"{path}:{ln}: expected a JSON object or Python dict literal (one per line)") from None
    if not isinstance(r, dict):
        raise ValueError(f"{path}:{ln}: expected a JSON object or Python dict literal, got {type(r).__name__}")
    return r


def _records(path):
    """(line number, dict) for every non-blank line of a JSON-lines or Python-literal-lines file."""
    for ln, line in _lines(path):
        if line.strip():
            yield ln, _parse_record(line, path, ln)


def read_reviews(path):
    """Original Amazon reviews (reviewerID, asin, unixReviewTime) -> user sequences ordered by (time, file order).
    A review repeated exactly (same user, item and time) is kept once; returns (sequences, dropped copies)."""
    dropped = 0
    users, items, times, lines, seen = [], [], [], [], set()
    for ln, r in _records(path):
        t = r.get("unixReviewTime")
        if ("reviewerID" not in r or "asin" not in r or isinstance(t, bool) or not isinstance(t, int)
                or not 0 <= t < 2**62):
            raise ValueError(f"{path}:{ln}: expected fields reviewerID, asin and an integer unixReviewTime "
                             f"(seconds, not negative), got unixReviewTime {str(t)[:30]}")
        key = (str(r["reviewerID"]), str(r["asin"]), t)
        if key in seen:  # the same review twice: it would be its own history; dropped and counted
            dropped += 1
            continue
        seen.add(key)
        users.append(key[0])
        items.append(key[1])
        times.append(t)
        lines.append(ln)
    if not users:
        raise ValueError(f"{path}: empty file (no reviews)")
    uid, u = np.unique(np.array(users), return_inverse=True)
    order = np.lexsort((np.arange(len(users)), np.array(times), u))
    seqs = []
    items_arr, lines_arr = np.array(items), np.array(lines)
    bounds = np.flatnonzero(np.diff(u[order])) + 1
    for grp in np.split(order, bounds):
        seqs.append((uid[u[grp[0]]], items_arr[grp].tolist(), int(lines_arr[grp[0]])))
    return seqs, dropped


def read_meta(path):
    """Original Amazon metadata (asin, categories, brand) -> (asin -> leaf category ``categories[-1][-1]``,
    asin -> (brand or None, [every category below the root of each path])."""
    leaf, extra = {}, {}
    for _, r in _records(path):
        try:
            leaf[str(r["asin"])] = str(r["categories"][-1][-1])
            cats = [str(c) for p in r["categories"] for c in p[1:]]
        except (KeyError, IndexError, TypeError):
            continue  # an item without categories: an error only if a review uses it
        brand = r.get("brand")
        extra[str(r["asin"])] = (str(brand).strip() or None if brand is not None else None, list(dict.fromkeys(cats)))
    if not leaf:
        raise ValueError(f"{path}: no item with categories")
    return leaf, extra


NO_BRAND = "(no brand)"


def _amazon_fields(item_ids, extra):
    """The item fields brand (one-hot; items without one share the value NO_BRAND) and categories (multi-hot)."""
    items = item_ids.tolist()
    brands = sorted({extra[it][0] or NO_BRAND for it in items})
    bi = {b: i for i, b in enumerate(brands)}
    cats = sorted({c for it in items for c in extra[it][1]})
    ci = {c: i for i, c in enumerate(cats)}
    fields = [{"name": "brand", "kind": "item", "vocab": len(brands), "multi_hot": False},
              {"name": "categories", "kind": "item", "vocab": max(1, len(cats)), "multi_hot": True}]
    attrs = {"brand": Bag.one_hot(np.array([bi[extra[it][0] or NO_BRAND] for it in items], np.int64)),
             "categories": Bag.from_sets([[ci[c] for c in extra[it][1]] for it in items])}
    return fields, attrs, {"brand": brands, "categories": cats or ["(none)"]}


def build_amazon(seqs, leaf, seq_path, seed=1234, max_history=None, min_len=3, extra=None):
    """Dataset from user sequences [(user, [items], line)] and item -> leaf category; ``extra`` (item ->
    (brand or None, [categories])) adds the item fields brand and categories."""
    kept = [(u, items, ln) for u, items, ln in seqs if len(items) >= min_len]
    skipped = len(seqs) - len(kept)
    if not kept:
        raise ValueError(f"{seq_path}: no user has {min_len} or more behaviours")
    for u, items, ln in kept:
        for it in items:
            if it not in leaf:
                raise ValueError(f"{seq_path}:{ln}: item {it!r} has no attribute/category entry")
    item_ids = np.unique(np.concatenate([np.array(items) for _, items, _ in kept]))
    item_index = {it: i for i, it in enumerate(item_ids.tolist())}
    cate_names = np.unique(np.array([leaf[it] for it in item_ids.tolist()]))
    cate_index = {c: i for i, c in enumerate(cate_names.tolist())}
    item_cate = np.array([cate_index[leaf[it]] for it in item_ids.tolist()], dtype=np.int64)
    lengths = np.array([len(items) for _, items, _ in kept], dtype=np.int64)
    offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    seq_goods = np.array([item_index[it] for _, items, _ in kept for it in items], dtype=np.int64)
    seq_cates = item_cate[seq_goods]
    I, U = len(item_ids), len(kept)
    rng = np.random.default_rng(seed)

    def steps(which):
        if which == "train":
            count = np.maximum(lengths - 3, 0)
            k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + 1
            users = np.repeat(np.arange(U), count)
        else:
            users = np.arange(U)
            k = lengths - (2 if which == "valid" else 1)
        return users, k

    seen = np.unique(np.arange(U).repeat(lengths) * I + seq_goods)
    distinct = np.bincount(seen // I, minlength=U)
    if np.any(distinct >= I):
        u = int(np.flatnonzero(distinct >= I)[0])
        raise ValueError(f"{seq_path}:{kept[u][2]}: user {str(kept[u][0])!r} has reviewed every item, so no negative "
                         "can be drawn for them")
    splits = {}
    for name in ("train", "valid", "test"):
        users, k = steps(name)
        pos = seq_goods[offsets[users] + k]
        neg = rng.integers(0, I, users.shape[0])
        for _ in range(10000):
            bad = np.isin(users * I + neg, seen)
            if not bad.any():
                break
            neg[bad] = rng.integers(0, I, int(bad.sum()))
        else:
            raise ValueError("negative sampling: a user has reviewed (almost) every item")
        S = users.shape[0]
        u2, e2 = np.repeat(users, 2), np.repeat(k, 2)
        cand = np.empty(2 * S, dtype=np.int64)
        cand[0::2], cand[1::2] = pos, neg
        labels = np.tile([1.0, 0.0], S)
        splits[name] = Split(u2, e2, cand, item_cate[cand], labels)
    desc = {"kind": "prepared", "protocol": "amazon"}
    fields, attrs, vocab = _amazon_fields(item_ids, extra) if extra is not None else ([], {}, {})
    vocab.update(goods=item_ids.tolist(), cates=cate_names.tolist(), users=[str(u) for u, _, _ in kept])
    ds = Dataset(seq_goods, seq_cates, offsets, I, len(cate_names), splits, max_history, desc, fields=fields,
                 item_attrs=attrs, vocab=vocab)
    return ds, {"users_skipped_fewer_than_3": skipped, "users": U, "items": I, "categories": len(cate_names),
                "fields": [f["name"] for f in fields]}


def prepare_amazon(out, sequences=None, attributes=None, reviews=None, meta=None, seed=1234, max_history=None):
    """``minidin prepare amazon``: either (sequences, attributes) or (reviews, meta)."""
    check_output_dir(out, "dataset")  # before any input is read: refuse a folder minidin may not write into
    dropped = 0
    if sequences and attributes and not (reviews or meta):
        seqs, (leaf, extra), paths, fmt = read_sequences(sequences), read_attributes(attributes), \
            (sequences, attributes), "sequences"
        seq_path = sequences
    elif reviews and meta and not (sequences or attributes):
        (seqs, dropped), (leaf, extra), paths, fmt = read_reviews(reviews), read_meta(meta), (reviews, meta), \
            "reviews"
        seq_path = reviews
    else:
        raise ValueError("amazon: give either --sequences and --attributes, or --reviews and --meta")
    ds, stats = build_amazon(seqs, leaf, seq_path, seed=seed, max_history=max_history, extra=extra)
    stats["duplicate_reviews_dropped"] = dropped
    info = _meta_common(ds, stats, paths, dict(format=fmt, seed=seed, max_history=max_history))
    ds.description = dict(ds.description, path=os.path.abspath(out))
    ds.save(out, meta=info)
    return info


# ------------------------------------------------------------------------------------------------ MovieLens
def read_ratings(path):
    """(user, movie, rating, timestamp, dropped) from ratings.csv, ratings.dat (::) or u.data (tab).

    Streams the file through ``np.loadtxt`` (no copy of the whole text in memory), so an ml-20m-sized
    file parses in well under the memory of its arrays plus a chunk. Every value is checked, and an error
    names ``file:line`` (blank lines and the header counted): ids and timestamps must be whole numbers
    ≥ 0, ratings numbers in [0, 5]; ``#`` is not a comment. A rating repeated exactly (same user, movie and
    timestamp) is kept once (a copy would be in its own sample's history); ``dropped`` counts the copies.
    """
    import re

    name = os.path.basename(str(path)).removesuffix(".gz")
    enc = "latin-1" if name == "u.data" else "utf-8"
    blank = []  # line numbers of blank lines, which loadtxt never sees: rows map back to lines through them
    try:
        with _open_text(path, enc) as f:
            first = f.readline()
            if not first.strip():
                raise ValueError(f"{path}: empty file (no ratings)")
            header = 0
            if name.endswith(".dat"):
                delim, fix = ",", (lambda line: line.replace("::", ","))
            elif name == "u.data" or "\t" in first:
                delim, fix = "\t", (lambda line: line)
            else:
                delim, fix = ",", (lambda line: line)
                header = 1 if first.lstrip().lower().startswith("userid") else 0

            def lines():
                if not header:
                    yield fix(first)
                for ln, line in enumerate(f, 2):
                    if not line.strip():
                        blank.append(ln)
                        continue
                    yield fix(line)

            def line_of(row):
                ln = row + 1 + header
                for b in blank:
                    if b <= ln:
                        ln += 1
                return ln

            try:
                with warnings.catch_warnings():  # a header and nothing else: "empty file" below says it
                    warnings.simplefilter("ignore", UserWarning)
                    arr = np.loadtxt(lines(), delimiter=delim, usecols=(0, 1, 2, 3), ndmin=2, dtype=np.float64,
                                     comments=None)
            except ValueError as e:
                msg = str(e).splitlines()[0]
                m = re.search(r"row (\d+)", msg)
                where = f":{line_of(int(m.group(1)))}" if m else ""
                raise ValueError(f"{path}{where}: expected user, movie, rating, timestamp ({msg})") from None
    except _READ_ERRORS as e:
        raise _read_error(path, e) from None
    if arr.shape[0] == 0:
        raise ValueError(f"{path}: empty file (no ratings)")
    checks = ((0, "user id", lambda v: np.isfinite(v) & (v >= 0) & (v == np.floor(v)) & (v < 2.0**62)),
              (1, "movie id", lambda v: np.isfinite(v) & (v >= 0) & (v == np.floor(v)) & (v < 2.0**62)),
              (2, "rating", lambda v: np.isfinite(v) & (v >= 0) & (v <= 5)),
              (3, "timestamp", lambda v: np.isfinite(v) & (v >= 0) & (v == np.floor(v)) & (v < 2.0**62)))
    for col, what, ok in checks:
        bad = ~ok(arr[:, col])
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            rule = "a number in [0, 5]" if col == 2 else "a whole number >= 0"
            raise ValueError(f"{path}:{line_of(r)}: {what} must be {rule}, got {arr[r, col]:g}")
    user, movie, ts = arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 3].astype(np.int64)
    _, first_rows = np.unique(np.stack([user, movie, ts]), axis=1, return_index=True)
    keep = np.zeros(arr.shape[0], dtype=bool)
    keep[first_rows] = True  # the first copy of each (user, movie, timestamp), in file order
    return user[keep], movie[keep], arr[keep, 2], ts[keep], int(arr.shape[0] - keep.sum())


def read_movies(path):
    """movie id -> its genres (a list, the first listed first), from movies.csv, movies.dat (::) or u.item
    (|, genre flags); a movie listed twice is an error naming both lines."""
    name = os.path.basename(str(path)).removesuffix(".gz")
    genre, where = {}, {}

    def add(mid, g, ln):
        if mid in genre:
            raise ValueError(f"{path}:{ln}: movie {mid} is listed twice (first at line {where[mid]})")
        genre[mid], where[mid] = g, ln

    try:
        _read_movies(path, name, add)
    except _READ_ERRORS as e:
        raise _read_error(path, e) from None
    if not genre:
        raise ValueError(f"{path}: empty file (no movies)")
    return genre


def _read_movies(path, name, add):
    import csv

    if name == "u.item":
        with _open_text(path, "latin-1") as f:
            for ln, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rstrip("\n").split("|")
                if len(parts) < 5 + len(MOVIELENS_100K_GENRES) or not parts[0].strip().isdigit():
                    raise ValueError(f"{path}:{ln}: expected 'id|title|date|video date|url|19 genre flags'")
                flags = parts[-len(MOVIELENS_100K_GENRES):]
                add(int(parts[0]), [g for g, x in zip(MOVIELENS_100K_GENRES, flags) if x.strip() == "1"]
                    or ["unknown"], ln)
    elif name.endswith(".dat"):
        with _open_text(path, "latin-1") as f:
            for ln, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rstrip("\n").split("::")
                if len(parts) != 3 or not parts[0].strip().isdigit():
                    raise ValueError(f"{path}:{ln}: expected 'MovieID::Title::Genres'")
                add(int(parts[0]), _genres(parts[2]), ln)
    else:
        with _open_text(path) as f:
            reader = csv.reader(f)
            for ln, row in enumerate(reader, 1):
                if not row:
                    continue
                if ln == 1 and row[0].strip().lower() == "movieid":
                    continue
                if len(row) != 3 or not row[0].strip().isdigit():
                    raise ValueError(f"{path}:{reader.line_num}: expected 'movieId,title,genres'")
                add(int(row[0]), _genres(row[2]), reader.line_num)


def _genres(cell):
    """'Action|Crime' -> ['Action', 'Crime']; no genre -> ['(no genres listed)'] (ml-latest's own spelling)."""
    return [g.strip() for g in cell.split("|") if g.strip()] or ["(no genres listed)"]


ML_1M_AGES = (1, 18, 25, 35, 45, 50, 56)  # ml-1m's age buckets: under 18, 18-24, ..., 56+


def read_users(path):
    """user id -> {"gender", "age", "occupation"} from u.user (ml-100k: id|age|gender|occupation|zip, the age
    put into ml-1m's buckets) or users.dat (ml-1m: UserID::Gender::Age::Occupation::Zip); ValueError names
    file:line."""
    name = os.path.basename(str(path)).removesuffix(".gz")
    dat = name.endswith(".dat")
    out = {}
    try:
        with _open_text(path, "latin-1") as f:
            for ln, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = [p.strip() for p in line.rstrip("\n").split("::" if dat else "|")]
                if len(parts) == 5:
                    uid, gender, age, occ = (parts[0], parts[1], parts[2], parts[3]) if dat else \
                        (parts[0], parts[2], parts[1], parts[3])
                if len(parts) != 5 or not uid.isdigit() or not age.isdigit() or gender not in ("M", "F"):
                    raise ValueError(f"{path}:{ln}: expected "
                                     + ("'UserID::Gender::Age::Occupation::Zip-code'" if dat else
                                        "'user id|age|gender|occupation|zip code'") + " with gender M or F")
                if int(uid) in out:
                    raise ValueError(f"{path}:{ln}: user {uid} is listed twice")
                bucket = max([b for b in ML_1M_AGES if b <= int(age)] or [1])
                out[int(uid)] = {"gender": gender, "age": str(bucket), "occupation": occ}
    except _READ_ERRORS as e:
        raise _read_error(path, e) from None
    if not out:
        raise ValueError(f"{path}: empty file (no users)")
    return out


def prepare_movielens(out, ratings, movies, seed=1234, max_history=100, test_frac=0.28, valid_frac=0.10,
                      users=None):
    """``minidin prepare movielens``: the paper's MovieLens protocol, split by user; ``users`` (u.user or
    users.dat) adds the profile fields."""
    check_output_dir(out, "dataset")  # before any input is read: refuse a folder minidin may not write into
    user, movie, rating, ts, dropped = read_ratings(ratings)
    genres = read_movies(movies)
    genre = {m: g[0] for m, g in genres.items()}
    profile = read_users(users) if users else None
    if profile is not None:
        missing = ~np.isin(user, np.array(sorted(profile), dtype=np.int64))
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise ValueError(f"{ratings}: rating {i + 1} is by user {user[i]}, whom {os.path.basename(users)} does "
                             f"not list")
    known = np.array(sorted(genre), dtype=np.int64)
    missing = ~np.isin(movie, known)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise ValueError(f"{ratings}: rating {i + 1} is of movie {movie[i]}, which {os.path.basename(movies)} "
                         f"does not list")
    movie_ids, goods = np.unique(movie, return_inverse=True)
    genre_names = np.unique(np.array([genre[m] for m in movie_ids.tolist()]))
    gidx = {g: i for i, g in enumerate(genre_names.tolist())}
    movie_cate = np.array([gidx[genre[m]] for m in movie_ids.tolist()], dtype=np.int64)
    user_ids, u = np.unique(user, return_inverse=True)
    order = np.lexsort((np.arange(user.shape[0]), ts, u))  # by user, then time, then file order
    u, goods, rating = u[order], goods[order], rating[order]
    U = user_ids.shape[0]
    lengths = np.bincount(u, minlength=U).astype(np.int64)
    offsets = np.zeros(U + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    pos_in_user = np.arange(u.shape[0]) - offsets[u]  # history end of every rating's sample
    rng = np.random.default_rng(seed)
    perm = rng.permutation(U)
    n_test = int(round(test_frac * U))
    n_valid = int(round(valid_frac * U))
    which = np.empty(U, dtype=np.int64)
    which[perm[:n_test]] = 2
    which[perm[n_test:n_test + n_valid]] = 1
    which[perm[n_test + n_valid:]] = 0
    labels = (rating >= 4.0).astype(np.float64)
    splits = {}
    for k, name in enumerate(("train", "valid", "test")):
        m = which[u] == k
        splits[name] = Split(u[m], pos_in_user[m], goods[m], movie_cate[goods[m]], labels[m])
    # every genre of a movie: the multi-hot item field "genres"; the profile: one-hot user fields
    all_genres = sorted({g for m in movie_ids.tolist() for g in genres[m]})
    gi = {g: i for i, g in enumerate(all_genres)}
    fields = [{"name": "genres", "kind": "item", "vocab": len(all_genres), "multi_hot": True}]
    item_attrs = {"genres": Bag.from_sets([[gi[g] for g in genres[m]] for m in movie_ids.tolist()])}
    vocab = {"goods": [str(m) for m in movie_ids.tolist()], "users": [str(x) for x in user_ids.tolist()],
             "cates": genre_names.tolist(), "genres": all_genres}
    user_attrs = {}
    if profile is not None:
        for key in ("gender", "age", "occupation"):
            values = sorted({profile[x][key] for x in user_ids.tolist()}, key=lambda v: (len(v), v))
            index = {v: i for i, v in enumerate(values)}
            fields.append({"name": key, "kind": "user", "vocab": len(values), "multi_hot": False})
            user_attrs[key] = Bag.one_hot(np.array([index[profile[x][key]] for x in user_ids.tolist()], np.int64))
            vocab[key] = values
    ds = Dataset(goods.astype(np.int64), movie_cate[goods], offsets, movie_ids.shape[0], genre_names.shape[0],
                 splits, max_history, {"kind": "prepared", "protocol": "movielens", "path": os.path.abspath(out)},
                 fields=fields, item_attrs=item_attrs, user_attrs=user_attrs, vocab=vocab)
    stats = {"users": int(U), "items": int(movie_ids.shape[0]), "categories": int(genre_names.shape[0]),
             "ratings": int(u.shape[0]), "category": "first listed genre", "duplicate_ratings_dropped": dropped,
             "fields": [f["name"] for f in fields]}
    info = _meta_common(ds, stats, (ratings, movies) + ((users,) if users else ()),
                        dict(seed=seed, max_history=max_history, test_frac=test_frac, valid_frac=valid_frac,
                             click="rating >= 4.0"))
    ds.save(out, meta=info)
    return info


def _meta_common(ds, stats, paths, options):
    counts = {name: {"samples": len(s), "positives": int(s.labels.sum()),
                     "positive_rate": float(s.labels.mean()) if len(s) else None,
                     "users": int(np.unique(s.users).shape[0])} for name, s in ds.splits.items()}
    return {"n_goods": ds.n_goods, "n_cates": ds.n_cates, "n_users": ds.n_users, "counts": counts,
            "stats": stats, "sources": _sources(*paths), "options": options}
