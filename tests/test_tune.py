"""minidin tune (seeded search on validation, resumable) and minidin train --config."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from minidin.cli import main
from minidin.data import SYNTHETIC_TRAIN
from minidin.train import TrainConfig
from minidin.tune import SPACE, draw, searched

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--synthetic-users", "60", "--synthetic-cates", "4", "--synthetic-goods-per-cate", "5", "--epochs", "3",
        "--patience", "1"]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_trial_zero_is_the_base_and_draws_are_seeded_and_in_range():
    base = TrainConfig(reg="mba", reg_lambda=1.0)
    names = searched(base)
    assert draw(base, names, 3, 0) == dict(base.to_json(), seed=3)
    a, b = draw(base, names, 3, 5), draw(base, names, 3, 5)
    assert a == b and a != draw(base, names, 4, 5) and a != draw(base, names, 3, 6)
    for t in range(1, 30):
        cfg = TrainConfig.from_json(draw(base, names, 0, t))
        assert SPACE["lr"][1] <= cfg.lr <= SPACE["lr"][2]
        assert SPACE["reg_lambda"][1] <= cfg.reg_lambda <= SPACE["reg_lambda"][2]
        assert cfg.batch_size in SPACE["batch_size"][1] and cfg.goods_dim == cfg.cate_dim
        assert cfg.hidden_units in SPACE["hidden_units"][1] and cfg.activation in SPACE["activation"][1]
    # a setting's draw does not depend on which others are searched; unsearched ones keep the base value
    only_lr = draw(base, ("lr",), 0, 7)
    assert only_lr["lr"] == draw(base, names, 0, 7)["lr"]
    assert dict(only_lr, lr=base.lr) == dict(base.to_json(), seed=0)


def test_searched_drops_what_does_not_apply_and_names_a_bad_setting():
    assert "reg_lambda" not in searched(TrainConfig(reg="none"))
    assert "attention_units" not in searched(TrainConfig(model="base"))
    with pytest.raises(ValueError, match="--search: unknown setting 'momentum'"):
        searched(TrainConfig(), ["lr", "momentum"])


def test_tune_end_to_end_chooses_on_validation_and_train_config_reproduces_it(tmp_path, capsys):
    out = str(tmp_path / "tune")
    assert main(["tune", "--trials", "3", "--jobs", "1", "--out", out] + TINY) == 0
    rows = _rows(os.path.join(out, "trials.csv"))
    assert [r["trial"] for r in rows] == ["0", "1", "2"] and all(r["status"] == "ok" for r in rows)
    assert "test" not in " ".join(rows[0])  # no test column: the search never sees the test split
    best = json.load(open(os.path.join(out, "best.json")))
    t = best["tune"]["trial"]
    assert float(rows[t]["valid_gauc"]) == max(float(r["valid_gauc"]) for r in rows)
    assert rows[0]["lr"] == str(SYNTHETIC_TRAIN["lr"])  # trial 0: the options given (synthetic: its own settings)
    # the chosen settings train through `train --config` to the same validation and test figures
    summary = tmp_path / "s.json"
    assert main(["train", "--config", os.path.join(out, "best.json"), "--json", str(summary)] + TINY[:6]) == 0
    s = json.load(open(summary))
    assert s["valid"]["gauc"] == pytest.approx(best["tune"]["valid"]["gauc"], abs=1e-12)
    assert s["test"]["gauc"] == pytest.approx(best["tune"]["test"]["gauc"], abs=1e-12)
    assert "train --data synthetic --config" in capsys.readouterr().out


def _tune_cmd(out, trials=3):
    return [sys.executable, "-m", "minidin", "tune", "--trials", str(trials), "--jobs", "1", "--out", out] + TINY


def test_tune_resumes_after_a_kill_to_the_same_result(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    straight = str(tmp_path / "straight")
    subprocess.run(_tune_cmd(straight), check=True, capture_output=True, env=env, cwd=ROOT)
    killed = str(tmp_path / "killed")
    p = subprocess.Popen(_tune_cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    trial1 = os.path.join(killed, "trials", "001")
    deadline = time.time() + 120
    while not os.path.isfile(os.path.join(trial1, "last.npz")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert os.path.isfile(os.path.join(killed, "trials", "000", "result.json"))
    assert not os.path.isfile(os.path.join(killed, "best.json"))  # killed mid-search
    out = subprocess.run(_tune_cmd(killed), check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    assert "already done" in out.stdout
    strip = [{k: v for k, v in r.items() if k != "train_minutes"} for r in _rows(os.path.join(straight, "trials.csv"))]
    assert strip == [{k: v for k, v in r.items() if k != "train_minutes"}
                     for r in _rows(os.path.join(killed, "trials.csv"))]
    a, b = (json.load(open(os.path.join(d, "best.json"))) for d in (straight, killed))
    assert a["train_config"] == b["train_config"] and a["tune"]["test"] == b["tune"]["test"]
    # more trials extend the same search: the first three are not run again
    more = subprocess.run(_tune_cmd(killed, 4), check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    assert "3 of 4 trials already done" in more.stdout and len(_rows(os.path.join(killed, "trials.csv"))) == 4


def test_tune_refuses_a_foreign_out_and_another_search(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["tune", "--trials", "1", "--out", str(foreign)] + TINY) == 2
    assert "not written by minidin" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"
    out = str(tmp_path / "t")
    assert main(["tune", "--trials", "1", "--jobs", "1", "--out", out] + TINY) == 0
    capsys.readouterr()
    assert main(["tune", "--trials", "1", "--jobs", "1", "--out", out, "--seed", "1"] + TINY) == 2
    assert "holds another search (its seed differs" in capsys.readouterr().err
    assert main(["tune", "--trials", "1", "--out", str(tmp_path / "u"), "--search", "lr,nope"] + TINY) == 2
    assert "--search: unknown setting 'nope'" in capsys.readouterr().err


def test_train_config_file_is_checked_and_the_command_line_overrides_it(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"lr": 0.05, "batch_size": 64, "hidden_units": [40, 20], "epochs": 1}))
    summary = tmp_path / "s.json"
    assert main(["train", "--config", str(cfg), "--batch-size", "16", "--out", str(tmp_path / "run"),
                 "--json", str(summary)] + TINY[:6]) == 0
    saved = json.load(open(tmp_path / "run" / "best.json"))["train_config"]
    assert (saved["lr"], saved["batch_size"], saved["hidden_units"], saved["epochs"]) == (0.05, 16, [40, 20], 1)
    capsys.readouterr()
    for text, match in [('{"lrr": 1}', r"c.json: unknown setting\(s\) 'lrr'"), ('{"lr": -1}', r"c.json: lr: must be > 0"),
                        ('[1, 2]', "expected a JSON object"), ('{"lr": ', "not valid JSON"),
                        ('{"hidden_units": "a"}', "hidden_units")]:
        cfg.write_text(text)
        assert main(["train", "--config", str(cfg)] + TINY[:6]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--config" in err and __import__("re").search(match, err), err
    assert main(["train", "--config", str(tmp_path / "missing.json")]) == 2
    assert "cannot read it" in capsys.readouterr().err
    assert main(["train", "--config", str(cfg), "--resume", str(tmp_path / "run")]) == 2
    assert "a resumed run keeps the settings of its checkpoint" in capsys.readouterr().err


def test_settings_layer_defaults_then_synthetic_then_config_then_command_line(tmp_path):
    """On the synthetic data, SYNTHETIC_TRAIN replaces the real-data defaults; --config goes over it and the
    command line over both. A prepared dataset directory gets the defaults themselves."""
    def saved(name, *argv):
        out = tmp_path / name
        assert main(["train", *argv, "--epochs", "1", "--out", str(out)] + TINY[:6]) == 0
        return json.load(open(out / "best.json"))["train_config"]

    s = saved("plain")
    assert {k: s[k] for k in SYNTHETIC_TRAIN} == SYNTHETIC_TRAIN
    assert s["hidden_units"] == list(TrainConfig().hidden_units)  # what SYNTHETIC_TRAIN leaves alone: the default
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"lr": 0.05, "batch_size": 64, "goods_bias": True}))
    s = saved("config", "--config", str(cfg), "--batch-size", "16", "--no-goods-bias")
    assert (s["lr"], s["batch_size"], s["goods_bias"], s["lr_decay"]) == (0.05, 16, False, SYNTHETIC_TRAIN["lr_decay"])
    # a prepared dataset: the real-data defaults
    from minidin.data import make_synthetic

    make_synthetic(n_users=40, n_cates=4, goods_per_cate=3).save(tmp_path / "prepared")
    out = tmp_path / "real"
    assert main(["train", "--data", str(tmp_path / "prepared"), "--epochs", "1", "--out", str(out)]) == 0
    s = json.load(open(out / "best.json"))["train_config"]
    defaults = TrainConfig().to_json()
    assert {k: s[k] for k in SYNTHETIC_TRAIN} == {k: defaults[k] for k in SYNTHETIC_TRAIN}
