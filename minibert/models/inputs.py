"""Checks of what a caller hands a model, at its public boundary.

The kernels behind them do no bounds checks, so every array is validated here, and a bad one
raises InputError naming the argument and what was wrong.

    check_forward        every input of a forward call: ids or inputs_embeds, the mask,
                         token types, position ids, head_mask, multiple-choice batches
    check_inputs         input_ids, attention_mask, token_type_ids alone
    check_labels         a task's integer targets
    float_targets        a task's real-valued targets (regression, multi-label)
    gradients_by_index   backward(grads=...)'s per-layer gradients, and their shapes
    on_model_device      an input or target moved to the model's device, at the boundary

Arrays are checked where they are: numpy on the CPU, cupy on the GPU (a check's verdict is
then one number read back from the device). A cupy input makes every input a cupy array.

Shapes: B batch, T tokens, C hidden, H heads.
"""

from dataclasses import dataclass

import numpy as np

from ..backend import device_of, to_device, to_numpy, xp_of
from ..config import IGNORE_INDEX, EncoderConfig
from ..errors import InputError


@dataclass
class ForwardInputs:
    """A forward call's inputs, checked, with num_choices folded into the batch.

    Shapes: ids (B, T) intp or None, embeds (B, T, E) or None (exactly one of the two), mask
    (B, T), types (B, T) or None, positions (B, T) or None (the family's default), heads
    (L, H) or None; B counts every (example, choice) pair of a multiple-choice batch."""

    ids: np.ndarray | None
    embeds: np.ndarray | None
    mask: np.ndarray
    types: np.ndarray | None
    positions: np.ndarray | None = None
    heads: np.ndarray | None = None
    num_choices: int | None = None  # N of a multiple-choice batch (B, N, T), else None

    def to(self, device: str) -> "ForwardInputs":
        """The same inputs on `device` (those already there are not copied)."""
        for name in ("ids", "embeds", "mask", "types", "positions", "heads"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, to_device(value, device))
        return self


def on_model_device(value, device: str):
    """An input or target as a model on `device` takes it: a cupy array for a CPU model comes
    back to the host; for a GPU model, anything else goes to the device. None stays None."""
    if value is None:
        return None
    if device == "cpu":
        return to_numpy(value) if device_of(value) == "cuda" else value
    return to_device(value, device)


def shape_of(value) -> tuple:
    """An array's shape, or a nested list's as numpy reads it."""
    return value.shape if hasattr(value, "shape") else np.shape(value)


def _as_array(value, xp):
    """value as an array of namespace xp (numpy's asarray for lists and numpy arrays)."""
    return np.asarray(value) if xp is np else to_device(value, "cuda")


def check_forward(
    config: EncoderConfig,
    input_ids=None,
    attention_mask=None,
    token_type_ids=None,
    position_ids=None,
    inputs_embeds=None,
    head_mask=None,
    choices: bool = False,
    dtype=np.float32,
    device: str = "cpu",
) -> ForwardInputs:
    """Validate every input of a forward call (see ForwardInputs), on `device`: the inputs move
    there first (on_model_device). `choices`: the inputs are (B, N, T) (and inputs_embeds
    (B, N, T, E)), flattened here to (B * N, T) as transformers' *ForMultipleChoice does.
    Raises InputError naming the argument and what was wrong."""
    if (input_ids is None) == (inputs_embeds is None):
        raise InputError("pass exactly one of input_ids and inputs_embeds")
    given = (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask)
    given = [on_model_device(a, device) for a in given]
    input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, head_mask = given
    xp = xp_of(*given)
    num_choices = None
    if choices:
        lead = shape_of(input_ids if input_ids is not None else inputs_embeds)[:2]
        want = 3 if input_ids is not None else 4
        if len(shape_of(input_ids if input_ids is not None else inputs_embeds)) != want:
            name = "input_ids" if input_ids is not None else "inputs_embeds"
            raise InputError(
                f"a multiple-choice model takes {name} of shape (batch, num_choices, tokens"
                f"{', width' if want == 4 else ''}), got shape "
                f"{shape_of(input_ids if input_ids is not None else inputs_embeds)}"
            )
        num_choices = lead[1]
        flat = {}
        for name, value, rank in (
            ("input_ids", input_ids, 3),
            ("attention_mask", attention_mask, 3),
            ("token_type_ids", token_type_ids, 3),
            ("position_ids", position_ids, 3),
            ("inputs_embeds", inputs_embeds, 4),
        ):
            if value is not None:
                shape = shape_of(value)
                if len(shape) != rank or shape[:2] != lead:
                    raise InputError(
                        f"{name} has shape {shape}; a multiple-choice batch of {lead[0]} x "
                        f"{lead[1]} choices needs {rank} axes starting with {lead}"
                    )
                flat[name] = _as_array(value, xp).reshape(-1, *shape[2:])
            else:
                flat[name] = None
        input_ids, attention_mask, token_type_ids = (
            flat["input_ids"],
            flat["attention_mask"],
            flat["token_type_ids"],
        )
        position_ids, inputs_embeds = flat["position_ids"], flat["inputs_embeds"]
    if input_ids is not None:
        ids, embeds = _check_ids(config, input_ids, xp), None
        B, T = ids.shape
    else:
        ids, embeds = None, _check_embeds(config, inputs_embeds, dtype, xp)
        B, T = embeds.shape[:2]
    positions = None
    if position_ids is None:
        _check_length(config, T)
    else:
        positions = _check_positions(config, position_ids, (B, T), xp)
    if attention_mask is None:
        mask = xp.ones((B, T), np.intp)
    else:
        mask = _as_mask(attention_mask, (B, T), xp)
    types = _check_types(config, token_type_ids, (B, T), xp)
    heads = None if head_mask is None else _check_head_mask(config, head_mask, dtype, xp)
    return ForwardInputs(ids, embeds, mask, types, positions, heads, num_choices)


