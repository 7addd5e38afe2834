"""What one forward costs, op by op: floating-point operations and bytes moved.

    ops = forward_ops(model.config, batch=1, length=12)     # [OpCost], in forward order
    sum(op.flops for op in ops) == forward_flops(config, 1, 12)

The ops are those of the readable path, under the names minibert.trace records (docs/trace.md),
so each op's shape is that of the traced array. The conventions (docs/explain.md states them as
one formula, and tests/test_explain.py checks that the ops add up to it):

- a multiply-add is 2 FLOPs; a linear layer of N rows, I -> O, is 2 N I O for the product and
  N O for the bias;
- every other elementwise operation is 1 FLOP, an exp, tanh or erf included (so GELU with erf
  is 5 per element, its tanh approximation 9: ACTIVATION_FLOPS);
- LayerNorm over a row of width W is 7 W + 4 (mean, centre, square, sum, normalise, scale,
  shift; and per row the two divisions, the eps and the square root);
- a softmax row of width T is 5 T (max, subtract, exp, sum, divide);
- bytes moved: each op reads each input and weight once and writes its output once; integer
  ids are not counted. Activations take `itemsize` bytes; weights as they are stored
  (WeightFormat: float, int8 with a float32 scale per output row, or group-wise int8/int4
  with a scale per group), a lookup reading only the rows it gathers.

Only the body is counted: embeddings, the encoder steps and the pooler, not a task's head.
Shapes: B batch, T tokens, N = B T rows, C hidden, H heads, D = C / H, F feed-forward, E
embedding width (ALBERT; C elsewhere), S encoder steps.
"""

from dataclasses import dataclass

ACTIVATION_FLOPS = {  # per element, each transcendental function counted as 1
    "gelu": 5,  # x * 0.5 * (1 + erf(x / sqrt 2))
    "gelu_new": 9,  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    "gelu_pytorch_tanh": 9,  # the same formula
    "gelu_fast": 9,  # 0.5 x (1 + tanh(0.79788456 x (1 + 0.044715 x^2)))
    "relu": 1,  # max(x, 0)
    "silu": 4,  # x / (1 + exp(-x))
    "quick_gelu": 5,  # x / (1 + exp(-1.702 x))
}
TANH_FLOPS = 1  # the pooler's activation
LAYERNORM_FLOPS_PER_ELEMENT, LAYERNORM_FLOPS_PER_ROW = 7, 4
SOFTMAX_FLOPS_PER_ELEMENT = 5
SCALE_BYTES = 4  # a quantized weight's float32 scale (per output row, or per group of a row)


