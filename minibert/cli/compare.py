"""`minibert compare TEACHER STUDENT...`: a teacher and its students side by side.

Prints one row per model and precision (float32, and an int8 copy made on the fly; with
--variants also int4, pruned-head, fewer-layer and token-eliminated copies): parameters,
size on disk, latency at 1 x 16 and 8 x 128 tokens, peak memory, agreement with the teacher on
held-out sentences, the Lee correlation and, for classifiers attached with --classifiers, the
test accuracy; --markdown, --json and --chart write the same figures to files.
"""

import json
import sys
from pathlib import Path

from ..data.text import data_dir, read_labelled
from ..pretrained import MINILM_NAME, minilm_path
from .common import (
    add_labelled_data_arguments,
    label_ids,
    named_labels,
    row_groups,
    text_lines,
)


def register(command) -> None:
    sub = command(
        "compare",
        cmd_compare,
        "Compare a teacher with its students: size, speed, memory, agreement, accuracy.",
        f"""
        Measures TEACHER (a sentence encoder; `{MINILM_NAME}` means the installed one) and
        each STUDENT folder in float32 and as an int8 copy (minibert.quantize; a folder that is
        already int8 gives its int8 row only):
          parameters   total and encoder-only (the transformer layers), and their share of
                       the teacher's
          size         the weight file on disk (for int8: as save_pretrained writes it)
          latency      median ms of --repeats forward passes at 1 x 16 and 8 x 128 tokens after
                       2 warm-up passes, each model in a fresh process with --threads threads,
                       the models timed in turns; the speed-up over the teacher in float32
          memory       that process's peak RSS, and its increase over the interpreter with
                       numpy and minibert imported
          agreement    with the teacher on held-out sentences (--texts, default the 256 corpus
                       sentences `minibert distill` holds out): mean cosine of mean-pooled
                       vectors (a narrower student's through its saved distillation projection,
                       else n/a) and retrieval top-1 agreement (is each sentence's nearest
                       neighbour the same as under the teacher)
          Lee          Spearman correlation with the Lee document-similarity ratings
          accuracy     of --classifiers NAME=FOLDER on the test split of --data (default: the
                       cache's rotten_tomatoes.csv, split by movie as fine-tuning did), and its
                       share of the teacher classifier's (NAME `teacher` or the teacher's name)
        A classifier NAME that is not a model's name adds a row measured on the classifier
        itself. --variants adds rows for compressed copies of each float32 model (and of its
        classifier), made on the fly:
          int4           group-wise int4 layers and word table (group 128)
          heads:F        the fraction F of the heads removed, least important first (Michel et
                         al.'s score on an in-batch retrieval loss over --variant-texts)
          layers:I,J,..  only those encoder layers kept (0-based)
          tokens:F       PoWER-BERT token elimination, down to the fraction F of the tokens
                         after the last layer ([CLS] kept): accuracy and latency only
        Progress goes to stderr; the table to stdout. Takes minutes on real models.
        """,
        f"minibert compare {MINILM_NAME} runs/distill/agnostic-tinybert/checkpoint-600 "
        "--names MiniLM tinybert --classifiers MiniLM=runs/finetune/run/checkpoint-638 "
        "--markdown compare.md --json compare.json --chart compare.png",
    )
    sub.add_argument("teacher", metavar="TEACHER", help=f"teacher folder, or {MINILM_NAME}")
    sub.add_argument("students", nargs="*", metavar="STUDENT", help="student model folders")
    sub.add_argument(
        "--names", nargs="+", metavar="NAME", help="row names: the teacher's, then each student's"
    )
    sub.add_argument(
        "--classifiers",
        nargs="+",
        default=[],
        metavar="NAME=FOLDER",
        help="classifier folders whose accuracy fills row NAME (a new NAME adds a row)",
    )
    sub.add_argument("--no-int8", action="store_true", help="float32 rows only")
    sub.add_argument(
        "--variants",
        nargs="+",
        default=[],
        metavar="SPEC",
        help="compressed rows: int4, heads:F, layers:I,J,.., tokens:F (see above)",
    )
    sub.add_argument(
        "--variant-texts",
        metavar="FILE",
        help="texts that score the heads of heads:F, one a line (default: 256 corpus "
        "sentences not held out, else the agreement texts)",
    )
    sub.add_argument(
        "--texts", metavar="FILE", help="held-out sentences, one a line (default: the corpus's)"
    )
    sub.add_argument(
        "--held-out", type=int, default=256, metavar="N", help="corpus sentences (default 256)"
    )
    sub.add_argument("--lee", metavar="DIR", help="Lee data folder (default: the cache's)")
    sub.add_argument("--no-lee", action="store_true", help="skip the Lee correlation")
    data = sub.add_argument_group("accuracy data (default: the cache's rotten_tomatoes.csv)")
    add_labelled_data_arguments(
        data,
        ".csv, .tsv or .jsonl with texts and labels",
        labels_help="the classifiers' classes in id order",
    )
    data.add_argument("--max-length", type=int, default=64, help="tokens per text (default 64)")
    data.add_argument("--split-seed", type=int, default=0, help="the split's seed (default 0)")
    timing = sub.add_argument_group("timing")
    timing.add_argument("--repeats", type=int, default=10, metavar="N", help="timed passes")
    timing.add_argument("--threads", type=int, default=2, metavar="N", help="threads per model")
    timing.add_argument(
        "--pause",
        type=float,
        default=0.2,
        metavar="S",
        help="seconds between two timed passes, so the last model's threads stop spinning",
    )
    timing.add_argument("--no-timing", action="store_true", help="skip latency and memory")
    out = sub.add_argument_group("output files")
    out.add_argument("--markdown", metavar="OUT.md", help="write the table as Markdown")
    out.add_argument("--json", metavar="OUT.json", help="write every figure as JSON")
    out.add_argument("--chart", metavar="OUT.png", help="write bar charts (needs matplotlib)")


