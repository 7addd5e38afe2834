"""What several commands share.

The help formatter, argument types and groups, the training options and their TrainConfig, the
output folder of a training run, labelled data's groups and label ids, and one-line errors from
a diverged run."""

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from ..functional.pooling import POOLINGS
from ..training.trainer import TrainConfig, TrainingDiverged

GENERIC_LABEL = re.compile(r"LABEL_\d+")  # transformers' placeholder class names
LOG_LINES_PER_RUN = 20  # progress lines in a run when stderr is not a terminal (--log-every 0)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help with each command's description kept as written, and each option's
    default after its help text, as argparse's ArgumentDefaultsHelpFormatter writes it; left out
    where it says nothing (None, an on/off flag, an empty list) or the help text already
    describes the default in words."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not shows_a_default(action) or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)"


def shows_a_default(action) -> bool:
    """Whether an option's default is worth showing in --help (see HelpFormatter)."""
    default = action.default
    if (
        default is None
        or isinstance(default, bool)
        or default == []
        or default == argparse.SUPPRESS
    ):
        return False
    return bool(action.option_strings) or action.nargs in ("?", "*")


class UsageError(ValueError):
    """Arguments that argparse accepts one by one but not together: exit code 2, as argparse's
    own usage errors."""


def add_pooling_argument(sub) -> None:
    """--pooling, for the commands that turn token vectors into sentence vectors."""
    sub.add_argument(
        "--pooling",
        choices=POOLINGS,
        default=None,
        help="how token vectors become one vector (default: as the folder's modules.json "
        "says; mean without one)",
    )


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1, else a usage error naming the value."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_labelled_data_arguments(
    group, data_help: str, labels_help: str | None = None, required: bool = False
) -> None:
    """--data and its columns (finetune, distill, compare); --labels when labels_help is given."""
    group.add_argument("--data", required=required, metavar="FILE", help=data_help)
    group.add_argument("--text-column", default="text", metavar="NAME", help="column of the texts")
    group.add_argument(
        "--label-column", default="label", metavar="NAME", help="column of the labels"
    )
    group.add_argument(
        "--group-column", metavar="NAME", help="keep each group in one split (e.g. movie)"
    )
    if labels_help:
        group.add_argument("--labels", metavar="A,B,...", help=labels_help)


def add_training_arguments(sub, steps, lr) -> None:
    """The trainer's options (pretrain, finetune, distill); steps and lr are the defaults."""
    unset = " (unset: as the description says)"
    sub.add_argument(
        "--steps", type=int, default=steps, help="optimizer steps" + ("" if steps else unset)
    )
    sub.add_argument("--batch-size", type=int, default=32, help="texts per batch")
    sub.add_argument(
        "--lr", type=float, default=lr, help="peak learning rate" + ("" if lr else unset)
    )
    sub.add_argument("--warmup", type=float, default=0.1, help="warmup, fraction of the steps")
    sub.add_argument(
        "--schedule",
        default="linear",
        choices=("linear", "cosine", "constant"),
        help="learning rate after the warmup",
    )
    sub.add_argument(
        "--weight-decay", type=float, default=0.01, help="AdamW's decay of weight matrices"
    )
    sub.add_argument("--grad-accum", type=int, default=1, help="batches per optimizer step")
    sub.add_argument("--eval-every", type=int, default=0, help="0: eight times per run")
    sub.add_argument("--save-every", type=int, default=0, help="0: eight times per run")
    sub.add_argument(
        "--log-every",
        type=int,
        default=0,
        metavar="N",
        help="when stderr is not a terminal, a progress line every N steps "
        f"(0: {LOG_LINES_PER_RUN} lines a run)",
    )
    sub.add_argument("--seed", type=int, default=0, help="seeds the data order, dropout and init")
    sub.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    sub.add_argument(
        "--overwrite",
        action="store_true",
        help="delete an earlier run in --output first (without it, a non-empty --output needs "
        "--resume)",
    )


