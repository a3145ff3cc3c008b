"""The ``minidin`` command line: gradcheck, train, evaluate.

Every command is a thin layer over the Python API; errors in options or files
are reported in one line (``minidin: error: ...``) with exit status 2.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from . import __version__


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus where to find help), not the whole usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------- gradcheck
def cmd_gradcheck(args):
    from .gradcheck import ATOL, RTOL, check_model, format_reports, random_check_setup

    m, batch = random_check_setup(args.model, args.activation, args.attention_softmax, args.seed, args.pooling)
    print(f"minidin gradcheck: {m!r}")
    print(f"batch: B={batch.size}, history lengths {batch.lengths.tolist()}, "
          f"goods ids {batch.hist_goods.tolist()} | candidates {batch.cand_goods.tolist()}")
    print(f"central differences in float64, h=1e-6 (Ridders' extrapolation where that misses); "
          f"an entry passes where |a-n| <= {ATOL:g} or |a-n|/max(1e-8,|a|+|n|) <= {RTOL:g}")
    print("Dice layers run in training mode: the gradient goes through the batch mean and variance.\n")
    reports = check_model(m, batch)
    print(format_reports(reports))
    failed = sum(r.failed for r in reports.values())
    excluded = sum(r.excluded for r in reports.values())
    total = sum(r.checked for r in reports.values())
    print(f"\n{total} entries checked, {excluded} excluded (within a step of a PReLU kink), {failed} failed")
    print("PASS" if failed == 0 else "FAIL")
    return 0 if failed == 0 else 1


# ---------------------------------------------------------------------------- parser
def build_parser():
    from .config import choices, default

    p = _Parser(prog="minidin", description="A from-scratch Deep Interest Network in NumPy + Numba.")
    p.add_argument("--version", action="version", version=f"minidin {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("gradcheck", help="check every gradient of a small random model by finite differences",
                       description="Run the whole-model finite-difference check on a random small float64 model "
                                   "and print the max relative error per parameter. Exits 1 above tolerance.")
    g.add_argument("--model", choices=choices("model"), default=default("model"))
    g.add_argument("--activation", choices=choices("activation"), default=default("activation"))
    g.add_argument("--attention-softmax", action="store_true", help="softmax over each history (official code)")
    g.add_argument("--pooling", choices=choices("pooling"), default=default("pooling"), help="BaseModel pooling")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_gradcheck)

    from . import train_cli

    train_cli.add_commands(sub)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        print(f"minidin: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("minidin: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
