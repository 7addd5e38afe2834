"""load_tokenizer: the tokenizer of a Hugging Face folder, from whichever files it has.

In Hugging Face's order of preference: tokenizer.json (any model the `tokenizers` library
saves), then vocab.json + merges.txt (RoBERTa's byte-level BPE), spiece.model (ALBERT's
sentencepiece Unigram, with the optional sentencepiece package), vocab.txt (BERT's WordPiece).
tokenizer_config.json and special_tokens_map.json name the special tokens and the options.
"""

import json
from pathlib import Path

import tokenizers

from ..errors import CheckpointError
from .bert_vocab import apply_bert_config, bert_from_vocab
from .byte_bpe import roberta_from_files
from .core import DEFAULT_MAX_LENGTH, Tokenizer
from .special_tokens import ROLES, find_special_tokens, token_text
from .spiece import albert_from_spiece


def load_tokenizer(path) -> Tokenizer:
    """Load the tokenizer of a Hugging Face folder (see the module docstring for the files).

    tokenizer_config.json (if present) gives the special tokens, model_max_length and the
    format's options: do_lower_case / strip_accents / tokenize_chinese_chars (vocab.txt),
    add_prefix_space / trim_offsets (vocab.json), do_lower_case / keep_accents (spiece.model).
    Truncation and padding saved in tokenizer.json are switched off: each call sets its own.
    Bad files raise CheckpointError.
    """
    folder = Path(path)
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise CheckpointError(f"tokenizer folder {folder} {problem}")
    config = read_json(folder / "tokenizer_config.json")
    given = {}  # role -> token named by the config files; tokenizer_config.json wins
    for source in (read_json(folder / "special_tokens_map.json"), config):
        given.update({r: token_text(source[f"{r}_token"]) for r in ROLES if f"{r}_token" in source})
    given = {role: token for role, token in given.items() if token is not None}

    if (folder / "tokenizer.json").is_file():
        file = folder / "tokenizer.json"
        read_json(file)  # a clear message for broken JSON before the library's own
        try:
            backend = tokenizers.Tokenizer.from_file(str(file))
        except Exception as e:
            raise CheckpointError(f"{file} is not a valid tokenizer.json: {e}") from e
        apply_bert_config(backend, config)
        special = find_special_tokens(backend, given)
        backend.no_truncation()  # after find_special_tokens, which reads the pad token there
        backend.no_padding()
    elif (folder / "vocab.json").is_file() or (folder / "merges.txt").is_file():
        for name in ("vocab.json", "merges.txt"):
            if not (folder / name).is_file():
                raise CheckpointError(f"{folder} has no {name}: a byte-level BPE needs both files")
        files = folder / "vocab.json", folder / "merges.txt"
        backend, special = roberta_from_files(*files, config, given)
        _add_special_tokens(backend, special, config)
    elif (folder / "spiece.model").is_file():
        backend, special = albert_from_spiece(folder / "spiece.model", config, given)
        _add_special_tokens(backend, special, config)
    elif (folder / "vocab.txt").is_file():
        backend, special = bert_from_vocab(folder / "vocab.txt", config, given)
    else:
        raise CheckpointError(
            f"{folder} has no tokenizer: neither tokenizer.json nor vocab.txt "
            "(nor vocab.json + merges.txt, nor spiece.model)"
        )

    max_length = config.get("model_max_length")
    sane = isinstance(max_length, int) and not isinstance(max_length, bool)
    if not (sane and 0 < max_length <= 1_000_000):  # HF writes 1e30 for "no limit"
        max_length = DEFAULT_MAX_LENGTH
    return Tokenizer(backend, special, max_length, config)


def _add_special_tokens(backend, special, config) -> None:
    """Register the roles' tokens as special added tokens, as Hugging Face does: written in a
    text, they are matched whole. tokenizer_config.json may say how, in added_tokens_decoder or
    as an AddedToken dict for the role (RoBERTa's <mask> takes the space before it: lstrip)."""
    entries = config.get("added_tokens_decoder")
    entries = list(entries.values()) if isinstance(entries, dict) else []
    entries += [config.get(f"{role}_token") for role in ROLES]  # an AddedToken dict, or a str
    described = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("content"), str):
            described.setdefault(entry["content"], entry)
    added = []
    for token in dict.fromkeys(t for t in special.values() if t is not None):
        entry = described.get(token, {})
        options = {k: bool(entry[k]) for k in ("lstrip", "rstrip", "single_word") if k in entry}
        normalized = bool(entry.get("normalized", False))
        added.append(tokenizers.AddedToken(token, normalized=normalized, special=True, **options))
    backend.add_special_tokens(added)


def read_json(file) -> dict:
    """The dict in a JSON file, {} if the file is missing; CheckpointError if it is malformed."""
    file = Path(file)
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{file} must hold a JSON object, got {type(data).__name__}")
    return data
