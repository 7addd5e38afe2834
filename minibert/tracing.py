"""Tracing: every named intermediate of one forward, and its gradient after backward().

    t = minibert.trace(model, input_ids, attention_mask=mask)   # {name: array}, in order
    t["encoder.step.0.attention.probs"]             # (B, H, T, T)

    t = minibert.trace(model, input_ids, labels=labels, grads=True)
    t.grads["encoder.step.0.ffn.activation"]        # d loss / d that array, same shape

docs/trace.md has the table of names and shapes. While a Trace is active (a context variable,
so threads and async tasks each see their own), the modules take their readable path instead
of the fused inference kernels and hand each intermediate to `record`; when none is active
each module call costs one context-variable read and allocates nothing.
"""

import contextvars

from .errors import InputError

_ACTIVE = contextvars.ContextVar("minibert_trace", default=None)


def active_trace():
    """The Trace recording now, or None (the one check a module makes per call)."""
    return _ACTIVE.get()


class Trace(dict):
    """{name: array}: the intermediates of one forward, in the order they were computed; after
    backward(), `grads` holds their gradients under the same names, in the same order.
    `steps[i]` is the encoder layer that step i ran (ALBERT runs one shared layer at every
    step); `output` is what the model returned.

    Used directly as a context manager it records whatever runs inside it:

        with Trace() as t:
            out = model(ids, labels=labels)   # model in training mode
            model.backward()
    """

    def __init__(self):
        super().__init__()
        self.grads = {}
        self.steps = []
        self.output = None
        self.prefix = ""  # the encoder sets "encoder.step.3." while that step runs
        self._token = None

    # --- what the modules call -------------------------------------------------------------
    def record(self, name: str, array) -> None:
        """Keep a copy of a forward intermediate under prefix + name."""
        self[self.prefix + name] = array.copy()

    def record_grad(self, name: str, array) -> None:
        """Keep a copy of the gradient reaching prefix + name (backward calls it)."""
        self.grads[self.prefix + name] = array.copy()

    def enter_step(self, step: int, layer: int) -> None:
        """The encoder starts step `step`, running layer `layer`."""
        self.prefix = f"encoder.step.{step}."
        if step == len(self.steps):
            self.steps.append(layer)

    def leave_steps(self) -> None:
        self.prefix = ""

    # --- reading ---------------------------------------------------------------------------
    def __missing__(self, name: str):
        raise KeyError(f"{name!r} was not traced; docs/trace.md lists the names")

    def shapes(self) -> dict:
        """{name: shape} in forward order."""
        return {name: value.shape for name, value in self.items()}

    def _order_grads(self) -> None:
        """Backward records in reverse: put the gradients in the values' (forward) order."""
        self.grads = {n: self.grads[n] for n in self if n in self.grads}

    # --- recording -------------------------------------------------------------------------
    def __enter__(self):
        if _ACTIVE.get() is not None:
            raise RuntimeError("a Trace is already recording; traces do not nest")
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc):
        _ACTIVE.reset(self._token)
        self._token = None
        self._order_grads()
        return False


def trace(
    model,
    input_ids=None,
    attention_mask=None,
    token_type_ids=None,
    *,
    grads: bool = False,
    output_grads: dict | None = None,
    **options,
) -> Trace:
    """Run one forward of `model` and return its Trace: {name: array} of every named
    intermediate in order (docs/trace.md's table); `output` is the model's return value.

    options are the model's other call arguments (position_ids, head_mask, labels, ...).
    grads=True also backpropagates, in training mode with dropout off, either the model's
    own loss (give its targets, e.g. labels=) or outside gradients on its outputs
    (`output_grads`, as model.backward takes them), and fills `grads` with d loss / d each
    intermediate of the encoder and the embeddings. The model's parameter gradients are zeroed
    first and hold this backward's afterwards; its mode (eval or train) is put back.
    """
    if not grads:
        if output_grads is not None:
            raise InputError("output_grads is for grads=True: without it nothing runs backward")
        with Trace() as t:
            t.output = model(input_ids, attention_mask, token_type_ids, **options)
        return t
    target_names = ("labels", "next_sentence_label", "sentence_order_label", "start_positions")
    if output_grads is None and not any(options.get(n) is not None for n in target_names):
        raise InputError(
            "trace(..., grads=True) needs a loss: pass the task's targets (labels=...) "
            "or output_grads={'last_hidden_state': ...}"
        )
    was_training, had_dropout = model.training, model.dropout_on
    model.train(dropout=False)
    try:
        model.zero_grad()
        with Trace() as t:
            t.output = model(input_ids, attention_mask, token_type_ids, **options)
            model.backward(output_grads)
    finally:
        model.train(was_training, dropout=had_dropout)
    return t
