"""`minibert pretrain` and `minibert finetune`: the training commands of the CLI.

Both show a progress bar (loss, learning rate, tokens/s), evaluate on held-out data, checkpoint
atomically every --save-every steps and on Ctrl-C, and continue from the newest checkpoint with
--resume (the losses then equal those of an uninterrupted run). A non-empty --output is refused
unless --resume continues the run in it or --overwrite replaces it. When stderr is not a
terminal, a progress line every --log-every steps replaces the bar. A NaN loss stops the run
with a message naming the step; the last good checkpoint stays.

finetune trains a text classifier (one label per text, or several with --task multi-label) or a
token classifier (--task token, from a CoNLL-style file) and writes the class names into the
saved config.json's id2label and label2id.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np

from ..config import EncoderConfig
from ..data.conll import read_conll
from ..data.text import documents_from_text, read_labelled
from ..tokenizer import load_tokenizer, train_wordpiece
from .common import (
    UsageError,
    add_labelled_data_arguments,
    add_training_arguments,
    diverged_is_an_error,
    prepare_output,
    row_groups,
    train_config,
)

ARCHITECTURES = (
    "BertForPreTraining",
    "BertForMaskedLM",
    "AlbertForPreTraining",
    "AlbertForMaskedLM",
    "RobertaForMaskedLM",
    "DistilBertForMaskedLM",
)
TASKS = ("sequence", "multi-label", "token")  # finetune --task
CONLL_SUFFIXES = (".conll", ".conll03", ".bio", ".iob", ".iob2")


def register(command) -> None:
    """Add the two commands through main.build_parser's `command(...)` helper."""
    pre = command(
        "pretrain",
        cmd_pretrain,
        "Pretrain a small model from scratch with masked LM (+ NSP or SOP).",
        """
        Reads one or more plain-text corpus files (documents separated by blank lines, one
        paragraph per line), trains a WordPiece vocabulary on them (or uses --tokenizer), and
        pretrains a fresh model: masked LM with 15% of tokens masked anew each epoch (80%
        [MASK], 10% random, 10% unchanged), plus next-sentence prediction for
        BertForPreTraining or sentence-order prediction for AlbertForPreTraining. --held-out
        documents measure masked-token accuracy every --eval-every steps. Checkpoints (model,
        tokenizer, optimizer and RNG state) go to OUTPUT/checkpoint-STEP.
        """,
        "minibert pretrain --corpus wiki.txt austen.txt --output runs/bert --steps 800",
    )
    pre.add_argument("--corpus", nargs="+", required=True, metavar="FILE", help="text files")
    pre.add_argument("--output", required=True, metavar="DIR", help="checkpoints go here")
    pre.add_argument(
        "--architecture",
        default="BertForPreTraining",
        choices=ARCHITECTURES,
        help="the model class (its family and heads)",
    )
    pre.add_argument("--tokenizer", metavar="DIR", help="use this tokenizer folder")
    pre.add_argument("--vocab-size", type=int, default=8000, help="WordPiece size to train")
    pre.add_argument("--layers", type=int, default=4, help="encoder layers L")
    pre.add_argument("--hidden", type=int, default=256, help="hidden width C")
    pre.add_argument("--heads", type=int, default=4, help="attention heads H")
    pre.add_argument("--intermediate", type=int, default=1024, help="feed-forward width F")
    pre.add_argument("--embedding-size", type=int, help="ALBERT's factorised width E")
    pre.add_argument("--max-length", type=int, default=128, help="tokens per example")
    pre.add_argument("--held-out", type=float, default=0.05, help="fraction of documents")
    pre.add_argument("--whole-word", action="store_true", help="mask whole words")
    add_training_arguments(pre, steps=1000, lr=5e-4)

    fine = command(
        "finetune",
        cmd_finetune,
        "Fine-tune a checkpoint as a text or token classifier.",
        """
        Reads texts and labels from a CSV, TSV or JSONL file, splits them 80/10/10 (by
        --group-column when given, so no group is in two splits), loads MODEL with a fresh
        classification head, trains, and reports accuracy and macro-F1 on the validation split
        every --eval-every steps and on the test split at the end (also written to
        OUTPUT/report.json). The checkpoints' config.json names the classes (id2label).
        Without --steps, the run makes --epochs passes over the training split.

        --task multi-label: each text has any number of labels, a JSON list in a .jsonl file
        ({"text": "...", "label": ["sports", "politics"]}, [] for none) or one string cut at
        --label-separator ("sports;politics", "" for none); the head has one sigmoid per label
        and the scores are exact match and micro- and macro-F1 at probability 0.5.

        --task token: --data is a CoNLL-style file, one token and its tag per line (the tag
        in the last column), a blank line between sentences; each word's tag goes on its first
        sub-token. Scores are accuracy and macro-F1 over words.
        """,
        "minibert finetune path/to/minilm --data reviews.csv --group-column movie --output ft",
    )
    fine.add_argument("model", metavar="MODEL", help="model folder with a tokenizer")
    fine.add_argument("--output", required=True, metavar="DIR", help="checkpoints go here")
    fine.add_argument(
        "--task",
        default="sequence",
        choices=TASKS,
        help="sequence: one label per text; multi-label: any number per text; token: a tag "
        "per word (CoNLL-style --data)",
    )
    add_labelled_data_arguments(
        fine, ".csv, .tsv or .jsonl (--task token: a CoNLL-style file)", required=True
    )
    fine.add_argument(
        "--label-separator",
        default=";",
        metavar="TEXT",
        help="--task multi-label: what separates the labels in a text column",
    )
    fine.add_argument("--epochs", type=float, default=2.0, help="ignored when --steps is given")
    fine.add_argument("--max-length", type=int, default=128, help="tokens per text")
    fine.add_argument(
        "--qat",
        action="store_true",
        help="quantization-aware: train through int8 rounding (then `minibert quantize`)",
    )
    add_training_arguments(fine, steps=None, lr=5e-5)


