"""`minibert distill TEACHER --recipe NAME --output DIR`: a smaller student from a teacher folder.

Two tasks (--task; by default the teacher decides: a *ForSequenceClassification teacher is
distilled on its logits, any other on its hidden states):

  agnostic        plain sentences (the offline corpus files by default, or --corpus); the
                  student learns the teacher's hidden states and mean-pooled sentence vectors
                  (distill.recipes.agnostic_weights); the Lee document-similarity correlation
                  of teacher and student is reported when the Lee files are in the data cache.
  classification  labelled texts (--data); soft targets at temperature T plus the hard labels,
                  or the labels alone with --no-teacher (the baseline to compare with).

Like `minibert pretrain` and `finetune`: a progress bar, checkpoints every --save-every steps
and on Ctrl-C, --resume from the newest checkpoint, one-line errors. Checkpoints carry the
teacher's tokenizer, so `minibert encode --model OUTPUT/checkpoint-N` works on a student.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np

from ..data.text import corpus_files, corpus_sentences, data_dir, read_labelled
from ..io import read_config
from .common import (
    add_labelled_data_arguments,
    add_training_arguments,
    diverged_is_an_error,
    label_ids,
    named_labels,
    prepare_output,
    row_groups,
    train_config,
)

RECIPE_NAMES = ("distilbert", "tinybert", "albert")  # the keys of distill.students.RECIPES
TASKS = ("agnostic", "classification")


def register(command) -> None:
    sub = command(
        "distill",
        cmd_distill,
        "Distil a teacher folder into a smaller student.",
        """
        Builds the --recipe's student from TEACHER and trains it against the teacher:
          distilbert  every other teacher layer, copied from the teacher
          tinybert    L/3 layers, width 13/32, fresh; hidden states through a projection and
                      attention maps
          albert      one shared layer, factorized embeddings, fresh
        --task agnostic (default for a teacher without a classification head, e.g.
        all-MiniLM-L6-v2) distils hidden states and mean-pooled sentence embeddings on plain
        sentences: --corpus files, default the offline corpus of scripts/fetch_data.py.
        --task classification (default for a *ForSequenceClassification teacher) distils the
        logits on --data (CSV, TSV or JSONL; split 80/10/10 by --group-column as `minibert
        finetune` does); --no-teacher trains the same student on the labels alone. --labels
        names the teacher's classes in id order when its config.json does not. Checkpoints
        (student, tokenizer, optimizer and RNG state) go to OUTPUT/checkpoint-STEP and the
        results to OUTPUT/report.json. Defaults: 1000 steps (agnostic) or --epochs 2; --lr 5e-4
        for a fresh student, 1e-4 for one copied from the teacher or --student-init (5e-5 for
        distilbert on a classifier, as fine-tuning).
        """,
        "minibert distill runs/finetune/run/checkpoint-638 --recipe distilbert "
        "--data rotten_tomatoes.csv --group-column movie --labels rotten,fresh --output rt-small",
    )
    sub.add_argument("teacher", metavar="TEACHER", help="teacher model folder with a tokenizer")
    sub.add_argument(
        "--recipe", required=True, choices=RECIPE_NAMES, help="how the student is built and taught"
    )
    sub.add_argument("--output", required=True, metavar="DIR", help="checkpoints go here")
    sub.add_argument("--task", choices=TASKS, help="default: from the teacher's architecture")
    sub.add_argument("--max-length", type=int, default=128, help="tokens per text")
    sub.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a loss weight (soft, hard, cosine, hidden, attention, sentence, "
        "temperature); repeatable",
    )
    agnostic = sub.add_argument_group("task-agnostic distillation")
    agnostic.add_argument(
        "--corpus", nargs="+", metavar="FILE", help="text files (default: the offline corpus)"
    )
    agnostic.add_argument(
        "--max-texts", type=int, default=50000, help="sentences sampled from the corpus"
    )
    agnostic.add_argument("--held-out", type=int, default=256, help="sentences for evaluation")
    agnostic.add_argument("--lee", metavar="DIR", help="Lee data folder (default: the cache's)")
    agnostic.add_argument("--no-lee", action="store_true", help="skip the Lee correlation")
    task = sub.add_argument_group("classification distillation")
    add_labelled_data_arguments(
        task, ".csv, .tsv or .jsonl", labels_help="the teacher's classes in id order"
    )
    task.add_argument("--epochs", type=float, default=2.0, help="ignored when --steps is given")
    task.add_argument("--no-teacher", action="store_true", help="labels only: the baseline")
    task.add_argument("--student-init", metavar="DIR", help="start from this model folder")
    sizes = sub.add_argument_group("student sizes (default: the recipe's)")
    sizes.add_argument("--layers", type=int, help="layers (tinybert, albert)")
    sizes.add_argument("--hidden", type=int, help="width C (tinybert, albert)")
    sizes.add_argument("--intermediate", type=int, help="feed-forward width F")
    sizes.add_argument("--heads", type=int, help="attention heads")
    sizes.add_argument("--embedding-size", type=int, help="albert's factorized width E")
    sizes.add_argument(
        "--teacher-layers", metavar="I,J,...", help="distilbert: teacher layers to copy"
    )
    add_training_arguments(sub, steps=None, lr=None)


def cmd_distill(args) -> int:
    teacher = Path(args.teacher)
    if not (teacher / "config.json").is_file():
        raise FileNotFoundError(f"{teacher} is not a model folder (no config.json)")
    if not any((teacher / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        raise ValueError(
            f"{teacher} has no tokenizer (tokenizer.json or vocab.txt): the student's "
            "checkpoints carry the teacher's"
        )
    is_classifier = read_config(teacher).architecture.endswith("ForSequenceClassification")
    task = args.task or ("classification" if is_classifier else "agnostic")
    if task == "classification" and args.corpus:
        raise ValueError("--corpus is for --task agnostic; classification reads --data")
    if task == "agnostic" and (args.data or args.no_teacher or args.student_init):
        raise ValueError("--data, --no-teacher and --student-init are for --task classification")
    if task == "classification" and not args.data:
        raise ValueError("--task classification needs --data FILE with texts and labels")
    if args.max_length < 3:
        raise ValueError(f"--max-length must be at least 3, got {args.max_length}")
    if args.lr is None:
        args.lr = _default_lr(args, task)
    run = _agnostic if task == "agnostic" else _classification
    prepare_output(args)  # a used --output needs --resume or --overwrite
    report = run(args, _student_sizes(args), _weights(args, task))
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    keys = ("recipe", "mode", "student", "parameters", "final", "lee", "test", "teacher_test")
    print(json.dumps({k: report[k] for k in keys if k in report}))
    return 0


def _agnostic(args, sizes, weights) -> dict:
    from ..distill.recipes import distill_agnostic  # the trainer and the students, only here

    files = [Path(f) for f in args.corpus] if args.corpus else corpus_files()
    for file in files:
        if not file.is_file():
            raise FileNotFoundError(f"corpus file {file} does not exist")
    if args.max_texts < 1 or args.held_out < 0:
        raise ValueError("--max-texts must be >= 1 and --held-out >= 0")
    sentences = corpus_sentences(files, max_texts=args.max_texts + args.held_out, seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(len(sentences))
    held = min(args.held_out, len(sentences) // 2)
    if len(sentences) - held < 1:
        raise ValueError(f"the corpus has no sentence of 4 words or more in {len(files)} file(s)")
    eval_texts = [sentences[i] for i in order[:held]]
    texts = [sentences[i] for i in order[held:]]
    lee = None
    if not args.no_lee:
        lee = Path(args.lee) if args.lee else data_dir() / "lee"
        if args.lee is None and not (lee / "lee.cor").is_file():
            lee = None  # no Lee data in the cache: skip it quietly (--lee insists)
    steps = args.steps or 1000
    print(
        f"{len(texts)} sentences from {len(files)} file(s), {held} held out, {steps} steps",
        file=sys.stderr,
    )
    _, history, report = diverged_is_an_error(
        distill_agnostic,
        args.teacher,
        args.recipe,
        texts,
        train_config(args, steps),
        Path(args.output),
        max_length=args.max_length,
        batch_size=args.batch_size,
        resume=args.resume,
        eval_texts=eval_texts,
        lee_dir=lee,
        weights=weights,
        log=lambda line: print(line, file=sys.stderr),
        **sizes,
    )
    report["evals"] = history.evals
    return report


def _classification(args, sizes, weights) -> dict:
    from ..distill.recipes import distill_task

    data = read_labelled(args.data, args.text_column, args.label_column)
    groups = row_groups(args, data)
    names = named_labels(args.labels, args.teacher)
    if names is None:
        names = data.label_names  # ids as `minibert finetune` gives them: sorted labels
    labels = label_ids(data, names, args.data, whose="the teacher's ")
    steps = args.steps or max(1, math.ceil(args.epochs * 0.8 * len(data.texts) / args.batch_size))
    print(f"{len(data.texts)} texts, labels {names}, {steps} steps", file=sys.stderr)
    _, history, report = diverged_is_an_error(
        distill_task,
        args.teacher,
        args.recipe,
        data.texts,
        labels,
        groups,
        train_config(args, steps),
        Path(args.output),
        max_length=args.max_length,
        batch_size=args.batch_size,
        split_seed=args.seed,
        resume=args.resume,
        no_teacher=args.no_teacher,
        student_init=args.student_init,
        weights=weights,
        log=lambda line: print(line, file=sys.stderr),
        **sizes,
    )
    report["label_names"] = names
    report["evals"] = history.evals
    return report


def _default_lr(args, task: str) -> float:
    if args.student_init:
        return 1e-4
    if args.recipe == "distilbert":  # starts from the teacher's own layers
        return 1e-4 if task == "agnostic" else 5e-5
    return 5e-4  # a fresh student


def _student_sizes(args) -> dict:
    flags = {
        "num_hidden_layers": ("--layers", args.layers),
        "hidden_size": ("--hidden", args.hidden),
        "intermediate_size": ("--intermediate", args.intermediate),
        "num_attention_heads": ("--heads", args.heads),
        "embedding_size": ("--embedding-size", args.embedding_size),
    }
    given = {key: value for key, (_, value) in flags.items() if value is not None}
    if args.recipe == "distilbert":
        if given:
            names = ", ".join(flags[key][0] for key in given)
            raise ValueError(
                f"the distilbert recipe keeps the teacher's sizes ({names} given); choose "
                "its layers with --teacher-layers"
            )
        if args.teacher_layers:
            try:
                return {"layers": [int(i) for i in args.teacher_layers.split(",")]}
            except ValueError:
                raise ValueError(
                    f"--teacher-layers must be comma-separated integers, got "
                    f"{args.teacher_layers!r}"
                ) from None
        return {}
    if args.teacher_layers:
        raise ValueError("--teacher-layers is for the distilbert recipe")
    if "embedding_size" in given and args.recipe != "albert":
        raise ValueError("--embedding-size is for the albert recipe")
    if args.student_init and given:
        raise ValueError("--student-init takes the student's sizes from its folder")
    return given


def _weights(args, task: str):
    from ..distill.recipes import TASK_WEIGHTS, agnostic_weights

    weights = agnostic_weights(args.recipe) if task == "agnostic" else TASK_WEIGHTS
    changes = {}
    for item in args.weight:
        name, _, value = item.partition("=")
        name = name.strip()
        if not hasattr(weights, name) or name == "replace":
            raise ValueError(
                f"--weight {item!r}: no loss weight {name!r} (soft, hard, cosine, hidden, "
                "attention, sentence, temperature)"
            )
        try:
            changes[name] = float(value)
        except ValueError:
            raise ValueError(f"--weight {item!r}: {value!r} is not a number") from None
    return weights.replace(**changes)
