"""The ``minirnn`` command line (also ``python -m minirnn``).

    minirnn train --data tinyshakespeare --out runs/shakespeare [--time-budget 600]
    minirnn sample runs/shakespeare/checkpoint.npz --prompt "ROMEO:" --temperature 0.8
    minirnn plot runs/shakespeare
    minirnn seq2seq train --task dates --out runs/dates
    minirnn seq2seq translate runs/dates/checkpoint.npz "tue 3 march 2020" --beam-width 4
    minirnn convlstm train --task moving-squares --out runs/squares
    minirnn gradcheck [--op lstm]
    minirnn assignment list
    minirnn assignment make lstm --out hw2
    minirnn assignment grade hw2 [--json grades.json]
"""

from __future__ import annotations

import argparse
import functools
import re
import sys


def _errors_in_one_line(prog, errors=(ValueError, OSError)):
    """Decorate a command so that ``errors`` print as one line, ``prog: message``, and
    exit with status 1 instead of a traceback."""
    def wrap(command):
        @functools.wraps(command)
        def run(args):
            try:
                return command(args)
            except errors as e:
                print(f"{prog}: {e}", file=sys.stderr)
                return 1
        return run
    return wrap


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

    try:
        cfg = TrainConfig(**_config_fields(args))
    except ValueError as e:  # a usage error: exit 2, like argparse
        print(f"minirnn train: {_as_flags(str(e))}", file=sys.stderr)
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
    from .generate import beam_sample_text, sample, validate_sampling
    from .train import load_model

    try:
        # Settings first: a typo should not wait for the checkpoint to load.
        validate_sampling(args.temperature, args.top_k, args.top_p)
        if args.length < 0:
            raise ValueError(f"length must be an int >= 0, got {args.length}")
        if args.beam_width < 1:
            raise ValueError(f"--beam-width must be at least 1, got {args.beam_width}")
        model, vocab, _ = load_model(args.checkpoint)
        model.eval()
        if args.beam_width > 1:  # the most probable continuation, not a random one
            text = beam_sample_text(model, vocab, args.prompt, beam_width=args.beam_width,
                                    length=args.length)
        else:
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


@_errors_in_one_line("minirnn plot", (ValueError, FileNotFoundError))
def _cmd_plot(args):
    from pathlib import Path

    from .viz import plot_training

    runs = {Path(r).name: r for r in args.runs}
    out = args.output or str(Path(args.runs[0]) / "loss.png")
    print(plot_training(runs, out, x=args.x))
    return 0


def _as_flags(message):
    """'SomeConfig: seq_len must ...' -> '--seq-len must ...' (the flag the user typed)."""
    return re.sub(r"^\w+Config: (\w+)", lambda m: "--" + m.group(1).replace("_", "-"),
                  message)


def _config_fields(args):
    return {k: v for k, v in vars(args).items()
            if k not in ("command", "seq_command", "conv_command", "func", "resume")}


def _train_with(config_cls, train_fn, prog, args):
    """Build ``config_cls`` from the flags and train; errors become one line, exit 1."""
    try:
        train_fn(config_cls(**_config_fields(args)))
    except (ValueError, OSError, RuntimeError) as e:
        print(f"{prog}: {_as_flags(str(e))}", file=sys.stderr)
        return 1
    return 0


def _cmd_seq2seq_train(args):
    from .seq2seq_train import Seq2SeqConfig, train_seq2seq

    return _train_with(Seq2SeqConfig, train_seq2seq, "minirnn seq2seq train", args)


@_errors_in_one_line("minirnn seq2seq translate", (ValueError, TypeError, OSError))
def _cmd_seq2seq_translate(args):
    from .seq2seq_train import attention_weights, load_seq2seq, translate

    if args.beam_width < 1:
        raise ValueError(f"--beam-width must be at least 1, got {args.beam_width}")
    model, vocab, _ = load_seq2seq(args.checkpoint)
    outputs = translate(model, vocab, args.sources, beam_width=args.beam_width)
    for src, out in zip(args.sources, outputs):
        print(f"{src}\t{out}" if len(args.sources) > 1 else out)
    if args.show_attention:
        from .viz import plot_attention
        w = attention_weights(model, vocab, args.sources[0], outputs[0])
        print(plot_attention(w, args.sources[0], outputs[0], args.show_attention,
                             title=f"{args.sources[0]} -> {outputs[0]}"), file=sys.stderr)
    return 0


def _cmd_convlstm_train(args):
    from .convlstm_train import ConvLSTMConfig, train_convlstm

    return _train_with(ConvLSTMConfig, train_convlstm, "minirnn convlstm train", args)


def _cmd_assignment_list(args):
    from .assignment import ASSIGNMENTS, checks

    for a in ASSIGNMENTS.values():
        print(f"{a.name}: {a.title}")
        print(f"  minirnn/functional/{a.module}.py, notebooks/{a.notebook}.ipynb")
        print("  graded: " + ", ".join(f"{fn} ({p})" for fn, p in checks.functions(a.name)))
    return 0


@_errors_in_one_line("minirnn assignment make")
def _cmd_assignment_make(args):
    from .assignment.workspace import make_workspace

    made = make_workspace(args.name, args.out, solutions=args.solutions,
                          notebooks=args.notebooks)
    what = "kept (answer key)" if args.solutions else f"{made['stripped']} replaced by stubs"
    print(f"wrote the {args.name!r} workspace to {made['out']}: solution regions {what}")
    if made["notebook"] is not None:
        print(f"notebook: {made['notebook']}")
    for note in made["notes"]:
        print(f"note: {note}")
    print(f"students: cd {made['out']} && python -m pip install -e \".[test]\" && python -m pytest")
    return 0


