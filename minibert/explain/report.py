"""The explain report: what a model does with one text, as data.

    report = explain(model, tokenizer, "The cat sat.", pair=None, batch=8, length=128)
    report.tokens          # each word piece: id, text, character offsets, word, special
    report.steps[0].ops    # per op of encoder step 0: traced shape, FLOPs, bytes moved
    report.steps[0].entropy, .cls_share, .sep_share, .norms   # per head / per residual point
    report.pooled          # {"cls" | "mean" | "max": (C,) vector}
    report.memory          # MemoryEstimate for batch x length (memory.py)
    report.to_dict()       # the same as plain JSON-ready data

One traced forward (minibert.trace) of the text alone, batch 1, gives every number: shapes
from the traced arrays, costs from costs.py's model of the same ops, attention statistics from
each step's probabilities, norms from the residual stream. notes.py adds what the family does
differently; render.py writes the report as text, page.py as an HTML page.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..functional.pooling import pool_one
from ..quant import is_quantized
from ..tracing import trace
from .costs import OpCost, WeightFormat, forward_ops
from .memory import MemoryEstimate, check_shape, measure_forward_peak, memory_estimate
from .notes import architecture_notes, parameter_summary
from .tokens import bare_token_rows, token_rows, word_rows

POOLINGS = ("cls", "mean", "max")
# The points of the residual stream whose norms a step reports, and the trace names they read
NORM_POINTS = {
    "attention": "attention.output",
    "residual1": "residual1",
    "ln1": "ln1",
    "ffn": "ffn.output",
    "residual2": "residual2",
    "output": "ln2",
}


@dataclass
class Step:
    """One encoder step: the layer it ran, its ops, and per head (H,) the mean entropy of the
    attention rows (nats), the mean share of attention on the first special token ([CLS],
    <s>) and on the separators ([SEP], </s>); mean token norms along the residual stream."""

    step: int
    layer: int
    ops: list
    entropy: np.ndarray  # (H,)
    cls_share: np.ndarray  # (H,)
    sep_share: np.ndarray  # (H,)
    norms: dict  # {"input", "attention", ..., "output"}: mean L2 norm over the tokens


@dataclass
class Report:
    """Everything `explain` found, for render.py and page.py (and to_dict for JSON)."""

    model_name: str
    config: object  # the model's EncoderConfig
    architecture: str
    quantized: bool
    parameters: dict  # parameter_summary: unique, effective, by component
    notes: list  # architecture differences, one sentence each
    text: str
    pair: str | None
    tokens: list
    words: list
    special_names: tuple  # how the report names the first token and the separators
    embedding_ops: list
    steps: list
    pooler_ops: list
    embedding_norm: float  # mean token norm of the encoder's input
    pooled: dict  # {pooling: (C,) vector} of the last hidden state
    pooler_output: np.ndarray | None  # (C,), for models with a pooler
    attentions: np.ndarray = field(repr=False)  # (S, H, T, T), every step's probabilities
    memory: MemoryEstimate | None = None
    measured_peak: int | None = None  # bytes, memory.measure_forward_peak, when asked for

    @property
    def ops(self) -> list:
        """Every op of the forward, in order."""
        return [*self.embedding_ops, *(op for s in self.steps for op in s.ops), *self.pooler_ops]

    @property
    def flops(self) -> int:
        return sum(op.flops for op in self.ops)

    @property
    def bytes_moved(self) -> int:
        return sum(op.bytes for op in self.ops)

    def to_dict(self) -> dict:
        """The report as plain data (lists, numbers, strings) for JSON."""
        memory = None
        if self.memory is not None:
            memory = {**vars(self.memory), "activations": self.memory.activations}
            memory["total"] = self.memory.total
            memory["measured_peak"] = self.measured_peak

        def ops(rows):
            return [{**vars(op), "shape": list(op.shape)} for op in rows]

        return {
            "model": self.model_name,
            "model_type": self.config.model_type,
            "architecture": self.architecture,
            "quantized": self.quantized,
            "config": self.config.to_hf(),
            "parameters": self.parameters,
            "notes": self.notes,
            "text": self.text,
            "pair": self.pair,
            "tokens": [vars(t) for t in self.tokens],
            "words": [vars(w) for w in self.words],
            "special_names": list(self.special_names),
            "embeddings": {"ops": ops(self.embedding_ops), "norm": self.embedding_norm},
            "steps": [
                {
                    "step": s.step,
                    "layer": s.layer,
                    "ops": ops(s.ops),
                    "entropy": s.entropy.tolist(),
                    "cls_share": s.cls_share.tolist(),
                    "sep_share": s.sep_share.tolist(),
                    "norms": s.norms,
                }
                for s in self.steps
            ],
            "pooler": {"ops": ops(self.pooler_ops)},
            "pooled": {mode: vector.tolist() for mode, vector in self.pooled.items()},
            "pooler_output": None if self.pooler_output is None else self.pooler_output.tolist(),
            "flops": self.flops,
            "bytes_moved": self.bytes_moved,
            "memory": memory,
        }


def explain(
    model,
    tokenizer,
    text: str,
    pair: str | None = None,
    *,
    batch: int = 1,
    length: int | None = None,
    measure: bool = False,
    model_name: str = "",
) -> Report:
    """Tokenize `text` (and `pair`, its second text), run one traced forward and report on it.

    batch x length: the shape of the memory estimate (length None: the text's token count);
    measure=True also measures that forward's peak (memory.measure_forward_peak).
    Bad input raises InputError: an empty text, more tokens than the model has positions,
    a batch or length that is not a positive integer or too long."""
    texts = [("text", text)] + ([] if pair is None else [("pair", pair)])
    for name, value in texts:
        if not isinstance(value, str):
            raise InputError(f"{name} must be a str, got {type(value).__name__}")
        if not value.strip():
            raise InputError(f"{name} is empty: give a text with at least one word")
    config = model.config
    plain = tokenizer(text, pair, padding=False, truncation=False, return_offsets_mapping=True)
    count = plain["input_ids"].shape[1]
    if count > config.max_length:
        raise InputError(
            f"the text has {count} tokens, more than this model's {config.max_length} positions"
        )
    tokens = token_rows(plain, tokenizer)
    ids = plain["input_ids"]
    cls = [t.index for t in tokens if t.id == tokenizer.cls_token_id]
    sep = [t.index for t in tokens if t.id == tokenizer.sep_token_id]
    special = tokenizer.special_tokens
    names = (special.get("cls") or "first token", special.get("sep") or "separators")
    report = explain_ids(
        model,
        ids,
        plain["token_type_ids"],
        batch=batch,
        length=length,
        measure=measure,
        cls_positions=cls or [0],
        sep_positions=sep,
        tokens=tokens,
        model_name=model_name,
        special_names=names,
    )
    report.text, report.pair = text, pair
    report.words = word_rows(tokens, text, pair)
    return report


def explain_ids(
    model,
    input_ids,
    token_type_ids=None,
    *,
    batch: int = 1,
    length: int | None = None,
    measure: bool = False,
    cls_positions=(0,),
    sep_positions=None,
    tokens=None,
    model_name: str = "",
    special_names=("first token", "last token"),
) -> Report:
    """The report on one row of ids (T,) or (1, T), without a tokenizer: the attention shares
    are those on cls_positions and sep_positions (default: the last token, where the families'
    tokenizers put [SEP] or </s>). Arguments as explain's."""
    config = model.config
    ids = np.asarray(input_ids)
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
        raise InputError(f"input_ids must be one row of ids, (T,) or (1, T), got {ids.shape}")
    T = ids.shape[1]
    if T > config.max_length:
        raise InputError(
            f"the input has {T} tokens, more than this model's {config.max_length} positions"
        )
    batch, length = check_shape(config, batch, T if length is None else length)
    if config.type_vocab_size == 0:
        token_type_ids = None  # DistilBERT has no token types
    elif token_type_ids is not None:
        token_type_ids = np.asarray(token_type_ids).reshape(ids.shape)  # (1, T)
    traced = _trace_in_eval_mode(model, ids, token_type_ids)
    ops = _traced_ops(model, traced, T)
    steps = []
    sep = [T - 1] if sep_positions is None else list(sep_positions)
    for step, layer in enumerate(traced.steps):
        at = f"encoder.step.{step}."
        probs = traced[at + "attention.probs"][0]  # (H, T, T)
        x = traced[f"encoder.step.{step - 1}.ln2"] if step else _encoder_input(traced)
        norms = {"input": _mean_norm(x)}
        norms.update({point: _mean_norm(traced[at + n]) for point, n in NORM_POINTS.items()})
        steps.append(
            Step(
                step=step,
                layer=layer,
                ops=[op for op in ops if op.name.startswith(at)],
                entropy=attention_entropy(probs),
                cls_share=attention_share(probs, cls_positions),
                sep_share=attention_share(probs, sep),
                norms=norms,
            )
        )
    last = traced[f"encoder.step.{len(traced.steps) - 1}.ln2"]  # (1, T, C)
    mask = np.ones((1, T), np.int64)
    pooled = {mode: pool_one(last, mask, mode)[0] for mode in POOLINGS}
    pooler = traced["pooler.output"][0] if "pooler.output" in traced else None
    attentions = np.stack(
        [traced[f"encoder.step.{i}.attention.probs"][0] for i in range(len(steps))]
    )
    report = Report(
        model_name=model_name,
        config=config,
        architecture=type(model).__name__,
        quantized=is_quantized(model),
        parameters=parameter_summary(model),
        notes=architecture_notes(model, T),
        text="",
        pair=None,
        tokens=tokens if tokens is not None else bare_token_rows(ids[0]),
        words=[],
        special_names=tuple(special_names),
        embedding_ops=[op for op in ops if op.name.startswith("embeddings.")],
        steps=steps,
        pooler_ops=[op for op in ops if op.name.startswith("pooler.")],
        embedding_norm=_mean_norm(_encoder_input(traced)),
        pooled=pooled,
        pooler_output=pooler,
        attentions=attentions,
        memory=memory_estimate(model, batch, length),
    )
    if measure:
        report.measured_peak = measure_forward_peak(model, batch, length)
    return report


def attention_entropy(probs) -> np.ndarray:
    """Mean over the query rows of each head's entropy -sum p log p, in nats (0: all on one
    token; log T: spread evenly). Shapes: probs (H, T, T) -> (H,)"""
    p = probs.astype(np.float64)
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)  # 0 log 0 = 0
    return terms.sum(-1).mean(-1)


