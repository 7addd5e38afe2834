"""Attention-head pruning: how much each head matters, and removing heads for real.

Michel et al. 2019 ("Are Sixteen Heads Really Better than One?") give every head h of every
layer a gate xi_h that multiplies its output (transformers' head_mask, all ones), and score the
head by how much the loss moves when the gate moves:

    I_h = sum over batches of | d loss / d xi_h |          (at xi = 1)

then divide each layer's scores by their L2 norm, so that layers compare. minibert's own backward
gives the gradient (nn.SelfAttention.backward sets it); `mask_gradient` collects it and
`head_importance` sums it over a data sample.

`prune_heads(model, {layer: [heads]})` then deletes heads as transformers 4's prune_heads does:
head h owns rows h*D .. (h+1)*D of the q, k and v projections (and their biases) and the same
columns of the output projection, so those rows and columns go, the matrices shrink, and the
model runs fewer, cheaper heads. Heads keep their original numbers: pruning again names heads as
the unpruned model did, and the config's pruned_heads (saved in config.json) grows, so that
transformers 4 and minibert.load rebuild the smaller matrices from the folder.

Layers are numbered as model.encoder.layers (for ALBERT, the shared layers: group *
inner_group_num + inner index, as transformers numbers them). Shapes: L layers, H heads, D
head width.
"""

import numpy as np

from ..errors import InputError


def prune_heads(model, heads_to_prune: dict):
    """Remove the listed heads ({layer: [head numbers]}) from the model, in place; returns it.

    Heads already pruned are skipped, as in transformers. A layer must keep at least one head:
    transformers 4 accepts pruning all of a layer's heads but its forward then fails, so this
    refuses. Prune before quantize(): int8 matrices are not cut."""
    encoder = model.encoder
    H = model.config.num_attention_heads
    if not isinstance(heads_to_prune, dict):
        raise InputError(
            f"prune_heads takes {{layer: [heads]}}, got {type(heads_to_prune).__name__}"
        )
    plan = {}
    for layer, heads in heads_to_prune.items():
        _check_index("layer", layer, len(encoder.layers))
        if isinstance(heads, (int, np.integer)) or not hasattr(heads, "__iter__"):
            raise InputError(f"the heads of layer {layer} must be a list, got {heads!r}")
        heads = list(heads)
        for head in heads:
            _check_index(f"head of layer {layer}", head, H)
        attn = encoder.layers[layer].attn
        if "weight_scale" in attn.q.params:
            raise InputError("prune_heads needs a float model: prune first, then quantize()")
        removed = set(int(h) for h in heads) & set(attn.kept_heads)
        if removed and removed == set(attn.kept_heads):
            raise InputError(
                f"pruning heads {sorted(heads)} would leave layer {layer} with no head "
                f"(it keeps {list(attn.kept_heads)}); drop the layer with keep_layers instead"
            )
        if removed:
            plan[int(layer)] = removed
    pruned = {k: set(v) for k, v in model.config.pruned_heads.items()}
    for layer, removed in plan.items():
        _remove_heads(encoder.layers[layer].attn, removed)
        pruned[layer] = pruned.get(layer, set()) | removed
    model.config = model.config.replace(
        pruned_heads={k: tuple(sorted(v)) for k, v in pruned.items()}
    )
    return model


def _remove_heads(attn, removed: set) -> None:
    """Cut heads `removed` (original numbers) out of one SelfAttention's matrices and gradients."""
    D = attn.head_dim
    kept = [h for h in attn.kept_heads if h not in removed]
    rows = np.concatenate([np.arange(i * D, (i + 1) * D) for i, h in enumerate(attn.kept_heads)
                           if h not in removed])  # fmt: skip
    for linear in (attn.q, attn.k, attn.v):  # head h's outputs: rows of W (O, I) and of b
        for store in (linear.params, linear.grads):
            for key in [k for k in ("weight", "bias") if k in store]:
                store[key] = np.ascontiguousarray(store[key][rows])
    for store in (attn.o.params, attn.o.grads):  # head h's inputs: columns of W (C, H*D)
        if "weight" in store:
            store["weight"] = np.ascontiguousarray(store["weight"][:, rows])
    attn.kept_heads = tuple(kept)
    attn.num_heads = len(kept)


