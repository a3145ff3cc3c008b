"""What minidin promises about files: `--out` never destroys what minidin did not write, and replacing a
previous output never leaves nothing loadable, wherever a run is killed."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import minidin.io as mio
from minidin.cli import main
from minidin.data import Dataset, make_synthetic
from minidin.data.prepare import prepare_movielens
from minidin.train import TrainConfig, train

FIX = Path(__file__).parent / "fixtures" / "movielens"
SMALL = dict(n_users=30, n_cates=5, goods_per_cate=3, min_len=2, max_len=8, train_per_user=3, valid_per_user=2,
             test_per_user=2)
TINY = dict(goods_dim=3, cate_dim=2, attention_units=(4,), hidden_units=(4,), batch_size=16, epochs=1)


def quiet(*a, **k):
    return None


def tree(path):
    """Every file under path with its bytes: equal before and after means untouched."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(Path(path).rglob("*")) if p.is_file()}


@pytest.fixture
def inputs(tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    shutil.copyfile(FIX / "csv_ratings.fixture", d / "ratings.csv")
    shutil.copyfile(FIX / "csv_movies.fixture", d / "movies.csv")
    return d


def prepare_cli(inputs, out):
    return main(["prepare", "movielens", "--ratings", str(inputs / "ratings.csv"), "--movies",
                 str(inputs / "movies.csv"), "--out", str(out)])


# ---------------------------------------------------------------------------- prepare --out
def test_prepare_refuses_a_folder_it_did_not_write(tmp_path, inputs, capsys):
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "notes.txt").write_text("mine")
    before = tree(project)
    assert prepare_cli(inputs, project) == 2  # like `--out .` in a project
    assert "not empty and was not written by minidin" in capsys.readouterr().err
    assert tree(project) == before
    inputs_before = tree(inputs)
    assert prepare_cli(inputs, inputs) == 2  # --out is the folder the inputs were read from
    assert tree(inputs) == inputs_before
    (tmp_path / "afile").write_text("x")
    assert prepare_cli(inputs, tmp_path / "afile") == 2
    assert "is a file" in capsys.readouterr().err and (tmp_path / "afile").read_text() == "x"


def test_prepare_writes_a_new_or_empty_folder_and_replaces_its_own(tmp_path, inputs):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new", tmp_path / "empty"):
        assert prepare_cli(inputs, out) == 0
        assert mio.output_kind(out) == "dataset" and len(Dataset.load(out).splits["train"]) > 0
    first = Dataset.load(tmp_path / "new").fingerprint()
    assert prepare_cli(inputs, tmp_path / "new") == 0  # its own previous output: replaced
    assert Dataset.load(tmp_path / "new").fingerprint() == first
    names = sorted(os.listdir(tmp_path / "new"))
    assert len(names) == 3 and names[:2] == [".minidin", "data-" + names[1][5:]] and names[2] == "meta.json"
    # a run directory is not a dataset, and the other way round
    with pytest.raises(ValueError, match="holds a minidin dataset, not a run"):
        train(make_synthetic(**SMALL), TrainConfig(**TINY), out=tmp_path / "new", log=quiet, progress=None)


@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_replacing_a_dataset_leaves_one_loadable_wherever_it_is_killed(tmp_path, monkeypatch, kill_at):
    """Kill the replacement at each of its steps (write the new arrays, rename meta.json into place, remove
    the old arrays): the directory always loads, as the old dataset or as the new one."""
    old, new = make_synthetic(**SMALL), make_synthetic(**dict(SMALL, seed=5))
    path = tmp_path / "ds"
    old.save(path)
    steps = {"n": 0}
    real_write, real_remove = mio.atomic_write, os.remove

    class Killed(BaseException):
        pass

    def step():
        steps["n"] += 1
        if steps["n"] == kill_at:
            raise Killed

    def write(p, fn):
        step()
        real_write(p, fn)

    def remove(p):
        step()
        real_remove(p)

    import minidin.data.dataset as dsmod

    monkeypatch.setattr(dsmod, "atomic_write", write)
    monkeypatch.setattr(dsmod.os, "remove", remove)
    with pytest.raises(Killed):
        new.save(path)
    monkeypatch.undo()
    got = Dataset.load(path).fingerprint()  # it loads, as one of the two
    assert got == (old.fingerprint() if kill_at <= 2 else new.fingerprint())
    new.save(path)  # and the next save cleans up whatever the killed one left
    assert Dataset.load(path).fingerprint() == new.fingerprint()
    assert len([n for n in os.listdir(path) if n.endswith(".npz")]) == 1


