"""minidin explain: per-sample weights, attention recovery, figures."""
import json

import numpy as np
import pytest

from minidin import explain
from minidin.cli import main
from minidin.data import make_synthetic
from minidin.train import TrainConfig, train

DATA = dict(n_users=60, n_cates=8, goods_per_cate=3, min_len=2, max_len=10, train_per_user=4, valid_per_user=2,
            test_per_user=2)
CLI_DATA = ["--synthetic-users", "60", "--synthetic-cates", "8", "--synthetic-goods-per-cate", "3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    data = make_synthetic(**DATA)
    cfg = TrainConfig(goods_dim=4, cate_dim=3, attention_units=(6,), hidden_units=(8,), batch_size=16, epochs=2)
    _, model = train(data, cfg, out=out, log=lambda *a: None, progress=None)
    return out, data, model


def test_sample_table_matches_the_model(trained):
    _, data, model = trained
    info = explain.sample_table(model, data, 3)
    b = data.batch("test", [3])
    assert [r["goods"] for r in info["history"]] == b.hist_goods.tolist()
    assert np.allclose([r["weight"] for r in info["history"]], model.attention(b))
    assert [r["true_relevance"] for r in info["history"]] == data.truth.relevance(b).tolist()
    text = explain.format_sample(info)
    assert "test sample 3" in text and "weight" in text


def test_recovery_equals_a_per_sample_spearman_loop(trained):
    """The mean Spearman against a plain loop over test samples (scipy's spearmanr on each sample with 2+
    behaviours and non-constant truth), and a random baseline near 0."""
    from scipy.stats import spearmanr

    _, data, model = trained
    res = explain.attention_recovery(model, data)
    want, used = [], 0
    for k in range(len(data.splits["test"])):
        b = data.batch("test", [k])
        w, rel = model.attention(b), data.truth.relevance(b)
        if len(w) < 2 or np.all(rel == rel[0]):
            continue
        used += 1
        want.append(0.0 if np.all(w == w[0]) else spearmanr(w, rel).statistic)
    assert res["samples"] == used and res["test_samples"] == len(data.splits["test"])
    assert res["spearman"] == pytest.approx(np.mean(want), abs=1e-12)
    assert abs(res["random_baseline"]) < 0.2  # chance is near 0


def test_user_index_and_errors(trained):
    _, data, _ = trained
    s = data.splits["test"]
    assert s.users[explain.test_sample_index(data, user=int(s.users[5]))] == s.users[5]
    with pytest.raises(ValueError, match="sample"):
        explain.test_sample_index(data, sample=10**6)
    with pytest.raises(ValueError, match="user"):
        explain.test_sample_index(data, user=-4)


def test_cli_explain(trained, tmp_path, capsys):
    out = trained[0]
    assert main(["explain", str(out), "--sample", "2"]) == 0
    assert "test sample 2" in capsys.readouterr().out
    js = tmp_path / "rec.json"
    assert main(["explain", str(out), "--recovery", "--json", str(js)]) == 0
    assert set(json.loads(js.read_text())) >= {"spearman", "random_baseline", "samples"}
    assert main(["explain", str(out), "--user", "0"]) == 0


def test_explain_refuses_a_base_model(tmp_path, capsys):
    out = tmp_path / "base"
    assert main(["train", *CLI_DATA, "--model", "base", "--goods-dim", "4", "--cate-dim", "3", "--hidden-units",
                 "8", "--epochs", "1", "--out", str(out)]) == 0
    assert main(["explain", str(out), "--sample", "0"]) == 2
    assert "DIN checkpoint" in capsys.readouterr().err


def test_figures_or_a_clear_message(trained, tmp_path, capsys):
    out = trained[0]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert main(["explain", str(out), "--sample", "1", "--png", str(tmp_path / "a.png")]) == 2
        assert "pip install 'minidin[plot]'" in capsys.readouterr().err
        return
    assert main(["explain", str(out), "--sample", "1", "--png", str(tmp_path / "a.png")]) == 0
    assert main(["explain", str(out), "--embedding-map", str(tmp_path / "m.png"), "--sample", "1"]) == 0
    assert main(["train", *CLI_DATA, "--goods-dim", "4", "--cate-dim", "3", "--attention-units", "4",
                 "--hidden-units", "4", "--epochs", "2", "--plot", str(tmp_path / "curves.png")]) == 0
    for f in ("a.png", "m.png", "curves.png"):
        assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_on_real_format_prepared_data(tmp_path, capsys):
    """A checkpoint trained on a prepared (Amazon-format) dataset: no truth, so no recovery, the rest works."""
    from pathlib import Path

    fix = Path(__file__).parent / "fixtures"
    data, out = tmp_path / "data", tmp_path / "run"
    assert main(["prepare", "amazon", "--sequences", str(fix / "amazon_seq.txt"), "--attributes",
                 str(fix / "amazon_attr.json"), "--out", str(data)]) == 0
    assert main(["train", "--data", str(data), "--goods-dim", "3", "--cate-dim", "2", "--attention-units", "4",
                 "--hidden-units", "4", "--epochs", "1", "--batch-size", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["explain", str(out), "--sample", "1"]) == 0  # the checkpoint's own data by default
    text = capsys.readouterr().out
    assert "test sample 1" in text and "true relevance" not in text
    assert main(["explain", str(out), "--data", str(data), "--user", "0"]) == 0
    assert main(["explain", str(out), "--recovery"]) == 2
    assert "synthetic" in capsys.readouterr().err
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert main(["explain", str(out), "--sample", "0", "--png", str(tmp_path / "r.png")]) == 0
    assert main(["explain", str(out), "--embedding-map", str(tmp_path / "e.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 1000 and (tmp_path / "e.png").stat().st_size > 1000


def test_explain_option_errors(trained, capsys):
    out = str(trained[0])
    for argv in (["explain", out], ["explain", out, "--recovery", "--sample", "1"],
                 ["explain", out, "--sample", "1", "--user", "2"], ["explain", out, "--recovery", "--png", "x.png"]):
        assert main(argv) == 2
        assert "explain:" in capsys.readouterr().err
