"""minidin prepare csv: a user's own logs from a schema file, end to end, and every error named file:line."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from minidin.cli import main
from minidin.data import Dataset
from minidin.data.csv_prepare import prepare_csv

FIX = Path(__file__).parent / "fixtures" / "csv"


@pytest.fixture
def logs(tmp_path):
    """A writable copy of the hand-written fixture: clicks.csv, items.csv, users.csv, schema.json."""
    d = tmp_path / "logs"
    shutil.copytree(FIX, d)
    return d


def edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def set_schema(logs, **parts):
    schema = json.loads((logs / "schema.json").read_text())
    for k, v in parts.items():
        if v is None:
            schema.pop(k, None)
        else:
            schema[k] = v
    (logs / "schema.json").write_text(json.dumps(schema))


def test_csv_end_to_end_prepare_train_evaluate_explain(logs, tmp_path, capsys):
    """What a user with a CSV log, an item table and a user table does, with the documented schema file."""
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["prepare", "csv", "--schema", str(logs / "schema.json"), "--out", str(data)]) == 0
    assert "fields: brand, tags, gender, age, interests, hour, device" in capsys.readouterr().out
    assert main(["train", "--data", str(data), "--out", str(run), "--epochs", "2", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "fields brand, tags" in out and "best epoch" in out
    ev = tmp_path / "ev.json"
    assert main(["evaluate", str(run), "--json", str(ev)]) == 0
    res = json.loads(ev.read_text())
    assert 0.0 <= res["test"]["auc"] <= 1.0
    assert main(["explain", str(run), "--sample", "0", "--json", str(tmp_path / "x.json")]) == 0
    shown = json.loads((tmp_path / "x.json").read_text())
    ds = Dataset.load(data)
    assert shown["candidate_goods_id"] == ds.vocab["goods"][shown["candidate_goods"]]  # original ids back
    assert shown["user_id"] in {"u1", "u2", "u3", "u4"}
    cfg = json.loads((run / "best.json").read_text())["model_config"]
    assert [f["name"] for f in cfg["fields"]] == ["brand", "tags", "gender", "age", "interests", "hour", "device"]
    assert {f["name"]: f["multi_hot"] for f in cfg["fields"]}["tags"] is True
    # the two-field model on the same data, and MBA over every table
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "two"), "--epochs", "1", "--use-fields",
                 "none", "--reg", "mba", "--reg-lambda", "0.01"]) == 0
    assert json.loads((tmp_path / "two" / "best.json").read_text())["model_config"]["fields"] == []
    assert main(["train", "--data", str(data), "--epochs", "1", "--use-fields", "tags,hour", "--field-dims",
                 "tags=4", "--reg", "mba", "--reg-lambda", "0.01"]) == 0


def test_what_the_dataset_holds(logs, tmp_path):
    prepare_csv(tmp_path / "d", logs / "schema.json")
    ds = Dataset.load(tmp_path / "d")
    assert ds.vocab["goods"] == sorted(["lipstick-red", "lipstick-pink", "mascara", "shampoo", "conditioner", "tent",
                                        "stove", "boots"])
    assert ds.vocab["cates"] == ["hair", "makeup", "outdoor"]
    item = {n: i for i, n in enumerate(ds.vocab["goods"])}
    tags = ds.item_attrs["tags"]
    boots = item["boots"]
    assert [ds.vocab["tags"][t] for t in tags.ids[tags.offsets[boots]:tags.offsets[boots + 1]]] == ["waterproof", "brown"]
    stove = item["stove"]
    assert tags.offsets[stove + 1] == tags.offsets[stove]  # an empty cell: the empty set
    assert ds.vocab["cates"][ds.seq_cates[0]] in ("hair", "makeup", "outdoor")
    assert {f["name"]: f["kind"] for f in ds.fields} == {"brand": "item", "tags": "item", "gender": "user",
                                                         "age": "user", "interests": "user", "hour": "context",
                                                         "device": "context"}
    # labels from the file and the default time split (80/10/10 of the 80 interactions)
    assert [len(ds.splits[s]) for s in ("train", "valid", "test")] == [64, 8, 8]


def _clicks(logs):
    rows = [line.split(",") for line in (logs / "clicks.csv").read_text().split()[1:]]
    return [(u, it, float(t), int(y)) for u, it, t, y, *_ in rows]


@pytest.mark.parametrize("split", ["last", "time", "user"])
def test_no_history_reaches_its_own_time(logs, tmp_path, split):
    """Every sample's history is its user's positives strictly before its own timestamp, in time order."""
    prepare_csv(tmp_path / "d", logs / "schema.json", split=split)
    ds = Dataset.load(tmp_path / "d")
    clicks = _clicks(logs)
    user = {n: i for i, n in enumerate(ds.vocab["users"])}
    item = {n: i for i, n in enumerate(ds.vocab["goods"])}
    positives = {}
    for u, it, t, y in sorted(clicks, key=lambda r: r[2]):
        if y:
            positives.setdefault(user[u], []).append((t, item[it]))
    seen = 0
    for name, s in ds.splits.items():
        b = ds.batch(name)
        for k in range(len(s)):
            hist = b.hist_goods[b.hist_offsets[k]:b.hist_offsets[k + 1]].tolist()
            u = int(s.users[k])
            # the sample's own click: the row of this user and candidate at a time after its whole history
            times = [t for uu, it, t, y in clicks if user[uu] == u and item[it] == s.cand_goods[k] and y == s.labels[k]]
            assert any([g for tt, g in positives.get(u, []) if tt < t][-100:] == hist for t in times)
            seen += 1
    assert seen == 80
    if split == "user":
        for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
            assert not set(ds.splits[a].users) & set(ds.splits[b].users)


def test_without_labels_every_interaction_is_a_positive_with_one_negative(logs, tmp_path):
    interactions = json.loads((logs / "schema.json").read_text())["interactions"]
    interactions.pop("label")
    set_schema(logs, interactions=interactions)
    lines = (logs / "clicks.csv").read_text().splitlines()
    (logs / "clicks.csv").write_text("\n".join([lines[0]] + [x for x in lines[1:] if x.split(",")[3] == "1"]))
    prepare_csv(tmp_path / "d", logs / "schema.json")
    ds = Dataset.load(tmp_path / "d")
    clicks = _clicks(logs)
    assert all(y == 1 for *_, y in clicks)  # a log of positives only
    item = {n: i for i, n in enumerate(ds.vocab["goods"])}
    user = {n: i for i, n in enumerate(ds.vocab["users"])}
    touched = {}
    for u, it, _, _ in clicks:
        touched.setdefault(user[u], set()).add(item[it])
    total = sum(len(s) for s in ds.splits.values())
    assert total == 2 * len(clicks)
    for s in ds.splits.values():
        assert s.labels.mean() == 0.5
        for u, g, y in zip(s.users, s.cand_goods, s.labels):
            assert (g in touched[u]) == (y == 1)  # a negative is never an item the user touched
    # split last: one test and one validation interaction per user (each with its negative)
    assert len(ds.splits["test"]) == len(ds.splits["valid"]) == 2 * 4
    # seeded: the same file gives the same dataset
    prepare_csv(tmp_path / "again", logs / "schema.json")
    assert Dataset.load(tmp_path / "again").fingerprint() == ds.fingerprint()


def test_logs_alone_without_item_or_user_tables(logs, tmp_path):
    set_schema(logs, items=None, users=None)
    prepare_csv(tmp_path / "d", logs / "schema.json")
    ds = Dataset.load(tmp_path / "d")
    assert ds.n_cates == 1 and ds.vocab["cates"] == ["(none)"]
    assert [f["name"] for f in ds.fields] == ["hour", "device"]


@pytest.mark.parametrize("file,old,new,match", [
    ("clicks.csv", "user_id,item_id,ts,", "user,item_id,ts,", r"clicks.csv:1: missing column 'user_id'"),
    ("clicks.csv", "u2,tent,101,1", "u2,hammock,101,1", r"clicks.csv:3: column 'item_id': item 'hammock' is not in items.csv"),
    ("clicks.csv", "u2,tent,101,1", "u9,tent,101,1", r"clicks.csv:3: column 'user_id': user 'u9' is not in users.csv"),
    ("clicks.csv", "u2,tent,101,1", "u2,tent,soon,1", r"clicks.csv:3: column 'ts': timestamp 'soon' is not a finite"),
    ("clicks.csv", "u2,tent,101,1", "u2,tent,101,yes", r"clicks.csv:3: column 'clicked': a label must be 0 or 1"),
    ("clicks.csv", "u2,tent,101,1,9,desktop", "u2,tent,101,1,9", r"clicks.csv:3: 5 fields, but the header has 6"),
    ("items.csv", "red|matte", "red||matte", r"items.csv:2: column 'tags': malformed multi-hot cell 'red\|\|matte'"),
    ("items.csv", "mascara,makeup", "lipstick-red,makeup", r"items.csv:4: item 'lipstick-red' is listed twice \(first at line 2\)"),
    ("users.csv", "beauty|hair", "beauty|", r"users.csv:2: column 'interests': malformed multi-hot cell"),
])
def test_bad_files_are_named_and_nothing_is_written(logs, tmp_path, file, old, new, match):
    edit(logs / file, old, new)
    out = tmp_path / "d"
    with pytest.raises(ValueError, match=match):
        prepare_csv(out, logs / "schema.json")
    assert not out.exists()


def test_empty_files(logs, tmp_path):
    (logs / "users.csv").write_text("")
    with pytest.raises(ValueError, match=r"users.csv: empty file"):
        prepare_csv(tmp_path / "d", logs / "schema.json")
    (logs / "clicks.csv").write_text("user_id,item_id,ts,clicked,hour,device\n")
    with pytest.raises(ValueError, match=r"clicks.csv: empty file \(a header row and no data\)"):
        prepare_csv(tmp_path / "d", logs / "schema.json")


@pytest.mark.parametrize("schema,match", [
    ({"interactions": {"file": "clicks.csv", "user": "user_id", "item": "item_id"}}, r"interactions: missing 'time'"),
    ({"interactions": {"file": "clicks.csv", "user": "user_id", "item": "item_id", "time": "ts", "labels": "x"}},
     r"interactions: unknown key 'labels'"),
    ({"interactions": {"file": "clicks.csv", "user": "user_id", "item": "item_id", "time": "ts"}, "shops": {}},
     r"unknown key 'shops'"),
    ({"interactions": {"file": "clicks.csv", "user": "user_id", "item": "item_id", "time": "ts", "context": "hour"}},
     r"interactions.context: expected a list of column names"),
    ({"interactions": {"file": "clicks.csv", "user": "user_id", "item": "item_id", "time": "ts"},
      "items": {"file": "items.csv", "item": "item_id", "multi_hot": {"tags": ","}}}, r"separator ','"),
    ({"interactions": {"file": "clicks.csv", "user": "user_id", "item": "item_id", "time": "ts", "context": ["brand"]},
      "items": {"file": "items.csv", "item": "item_id", "one_hot": ["category", "brand"]}},
     r"column 'brand' is also a field of interactions"),
])
def test_bad_schemas_are_named(logs, tmp_path, schema, match):
    (logs / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(ValueError, match=match):
        prepare_csv(tmp_path / "d", logs / "schema.json")


def test_out_holding_someone_elses_files_is_refused(logs, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["prepare", "csv", "--schema", str(logs / "schema.json"), "--out", str(out)]) == 2
    assert (out / "notes.txt").read_text() == "keep me"


def test_a_checkpoint_refuses_data_without_its_fields(logs, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    prepare_csv(data, logs / "schema.json")
    assert main(["train", "--data", str(data), "--out", str(run), "--epochs", "1"]) == 0
    set_schema(logs, users=None)
    prepare_csv(tmp_path / "other", logs / "schema.json")
    assert main(["evaluate", str(run), "--data", str(tmp_path / "other")]) == 2


def test_fields_option_errors_name_the_option(logs, tmp_path, capsys):
    data = tmp_path / "data"
    prepare_csv(data, logs / "schema.json")
    assert main(["train", "--data", str(data), "--epochs", "1", "--use-fields", "colour"]) == 2
    assert "use_fields: the data has no field 'colour'" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--epochs", "1", "--field-dims", "tags=x"]) == 2
    assert "--field-dims: expected NAME=WIDTH" in capsys.readouterr().err