def train_config(args, steps: int) -> TrainConfig:
    """The TrainConfig of those options for a run of `steps` steps: warmup as a fraction,
    evaluation and checkpoints eight times a run unless given, a progress bar on a terminal and
    progress lines elsewhere (LOG_LINES_PER_RUN a run unless --log-every says)."""
    every = max(1, steps // 8)
    for option in ("eval_every", "save_every", "log_every"):
        if getattr(args, option) < 0:
            name = "--" + option.replace("_", "-")
            raise UsageError(f"{name} must be 0 or more, got {getattr(args, option)}")
    terminal = sys.stderr.isatty()
    return TrainConfig(
        max_steps=steps,
        lr=args.lr,
        warmup_steps=int(args.warmup * steps),
        schedule=args.schedule,
        weight_decay=args.weight_decay,
        grad_accum=args.grad_accum,
        eval_every=args.eval_every or every,
        save_every=args.save_every or every,
        seed=args.seed,
        progress=terminal,
        log_lines=not terminal,
        log_every=args.log_every or max(1, steps // LOG_LINES_PER_RUN),
        qat=getattr(args, "qat", False),
    )


def prepare_output(args) -> Path:
    """The --output folder of a training run, checked before anything is written to it.

    A folder that holds files is refused unless --resume continues the run in it (otherwise the
    old run's checkpoints, with higher step numbers, would outlive the new run's) or --overwrite
    deletes it; --overwrite deletes only a folder that looks like a run (checkpoints or a
    report.json), never another folder given by mistake."""
    output = Path(args.output)
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --output, --overwrite deletes it: give one")
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file; give a folder")
    entries = sorted(p.name for p in output.iterdir()) if output.is_dir() else []
    if not entries or args.resume:
        return output
    if not args.overwrite:
        raise UsageError(
            f"--output {output} is not empty ({_listing(entries)}): add --resume to continue "
            "that run, --overwrite to replace it, or choose a new folder"
        )
    if not any(name.startswith("checkpoint-") or name == "report.json" for name in entries):
        raise UsageError(
            f"--output {output} holds no training run (no checkpoint-* or report.json; it has "
            f"{_listing(entries)}), so --overwrite leaves it alone: choose an empty folder"
        )
    shutil.rmtree(output)
    return output


def _listing(names: list, most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def row_groups(args, data) -> list:
    """The --group-column value of each row (a split keeps each group whole), or one group per
    text (a plain random split) without it."""
    if not args.group_column:
        return list(range(len(data.texts)))
    missing = [i for i, row in enumerate(data.rows) if args.group_column not in row]
    if missing:
        raise ValueError(f"{args.data} has no column {args.group_column!r} (row {missing[0]})")
    return [row[args.group_column] for row in data.rows]


def diverged_is_an_error(run, *args, **kwargs):
    """A NaN loss ends the command with the trainer's one-line message, not a traceback."""
    try:
        return run(*args, **kwargs)
    except TrainingDiverged as exc:
        raise ValueError(str(exc)) from None


def named_labels(labels_arg, model_folder):
    """--labels (A,B,...), else the classes the model's id2label names, else None (a config
    with LABEL_0, LABEL_1, ... or none names nothing). Used by distill and compare."""
    if labels_arg:
        return [name.strip() for name in labels_arg.split(",")]
    config = json.loads((Path(model_folder) / "config.json").read_text())
    id2label = config.get("id2label") or {}
    names = [id2label[k] for k in sorted(id2label, key=int)] if id2label else []
    if names and not all(GENERIC_LABEL.fullmatch(str(n)) for n in names):
        return names
    return None


def label_ids(data, names, source, whose="") -> list:
    """The id in `names` of each row's label (data from data.text.read_labelled); ValueError
    naming the labels of `source` that `names` lacks."""
    unknown = sorted(set(data.label_names) - set(names))
    if unknown:
        raise ValueError(f"labels {unknown} of {source} are not among {whose}{names}")
    ids = {name: i for i, name in enumerate(names)}
    return [ids[data.label_names[i]] for i in data.label_ids]


def text_lines(path, option: str) -> list[str]:
    """The texts of a file given to `option`, one a line: stripped, blank lines left out; a
    missing file is an error that names the option."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"{option} {file} does not exist")
    lines = (line.strip() for line in file.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]
