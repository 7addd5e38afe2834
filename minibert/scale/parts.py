"""Part files of a resumable run: one per finished shard, a manifest, and the output from them.

For an output OUT (OUT.parquet or OUT.npy) the parts live in OUT.parts/:

    manifest.json         the settings of the run (corpus fingerprint, model, pooling, shard
                          size, ...) and the rows of each finished shard
    shard-00000.parquet   ids and vectors of shard 0 (shard-00000.npy, the vectors alone, for
                          an .npy output); written under a temporary name, then renamed

A shard counts as finished once the manifest lists it and its file is there, so a run that
stops (a crash, Ctrl-C, a lost machine) loses at most the shards in flight, and a re-run with
the same settings encodes only the rest. A re-run with other settings would mix vectors of two
models, poolings or corpora in one file, so it is refused unless told to start over.
"""

import json
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .optional import require

MANIFEST = "manifest.json"
OUTPUT_KINDS = {".parquet": "parquet", ".npy": "npy"}


def output_kind(output) -> str:
    """The kind of output its suffix names: "parquet" or "npy" (pyarrow must import for the
    first)."""
    suffix = Path(output).suffix.lower()
    if suffix not in OUTPUT_KINDS:
        raise InputError(f"the output must be a .parquet or .npy file, got {output}")
    if suffix == ".parquet":
        require("pyarrow", "parquet", "writing parquet")
    return OUTPUT_KINDS[suffix]


def vectors_table(ids, vectors: np.ndarray, metadata: dict | None = None):
    """A pyarrow table with columns `id` and `embedding` (a fixed-size list of float32, one
    list of C per row). Shapes: N ids, vectors (N, C)."""
    pa = require("pyarrow", "parquet", "writing parquet")
    rows, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1))  # (N * C,)
    embedding = pa.FixedSizeListArray.from_arrays(flat, dim)  # (N,) lists of C
    table = pa.table({"id": pa.array(list(ids)), "embedding": embedding})
    if metadata:
        table = table.replace_schema_metadata({"minibert": json.dumps(metadata)})
    return table


def write_vectors(output, ids, vectors: np.ndarray, metadata: dict | None = None) -> None:
    """Write vectors (N, C) to `output`: .npy (the array alone) or .parquet (ids and vectors).
    The file appears whole or not at all: it is written under a temporary name and renamed."""
    output = Path(output)
    partial = output.with_name(output.name + ".partial")
    if output_kind(output) == "npy":
        with open(partial, "wb") as fh:  # an open file: np.save(str) would append .npy
            np.save(fh, np.asarray(vectors, np.float32))
    else:
        pq = require("pyarrow.parquet", "parquet", "writing parquet")
        pq.write_table(vectors_table(ids, vectors, metadata), partial)
    os.replace(partial, output)


class PartFiles:
    """The part files of one output, and the manifest that says which shards are finished.

    Args:
        output: the final output file (.parquet or .npy); the parts go in OUTPUT.parts/.
        settings: what the vectors depend on (JSON-serialisable); a folder made with other
            settings is refused unless `restart`.
        restart: delete the parts of an earlier run first.
    """

    def __init__(self, output, settings: dict, restart: bool = False):
        self.output = Path(output)
        self.kind = output_kind(self.output)
        self.folder = self.output.with_name(self.output.name + ".parts")
        self.settings = json.loads(json.dumps(settings))  # as it reads back from the manifest
        if restart:
            self.remove()
        self.shards = self._open()  # {index: rows} of the finished shards

    def _open(self) -> dict:
        manifest = self.folder / MANIFEST
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            self._write_manifest({})
            return {}
        if not manifest.is_file():
            raise InputError(
                f"{self.folder} exists but holds no {MANIFEST}, so it is not a folder of part "
                "files; move it away or choose another output"
            )
        try:
            saved = json.loads(manifest.read_text(encoding="utf-8"))
            earlier, shards = saved["settings"], saved["shards"]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{manifest} is not a manifest of part files") from None
        if earlier != self.settings:
            changed = ", ".join(_differences(earlier, self.settings))
            raise InputError(
                f"{self.folder} holds shards of a run with other settings ({changed}); rerun "
                "with the same settings to resume it, or pass --restart (restart=True) to "
                "delete them and start over"
            )
        # a shard listed but whose file has gone is encoded again
        return {int(i): rows for i, rows in shards.items() if self.path(int(i)).is_file()}

    def path(self, index: int) -> Path:
        return self.folder / f"shard-{index:05d}.{self.kind}"

    def finished(self, index: int) -> bool:
        return index in self.shards

    def record(self, index: int, rows: int) -> None:
        """Note that shard `index` is written, with `rows` rows."""
        self.shards[index] = rows
        self._write_manifest(self.shards)

    def _write_manifest(self, shards: dict) -> None:
        manifest = {
            "settings": self.settings,
            "shards": {str(i): shards[i] for i in sorted(shards)},
        }
        partial = self.folder / (MANIFEST + ".partial")
        partial.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(partial, self.folder / MANIFEST)  # a reader never sees half a manifest

    def assemble(self, count: int) -> tuple[int, int]:
        """Write the output from shards 0 .. count-1, in order, one part in memory at a time;
        returns (rows, dim)."""
        missing = [i for i in range(count) if i not in self.shards]
        assert not missing, f"shards {missing} are not finished"
        partial = self.output.with_name(self.output.name + ".partial")
        if self.kind == "npy":
            rows, dim = self._assemble_npy(count, partial)
        else:
            rows, dim = self._assemble_parquet(count, partial)
        os.replace(partial, self.output)
        return rows, dim

    def _assemble_npy(self, count: int, partial: Path) -> tuple[int, int]:
        rows = sum(self.shards[i] for i in range(count))
        dim = np.load(self.path(0), mmap_mode="r").shape[1]
        # written through a memory map: the whole array is never in memory
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(rows, dim))
        start = 0
        for i in range(count):
            part = np.load(self.path(i), mmap_mode="r")  # (rows of shard i, C)
            out[start : start + len(part)] = part
            start += len(part)
        out.flush()
        del out  # closes the map before the rename
        return rows, dim

    def _assemble_parquet(self, count: int, partial: Path) -> tuple[int, int]:
        pq = require("pyarrow.parquet", "parquet", "writing parquet")
        writer, rows, dim = None, 0, 0
        try:
            for i in range(count):
                table = pq.read_table(self.path(i))
                if writer is None:
                    dim = table.schema.field("embedding").type.list_size
                    writer = pq.ParquetWriter(partial, table.schema)
                writer.write_table(table)
                rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
        return rows, dim

    def remove(self) -> None:
        """Delete the part files and the manifest, and the folder once empty. Only files this
        class writes are deleted: anything else in the folder stays, and so does the folder."""
        if not self.folder.is_dir():
            return
        for file in self.folder.iterdir():
            ours = file.name.startswith("shard-") or file.name.startswith(MANIFEST)
            if ours and file.is_file():
                file.unlink()
        if not any(self.folder.iterdir()):
            self.folder.rmdir()


def _differences(earlier: dict, now: dict, prefix: str = "") -> list:
    """'name: old -> new' for each setting that differs, nested dicts by dotted names."""
    found = []
    for key in sorted(set(earlier) | set(now)):
        a, b = earlier.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return found
