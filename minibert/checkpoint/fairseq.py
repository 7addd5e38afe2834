"""fairseq RoBERTa checkpoints (model.pt) -> Hugging Face names and config.

fairseq saves a training checkpoint with torch.save: a dict whose "model" is the state dict
and whose "args" (an argparse.Namespace, older releases) or "cfg" (a dict, newer ones, with
the model's settings under "model") holds the architecture. It is read through the restricted
unpickler (pytorch_pickle.py); "optimizer_history", "extra_state" and "last_optimizer_state"
are training state and are not used.

The names follow transformers' convert_roberta_original_pytorch_checkpoint_to_pytorch.py.
fairseq >= 0.10 calls the body `encoder.sentence_encoder`, older releases `decoder.
sentence_encoder`, and the oldest keep q, k and v in one `in_proj_weight` (3C, C), split here
in that order. fairseq has no token types: like transformers' converter, we give RoBERTa's
one-row token-type table zeros.
"""

import re
from argparse import Namespace

import numpy as np

from ..errors import CheckpointError
from .pytorch_pickle import read_torch_file

FAIRSEQ_NAME = "model.pt"
EMBEDDINGS = {
    "embed_tokens.weight": "roberta.embeddings.word_embeddings.weight",
    "embed_positions.weight": "roberta.embeddings.position_embeddings.weight",
    "layernorm_embedding.weight": "roberta.embeddings.LayerNorm.weight",
    "layernorm_embedding.bias": "roberta.embeddings.LayerNorm.bias",
    "emb_layer_norm.weight": "roberta.embeddings.LayerNorm.weight",  # fairseq < 0.10
    "emb_layer_norm.bias": "roberta.embeddings.LayerNorm.bias",
}
LAYER = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.output.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "final_layer_norm": "output.LayerNorm",
}
LM_HEAD = {
    "lm_head.dense.weight": "lm_head.dense.weight",
    "lm_head.dense.bias": "lm_head.dense.bias",
    "lm_head.layer_norm.weight": "lm_head.layer_norm.weight",
    "lm_head.layer_norm.bias": "lm_head.layer_norm.bias",
    "lm_head.weight": "lm_head.decoder.weight",  # tied to embed_tokens
    "lm_head.bias": "lm_head.bias",
}
NO_NAME = "no Hugging Face name"
TOKEN_TYPES = "roberta.embeddings.token_type_embeddings.weight"
LAYER_RE = re.compile(r"layers\.(\d+)\.(.+)\.(weight|bias)")
HEAD_RE = re.compile(r"classification_heads\.([^.]+)\.(dense|out_proj)\.(weight|bias)")


def read_fairseq(file) -> tuple[dict, dict]:
    """(state dict of numpy arrays, the model's settings as a dict) of a fairseq model.pt."""
    saved = read_torch_file(file, records=True)
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict):
        raise CheckpointError(f"{file} is not a fairseq checkpoint (no 'model' state dict)")
    state = saved["model"]
    if not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{file}: the 'model' entry holds more than tensors")
    settings = model_settings(saved)
    if settings is None:
        raise CheckpointError(f"{file} names no architecture (neither 'args' nor 'cfg')")
    return dict(state), settings


def model_settings(saved: dict) -> dict | None:
    """The model's settings: "args" (older fairseq), else "cfg"["model"] (fairseq >= 0.10,
    a dict, or a Namespace for architectures registered the old way)."""
    settings = saved.get("args")
    if settings is None and isinstance(saved.get("cfg"), dict):
        settings = saved["cfg"].get("model")
    if isinstance(settings, Namespace):
        settings = vars(settings)
    return settings if isinstance(settings, dict) else None


def fairseq_name(name: str) -> tuple[str | None, str]:
    """(Hugging Face name, why not) of a fairseq tensor: a name, or None and the reason."""
    body = re.sub(r"^(encoder|decoder)\.", "", name)
    if name.endswith(".version") or name.endswith("_float_tensor"):
        return None, "fairseq's bookkeeping buffer"
    if body.startswith("sentence_encoder."):
        part = body.removeprefix("sentence_encoder.")
        if part in EMBEDDINGS:
            return EMBEDDINGS[part], ""
        match = LAYER_RE.fullmatch(part)
        if match and match.group(2) in LAYER:
            layer, module, kind = match.groups()
            return f"roberta.encoder.layer.{layer}.{LAYER[module]}.{kind}", ""
    if body in LM_HEAD:
        return LM_HEAD[body], ""
    match = HEAD_RE.fullmatch(body)
    if match:
        _, module, kind = match.groups()
        return f"classifier.{module}.{kind}", ""
    return None, NO_NAME


