"""The start-up self-check: does this process reproduce a stored golden vector?

A server should not say it is ready until it gives the right numbers, and a process can be
wrong in ways no unit test of the package sees: weights damaged on disk, a tokenizer file
swapped, a kernel compiled for the wrong processor, a library upgraded under it. So at start
the server embeds one fixed text (GOLDEN_TEXT) on its fast path, through the same scheduler
and kernels as every request, and compares the result with a golden record; /ready answers
200 only when they agree.

Where the golden record comes from. It is keyed by a digest of everything the numbers depend
on: config.json, the weight files, the tokenizer files, the pooling, the token limit and the
text itself.
 1. shipped: minibert/serve/golden/<digest>.json, made for the bundled model when it was
    built, so a damaged install or a wrong-numbers kernel fails the check at once;
 2. cached: <cache dir>/<digest>.json, written by an earlier start on this machine;
 3. made now: on the first start with a model, the record is computed with the plain numpy
    reference kernels (model.kernels = "reference"), which share no code with the Numba
    kernels the server runs, and written to the cache for the next start. So even the first
    start checks the fast path against an independent computation, and later starts also
    check that nothing changed since (a new minibert, tokenizers or CPU).
A changed file gives a new digest and so a new record: editing a model is not an error, but
the same files giving other numbers is. After an upgrade that changes the numbers on
purpose, delete the cached record (its path is in the /ready message).
"""

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..checkpoint import weight_files
from ..functional.pooling import l2_normalize
from ..tokenizer import TOKENIZER_FILES, module_folders
from .model import ServedModel, minibert_version

GOLDEN_TEXT = "minibert self-check: the quick brown fox jumps over the lazy dog, 12 times."
SHIPPED_DIR = Path(__file__).resolve().parent / "golden"
# How far the served unit vector may be from the golden one. float32: the fast kernels match
# the references to ~2e-7. int8: the fast and reference paths each quantise the activations
# of every layer, and a value within rounding of a step boundary lands on either side of it;
# measured 1.8e-4 on the bundled model. A broken kernel or other weights miss by > 1e-2.
# int4 (group-wise) layers decode to the same float32 weights on both kernel paths and then run
# float32 products: float32's tolerance
VECTOR_ATOL = {"float32": 1e-4, "int8": 2e-3, "int4": 1e-4}
LOGITS_ATOL, LOGITS_RTOL = {"float32": 1e-3, "int8": 2e-2, "int4": 1e-3}, 1e-4


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/minibert/serve, else ~/.cache/minibert/serve."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minibert" / "serve"


def model_digest(model: ServedModel) -> str:
    """sha256 over the files and settings the golden vector depends on (see the module text)."""
    digest = hashlib.sha256()
    files = [model.path / "config.json", *weight_files(model.path)]
    # (TOKENIZER_FILES has a sentence-transformers folder's modules.json and configs too)
    files += [model.path / name for name in TOKENIZER_FILES if (model.path / name).is_file()]
    for folder in module_folders(model.path):  # 1_Pooling/, 2_Dense/, ...: the files in them
        files += sorted(f for f in (model.path / folder).iterdir() if f.is_file())
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    # the settings that change the check's numbers: a shorter limit truncates the text
    settings = f"pooling={model.pooling}\0max_length={model.max_length}\0text={GOLDEN_TEXT}"
    if model.prompt:  # (not part of the digest otherwise: the shipped records stay valid)
        settings += f"\0prompt={model.prompt}"
    digest.update(settings.encode())
    return digest.hexdigest()


def find_golden(digest: str, cache_dir: Path | None) -> tuple[dict | None, Path | None]:
    """(record, where it was read) from the shipped records, then the cache; (None, None)."""
    places = [SHIPPED_DIR] + ([Path(cache_dir)] if cache_dir else [])
    for folder in places:
        file = folder / f"{digest}.json"
        if file.is_file():
            try:
                return json.loads(file.read_text(encoding="utf-8")), file
            except (OSError, ValueError):
                continue  # unreadable: as if absent, and a fresh one replaces a cached one
    return None, None


def reference_golden(model: ServedModel, digest: str, sequence) -> dict:
    """The golden record of GOLDEN_TEXT's `sequence` (model.tokenize's), computed now with the
    numpy reference kernels.

    Must run while nothing else uses the model (before the scheduler starts): it switches the
    model's kernels for the duration of one forward.
    """
    previous = model.encoder.model.kernels
    model.encoder.model.kernels = "reference"
    try:
        (output,) = model.run([sequence])
    finally:
        model.encoder.model.kernels = previous
    return {
        "digest": digest,
        "text": GOLDEN_TEXT,
        "pooling": model.pooling,
        "input_ids": sequence.input_ids.tolist(),
        "vector": _unit(output.vector).tolist(),
        "logits": None if output.logits is None else output.logits.astype(float).tolist(),
        "made_by": f"minibert {minibert_version()}, numpy reference kernels",
        "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def store_golden(record: dict, cache_dir: Path) -> Path:
    """Write the record into the cache atomically: several workers may start at once, so each
    writes its own temporary file and renames it (the records are equal)."""
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{record['digest']}.json"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".golden-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1)
        fh.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a golden vector is no secret
    os.replace(tmp, file)
    return file


def compare(record: dict, sequence, output, dtype: str = "float32") -> str | None:
    """None when the served sequence and output reproduce the record (within the tolerance
    of the model's dtype), else what differs."""
    if sequence.input_ids.tolist() != record["input_ids"]:
        return "the tokenizer gives other token ids for the check text than the golden record"
    expected = np.asarray(record["vector"], np.float32)
    actual = _unit(output.vector)
    if actual.shape != expected.shape:
        return f"the vector has {actual.shape[0]} dimensions, the golden one {expected.shape[0]}"
    worst, atol = float(np.abs(actual - expected).max()), VECTOR_ATOL[dtype]
    if not worst <= atol:  # written so that NaN fails too
        return f"the vector differs from the golden one by up to {worst:.3g} (> {atol})"
    if record.get("logits") is not None:
        if output.logits is None:
            return "the golden record has logits and the model gives none"
        want = np.asarray(record["logits"], np.float64)
        got = np.asarray(output.logits, np.float64)
        if got.shape != want.shape or not np.allclose(
            got, want, rtol=LOGITS_RTOL, atol=LOGITS_ATOL[dtype]
        ):
            return f"the logits {got.tolist()} differ from the golden {want.tolist()}"
    return None


def _unit(vector) -> np.ndarray:
    return l2_normalize(np.asarray(vector, np.float32)[None])[0]
