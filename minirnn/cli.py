"""The ``minirnn`` command line (also ``python -m minirnn``).

    minirnn train --data tinyshakespeare --out runs/shakespeare [--time-budget 600]
    minirnn sample runs/shakespeare/checkpoint.npz --prompt "ROMEO:" --temperature 0.8
    minirnn plot runs/shakespeare
    minirnn gradcheck [--op lstm]
"""

from __future__ import annotations

import argparse
import re
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


def _cmd_train(args):
    from .train import TrainConfig, train

    fields = {k: v for k, v in vars(args).items()
              if k not in ("command", "func", "resume")}
    try:
        cfg = TrainConfig(**fields)
    except ValueError as e:
        flag = re.sub(r"^TrainConfig: (\w+)", lambda m: "--" + m.group(1).replace("_", "-"),
                      str(e))
        print(f"minirnn train: {flag}", file=sys.stderr)
        return 2
    try:
        train(cfg, resume=args.resume)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"minirnn train: {e}", file=sys.stderr)
        return 1
    return 0


# The sampling settings, as generate's messages name them -> the flags the user typed.
_SAMPLE_FLAGS = re.compile(r"^(temperature|top_k|top_p|length)\b")


def _cmd_sample(args):
    from .generate import sample, validate_sampling
    from .train import load_model

    try:
        # Settings first: a typo should not wait for the checkpoint to load.
        validate_sampling(args.temperature, args.top_k, args.top_p)
        if args.length < 0:
            raise ValueError(f"length must be an int >= 0, got {args.length}")
        model, vocab, _ = load_model(args.checkpoint)
        model.eval()
        text = sample(model, vocab, prompt=args.prompt, length=args.length,
                      temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                      seed=args.seed)
    except (ValueError, OSError) as e:
        flag = _SAMPLE_FLAGS.sub(lambda m: "--" + m.group(1).replace("_", "-"), str(e))
        if flag != str(e):  # a flag is left out rather than set to None
            flag = flag.replace(" must be None or ", " must be ", 1)
        print(f"minirnn sample: {flag}", file=sys.stderr)
        return 1
    print(text)
    return 0


def _cmd_plot(args):
    from pathlib import Path

    from .viz import plot_training

    runs = {Path(r).name: r for r in args.runs}
    out = args.output or str(Path(args.runs[0]) / "loss.png")
    try:
        path = plot_training(runs, out, x=args.x)
    except (ValueError, FileNotFoundError) as e:
        print(f"minirnn plot: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _optional_int(text):
    return None if text.lower() == "none" else int(text)


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

    from .train import OPTIMIZERS, TrainConfig
    d = TrainConfig()
    t = sub.add_parser("train", help="train a char-RNN (or word-level RNN) language model")
    t.add_argument("--data", default=d.data, help="corpus name (tinyshakespeare, ptb) or a "
                   "text file; names are found in $MINIRNN_DATA/<name>/ or downloaded")
    t.add_argument("--level", choices=["char", "word"], default=d.level)
    t.add_argument("--cell", choices=["lstm", "gru", "rnn"], default=d.cell)
    t.add_argument("--hidden-size", type=int, default=d.hidden_size)
    t.add_argument("--num-layers", type=int, default=d.num_layers)
    t.add_argument("--embedding-dim", type=_optional_int, default=d.embedding_dim,
                   help="size of a learned embedding; default: one-hot input")
    t.add_argument("--dropout", type=float, default=d.dropout)
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--seq-len", type=int, default=d.seq_len, help="steps of truncated BPTT")
    t.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=d.optimizer)
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--clip", type=float, default=d.clip, help="largest global gradient norm")
    t.add_argument("--steps", type=int, default=None,
                   help="optimizer steps (default 2000 when no --time-budget is given)")
    t.add_argument("--time-budget", type=float, default=None,
                   help="seconds of training (evaluation time not counted)")
    t.add_argument("--eval-every", type=int, default=d.eval_every)
    t.add_argument("--eval-batches", type=int, default=None,
                   help="validation batches per evaluation (default: the whole split)")
    t.add_argument("--save-every", type=int, default=d.save_every)
    t.add_argument("--sample-length", type=int, default=d.sample_length)
    t.add_argument("--val-fraction", type=float, default=d.val_fraction)
    t.add_argument("--encoding", default=d.encoding)
    t.add_argument("--max-vocab", type=int, default=d.max_vocab)
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--out", default=d.out, help="run directory")
    t.add_argument("--no-progress", dest="progress", action="store_false")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="generate text from a trained checkpoint")
    s.add_argument("checkpoint")
    s.add_argument("--prompt", default="")
    s.add_argument("--length", type=int, default=500)
    s.add_argument("--temperature", type=float, default=1.0, help="0 means greedy")
    s.add_argument("--top-k", type=int, default=None)
    s.add_argument("--top-p", type=float, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.set_defaults(func=_cmd_sample)

    pl = sub.add_parser("plot", help="draw the loss curves of one or more run directories")
    pl.add_argument("runs", nargs="+")
    pl.add_argument("--output", "-o", default=None, help="PNG path (default RUN/loss.png)")
    pl.add_argument("--x", choices=["step", "time"], default="step")
    pl.set_defaults(func=_cmd_plot)
    return p


def _never_fail_on_output():
    """Characters the terminal's encoding lacks (an emoji on a cp1252 console) print as
    escapes instead of ending a run with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a closed or detached stream
                pass


def main(argv=None):
    args = build_parser().parse_args(argv)
    _never_fail_on_output()
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
