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

The measuring is in evaluation/ (timing, agreement, Lee, metrics) and the output in report.py;
what remains here, a little over 400 lines, is the one procedure that runs them over the rows
and the checks of its inputs, read top to bottom.
"""

import csv
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..checkpoint import read_safetensors, weight_bytes
from ..data.text import corpus_files, corpus_sentences, data_dir
from ..evaluation.agreement import mean_cosine, top1_agreement
from ..evaluation.lee import lee_scores, read_lee
from ..evaluation.metrics import classification_metrics
from ..evaluation.timing import PAUSE_S, SHAPES, THREAD_VARIABLES, WARMUP, time_in_turns
from ..io import load, read_config
from ..pretrained import MINILM_NAME, minilm_available, minilm_path
from ..quant import is_quantized, quantize
from ..sentence import SentenceEncoder, sentence_length
from ..tokenizer import load_tokenizer
from ..training.recipes import classification_splits, predict
from ..training.trainer import OBJECTIVE_NAME

HELD_OUT = 256  # held-out sentences of task-agnostic distillation (distill --held-out)
CORPUS_SAMPLE = 50000  # the sentences it samples (distill --max-texts)
TASK_LENGTH = 64  # tokens per review when the Rotten Tomatoes classifiers were trained
RT_LABELS = ("rotten", "fresh")  # ids 0 and 1 of the classifiers the reports train
PROJECTION = OBJECTIVE_NAME  # a distilled student's folder keeps its projection here


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
    picked = corpus_sentences(corpus_files(), max_texts=sample + count, seed=seed)
    order = np.random.default_rng(seed).permutation(len(picked))
    return [picked[i] for i in order[: min(count, len(picked) // 2)]]


def rotten_tomatoes(file=None) -> Classification:
    """The cache's rotten_tomatoes.csv as the classifiers of scripts/train_reports.py and
    scripts/distill_reports.py were trained on it: fresh = 1, grouped by movie, 64 tokens."""
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
    variants=(),
    variant_texts=None,
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
        variants: compressed variants of each float32 model, one row each after its int8 row
            (compression/variants.py's Variant: label, apply, save, runner, timing_child,
            vectors). A variant that keeps no vector per token (token elimination) has no
            agreement or Lee figures; a classifier gets the same variant (heads: the heads its
            sentence encoder's score chose).
        variant_texts: the sample texts a heads variant scores the heads on (default: texts).
    """
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
        lee = read_lee(lee_dir)

    steps = _count_steps(entries, int8, texts, lee_dir, timing, len(variants))
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
            variants,
            variant_texts if variant_texts is not None else texts,
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
        "variants": [v.label for v in variants],
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
    compressed=(),
    variant_texts=None,
):
    """The rows of compare(), in order: each entry's float32 row, then its int8 row, then
    one row per variant."""
    teacher_params = reference = None
    rows, jobs = [], []  # jobs: (row, folder[, child]) to time once every model is on disk
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
            if not already_int8:
                variants += _compressed(
                    compressed, entry, index, model, encoder, classifier, variant_texts, scratch,
                    bar,
                )  # fmt: skip
            for precision, variant, folder, clf, *how in variants:
                how = how[0] if how else None
                vectors = how is None or how.vectors
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
                jobs.append((row, folder) if how is None else (row, folder, how.timing_child))
                if encoder is not None and texts is not None and vectors:
                    bar.set_postfix_str(f"{entry.name} {precision}: agreement")
                    encoder.model = variant
                    sentence_vectors = encoder.encode(texts)
                    encoder.model = model
                    if reference is None:
                        reference = sentence_vectors  # the teacher in float32 (or int8 folder)
                    row.update(_agreement(entry, sentence_vectors, reference))
                    bar.update()
                if encoder is not None and lee is not None and vectors:
                    bar.set_postfix_str(f"{entry.name} {precision}: Lee")
                    row["lee"] = _lee(variant, encoder, lee)
                    bar.update()
                if clf is not None:
                    bar.set_postfix_str(f"{entry.name} {precision}: accuracy")
                    runner = clf if how is None else how.runner(clf)
                    row["accuracy"] = _accuracy(runner, entry.classifier, classification)
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


def _count_steps(entries, int8, texts, lee_dir, timing, variants=0) -> int:
    total = 0
    for entry in entries:
        per = timing + (entry.role != "classifier") * ((texts is not None) + (lee_dir is not None))
        per += entry.classifier is not None
        total += per * (1 + int8 + variants)
    return total


def _compressed(variants, entry, index, model, encoder, classifier, texts, scratch, bar) -> list:
    """(label, model, folder, classifier, variant) for each variant of a float32 entry."""
    out = []
    for k, how in enumerate(variants):
        bar.set_postfix_str(f"{entry.name}: {how.label}")
        tokenizer = encoder.tokenizer if encoder is not None else None
        if entry.role == "classifier":  # a classifier alone: its own variant, no sentence texts
            if how.kind == "heads":
                continue  # the heads are scored on a sentence encoder's vectors
            variant, _ = how.apply(model)
            vclassifier = variant
        else:
            variant, plan = how.apply(model, texts, tokenizer)
            vclassifier = None
            if classifier is not None:
                vclassifier, _ = how.apply(classifier, plan=plan)
        folder = Path(scratch) / f"{index}-variant-{k}"
        how.save(variant, folder)
        out.append((how.label, variant, folder, vclassifier, how))
    return out


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
    length = sentence_length(encoder.path, model)
    return lee_scores(model, encoder.tokenizer, lee, length)["spearman"]


_SPLITS = {}  # (tokenizer key, data id) -> test examples: one tokenization per tokenizer


def _accuracy(model, folder: Path, data: Classification) -> dict:
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
