"""A model folder's weights, whatever format holds them: which files, and the tensors under
their Hugging Face names.

read_weights takes the first format the folder has, in this order:

    model.safetensors                                   safetensors_format.py
    model.safetensors.index.json + the shards it names
    pytorch_model.bin                                   pytorch_pickle.py (no pickle code runs)
    pytorch_model.bin.index.json + the shards it names
    PREFIX.index + PREFIX.data-*  (bert_config.json)    Google's TF1 bundle: tf1_bundle.py,
                                                        names from tf1_names.py
    model.pt                                            fairseq RoBERTa: fairseq.py

list_tensors says, for every tensor a folder stores, its dtype, shape, the Hugging Face name it
maps to, and whether it is used or ignored (optimizer slots, step counters, fairseq buffers).
hf_config_of gives the config.json that a TF1 or fairseq folder implies.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError
from . import fairseq, tf1_names
from .fairseq import FAIRSEQ_NAME, fairseq_to_hf, read_fairseq
from .pytorch_pickle import pytorch_bin_dtypes, read_pytorch_bin
from .safetensors_format import read_safetensors, safetensors_entries
from .tf1_bundle import read_bundle_index, read_bundle_tensor, shard_file, tf1_prefix

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_NAME = "pytorch_model.bin"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
TF1_CONFIGS = {"bert_config.json": "bert", "albert_config.json": "albert"}


@dataclass(frozen=True)
class StoredTensor:
    """One tensor as a folder stores it, and what becomes of it."""

    name: str  # as stored
    dtype: str
    shape: tuple
    hf_name: str | None  # the Hugging Face name it maps to (None when ignored)
    status: str  # "mapped", "ignored", "unused" (no Hugging Face name), or "filled" (made by
    # the conversion, not stored)
    note: str = ""


def checkpoint_format(folder) -> str | None:
    """Which format read_weights reads in folder: "safetensors", "safetensors-sharded",
    "pytorch", "pytorch-sharded", "tf1", "fairseq"; None when there are no weights."""
    folder = Path(folder)
    for name, kind in (
        (SAFETENSORS_NAME, "safetensors"),
        (SAFETENSORS_INDEX, "safetensors-sharded"),
        (PYTORCH_NAME, "pytorch"),
        (PYTORCH_INDEX, "pytorch-sharded"),
    ):
        if (folder / name).is_file():
            return kind
    if (
        any(p.name.endswith(".index") for p in folder.glob("*.index"))
        or (folder / "checkpoint").is_file()
    ):
        return "tf1"
    if (folder / FAIRSEQ_NAME).is_file():
        return "fairseq"
    return None


def weight_files(folder) -> list[Path]:
    """The files read_weights reads, in its order of preference (an index, then its shards)."""
    folder = Path(folder)
    kind = checkpoint_format(folder)
    if kind in ("safetensors", "pytorch"):
        return [folder / (SAFETENSORS_NAME if kind == "safetensors" else PYTORCH_NAME)]
    if kind in ("safetensors-sharded", "pytorch-sharded"):
        index = folder / (SAFETENSORS_INDEX if kind == "safetensors-sharded" else PYTORCH_INDEX)
        return [index] + [folder / shard for shard in _shards(index)]
    if kind == "tf1":
        prefix = tf1_prefix(folder)
        num_shards, _ = read_bundle_index(prefix)
        shards = [shard_file(prefix, i, num_shards) for i in range(num_shards)]
        return [prefix.with_name(prefix.name + ".index"), *shards]
    if kind == "fairseq":
        return [folder / FAIRSEQ_NAME]
    return []


def weight_bytes(folder) -> int:
    """Size on disk of a model's weights (weight_files), what `info` and `compare` report."""
    return sum(f.stat().st_size for f in weight_files(folder))


def _shards(index: Path) -> list[str]:
    try:
        weight_map = json.loads(index.read_text()).get("weight_map", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"cannot read {index}: {exc}") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index} has no weight_map")
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if "/" in shard or "\\" in shard or not (index.parent / shard).is_file():
            raise CheckpointError(f"{index} names the shard {shard!r}, which is not there")
    return shards