def check_inputs(config: EncoderConfig, input_ids, attention_mask, token_type_ids):
    """Validate the three basic inputs of a forward call. Returns (ids, mask, types) as intp
    arrays of shape (B, T); types is None for a family without segments. Raises InputError
    naming the argument and what was wrong."""
    checked = check_forward(config, input_ids, attention_mask, token_type_ids)
    return checked.ids, checked.mask, checked.types


def _check_ids(config, input_ids, xp):
    ids = _as_int_array("input_ids", input_ids, xp)
    if ids.ndim != 2:
        raise InputError(f"input_ids must have shape (batch, tokens), got shape {ids.shape}")
    B, T = ids.shape
    if B == 0 or T == 0:
        raise InputError(f"input_ids is empty: shape {ids.shape} (need at least 1 x 1)")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= config.vocab_size:
        bad = lo if lo < 0 else hi
        where = tuple(int(i) for i in xp.argwhere(ids == bad)[0])
        raise InputError(
            f"input_ids holds {bad} at {where}, outside the vocabulary [0, {config.vocab_size})"
        )
    return ids


def _check_embeds(config, inputs_embeds, dtype, xp):
    """Vectors that replace the word-embedding lookup: (B, T, E), E the table's width."""
    width = config.embedding_size or config.hidden_size
    a = _as_array(inputs_embeds, xp)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.floating):
        raise InputError(f"inputs_embeds must hold floats, got dtype {a.dtype}")
    if a.ndim != 3 or a.shape[2] != width or 0 in a.shape:
        raise InputError(
            f"inputs_embeds must have shape (batch, tokens, {width}), got shape {a.shape}"
        )
    if not xp.isfinite(a).all():
        raise InputError("inputs_embeds holds NaN or infinite values")
    return a.astype(dtype, copy=False)


def _check_length(config, T):
    if T > config.max_length:
        raise InputError(
            f"sequence length {T} exceeds the {config.max_length} positions this "
            f"model has (max_position_embeddings={config.max_position_embeddings})"
        )


def _check_positions(config, position_ids, shape, xp):
    """Explicit position ids: (B, T), or (T,) / (1, T) for every row, inside the table."""
    a = _as_int_array("position_ids", position_ids, xp)
    if a.shape not in (shape, shape[1:], (1, shape[1])):
        raise InputError(f"position_ids has shape {a.shape} but the inputs have {shape}")
    P = config.max_position_embeddings
    if a.min() < 0 or a.max() >= P:
        raise InputError(f"position_ids must lie in [0, {P}), found {int(a.min())}..{int(a.max())}")
    return xp.broadcast_to(a, shape)


def _check_types(config, token_type_ids, shape, xp):
    if token_type_ids is None:
        return None if config.type_vocab_size == 0 else xp.zeros(shape, np.intp)
    types = _as_int_array("token_type_ids", token_type_ids, xp)
    if types.shape != shape:
        raise InputError(f"token_type_ids has shape {types.shape} but input_ids has {shape}")
    n = max(config.type_vocab_size, 1)  # a family without segments accepts all zeros
    if types.min() < 0 or types.max() >= n:
        raise InputError(
            f"token_type_ids must lie in [0, {n}) for this model, found values "
            f"{sorted(set(xp.unique(types).tolist()))[:5]}"
        )
    return None if config.type_vocab_size == 0 else types  # no segment table: all zeros


