"""`minibert fill-mask`, `classify`, `ner` and `qa`: the task pipelines from the command line.

Each command loads MODEL (a folder with the task's head and a tokenizer), runs
minibert.pipeline on the texts, and prints a table, or with --json the pipeline's own output
(what the Python call returns, one JSON document). Texts are the positional arguments, or one
per line from --file (`-`: standard input), as for `minibert encode`.
"""

import json
import sys
from pathlib import Path

from .common import positive_int
from .encode import read_texts

STRATEGIES = ("none", "simple", "first", "average", "max")
FUNCTIONS = ("softmax", "sigmoid", "none")


def register(command) -> None:
    fill = command(
        "fill-mask",
        cmd_fill_mask,
        "Propose tokens for the mask in each text.",
        """
        MODEL is a masked-LM folder (*ForMaskedLM or *ForPreTraining). Each text needs the
        model's mask token ([MASK] for BERT, <mask> for RoBERTa). Prints the best tokens with
        their probabilities and the filled-in text.
        """,
        'minibert fill-mask ./bert-mlm "Paris is the [MASK] of France." --top-k 3',
    )
    _common(fill)
    fill.add_argument(
        "--top-k", type=positive_int, default=5, metavar="N", help="tokens per mask (default: 5)"
    )
    fill.add_argument(
        "--targets",
        metavar="A,B,...",
        help="score only these words (default: the whole vocabulary)",
    )

    classify = command(
        "classify",
        cmd_classify,
        "Classify texts with a sequence classifier.",
        """
        MODEL is a *ForSequenceClassification folder; labels are its config.json id2label.
        Scores are a softmax over the labels, or a sigmoid per label when the model is
        multi-label or has one label (--function overrides it).
        """,
        'minibert classify ./sentiment "What a lovely film." --top-k 2',
    )
    _common(classify)
    classify.add_argument(
        "--top-k",
        type=positive_int,
        default=1,
        metavar="N",
        help="labels per text, best first (default: 1)",
    )
    classify.add_argument(
        "--all", action="store_true", help="every label, best first (default: off)"
    )
    classify.add_argument(
        "--pair",
        metavar="TEXT",
        help="a second text paired with each text (sentence-pair models; default: none)",
    )
    classify.add_argument(
        "--function",
        choices=FUNCTIONS,
        help="logits to scores (default: what the model's config implies)",
    )

    ner = command(
        "ner",
        cmd_ner,
        "Find named entities (token classification).",
        """
        MODEL is a *ForTokenClassification folder. --aggregation groups tokens into entities:
        none (one row per token), simple (adjacent tokens of one entity type), first, average,
        max (the pieces of a word first agree on one label). Characters start-end index the text.
        """,
        'minibert ner ./bert-ner "Ada Lovelace lived in London." --aggregation simple',
    )
    _common(ner)
    ner.add_argument(
        "--aggregation",
        choices=STRATEGIES,
        default="simple",
        help="how tokens become entities (default: simple)",
    )
    ner.add_argument(
        "--ignore-labels",
        default="O",
        metavar="A,B,...",
        help="labels left out, comma-separated; empty keeps all (default: O)",
    )
    ner.add_argument(
        "--stride",
        type=int,
        metavar="N",
        help="read a long text in windows overlapping by N tokens (default: cut it to the "
        "model's length)",
    )

    qa = command(
        "qa",
        cmd_qa,
        "Answer a question from a context (extractive question answering).",
        """
        MODEL is a *ForQuestionAnswering folder. The answer is a span of the context; a
        context too long for the model is read in overlapping windows (--max-seq-len tokens
        each, overlapping by --doc-stride).
        """,
        'minibert qa ./bert-qa --question "Where do I live?" '
        '--context "My name is Wolfgang and I live in Berlin."',
    )
    qa.add_argument("model", metavar="MODEL", help="model folder with the task's head")
    qa.add_argument("--question", "-q", required=True, help="the question")
    source = qa.add_mutually_exclusive_group(required=True)
    source.add_argument("--context", "-c", help="the text holding the answer")
    source.add_argument("--context-file", metavar="FILE", help="read the context from FILE")
    qa.add_argument(
        "--top-k", type=positive_int, default=1, metavar="N", help="answers (default: 1)"
    )
    qa.add_argument(
        "--max-answer-len",
        type=positive_int,
        default=15,
        metavar="N",
        help="longest answer in tokens (default: 15)",
    )
    qa.add_argument(
        "--max-seq-len",
        type=positive_int,
        metavar="N",
        help="tokens per window (default: the tokenizer's limit, at most 384)",
    )
    qa.add_argument(
        "--doc-stride",
        type=int,
        metavar="N",
        help="tokens shared by consecutive windows (default: half a window, at most 128)",
    )
    qa.add_argument(
        "--handle-impossible-answer",
        action="store_true",
        help="let the empty answer (no answer in the context) compete (default: off)",
    )
    qa.add_argument("--json", action="store_true", help="print the pipeline's output as JSON")


