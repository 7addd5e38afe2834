"""Checks of what a caller hands a model, at its public boundary.

The kernels behind them do no bounds checks, so every array is validated here, and a bad one
raises InputError naming the argument and what was wrong.

    check_inputs         input_ids, attention_mask, token_type_ids of a forward call
    check_labels         a task's integer targets
    float_targets        a task's real-valued targets (regression, multi-label)
    gradients_by_index   backward(grads=...)'s per-layer gradients, and their shapes

Shapes: B batch, T tokens, C hidden, H heads.
"""

import numpy as np

from ..config import IGNORE_INDEX, EncoderConfig
from ..errors import InputError


def check_inputs(config: EncoderConfig, input_ids, attention_mask, token_type_ids):
    """Validate a forward call's inputs. Returns (ids, mask, types) as intp arrays of shape
    (B, T); types is None for a family without segments. Raises InputError naming the argument
    and what was wrong."""
    ids = _as_int_array("input_ids", input_ids)
    if ids.ndim != 2:
        raise InputError(f"input_ids must have shape (batch, tokens), got shape {ids.shape}")
    B, T = ids.shape
    if B == 0 or T == 0:
        raise InputError(f"input_ids is empty: shape {ids.shape} (need at least 1 x 1)")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= config.vocab_size:
        bad = lo if lo < 0 else hi
        where = tuple(int(i) for i in np.argwhere(ids == bad)[0])
        raise InputError(
            f"input_ids holds {bad} at {where}, outside the vocabulary [0, {config.vocab_size})"
        )
    if T > config.max_length:
        raise InputError(
            f"sequence length {T} exceeds the {config.max_length} positions this "
            f"model has (max_position_embeddings={config.max_position_embeddings})"
        )
    if attention_mask is None:
        mask = np.ones((B, T), np.intp)
    else:
        mask = _as_mask(attention_mask, (B, T))
    types = None
    if token_type_ids is not None:
        types = _as_int_array("token_type_ids", token_type_ids)
        if types.shape != (B, T):
            raise InputError(f"token_type_ids has shape {types.shape} but input_ids has {(B, T)}")
        n = max(config.type_vocab_size, 1)  # a family without segments accepts all zeros
        if types.min() < 0 or types.max() >= n:
            raise InputError(
                f"token_type_ids must lie in [0, {n}) for this model, found values "
                f"{sorted(set(np.unique(types).tolist()))[:5]}"
            )
    if config.type_vocab_size == 0:
        types = None  # checked above to be all zeros; the family has no segment table
    elif types is None:
        types = np.zeros((B, T), np.intp)
    return ids, mask, types


def _as_int_array(name, value):
    try:
        a = np.asarray(value)
    except ValueError:  # numpy refuses ragged nested lists
        a = np.asarray(value, dtype=object)
    if a.dtype == object:
        raise InputError(f"{name} must be a rectangular integer array; got ragged or mixed input")
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{name} must hold integers, got dtype {a.dtype}")
    return a.astype(np.intp, copy=False)


def _as_mask(value, shape):
    try:
        m = np.asarray(value)
    except ValueError:
        m = np.asarray(value, dtype=object)
    if m.dtype == object or m.shape != shape:
        raise InputError(f"attention_mask has shape {m.shape} but input_ids has {shape}")
    if not (m.dtype == bool or np.issubdtype(m.dtype, np.number)):
        raise InputError(f"attention_mask must hold 0/1 values, got dtype {m.dtype}")
    if not np.isin(m, (0, 1)).all():
        raise InputError(
            "attention_mask must hold only 0 (padding) and 1 (token), found "
            f"{sorted(set(np.unique(m).tolist()) - {0, 1})[:5]}"
        )
    return m.astype(np.intp)


def check_labels(name: str, labels, shape: tuple, num_classes: int, ignore=IGNORE_INDEX):
    """Integer targets of the given shape in [0, num_classes), or the ignore index."""
    a = np.asarray(labels)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.shape != shape:
        raise InputError(f"{name} has shape {a.shape}, expected {shape}")
    bad = (a != ignore) & ((a < 0) | (a >= num_classes))
    if bad.any():
        raise InputError(
            f"{name} holds {int(a[bad][0])}, outside [0, {num_classes}) "
            f"(use {ignore} to ignore a position)"
        )
    return a.astype(np.intp)


def float_targets(name: str, labels, *shapes: tuple):
    """Real-valued targets (regression values, multi-label 0/1 or soft labels) of one of the
    given shapes, finite, as a float array."""
    a = np.asarray(labels)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise InputError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.shape not in shapes:
        expected = " or ".join(str(s) for s in dict.fromkeys(shapes))
        raise InputError(f"{name} has shape {a.shape}, expected {expected}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} holds NaN or infinite values")
    return a.astype(np.float64)


def reject_extra_targets(model, targets: dict) -> None:
    """A target the task does not read (start_positions= for a classifier) is a mistake."""
    if targets:
        raise InputError(f"{type(model).__name__} does not take {sorted(targets)}")


def gradients_by_index(grads, n: int, name: str, shape: tuple) -> dict:
    """{i: gradient} for `n` outputs (hidden states or attention maps) of the given shape;
    negative indices count from the end, as in a tuple."""
    out = {}
    for i, g in (grads or {}).items():
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise InputError(f"grads[{name!r}] has index {i!r}; the model has {n} {name}")
        if np.shape(g) != tuple(shape):
            raise InputError(f"the gradient for {name}[{i}] has shape {np.shape(g)}, not {shape}")
        out[int(i) % n] = g
    return out


def reject_output_grads(model, doutputs: dict) -> None:
    """Gradients left over after the head took its own: outputs this model does not have."""
    if doutputs:
        raise InputError(
            f"backward() got gradients for {sorted(doutputs)}, which "
            f"{type(model).__name__} does not output (or not as a head)"
        )