def cmd_pretrain(args) -> int:
    from ..training.recipes import pretrain  # the trainer's dependencies, for this command only

    documents = []
    for name in args.corpus:
        documents += documents_from_text(Path(name).read_text(encoding="utf-8"))
    if len(documents) < 4:
        raise ValueError(
            f"the corpus has {len(documents)} document(s); pretraining needs at least 4, two "
            "to train on and two held out (separate documents with a blank line)"
        )
    order = np.random.default_rng(args.seed).permutation(len(documents))
    held = int(round(args.held_out * len(documents)))
    if args.held_out > 0:  # sentence pairs need two documents to draw a random B from
        held = min(max(held, 2), len(documents) - 2)
    eval_docs = [documents[i] for i in order[:held]]
    train_docs = [documents[i] for i in order[held:]]
    output = prepare_output(args)
    if args.tokenizer:
        tokenizer = load_tokenizer(args.tokenizer)
    elif args.resume and (output / "tokenizer" / "vocab.txt").is_file():
        tokenizer = load_tokenizer(output / "tokenizer")  # the vocabulary the run started with
    else:
        print(
            f"training a {args.vocab_size}-piece WordPiece vocabulary on "
            f"{len(train_docs)} documents",
            file=sys.stderr,
        )
        tokenizer = train_wordpiece(
            (s for d in train_docs for s in d), args.vocab_size, output / "tokenizer"
        )
    model_type = args.architecture.split("For")[0].lower()
    config = EncoderConfig(
        model_type=model_type,
        architecture=args.architecture,
        vocab_size=tokenizer.vocab_size,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.intermediate,
        max_position_embeddings=args.max_length
        + (tokenizer.pad_token_id + 1 if model_type == "roberta" else 0),
        type_vocab_size={"roberta": 1, "distilbert": 0}.get(model_type, 2),
        embedding_size=args.embedding_size,
        pad_token_id=tokenizer.pad_token_id,
        position_offset=tokenizer.pad_token_id + 1 if model_type == "roberta" else 0,
        hidden_act="gelu_new" if model_type == "albert" else "gelu",
    )
    _, history = diverged_is_an_error(
        pretrain,
        train_docs,
        tokenizer,
        config,
        train_config(args, args.steps),
        output,
        eval_documents=eval_docs,
        max_length=args.max_length,
        batch_size=args.batch_size,
        whole_word=args.whole_word,
        resume=args.resume,
    )
    last = history.evals[-1] if history.evals else {}
    print(
        json.dumps(
            {
                "steps": history.step[-1] if history.step else 0,
                "final_loss": history.loss[-1] if history.loss else None,
                **last,
            }
        )
    )
    return 0


def cmd_finetune(args) -> int:
    from ..training.recipes import fine_tunable, finetune
    from ..training.tagging import finetune_tagger

    fine_tunable(args.model)  # a missing or int8 model folder is named before the data is read
    conll = Path(args.data).name.lower().endswith(CONLL_SUFFIXES)
    if conll and args.task != "token":
        raise UsageError(f"{args.data} looks like a CoNLL file: add --task token")
    if args.task == "token" and args.group_column:
        raise UsageError("--group-column is for tables; --task token splits the sentences")
    output = prepare_output(args)
    if args.task == "token":
        data = read_conll(args.data)
        size = len(data.words)
        steps = _steps(args, size)
        print(f"{size} sentences, tags {data.label_names}, {steps} steps", file=sys.stderr)
        _, history, report = diverged_is_an_error(
            finetune_tagger,
            args.model,
            data.words,
            data.tag_ids,
            data.label_names,
            train_config(args, steps),
            output,
            max_length=args.max_length,
            batch_size=args.batch_size,
            split_seed=args.seed,
            resume=args.resume,
        )
    else:
        multi_label = args.task == "multi-label"
        data = read_labelled(
            args.data, args.text_column, args.label_column, multi_label, args.label_separator
        )
        groups = row_groups(args, data)
        size = len(data.texts)
        steps = _steps(args, size)
        print(f"{size} texts, labels {data.label_names}, {steps} steps", file=sys.stderr)
        _, history, report = diverged_is_an_error(
            finetune,
            args.model,
            data.texts,
            data.label_ids,
            groups,
            train_config(args, steps),
            output,
            max_length=args.max_length,
            batch_size=args.batch_size,
            num_labels=len(data.label_names),
            split_seed=args.seed,
            resume=args.resume,
            label_names=data.label_names,
            multi_label=multi_label,
        )
    report["label_names"] = data.label_names
    report["evals"] = history.evals
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("sizes", "validation", "test")}))
    return 0


def _steps(args, size: int) -> int:
    """--steps, else --epochs over the training split (80% of `size` examples)."""
    return args.steps or max(1, math.ceil(args.epochs * 0.8 * size / args.batch_size))