@dataclass(frozen=True)
class WeightFormat:
    """How a weight matrix (out x in, PyTorch's layout) is stored: `bits` per weight (32 or 64
    for float; 8 or 4 quantized), and for quantized ones a float32 scale per output row
    (group None) or per `group` input channels of a row, the row padded to whole groups and
    int4 codes packed two to a byte (quant/groupwise.py)."""

    bits: int = 32
    group: int | None = None

    def row_bytes(self, fan_in: int) -> int:
        """Bytes of one stored row of `fan_in` weights, its scales included."""
        if self.bits > 8:
            return fan_in * self.bits // 8
        if self.group is None:
            return fan_in * self.bits // 8 + SCALE_BYTES
        groups = -(-fan_in // self.group)
        return -(-groups * self.group * self.bits // 8) + groups * SCALE_BYTES

    @classmethod
    def of(cls, module) -> "WeightFormat":
        """The format of a Linear or Embedding module's weight, read from its arrays."""
        group = getattr(module, "group_size", None)  # group-wise layers (quant/groupwise.py)
        if group is not None:
            return cls(module.bits, group)
        return cls(8 * module.params["weight"].itemsize)  # float, or int8 with a scale per row


@dataclass(frozen=True)
class OpCost:
    """One op of the forward: its trace name, output shape, FLOPs and bytes moved."""

    name: str  # the trace's name ("encoder.step.0.attention.q", "pooler.dense", ...)
    shape: tuple  # the output's shape
    flops: int
    bytes: int


def encoder_steps(config) -> list[int]:
    """The unique layer each encoder step runs: layer i at step i, except ALBERT, whose L
    steps each run the inner_group_num layers of their group (models/albert.py's schedule)."""
    if config.model_type != "albert":
        return list(range(config.num_hidden_layers))
    per_group = config.num_hidden_layers // config.num_hidden_groups
    return [
        (step // per_group) * config.inner_group_num + j
        for step in range(config.num_hidden_layers)
        for j in range(config.inner_group_num)
    ]


class _Counter:
    """Builds the op list; each method adds one kind of op (its formula in one place)."""

    def __init__(self, itemsize: int, weights: WeightFormat):
        self.s, self.weights = itemsize, weights
        self.ops = []

    def add(self, name, shape, flops, nbytes):
        self.ops.append(OpCost(name, tuple(shape), int(flops), int(nbytes)))

    def linear(self, name, shape, rows, fan_in, fan_out):
        """x (rows, I) W^T + b: the product and the bias; `shape` is the output's, as traced."""
        flops = 2 * rows * fan_in * fan_out + rows * fan_out
        weights = fan_out * self.weights.row_bytes(fan_in) + self.s * fan_out  # W, b
        self.add(name, shape, flops, self.s * rows * (fan_in + fan_out) + weights)

    def lookup(self, name, shape, rows, width, table: WeightFormat):
        """Rows of a table gathered: no arithmetic; read the rows, write them."""
        self.add(name, shape, 0, rows * (table.row_bytes(width) + self.s * width))

    def elementwise(self, name, shape, size, inputs, flops_per_element):
        """An op over `size` elements reading `inputs` arrays of that size, writing one."""
        self.add(name, shape, flops_per_element * size, self.s * size * (inputs + 1))

    def layernorm(self, name, shape, rows, width):
        """Normalise `rows` rows of `width`; read them and the scale and shift, write them."""
        flops = rows * (LAYERNORM_FLOPS_PER_ELEMENT * width + LAYERNORM_FLOPS_PER_ROW)
        self.add(name, shape, flops, self.s * (2 * rows * width + 2 * width))


def forward_ops(
    config,
    batch: int,
    length: int,
    itemsize: int = 4,
    weights: WeightFormat | None = None,
    word_table: WeightFormat | None = None,
    pooler: bool | None = None,
):
    """Every op of one forward of `batch` x `length` tokens, in order, as OpCost rows.

    itemsize: bytes of an activation (4 for float32, 8 for float64); weights: how the linear
    layers' weights are stored (default: floats of itemsize), word_table: the word embeddings'
    (default: as weights); pooler: whether the model runs one (None: the family's base model
    does, DistilBERT's has none)."""
    B, T = batch, length
    N, C, F = B * T, config.hidden_size, config.intermediate_size
    E, D = config.embedding_size or C, config.head_size
    weights = weights or WeightFormat(8 * itemsize)
    floats = WeightFormat(8 * itemsize)  # the position and token-type tables stay float
    count = _Counter(itemsize, weights)
    s = itemsize

    terms = 3 if config.type_vocab_size else 2  # word (+ token type) + position
    count.lookup("embeddings.word", (B, T, E), N, E, word_table or weights)
    if config.type_vocab_size:
        count.lookup("embeddings.token_type", (B, T, E), N, E, floats)
    count.lookup("embeddings.position", (B, T, E), N, E, floats)
    count.elementwise("embeddings.sum", (B, T, E), N * E, terms, terms - 1)
    count.layernorm("embeddings.layernorm", (B, T, E), N, E)
    if config.model_type == "albert":
        count.linear("embeddings.projection", (B, T, C), N, E, C)

    for step, layer in enumerate(encoder_steps(config)):
        at = f"encoder.step.{step}."
        H = len(config.kept_heads(layer))
        A = H * D  # the attention's width: C, less any pruned heads
        for name in ("q", "k", "v"):  # traced split into heads
            count.linear(at + f"attention.{name}", (B, H, T, D), N, C, A)
        square = B * H * T * T  # one score per (query, key) pair in each head
        count.add(at + "attention.scores", (B, H, T, T), 2 * square * D, s * (2 * N * A + square))
        count.add(at + "attention.masked_scores", (B, H, T, T), 2 * square, s * (2 * square + N))
        count.elementwise(
            at + "attention.probs", (B, H, T, T), square, 1, SOFTMAX_FLOPS_PER_ELEMENT
        )
        count.add(at + "attention.context", (B, T, A), 2 * square * D, s * (square + 2 * N * A))
        count.linear(at + "attention.output", (B, T, C), N, A, C)
        count.elementwise(at + "residual1", (B, T, C), N * C, 2, 1)
        count.layernorm(at + "ln1", (B, T, C), N, C)
        count.linear(at + "ffn.up", (B, T, F), N, C, F)
        count.elementwise(
            at + "ffn.activation", (B, T, F), N * F, 1, ACTIVATION_FLOPS[config.hidden_act]
        )
        count.linear(at + "ffn.output", (B, T, C), N, F, C)
        count.elementwise(at + "residual2", (B, T, C), N * C, 2, 1)
        count.layernorm(at + "ln2", (B, T, C), N, C)

    pooler = has_pooler(config) if pooler is None else pooler
    if pooler:  # on the first token of each row
        count.linear("pooler.dense", (B, C), B, C, C)
        count.elementwise("pooler.output", (B, C), B * C, 1, TANH_FLOPS)
    return count.ops


def has_pooler(config) -> bool:
    """DistilBERT has no pooler; the other families' base models do."""
    return config.model_type != "distilbert"


def forward_flops(config, batch: int, length: int, pooler=None) -> int:
    """The closed form of sum(op.flops for op in forward_ops(...)) for a model without pruned
    heads: docs/explain.md's formula, term by term.

    embeddings  (k - 1) N E + N (7 E + 4)  [+ 2 N E C + N C for ALBERT's projection]
    each step   8 N C^2 + 4 N C F + 4 N T C + 7 B H T^2 + 21 N C + (1 + a) N F + 8 N
    pooler      2 B C^2 + 2 B C
    with k the embedding terms summed (3, or 2 without token types), a the activation's
    FLOPs per element and S = len(encoder_steps(config)) steps."""
    B, T = batch, length
    N, C, F, H = B * T, config.hidden_size, config.intermediate_size, config.num_attention_heads
    E = config.embedding_size or C
    k = 2 if config.type_vocab_size == 0 else 3
    a = ACTIVATION_FLOPS[config.hidden_act]
    S = len(encoder_steps(config))
    embeddings = (k - 1) * N * E + N * (7 * E + 4)
    if config.model_type == "albert":
        embeddings += 2 * N * E * C + N * C
    step = (
        8 * N * C**2 + 4 * N * C * F + 4 * N * T * C + 7 * B * H * T**2
        + 21 * N * C + (1 + a) * N * F + 8 * N
    )  # fmt: skip
    pooled = has_pooler(config) if pooler is None else pooler
    return embeddings + S * step + (2 * B * C**2 + 2 * B * C if pooled else 0)


def forward_bytes(
    config, batch: int, length: int, itemsize: int = 4, weight_itemsize: int = 4, pooler=None
) -> int:
    """The closed form of sum(op.bytes for op in forward_ops(...)) without pruned heads
    (docs/explain.md), with s = itemsize, w = weight_itemsize (float weights, or 1 for int8
    weights with a scale per output row, the word table included) and sigma the scale bytes
    per output row (SCALE_BYTES for int8, 0 for float weights):

    embeddings  (w + s) N E + sigma N + (k - 1) 2 s N E + s (k + 1) N E + s (2 N E + 2 E)
                [+ s N (E + C) + w E C + (sigma + s) C for ALBERT's projection]
    each step   s (24 N C + 4 N F + 6 B H T^2 + N) + w (4 C^2 + 2 C F)
                + (sigma + s) (5 C + F) + 4 s C
    pooler      s (2 B C + C) + w C^2 + sigma C + 2 s B C"""
    B, T = batch, length
    N, C, F, H = B * T, config.hidden_size, config.intermediate_size, config.num_attention_heads
    E = config.embedding_size or C
    s, w = itemsize, weight_itemsize
    sigma = SCALE_BYTES if w == 1 else 0
    k = 2 if config.type_vocab_size == 0 else 3
    S = len(encoder_steps(config))
    embeddings = (w + s) * N * E + sigma * N + (k - 1) * 2 * s * N * E  # word; type, position
    embeddings += s * (k + 1) * N * E + s * (2 * N * E + 2 * E)  # sum, LayerNorm
    if config.model_type == "albert":
        embeddings += s * N * (E + C) + w * E * C + (sigma + s) * C
    step = (
        s * (24 * N * C + 4 * N * F + 6 * B * H * T**2 + N)
        + w * (4 * C**2 + 2 * C * F) + (sigma + s) * (5 * C + F) + 4 * s * C
    )  # fmt: skip
    pooled = has_pooler(config) if pooler is None else pooler
    pooler_bytes = s * (2 * B * C + C) + w * C**2 + sigma * C + 2 * s * B * C if pooled else 0
    return embeddings + S * step + pooler_bytes
