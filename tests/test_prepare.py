"""minidin prepare: every input format on tiny hand-written fixtures, and the protocols' properties."""
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from minidin.cli import main
from minidin.data import Dataset
from minidin.data.prepare import prepare_amazon, prepare_movielens

FIX = Path(__file__).parent / "fixtures"
# The MovieLens loader picks the format from the file name (ratings.csv, ratings.dat, u.data, ...). The
# hand-written fixtures are committed under other names, so that nothing in the repository looks like the real
# files, and copied to their canonical names for each test.
ML_FIXTURES = {"ratings.csv": "csv_ratings", "movies.csv": "csv_movies", "ratings.dat": "dat_ratings",
               "movies.dat": "dat_movies", "u.data": "100k_ratings", "u.item": "100k_movies", "u.user": "100k_users",
               "users.dat": "dat_users"}


@pytest.fixture
def ml(tmp_path):
    """A directory holding every MovieLens fixture under its canonical file name."""
    d = tmp_path / "movielens-fixtures"
    d.mkdir()
    for name, stem in ML_FIXTURES.items():
        shutil.copyfile(FIX / "movielens" / f"{stem}.fixture", d / name)
    return d
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def amazon_seq(out, **kw):
    return prepare_amazon(out, sequences=FIX / "amazon_seq.txt", attributes=FIX / "amazon_attr.json", **kw)


def user_items(ds, u):
    return ds.seq_goods[ds.seq_offsets[u]:ds.seq_offsets[u + 1]]


