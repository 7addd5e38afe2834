"""Reading a dump and lining it up with a trace: which of its arrays is which traced
intermediate, turned into our layout.

A dump is an .npz of named arrays from another implementation's forward: its inputs
(input_ids, attention_mask, token_type_ids) and its intermediates, named either as
minibert.trace names them (docs/trace.md) or otherwise, with a mapping from our names to
theirs. A mapping is a JSON object (or the same dict in Python):

    {"names": {"embeddings.layernorm": "emb.ln",
               "encoder.step.{i}.attention.q": {"name": "layers.{i}.wq", "layout": "heads_merged"}}}

`{i}` is the encoder step. A layout says how their array is arranged when ours is not:

    same           as ours (a leading axis of 1 is broadcast, as transformers' positions)
    heads_merged   (B, T, H*D) for our (B, H, T, D): the projections before the head split
    heads_split    (B, H, T, D) for our (B, T, C): a context before the heads are merged
    tokens_heads   (B, T, H, D) for our (B, H, T, D) or (B, T, C)

"transformers" names the ready mapping of transformers' BERT and RoBERTa module names as
torch forward hooks capture them (transformers.json beside this file).
"""

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
LAYOUTS = ("same", "heads_merged", "heads_split", "tokens_heads")
READY_MAPPINGS = {"transformers": Path(__file__).with_name("transformers.json")}
# what minibert export-fixture stores beside the trace: the loss's weights and gradients
NOT_ACTIVATIONS = re.compile(r"^(grad/|loss\.weights$)")


def read_dump(path) -> dict:
    """{name: array} of every .npy member of an .npz (other members, such as export-fixture's
    manifest.json, are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"dump {path} does not exist or is not a file")
    if not zipfile.is_zipfile(path):
        raise InputError(f"dump {path} is not an .npz file (a zip of .npy arrays)")
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                with archive.open(member) as f:
                    arrays[member[: -len(".npy")]] = np.lib.format.read_array(f, allow_pickle=False)
    if not arrays:
        raise InputError(f"dump {path} holds no .npy arrays")
    return arrays


@dataclass(frozen=True)
class Mapping:
    """Our name pattern -> (their name pattern, layout); model_types it is written for."""

    source: str  # "transformers", a file's path, or "a dict"
    names: dict
    model_types: tuple = ()


def load_mapping(spec) -> Mapping | None:
    """None (the dump uses our names), a ready mapping's name, a JSON file's path, or a dict."""
    if spec is None or isinstance(spec, Mapping):
        return spec
    if isinstance(spec, dict):
        return _mapping_from(spec, "a dict")
    spec = str(spec)
    path = READY_MAPPINGS.get(spec, Path(spec))
    if not path.is_file():
        raise InputError(
            f"unknown mapping {spec!r}: give {' or '.join(map(repr, READY_MAPPINGS))} or the "
            "path of a JSON mapping file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"mapping {spec} is not valid JSON: {exc}") from None
    return _mapping_from(data, spec)


def _mapping_from(data, source: str) -> Mapping:
    if not isinstance(data, dict) or not isinstance(data.get("names"), dict):
        raise InputError(f"mapping {source} must be a JSON object with a 'names' object")
    names = {}
    for ours, theirs in data["names"].items():
        entry = {"name": theirs} if isinstance(theirs, str) else theirs
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InputError(f"mapping {source}: {ours!r} must map to a name or {{'name': ...}}")
        layout = entry.get("layout", "same")
        if layout not in LAYOUTS:
            raise InputError(f"mapping {source}: {ours!r} has layout {layout!r}; use {LAYOUTS}")
        if ("{i}" in ours) != ("{i}" in entry["name"]):
            raise InputError(
                f"mapping {source}: {ours!r} and {entry['name']!r} must both use {{i}} or neither"
            )
        names[ours] = (entry["name"], layout)
    return Mapping(source, names, tuple(data.get("model_types", ())))


@dataclass(frozen=True)
class Pair:
    """A traced intermediate and the dump's array for it."""

    ours: str
    theirs: str
    layout: str