def cmd_compare(args) -> int:
    # the measuring machinery (training, distillation, timing), for this command only
    from ..distill.compare import Entry, compare
    from ..distill.report import markdown, plot, table, targets

    if args.repeats < 1 or args.threads < 1 or args.held_out < 2 or not args.pause >= 0:
        raise ValueError("--repeats and --threads must be >= 1, --held-out >= 2, --pause >= 0")
    if args.chart:  # fail now, not after minutes of measuring
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError(
                "--chart needs matplotlib: pip install matplotlib (or leave out --chart)"
            ) from None
    folders = [_teacher_folder(args.teacher)] + [Path(s).expanduser() for s in args.students]
    for folder in folders:
        if not folder.exists():
            raise FileNotFoundError(f"no such model folder: {folder}")
    names = args.names or _default_names(folders)
    if len(names) != len(folders):
        raise ValueError(
            f"--names gives {len(names)} name(s) for {len(folders)} model(s) (the teacher and "
            f"{len(folders) - 1} student(s))"
        )
    entries = [
        Entry(name, folder, "teacher" if i == 0 else "student")
        for i, (name, folder) in enumerate(zip(names, folders, strict=True))
    ]
    for item in args.classifiers:
        name, sep, folder = item.partition("=")
        name, folder = name.strip(), folder.strip()
        if not sep or not name or not folder:
            raise ValueError(f"--classifiers {item!r}: expected NAME=FOLDER")
        folder = Path(folder).expanduser()  # NAME=~/... is not expanded by the shell
        if not folder.exists():
            raise FileNotFoundError(f"--classifiers {name}: no such folder {folder}")
        if name == "teacher":
            name = entries[0].name
        match = next((e for e in entries if e.name == name), None)
        if match is None:
            entries.append(Entry(name, folder, "classifier", classifier=folder))
        elif match.classifier is not None:
            raise ValueError(f"--classifiers names {name!r} twice")
        else:
            match.classifier = folder
    classifiers = [e.classifier for e in entries if e.classifier is not None]
    classification = _classification(args, classifiers) if classifiers else None
    texts = _texts(args)
    lee = _lee_dir(args)
    variants = _variants(args)
    variant_texts = _variant_texts(args) if any(v.kind == "heads" for v in variants) else None
    results = compare(
        entries,
        texts=texts,
        lee_dir=lee,
        classification=classification,
        int8=not args.no_int8,
        repeats=args.repeats,
        threads=args.threads,
        timing=not args.no_timing,
        pause=args.pause,
        variants=variants,
        variant_texts=variant_texts,
    )
    print(table(results))
    for line in targets(results):
        print(line)
    if args.markdown:
        _write(args.markdown, markdown(results))
    if args.json:
        _write(args.json, json.dumps(results, indent=1) + "\n")
    if args.chart:
        written = plot(results, args.chart)
        print(f"wrote {written}", file=sys.stderr)
    return 0


