"""Which token plays which role (unk, cls, sep, pad, mask) in a tokenizer.

A folder can name its special tokens in tokenizer_config.json or special_tokens_map.json; when it
does not, the tokenizer's own structure says (the model's unk token, the post-processor's first
and last tokens), and failing that the usual names of BERT and RoBERTa.
"""

import json

ROLES = ("unk", "cls", "sep", "pad", "mask")
# Names a special token usually has: BERT/ALBERT first, then RoBERTa/ALBERT. Only used when neither
# the config files nor the tokenizer's own structure say which token plays the role.
USUAL_NAMES = {
    "unk": ("[UNK]", "<unk>"),
    "cls": ("[CLS]", "<s>"),
    "sep": ("[SEP]", "</s>"),
    "pad": ("[PAD]", "<pad>"),
    "mask": ("[MASK]", "<mask>"),
}


def find_special_tokens(backend, given) -> dict:
    """{role: token or None} for unk/cls/sep/pad/mask.

    In order: the token `given` for the role, then what the tokenizer itself says (the model's
    unk token, the padding's pad token, the post-processor's first and last special tokens), then
    the usual names. A token that is not in the vocabulary gives None.
    """
    state = json.loads(backend.to_str())
    found = dict.fromkeys(ROLES)
    model = state.get("model") or {}
    found["unk"] = model.get("unk_token")
    if model.get("type") == "Unigram" and model.get("unk_id") is not None:
        found["unk"] = model["vocab"][model["unk_id"]][0]  # Unigram stores [token, score] pairs
    found["pad"] = (state.get("padding") or {}).get("pad_token")
    found.update(_template_tokens(state.get("post_processor")))
    for role in ROLES:
        found[role] = given.get(role) or found[role]
        if found[role] is None:  # fall back on the usual names
            found[role] = next(
                (t for t in USUAL_NAMES[role] if backend.token_to_id(t) is not None), None
            )
        if found[role] is not None and backend.token_to_id(found[role]) is None:
            found[role] = None
    return found


def _template_tokens(processor) -> dict:
    """cls and sep tokens named by a tokenizer.json post_processor (dict), if it names them."""
    if not processor:
        return {}
    kind = processor.get("type")
    if kind in ("BertProcessing", "RobertaProcessing"):
        return {"cls": processor["cls"][0], "sep": processor["sep"][0]}  # [token, id] pairs
    if kind == "Sequence":
        found = {}
        for inner in processor.get("processors", []):
            found.update(_template_tokens(inner))
        return found
    if kind == "TemplateProcessing":
        single = processor.get("single", [])
        found = {}
        if single and "SpecialToken" in single[0]:
            found["cls"] = single[0]["SpecialToken"]["id"]
        if single and "SpecialToken" in single[-1]:
            found["sep"] = single[-1]["SpecialToken"]["id"]
        return found
    return {}


def token_text(value):
    """A special token from a config file: a str, or an AddedToken dict with "content"."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None