def pair_up(arrays: dict, traced, mapping: Mapping | None, model) -> tuple[list, list]:
    """([Pair] in forward order, [dump names compared with nothing]) for the dump's arrays and
    a trace of `model`. Raises InputError when nothing pairs up, when a dump in our naming holds
    names the trace lacks, or when a mapping was written for another family."""
    activations = [n for n in arrays if n not in INPUT_NAMES and not NOT_ACTIVATIONS.match(n)]
    if mapping is None:
        unknown = [n for n in activations if n not in traced]
        if unknown:
            raise InputError(
                f"the dump holds {len(unknown)} arrays that are not intermediates of this "
                f"model's trace: {', '.join(unknown[:5])} (docs/trace.md lists the names; "
                "for another naming give a mapping)"
            )
        pairs = [Pair(n, n, "same") for n in traced if n in arrays]
        used = {p.theirs for p in pairs}
    else:
        model_type = model.config.model_type
        if mapping.model_types and model_type not in mapping.model_types:
            raise InputError(
                f"mapping {mapping.source} is written for {', '.join(mapping.model_types)}, and "
                f"this model is {model_type}: write a mapping file for it (docs/diff.md)"
            )
        theirs_of = _expand(mapping, len(traced.steps))
        prefix = f"{model.prefix}."
        if activations and all(n.startswith(prefix) for n in activations):
            # hooks on a head model name its body's modules under the base model's prefix
            arrays.update({n[len(prefix) :]: arrays.pop(n) for n in activations})
            activations = [n[len(prefix) :] for n in activations]
        pairs = [
            Pair(n, theirs_of[n][0], theirs_of[n][1])
            for n in traced
            if n in theirs_of and theirs_of[n][0] in arrays
        ]
        used = {p.theirs for p in pairs}
    if not pairs:
        raise InputError(
            "no array of the dump matches a traced intermediate "
            f"(the dump has {', '.join(activations[:5]) or 'only inputs'}): check the names, "
            "or the mapping"
        )
    return pairs, [n for n in activations if n not in used]


def _expand(mapping: Mapping, num_steps: int) -> dict:
    """{our name: (their name, layout)} with {i} replaced by every encoder step."""
    expanded = {}
    for ours, (theirs, layout) in mapping.names.items():
        steps = range(num_steps) if "{i}" in ours else [None]
        for i in steps:
            our_name = ours if i is None else ours.replace("{i}", str(i))
            their_name = theirs if i is None else theirs.replace("{i}", str(i))
            expanded[our_name] = (their_name, layout)
    return expanded


def aligned(pair: Pair, theirs, ours_shape: tuple):
    """Their array as float64 in our shape, after the pair's layout. Raises InputError naming
    the array and both shapes when it cannot be made to fit."""
    a = np.asarray(theirs)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InputError(f"dump array {pair.theirs!r} has dtype {a.dtype}, not a number")
    a = a.astype(np.float64)
    layout = pair.layout
    if layout == "same" and a.shape != ours_shape:
        layout = _obvious_layout(a.shape, ours_shape)
    try:
        a = _rearrange(a, layout, ours_shape)
        if a.shape != ours_shape:  # a broadcast axis of 1 (transformers' (1, T, C) positions)
            if a.ndim != len(ours_shape):
                raise ValueError
            a = np.broadcast_to(a, ours_shape)
    except ValueError:
        raise InputError(
            f"dump array {pair.theirs!r} has shape {tuple(np.shape(theirs))}, which does not "
            f"fit {pair.ours!r} of shape {ours_shape} (layout {pair.layout}; docs/diff.md)"
        ) from None
    return a


def _obvious_layout(shape: tuple, ours: tuple) -> str:
    """A layout that is the only way to read their shape as ours: heads merged or split."""
    if len(ours) == 4 and len(shape) == 3 and shape == (ours[0], ours[2], ours[1] * ours[3]):
        return "heads_merged"
    if len(ours) == 3 and len(shape) == 4 and shape[0] == ours[0] and shape[2] == ours[1]:
        # (B, H, T, D); with H == T it could be (B, T, H, D) as well, so no guess
        if shape[1] * shape[3] == ours[2] and shape[1] != shape[2]:
            return "heads_split"
    return "same"


def _rearrange(a, layout: str, ours: tuple):
    """Apply a layout (module docstring); raises ValueError when the sizes do not fit."""
    if layout == "same":
        return a
    if layout == "heads_merged":  # (B, T, H*D) -> (B, H, T, D)
        B, H, T, D = ours
        return a.reshape(B, T, H, D).transpose(0, 2, 1, 3)
    if layout == "heads_split":  # (B, H, T, D) -> (B, T, C)
        if a.ndim != 4:
            raise ValueError
        return a.transpose(0, 2, 1, 3).reshape(ours)
    if a.ndim != 4:  # tokens_heads: (B, T, H, D)
        raise ValueError
    return a.transpose(0, 2, 1, 3) if len(ours) == 4 else a.reshape(ours)
