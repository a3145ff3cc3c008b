import subprocess
import sys

import pytest

from minidin.cli import main


@pytest.mark.parametrize("argv", [
    ["gradcheck"],
    ["gradcheck", "--activation", "prelu", "--seed", "2"],
    ["gradcheck", "--activation", "sigmoid", "--attention-softmax"],
    ["gradcheck", "--model", "base", "--activation", "dice"],
])
def test_gradcheck_passes(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "max rel err" in out and "goods_emb" in out


def test_gradcheck_exits_1_on_a_wrong_gradient(monkeypatch, capsys):
    import minidin.layers.pooling as pooling
    from minidin import model as model_mod

    real = pooling.pooling_backward

    def wrong(dweights, dhist_emb, dout, weights, hist_emb, offsets):
        real(dweights, dhist_emb, dout, weights, hist_emb, offsets)
        dhist_emb *= 1.01  # 1% off

    monkeypatch.setattr(model_mod, "pooling_backward", wrong)
    assert main(["gradcheck", "--model", "base"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_console_help_and_version():
    out = subprocess.run([sys.executable, "-m", "minidin", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("minidin ")
    out = subprocess.run([sys.executable, "-m", "minidin", "gradcheck", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--attention-softmax" in out.stdout
    out = subprocess.run([sys.executable, "-m", "minidin", "gradcheck", "--activation", "relu"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_bench_runs_and_writes_json(tmp_path, capsys):
    import json

    p = tmp_path / "b.json"
    assert main(["bench", "--batch-sizes", "4", "--threads", "1", "--samples", "8", "--repeats", "1",
                 "--ranking-histories", "3", "--json", str(p)]) == 0
    res = json.loads(p.read_text())
    assert res["rows"][0]["batch"] == 4 and res["rows"][0]["train_sps"] > 0 and res["latency_us"] > 0
    schema = res["schema_rows"][0]
    assert schema["batch"] == 4 and schema["train_sps"] > 0 and schema["train_vs_default"] > 0
    assert res["ranking"]["histories"] == 3 and res["ranking"]["score_sps"] > 0
    out = capsys.readouterr().out
    assert "train samples/s" in out and "with a schema (genres: item, multi-hot, gender: user" in out
