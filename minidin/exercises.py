"""Exercises graded by finite differences: write a backward pass, and the project's own checker grades it.

    minidin exercise list
    minidin exercise check NAME FILE.py

Each exercise gives a forward (the plain NumPy one of ``minidin.reference``) and asks for a function
``backward(dout, **inputs)`` in FILE.py that returns the gradient of every listed input. The grader draws
random float64 inputs and a random upstream gradient ``dout``, and compares each returned entry with the
central difference of <forward(inputs), dout> (``minidin.gradcheck``'s criterion: |a − n| ≤ 1e-9 or
|a − n| / max(1e-8, |a| + |n|) ≤ 1e-6), and prints the entries that are wrong. Stubs to start from are in
``docs/exercises/``; docs/exercises.md explains each one.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import reference as ref
from .gradcheck import H, central_difference, entries_pass, refined_estimate


@dataclass
class Exercise:
    name: str
    title: str
    wrt: tuple  # the inputs whose gradients backward must return
    make: Callable  # rng -> dict of inputs
    forward: Callable  # inputs -> output array (float64)
    signature: str


def _offsets(rng, B, max_t):
    lengths = rng.integers(0, max_t + 1, B)
    lengths[0] = max(lengths[0], 2)  # at least one history of two
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _prelu_inputs(rng):
    x = rng.standard_normal((5, 4))
    x[np.abs(x) < 0.05] = 0.3  # keep clear of the kink at 0, where no derivative exists
    return {"x": x, "alpha": rng.uniform(0.1, 0.4, 4)}


def _pooling_inputs(rng):
    off = _offsets(rng, 3, 3)
    return {"weights": rng.standard_normal(off[-1]), "hist": rng.standard_normal((off[-1], 4)), "offsets": off}


def _attention_inputs(rng):
    off = _offsets(rng, 3, 3)
    return {"cand": rng.standard_normal((3, 3)), "hist": rng.standard_normal((off[-1], 3)), "offsets": off}


def _mba_inputs(rng):
    return {"table": rng.standard_normal((6, 3)), "rows": np.array([0, 2, 3, 5]),
            "counts": np.array([4.0, 1.0, 2.0, 7.0, 1.0, 3.0]), "lam": 0.5}


EXERCISES = {e.name: e for e in (
    Exercise("prelu", "PReLU: f(x) = x if x > 0 else α·x, per unit", ("x", "alpha"), _prelu_inputs,
             lambda i: ref.prelu(i["x"], i["alpha"]), "backward(dout, x, alpha) -> {'x': (M, H), 'alpha': (H,)}"),
    Exercise("pooling", "Pooling: u_b = Σ_{n in b} w_n e_n over each ragged history", ("weights", "hist"),
             _pooling_inputs, lambda i: ref.pooling(i["weights"], i["hist"], i["offsets"], len(i["offsets"]) - 1),
             "backward(dout, weights, hist, offsets) -> {'weights': (N,), 'hist': (N, D)}"),
    Exercise("attention_input", "The attention unit's input [q, k, q − k, q ⊙ k] per behaviour",
             ("cand", "hist"), _attention_inputs, lambda i: ref.attention_input(i["cand"], i["hist"], i["offsets"]),
             "backward(dout, cand, hist, offsets) -> {'cand': (B, D), 'hist': (N, D)}"),
    Exercise("dice", "Dice in training mode, through the batch mean and variance (Eq. 9)", ("x", "alpha"),
             lambda rng: {"x": rng.standard_normal((6, 3)) * 2, "alpha": rng.uniform(0.1, 0.4, 3)},
             lambda i: ref.dice(i["x"], i["alpha"], None, None, True)[0],
             "backward(dout, x, alpha) -> {'x': (M, H), 'alpha': (H,)}  (eps = 1e-8)"),
    Exercise("mba", "The MBA penalty of one batch: Σ_{j in rows} λ/(2 n_j) ‖w_j‖²", ("table",), _mba_inputs,
             lambda i: np.array([0.5 * i["lam"] * sum(float(i["table"][j] @ i["table"][j]) / i["counts"][j]
                                                      for j in i["rows"])]),
             "backward(dout, table, rows, counts, lam) -> {'table': (V, D)}  (dout has shape (1,))"),
)}


@dataclass
class Grade:
    name: str  # the input graded
    checked: int
    wrong: list  # (index, yours, numerical) of the entries that are wrong, at most ``show``
    n_wrong: int
    problem: str = ""  # a missing key, a wrong shape, an exception

    @property
    def passed(self):
        return not self.problem and self.n_wrong == 0


def grade(exercise: Exercise, backward: Callable, seed=0, show=10) -> list:
    """Grade ``backward`` on random inputs: one ``Grade`` per input in ``exercise.wrt``."""
    rng = np.random.default_rng(seed)
    inputs = exercise.make(rng)
    out = exercise.forward(inputs)
    dout = rng.standard_normal(np.shape(out))
    try:
        got = backward(dout.copy(), **{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inputs.items()})
    except Exception as e:  # noqa: BLE001  (the learner's code: report whatever it raised)
        return [Grade(name, 0, [], 0, f"backward raised {type(e).__name__}: {e}") for name in exercise.wrt]
    grades = []
    for name in exercise.wrt:
        x = inputs[name]
        if not isinstance(got, dict) or name not in got:
            grades.append(Grade(name, 0, [], 0, f"backward returned no {name!r} (expected a dict keyed by input)"))
            continue
        a = np.asarray(got[name], dtype=np.float64)
        if a.shape != x.shape:
            grades.append(Grade(name, 0, [], 0, f"shape {a.shape}, expected {x.shape}"))
            continue

        def fun():
            return exercise.forward(inputs)

        wrong, n_wrong = [], 0
        for i in np.ndindex(x.shape):
            n = central_difference(fun, x, i, H, dout)
            if not entries_pass(a[i], n):
                n = refined_estimate(fun, x, i, dout)
            if not entries_pass(a[i], n):
                n_wrong += 1
                if len(wrong) < show:
                    wrong.append((i, float(a[i]), float(n)))
        grades.append(Grade(name, int(x.size), wrong, n_wrong))
    return grades


def load_backward(path):
    """The ``backward`` function defined in the Python file ``path``."""
    spec = importlib.util.spec_from_file_location("minidin_exercise_solution", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    fn = getattr(module, "backward", None)
    if not callable(fn):
        raise ValueError(f"{path}: defines no function backward(dout, ...)")
    return fn


def format_grades(exercise, grades) -> str:
    lines = [f"exercise {exercise.name}: {exercise.title}"]
    for g in grades:
        if g.problem:
            lines.append(f"  {g.name}: FAIL, {g.problem}")
            continue
        lines.append(f"  {g.name}: {g.checked - g.n_wrong} of {g.checked} entries right"
                     + ("" if g.passed else f", {g.n_wrong} wrong:"))
        for i, a, n in g.wrong:
            lines.append(f"    {g.name}{list(i)}: yours {a:.8g}, finite differences {n:.8g}")
    lines.append("PASS" if all(g.passed for g in grades) else "FAIL")
    return "\n".join(lines)