def _check_head_mask(config, head_mask, dtype, xp):
    """transformers' head_mask: (H,) for every layer or (L, H), 1 keeps a head, 0 silences it
    (any factor is allowed: it multiplies the head's attention weights). Returns (L, H)."""
    L, H = config.num_hidden_layers, config.num_attention_heads
    a = _as_array(head_mask, xp)
    if a.dtype == object or not (a.dtype == bool or np.issubdtype(a.dtype, np.number)):
        raise InputError(f"head_mask must hold numbers, got dtype {a.dtype}")
    if a.shape not in ((H,), (L, H)):
        raise InputError(f"head_mask must have shape ({H},) or ({L}, {H}), got shape {a.shape}")
    if not xp.isfinite(a).all():
        raise InputError("head_mask holds NaN or infinite values")
    return xp.broadcast_to(a.astype(dtype), (L, H))


def _as_int_array(name, value, xp=np):
    try:
        a = _as_array(value, xp)
    except ValueError:  # numpy refuses ragged nested lists
        a = np.asarray(value, dtype=object)
    if a.dtype == object:
        raise InputError(f"{name} must be a rectangular integer array; got ragged or mixed input")
    if a.dtype.kind not in "iu":  # signed or unsigned integers; not bool ("b")
        raise InputError(f"{name} must hold integers, got dtype {a.dtype}")
    return a.astype(np.intp, copy=False)


def _as_mask(value, shape, xp):
    try:
        m = _as_array(value, xp)
    except ValueError:
        m = np.asarray(value, dtype=object)
    if m.dtype == object or m.shape != shape:
        raise InputError(f"attention_mask has shape {m.shape} but input_ids has {shape}")
    if m.dtype.kind not in "biufc":  # bool or a number
        raise InputError(f"attention_mask must hold 0/1 values, got dtype {m.dtype}")
    if m.dtype.kind in "iu":  # integers are 0 or 1 when they lie in [0, 1]: two reductions
        binary = int(m.min()) >= 0 and int(m.max()) <= 1
    else:
        binary = m.dtype.kind == "b" or bool(((m == 0) | (m == 1)).all())
    if not binary:
        raise InputError(
            "attention_mask must hold only 0 (padding) and 1 (token), found "
            f"{sorted(set(xp.unique(m).tolist()) - {0, 1})[:5]}"
        )
    return m.astype(np.intp)


def check_labels(name: str, labels, shape: tuple, num_classes: int, ignore=IGNORE_INDEX):
    """Integer targets of the given shape in [0, num_classes), or the ignore index."""
    a = _as_array(labels, xp_of(labels))
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
    xp = xp_of(labels)
    a = _as_array(labels, xp)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise InputError(f"{name} must hold numbers, got dtype {a.dtype}")
    if a.shape not in shapes:
        expected = " or ".join(str(s) for s in dict.fromkeys(shapes))
        raise InputError(f"{name} has shape {a.shape}, expected {expected}")
    if not xp.isfinite(a).all():
        raise InputError(f"{name} holds NaN or infinite values")
    return a.astype(np.float64)


def reject_extra_targets(model, targets: dict) -> None:
    """A target the task does not read (start_positions= for a classifier) is a mistake."""
    if targets:
        raise InputError(f"{type(model).__name__} does not take {sorted(targets)}")


def gradients_by_index(grads, n: int, name: str, shape: tuple) -> dict:
    """{i: gradient} for `n` outputs (hidden states or attention maps) of the given shape (or
    shape(i), a function of the index: a pruned layer's maps have fewer heads); negative
    indices count from the end, as in a tuple."""
    out = {}
    for i, g in (grads or {}).items():
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise InputError(f"grads[{name!r}] has index {i!r}; the model has {n} {name}")
        expected = tuple(shape(int(i) % n) if callable(shape) else shape)
        if shape_of(g) != expected:
            raise InputError(
                f"the gradient for {name}[{i}] has shape {shape_of(g)}, not {expected}"
            )
        out[int(i) % n] = g
    return out


def reject_output_grads(model, doutputs: dict) -> None:
    """Gradients left over after the head took its own: outputs this model does not have."""
    if doutputs:
        raise InputError(
            f"backward() got gradients for {sorted(doutputs)}, which "
            f"{type(model).__name__} does not output (or not as a head)"
        )