def _common(sub) -> None:
    sub.add_argument("model", metavar="MODEL", help="model folder with the task's head")
    sub.add_argument("texts", nargs="*", metavar="TEXT", help="texts (`-`: stdin)")
    sub.add_argument(
        "--file", "-f", metavar="TEXTS.txt", help="read texts, one per line (`-`: stdin)"
    )
    sub.add_argument("--json", action="store_true", help="print the pipeline's output as JSON")


def _pipeline(task, model):
    from ..pipelines import pipeline  # loaded here, so that `minibert --help` stays quick

    return pipeline(task, model)


def cmd_fill_mask(args) -> int:
    texts = read_texts(args)
    pipe = _pipeline("fill-mask", args.model)
    options = {"top_k": args.top_k}
    if args.targets:
        options["targets"] = [t.strip() for t in args.targets.split(",") if t.strip()]
    results = [pipe(text, **options) for text in texts]
    if args.json:
        return _print_json(results if len(texts) > 1 else results[0])
    for text, result in zip(texts, results, strict=True):
        print(text)
        masks = [result] if result and isinstance(result[0], dict) else result
        for number, propositions in enumerate(masks, 1):
            if len(masks) > 1:
                print(f"  mask {number}")
            rows = [(f"{p['score']:.4f}", p["token_str"], p["sequence"]) for p in propositions]
            _print_table(("score", "token", "sequence"), rows)
    return 0


def cmd_classify(args) -> int:
    texts = read_texts(args)
    pipe = _pipeline("text-classification", args.model)
    options = {"top_k": None if args.all else args.top_k}
    if args.function:
        options["function_to_apply"] = args.function
    inputs = [
        text if args.pair is None else {"text": text, "text_pair": args.pair} for text in texts
    ]
    results = pipe(inputs, **options)
    if args.json:
        return _print_json(results if len(texts) > 1 else results[0])
    rows = [
        (_clip(text), entry["label"], f"{entry['score']:.4f}")
        for text, ranked in zip(texts, results, strict=True)
        for entry in ranked
    ]
    _print_table(("text", "label", "score"), rows)
    return 0


def cmd_ner(args) -> int:
    texts = read_texts(args)
    pipe = _pipeline("token-classification", args.model)
    ignore = [label.strip() for label in args.ignore_labels.split(",") if label.strip()]
    results = pipe(
        texts, aggregation_strategy=args.aggregation, ignore_labels=ignore, stride=args.stride
    )
    if args.json:
        return _print_json(results if len(texts) > 1 else results[0])
    key = "entity" if args.aggregation == "none" else "entity_group"
    for text, entities in zip(texts, results, strict=True):
        print(text)
        rows = [
            (e[key], f"{e['score']:.4f}", f"{e['start']}-{e['end']}", e["word"]) for e in entities
        ]
        if rows:
            _print_table((key, "score", "chars", "word"), rows)
        else:
            print("  (no entities)")
    return 0


def cmd_qa(args) -> int:
    context = args.context
    if args.context_file is not None:
        try:
            context = Path(args.context_file).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{args.context_file} is not UTF-8 text") from None
        except OSError as exc:
            raise ValueError(f"cannot read {args.context_file}: {exc.strerror}") from None
    pipe = _pipeline("question-answering", args.model)
    options = {
        "top_k": args.top_k,
        "max_answer_len": args.max_answer_len,
        "handle_impossible_answer": args.handle_impossible_answer,
        "max_seq_len": args.max_seq_len,
        "doc_stride": args.doc_stride,
    }
    result = pipe(question=args.question, context=context, **options)
    if args.json:
        return _print_json(result)
    answers = [result] if isinstance(result, dict) else result
    rows = [
        (f"{a['score']:.4f}", f"{a['start']}-{a['end']}", a["answer"] or "(no answer)")
        for a in answers
    ]
    _print_table(("score", "chars", "answer"), rows)
    return 0


def _print_json(value) -> int:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    print()
    return 0


def _print_table(header, rows) -> None:
    """Columns padded to their widest cell, indented under the text they belong to."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  " + "  ".join(cells).rstrip())


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