def attention_share(probs, positions) -> np.ndarray:
    """Mean over the query rows of the attention each head puts on `positions` (0 when there
    are none). Shapes: probs (H, T, T) -> (H,)"""
    positions = list(positions)
    if not positions:
        return np.zeros(probs.shape[0])
    return probs[:, :, positions].astype(np.float64).sum(-1).mean(-1)


def _trace_in_eval_mode(model, ids, token_type_ids):
    """One traced inference forward (dropout off), the model's mode put back after."""
    was_training, had_dropout = model.training, model.dropout_on
    model.eval()
    try:
        return trace(model, ids, None, token_type_ids, output_attentions=True)
    finally:
        model.train(was_training, dropout=had_dropout)


def _traced_ops(model, traced, T) -> list:
    """costs.forward_ops for this forward, each op given the shape of its traced array."""
    ops = forward_ops(
        model.config,
        1,
        T,
        itemsize=np.dtype(model.dtype).itemsize,
        weights=WeightFormat.of(model.encoder.layers[0].attn.q),
        word_table=WeightFormat.of(model.embeddings.word),
        pooler=hasattr(model, "pooler"),
    )
    rows = []
    for op in ops:
        shape = tuple(traced[op.name].shape)
        assert shape == op.shape, f"{op.name}: the cost model says {op.shape}, the trace {shape}"
        rows.append(OpCost(op.name, shape, op.flops, op.bytes))
    return rows


def _encoder_input(traced):
    """The first encoder step's input: the embeddings' output (after ALBERT's projection)."""
    if "embeddings.projection" in traced:
        return traced["embeddings.projection"]
    return traced["embeddings.layernorm"]


def _mean_norm(x) -> float:
    """The mean over the tokens of each token vector's L2 norm. Shapes: (1, T, C) -> float"""
    return float(np.linalg.norm(x[0].astype(np.float64), axis=-1).mean())
