"""RoBERTa's byte-level BPE tokenizer built from vocab.json and merges.txt.

A folder saved before tokenizer.json existed holds only these two files (and perhaps
tokenizer_config.json). We build what Hugging Face's RobertaTokenizer builds from them: every
byte of the UTF-8 text is mapped to a printable character (ByteLevel), so no text is ever
unknown; the words are merged pair by pair in merges.txt's order (its first line may be a
"#version" comment); rows are framed as `<s> A </s>` and `<s> A </s></s> B </s>`.
add_prefix_space (tokenizer_config.json, default False) puts a space before the text, so that its
first word is split like a word in the middle of a sentence.
"""

import json

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, processors

from ..errors import CheckpointError
from .special_tokens import ROLES

# RobertaTokenizer's default special tokens
ROBERTA_SPECIAL_TOKENS = {
    "unk": "<unk>",
    "cls": "<s>",
    "sep": "</s>",
    "pad": "<pad>",
    "mask": "<mask>",
}


def roberta_from_files(vocab_file, merges_file, config, given):
    """(backend, {role: token or None}) from vocab.json and merges.txt; `given` names special
    tokens from the config files. A malformed file raises CheckpointError."""
    vocab = _read_vocab(vocab_file)
    merges = _read_merges(merges_file, vocab)
    special = {role: given.get(role, ROBERTA_SPECIAL_TOKENS[role]) for role in ROLES}
    for role in ("cls", "sep"):  # the <s> ... </s> frame needs both
        if special[role] not in vocab:
            raise CheckpointError(f"{vocab_file} has no {special[role]} token ({role}_token)")
    special = {role: (token if token in vocab else None) for role, token in special.items()}

    add_prefix_space = bool(config.get("add_prefix_space", False))
    backend = tokenizers.Tokenizer(
        models.BPE(
            vocab, merges, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False
        )
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    backend.decoder = decoders.ByteLevel()
    cls_token, sep_token = special["cls"], special["sep"]
    backend.post_processor = processors.RobertaProcessing(
        (sep_token, vocab[sep_token]),
        (cls_token, vocab[cls_token]),
        trim_offsets=bool(config.get("trim_offsets", True)),  # offsets leave out the spaces
        add_prefix_space=add_prefix_space,
    )
    return backend, special


def _read_vocab(file) -> dict:
    """vocab.json: {token: id} with distinct ids."""
    try:
        vocab = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from e
    if not isinstance(vocab, dict) or not vocab:
        raise CheckpointError(f"{file} must hold a JSON object of token -> id")
    for token, token_id in vocab.items():
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise CheckpointError(
                f"{file}: the id of {token!r} must be an int >= 0, got {token_id!r}"
            )
    if len(set(vocab.values())) != len(vocab):
        raise CheckpointError(f"{file} gives the same id to two tokens")
    return vocab


def _read_merges(file, vocab) -> list[tuple[str, str]]:
    """merges.txt: one "left right" pair a line, highest priority first; both halves and their
    concatenation must be tokens of the vocabulary."""
    try:
        lines = file.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {file}: {e}") from e
    merges = []
    for number, line in enumerate(lines, start=1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise CheckpointError(f"{file} line {number} must be two tokens, got {line!r}")
        left, right = parts
        for token in (left, right, left + right):
            if token not in vocab:
                raise CheckpointError(f"{file} line {number}: {token!r} is not in vocab.json")
        merges.append((left, right))
    return merges
