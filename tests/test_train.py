"""Trainer, checkpoints and the train/evaluate CLI on a tiny synthetic dataset."""
import json
import os

import numpy as np
import pytest

import minidin
from minidin.checkpoint import read_checkpoint
from minidin.cli import main
from minidin.data import make_synthetic
from minidin.train import TrainConfig, TrainingError, evaluate, train
from tests.helpers import tiny_model

DATA = dict(n_users=50, n_cates=8, goods_per_cate=3, min_len=2, max_len=10, train_per_user=4, valid_per_user=2,
            test_per_user=2)
SMALL = dict(goods_dim=4, cate_dim=3, attention_units=(6,), hidden_units=(8, 4), batch_size=16)
CLI_DATA = ["--synthetic-users", "50", "--synthetic-cates", "8", "--synthetic-goods-per-cate", "3"]
CLI_MODEL = ["--goods-dim", "4", "--cate-dim", "3", "--attention-units", "6", "--hidden-units", "8,4",
             "--batch-size", "16"]


def quiet(*a, **k):
    return None


def strip_timing(summary):
    s = {k: v for k, v in summary.items() if k not in ("train_seconds", "train_samples_per_second")}
    return json.loads(json.dumps(s))


@pytest.fixture(scope="module")
def data():
    return make_synthetic(**DATA)


@pytest.mark.parametrize("model,reg", [("din", "mba"), ("base", "l2"), ("din", "none")])
def test_same_seed_gives_identical_metrics(data, model, reg):
    cfg = dict(SMALL, model=model, reg=reg, reg_lambda=0.01, epochs=2, patience=5, seed=3)
    a, _ = train(data, TrainConfig(**cfg), log=quiet, progress=None)
    b, _ = train(data, TrainConfig(**cfg), log=quiet, progress=None)
    assert strip_timing(a) == strip_timing(b)
    c, _ = train(data, TrainConfig(**dict(cfg, seed=4)), log=quiet, progress=None)
    assert strip_timing(a) != strip_timing(c)
    assert a["epochs_run"] == 2 and a["best_epoch"] in (1, 2)
    assert set(a["oracle"]) == {"auc", "gauc"}


def test_checkpoint_roundtrip_and_resume_is_exact(data, tmp_path):
    cfg = dict(SMALL, epochs=4, patience=10, seed=1, reg="mba", reg_lambda=0.05)
    full, _ = train(data, TrainConfig(**cfg), out=tmp_path / "full", log=quiet, progress=None)
    half, _ = train(data, TrainConfig(**dict(cfg, epochs=2)), out=tmp_path / "half", log=quiet, progress=None)
    # resuming the 2-epoch run, with its config raised to 4 epochs, continues exactly
    arrays, meta = read_checkpoint(tmp_path / "half", "last")
    meta["train_config"]["epochs"] = 4
    from minidin.checkpoint import restore_model, save_checkpoint
    from minidin.train import build_optimizer

    model = restore_model(arrays, meta)
    opt = build_optimizer(TrainConfig.from_json(meta["train_config"]), model, minidin.feature_counts(data))
    opt.load_state_arrays(arrays)
    save_checkpoint(str(tmp_path / "half" / "last.npz"), model, meta, opt)
    resumed, _ = train(data, TrainConfig(), resume=tmp_path / "half", log=quiet, progress=None)
    assert strip_timing(resumed)["history"] == strip_timing(full)["history"]
    # the best checkpoint, reloaded, evaluates to the metrics the run reported
    best = minidin.load(tmp_path / "full")
    assert evaluate(best, data, "test") == full["test"]
    assert evaluate(minidin.load(tmp_path / "full" / "best.npz"), data, "valid") == full["valid"]
    info = json.loads((tmp_path / "full" / "best.json").read_text())
    assert info["epoch"] + 1 == full["best_epoch"] and info["n_goods"] == data.n_goods
    assert info["data"]["kind"] == "synthetic" and info["data"]["options"]["n_users"] == 50
    with np.load(tmp_path / "full" / "last.npz") as z:
        assert any(k.startswith("acc/") for k in z.files) and any(k.startswith("state/") for k in z.files)


