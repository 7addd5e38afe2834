"""A teacher and its students side by side, float32 and int8: what `minibert compare` prints.

For every model (the teacher first, then each student), in float32 and as an int8 copy
(minibert.quantize, made on the fly; a folder that is already int8 gives its int8 row only):

  parameters    total and encoder-only (the transformer layers, without the embeddings,
                pooler and heads), each as a share of the teacher's;
  size on disk  the weight file: the folder's for float32, the file save_pretrained writes for
                the int8 copy;
  latency       median milliseconds of a forward pass at batch 1 x 16 and 8 x 128 tokens,
                after warm-up, in a fresh process limited to `threads` threads (the
                OMP/OpenBLAS/MKL/Numba thread variables), the models' passes in turns, and
                the speed-up over the teacher in float32;
  peak memory   the peak resident set size of that process (the kernel's VmHWM; getrusage
                where there is no /proc) after loading the model and running both shapes, and
                its increase over the interpreter with numpy and minibert imported;
  agreement     with the teacher (float32) on held-out sentences: the mean cosine of
                mean-pooled sentence vectors (a narrower student's through the projection it
                was distilled with, objective.safetensors, when its folder has one), and
                retrieval top-1 agreement: for each sentence, whether its nearest neighbour
                among the others is the same sentence under the model and under the teacher
                (any width);
  Lee           the Spearman correlation with human document-similarity ratings
                (evaluation/lee.py);
  accuracy      of a classifier attached to the row (fine-tuned or distilled on the labelled
                data) on the test split that fine-tuning and task distillation hold out
                (recipes.classification_splits: 80/10/10 by group, seeded), and its share of
                the teacher classifier's accuracy in float32.

A classifier is attached by name (--classifiers NAME=FOLDER in the CLI): NAME is the name of
a row (the teacher's or a student's), or a new name, which adds a row measured on the
classifier folder itself (its agreement and Lee correlation are then not measured: a
fine-tuned encoder is no longer a sentence encoder).
"""

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .evaluation.agreement import mean_cosine, top1_agreement
from .evaluation.timing import PAUSE_S, SHAPES, THREAD_VARIABLES, WARMUP, time_in_turns

PRECISIONS = ("float32", "int8")
HELD_OUT = 256  # held-out sentences of task-agnostic distillation (distill --held-out)
CORPUS_SAMPLE = 50000  # the sentences it samples (distill --max-texts)
TASK_LENGTH = 64  # tokens per review when the Rotten Tomatoes classifiers were trained
RT_LABELS = ("rotten", "fresh")  # ids 0 and 1 of the classifiers the reports train
PROJECTION = "objective.safetensors"  # where a distilled student keeps its projection
MINILM_NAME = "all-MiniLM-L6-v2"
__all__ = [
    "Classification",
    "Entry",
    "compare",
    "held_out_sentences",
    "markdown",
    "plot",
    "table",
    "targets",
]


@dataclass
class Entry:
    """One model to compare. folder: its model folder; classifier: a classifier folder whose
    accuracy fills the row (None: no accuracy); role: "teacher", "student" or "classifier"
    (a row measured on its classifier alone)."""

    name: str
    folder: Path
    role: str = "student"
    classifier: Path | None = None


@dataclass
class Classification:
    """The labelled data of the accuracy column: texts, label ids (in label_names' order),
    groups (a split keeps each whole) and the split's settings."""

    texts: list
    labels: list
    groups: list
    label_names: list
    max_length: int = TASK_LENGTH
    split_seed: int = 0
    source: str = ""


