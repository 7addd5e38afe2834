"""Text before it is tokenized: sentences, documents, the offline corpus, labelled files, splits.

1. Corpus helpers: `split_sentences` and `documents_from_text` turn running text into the
   documents of sentences that pretraining pairs are built from (see masking.py);
   `data_dir`, `corpus_files` and `corpus_sentences` read the offline cache that
   scripts/fetch_data.py fills.
2. Fine-tuning data: `read_labelled` reads texts and labels (one per text, or several with
   multi_label) from CSV or JSONL, `group_split` splits by group (e.g. by movie). batches.py
   tokenizes and pads them; conll.py reads the tagged words of token classification.

Every random choice comes from the seed or np.random.Generator passed in.
Shapes: N items in a data set.
"""

import bz2
import csv
import gzip
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MinibertError

DATA_ENV = "MINIBERT_DATA"  # the offline data cache (scripts/fetch_data.py writes it)


# Part 1: corpus helpers.

# Words that end with a full stop without ending the sentence (compared in lower case).
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof rev sr jr st mt vs etc e.g i.e cf fig no vol pp ca approx dept gen col "
    "capt lt sgt inc ltd co jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
# A candidate sentence end: ., ! or ? (maybe repeated), closing quotes or brackets, then spaces.
SENTENCE_END = re.compile("[.!?]+[\"'\u201d\u2019)\\]]*\\s+")
OPENERS = "\"'(\\[\u201c\u2018"  # may come before the first letter of a sentence


def split_sentences(text: str) -> list[str]:
    """Split running text into sentences with a few rules; whitespace runs become one space.

    A sentence ends at ".", "!" or "?" (closing quotes or brackets may follow) when whitespace and
    then a capital letter, a digit or an opening quote or bracket come next, except after an
    abbreviation in ABBREVIATIONS or an initial ("J. Smith"). Limits: an unknown abbreviation before
    a capitalised word splits ("Ave. Maria"); a sentence that starts in lower case, or a full stop
    without a following space ("end.Next"), does not; "It was I. Then" does not split either.
    """
    if not isinstance(text, str):
        raise MinibertError(f"text must be a str, got {type(text).__name__}")
    text = " ".join(text.split())
    sentences, start = [], 0
    for match in SENTENCE_END.finditer(text):
        following = text[match.end() : match.end() + 4].lstrip(OPENERS)[:1]
        if not (following.isupper() or following.isdigit()):
            continue
        space = text.rfind(" ", start, match.start())  # -1: the word opens this sentence
        word = text[max(space + 1, start) : match.start()].lstrip(OPENERS)
        full_stop = text[match.start() : match.end()].rstrip().startswith(".")
        if full_stop and (word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isupper())):
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


def documents_from_text(text: str, one_sentence_per_line: bool = False) -> list[list[str]]:
    """Documents separated by blank lines, each a list of sentences; empty documents are dropped.

    By default the lines of a document are joined and cut by `split_sentences`. With
    one_sentence_per_line=True each non-blank line is one sentence, the input format of
    google-research/bert's create_pretraining_data.py.
    """
    if not isinstance(text, str):
        raise MinibertError(f"text must be a str, got {type(text).__name__}")
    documents = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        if one_sentence_per_line:
            sentences = [" ".join(line.split()) for line in block.split("\n")]
            sentences = [sentence for sentence in sentences if sentence]
        else:
            sentences = split_sentences(block)
        if sentences:
            documents.append(sentences)
    return documents