# ---------------------------------------------------------------------------- train --out / --resume
def test_train_out_refuses_foreign_files_and_other_runs(tmp_path):
    data = make_synthetic(**SMALL)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not written by minidin"):
        train(data, TrainConfig(**TINY), out=foreign, log=quiet, progress=None)
    assert tree(foreign) == {"thesis.tex": b"years of work"}
    run = tmp_path / "run"
    train(data, TrainConfig(**TINY), out=run, log=quiet, progress=None)
    assert mio.output_kind(run) == "run"
    before = tree(run)
    with pytest.raises(ValueError, match="another run's checkpoints; pass --force"):
        train(data, TrainConfig(**dict(TINY, seed=1)), out=run, log=quiet, progress=None)
    assert tree(run) == before
    train(data, TrainConfig(**dict(TINY, seed=1)), out=run, log=quiet, progress=None, force=True)
    assert tree(run) != before
    # resuming the same run into its own directory needs no --force
    train(data, TrainConfig(**TINY), out=run, resume=run, resume_epochs=2, log=quiet, progress=None)


def test_resume_refuses_other_data(tmp_path, capsys):
    run = tmp_path / "run"
    train(make_synthetic(**SMALL), TrainConfig(**TINY), out=run, log=quiet, progress=None)
    with pytest.raises(ValueError, match="not the data the checkpoint was trained on"):
        train(make_synthetic(**dict(SMALL, seed=7)), TrainConfig(**TINY), resume=run, resume_epochs=2, log=quiet,
              progress=None)
    # the CLI says it in one line
    assert main(["train", "--resume", str(run), "--epochs", "2", "--synthetic-users", "30", "--data-seed", "7"]) == 2
    assert "not the data the checkpoint was trained on" in capsys.readouterr().err


