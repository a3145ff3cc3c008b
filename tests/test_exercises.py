"""The exercise grader: it passes the library's own kernels, fails a 1%-wrong answer, and fails the stubs."""
import numpy as np
import pytest

import minidin
import minidin.layers as L
from minidin.cli import main
from minidin.exercises import EXERCISES, grade
from minidin.sparse import SparseGrad


def _prelu(dout, x, alpha):
    dx, da = np.zeros_like(x), np.zeros_like(alpha)
    L.prelu_backward(dx, da, dout, x, alpha)
    return {"x": dx, "alpha": da}


def _pooling(dout, weights, hist, offsets):
    dw, dh = np.zeros_like(weights), np.zeros_like(hist)
    L.pooling_backward(dw, dh, dout, weights, hist, offsets)
    return {"weights": dw, "hist": dh}


def _attention_input(dout, cand, hist, offsets):
    dc, dh = np.zeros_like(cand), np.zeros_like(hist)
    L.attention_input_backward(dc, dh, np.ascontiguousarray(dout), cand, hist, offsets)
    return {"cand": dc, "hist": dh}


def _dice(dout, x, alpha):
    out, xhat, p, inv = np.empty_like(x), np.empty_like(x), np.empty_like(x), np.empty(x.shape[1])
    L.dice_forward(out, xhat, p, inv, x, alpha, np.zeros(x.shape[1]), np.ones(x.shape[1]), True, 0.0, 1e-8)
    dx, da = np.zeros_like(x), np.zeros_like(alpha)
    L.dice_backward(dx, da, np.ascontiguousarray(dout), x, xhat, p, inv, alpha, True)
    return {"x": dx, "alpha": da}


def _mba(dout, table, rows, counts, lam):
    """The optimizer's own MBA term: an SGD step (lr 1) with a zero data gradient moves row j by λ·w_j/n_j."""
    m = minidin.BaseModel(n_goods=table.shape[0], n_cates=1, goods_dim=table.shape[1], cate_dim=1,
                          hidden_units=(2,), dtype=np.float64)
    m.params["goods_emb"][...] = table
    opt = minidin.SGD(m.params, lr=1.0, reg="mba", reg_lambda=lam,
                      counts={"goods_emb": counts, "cate_emb": np.ones(1)})
    g = m.zero_grads()
    g["goods_emb"] = SparseGrad(rows.astype(np.int64), np.zeros((rows.size, table.shape[1])), table.shape[0])
    opt.step(g)
    return {"table": (table - m.params["goods_emb"]) * dout[0]}


SOLUTIONS = {"prelu": _prelu, "pooling": _pooling, "attention_input": _attention_input, "dice": _dice,
             "mba": _mba}


def test_every_exercise_has_a_solution_and_a_stub():
    from pathlib import Path

    assert set(SOLUTIONS) == set(EXERCISES)
    stubs = Path(__file__).resolve().parents[1] / "docs" / "exercises"
    assert {p.stem for p in stubs.glob("*.py")} == set(EXERCISES)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_the_library_kernel_passes_and_a_one_percent_error_fails(name):
    e, solution = EXERCISES[name], SOLUTIONS[name]
    assert all(g.passed for g in grade(e, solution)), name
    for target in e.wrt:
        def wrong(dout, **inputs):
            out = solution(dout, **inputs)
            flat = out[target].reshape(-1)
            k = int(np.argmax(np.abs(flat)))  # one entry 1% off
            flat[k] *= 1.01
            return out

        grades = grade(e, wrong)
        bad = next(g for g in grades if g.name == target)
        assert not bad.passed and bad.n_wrong == 1 and len(bad.wrong) == 1


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_the_stubs_fail_with_a_clear_report(name, capsys):
    from pathlib import Path

    stub = Path(__file__).resolve().parents[1] / "docs" / "exercises" / f"{name}.py"
    assert main(["exercise", "check", name, str(stub)]) == 1
    out = capsys.readouterr().out
    assert "NotImplementedError" in out and out.rstrip().endswith("FAIL")


def test_exercise_cli_errors(tmp_path, capsys):
    assert main(["exercise", "check", "nope", "x.py"]) == 2
    assert "unknown name" in capsys.readouterr().err
    assert main(["exercise", "check", "prelu", str(tmp_path / "missing.py")]) == 2
    (tmp_path / "empty.py").write_text("x = 1\n")
    assert main(["exercise", "check", "prelu", str(tmp_path / "empty.py")]) == 2
    assert "no function backward" in capsys.readouterr().err
    assert main(["exercise", "list"]) == 0