# --- inputs ---------------------------------------------------------------------------------------
def held_out_sentences(count: int = HELD_OUT, sample: int = CORPUS_SAMPLE, seed: int = 0):
    """The sentences task-agnostic distillation held out of training, with its defaults: of
    `sample + count` corpus sentences (data.text.corpus_sentences, seeded), the first
    `count` of a seeded permutation (as `minibert distill` and scripts/distill_reports.py)."""
    from .data.text import corpus_files, corpus_sentences

    picked = corpus_sentences(corpus_files(), max_texts=sample + count, seed=seed)
    order = np.random.default_rng(seed).permutation(len(picked))
    return [picked[i] for i in order[: min(count, len(picked) // 2)]]


def rotten_tomatoes(file=None) -> Classification:
    """The cache's rotten_tomatoes.csv as the classifiers of scripts/train_reports.py and
    scripts/distill_reports.py were trained on it: fresh = 1, grouped by movie, 64 tokens."""
    import csv

    from .data.text import data_dir

    file = Path(file) if file is not None else data_dir() / "rotten_tomatoes.csv"
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} is missing: run `python scripts/fetch_data.py` or give --data"
        )
    with file.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return Classification(
        [r["text"] for r in rows],
        [int(r["label"] == "fresh") for r in rows],
        [r["movie"] for r in rows],
        list(RT_LABELS),
        source=file.name,
    )


def _projection(folder: Path, width: int, teacher_width: int):
    """(weight (C_t, C), bias (C_t,)) saved with a distilled student, or None."""
    from .checkpoint import read_safetensors

    file = folder / PROJECTION
    if not file.is_file():
        return None
    tensors = read_safetensors(file)
    w, b = tensors.get("projection.weight"), tensors.get("projection.bias")
    if w is None or w.shape != (teacher_width, width):
        return None
    return w.astype(np.float64), (b if b is not None else np.zeros(teacher_width)).astype(
        np.float64
    )


def _tokenizer_key(tokenizer) -> tuple:
    probe = "The quick brown fox, unbelievably, jumped over 3 lazy dogs! Ünïcödé café."
    return tokenizer.vocab_size, tuple(tokenizer(probe)["input_ids"][0])


def _display(path: Path) -> str:
    """A folder as the report names it: the installed MiniLM by name, a folder under the home
    directory as ~/..., others as given (no machine's absolute paths in shared results)."""
    from .pretrained import minilm_available, minilm_path

    path = Path(path)
    if minilm_available() and path.resolve() == minilm_path().resolve():
        return MINILM_NAME
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def _check_folder(folder: Path, what: str, tokenizer: bool = True) -> None:
    if not folder.exists():
        raise FileNotFoundError(f"{what} {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{what} {folder} is not a model folder (no config.json)")
    if tokenizer and not any((folder / n).is_file() for n in ("tokenizer.json", "vocab.txt")):
        raise ValueError(f"{what} {folder} has no tokenizer (tokenizer.json or vocab.txt)")


# --- the comparison -------------------------------------------------------------------------------
def compare(
    entries,
    texts=None,
    lee_dir=None,
    classification: Classification | None = None,
    int8: bool = True,
    repeats: int = 10,
    threads: int = 2,
    timing: bool = True,
    progress: bool = True,
    pause: float = PAUSE_S,
) -> dict:
    """Measure every entry (the first is the teacher), float32 and int8; returns the results
    as a JSON-ready dict {"settings": ..., "rows": [...]} (see the module docstring).

    Args:
        entries: Entry objects; entries[0] is the teacher (a sentence encoder, role "teacher").
        texts: held-out sentences for the agreement columns (at least 2); None skips them.
        lee_dir: the Lee data folder; None skips the Lee column.
        classification: the labelled data of the accuracy column (needed when an entry has a
            classifier).
        int8: also measure an int8 copy of each float32 model.
        timing: measure latency and peak memory (a fresh process per model and precision).
        pause: seconds between two timed passes (of different processes), so that the threads
            of the one that just ran stop spinning before the next starts.
    """
    from .io import read_config
    from .sentence import SentenceEncoder

    entries = list(entries)
    if not entries or entries[0].role != "teacher":
        raise ValueError("the first entry must be the teacher (role 'teacher')")
    if repeats < 1 or threads < 1:
        raise ValueError(f"repeats and threads must be >= 1, got {repeats} and {threads}")
    if texts is not None and len(texts) < 2:
        raise ValueError(f"the agreement needs at least 2 held-out texts, got {len(texts)}")
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two models are named {duplicates[0]!r}: give each a --names entry")
    teacher = entries[0]
    for entry in entries:
        encoder_row = entry.role != "classifier"
        _check_folder(entry.folder, "model folder", tokenizer=encoder_row)
        if entry.classifier is not None:
            _check_folder(entry.classifier, "classifier folder")
            architecture = read_config(entry.classifier).architecture
            if not architecture.endswith("ForSequenceClassification"):
                raise ValueError(
                    f"classifier {entry.classifier} holds a {architecture}, not a "
                    "*ForSequenceClassification model"
                )
            if classification is None:
                raise ValueError("a classifier needs labelled data to measure its accuracy")
    if read_config(teacher.folder).architecture.endswith("ForSequenceClassification"):
        raise ValueError(
            f"the teacher {teacher.folder} is a classifier: give the sentence encoder as TEACHER "
            "and attach the classifier by name (teacher=FOLDER)"
        )

    from tqdm import tqdm

    encoders = {}
    for entry in entries:
        if entry.role != "classifier":
            encoders[entry.name] = SentenceEncoder(entry.folder, normalize=False)
    teacher_tokens = _tokenizer_key(encoders[teacher.name].tokenizer)
    for entry in entries[1:]:
        if entry.role == "classifier":
            continue
        tok, ref = encoders[entry.name].tokenizer, encoders[teacher.name].tokenizer
        if _tokenizer_key(tok) != teacher_tokens:
            raise ValueError(
                f"{entry.name} ({entry.folder}) has another tokenizer than the teacher "
                f"(vocabulary {tok.vocab_size:,} vs {ref.vocab_size:,}, or other token ids): "
                "a student of this teacher shares its tokenizer"
            )
    lee = None
    if lee_dir is not None:
        from .evaluation.lee import read_lee

        lee = read_lee(lee_dir)

    steps = _count_steps(entries, int8, texts, lee_dir, timing)
    bar = tqdm(total=steps, desc="compare", unit="step", disable=not progress, file=sys.stderr)
    try:
        rows = _measure_all(
            entries,
            encoders,
            lee,
            texts,
            classification,
            int8,
            repeats,
            threads,
            timing,
            bar,
            pause,
        )
    finally:
        bar.close()

    teacher_accuracy = next(
        (r["accuracy"]["accuracy"] for r in rows if r["role"] == "teacher" and "accuracy" in r),
        None,
    )
    for row in rows:
        if "accuracy" in row and teacher_accuracy:
            row["accuracy_share"] = row["accuracy"]["accuracy"] / teacher_accuracy
    settings = {
        "date": time.strftime("%Y-%m-%d"),
        "threads": threads,
        "thread_variables": list(THREAD_VARIABLES),
        "repeats": repeats,
        "warmup": WARMUP,
        "pause_s": pause,
        "shapes": [f"{b}x{t}" for b, t in SHAPES],
        "load_average": _load_average(),
        "cpus": os.cpu_count(),
        "texts": len(texts) if texts is not None else None,
        "lee_documents": len(lee["documents"]) if lee is not None else None,
    }
    if classification is not None:
        settings["classification"] = {
            "source": classification.source,
            "labels": classification.label_names,
            "max_length": classification.max_length,
            "split_seed": classification.split_seed,
        }
    return {"settings": settings, "rows": rows}


def _measure_all(
    entries, encoders, lee, texts, classification, int8, repeats, threads, timing, bar, pause
):
    """The rows of compare(), in order: each entry's float32 row, then its int8 row."""
    from .checkpoint import weight_bytes
    from .io import load
    from .quant import is_quantized, quantize

    teacher_params = reference = None
    rows, jobs = [], []  # jobs: (row, folder) to time once every model is on disk
    with tempfile.TemporaryDirectory(prefix="minibert-compare-") as scratch:
        for index, entry in enumerate(entries):
            encoder = encoders.get(entry.name)
            model = encoder.model if encoder is not None else load(entry.folder)
            already_int8 = is_quantized(model)
            classifier = None
            if entry.role == "classifier":
                classifier = model
            elif entry.classifier is not None:
                classifier = load(entry.classifier)
            variants = [("int8" if already_int8 else "float32", model, entry.folder, classifier)]
            if int8 and not already_int8:
                bar.set_postfix_str(f"{entry.name}: int8 copy")
                qmodel = quantize(model)
                qfolder = Path(scratch) / f"{index}-int8"
                qmodel.save_pretrained(qfolder)
                qclassifier = qmodel if entry.role == "classifier" else None
                if classifier is not None and qclassifier is None:
                    qclassifier = quantize(classifier)
                variants.append(("int8", qmodel, qfolder, qclassifier))
            for precision, variant, folder, clf in variants:
                counts = variant.parameter_counts()
                row = {
                    "name": entry.name,
                    "role": entry.role,
                    "precision": precision,
                    "folder": _display(entry.folder),
                    "classifier": _display(entry.classifier) if entry.classifier else None,
                    "sizes": _sizes(variant),
                    "parameters": counts,
                    "bytes": weight_bytes(folder),
                }
                if teacher_params is None:
                    teacher_params = counts
                row["parameters_share"] = counts["total"] / teacher_params["total"]
                row["encoder_share"] = counts["encoder"] / max(teacher_params["encoder"], 1)
                jobs.append((row, folder))
                if encoder is not None and texts is not None:
                    bar.set_postfix_str(f"{entry.name} {precision}: agreement")
                    encoder.model = variant
                    vectors = encoder.encode(texts)
                    encoder.model = model
                    if reference is None:
                        reference = vectors  # the teacher in float32 (or its int8 folder)
                    row.update(_agreement(entry, vectors, reference))
                    bar.update()
                if encoder is not None and lee is not None:
                    bar.set_postfix_str(f"{entry.name} {precision}: Lee")
                    row["lee"] = _lee(variant, encoder, lee)
                    bar.update()
                if clf is not None:
                    bar.set_postfix_str(f"{entry.name} {precision}: accuracy")
                    row["accuracy"] = _accuracy(clf, entry.classifier, classification)
                    bar.update()
                rows.append(row)
            encoders.pop(entry.name, None)  # free the models as we go
        if timing:  # in the scratch folder's lifetime: the int8 copies are timed from there
            time_in_turns(jobs, repeats, threads, bar, pause)
            for row in rows:
                row["speedup"] = {
                    k: rows[0]["latency_ms"][k] / v for k, v in row["latency_ms"].items()
                }
    return rows


def _count_steps(entries, int8, texts, lee_dir, timing) -> int:
    total = 0
    for entry in entries:
        per = timing + (entry.role != "classifier") * ((texts is not None) + (lee_dir is not None))
        per += entry.classifier is not None
        total += per * (2 if int8 else 1)
    return total


def _sizes(model) -> str:
    c = model.config
    E = f" E{c.embedding_size}" if c.embedding_size else ""
    return f"L{c.num_hidden_layers} C{c.hidden_size}{E}"


def _agreement(entry: Entry, vectors, reference) -> dict:
    out = {"top1_agreement": top1_agreement(vectors, reference)}
    width, teacher_width = vectors.shape[1], reference.shape[1]
    if width == teacher_width:
        out["mean_cosine"] = mean_cosine(vectors, reference)
        return out
    projection = _projection(entry.folder, width, teacher_width)
    if projection is None:
        out["mean_cosine"] = None
        out["cosine_note"] = (
            f"width {width} vs the teacher's {teacher_width} and no projection "
            f"({PROJECTION}) in the folder"
        )
        return out
    w, b = projection
    out["mean_cosine"] = mean_cosine(vectors @ w.T + b, reference)
    out["cosine_note"] = "through the student's distillation projection"
    return out


def _lee(model, encoder, lee) -> float:
    from .evaluation.lee import lee_scores
    from .sentence import sentence_length

    length = sentence_length(encoder.path, model)
    return lee_scores(model, encoder.tokenizer, lee, length)["spearman"]


_SPLITS = {}  # (tokenizer key, data id) -> test examples: one tokenization per tokenizer


def _accuracy(model, folder: Path, data: Classification) -> dict:
    from .evaluation.metrics import classification_metrics
    from .tokenizer import load_tokenizer
    from .training.recipes import classification_splits, predict

    if model.config.num_labels != len(data.label_names):
        raise ValueError(
            f"classifier {folder} has {model.config.num_labels} classes but the data has "
            f"{len(data.label_names)} ({', '.join(data.label_names)})"
        )
    tokenizer = load_tokenizer(folder)
    key = (_tokenizer_key(tokenizer), id(data))
    if key not in _SPLITS:
        splits = classification_splits(
            data.texts, data.labels, data.groups, tokenizer, data.max_length, data.split_seed
        )
        _SPLITS.clear()
        _SPLITS[key] = splits["test"]
    test = _SPLITS[key]
    gold = np.array([int(e["labels"]) for e in test])
    metrics = classification_metrics(predict(model, test, 32, tokenizer.pad_token_id), gold)
    return {"accuracy": float(metrics["accuracy"]), "f1": float(metrics["f1"]), "test": len(gold)}


def _load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


# --- output ---------------------------------------------------------------------------------------
COLUMNS = (
    "model",
    "precision",
    "sizes",
    "parameters",
    "encoder",
    "size on disk",
    "1x16 ms",
    "8x128 ms",
    "speed-up 1x16 / 8x128",
    "peak memory (+ over imports)",
    "mean cosine",
    "top-1 agreement",
    "Lee Spearman",
    "accuracy",
    "% of teacher accuracy",
)


def _cells(row: dict) -> list[str]:
    p = row["parameters"]
    na = "n/a"
    cells = [
        row["name"],
        row["precision"],
        row["sizes"],
        f"{p['total'] / 1e6:.2f}M ({row['parameters_share']:.0%})",
        f"{p['encoder'] / 1e6:.2f}M ({row['encoder_share']:.1%})",
        f"{row['bytes'] / 1e6:.1f} MB",
    ]
    if "latency_ms" in row:
        lat, up, mem = row["latency_ms"], row["speedup"], row["memory_mib"]
        cells += [
            f"{lat['1x16']:.2f}",
            f"{lat['8x128']:.1f}",
            f"{up['1x16']:.2f}x / {up['8x128']:.2f}x",
            f"{mem['peak']:.0f} MiB (+{mem['increase']:.0f})",
        ]
    else:
        cells += ["not timed"] * 4
    cosine = row.get("mean_cosine")
    cells.append(f"{cosine:.4f}" if cosine is not None else na)
    top1 = row.get("top1_agreement")
    cells.append(f"{top1:.1%}" if top1 is not None else na)
    lee = row.get("lee")
    cells.append(f"{lee:.3f}" if lee is not None else na)
    acc = row.get("accuracy")
    cells.append(f"{acc['accuracy']:.2%}" if acc else na)
    share = row.get("accuracy_share")
    cells.append(f"{share:.1%}" if share is not None else na)
    return cells


def _notes(results: dict) -> list[str]:
    """Why a cell says n/a, once per model."""
    notes, seen = [], set()
    for row in results["rows"]:
        if row["name"] in seen:
            continue
        seen.add(row["name"])
        if row.get("cosine_note") and row.get("mean_cosine") is None:
            notes.append(f"{row['name']}: mean cosine n/a: {row['cosine_note']}")
        elif row.get("cosine_note"):
            notes.append(f"{row['name']}: mean cosine {row['cosine_note']}")
        short = {k: v for k, v in row.get("shapes_run", {}).items() if k != v}
        if short:
            ran = ", ".join(f"{k} as {v}" for k, v in short.items())
            notes.append(f"{row['name']}: ran {ran} (its position table is shorter)")
        if row["role"] == "classifier":
            notes.append(f"{row['name']}: a classifier; agreement and Lee are not measured")
    return notes


def table(results: dict) -> str:
    """The rows as an aligned plain-text table (one line per model and precision)."""
    rows = [list(COLUMNS)] + [_cells(r) for r in results["rows"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + _settings_lines(results) + _notes(results))


def markdown(results: dict) -> str:
    """The rows as a Markdown table, the settings and the notes below it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [
        "| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in results["rows"]
    ]
    extra = _settings_lines(results) + _notes(results) + targets(results)
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in extra) + "\n"


def _settings_lines(results: dict) -> list[str]:
    s = results["settings"]
    load = s.get("load_average")
    lines = [
        f"measured {s['date']}: latency = median of {s['repeats']} forward passes after "
        f"{s['warmup']} warm-up, {s['threads']} threads ({', '.join(s['thread_variables'])}), "
        f"a process per row, the rows timed in turns {s.get('pause_s', 0):g} s apart; "
        f"{s['cpus']} CPUs, load average "
        + (" / ".join(f"{x:.2f}" for x in load) if load else "unknown"),
        "peak memory: the process's peak RSS after loading and running both shapes; (+N): "
        "over the interpreter with numpy and minibert imported",
    ]
    if s.get("texts"):
        lines.append(
            f"agreement with the teacher (float32) on {s['texts']} held-out sentences; "
            "encoder = the transformer layers, without embeddings, pooler and heads"
        )
    c = s.get("classification")
    if c:
        lines.append(
            f"accuracy: test split of {c['source']} (80/10/10 by group, seed {c['split_seed']}, "
            f"{c['max_length']} tokens, labels {', '.join(c['labels'])})"
        )
    return lines


def targets(results: dict, share: float = 0.40, keep: float = 0.95, speed: float = 2.0):
    """One line per student row with an accuracy: does it meet 'at most `share` of the
    teacher's encoder parameters, at least `keep` of its accuracy, at least `speed`x faster'
    (speed at 8 x 128 against the teacher in float32)?"""
    lines = []
    for row in results["rows"]:
        if row["role"] == "teacher" or row.get("accuracy_share") is None:
            continue
        checks = [
            (
                f"encoder parameters {row['encoder_share']:.1%} of the teacher's "
                f"(total {row['parameters_share']:.1%})",
                row["encoder_share"] <= share,
            ),
            (
                f"accuracy {row['accuracy_share']:.1%} of the teacher's",
                row["accuracy_share"] >= keep,
            ),
        ]
        if "speedup" in row:
            fast = row["speedup"]["8x128"]
            checks.append((f"{fast:.2f}x faster at 8x128", fast >= speed))
        met = all(ok for _, ok in checks)
        detail = "; ".join(f"{text} ({'yes' if ok else 'no'})" for text, ok in checks)
        lines.append(
            f"target {share:.0%} / {keep:.0%} / {speed:g}x, {row['name']} {row['precision']}: "
            f"{'met' if met else 'not met'}: {detail}"
        )
    return lines


def _short(value: float) -> str:
    """A bar's label: 3 significant digits, no exponent."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def plot(results: dict, file) -> Path:
    """Bar charts, float32 and int8 side by side for each model: size on disk, latency at both
    shapes, peak memory, Lee correlation, accuracy. Needs matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "the chart needs matplotlib: pip install matplotlib (or leave out --chart)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    names = list(dict.fromkeys(r["name"] for r in rows))
    panels = [
        ("size on disk (MB)", lambda r: r["bytes"] / 1e6),
        ("latency 1x16 (ms)", lambda r: r.get("latency_ms", {}).get("1x16")),
        ("latency 8x128 (ms)", lambda r: r.get("latency_ms", {}).get("8x128")),
        ("peak memory (MiB)", lambda r: r.get("memory_mib", {}).get("peak")),
        ("Lee Spearman", lambda r: r.get("lee")),
        (
            "test accuracy (%)",
            lambda r: 100 * r["accuracy"]["accuracy"] if "accuracy" in r else None,
        ),
    ]
    panels = [(t, f) for t, f in panels if any(f(r) is not None for r in rows)]
    cols = 3
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    x = np.arange(len(names))
    colours = {"float32": "#3182bd", "int8": "#e6550d"}
    labels = []
    for name in names:
        first = next(r for r in rows if r["name"] == name)
        wrapped = name.replace("-", "-\n") if len(name) > 12 else name
        labels.append(f"{wrapped}\n{first['parameters']['total'] / 1e6:.1f}M")
    for ax, (title, value) in zip(axes.flat, panels, strict=False):
        for k, precision in enumerate(PRECISIONS):
            heights = []
            for name in names:
                row = next(
                    (r for r in rows if r["name"] == name and r["precision"] == precision), None
                )
                v = value(row) if row is not None else None
                heights.append(np.nan if v is None else v)
            bars = ax.bar(
                x + (k - 0.5) * 0.4, heights, 0.4, label=precision, color=colours[precision]
            )
            texts = ["" if np.isnan(h) else _short(h) for h in heights]
            ax.bar_label(bars, labels=texts, fontsize=7, padding=1)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(x, labels, fontsize=8)
        ax.margins(y=0.15)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    s = results["settings"]
    fig.suptitle(
        f"teacher and students, float32 and int8 ({s['threads']} threads, {s['date']})", fontsize=10
    )
    fig.tight_layout()
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file, dpi=100)
    plt.close(fig)
    return file
