"""Corpus files read as a stream of (id, text) records, and cut into shards of texts.

Four formats, picked by the file's suffix (or named):

    txt      one text per line; blank lines are skipped
    jsonl    one JSON object per line, the text under `text_field` (.jsonl, .ndjson)
    csv      a header row, then one record per row, the text in the `text_field` column
    parquet  the text in the `text_field` column (needs pyarrow: minibert[parquet])

A record's id is its `id_field` (jsonl, csv, parquet; ints or strings, one kind per file), or
else its number in the file, counting from 1: the line number for txt and jsonl (blank lines
count, so an id points back at its line), the row number below the header for csv and parquet.

Nothing is read whole: records come one at a time and a shard holds `shard_size` of them, so a
corpus larger than memory streams through. The file's size and modification time identify it
(`Corpus.fingerprint`), so that a resumed run can tell it has not changed.
"""

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .optional import require

FORMATS = ("txt", "jsonl", "csv", "parquet")
SUFFIXES = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
SUFFIXES |= {".parquet": "parquet", ".pq": "parquet"}
SHARD_SIZE = 10_000  # texts per shard: a part file per 10-30 s of 2 cores' work (bundled model)
PARQUET_ROWS_PER_READ = 4096  # rows pyarrow decodes at a time: memory stays small per read


@dataclass(frozen=True)
class Shard:
    """Consecutive records of a corpus: shard `index` holds records index * shard_size onwards."""

    index: int
    ids: list
    texts: list


@dataclass(frozen=True)
class Corpus:
    """A corpus file and how to read it.

    Args:
        path: the file.
        format: one of FORMATS; None picks it from the suffix.
        text_field: the JSON key or column holding each text (not used for txt).
        id_field: the key or column holding each record's id; None numbers the records.
    """

    path: Path
    format: str | None = None
    text_field: str = "text"
    id_field: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        if self.format is None:
            suffix = self.path.suffix.lower()
            if suffix not in SUFFIXES:
                known = ", ".join(sorted(SUFFIXES))
                raise InputError(
                    f"cannot tell the format of {self.path} from its suffix {suffix!r}: use one "
                    f"of {known}, or name the format ({', '.join(FORMATS)})"
                )
            object.__setattr__(self, "format", SUFFIXES[suffix])
        if self.format not in FORMATS:
            raise InputError(f"corpus format must be one of {FORMATS}, got {self.format!r}")
        if self.format == "txt" and self.id_field is not None:
            raise InputError("a txt corpus has no fields: its ids are line numbers (no id field)")
        if not self.path.is_file():
            raise InputError(f"no such corpus file: {self.path}")

    def fingerprint(self) -> dict:
        """What identifies this corpus and how it is read: a changed file or reading changes it."""
        stat = self.path.stat()
        return {
            "path": str(self.path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "format": self.format,
            "text_field": None if self.format == "txt" else self.text_field,
            "id_field": self.id_field,
        }

    def records(self) -> Iterator[tuple]:
        """(id, text) for each record, in file order."""
        read = {"txt": _txt, "jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[self.format]
        try:
            yield from self._checked(read(self))
        except UnicodeDecodeError:
            raise InputError(f"{self.path} is not UTF-8 text") from None

    def _checked(self, records):
        """The records, each text a string and every id of one kind (ints or strings), so that
        the output's id column has one type."""
        id_kind = None
        for where, record_id, text in records:
            if not isinstance(text, str):
                raise InputError(
                    f"{self.path} {where}: {self.text_field!r} should be a string, got "
                    f"{type(text).__name__}"
                )
            kind = str if isinstance(record_id, str) else int
            if isinstance(record_id, bool) or not isinstance(record_id, (int, str)):
                raise InputError(
                    f"{self.path} {where}: an id ({self.id_field!r}) should be an integer or a "
                    f"string, got {record_id!r}"
                )
            if id_kind is None:
                id_kind = kind
            elif kind is not id_kind:
                raise InputError(
                    f"{self.path} {where}: id {record_id!r} is a {kind.__name__}, but earlier "
                    f"ids are {id_kind.__name__}s; use one kind of id throughout"
                )
            yield record_id, text

    def shards(self, shard_size: int) -> Iterator[Shard]:
        """The records in shards of `shard_size` (the last may be shorter); at least one, or an
        InputError for a corpus with no texts."""
        if not isinstance(shard_size, int) or shard_size < 1:
            raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
        records = self.records()
        for index in itertools.count():
            chunk = list(itertools.islice(records, shard_size))
            if not chunk:
                if index == 0:
                    raise InputError(f"no texts in {self.path}")
                return
            ids, texts = (list(column) for column in zip(*chunk, strict=True))
            yield Shard(index, ids, texts)


def _txt(corpus: Corpus):
    with _open_text(corpus.path) as lines:
        for number, line in enumerate(lines, start=1):
            text = line.rstrip("\r\n")
            if text.strip():
                yield f"line {number}", number, text


def _jsonl(corpus: Corpus):
    with _open_text(corpus.path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{corpus.path} {where} is not JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise InputError(f"{corpus.path} {where}: expected a JSON object")
            yield (
                where,
                _field(corpus, record, corpus.id_field, where, number),
                _field(corpus, record, corpus.text_field, where),
            )


def _csv(corpus: Corpus):
    with _open_text(corpus.path, newline="") as fh:  # newline="": csv handles quoted newlines
        rows = csv.DictReader(fh)
        columns = rows.fieldnames or []
        for name in filter(None, (corpus.text_field, corpus.id_field)):
            if name not in columns:
                raise InputError(f"{corpus.path} has no column {name!r}; its columns: {columns}")
        for number, row in enumerate(rows, start=1):
            where = f"row {number}"
            yield where, _field(corpus, row, corpus.id_field, where, number), row[corpus.text_field]


def _parquet(corpus: Corpus):
    pq = require("pyarrow.parquet", "parquet", "reading a parquet corpus")
    try:
        reader = pq.ParquetFile(corpus.path)
    except Exception as exc:  # pyarrow's ArrowInvalid and OSError for a file that is not parquet
        raise InputError(f"cannot read {corpus.path} as parquet: {exc}") from None
    columns = reader.schema_arrow.names
    wanted = [name for name in (corpus.text_field, corpus.id_field) if name is not None]
    for name in wanted:
        if name not in columns:
            raise InputError(f"{corpus.path} has no column {name!r}; its columns: {columns}")
    number = 0
    for batch in reader.iter_batches(batch_size=PARQUET_ROWS_PER_READ, columns=wanted):
        texts = batch.column(corpus.text_field).to_pylist()
        ids = batch.column(corpus.id_field).to_pylist() if corpus.id_field else None
        for i, text in enumerate(texts):
            number += 1
            yield f"row {number}", ids[i] if ids is not None else number, text


def _field(corpus: Corpus, record: dict, name: str | None, where: str, default=None):
    """record[name]; `default` when name is None (the id of an unnamed-id corpus)."""
    if name is None:
        return default
    if name not in record:
        raise InputError(f"{corpus.path} {where} has no field {name!r}")
    return record[name]


def _open_text(path: Path, newline: str | None = None):
    # strict decoding: a file that is not UTF-8 stops with an error (records()), never garbles
    return open(path, encoding="utf-8", newline=newline)
