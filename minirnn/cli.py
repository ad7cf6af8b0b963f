"""The ``minirnn`` command line (also ``python -m minirnn``).

    minirnn gradcheck [--op lstm] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys


def _cmd_gradcheck(args):
    from . import gradcheck

    names = [n for n in gradcheck.OPS if args.op is None or n == args.op
             or n.startswith(args.op + "_")]
    if not names:
        print(f"minirnn gradcheck: --op must name one of {', '.join(gradcheck.OPS)} "
              f"(or a family such as lstm), got {args.op!r}", file=sys.stderr)
        return 2
    report = gradcheck.GradcheckReport()
    for name in names:
        report += gradcheck.check_op(name, N=args.N, T=args.T, D=args.D, H=args.H,
                                     seed=args.seed, tol=args.tol)
    print(report)
    return 0 if report.passed else 1


def build_parser():
    p = argparse.ArgumentParser(prog="minirnn", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gradcheck", help="check every backward pass against centred differences")
    g.add_argument("--op", help="one op or family (rnn, lstm, gru, embedding, affine, "
                                "softmax_cross_entropy); default: all")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--tol", type=float, default=1e-7, help="largest relative error allowed")
    for dim, default in (("N", 2), ("T", 3), ("D", 4), ("H", 5)):
        g.add_argument(f"-{dim}", type=int, default=default, help=f"size of {dim}")
    g.set_defaults(func=_cmd_gradcheck)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
