"""Reference fixtures: one forward's inputs and every traced intermediate in one .npz file.

    arrays, manifest = build_fixture(model, tokenizer, ["a text"], grads=True)
    write_fixture("case.npz", arrays, manifest)
    arrays, manifest = read_fixture("case.npz")

The file is a zip (numpy's .npz layout): one `NAME.npy` member per array, in forward order,
and a `manifest.json` text member describing them. The arrays are

    input_ids, attention_mask, token_type_ids    (B, T) int64, what the model was given
    NAME                                         each name of minibert.trace's table
    loss.weights, grad/NAME                      with grads: the loss's fixed tensor and
                                                 d loss / d NAME for each traced name

The loss behind the gradients is sum(last_hidden_state * loss.weights), loss.weights being a
standard normal tensor drawn from numpy's default_rng(seed): any implementation can form it
from the file alone. docs/reference-fixtures.md shows how to test against such a file.
"""

import json
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from .errors import InputError
from .quant import is_quantized
from .tracing import trace

MANIFEST = "manifest.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
LOSS_WEIGHTS = "loss.weights"
GRAD_PREFIX = "grad/"
LOSS = "sum(last_hidden_state * loss.weights)"
# What minibert meets against transformers on the same checkpoint and inputs, as the test suite
# checks it (tests/conftest.py: ATOL_HF, over the stored transformers fixtures of all four
# families); docs/numerics.md gives the reasons.
TOLERANCES = {
    "float32": {
        "atol": 1e-4,
        "source": "tests/conftest.py ATOL_HF: float32 forward against transformers' outputs",
    },
}


def build_fixture(
    model,
    tokenizer,
    texts,
    pairs=None,
    *,
    grads: bool = False,
    max_length: int | None = None,
    seed: int = 0,
):
    """Encode `texts` (and their `pairs`), trace one forward of `model` on them and return
    ({name: array} in file order, manifest dict). grads=True also stores loss.weights and the
    gradient of LOSS with respect to each intermediate, under grad/NAME."""
    texts = _text_list(texts, "texts")
    if pairs is not None:
        pairs = _text_list(pairs, "pairs")
        if len(pairs) != len(texts):
            raise InputError(f"{len(texts)} texts but {len(pairs)} pairs: give one pair per text")
    encoded = tokenizer(texts, pairs, padding=True, truncation=True, max_length=max_length)
    inputs = {name: np.asarray(encoded[name], dtype=np.int64) for name in INPUT_NAMES}
    types = inputs["token_type_ids"] if model.config.type_vocab_size else None

    arrays = dict(inputs)
    if grads and is_quantized(model):
        raise InputError(
            "gradients need a float model and this one is quantized (int8 runs inference "
            "only): export without --grads, or from the float model it was quantized from"
        )
    if grads:
        B, T = inputs["input_ids"].shape
        weights = np.random.default_rng(seed).standard_normal((B, T, model.config.hidden_size))
        weights = weights.astype(model.dtype)
        t = trace(
            model,
            inputs["input_ids"],
            inputs["attention_mask"],
            types,
            grads=True,
            output_grads={"last_hidden_state": weights},
        )
        arrays.update(t)
        arrays[LOSS_WEIGHTS] = weights
        arrays.update({GRAD_PREFIX + name: g for name, g in t.grads.items()})
    else:
        t = trace(model, inputs["input_ids"], inputs["attention_mask"], types)
        arrays.update(t)

    dtype = np.dtype(model.dtype).name
    manifest = {
        "format": "minibert reference fixture 1",
        "minibert_version": minibert_version(),
        "dtype": dtype,
        "texts": texts,
        "pairs": pairs,
        "token_type_ids_used": types is not None,
        "steps": list(t.steps),
        "mode": "train, dropout off" if grads else "eval",
        "loss": {"formula": LOSS, "weights": LOSS_WEIGHTS, "seed": seed} if grads else None,
        "tolerances": TOLERANCES.get(dtype, _tolerance_unmeasured(dtype)),
        "config": model.config.to_hf(),
        "arrays": [
            {"name": name, "shape": list(a.shape), "dtype": a.dtype.name}
            for name, a in arrays.items()
        ],
    }
    return arrays, manifest


def write_fixture(path, arrays: dict, manifest: dict, *, force: bool = False) -> Path:
    """Write the arrays (NAME.npy members, in order) and manifest.json into one zip at `path`;
    an existing file is replaced only with force=True."""
    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path} already exists: pass --force (force=True) to replace it")
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: the folder {path.parent} does not exist")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array))
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2))
    return path


def read_fixture(path):
    """({name: array} in file order, manifest dict) of a file write_fixture wrote."""
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read(MANIFEST))
        arrays = {}
        for entry in manifest["arrays"]:
            with zf.open(entry["name"] + ".npy") as member:
                arrays[entry["name"]] = np.lib.format.read_array(member)
    return arrays, manifest


def minibert_version() -> str:
    """The installed package's version (its metadata, which pyproject.toml fills from
    minibert.__version__)."""
    try:
        return version("minibert")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _text_list(texts, what: str) -> list:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise InputError(f"no {what} given: a fixture needs at least one")
    bad = [t for t in texts if not isinstance(t, str) or not t.strip()]
    if bad:
        raise InputError(f"{what} must be non-empty strings, got {bad[0]!r}")
    return texts


def _tolerance_unmeasured(dtype: str) -> dict:
    return {
        "atol": None,
        "source": f"not measured for {dtype}: the tests compare float32 against transformers",
    }