def test_amazon_sequence_protocol(tmp_path):
    info = amazon_seq(tmp_path / "a")
    ds = Dataset.load(tmp_path / "a")
    assert info["stats"]["users_skipped_fewer_than_3"] == 1  # user 3 has 2 behaviours
    assert ds.n_users == 4 and ds.n_goods == 7
    lengths = np.diff(ds.seq_offsets)
    assert sorted(lengths.tolist()) == [3, 3, 4, 6]
    for name, s in ds.splits.items():
        assert s.labels.tolist() == [1.0, 0.0] * (len(s) // 2)  # one negative per positive, same history
        assert np.array_equal(s.users[0::2], s.users[1::2]) and np.array_equal(s.ends[0::2], s.ends[1::2])
        for i in range(len(s)):
            items = user_items(ds, s.users[i])
            if s.labels[i] == 1:
                assert s.cand_goods[i] == items[s.ends[i]]  # the next behaviour
            else:
                assert s.cand_goods[i] not in items  # negatives never come from the user's history
        n = lengths[s.users]
        if name == "test":
            assert np.all(s.ends == n - 1)
        elif name == "valid":
            assert np.all(s.ends == n - 2)
        else:
            assert np.all((s.ends >= 1) & (s.ends <= n - 3))
    # the last step appears only in test
    for name in ("train", "valid"):
        s = ds.splits[name]
        assert not np.any(s.ends == lengths[s.users] - 1)
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    for name, s in ds.splits.items():
        assert meta["counts"][name]["samples"] == len(s)
        assert meta["counts"][name]["positives"] == int(s.labels.sum())
    assert [x["file"] for x in meta["stats"] and meta["sources"]] == ["amazon_seq.txt", "amazon_attr.json"]
    assert len(meta["sources"][0]["sha256"]) == 64


def test_amazon_leaf_category_is_the_last_attribute(tmp_path):
    amazon_seq(tmp_path / "a")
    ds = Dataset.load(tmp_path / "a")
    attrs = json.loads((FIX / "amazon_attr.json").read_text())
    used = sorted({int(x) for line in (FIX / "amazon_seq.txt").read_text().split("\n") if line
                   for x in line.split()[1:]})
    leafs = [attrs[str(i)][-1] for i in used]
    # goods ids are the sorted original ids; categories the sorted leaf ids
    remap = {c: k for k, c in enumerate(sorted(set(leafs), key=str))}
    cate_of_good = np.zeros(ds.n_goods, int)
    cate_of_good[ds.seq_goods] = ds.seq_cates
    assert cate_of_good.tolist() == [remap[c] for c in leafs]


def test_fixed_seed_gives_identical_output(tmp_path):
    amazon_seq(tmp_path / "a", seed=7)
    amazon_seq(tmp_path / "b", seed=7)
    amazon_seq(tmp_path / "c", seed=8)
    a, b, c = (np.load(tmp_path / x / "data.npz") for x in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a.files)
    assert not all(np.array_equal(a[k], c[k]) for k in a.files)


def test_amazon_original_json_and_python_literal_files(tmp_path):
    prepare_amazon(tmp_path / "r", reviews=FIX / "reviews_5.json", meta=FIX / "meta.json")
    ds = Dataset.load(tmp_path / "r")
    assert ds.n_users == 2  # A3 has one review: skipped
    # A1 by (time, file order): B002@50, B001@100, B003@100, B004@200; A2: B001, B003, B004, B005
    names = ["B001", "B002", "B003", "B004", "B005"]
    seqs = sorted([names[g] for g in user_items(ds, u)] for u in range(2))
    assert seqs == [["B001", "B003", "B004", "B005"], ["B002", "B001", "B003", "B004"]]
    assert ds.n_cates == 3  # Face, Tools (the last path's leaf), Eyes
    # gz input
    gz = tmp_path / "reviews_5.json.gz"
    with gzip.open(gz, "wb") as f:
        f.write((FIX / "reviews_5.json").read_bytes())
    prepare_amazon(tmp_path / "g", reviews=gz, meta=FIX / "meta.json")
    assert np.array_equal(np.load(tmp_path / "g" / "data.npz")["seq_goods"], ds.seq_goods)


@pytest.mark.parametrize("ratings,movies", [("ratings.csv", "movies.csv"), ("ratings.dat", "movies.dat"),
                                            ("u.data", "u.item")])
def test_movielens_formats_and_protocol(tmp_path, ml, ratings, movies):
    info = prepare_movielens(tmp_path / "m", ml / ratings, ml / movies, seed=3)
    ds = Dataset.load(tmp_path / "m")
    raw = {"ratings.csv": lambda: np.loadtxt(ml / ratings, delimiter=",", skiprows=1),
           "ratings.dat": lambda: np.loadtxt([x.replace("::", ",") for x in (ml / ratings).read_text().splitlines()],
                                             delimiter=","),
           "u.data": lambda: np.loadtxt(ml / ratings, delimiter="\t")}[ratings]()
    total = sum(len(s) for s in ds.splits.values())
    assert total == raw.shape[0] == info["stats"]["ratings"]  # every rating is a sample, first ones too
    split_users = [set(s.users.tolist()) for s in ds.splits.values()]
    assert sum(len(x) for x in split_users) == len(set().union(*split_users))  # split by user
    for s in ds.splits.values():
        for i in range(len(s)):
            items = user_items(ds, s.users[i])
            assert s.cand_goods[i] == items[s.ends[i]]  # history = everything rated earlier
    # labels follow the threshold: rating >= 4 (4.5 is a click, 3.5 is not)
    assert sum(int(s.labels.sum()) for s in ds.splits.values()) == int((raw[:, 2] >= 4).sum())
    assert ds.max_history == 100


def test_amazon_keeps_brand_and_every_category(tmp_path):
    amazon_seq(tmp_path / "s")
    ds = Dataset.load(tmp_path / "s")
    assert [(f["name"], f["multi_hot"]) for f in ds.fields] == [("brand", False), ("categories", True)]
    goods = {g: i for i, g in enumerate(ds.vocab["goods"])}

    def of(item):
        b, c = ds.item_attrs["brand"], ds.item_attrs["categories"]
        i = goods[item]
        return ds.vocab["brand"][b.ids[i]], [ds.vocab["categories"][j] for j in c.ids[c.offsets[i]:c.offsets[i + 1]]]

    # "10": [1, 2, 3]: 1 never follows another id, so it is the brand; "14": [2, 5] has no brand
    assert of("10") == ("1", ["2", "3"])
    assert of("14") == ("(no brand)", ["2", "5"])
    assert ds.vocab["cates"][ds.seq_cates[ds.seq_goods.tolist().index(goods["10"])]] == "3"  # the leaf, as before
    prepare_amazon(tmp_path / "r", reviews=FIX / "reviews_5.json", meta=FIX / "meta.json")
    ds = Dataset.load(tmp_path / "r")
    goods = {g: i for i, g in enumerate(ds.vocab["goods"])}
    assert of("B001") == ("Rosa", ["Skin Care", "Face"])
    assert of("B002") == ("(no brand)", ["Hair Care", "Tools"])


@pytest.mark.parametrize("ratings,movies,users", [("ratings.dat", "movies.dat", "users.dat"),
                                                  ("u.data", "u.item", "u.user")])
def test_movielens_keeps_every_genre_and_the_profile(tmp_path, ml, ratings, movies, users):
    prepare_movielens(tmp_path / "m", ml / ratings, ml / movies, users=ml / users)
    ds = Dataset.load(tmp_path / "m")
    assert [(f["name"], f["kind"], f["multi_hot"]) for f in ds.fields] == [
        ("genres", "item", True), ("gender", "user", False), ("age", "user", False), ("occupation", "user", False)]
    goods = {m: i for i, m in enumerate(ds.vocab["goods"])}
    g = ds.item_attrs["genres"]
    toy = goods["1"]
    want = ["Animation", "Children's"] if ratings == "ratings.dat" else ["Animation", "Children's", "Comedy"]
    assert [ds.vocab["genres"][j] for j in g.ids[g.offsets[toy]:g.offsets[toy + 1]]] == want  # all, not the first
    assert ds.vocab["cates"][ds.seq_cates[ds.seq_goods.tolist().index(toy)]] == want[0]  # the category: the first
    prof = {k: ds.user_attrs[k].ids for k in ("gender", "age", "occupation")}
    first = ds.vocab["users"].index("1")
    got = {k: ds.vocab[k][prof[k][first]] for k in prof}
    assert got == ({"gender": "F", "age": "1", "occupation": "10"} if users == "users.dat" else
                   {"gender": "M", "age": "18", "occupation": "technician"})  # ml-100k's 24 is ml-1m's 18-24


def test_movielens_user_file_errors(tmp_path, ml):
    (ml / "u.user").write_text("1|24|M|technician|85711\n2|x|F|other|94043\n")
    with pytest.raises(ValueError, match=r"u.user:2: expected 'user id\|age\|gender\|occupation\|zip code'"):
        prepare_movielens(tmp_path / "m", ml / "u.data", ml / "u.item", users=ml / "u.user")
    (ml / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    with pytest.raises(ValueError, match=r"rating \d+ is by user 3, whom u.user does not list"):
        prepare_movielens(tmp_path / "m", ml / "u.data", ml / "u.item", users=ml / "u.user")
    assert not (tmp_path / "m").exists()


def test_movielens_order_is_time_then_file(tmp_path, ml):
    prepare_movielens(tmp_path / "m", ml / "ratings.csv", ml / "movies.csv")
    ds = Dataset.load(tmp_path / "m")
    # user 1 rated movie 2 at t=90, then movies 1 and 3 both at t=100 (file order: 1 before 3)
    u1 = [i for i in range(ds.n_users) if len(user_items(ds, i)) == 3 and user_items(ds, i)[0] == 1][0]
    assert user_items(ds, u1).tolist() == [1, 0, 2]
    # first genre: movie 1 "Adventure|Animation" -> Adventure
    cate_names = sorted(["Adventure", "Action", "Comedy"])
    assert ds.seq_cates[ds.seq_goods == 0][0] == cate_names.index("Adventure")


H = "userId,movieId,rating,timestamp\n"


@pytest.mark.parametrize("content,match", [
    (H + "1,1,4.0,100\n1,x,3,5\n", r"ratings.csv:3"),
    ("", "empty file"),
    (H + "1,1,4.0,100\n1,2,nan,5\n", r"ratings.csv:3: rating must be a number in \[0, 5\], got nan"),
    (H + "1,1,4.0,100\n1,2,-1,5\n", r"ratings.csv:3: rating must be"),
    (H + "1,1,4.0,100\n1,2,7,5\n", r"ratings.csv:3: rating must be"),
    (H + "1,1.5,4.0,100\n", r"ratings.csv:2: movie id must be a whole number"),
    (H + "1,inf,4.0,100\n", r"ratings.csv:2: movie id"),
    (H + "1,1,4.0,nan\n", r"ratings.csv:2: timestamp must be"),
    (H + "-3,1,4.0,100\n", r"ratings.csv:2: user id must be"),
    (H + "1,1,4.0,100 # a comment\n", r"ratings.csv:2"),  # '#' is not a comment: the row is an error
    (H + "1,1,4.0,100\n\n\n1,2,x,5\n", r"ratings.csv:5"),  # line numbers count blank lines
])
def test_bad_ratings_files(tmp_path, ml, content, match):
    p = tmp_path / "ratings.csv"
    p.write_text(content)
    with pytest.raises(ValueError, match=match):
        prepare_movielens(tmp_path / "m", p, ml / "movies.csv")
    assert not (tmp_path / "m").exists()


def test_duplicate_ratings_are_dropped_and_counted(tmp_path, ml, capsys):
    """The same (user, movie, timestamp) twice would put a sample's candidate into its own history."""
    p = tmp_path / "ratings.csv"
    p.write_text((ml / "ratings.csv").read_text() + "1,2,4.5,90\n1,2,4.5,90\n")
    clean = prepare_movielens(tmp_path / "a", ml / "ratings.csv", ml / "movies.csv")
    info = prepare_movielens(tmp_path / "b", p, ml / "movies.csv")
    assert info["stats"]["duplicate_ratings_dropped"] >= 2
    assert info["stats"]["ratings"] == clean["stats"]["ratings"]
    m = tmp_path / "movies.csv"
    m.write_text((ml / "movies.csv").read_text() + "1,Again,Comedy\n")
    with pytest.raises(ValueError, match=r"movies.csv:\d+: movie 1 is listed twice \(first at line 2\)"):
        prepare_movielens(tmp_path / "c", ml / "ratings.csv", m)


def test_unreadable_files_are_one_clear_error(tmp_path, ml):
    import gzip as gz

    bad = tmp_path / "ratings.csv"
    bad.write_bytes(b"userId,movieId,rating,timestamp\n1,1,4.0,100\n\xff\xfe,2,3,4\n")
    with pytest.raises(ValueError, match="not valid utf-8 text"):
        prepare_movielens(tmp_path / "m", bad, ml / "movies.csv")
    good = gz.compress((ml / "ratings.csv").read_bytes())
    trunc = tmp_path / "ratings.csv.gz"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        prepare_movielens(tmp_path / "m", trunc, ml / "movies.csv")
    trunc.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        prepare_movielens(tmp_path / "m", trunc, ml / "movies.csv")
    deep = tmp_path / "reviews.json"
    deep.write_text("[" * 100000 + "]" * 100000 + "\n")
    with pytest.raises(ValueError, match=r"reviews.json:1: expected a JSON object"):
        prepare_amazon(tmp_path / "a", reviews=deep, meta=FIX / "meta.json")
    assert not (tmp_path / "m").exists() and not (tmp_path / "a").exists()


@pytest.mark.parametrize("line,match", [
    ('{"reviewerID": "A", "asin": "B001", "unixReviewTime": true}', "integer unixReviewTime"),
    ('{"reviewerID": "A", "asin": "B001", "unixReviewTime": 1.5}', "integer unixReviewTime"),
    ('{"reviewerID": "A", "asin": "B001", "unixReviewTime": "12"}', "integer unixReviewTime"),
    ('{"reviewerID": "A", "asin": "B001", "unixReviewTime": 100000000000000000000000}', "integer unixReviewTime"),
    ('[1, 2]', "got list"),
])
def test_bad_review_values_name_the_line(tmp_path, line, match):
    p = tmp_path / "r.json"
    p.write_text('{"reviewerID": "A", "asin": "B001", "unixReviewTime": 1}\n' + line + "\n")
    with pytest.raises(ValueError, match=r"r.json:2: .*" + match):
        prepare_amazon(tmp_path / "a", reviews=p, meta=FIX / "meta.json")


def test_amazon_sequences_and_attributes_checks(tmp_path):
    seq = tmp_path / "s.txt"
    seq.write_text("1 10 11 12\n2 10 11\n1 12 10\n")
    with pytest.raises(ValueError, match=r"s.txt:3: user '1' already has a sequence \(line 1\)"):
        prepare_amazon(tmp_path / "a", sequences=seq, attributes=FIX / "amazon_attr.json")
    attrs = tmp_path / "attr.json"
    attrs.write_text('{"10": [1, [2, 3]], "11": [1], "12": [2]}')
    seq.write_text("1 10 11 12\n")
    with pytest.raises(ValueError, match=r"item '10': expected a non-empty list of attribute ids"):
        prepare_amazon(tmp_path / "a", sequences=seq, attributes=attrs)


def test_bad_amazon_files(tmp_path):
    seq = tmp_path / "s.txt"
    seq.write_text("1 10 11 12\n2 10 99 11\n")
    with pytest.raises(ValueError, match=r"s.txt:2: item '99' has no attribute"):
        prepare_amazon(tmp_path / "a", sequences=seq, attributes=FIX / "amazon_attr.json")
    seq.write_text("")
    with pytest.raises(ValueError, match="empty file"):
        prepare_amazon(tmp_path / "a", sequences=seq, attributes=FIX / "amazon_attr.json")
    bad = tmp_path / "r.json"
    bad.write_text('{"reviewerID": "A", "asin": "B001", "unixReviewTime": 1}\n{not json\n')
    with pytest.raises(ValueError, match=r"r.json:2"):
        prepare_amazon(tmp_path / "a", reviews=bad, meta=FIX / "meta.json")
    with pytest.raises(ValueError, match="either"):
        prepare_amazon(tmp_path / "a", sequences=FIX / "amazon_seq.txt", meta=FIX / "meta.json")
    assert not (tmp_path / "a").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_cli_prepare_then_train(tmp_path, capsys):
    out = tmp_path / "beauty"
    assert main(["prepare", "amazon", "--sequences", str(FIX / "amazon_seq.txt"), "--attributes",
                 str(FIX / "amazon_attr.json"), "--out", str(out)]) == 0
    assert "skipped 1 users" in capsys.readouterr().out
    assert main(["train", "--data", str(out), "--goods-dim", "3", "--cate-dim", "2", "--attention-units", "4",
                 "--hidden-units", "4", "--epochs", "1", "--batch-size", "4", "--json", str(tmp_path / "s.json")]) == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert "oracle" not in s and s["epochs_run"] == 1
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2


@pytest.mark.skipif(not (SHARED / "amazon-s3rec-5core" / "Beauty.txt").exists(),
                    reason="../shared/data is absent (real data is not shipped with minidin)")
def test_real_beauty_matches_the_reference_counts(tmp_path):
    d = SHARED / "amazon-s3rec-5core"
    info = prepare_amazon(tmp_path / "b", sequences=d / "Beauty.txt", attributes=d / "Beauty_item2attributes.json")
    assert (info["n_users"], info["n_goods"], info["n_cates"]) == (22363, 12101, 195)
    assert [info["counts"][k]["samples"] for k in ("train", "valid", "test")] == [262826, 44726, 44726]


@pytest.mark.skipif(not (SHARED / "ml-latest-small" / "ratings.csv").exists(),
                    reason="../shared/data is absent (real data is not shipped with minidin)")
def test_real_movielens_small(tmp_path):
    d = SHARED / "ml-latest-small"
    info = prepare_movielens(tmp_path / "m", d / "ratings.csv", d / "movies.csv")
    assert info["n_users"] == 610 and info["stats"]["ratings"] == 100836
    assert sum(v["samples"] for v in info["counts"].values()) == 100836
