"""BERT's WordPiece tokenizer built from a bare vocab.txt, as Hugging Face's BertTokenizerFast
builds it, and tokenizer_config.json's BERT options applied to a saved tokenizer.json."""

import json

import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from ..errors import CheckpointError
from ..wordpiece import read_vocab
from .special_tokens import ROLES, USUAL_NAMES

GENERIC_CLASS = "PreTrainedTokenizerFast"  # Hugging Face's tokenizer class for any tokenizer.json


def bert_from_vocab(file, config, given):
    """Build BERT's tokenizer from vocab.txt as Hugging Face's BertTokenizerFast does."""
    vocab = read_vocab(file)
    special = {role: given.get(role, USUAL_NAMES[role][0]) for role in ROLES}
    for role in ("unk", "cls", "sep"):  # needed to build the model and the [CLS]/[SEP] template
        if special[role] not in vocab:
            raise CheckpointError(f"{file} has no {special[role]} token ({role}_token)")
    special = {role: (token if token in vocab else None) for role, token in special.items()}
    backend = tokenizers.Tokenizer(
        models.WordPiece(vocab, unk_token=special["unk"], max_input_chars_per_word=100)
    )
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"),
        lowercase=config.get("do_lower_case", True),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_token, sep_token = special["cls"], special["sep"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls_token} $A {sep_token}",
        pair=f"{cls_token} $A {sep_token} $B:1 {sep_token}:1",
        special_tokens=[(cls_token, vocab[cls_token]), (sep_token, vocab[sep_token])],
    )
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    # Hugging Face registers the special tokens as added tokens: written in the text, they are
    # matched before normalisation and kept whole.
    backend.add_special_tokens([t for t in dict.fromkeys(special.values()) if t is not None])
    return backend, special


def apply_bert_config(backend, config) -> None:
    """Let tokenizer_config.json's do_lower_case, strip_accents and tokenize_chinese_chars win
    over a BertNormalizer saved in tokenizer.json, as Hugging Face's BertTokenizerFast does."""
    state = json.loads(backend.normalizer.__getstate__()) if backend.normalizer else {}
    if state.get("type") != "BertNormalizer" or config.get("tokenizer_class") == GENERIC_CLASS:
        return  # Hugging Face's generic class takes tokenizer.json as it is
    names = {"lowercase": "do_lower_case", "strip_accents": "strip_accents"}
    names["handle_chinese_chars"] = "tokenize_chinese_chars"
    wanted = {key: config[name] for key, name in names.items() if name in config}
    if any(state[key] != value for key, value in wanted.items()):
        state.update(wanted)
        del state["type"]
        backend.normalizer = normalizers.BertNormalizer(**state)