def read_weights(folder) -> dict:
    """{Hugging Face name: numpy array} of the folder's weights, whatever their format."""
    folder = Path(folder)
    kind = checkpoint_format(folder)
    if kind == "safetensors":
        return read_safetensors(folder / SAFETENSORS_NAME)
    if kind in ("safetensors-sharded", "pytorch-sharded"):
        sharded = kind == "safetensors-sharded"
        index = folder / (SAFETENSORS_INDEX if sharded else PYTORCH_INDEX)
        return _read_sharded(index, read_safetensors if sharded else read_pytorch_bin)
    if kind == "pytorch":
        return read_pytorch_bin(folder / PYTORCH_NAME)
    if kind == "tf1":
        return _read_tf1(folder)
    if kind == "fairseq":
        state, _ = read_fairseq(folder / FAIRSEQ_NAME)
        return fairseq_to_hf(state)[0]
    raise CheckpointError(
        f"{folder} has no weights: expected {SAFETENSORS_NAME}, {SAFETENSORS_INDEX}, "
        f"{PYTORCH_NAME}, {PYTORCH_INDEX}, a TensorFlow checkpoint (PREFIX.index) or "
        f"{FAIRSEQ_NAME}"
    )


def _read_sharded(index: Path, read) -> dict:
    """Every shard an index names, each tensor checked to be in the shard the index says."""
    weight_map = json.loads(index.read_text())["weight_map"]
    tensors = {}
    for shard in _shards(index):
        found = read(index.parent / shard)
        expected = {name for name, file in weight_map.items() if file == shard}
        if not expected <= set(found):
            lost = ", ".join(sorted(expected - set(found))[:4])
            raise CheckpointError(f"{shard} lacks tensors {index.name} puts there: {lost}")
        tensors.update(found)
    return tensors


def _name_based(entries, prefix: Path) -> None:
    """TF2's tf.train.Checkpoint names objects, not scopes: refuse it by name."""
    if any(".ATTRIBUTES/" in e.name for e in entries):
        raise CheckpointError(
            f"{prefix.name} is an object-based TF2 checkpoint (tf.train.Checkpoint); only "
            f"name-based TF1 checkpoints (google-research/bert and albert) are read"
        )


def _read_tf1(folder: Path) -> dict:
    prefix = tf1_prefix(folder)
    num_shards, entries = read_bundle_index(prefix)
    _name_based(entries, prefix)
    family = tf1_names.tf1_family(e.name for e in entries)
    tensors = {}
    for entry in entries:
        if tf1_names.training_state(entry.name):
            continue  # optimizer slots are never read
        name, transpose = tf1_names.hf_name(entry.name, family)
        if name is None:  # kept under its own name: the loader reports it as not used
            name = entry.name
        array = read_bundle_tensor(prefix, entry, num_shards)
        tensors[name] = np.ascontiguousarray(array.T) if transpose else array
    return tensors


def list_tensors(path) -> list[StoredTensor]:
    """Every tensor stored at path (a folder, or one weights file), with the name it maps to."""
    path = Path(path)
    kind = _file_format(path) if path.is_file() else checkpoint_format(path)
    if kind == "tf1":
        return _list_tf1(path)
    if kind == "fairseq":
        file = path if path.is_file() else path / FAIRSEQ_NAME
        return _list_fairseq(file)
    if kind is None:
        raise CheckpointError(f"no weights at {path}")
    if kind == "sharded":  # an index file: its shards
        files = [path.parent / shard for shard in _shards(path)]
    else:
        files = [path] if path.is_file() else weight_files(path)
    listed = []
    for file in files:
        if file.name.endswith(".json"):
            continue
        if file.suffix == ".safetensors":
            rows = safetensors_entries(file)
        else:
            rows = [(n, a.dtype.name, a.shape) for n, a in read_pytorch_bin(file).items()]
        listed += [StoredTensor(n, d, tuple(s), n, "mapped") for n, d, s in rows]
    return listed


def _file_format(file: Path) -> str | None:
    if file.name in (SAFETENSORS_INDEX, PYTORCH_INDEX):
        return "sharded"
    if file.suffix == ".safetensors":
        return "safetensors"
    if file.suffix == ".bin":
        return "pytorch"
    if file.suffix == ".index" or ".data-" in file.name:
        return "tf1"
    if file.suffix == ".pt":
        return "fairseq"
    return None


