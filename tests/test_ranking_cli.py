"""evaluate --ranking, --candidates and recommend, end to end on the CSV fixture and the Amazon fixture."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import minidin
from minidin.cli import main
from minidin.data import Dataset
from minidin.data.csv_prepare import prepare_csv
from minidin.data.prepare import prepare_amazon

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def amazon_run(tmp_path_factory):
    """The Amazon fixture (S3-Rec format) and a DIN trained on it for one epoch."""
    d = tmp_path_factory.mktemp("amazon")
    prepare_amazon(d / "data", sequences=FIX / "amazon_seq.txt", attributes=FIX / "amazon_attr.json")
    assert main(["train", "--data", str(d / "data"), "--out", str(d / "run"), "--epochs", "1", "--batch-size",
                 "4", "--goods-dim", "4", "--cate-dim", "4", "--attention-units", "4", "--hidden-units", "4"]) == 0
    return d


def test_evaluate_ranking_writes_the_contract_keys(amazon_run, capsys):
    out = amazon_run / "r.json"
    assert main(["evaluate", str(amazon_run / "run"), "--ranking", "--negatives", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["ranking"]) == {"valid", "test"}
    for split in ("valid", "test"):
        m = res["ranking"][split]
        assert {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr", "users"} <= set(m)
        assert 0 <= m["hr@1"] <= m["hr@5"] <= m["hr@10"] <= 1 and m["users"] > 0
    assert "1 negatives drawn uniformly" in res["ranking_protocol"]
    assert "HR@10" in capsys.readouterr().out
    # full ranking: every item the user never interacted with
    assert main(["evaluate", str(amazon_run / "run"), "--ranking", "--negatives", "all", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["ranking_protocol"].startswith("full ranking")
    assert main(["evaluate", str(amazon_run / "run"), "--ranking", "--negatives", "all", "--ranking-queries", "2",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["ranking"]["test"]["users"] == 2 and "for 2 positives drawn at random" in res["ranking_protocol"]
    # every item with a training positive is one this tiny fixture's users touched: a clear error, not a hang
    assert main(["evaluate", str(amazon_run / "run"), "--ranking", "--negatives", "pop:1"]) == 2
    assert "cannot be drawn by popularity" in capsys.readouterr().err


def test_popularity_negatives_on_synthetic_data():
    from minidin.data import make_synthetic
    from minidin.ranking import _interacted_keys, evaluate_ranking, popularity, _negatives, interacted

    data = make_synthetic(n_users=60, seed=1)
    model = minidin.DIN(data.n_goods, data.n_cates, goods_dim=4, cate_dim=4, attention_units=(4,), hidden_units=(4,))
    res = evaluate_ranking(model, data, "valid", "pop:5", seed=3)
    assert res["users"] == int(data.splits["valid"].labels.sum()) and "by popularity" in res["protocol"]
    s = data.splits["valid"]
    q = s.labels == 1
    negs = _negatives("pop", 5, s.users[q], s.cand_goods[q], interacted(data), data, np.random.default_rng(0), None)
    pop = popularity(data)
    keys = _interacted_keys(data)
    for u, n in zip(s.users[q], negs):
        assert len(set(n.tolist())) == 5 and np.all(pop[n] > 0)  # distinct, each with a training positive
        assert not np.isin(u * data.n_goods + n, keys).any()
    from minidin.ranking import resample_train_negatives

    t = resample_train_negatives(data, 2, "pop", np.random.default_rng(0)).splits["train"]
    neg = t.labels == 0
    assert neg.sum() == 2 * (t.labels == 1).sum() and np.all(pop[t.cand_goods[neg]] > 0)
    assert not np.isin(t.users[neg] * data.n_goods + t.cand_goods[neg], keys).any()


def test_candidates_file_in_the_s3rec_format(amazon_run, tmp_path):
    data = Dataset.load(amazon_run / "data")
    users, goods = data.vocab["users"], data.vocab["goods"]
    s = data.splits["test"]
    lines = []
    for u in np.unique(s.users):
        own = set(data.seq_goods[data.seq_offsets[u]:data.seq_offsets[u + 1]].tolist())
        negs = [goods[g] for g in range(data.n_goods) if g not in own][:2]
        lines.append(" ".join([users[u]] + negs))
    f = tmp_path / "sample.txt"
    f.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.json"
    assert main(["evaluate", str(amazon_run / "run"), "--ranking", "--candidates", str(f), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["ranking"]) == {"test"} and res["ranking_protocol"] == "candidates from sample.txt"
    assert res["ranking"]["test"]["users"] == len(lines)


@pytest.mark.parametrize("text,match", [
    ("nobody 1 2\n", r"sample.txt:1: user 'nobody' is not in the data"),
    ("{u} 999999\n", r"sample.txt:1: item '999999' is not in the data"),
    ("{u}\n", r"sample.txt:1: expected 'user neg1 neg2 ...'"),
    ("{u} {g}\n{u} {g}\n", r"sample.txt:2: user '.*' already has candidates \(line 1\)"),
])
def test_bad_candidates_files_are_named(amazon_run, tmp_path, capsys, text, match):
    data = Dataset.load(amazon_run / "data")
    f = tmp_path / "sample.txt"
    f.write_text(text.format(u=data.vocab["users"][0], g=data.vocab["goods"][0]))
    assert main(["evaluate", str(amazon_run / "run"), "--ranking", "--candidates", str(f)]) == 2
    import re
    assert re.search(match, capsys.readouterr().err)


def test_recommend_writes_original_ids(tmp_path, capsys):
    logs = tmp_path / "logs"
    shutil.copytree(FIX / "csv", logs)
    prepare_csv(tmp_path / "data", logs / "schema.json")
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--epochs", "1"]) == 0
    out = tmp_path / "recs.csv"
    assert main(["recommend", str(tmp_path / "run"), "--user", "u2", "--top-k", "3", "--attention", "--out",
                 str(out)]) == 0
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert rows[0] == ["user", "rank", "item", "score", "attention"]
    items = {"lipstick-red", "lipstick-pink", "mascara", "shampoo", "conditioner", "tent", "stove", "boots"}
    assert [r[1] for r in rows[1:]] == ["1", "2", "3"] and all(r[0] == "u2" and r[2] in items for r in rows[1:])
    scores = [float(r[3]) for r in rows[1:]]
    assert scores == sorted(scores, reverse=True)
    # an existing file is not overwritten, an unknown user is named
    assert main(["recommend", str(tmp_path / "run"), "--user", "u2", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["recommend", str(tmp_path / "run"), "--user", "u9"]) == 2
    assert "--user: unknown user 'u9'" in capsys.readouterr().err
    users = tmp_path / "users.txt"
    users.write_text("u1\nu7\n")
    assert main(["recommend", str(tmp_path / "run"), "--users", str(users)]) == 2
    assert "users.txt:2: unknown user 'u7'" in capsys.readouterr().err
    # --exclude-seen leaves out what the user interacted with
    assert main(["recommend", str(tmp_path / "run"), "--user", "u2", "--top-k", "8", "--exclude-seen"]) == 0
    printed = capsys.readouterr().out.splitlines()[1:]
    clicked = {"tent", "stove", "boots"}  # u2's clicks in the fixture
    assert not {line.split(",")[2] for line in printed} & clicked


def test_train_negatives_are_drawn_again_every_epoch(tmp_path):
    from minidin.ranking import _interacted_keys, resample_train_negatives

    prepare_amazon(tmp_path / "d", sequences=FIX / "amazon_seq.txt", attributes=FIX / "amazon_attr.json")
    ds = Dataset.load(tmp_path / "d")
    before = ds.fingerprint()
    a = resample_train_negatives(ds, 2, "uniform", np.random.default_rng([0, 3, 0]))
    b = resample_train_negatives(ds, 2, "uniform", np.random.default_rng([0, 3, 1]))
    again = resample_train_negatives(ds, 2, "uniform", np.random.default_rng([0, 3, 0]))
    assert ds.fingerprint() == before  # the caller's dataset is not changed
    s, orig = a.splits["train"], ds.splits["train"]
    assert len(s) == 3 * int(orig.labels.sum()) and s.labels.sum() == orig.labels.sum()
    assert np.array_equal(s.labels.reshape(-1, 3), np.tile([1.0, 0.0, 0.0], (len(s) // 3, 1)))
    keys = _interacted_keys(ds)
    neg = s.labels == 0
    assert not np.isin(s.users[neg] * ds.n_goods + s.cand_goods[neg], keys).any()  # never an item they touched
    assert np.array_equal(s.ends.reshape(-1, 3), np.repeat(s.ends[::3, None], 3, axis=1))  # the positive's history
    assert np.array_equal(again.splits["train"].cand_goods, s.cand_goods)  # seeded by (seed, epoch)
    assert not np.array_equal(b.splits["train"].cand_goods, s.cand_goods)  # drawn again the next epoch
    with pytest.raises(ValueError, match="no negative could be drawn"):  # every popular item is touched here
        resample_train_negatives(ds, 1, "pop", np.random.default_rng(0))


def test_train_with_negatives_and_a_ranking_selection_resumes_exactly(tmp_path):
    prepare_amazon(tmp_path / "d", sequences=FIX / "amazon_seq.txt", attributes=FIX / "amazon_attr.json")
    common = ["--data", str(tmp_path / "d"), "--batch-size", "4", "--goods-dim", "4", "--cate-dim", "4",
              "--attention-units", "4", "--hidden-units", "4", "--train-negatives", "2", "--select", "ndcg@10",
              "--select-negatives", "1", "--reg", "mba", "--reg-lambda", "0.1", "--patience", "5"]
    assert main(["train", *common, "--epochs", "3", "--out", str(tmp_path / "a"), "--json", str(tmp_path / "a.json")]) == 0
    assert main(["train", *common, "--epochs", "2", "--out", str(tmp_path / "b")]) == 0
    assert main(["train", "--resume", str(tmp_path / "b"), "--epochs", "3", "--data", str(tmp_path / "d"),
                 "--json", str(tmp_path / "b.json")]) == 0
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    assert [h["valid"] for h in a["history"]] == [h["valid"] for h in b["history"]]
    assert "ranking" in a["history"][0]["valid"] and "ndcg@10" in a["history"][0]["valid"]["ranking"]
    cfg = json.loads((tmp_path / "a" / "best.json").read_text())["train_config"]
    assert cfg["train_negatives"] == 2 and cfg["select"] == "ndcg@10"
    ndcg = [h["valid"]["ranking"]["ndcg@10"] for h in a["history"]]
    assert a["best_epoch"] == 1 + max(range(len(ndcg)), key=lambda i: (ndcg[i], -i))  # the first best epoch
