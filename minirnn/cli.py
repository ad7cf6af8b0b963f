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
    minirnn assignment grade submissions/*/ --csv grades.csv

The flags of the training commands are the fields of their configs
(``minirnn.training``), with the fields' help text, limits and defaults. One error
policy for every command: a usage error (a bad flag or value) exits 2 with one line, a
failure at run time (a missing corpus, a corrupt checkpoint, divergence) exits 1 with
one line, Ctrl-C exits 130; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .settings import SettingError, limits_text


class UsageError(ValueError):
    """A command was called wrongly: exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``minirnn train: ...``), exit status 2."""

    def error(self, message):
        raise UsageError(message)


# --------------------------------------------------------------------------------------
# Flags from config fields
# --------------------------------------------------------------------------------------

def _value_parser(meta):
    """The string -> value function of a field's flag ("none" for an optional one)."""
    kind = meta["kind"]

    def parse(text):
        if meta["optional"] and text.lower() == "none":
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {limits_text(meta)}, got {text!r}") from None
    parse.__name__ = kind.__name__
    return parse


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def add_config_flags(parser, config_cls):
    """One flag per field of ``config_cls`` made with ``minirnn.settings.setting``: the
    fields its own class declares first, then those it inherits (the run's budget...)."""
    own = config_cls.__dict__.get("__annotations__", {})
    fields = sorted(dataclasses.fields(config_cls), key=lambda f: f.name not in own)
    for f in fields:
        meta = f.metadata
        if not meta.get("cli"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if meta["kind"] is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=f.default, help=meta["help"])
            continue
        shown = "" if f.default is None else " (default: %(default)s)"
        parser.add_argument(flag, dest=f.name, type=_value_parser(meta), default=f.default,
                            choices=meta["choices"], help=meta["help"] + shown,
                            metavar=None if meta["choices"] else _METAVARS[meta["kind"]])


def config_from(args, config_cls):
    """The config built from the parsed flags of ``config_cls``'s fields."""
    names = {f.name for f in dataclasses.fields(config_cls) if f.metadata.get("cli")}
    return config_cls(**{k: v for k, v in vars(args).items() if k in names})


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------

def blas_threads(n):
    from .backend import blas_threads as threads  # numpy loads here, inside main's try
    return threads(n)


def _cmd_train(args):
    from .training import train
    train(config_from(args, args.config), resume=args.resume)
    return 0


def _cmd_sample(args):
    from .generate import SampleConfig, beam_sample_text, sample_stream
    from .training import load_model

    s = config_from(args, SampleConfig)  # settings first: a typo should not wait for loading
    model, vocab, _ = load_model(args.checkpoint)
    model.eval()
    if s.beam_width > 1:  # the most probable continuation, not a random one
        with blas_threads(s.threads or 1):
            print(beam_sample_text(model, vocab, s.prompt, beam_width=s.beam_width,
                                   length=s.length))
        return 0
    pieces = sample_stream(model, vocab, prompt=s.prompt, length=s.length,
                           temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                           seed=s.seed, threads=s.threads)
    _write_as_it_comes(pieces, s.length)
    return 0


# A progress bar for sampling when the text goes to a file and stderr is a terminal.
_SAMPLE_BAR_FROM = 1000


def _write_as_it_comes(pieces, length):
    """Print the prompt and then each token as soon as it is drawn; on Ctrl-C, what was
    printed stays and the line is ended (``main`` then reports the interruption)."""
    from tqdm.auto import tqdm

    out = sys.stdout
    bar = tqdm(total=length, unit="tok", file=sys.stderr, dynamic_ncols=True,
               disable=not (length >= _SAMPLE_BAR_FROM and sys.stderr.isatty()
                            and not out.isatty()))
    try:
        out.write(next(pieces))  # the prompt: checked and encoded, nothing drawn yet
        for i, piece in enumerate(pieces):
            out.write(piece)
            if "\n" in piece or i % 64 == 0:
                out.flush()
            bar.update(1)
    finally:
        out.write("\n")
        out.flush()
        bar.close()


def _cmd_plot(args):
    from pathlib import Path

    from .viz import plot_training

    runs = {Path(r).name: r for r in args.runs}
    out = args.output or str(Path(args.runs[0]) / "loss.png")
    print(plot_training(runs, out, x=args.x))
    return 0


def _cmd_seq2seq_translate(args):
    from .generate import attention_weights, translate
    from .training import load_seq2seq

    if args.beam_width < 1:
        raise SettingError("translate", "beam_width", f"must be an int >= 1, got "
                                                      f"{args.beam_width}")
    model, vocab, _ = load_seq2seq(args.checkpoint)
    with blas_threads(args.threads):
        outputs = translate(model, vocab, args.sources, beam_width=args.beam_width)
    for src, out in zip(args.sources, outputs):
        print(f"{src}\t{out}" if args.with_source else out)
    if args.show_attention:
        from .viz import plot_attention
        w = attention_weights(model, vocab, args.sources[0], outputs[0])
        print(plot_attention(w, args.sources[0], outputs[0], args.show_attention,
                             title=f"{args.sources[0]} -> {outputs[0]}"), file=sys.stderr)
    return 0


def _cmd_gradcheck(args):
    from . import gradcheck

    names = [n for n in gradcheck.OPS if args.op is None or n == args.op
             or n.startswith(args.op + "_")]
    if not names:
        raise UsageError(f"--op must name one of {', '.join(gradcheck.OPS)} (or a family "
                         f"such as lstm), got {args.op!r}")
    report = gradcheck.GradcheckReport()
    with blas_threads(args.threads):
        for name in names:
            report += gradcheck.check_op(name, N=args.N, T=args.T, D=args.D, H=args.H,
                                         seed=args.seed, tol=args.tol)
    print(report)
    return 0 if report.passed else 1


def _cmd_assignment_list(args):
    from .assignment import ASSIGNMENTS, checks

    for a in ASSIGNMENTS.values():
        print(f"{a.name}: {a.title}")
        print(f"  {', '.join(a.files)}, notebooks/{a.notebook}.ipynb")
        print("  graded: " + ", ".join(f"{fn} ({p})" for fn, p in checks.functions(a.name)))
    return 0


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


def _cmd_assignment_grade(args):
    from .assignment.grading import grade_command

    return grade_command(args.folders, assignment=args.assignment, timeout=args.timeout,
                         secret=args.secret, csv_path=args.csv, json_path=args.json)


def _cmd_export(args):
    from .interop import export_model

    if args.to.endswith(".json"):
        raise UsageError(f"--to names the weights file, and the settings go beside it as "
                         f"FILE.json; choose a name that does not end in .json, got {args.to!r}")
    weights, settings = export_model(args.checkpoint, args.to, force=args.force)
    print(f"wrote {weights} (weights under PyTorch's names) and {settings} (settings)")
    return 0


def _cmd_import(args):
    from .interop import import_model

    path = import_model(args.weights, args.out, settings=args.settings, force=args.force)
    print(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------

def _subparser(sub, name, help, func=None):
    p = sub.add_parser(name, help=help, description=help, formatter_class=argparse.HelpFormatter)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback of an error")
    if func is not None:
        p.set_defaults(func=func)
    return p


def _at_least_one(text):
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return n


def _threads_flag(parser, default):
    parser.add_argument("--threads", type=_at_least_one, default=default, metavar="N",
                        help=f"BLAS threads (default: {default})")


def _training_command(sub, name, help, config_cls):
    p = _subparser(sub, name, help, _cmd_train)
    add_config_flags(p, config_cls)
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.npz")
    p.set_defaults(config=config_cls)
    return p


def _add_gradcheck(sub):
    g = _subparser(sub, "gradcheck", "check every backward pass against centred differences",
                   _cmd_gradcheck)
    g.add_argument("--op", help="one op or family (rnn, lstm, gru, embedding, affine, "
                                "softmax_cross_entropy, additive_attention, convlstm, ...); "
                                "default: all")
    g.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    g.add_argument("--tol", type=float, default=1e-7,
                   help="largest relative error allowed (default: 1e-7)")
    for dim, default in (("N", 2), ("T", 3), ("D", 4), ("H", 5)):
        g.add_argument(f"-{dim}", type=int, default=default,
                       help=f"size of {dim} (default: {default})")
    _threads_flag(g, 1)


def _add_sample(sub):
    from .generate import SampleConfig
    s = _subparser(sub, "sample", "generate text from a trained checkpoint", _cmd_sample)
    s.add_argument("checkpoint", help="a checkpoint.npz written by minirnn train")
    add_config_flags(s, SampleConfig)


def _add_seq2seq(sub):
    from .training import Seq2SeqConfig
    seq = _subparser(sub, "seq2seq", "encoder-decoder with attention on generated tasks")
    seq_sub = seq.add_subparsers(dest="seq_command", required=True)
    _training_command(seq_sub, "train", "train on dates, reverse or sort", Seq2SeqConfig)
    tr = _subparser(seq_sub, "translate", "decode source strings with a trained model",
                    _cmd_seq2seq_translate)
    tr.add_argument("checkpoint", help="a checkpoint.npz written by minirnn seq2seq train")
    tr.add_argument("sources", nargs="+", help="source strings, e.g. 'tue 3 march 2020'")
    tr.add_argument("--beam-width", type=int, default=1, help="1 = greedy (default: 1)")
    tr.add_argument("--with-source", action="store_true",
                    help="print each output as SOURCE<TAB>OUTPUT (default: the output alone, "
                         "one line per source, in order)")
    tr.add_argument("--show-attention", metavar="PNG", default=None,
                    help="draw the attention of the first source into this PNG")
    _threads_flag(tr, 1)


def _add_assignment(sub):
    from .assignment import ASSIGNMENTS
    asg = _subparser(sub, "assignment", "classroom assignments made from the library's "
                                        "own source, and their grading")
    asg_sub = asg.add_subparsers(dest="assignment_command", required=True)
    _subparser(asg_sub, "list", "the assignments and the functions each grades",
               _cmd_assignment_list)
    am = _subparser(asg_sub, "make", "write a student workspace into a new folder",
                    _cmd_assignment_make)
    am.add_argument("name", choices=list(ASSIGNMENTS), help="which assignment")
    am.add_argument("--out", required=True, help="a new or empty folder")
    am.add_argument("--solutions", action="store_true",
                    help="keep the solution regions (an answer key that grades 100%%)")
    am.add_argument("--notebooks", default=None,
                    help="folder of the project's notebooks (default: the checkout's)")
    ag = _subparser(asg_sub, "grade", "grade workspaces: a score per function and a total; "
                                      "exit 1 if any could not be graded",
                    _cmd_assignment_grade)
    ag.add_argument("folders", nargs="+", metavar="folder", help="students' workspaces")
    ag.add_argument("--csv", metavar="FILE", default=None,
                    help="write a row per student here (and the details to FILE.json)")
    ag.add_argument("--json", metavar="FILE", default=None, help="write the details here")
    ag.add_argument("--assignment", choices=list(ASSIGNMENTS), default=None,
                    help="which assignment, for a folder without the workspace's "
                         ".minirnn-assignment.json (only the student's minirnn/ collected)")
    ag.add_argument("--timeout", type=float, default=60,
                    help="seconds each graded function's tests may run")
    ag.add_argument("--secret", default=None,
                    help="a phrase of yours that the graded cases are drawn from")


def _add_interop(sub):
    ex = _subparser(sub, "export", "write a checkpoint's weights for PyTorch: a .safetensors "
                                   "file under PyTorch's names and a .json of the settings "
                                   "beside it", _cmd_export)
    ex.add_argument("checkpoint", help="a checkpoint.npz written by minirnn")
    ex.add_argument("--to", required=True, metavar="FILE.safetensors",
                    help="the weights file; the settings go to FILE.json")
    ex.add_argument("--force", action="store_true", help="replace files that exist")
    im = _subparser(sub, "import", "read exported weights back into a checkpoint that "
                                   "minirnn sample reads", _cmd_import)
    im.add_argument("weights", help="a .safetensors file written by minirnn export or "
                                    "PyTorch, with its .json beside it")
    im.add_argument("--out", required=True, metavar="RUN",
                    help="run folder to write checkpoint.npz into")
    im.add_argument("--settings", default=None, metavar="FILE.json",
                    help="the settings (default: the weights' name with .json)")
    im.add_argument("--force", action="store_true", help="replace a checkpoint.npz in --out")


def build_parser():
    from .training import ConvLSTMConfig, TrainConfig
    p = _Parser(prog="minirnn", description=__doc__.splitlines()[0],
                formatter_class=argparse.HelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    _add_gradcheck(sub)
    _training_command(sub, "train", "train a language model: a char- or word-level RNN, "
                      "or a GPT (--model gpt)",
                      TrainConfig)
    _add_sample(sub)
    _add_seq2seq(sub)
    conv = _subparser(sub, "convlstm", "Conv-LSTM next-frame prediction on generated videos")
    conv_sub = conv.add_subparsers(dest="conv_command", required=True)
    _training_command(conv_sub, "train", "train on moving squares; writes checkpoint.npz, "
                      "metrics.jsonl, loss.png and prediction.png into --out", ConvLSTMConfig)
    _add_assignment(sub)
    _add_interop(sub)
    pl = _subparser(sub, "plot", "draw the loss curves of one or more run directories",
                    _cmd_plot)
    pl.add_argument("runs", nargs="+", help="run directories")
    pl.add_argument("--output", "-o", default=None, help="PNG path (default RUN/loss.png)")
    pl.add_argument("--x", choices=["step", "time"], default="step",
                    help="horizontal axis: steps or seconds of training (default: step)")
    return p


# --------------------------------------------------------------------------------------
# One error policy
# --------------------------------------------------------------------------------------

def _never_fail_on_output():
    """Characters the terminal's encoding lacks (an emoji on a cp1252 console) print as
    escapes instead of ending a run with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a closed or detached stream
                pass


def _one_line(text):
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _prog(argv):
    """``minirnn`` and the command words the user typed (``minirnn seq2seq train``)."""
    words = []
    for a in argv:
        if a.startswith("-"):
            break
        words.append(a)
        if a not in ("seq2seq", "convlstm", "assignment"):
            break
    return " ".join(["minirnn"] + words)


def _exit_status(error):
    """(status, message) for an error the user should read in one line, else None."""
    if isinstance(error, SettingError):  # a value outside its limits: named as the flag
        return 2, f"{error.flag} {error.detail}"
    if isinstance(error, UsageError):
        return 2, str(error)
    if isinstance(error, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(error, (ValueError, TypeError, OSError, RuntimeError)):
        return 1, str(error)
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    _never_fail_on_output()
    try:
        args = build_parser().parse_args(argv)
        from .backend import reuse_freed_memory
        reuse_freed_memory()  # a job, not an import: the allocator is the CLI's to set
        return args.func(args)
    except BaseException as e:  # noqa: BLE001 - sorted into one line or re-raised
        known = _exit_status(e)
        if known is None or "--debug" in argv:
            raise
        code, message = known
    print(f"{_prog([a for a in argv if a != '--debug'])}: {_one_line(message)}",
          file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