def test_lr_warmup_rises_linearly_over_the_steps_and_resumes_exactly(data, tmp_path, monkeypatch):
    # 200 training samples at batch 16: 13 steps per epoch, so a 20-step warmup ends inside epoch 2
    cfg = dict(SMALL, epochs=3, patience=10, seed=2, lr=0.1, lr_decay=0.5, lr_warmup=20)
    seen = []
    step = minidin.SparseAdagrad.step

    def record(self, grads):
        seen.append(self.lr)
        return step(self, grads)

    monkeypatch.setattr(minidin.SparseAdagrad, "step", record)
    full, _ = train(data, TrainConfig(**cfg), out=tmp_path / "full", log=quiet, progress=None)
    want = [0.1 * 0.5 ** (t // 13) * min(1.0, (t + 1) / 20) for t in range(39)]
    assert seen == pytest.approx(want, rel=1e-12)
    ckpt_history = read_checkpoint(tmp_path / "full", "last")[1]["history"]
    assert [h["lr"] for h in ckpt_history] == pytest.approx([0.1, 0.05, 0.025])  # each epoch's full rate
    # stopped after epoch 1 (mid-warmup) and resumed to 3 epochs: the step count, hence the lr, continues
    train(data, TrainConfig(**dict(cfg, epochs=1)), out=tmp_path / "half", log=quiet, progress=None)
    seen.clear()
    resumed, _ = train(data, TrainConfig(), resume=tmp_path / "half", resume_epochs=3, log=quiet, progress=None)
    assert seen == pytest.approx(want[13:], rel=1e-12)
    assert strip_timing(resumed)["history"] == strip_timing(full)["history"]
    # no warmup: every step at the epoch's rate
    seen.clear()
    train(data, TrainConfig(**dict(cfg, lr_warmup=0, epochs=1)), log=quiet, progress=None)
    assert seen == [0.1] * 13


def test_mba_lambda_default_is_the_training_samples_per_goods_id_over_20(data, tmp_path):
    from minidin.config import reg_strength

    cfg = TrainConfig(**dict(SMALL, epochs=1))
    assert cfg.reg == "mba" and cfg.reg_lambda is None
    S, V = len(data.splits["train"]), data.n_goods
    auto, _ = train(data, cfg, out=tmp_path / "auto", log=quiet, progress=None)
    assert auto["reg_lambda"] == pytest.approx(S / (20 * V), rel=1e-15)
    assert read_checkpoint(tmp_path / "auto", "best")[1]["reg_lambda"] == auto["reg_lambda"]
    given, _ = train(data, TrainConfig(**dict(SMALL, epochs=1, reg_lambda=S / (20 * V))), log=quiet, progress=None)
    assert strip_timing(given)["history"] == strip_timing(auto)["history"]  # the same run as λ given by hand
    other, _ = train(data, TrainConfig(**dict(SMALL, epochs=1, reg_lambda=3.0)), log=quiet, progress=None)
    assert strip_timing(other)["history"] != strip_timing(auto)["history"]
    assert reg_strength(TrainConfig(reg="none"), S, V) == 0.0
    assert reg_strength(TrainConfig(reg_lambda=0.5), S, V) == 0.5
    with pytest.raises(ValueError, match="reg_lambda: --reg l2 has no default strength"):
        TrainConfig(reg="l2")


def test_model_save_and_load(tmp_path):
    m = tiny_model(n_goods=5, n_cates=2, goods_dim=2, cate_dim=2, attention_units=(3,), hidden_units=(4,), seed=2,
                   dtype=np.float32)
    b = minidin.Batch.from_lists([[1, 2], []], [[0, 1], []], [3, 4], [1, 0], [1, 0])
    m.loss_and_grad(b)
    m.save(tmp_path / "m.npz")
    back = minidin.load(tmp_path / "m.npz")
    assert np.array_equal(back.predict(b), m.predict(b))
    assert back.config() == m.config()


def test_nan_loss_raises_and_keeps_last_good_checkpoint(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(data, TrainConfig(**dict(SMALL, epochs=1)), out=out, log=quiet, progress=None)
    before = (out / "best.npz").read_bytes()
    real = minidin.DIN.loss_and_grad
    calls = {"n": 0}

    def nan_after_a_while(self, batch, update_stats=True):
        calls["n"] += 1
        loss, g = real(self, batch, update_stats)
        return (float("nan") if calls["n"] > 5 else loss), g

    monkeypatch.setattr(minidin.DIN, "loss_and_grad", nan_after_a_while)
    with pytest.raises(TrainingError, match="loss became nan"):
        train(data, TrainConfig(**dict(SMALL, epochs=2)), out=out, log=quiet, progress=None, force=True)
    assert (out / "best.npz").read_bytes() == before
    minidin.load(out)


def test_interrupted_write_leaves_previous_checkpoint_loadable(data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(data, TrainConfig(**dict(SMALL, epochs=1)), out=out, log=quiet, progress=None)
    good = minidin.load(out)

    def crash(*a, **k):
        raise KeyboardInterrupt  # killed in the middle of writing

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        train(data, TrainConfig(**dict(SMALL, epochs=1, seed=9)), out=out, log=quiet, progress=None, force=True)
    monkeypatch.undo()
    again = minidin.load(out)
    assert all(np.array_equal(good.params[n], again.params[n]) for n in good.params)
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "best.npz").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        minidin.load(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        minidin.load(tmp_path / "nothing.npz")


def test_cli_train_then_evaluate_gives_the_same_metrics(tmp_path, capsys):
    out, js, ev = tmp_path / "run", tmp_path / "train.json", tmp_path / "eval.json"
    rc = main(["train", *CLI_DATA, *CLI_MODEL, "--epochs", "2", "--reg", "mba", "--reg-lambda", "0.01",
               "--out", str(out), "--json", str(js)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "oracle" in text and "test GAUC" in text
    summary = json.loads(js.read_text())
    for k in ("model", "activation", "reg", "epochs_run", "best_epoch", "valid", "test", "oracle",
              "train_seconds", "train_samples_per_second"):
        assert k in summary, k
    assert set(summary["valid"]) == {"auc", "gauc", "logloss"} and set(summary["oracle"]) == {"auc", "gauc"}
    assert main(["evaluate", str(out), "--json", str(ev)]) == 0  # rebuilds the data from the checkpoint
    res = json.loads(ev.read_text())
    assert res["valid"] == summary["valid"] and res["test"] == summary["test"]
    assert res["oracle"] == summary["oracle"] and res["best_epoch"] == summary["best_epoch"]
    assert set(summary) - {"history", "reg_lambda"} <= set(res)


def test_cli_same_seed_same_json(tmp_path):
    outs = []
    for i in range(2):
        p = tmp_path / f"{i}.json"
        assert main(["train", *CLI_DATA, *CLI_MODEL, "--epochs", "2", "--model", "base", "--json", str(p)]) == 0
        outs.append(strip_timing(json.loads(p.read_text())))
    assert outs[0] == outs[1]


@pytest.mark.parametrize("argv,match", [
    (["train", "--hidden-units", "8,x"], "hidden-units"),
    (["train", "--data", "/nonexistent/dir"], "not a dataset directory"),
    (["evaluate", "/nonexistent/ckpt"], "does not exist"),
    (["train", "--threads", "999"], "threads"),
    (["train", "--lr", "-1"], "lr"),
    (["train", "--lr-warmup", "-5"], "lr-warmup"),
    (["train", "--lr-warmup", "2.5"], "lr-warmup"),
    (["train", "--reg", "l2"], "--reg-lambda: --reg l2 has no default strength"),
    (["train", "--data", "/nonexistent/dir", "--reg", "l2"], "--reg-lambda: --reg l2 has no default strength"),
])
def test_cli_errors_are_one_line(argv, match, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and match in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3


def test_cli_resume_continues_to_more_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *CLI_DATA, *CLI_MODEL, "--epochs", "3", "--patience", "9", "--out", str(out),
                 "--json", str(tmp_path / "full.json")]) == 0
    full = json.loads((tmp_path / "full.json").read_text())
    part = tmp_path / "part"
    assert main(["train", *CLI_DATA, *CLI_MODEL, "--epochs", "1", "--patience", "9", "--out", str(part)]) == 0
    assert main(["train", "--resume", str(part), "--epochs", "3", "--json", str(tmp_path / "res.json")]) == 0
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["epochs_run"] == 3
    assert strip_timing(res)["history"] == strip_timing(full)["history"]
    assert "resumed from epoch 1" in capsys.readouterr().out
    assert json.loads((part / "last.json").read_text())["epoch"] == 2


def test_written_files_get_normal_permissions(tmp_path):
    m = minidin.BaseModel(n_goods=3, n_cates=2, goods_dim=2, cate_dim=2, hidden_units=(2,))
    m.save(tmp_path / "m.npz")
    mask = os.umask(0)
    os.umask(mask)
    for f in ("m.npz", "m.json"):
        assert (tmp_path / f).stat().st_mode & 0o777 == 0o666 & ~mask


def test_cli_goods_bias_and_optimizer_options_reach_the_model_and_checkpoint(tmp_path):
    """--goods-bias adds the goods_bias table (trained, saved, restored); --emb-std and --adagrad-init apply."""
    out, js, ev = tmp_path / "run", tmp_path / "train.json", tmp_path / "eval.json"
    assert main(["train", *CLI_DATA, *CLI_MODEL, "--epochs", "1", "--goods-bias", "--emb-std", "0.05",
                 "--adagrad-init", "0", "--reg", "mba", "--reg-lambda", "0.1", "--out", str(out),
                 "--json", str(js)]) == 0
    model = minidin.load(out)
    assert model.goods_bias and model.emb_std == 0.05
    assert model.params["goods_bias"].shape == (model.n_goods, 1) and np.any(model.params["goods_bias"] != 0)
    assert main(["evaluate", str(out), "--json", str(ev)]) == 0
    assert json.loads(ev.read_text())["test"] == json.loads(js.read_text())["test"]


def _fingerprint(d):
    """Every attribute of a Dataset, arrays by content: equal before and after means untouched."""
    arrays = [d.seq_goods, d.seq_cates, d.seq_offsets]
    for s in d.splits.values():
        arrays += [s.users, s.ends, s.cand_goods, s.cand_cates, s.labels]
    return (d.max_history, d.n_goods, d.n_cates, json.dumps(d.description, sort_keys=True),
            [a.tobytes() for a in arrays])


def test_train_and_evaluate_leave_the_dataset_and_thread_count_unchanged(tmp_path):
    import dataclasses

    import numba

    data = dataclasses.replace(make_synthetic(**DATA), max_history=3)  # a dataset with its own window
    before, threads = _fingerprint(data), numba.get_num_threads()
    # the dataset's window is the default: the run's checkpoint records 3 and MBA counts use it
    s, model = train(data, TrainConfig(**dict(SMALL, epochs=1, reg="mba", reg_lambda=0.1, threads=1)),
                     out=tmp_path / "a", log=quiet, progress=None)
    assert s["max_history"] == 3 and read_checkpoint(tmp_path / "a", "best")[1]["max_history"] == 3
    assert _fingerprint(data) == before and numba.get_num_threads() == threads
    # an override is for that run only
    s2, _ = train(data, TrainConfig(**dict(SMALL, epochs=1, max_history=5)), log=quiet, progress=None)
    assert s2["max_history"] == 5 and _fingerprint(data) == before
    evaluate(model, data, "test")
    evaluate(model, data, "valid", max_history=1)
    assert _fingerprint(data) == before
    # the window changes what the model sees: the same model scored on 1 vs 3 behaviours differs
    assert evaluate(model, data, "test") == s["test"]
    assert evaluate(model, data, "test", max_history=1) != s["test"]


@pytest.mark.parametrize("model", ["din", "base"])
def test_checkpoint_round_trips_every_model_config_field(tmp_path, model):
    """Every ModelConfig field away from its default comes back from save + load as it went in (a DIN with
    attention_split=False used to come back with True)."""
    from dataclasses import fields

    from minidin.config import ModelConfig

    changed = dict(model=model, n_goods=7, n_cates=3, pooling="mean", goods_dim=3, cate_dim=2,
                   attention_units=(5, 2), attention_activation="sigmoid", attention_softmax=True,
                   attention_split=False, hidden_units=(4, 3, 2), activation="prelu", dice_momentum=0.3,
                   dice_eps=1e-5, emb_std=0.2, goods_bias=False, dtype="float64", seed=9,
                   fields=(minidin.FieldSpec("genres", "item", 4, 2, multi_hot=True, pooling="sum"),
                           minidin.FieldSpec("age", "user", 3, 1), minidin.FieldSpec("hour", "context", 24, 3)))
    defaults = ModelConfig(n_goods=1, n_cates=1)
    assert {f.name for f in fields(ModelConfig)} == set(changed)
    assert all(changed[f.name] != getattr(defaults, f.name) for f in fields(ModelConfig) if f.name != "model")
    cfg = ModelConfig(**changed)
    m = minidin.model.from_config(cfg)
    m.params["mlp.0.b"][...] = 0.5
    minidin.save(m, tmp_path / "m.npz")
    back = minidin.load(tmp_path / "m.npz")
    assert back.cfg == cfg and type(back) is type(m)
    assert all(np.array_equal(back.params[n], m.params[n]) for n in m.params)