def data_dir() -> Path:
    """The offline data cache: $MINIBERT_DATA, else ~/.cache/minibert/data."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "minibert" / "data")


def corpus_files(folder=None) -> list[Path]:
    """The running-text files of the cache (corpus/*.txt, not the *.titles.txt lists)."""
    folder = Path(folder) if folder is not None else data_dir() / "corpus"
    files = sorted(p for p in folder.glob("*.txt") if not p.name.endswith(".titles.txt"))
    if not files:
        raise FileNotFoundError(
            f"no corpus files in {folder}: run `python scripts/fetch_data.py` or give --corpus"
        )
    return files


def corpus_sentences(files, min_words: int = 4, max_texts: int | None = None, seed: int = 0):
    """The sentences of text files (documents_from_text's split) with at least min_words words;
    max_texts keeps a seeded random sample of that many, in file order."""
    sentences = []
    for file in files:
        for document in documents_from_text(Path(file).read_text(encoding="utf-8")):
            sentences += [s for s in document if len(s.split()) >= min_words]
    if max_texts is not None and len(sentences) > max_texts:
        keep = np.sort(np.random.default_rng(seed).choice(len(sentences), max_texts, False))
        sentences = [sentences[i] for i in keep]
    return sentences


# Part 2: labelled texts for fine-tuning.


@dataclass
class LabelledTexts:
    """What read_labelled returns: N texts, their label ids and the label of each id.

    label_ids: (N,) int64, indices into label_names (sorted, see read_labelled); with
    multi_label, (N, K) float32 rows of 0/1, 1 for each of the K labels the text has.
    rows: every column of each row as read (e.g. a movie id to give group_split).
    """

    texts: list
    label_ids: np.ndarray
    label_names: list
    rows: list

    @property
    def label2id(self) -> dict:
        return {name: index for index, name in enumerate(self.label_names)}


def read_labelled(
    path, text_column="text", label_column="label", multi_label=False, separator=";"
) -> LabelledTexts:
    """Read texts and labels from .csv, .tsv or .jsonl (each maybe .gz or .bz2 compressed).

    Labels are strings (JSON integers become their digits). Ids follow the sorted labels, integers
    in numeric order first, so the mapping does not depend on the order of the rows. With
    multi_label, a row has any number of labels, none included: a JSON list (["sports",
    "politics"]) or one string split at `separator` ("sports;politics"; "" for none). A missing
    file or column, an empty file, a malformed row or an empty text or label raises MinibertError
    (a ValueError) naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise MinibertError(
            f"{path} does not exist" if not path.exists() else f"{path} is not a file"
        )
    name = path.name.lower()
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix.lower(), open)
    base = name.removesuffix(".gz").removesuffix(".bz2")
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as file:
            if base.endswith((".jsonl", ".ndjson")):
                rows = _jsonl_rows(file, path)
            elif base.endswith((".csv", ".tsv")):
                rows = _csv_rows(file, path, "\t" if base.endswith(".tsv") else ",")
            else:
                raise MinibertError(f"{path}: expected a .csv, .tsv or .jsonl file")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise MinibertError(f"cannot read {path}: {e}") from e
    if not rows:
        raise MinibertError(f"{path} has no rows: expected a header and rows, or JSON lines")
    texts, labels = [], []
    for line, row in rows:
        for column in (text_column, label_column):
            if column not in row:
                raise MinibertError(
                    f"{path} line {line} has no column {column!r} (it has {sorted(row)})"
                )
        text, label = row[text_column], row[label_column]
        if multi_label:
            label = _label_set(label, separator, f"{path} line {line}: {label_column!r}")
        elif isinstance(label, int) and not isinstance(label, bool):
            label = str(label)
        values = [(label_column, one) for one in label] if multi_label else [(label_column, label)]
        for column, value in [(text_column, text), *values]:
            if not isinstance(value, str) or not value.strip():
                why = "empty" if isinstance(value, str) else f"of type {type(value).__name__}"
                why = "null" if value is None else why
                hint = " (a list of labels needs multi-label)" if isinstance(value, list) else ""
                raise MinibertError(f"{path} line {line}: {column!r} is {why}, expected text{hint}")
        texts.append(text)
        labels.append(label)
    label_names = sorted({one for label in labels for one in _as_list(label)}, key=_label_order)
    if not label_names:
        raise MinibertError(f"{path}: no row has a label in {label_column!r}")
    ids = {label: index for index, label in enumerate(label_names)}
    if multi_label:
        label_ids = np.zeros((len(labels), len(label_names)), np.float32)  # (N, K)
        for row, label in enumerate(labels):
            label_ids[row, [ids[one] for one in label]] = 1
    else:
        label_ids = np.array([ids[label] for label in labels], dtype=np.int64)  # (N,)
    return LabelledTexts(texts, label_ids, label_names, [row for _, row in rows])


def _as_list(label) -> list:
    return label if isinstance(label, list) else [label]


def _label_set(value, separator: str, where: str) -> list:
    """The labels of one multi-label row: a JSON list, or a string cut at separator."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(separator) if part.strip()]
    elif isinstance(value, list):
        parts = [
            str(part) if isinstance(part, int) and not isinstance(part, bool) else part
            for part in value
        ]
    else:
        kind = "null" if value is None else type(value).__name__
        raise MinibertError(
            f"{where} is {kind}; a multi-label row holds a list of labels or a "
            f"{separator!r}-separated string"
        )
    return sorted(set(parts), key=lambda part: (not isinstance(part, str), str(part)))


def _label_order(label: str):
    """Sort key: integer labels by value ("2" before "10"), then the others alphabetically."""
    if re.fullmatch(r"-?\d+", label.strip()):
        return (0, int(label), label)
    return (1, 0, label)


def _csv_rows(file, path, delimiter) -> list:
    """[(line number, {column: value})] of a CSV/TSV file with a header row."""
    reader = csv.DictReader(file, delimiter=delimiter)
    rows = []
    try:
        for row in reader:
            if None in row or None in row.values():  # more or fewer fields than the header
                present = sum(row[name] is not None for name in reader.fieldnames)
                fields = present + len(row.get(None) or [])
                raise MinibertError(
                    f"{path} line {reader.line_num} has {fields} fields but the header has "
                    f"{len(reader.fieldnames)} ({', '.join(reader.fieldnames)})"
                )
            rows.append((reader.line_num, row))
    except csv.Error as e:
        raise MinibertError(f"{path} line {reader.line_num} is not valid CSV: {e}") from e
    return rows


def _jsonl_rows(file, path) -> list:
    """[(line number, object)] of a JSON-lines file; blank lines are skipped."""
    rows = []
    for line_number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise MinibertError(f"{path} line {line_number} is not valid JSON: {e}") from e
        if not isinstance(row, dict):
            kind = type(row).__name__
            raise MinibertError(f"{path} line {line_number} must hold a JSON object, got {kind}")
        rows.append((line_number, row))
    return rows


def group_split(items, groups, fractions=(0.8, 0.1, 0.1), *, seed) -> list[list]:
    """Split items so that every group lands in exactly one split, deterministically for a seed.

    The distinct groups are sorted, shuffled with `seed` (an int or np.random.Generator) and
    dealt in that order: a group goes to the split in whose share of the items its middle falls,
    so splits get about `fractions` of the items. Pass range(N) as items to split indices.
    Shapes: items, groups: N each -> one list per fraction, items in their original order.
    """
    items, groups = list(items), list(groups)
    if len(items) != len(groups):
        raise MinibertError(f"{len(items)} items but {len(groups)} groups: give one per item")
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or len(fractions) == 0 or (fractions < 0).any():
        raise MinibertError(f"fractions must be non-negative numbers, got {fractions.tolist()}")
    if abs(fractions.sum() - 1) > 1e-6:
        raise MinibertError(f"fractions must sum to 1, got {fractions.tolist()}")
    rng = np.random.default_rng(seed)
    distinct = sorted(set(groups), key=repr)  # repr: any hashable groups sort the same every run
    sizes = Counter(groups)
    ends = np.cumsum(fractions) * len(items)  # (K,) where each split's share of the items ends
    split_of, dealt = {}, 0
    for index in rng.permutation(len(distinct)):
        group = distinct[index]
        middle = dealt + sizes[group] / 2
        split_of[group] = min(int(np.searchsorted(ends, middle, side="right")), len(ends) - 1)
        dealt += sizes[group]
    splits = [[] for _ in fractions]
    for item, group in zip(items, groups, strict=True):
        splits[split_of[group]].append(item)
    return splits