def split_in_proj(state: dict) -> dict:
    """Old fairseq keeps q, k, v in one in_proj_weight (3C, C): split it in that order."""
    out = {}
    for name, array in state.items():
        match = re.fullmatch(r"(.+)\.self_attn\.in_proj_(weight|bias)", name)
        if match is None:
            out[name] = array
            continue
        prefix, kind = match.groups()
        for part, piece in zip(("q", "k", "v"), np.split(array, 3), strict=True):
            out[f"{prefix}.self_attn.{part}_proj.{kind}"] = piece
    return out


def fairseq_to_hf(state: dict) -> tuple[dict, list[str]]:
    """({HF name: array}, the bookkeeping buffers left out) of a fairseq RoBERTa state dict;
    a tensor with no HF name keeps its own, so that loading reports it as not used."""
    state = split_in_proj(state)
    heads = sorted({m.group(1) for m in map(HEAD_RE.search, state) if m})
    if len(heads) > 1:
        raise CheckpointError(
            f"model.pt has {len(heads)} classification heads ({', '.join(heads)}); a Hugging "
            f"Face model has one"
        )
    tensors, left = {}, []
    for name, array in state.items():
        hf, reason = fairseq_name(name)
        if hf is not None:
            tensors[hf] = array
        elif reason == NO_NAME:  # kept under its own name: the loader reports it as not used
            tensors[name] = array
        else:
            left.append(name)
    word = tensors.get(EMBEDDINGS["embed_tokens.weight"])
    if word is None:
        raise CheckpointError("model.pt holds no sentence_encoder.embed_tokens.weight")
    tensors[TOKEN_TYPES] = np.zeros((1, word.shape[1]), dtype=word.dtype)  # no token types
    return tensors, left


def hf_config(settings: dict, tensors: dict) -> dict:
    """The config.json of the converted model: sizes from the tensors, the rest from args."""
    if settings.get("encoder_normalize_before"):
        raise NotImplementedError(
            "model.pt has encoder_normalize_before=True (pre-LayerNorm); RoBERTa is post-LN"
        )
    heads = settings.get("encoder_attention_heads")
    if not isinstance(heads, int):
        raise CheckpointError("model.pt's args lack encoder_attention_heads")
    word = tensors[EMBEDDINGS["embed_tokens.weight"]]
    layers = {int(m.group(1)) for m in map(re.compile(r"layer\.(\d+)\.").search, tensors) if m}
    ffn = tensors.get("roberta.encoder.layer.0.intermediate.dense.weight")
    positions = tensors.get(EMBEDDINGS["embed_positions.weight"])
    if ffn is None or positions is None:
        raise CheckpointError("model.pt lacks the first layer or the position table")
    classifier = tensors.get("classifier.out_proj.weight")
    if classifier is not None:
        architecture = "RobertaForSequenceClassification"
    elif "lm_head.dense.weight" in tensors:
        architecture = "RobertaForMaskedLM"
    else:
        architecture = "RobertaModel"
    config = {
        "model_type": "roberta",
        "architectures": [architecture],
        "vocab_size": int(word.shape[0]),
        "hidden_size": int(word.shape[1]),
        "num_hidden_layers": len(layers),
        "num_attention_heads": heads,
        "intermediate_size": int(ffn.shape[0]),
        "max_position_embeddings": int(positions.shape[0]),
        "hidden_act": settings.get("activation_fn", "gelu"),
        "hidden_dropout_prob": settings.get("dropout", 0.1),
        "attention_probs_dropout_prob": settings.get("attention_dropout", 0.1),
        "type_vocab_size": 1,
        "layer_norm_eps": 1e-5,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }
    if classifier is not None:
        config["num_labels"] = int(classifier.shape[0])
    return config