@_errors_in_one_line("minirnn assignment grade")
def _cmd_assignment_grade(args):
    import json
    from pathlib import Path

    from .assignment.workspace import grade_workspace

    report = grade_workspace(args.folder, timeout=args.timeout, assignment=args.assignment)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_dict(), indent=2) + "\n",
                                   encoding="utf-8")
    return 0


def _optional_int(text):
    return None if text.lower() == "none" else int(text)


def build_parser():
    p = argparse.ArgumentParser(prog="minirnn", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gradcheck", help="check every backward pass against centred differences")
    g.add_argument("--op", help="one op or family (rnn, lstm, gru, embedding, affine, "
                                "softmax_cross_entropy, additive_attention, convlstm, "
                                "conv2d_same, im2col); default: all")
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
    s.add_argument("--beam-width", type=int, default=1,
                   help="K > 1: beam search for the most probable continuation (ignores "
                        "--temperature/--top-k/--top-p)")
    s.set_defaults(func=_cmd_sample)

    from .seq2seq_train import Seq2SeqConfig
    sd = Seq2SeqConfig()
    seq = sub.add_parser("seq2seq", help="encoder-decoder with attention on generated tasks")
    seq_sub = seq.add_subparsers(dest="seq_command", required=True)
    st = seq_sub.add_parser("train", help="train on dates, reverse or sort")
    st.add_argument("--task", choices=["dates", "reverse", "sort"], default=sd.task)
    st.add_argument("--cell", choices=["lstm", "gru"], default=sd.cell)
    st.add_argument("--bidirectional", action=argparse.BooleanOptionalAction,
                    default=sd.bidirectional)
    for name in ("embedding_dim", "hidden_size", "attention_size", "batch_size",
                 "eval_every", "n_train", "n_test", "seed"):
        st.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(sd, name))
    st.add_argument("--lr", type=float, default=sd.lr)
    st.add_argument("--clip", type=float, default=sd.clip)
    st.add_argument("--steps", type=int, default=None)
    st.add_argument("--time-budget", type=float, default=None, help="seconds of training")
    st.add_argument("--out", default=sd.out)
    st.add_argument("--no-progress", dest="progress", action="store_false")
    st.set_defaults(func=_cmd_seq2seq_train)
    tr = seq_sub.add_parser("translate", help="decode source strings with a trained model")
    tr.add_argument("checkpoint")
    tr.add_argument("sources", nargs="+", help="source strings, e.g. 'tue 3 march 2020'")
    tr.add_argument("--beam-width", type=int, default=1, help="1 = greedy")
    tr.add_argument("--show-attention", metavar="PNG", default=None,
                    help="draw the attention of the first source into this PNG")
    tr.set_defaults(func=_cmd_seq2seq_translate)

    from .convlstm_train import ConvLSTMConfig
    cd = ConvLSTMConfig()
    cv = sub.add_parser("convlstm", help="Conv-LSTM next-frame prediction on generated videos")
    cv_sub = cv.add_subparsers(dest="conv_command", required=True)
    ct = cv_sub.add_parser("train", help="train on moving squares; writes checkpoint.npz, "
                                         "metrics.jsonl and prediction.png into --out")
    ct.add_argument("--task", choices=["moving-squares"], default=cd.task)
    for name in ("hidden_channels", "kernel_size", "num_layers", "batch_size", "eval_every",
                 "seed"):
        ct.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(cd, name))
    ct.add_argument("--lr", type=float, default=cd.lr)
    ct.add_argument("--steps", type=int, default=None,
                    help="optimizer steps (default 2000 when no --time-budget is given)")
    ct.add_argument("--time-budget", type=float, default=None, help="seconds of training")
    ct.add_argument("--out", default=cd.out)
    ct.add_argument("--no-progress", dest="progress", action="store_false")
    ct.set_defaults(func=_cmd_convlstm_train)

    from .assignment import ASSIGNMENTS
    asg = sub.add_parser("assignment", help="classroom assignments made from the library's "
                                            "own source, and their grading")
    asg_sub = asg.add_subparsers(dest="assignment_command", required=True)
    asg_sub.add_parser("list", help="the assignments and the functions each grades"
                       ).set_defaults(func=_cmd_assignment_list)
    am = asg_sub.add_parser("make", help="write a student workspace into a new folder")
    am.add_argument("name", choices=list(ASSIGNMENTS))
    am.add_argument("--out", required=True, help="a new or empty folder")
    am.add_argument("--solutions", action="store_true",
                    help="keep the solution regions (an answer key that grades 100%%)")
    am.add_argument("--notebooks", default=None,
                    help="folder of the project's notebooks (default: the checkout's)")
    am.set_defaults(func=_cmd_assignment_make)
    ag = asg_sub.add_parser("grade", help="run the graded tests on a workspace; "
                                          "a score per function and a total")
    ag.add_argument("folder")
    ag.add_argument("--json", metavar="FILE", default=None, help="also write the grades here")
    ag.add_argument("--assignment", choices=list(ASSIGNMENTS), default=None,
                    help="which assignment, for a folder without the workspace's "
                         ".minirnn-assignment.json (only the student's minirnn/ collected)")
    ag.add_argument("--timeout", type=float, default=600,
                    help="seconds before the student's code is stopped (default 600)")
    ag.set_defaults(func=_cmd_assignment_grade)

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