def mask_gradient(model) -> np.ndarray:
    """d loss / d xi after model.backward() of a forward that ran with a head_mask, one gate per
    (layer, head) as prune_heads numbers them: (layers, H), zero for pruned heads.

    For BERT, DistilBERT and RoBERTa this is the gradient with respect to transformers' (L, H)
    head_mask. An ALBERT layer runs at several steps; its gate multiplies the head at all of
    them, so its gradient is the sum of the steps' (chain rule)."""
    encoder = model.encoder
    if encoder.head_mask_grad is None:
        raise RuntimeError(
            "no head-mask gradient: run a training forward with head_mask=, then backward()"
        )
    H = model.config.num_attention_heads
    grad = np.zeros((len(encoder.layers), H), encoder.head_mask_grad.dtype)
    np.add.at(grad, encoder.schedule, encoder.head_mask_grad)
    return grad


def head_importance(model, batches, normalize: bool = True, loss_gradient=None) -> np.ndarray:
    """Michel et al.'s importance of every head, (layers, H), from a data sample.

    `batches`: an iterable of dicts of model keyword arguments that include the task's targets
    (labels=..., or start_positions= and end_positions=), so that the model computes its loss.
    A model without a task head (a sentence encoder) takes loss_gradient instead: a function
    of the forward's output that returns model.backward's `grads` (e.g. {"last_hidden_state":
    d loss / d hidden}) for a loss of the caller's.
    Each batch adds |d loss / d xi| (batches of one example give the paper's per-example sum).
    normalize divides each layer by its L2 norm, as the paper does. Dropout stays off; the
    model returns to its mode, with its parameter gradients zeroed. Pruned heads score 0."""
    was_training, dropout = model.training, model.dropout_on
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    importance = np.zeros((len(model.encoder.layers), H), np.float64)
    count = 0
    model.train(dropout=False)
    try:
        for batch in batches:
            if "head_mask" in batch:
                raise InputError("head_importance sets the head_mask itself; leave it out")
            out = model(**batch, head_mask=np.ones((L, H), model.dtype))
            if loss_gradient is not None:
                model.backward(loss_gradient(out))
            elif out.loss is None:
                raise InputError(
                    "head_importance needs batches with the task's targets (labels=...) "
                    "or a loss_gradient"
                )
            else:
                model.backward()
            importance += np.abs(mask_gradient(model))
            count += 1
    finally:
        model.train(was_training, dropout=dropout)
        model.zero_grad()
    if count == 0:
        raise InputError("head_importance needs at least one batch")
    if normalize:  # each layer to unit L2 norm (the 1e-20 guards a layer of zeros)
        importance /= np.sqrt((importance**2).sum(axis=-1, keepdims=True)) + 1e-20
    return importance


def least_important(importance, fraction: float) -> dict:
    """{layer: [heads]} of the `fraction` of all heads with the lowest scores (over the whole
    model, as Michel et al. prune), each layer keeping at least its best head; pass it to
    prune_heads. Heads scoring exactly 0 (pruned ones) are not chosen again."""
    scores = np.asarray(importance, np.float64)
    if scores.ndim != 2:
        raise InputError(f"importance must be (layers, heads), got shape {scores.shape}")
    if not 0.0 <= fraction <= 1.0:
        raise InputError(f"fraction must be between 0 and 1, got {fraction}")
    best = scores.argmax(axis=1)
    layers, H = scores.shape
    candidates = [
        (scores[i, h], i, h)
        for i in range(layers)
        for h in range(H)
        if h != best[i] and scores[i, h] != 0
    ]
    chosen = sorted(candidates)[: int(round(fraction * scores.size))]
    plan = {}
    for _, layer, head in sorted(chosen, key=lambda c: (c[1], c[2])):
        plan.setdefault(int(layer), []).append(int(head))
    return plan


def _check_index(what: str, value, size: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"a {what} must be an integer, got {value!r}")
    if not 0 <= value < size:
        raise InputError(f"{what} {value} is out of range: the model has {size} (0 to {size - 1})")
