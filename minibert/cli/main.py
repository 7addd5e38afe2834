"""The `minibert` command line: parse the arguments, run one command, turn errors into one line.

    minibert info PATH [--json]                 sizes, parameter counts, files and dtypes
    minibert encode TEXT... [--model PATH]      sentence vectors (preview, or --output FILE.npy)
    minibert similarity TEXT... [--model PATH]  cosine similarity table
    minibert demo [--model PATH]                the bundled model on a few sentences
    minibert pretrain --corpus FILE... --output DIR   pretrain a small model from scratch
    minibert finetune MODEL --data FILE --output DIR  fine-tune a sequence classifier
    minibert quantize IN OUT                    an int8 copy of a model folder
    minibert convert IN OUT                     a TF1, fairseq or sharded checkpoint as an HF folder
    minibert inspect PATH                       every stored tensor, its HF name and status
    minibert distill TEACHER --recipe NAME --output DIR   a smaller student from a teacher
    minibert compare TEACHER STUDENT...         teacher and students side by side
    minibert serve [MODEL] [--port N]           an HTTP server (OpenAI embeddings, TEI routes)
    minibert fill-mask|classify|ner MODEL TEXT...   task pipelines (--json: their output)
    minibert qa MODEL --question Q --context C  extractive question answering
    minibert trim-vocab MODEL OUT --corpus FILE...   cut the vocabulary to a corpus's pieces
    minibert export-fixture MODEL --text T -o F.npz  inputs and every intermediate, to test a port
    minibert diff MODEL --against DUMP          where another BERT's activations differ, and why
    minibert explain TEXT [--model M] [--html F]   tokens, costs per op, attention, memory

Each command lives in its own module of this package (info.py, encode.py, train.py,
quantize.py, distill.py, compare.py), which registers its parser here; common.py holds what
several share. Errors a user can cause (a missing folder, a bad file, an empty text list) end
the command with exit code 1 and one line `minibert: error: ...` on stderr; usage errors exit
with 2. Set MINIBERT_DEBUG=1 to see the traceback instead. The command modules import the
heavy parts of minibert (training, distillation) inside their commands, so that `minibert
--help` stays quick.
"""

import argparse
import os
import sys
import textwrap
import warnings
from importlib.metadata import PackageNotFoundError, version

from . import (
    compare,
    compress,
    convert,
    diff,
    distill,
    encode,
    explain,
    fixture,
    info,
    quantize,
    serve,
    tasks,
    train,
)
from .common import HelpFormatter, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2), like every other error."""

    def error(self, message):
        self.exit(2, f"minibert: error: {message} (see: {self.prog} --help)\n")


def main(argv=None) -> int:
    """Run the command line with `argv` (default sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.run(args)
    except KeyboardInterrupt as stop:  # training saves a checkpoint first and says where
        detail = f": {stop}" if str(stop) else ""
        print(f"minibert: interrupted{detail}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`minibert ... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except UsageError as exc:
        print(f"minibert: error: {exc} (see: minibert {args.command} --help)", file=sys.stderr)
        return 2
    except (ValueError, OSError, NotImplementedError) as exc:
        if os.environ.get("MINIBERT_DEBUG") == "1":
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__  # one line, always
        print(f"minibert: error: {message}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command: each module's register() adds its own through `command`."""
    parser = _Parser(
        prog="minibert",
        description="BERT-family encoders in NumPy and Numba: inspect checkpoints, embed texts.",
        epilog="Run `minibert COMMAND --help` for the options and an example of each command.",
    )
    parser.add_argument("--version", action="version", version=f"minibert {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, run, summary, description, example):
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"{summary}\n\n{textwrap.dedent(description).strip()}",
            epilog=f"example:\n  {example}",
            formatter_class=HelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    info.register(command)  # info
    encode.register(command)  # encode, similarity, demo
    train.register(command)  # pretrain, finetune
    quantize.register(command)  # quantize
    distill.register(command)  # distill
    compare.register(command)  # compare
    serve.register(command)  # serve
    convert.register(command)  # convert, inspect
    tasks.register(command)  # fill-mask, classify, ner, qa
    compress.register(command)  # trim-vocab
    fixture.register(command)  # export-fixture
    diff.register(command)  # diff
    explain.register(command)  # explain
    return parser


def _version() -> str:
    """The installed package's version (pyproject.toml reads it from minibert/__init__.py)."""
    try:
        return version("minibert")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"minibert: warning: {message}", file=sys.stderr)