def _list_tf1(path: Path) -> list[StoredTensor]:
    prefix = tf1_prefix(path if path.is_dir() or path.suffix == ".index" else path.parent)
    _, entries = read_bundle_index(prefix)
    _name_based(entries, prefix)
    family = tf1_names.tf1_family(e.name for e in entries)
    listed = []
    for e in entries:
        reason = tf1_names.training_state(e.name)
        name, transpose = (None, False) if reason else tf1_names.hf_name(e.name, family)
        status = "ignored" if reason else "unused" if name is None else "mapped"
        note = reason or ("no Hugging Face name" if name is None else "")
        note = note or ("kernel (in, out) transposed" if transpose else "")
        listed.append(StoredTensor(e.name, e.dtype_name, e.shape, name, status, note))
    return listed


def _list_fairseq(file: Path) -> list[StoredTensor]:
    state, _ = read_fairseq(file)
    listed = []
    for name, array in state.items():
        if name.endswith(("in_proj_weight", "in_proj_bias")):  # one row per third: q, k, v
            rows = array.shape[0] // 3
            split = fairseq.split_in_proj({name: array})
            for i, (part, piece) in enumerate(split.items()):
                hf, _ = fairseq.fairseq_name(part)
                listed.append(
                    StoredTensor(
                        f"{name}[{i * rows}:{(i + 1) * rows}]", piece.dtype.name, piece.shape,
                        hf, "mapped", "a third of in_proj (q, k, v)",
                    )
                )  # fmt: skip
            continue
        hf, reason = fairseq.fairseq_name(name)
        status = "mapped" if hf else "unused" if reason == fairseq.NO_NAME else "ignored"
        listed.append(StoredTensor(name, array.dtype.name, array.shape, hf, status, reason))
    words = [a for n, a in state.items() if n.endswith("sentence_encoder.embed_tokens.weight")]
    width = words[0].shape[1] if words else 0
    listed.append(
        StoredTensor(
            "-", "float32", (1, width), fairseq.TOKEN_TYPES, "filled",
            "zeros, as transformers' converter writes: fairseq has no token types",
        )
    )  # fmt: skip
    return listed


def hf_config_of(folder) -> dict | None:
    """The config.json dict a TF1 folder (bert_config.json / albert_config.json) or a fairseq
    folder (model.pt's args) implies; None for other folders."""
    folder = Path(folder)
    kind = checkpoint_format(folder)
    if kind == "tf1":
        prefix = tf1_prefix(folder)
        _, entries = read_bundle_index(prefix)
        _name_based(entries, prefix)
        google = [name for name in TF1_CONFIGS if (folder / name).is_file()]
        if not google:
            raise CheckpointError(
                f"{folder} holds a TensorFlow checkpoint but no bert_config.json or "
                f"albert_config.json beside it"
            )
        file = folder / google[0]
        try:
            settings = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file} is not valid JSON: {exc}") from None
        if not isinstance(settings, dict):
            raise ConfigError(f"{file} must hold a JSON object")
        family = tf1_names.tf1_family(e.name for e in entries)
        return tf1_names.hf_config(settings, family, {e.name: e.shape for e in entries})
    if kind == "fairseq":
        state, settings = read_fairseq(folder / FAIRSEQ_NAME)
        return fairseq.hf_config(settings, fairseq_to_hf(state)[0])
    return None


def stored_dtypes(files) -> dict:
    """{dtype name: number of tensors} as stored on disk (before any widening on load)."""
    counts = {}
    for file in files:
        if file.suffix == ".safetensors":
            found = {}
            for _, dtype, _ in safetensors_entries(file):
                found[dtype] = found.get(dtype, 0) + 1
        elif file.suffix in (".bin", ".pt"):
            found = pytorch_bin_dtypes(file)
        elif file.suffix == ".index":
            found = {}
            for entry in read_bundle_index(file.with_suffix(""))[1]:
                found[entry.dtype_name] = found.get(entry.dtype_name, 0) + 1
        else:
            continue
        for name, n in found.items():
            counts[name] = counts.get(name, 0) + n
    return counts
