"""Training data: text into sentences and documents, labelled files, splits, padded batches.

1. Corpus helpers: `split_sentences` and `documents_from_text` turn running text into the
   documents of sentences that pretraining pairs are built from (see pretraining_data.py).
2. Batching: `batches` groups examples of similar length (so little padding is wasted), pads
   them and yields dicts of arrays ready for `model(**batch)`; `count_tokens` counts real tokens.
3. Fine-tuning data: `read_labelled` reads texts and labels from CSV or JSONL,
   `classification_examples` tokenizes them, `group_split` splits by group (e.g. by movie).

Every random choice comes from the np.random.Generator passed in: same seed, same output.
Shapes: B examples in a batch, T tokens per row after padding, N examples in a data set.
"""

import bz2
import csv
import gzip
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minibert.config import IGNORE_INDEX
from minibert.errors import MinibertError

# Padding for per-token fields other than input_ids, which is padded with the tokenizer's pad id.
PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "labels": IGNORE_INDEX}
BUCKET_BATCHES = 50  # batches per sorted chunk, as in transformers' group_by_length


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


# Part 2: padded batches of similar length.


def collate(examples: list, pad_id: int) -> dict:
    """Pad a list of examples into one batch.

    Each example is a dict with a 1-D "input_ids" and any other fields: 1-D arrays as long as
    input_ids (padded with PAD_VALUES, else 0) or scalars (a label per sequence, stacked).
    Shapes: -> input_ids, attention_mask and per-token fields (B, T) int64; scalars (B,).
    """
    if not examples:
        raise MinibertError("cannot collate an empty list of examples")
    lengths = [len(example["input_ids"]) for example in examples]
    B, T = len(examples), max(lengths)
    batch = {"input_ids": np.full((B, T), pad_id, dtype=np.int64)}
    batch["attention_mask"] = (np.arange(T) < np.array(lengths)[:, None]).astype(np.int64)
    keys = list(examples[0])
    for index, example in enumerate(examples):
        if list(example) != keys:
            raise MinibertError(f"example {index} has fields {list(example)}, the first {keys}")
    for key in keys:
        if key == "attention_mask":
            continue  # rebuilt above from the lengths
        values = [np.asarray(example[key]) for example in examples]
        if all(value.ndim == 0 for value in values):
            stacked = np.array(values)
            batch[key] = stacked.astype(np.int64) if stacked.dtype.kind in "iub" else stacked
            continue
        if key != "input_ids":
            batch[key] = np.full((B, T), PAD_VALUES.get(key, 0), dtype=np.int64)
        for row, value in enumerate(values):
            if value.shape != (lengths[row],):
                raise MinibertError(
                    f"example {row}: {key} has shape {value.shape}, expected "
                    f"({lengths[row]},) like its input_ids, or a scalar"
                )
            batch[key][row, : lengths[row]] = value
    return batch


def batches(examples, batch_size, rng=None, *, pad_id, shuffle=True, bucket=True, drop_last=False):
    """Padded batches over every example once, with similar lengths batched together.

    Bucketing: shuffle, cut into chunks of BUCKET_BATCHES batches, sort each chunk by length, cut
    it into batches, then shuffle the order of the batches. The last batch may be smaller (dropped
    with drop_last). rng is needed only with shuffle=True. Returns an iterator of collate() dicts.
    Shapes: each batch: input_ids, attention_mask, token_type_ids (B, T) int64; labels as collate.
    """
    examples = list(examples)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise MinibertError(f"batch_size must be a positive int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise MinibertError(f"batch_size must be a positive int, got {batch_size}")
    if shuffle and not isinstance(rng, np.random.Generator):
        raise MinibertError("shuffle=True needs rng, an np.random.Generator")
    n = len(examples)
    order = rng.permutation(n) if shuffle else np.arange(n)  # (N,)
    if bucket:
        lengths = np.array([len(example["input_ids"]) for example in examples], dtype=np.int64)
        chunks = np.split(order, range(batch_size * BUCKET_BATCHES, n, batch_size * BUCKET_BATCHES))
        # A stable sort keeps the shuffled order among examples of equal length.
        order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in chunks])
    groups = [order[start : start + batch_size] for start in range(0, n, batch_size)]
    if drop_last and groups and len(groups[-1]) < batch_size:
        groups.pop()
    if shuffle and bucket:  # else batch lengths would grow through each chunk
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return (collate([examples[i] for i in group], pad_id) for group in groups)


def count_tokens(batch: dict) -> int:
    """Real (not padding) tokens in a batch, for tokens-per-second reports."""
    return int(np.asarray(batch["attention_mask"]).sum())


# Part 3: labelled texts for fine-tuning.


@dataclass
class LabelledTexts:
    """What read_labelled returns: N texts, their label ids and the label of each id.

    label_ids: (N,) int64, indices into label_names (sorted, see read_labelled). rows: every
    column of each row as read (e.g. a movie id to give group_split).
    """

    texts: list
    label_ids: np.ndarray
    label_names: list
    rows: list

    @property
    def label2id(self) -> dict:
        return {name: index for index, name in enumerate(self.label_names)}


def read_labelled(path, text_column="text", label_column="label") -> LabelledTexts:
    """Read texts and labels from .csv, .tsv or .jsonl (each maybe .gz or .bz2 compressed).

    Labels are strings (JSON integers become their digits). Ids follow the sorted labels, integers
    in numeric order first, so the mapping does not depend on the order of the rows. A missing
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
        if isinstance(label, int) and not isinstance(label, bool):
            label = str(label)
        for column, value in ((text_column, text), (label_column, label)):
            if not isinstance(value, str) or not value.strip():
                why = "empty" if isinstance(value, str) else f"of type {type(value).__name__}"
                why = "null" if value is None else why
                raise MinibertError(f"{path} line {line}: {column!r} is {why}, expected text")
        texts.append(text)
        labels.append(label)
    label_names = sorted(set(labels), key=_label_order)
    ids = {label: index for index, label in enumerate(label_names)}
    label_ids = np.array([ids[label] for label in labels], dtype=np.int64)
    return LabelledTexts(texts, label_ids, label_names, [row for _, row in rows])


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


def classification_examples(texts, labels, tokenizer, max_length=128, text_pairs=None) -> list:
    """Tokenize texts (or text pairs) into examples for `batches`, cut to max_length tokens.

    labels: one int per text (e.g. LabelledTexts.label_ids). The tokenizer needs a pad token.
    Shapes: each example: input_ids, token_type_ids (T_i,) int64, labels () int64.
    """
    if len(labels) != len(texts):
        raise MinibertError(f"{len(texts)} texts but {len(labels)} labels: give one per text")
    examples = []
    for start in range(0, len(texts), 1024):  # chunks keep the padded arrays small
        pairs = None if text_pairs is None else list(text_pairs[start : start + 1024])
        encoded = tokenizer(list(texts[start : start + 1024]), pairs, max_length=max_length)
        for row, length in enumerate(encoded["attention_mask"].sum(1)):
            examples.append(
                {
                    "input_ids": encoded["input_ids"][row, :length],
                    "token_type_ids": encoded["token_type_ids"][row, :length],
                    "labels": np.int64(labels[start + row]),
                }
            )
    return examples


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
