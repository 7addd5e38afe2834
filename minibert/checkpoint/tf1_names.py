"""Google's TF1 names for BERT and ALBERT -> Hugging Face names, and their config files.

google-research/bert and google-research/albert name variables by TensorFlow scope:

    bert/encoder/layer_3/attention/self/query/kernel                          BERT
    bert/encoder/transformer/group_0/inner_group_1/attention_1/self/query/kernel   ALBERT

A kernel is stored (in, out) for `x @ kernel`; PyTorch's Linear stores (out, in), so kernels
are transposed. LayerNorm's gamma/beta are weight/bias, the heads' output_weights/output_bias
are weight/bias (output_weights is already (out, in)). A checkpoint written during training
also holds Adam's slots (<name>/adam_m, <name>/adam_v) and global_step: reported as ignored.
"""

import re

# path components (or whole names) that mark training state rather than weights
TRAINING_STATE = {
    "adam_m": "Adam's first-moment slot",
    "adam_v": "Adam's second-moment slot",
    "AdamWeightDecayOptimizer": "optimizer slot",
    "AdamWeightDecayOptimizer_1": "optimizer slot",
    "global_step": "training step counter",
    "beta1_power": "Adam's step state",
    "beta2_power": "Adam's step state",
    "loss_scale": "mixed-precision loss scale",
    "good_steps": "mixed-precision loss scale",
}
# the last component of a TF name -> (the HF parameter, whether to transpose)
PARAMETER_NAMES = {
    "kernel": ("weight", True),
    "bias": ("bias", False),
    "gamma": ("weight", False),
    "beta": ("bias", False),
    "output_weights": ("weight", False),
    "output_bias": ("bias", False),
}
# the heads of run_pretraining.py, run_classifier.py and run_squad.py
BERT_HEADS = {
    "cls/predictions/transform/dense": "cls.predictions.transform.dense",
    "cls/predictions/transform/LayerNorm": "cls.predictions.transform.LayerNorm",
    "cls/predictions": "cls.predictions",
    "cls/seq_relationship": "cls.seq_relationship",
    "cls/squad": "qa_outputs",
}
ALBERT_HEADS = {
    "cls/predictions/transform/dense": "predictions.dense",
    "cls/predictions/transform/LayerNorm": "predictions.LayerNorm",
    "cls/predictions": "predictions",
    "cls/seq_relationship": "sop_classifier.classifier",
    "cls/squad": "qa_outputs",
}
# inside an ALBERT layer: TF scope -> HF module
ALBERT_LAYER = {
    "attention_1/self/query": "attention.query",
    "attention_1/self/key": "attention.key",
    "attention_1/self/value": "attention.value",
    "attention_1/output/dense": "attention.dense",
    "LayerNorm": "attention.LayerNorm",
    "ffn_1/intermediate/dense": "ffn",
    "ffn_1/intermediate/output/dense": "ffn_output",
    "LayerNorm_1": "full_layer_layer_norm",
}
EMBEDDING_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")
HEAD_SCOPES = ("predictions", "seq_relationship", "squad")
ALBERT_LAYER_RE = re.compile(r"encoder/transformer/group_(\d+)/inner_group_(\d+)/(.+)")
BERT_LAYER_RE = re.compile(r"encoder/layer_(\d+)/(.+)")


def tf1_family(names) -> str:
    """ "albert" when the variables are grouped the ALBERT way, else "bert"."""
    return "albert" if any("/transformer/group_" in n for n in names) else "bert"


def training_state(name: str) -> str | None:
    """Why a variable is training state and not a weight, or None for a weight."""
    for part in name.split("/"):
        if part in TRAINING_STATE:
            return TRAINING_STATE[part]
    return None