def test_cli_train_force(tmp_path, capsys):
    args = ["train", "--synthetic-users", "30", "--goods-dim", "3", "--cate-dim", "2", "--attention-units", "4",
            "--hidden-units", "4", "--epochs", "1", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    assert main(args) == 2 and "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    np.testing.assert_equal(mio.output_kind(tmp_path / "r"), "run")


def _tamper(src, dst, change):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(dst, **arrays)


def test_a_tampered_checkpoint_is_one_clear_error(tmp_path):
    import json

    import minidin

    m = minidin.DIN(n_goods=6, n_cates=3, goods_dim=3, cate_dim=2, attention_units=(4,), hidden_units=(3,))
    src = tmp_path / "m.npz"
    minidin.save(m, src)

    def meta_edit(fn):
        def change(a):
            meta = json.loads(str(a["meta_json"]))
            fn(meta)
            a["meta_json"] = np.array(json.dumps(meta))
        return change

    cases = {
        "missing": (lambda a: a.pop("param/mlp.0.W"), "missing param/mlp.0.W"),
        "unknown": (lambda a: a.__setitem__("param/extra", np.zeros(3, np.float32)), "unknown array param/extra"),
        "shape": (lambda a: a.__setitem__("param/mlp.0.b", np.zeros(4, np.float32)), "mlp.0.b has shape"),
        "type": (lambda a: a.__setitem__("param/mlp.0.b", np.array(["a", "b", "c"])), "not a numeric array"),
        "overflow": (lambda a: a.__setitem__("param/mlp.0.b", np.full(3, 1e300)), "beyond float32"),
        "nan": (lambda a: a.__setitem__("param/goods_emb", np.full((6, 3), np.nan, np.float32)), "NaN"),
        "variance": (lambda a: a.__setitem__("state/mlp.0.running_var", -np.ones(3, np.float32)), "negative variance"),
        "model name": (meta_edit(lambda m: m["model_config"].__setitem__("model", "dien")), "model: must be one of"),
        "dtype name": (meta_edit(lambda m: m["model_config"].__setitem__("dtype", "float16")), "dtype"),
        "config key": (meta_edit(lambda m: m["model_config"].__setitem__("depth", 3)), "unknown key"),
        "config type": (meta_edit(lambda m: m["model_config"].__setitem__("goods_dim", "3")), "goods_dim"),
    }
    for name, (change, match) in cases.items():
        bad = tmp_path / f"{name.replace(' ', '_')}.npz"
        _tamper(src, bad, change)
        with pytest.raises(ValueError, match=match):
            minidin.load(bad)
    with pytest.raises(TypeError, match="expected a path"):
        minidin.load(None)


def test_a_non_finite_gradient_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    import minidin
    from minidin.train import TrainingError

    data, out = make_synthetic(**SMALL), tmp_path / "run"
    train(data, TrainConfig(**TINY), out=out, log=quiet, progress=None)
    before = (out / "best.npz").read_bytes()
    real = minidin.DIN.loss_and_grad

    def inf_grad(self, batch, update_stats=True):
        loss, g = real(self, batch, update_stats)
        g["mlp.0.W"] = np.full_like(g["mlp.0.W"], np.inf)
        return loss, g

    monkeypatch.setattr(minidin.DIN, "loss_and_grad", inf_grad)
    with pytest.raises(TrainingError, match=r"epoch 1, after 0 samples: grads\['mlp.0.W'\]: contains NaN"):
        train(data, TrainConfig(**TINY), out=out, log=quiet, progress=None, force=True)
    assert (out / "best.npz").read_bytes() == before


def _edit_dataset(src, dst, meta_change=None, array_change=None):
    import json

    shutil.copytree(src, dst)
    meta = json.loads((dst / "meta.json").read_text())
    data = dst / meta.get("data_file", "data.npz")
    if array_change:
        with np.load(data) as z:
            arrays = {k: z[k] for k in z.files}
        array_change(arrays)
        np.savez(data, **arrays)
    if meta_change:
        meta_change(meta)
        (dst / "meta.json").write_text(json.dumps(meta))
    return data


@pytest.mark.parametrize("name,edit,match", [
    ("truncated", "truncate", "BadZipFile"),
    ("not json", "garble", "JSONDecodeError"),
    ("no n_goods", (lambda m: m.pop("n_goods"), None), "KeyError: 'n_goods'"),
    ("n_goods text", (lambda m: m.__setitem__("n_goods", "x"), None), "n_goods must be a whole number"),
    ("n_goods fraction", (lambda m: m.__setitem__("n_goods", 12.5), None), "n_goods must be a whole number"),
    ("absurd size", (lambda m: m.__setitem__("n_goods", 10**15), None), "n_goods must be a whole number"),
    ("no valid split", (lambda m: m.__setitem__("splits", ["train", "test"]), None), "splits must list"),
    ("fractional ids", (None, lambda a: a.__setitem__("train/cand_goods", a["train/cand_goods"] + 0.5)),
     "train/cand_goods must be a 1-D integer array"),
    ("data file outside", (lambda m: m.__setitem__("data_file", "../x.npz"), None), "data_file must be a file name"),
])
def test_a_broken_dataset_directory_is_one_line(tmp_path, capsys, name, edit, match):
    src = tmp_path / "ds"
    make_synthetic(**SMALL).save(src)
    dst = tmp_path / "bad"
    if edit == "truncate":
        data = _edit_dataset(src, dst)
        data.write_bytes(data.read_bytes()[:100])
    elif edit == "garble":
        _edit_dataset(src, dst)
        (dst / "meta.json").write_text("{not json")
    else:
        _edit_dataset(src, dst, *edit)
    with pytest.raises(ValueError, match=match):
        Dataset.load(dst)
    assert main(["train", "--data", str(dst), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "minidin: error: data:" in err and str(dst) in err


def test_a_split_with_one_class_is_refused_before_training(tmp_path, capsys):
    src = tmp_path / "ds"
    make_synthetic(**SMALL).save(src)
    _edit_dataset(src, tmp_path / "bad", None, lambda a: a.__setitem__("valid/labels", np.ones_like(a["valid/labels"])))
    Dataset.load(tmp_path / "bad")  # loads: the data is well formed
    assert main(["train", "--data", str(tmp_path / "bad"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "the valid split has only one class" in err and err.count("\n") == 1
