"""TensorFlow checkpoints in the tensor-bundle format (Google's original BERT and ALBERT).

A checkpoint PREFIX is two kinds of file:

    PREFIX.index                    an SSTable (sstable.py): the key "" holds a
                                    BundleHeaderProto, every other key is a variable's name and
                                    holds a BundleEntryProto saying where its bytes are
    PREFIX.data-00000-of-00002 ...  the shards: raw little-endian tensors, back to back

    BundleHeaderProto  1 num_shards, 2 endianness (0 little, 1 big), 3 version
    BundleEntryProto   1 dtype, 2 shape (TensorShapeProto: repeated 2 dim {1 size}), 3 shard_id,
                       4 offset, 5 size, 6 crc32c (masked, fixed32), 7 slices (partitioned)

Every size is checked against the dtype and shape and against the shard's length; the CRC-32C
of a tensor is checked when the tensor is small enough for plain Python to do it quickly.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .sstable import as_signed, masked_crc32c, parse_message, read_table

# TensorFlow's DataType enum (types.proto) -> numpy; bfloat16 (14) is widened to float32
TF_DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    14: "bfloat16",
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}
TF_DTYPE_NAMES = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}
CRC_CHECK_BYTES = 1 << 20  # check the CRC of tensors up to 1 MiB (about 0.1 s each)


@dataclass(frozen=True)
class BundleEntry:
    """Where one variable's bytes are: shard, offset and size, with dtype and shape."""

    name: str
    dtype: object  # a numpy type, "bfloat16", or the name of a type we do not read
    shape: tuple
    shard: int
    offset: int
    size: int
    crc32c: int | None

    @property
    def dtype_name(self) -> str:
        return self.dtype if isinstance(self.dtype, str) else np.dtype(self.dtype).name


def tf1_prefix(path) -> Path:
    """The checkpoint prefix of `path`: a PREFIX.index file, the prefix itself, or a folder
    holding one .index (or a `checkpoint` file naming the one to use)."""
    path = Path(path)
    if path.name.endswith(".index") and path.is_file():
        return path.with_name(path.name[: -len(".index")])
    if path.with_name(path.name + ".index").is_file():
        return path
    if path.is_dir():
        latest = _latest_in_state_file(path)
        if latest is not None:
            return latest
        indexes = sorted(p for p in path.glob("*.index") if p.is_file())
        if len(indexes) == 1:
            return indexes[0].with_name(indexes[0].name[: -len(".index")])
        if len(indexes) > 1:
            names = ", ".join(p.name for p in indexes)
            raise CheckpointError(
                f"{path} holds several TensorFlow checkpoints ({names}): pass one PREFIX.index"
            )
    raise CheckpointError(f"no TensorFlow checkpoint (PREFIX.index) at {path}")


def _latest_in_state_file(folder: Path) -> Path | None:
    """TensorFlow's `checkpoint` file names the latest: model_checkpoint_path: "model.ckpt-9"."""
    state = folder / "checkpoint"
    if not state.is_file():
        return None
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(), re.MULTILINE)
    if match is None:
        return None
    prefix = Path(match.group(1))
    prefix = prefix if prefix.is_absolute() else folder / prefix
    if not prefix.with_name(prefix.name + ".index").is_file():
        prefix = folder / prefix.name  # the folder was moved since it was written
    return prefix if prefix.with_name(prefix.name + ".index").is_file() else None


def read_bundle_index(prefix: Path) -> tuple[int, list[BundleEntry]]:
    """(number of shards, every variable's entry) from PREFIX.index."""
    index = prefix.with_name(prefix.name + ".index")
    try:
        data = index.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {index}: {exc}") from None
    num_shards, entries = 1, []
    for key, value in read_table(data, index.name):
        fields = parse_message(value)
        if key == b"":  # the header
            num_shards = fields.get(1, [1])[0]
            if fields.get(2, [0])[0] != 0:
                raise CheckpointError(f"{index.name}: big-endian tensors are not read")
            continue
        entries.append(_entry(key.decode("utf-8"), fields, index.name))
    for entry in entries:
        if not 0 <= entry.shard < num_shards:
            raise CheckpointError(
                f"{index.name}: {entry.name} is in shard {entry.shard} of {num_shards}"
            )
    return num_shards, entries


def _entry(name: str, fields: dict, index_name: str) -> BundleEntry:
    code = fields.get(1, [0])[0]
    # a dtype we do not read is kept by name: listing it is fine, reading it is refused
    dtype = TF_DTYPES.get(code) or TF_DTYPE_NAMES.get(code, f"DataType {code}")
    if 7 in fields:
        raise CheckpointError(f"{index_name}: {name} is a partitioned variable (slices)")
    shape = []
    if 2 in fields:
        for dim in parse_message(fields[2][0]).get(2, []):
            shape.append(as_signed(parse_message(dim).get(1, [0])[0]))
    if any(n < 0 for n in shape):
        raise CheckpointError(f"{index_name}: {name} has an unknown dimension {tuple(shape)}")
    return BundleEntry(
        name=name,
        dtype=dtype,
        shape=tuple(shape),
        shard=fields.get(3, [0])[0],
        offset=fields.get(4, [0])[0],
        size=fields.get(5, [0])[0],
        crc32c=fields.get(6, [None])[0],
    )


def shard_file(prefix: Path, shard: int, num_shards: int) -> Path:
    return prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}")


def read_bundle_tensor(prefix: Path, entry: BundleEntry, num_shards: int) -> np.ndarray:
    """One variable as a numpy array, its size (and, when small, its CRC-32C) checked."""
    if isinstance(entry.dtype, str) and entry.dtype != "bfloat16":
        raise CheckpointError(f"{entry.name} holds {entry.dtype} values, which are not read")
    itemsize = 2 if entry.dtype == "bfloat16" else np.dtype(entry.dtype).itemsize
    expected = int(np.prod(entry.shape, dtype=np.int64)) * itemsize
    if entry.size != expected:
        raise CheckpointError(
            f"{entry.name}: the index says {entry.size} bytes, but {entry.dtype_name} "
            f"{entry.shape} needs {expected}"
        )
    file = shard_file(prefix, entry.shard, num_shards)
    try:
        with open(file, "rb") as fh:
            fh.seek(entry.offset)
            raw = fh.read(entry.size)
    except OSError as exc:
        raise CheckpointError(f"cannot read {file.name} for {entry.name}: {exc}") from None
    if len(raw) != entry.size:
        raise CheckpointError(f"{file.name} ends before the bytes of {entry.name}")
    if entry.crc32c is not None and entry.size <= CRC_CHECK_BYTES:
        if masked_crc32c(raw) != entry.crc32c:
            raise CheckpointError(f"{file.name}: the checksum of {entry.name} does not match")
    if entry.dtype == "bfloat16":
        flat = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        flat = np.frombuffer(raw, np.dtype(entry.dtype).newbyteorder("<"))
    return flat.reshape(entry.shape).copy()  # writable and aligned


def read_bundle(prefix: Path, names=None) -> dict:
    """{variable name: array} for the variables in `names` (default: all of them)."""
    num_shards, entries = read_bundle_index(prefix)
    wanted = None if names is None else set(names)
    return {
        e.name: read_bundle_tensor(prefix, e, num_shards)
        for e in entries
        if wanted is None or e.name in wanted
    }