def hf_name(name: str, family: str) -> tuple[str | None, bool]:
    """(Hugging Face name, transpose?) of a TF variable; (None, False) when no name fits."""
    name = name.removeprefix("module/")  # TF-Hub modules prefix every variable
    scope, _, last = name.rpartition("/")
    if scope.endswith("embeddings") and last in EMBEDDING_TABLES:  # tables have no suffix
        scope, last, parameter, transpose = name, "", "weight", False
    elif last in PARAMETER_NAMES:
        parameter, transpose = PARAMETER_NAMES[last]
    elif not scope and last in ("output_weights", "output_bias"):
        parameter, transpose = PARAMETER_NAMES[last]
    else:
        return None, False
    module = _module(scope, family)
    if module is None:
        return None, False
    return f"{module}.{parameter}", transpose


def _module(scope: str, family: str) -> str | None:
    """The HF module path of a TF scope (without the parameter)."""
    prefix = "albert" if family == "albert" else "bert"
    if scope == "" or scope == "output":  # run_classifier.py's top-level output_weights/bias
        return "classifier"
    heads = ALBERT_HEADS if family == "albert" else BERT_HEADS
    if scope in heads:
        return heads[scope]
    if not scope.startswith("bert/"):
        return None
    body = scope.removeprefix("bert/")
    if body.startswith("embeddings/"):
        return f"{prefix}.{body.replace('/', '.')}"
    if body == "pooler/dense":
        return f"{prefix}.pooler" if family == "albert" else f"{prefix}.pooler.dense"
    if family == "albert":
        if body == "encoder/embedding_hidden_mapping_in":
            return "albert.encoder.embedding_hidden_mapping_in"
        match = ALBERT_LAYER_RE.fullmatch(body)
        if match is None or match.group(3) not in ALBERT_LAYER:
            return None
        group, inner, part = match.groups()
        return (
            f"albert.encoder.albert_layer_groups.{group}.albert_layers.{inner}.{ALBERT_LAYER[part]}"
        )
    match = BERT_LAYER_RE.fullmatch(body)
    if match is None:
        return None
    layer, part = match.groups()
    return f"bert.encoder.layer.{layer}.{part.replace('/', '.')}"


# --- bert_config.json / albert_config.json ------------------------------------------------------
# google-research/albert's switches for layer variants transformers (and we) do not implement
ALBERT_VARIANTS = {
    "net_structure_type": 0,
    "layers_to_keep": [],
    "gap_size": 0,
    "num_memory_blocks": 0,
    "down_scale_factor": 1,
}


def hf_config(google: dict, family: str, shapes: dict) -> dict:
    """The config.json transformers would write for a Google config file and the variables the
    checkpoint stores: its keys are HF's BERT keys already; we add model_type and the class
    whose heads the checkpoint holds (pretraining, masked LM, classifier or the bare model).
    transformers reads hidden_act "gelu" as the erf GELU; Google's TF code used the tanh
    approximation, and we follow transformers, whose converted models are the reference."""
    for key, plain in ALBERT_VARIANTS.items() if family == "albert" else ():
        if google.get(key, plain) != plain:
            raise NotImplementedError(
                f"albert_config.json has {key}={google[key]!r}; only {plain!r} (the released "
                f"ALBERT models) is implemented"
            )
    config = {k: v for k, v in google.items() if k not in ALBERT_VARIANTS}
    config["model_type"] = family
    config["architectures"] = [_architecture(family, set(shapes))]
    if config["architectures"][0].endswith("SequenceClassification"):
        config["num_labels"] = int(shapes["output_weights"][0])  # (labels, C)
    return config


def _architecture(family: str, names: set) -> str:
    stem = "Albert" if family == "albert" else "Bert"
    has = {head: any(n.startswith(f"cls/{head}/") for n in names) for head in HEAD_SCOPES}
    if has["predictions"] and has["seq_relationship"]:
        return f"{stem}ForPreTraining"
    if has["predictions"]:
        return f"{stem}ForMaskedLM"
    if has["squad"]:
        return f"{stem}ForQuestionAnswering"
    if "output_weights" in names:
        return f"{stem}ForSequenceClassification"
    return f"{stem}Model"