def _write(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


def _teacher_folder(name: str) -> Path:
    if name == MINILM_NAME and not Path(name).exists():
        return minilm_path()
    return Path(name).expanduser()


def _default_names(folders) -> list[str]:
    """The teacher is "teacher"; a student is named by its folder, or by its run's folder for
    a checkpoint-N folder (runs/distill/agnostic-tinybert/checkpoint-600 -> agnostic-tinybert)."""
    names = ["teacher"]
    for folder in folders[1:]:
        folder = folder.resolve()
        names.append(folder.parent.name if folder.name.startswith("checkpoint-") else folder.name)
    return names


def _two_or_more(path, option: str, why: str) -> list:
    """The texts of an option's file, one a line (common.text_lines); fewer than 2 is a
    ValueError naming the option, the file, the count and `why`."""
    texts = text_lines(path, option)
    if len(texts) < 2:
        file = Path(path).expanduser()
        raise ValueError(f"{option} {file} has {len(texts)} text(s); {why}")
    return texts


def _texts(args):
    from ..distill.compare import held_out_sentences

    if args.texts:
        return _two_or_more(args.texts, "--texts", "the agreement needs 2+")
    try:
        return held_out_sentences(args.held_out)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"no held-out texts for the agreement columns: give --texts FILE (one sentence a "
            f"line) or fetch the offline corpus with `python scripts/fetch_data.py` ({exc})"
        ) from None


def _variants(args) -> list:
    from ..compression.variants import parse_variant

    variants = [parse_variant(spec) for spec in args.variants]
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--variants names the same variant twice: {' '.join(args.variants)}")
    return variants


def _variant_texts(args):
    """The texts that score heads: --variant-texts, else a seeded corpus sample that the
    held-out sentences are not drawn with, else None (compare then uses the agreement texts)."""
    if args.variant_texts:
        return _two_or_more(args.variant_texts, "--variant-texts", "2 at least")
    from ..data.text import corpus_files, corpus_sentences

    try:
        return corpus_sentences(corpus_files(), max_texts=256, seed=1)
    except FileNotFoundError:
        return None


def _lee_dir(args):
    if args.no_lee:
        return None
    if args.lee:
        folder = Path(args.lee).expanduser()
        if not (folder / "lee.cor").is_file():
            raise FileNotFoundError(f"--lee {folder} has no lee.cor (and similarities.txt)")
        return folder
    folder = data_dir() / "lee"
    if (folder / "lee.cor").is_file():
        return folder
    print("no Lee data in the cache: the Lee column is left out (--lee DIR)", file=sys.stderr)
    return None


def _classification(args, classifiers):
    from ..distill.compare import Classification, rotten_tomatoes

    if args.max_length < 3:
        raise ValueError(f"--max-length must be at least 3, got {args.max_length}")
    if args.data is None:
        data = rotten_tomatoes()
        if args.labels:
            data = _relabel(data, args.labels.split(","), args.data)
    else:
        rows = read_labelled(args.data, args.text_column, args.label_column)
        # --labels, else the first classifier's named classes, else the data's sorted labels
        # (the ids `minibert finetune` gives)
        names = named_labels(args.labels, classifiers[0]) or list(rows.label_names)
        labels = label_ids(rows, names, args.data)
        data = Classification(
            rows.texts, labels, row_groups(args, rows), names, source=Path(args.data).name
        )
    data.max_length, data.split_seed = args.max_length, args.split_seed
    return data


def _relabel(data, names, source):
    names = [n.strip() for n in names]
    if sorted(names) != sorted(data.label_names):
        raise ValueError(f"--labels {','.join(names)}: the data's labels are {data.label_names}")
    order = {name: i for i, name in enumerate(names)}
    data.labels = [order[data.label_names[i]] for i in data.labels]
    data.label_names = names
    return data
