"""Vocabulary trimming: keep the word pieces a corpus uses, and cut the embedding table to them.

A small encoder spends most of its parameters on the word-embedding table (all-MiniLM-L6-v2:
30522 x 384 of 22.7M). A corpus in one language and domain uses a fraction of those rows, so
trim_vocabulary keeps

    every id the corpus's tokenization uses (at least min_count times),
    every special token (the tokenizer's added tokens and the ids config.json names),
    every single-character piece, and for WordPiece the "##" + one character pieces,

renumbers them in their old order (new id i is old id kept[i]), and writes a folder in which
the tokenizer (tokenizer.json, vocab.txt, tokenizer_config.json), the word-embedding rows (int8
rows with their per-row scales too), an MLM decoder and its bias, and config.json's vocab_size
and *_token_id fields all use the new ids.

Why the pieces stay the same: WordPiece splits a word greedily, taking at each position the
longest piece the vocabulary has. If every piece of a word survived, no longer piece can appear
(the new vocabulary is a subset of the old), so the trimmed tokenizer picks the same pieces, and
the model sees the same embedding rows: its output is unchanged. Fallback for a word that lost a
piece: the greedy search takes shorter surviving pieces, down to single characters, which are
all kept; a word becomes [UNK] only where the old vocabulary already lacked one of its characters
(or its "##" form, when it ends a piece). Only WordPiece tokenizers are trimmed; BPE and Unigram
merge or score pieces, and removing one changes how other words split.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import read_weights
from ..checkpoint.files import CONFIG_NAME, weight_bytes
from ..checkpoint.writing import write_json, write_safetensors
from ..errors import CheckpointError, InputError
from ..functional.pooling import l2_normalize
from ..sentence import SentenceEncoder
from ..tokenizer import load_tokenizer
from ..tokenizer.files import copy_tokenizer_files

# Checkpoint tensors with one row (or entry) per vocabulary id, by the end of their name:
# BERT's table and MLM decoder, DistilBERT's projector, and the per-row int8 scales (quant.py).
VOCABULARY_TENSORS = (
    "word_embeddings.weight",
    "word_embeddings.weight_scale",
    "predictions.decoder.weight",
    "predictions.decoder.weight_scale",
    "predictions.decoder.bias",
    "predictions.bias",
    "vocab_projector.weight",
    "vocab_projector.weight_scale",
    "vocab_projector.bias",
)
# Files beside the weights that trimming writes itself (copy_tokenizer_files copies the others)
TOKENIZER_OUTPUTS = ("tokenizer.json", "vocab.txt", "tokenizer_config.json")


@dataclass
class VocabularyTrim:
    """What trim_vocabulary did. kept_ids[i] is the old id of new id i (ascending).

    corpus_tokens counts the corpus's pieces (no special tokens), corpus_tokens_kept those whose
    piece survived; the sizes are the weight files' bytes (tokenizer files in tokenizer_bytes_*).
    """

    kept_ids: np.ndarray
    old_vocab_size: int
    corpus_tokens: int
    corpus_tokens_kept: int
    weight_bytes_before: int
    weight_bytes_after: int
    tokenizer_bytes_before: int
    tokenizer_bytes_after: int

    @property
    def new_vocab_size(self) -> int:
        return len(self.kept_ids)

    @property
    def coverage(self) -> float:
        """The share of the corpus's tokens that keep their piece (and so their embedding row)."""
        return self.corpus_tokens_kept / max(self.corpus_tokens, 1)

    def old_to_new(self) -> np.ndarray:
        """(old vocabulary size,) int64: the new id of each old id, -1 where it was dropped."""
        mapping = np.full(self.old_vocab_size, -1, np.int64)
        mapping[self.kept_ids] = np.arange(len(self.kept_ids))
        return mapping


def trim_vocabulary(model_path, texts, out_path, min_count: int = 1) -> VocabularyTrim:
    """Write a copy of the folder model_path into out_path with the vocabulary cut to the
    pieces texts use at least min_count times (plus special and single-character pieces).

    Works for float32 and int8 (minibert.quantize) folders with a WordPiece tokenizer
    (tokenizer.json or vocab.txt); other tokenizer types raise CheckpointError naming them.
    """
    model_path, out_path = Path(model_path), Path(out_path)
    texts = _check_texts(texts)
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
        raise InputError(f"min_count must be an integer >= 1, got {min_count!r}")
    if out_path.resolve() == model_path.resolve():
        raise InputError(f"out_path {out_path} is the model folder itself: give a new folder")
    config_file = model_path / CONFIG_NAME
    if not config_file.is_file():
        raise CheckpointError(f"{model_path} has no {CONFIG_NAME}")
    config = json.loads(config_file.read_text(encoding="utf-8"))

    tokenizer = load_tokenizer(model_path)
    spec = wordpiece_spec(model_path, tokenizer)
    vocab_size = len(spec["model"]["vocab"])
    if config.get("vocab_size") != vocab_size:
        raise CheckpointError(
            f"config.json's vocab_size {config.get('vocab_size')} differs from the tokenizer's "
            f"{vocab_size} pieces: trimming needs one row per piece"
        )
    counts = corpus_token_counts(tokenizer, texts, vocab_size)  # (V,)
    kept = kept_token_ids(spec, counts >= min_count, config)
    mapping = np.full(vocab_size, -1, np.int64)
    mapping[kept] = np.arange(len(kept))

    tensors = trimmed_weights(read_weights(model_path), kept, vocab_size)
    out_path.mkdir(parents=True, exist_ok=True)
    copy_tokenizer_files(model_path, out_path)
    write_safetensors(tensors, out_path / "model.safetensors")
    write_json(trimmed_config(config, mapping), out_path / CONFIG_NAME)
    new_spec = remap_tokenizer_spec(spec, mapping)
    (out_path / "tokenizer.json").write_text(json.dumps(new_spec, ensure_ascii=False, indent=2))
    pieces = sorted(new_spec["model"]["vocab"], key=new_spec["model"]["vocab"].get)
    (out_path / "vocab.txt").write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
    _write_tokenizer_config(model_path, out_path, mapping)
    return VocabularyTrim(
        kept_ids=kept,
        old_vocab_size=vocab_size,
        corpus_tokens=int(counts.sum()),
        corpus_tokens_kept=int(counts[kept].sum()),
        weight_bytes_before=weight_bytes(model_path),
        weight_bytes_after=weight_bytes(out_path),
        tokenizer_bytes_before=_tokenizer_bytes(model_path),
        tokenizer_bytes_after=_tokenizer_bytes(out_path),
    )


def wordpiece_spec(folder: Path, tokenizer) -> dict:
    """The folder's tokenizer.json as a dict (built from vocab.txt when there is none); a
    tokenizer whose model is not WordPiece raises CheckpointError naming its type."""
    file = folder / "tokenizer.json"
    if file.is_file():
        spec = json.loads(file.read_text(encoding="utf-8"))
    else:
        spec = json.loads(tokenizer.backend.to_str())
    kind = spec.get("model", {}).get("type")
    if kind != "WordPiece":
        raise CheckpointError(
            f"{folder}'s tokenizer is {kind!r}: vocabulary trimming supports WordPiece only "
            "(BPE merges and Unigram scores would change how other words split)"
        )
    return spec


def corpus_token_counts(tokenizer, texts, vocab_size: int) -> np.ndarray:
    """How often each id occurs in the texts' pieces, special tokens left out (no truncation).
    Shapes: -> (V,) int64"""
    encodings = tokenizer.backend.encode_batch(list(texts), add_special_tokens=False)
    ids = np.fromiter((i for e in encodings for i in e.ids), np.int64)
    return np.bincount(ids, minlength=vocab_size)


def kept_token_ids(spec: dict, used, config: dict) -> np.ndarray:
    """The old ids to keep, ascending: used (a (V,) bool mask), the added (special) tokens, the
    ids config.json names, and every single-character piece with or without the continuation
    prefix."""
    keep = np.asarray(used, bool).copy()
    model = spec["model"]
    prefix = model.get("continuing_subword_prefix", "##")
    for piece, index in model["vocab"].items():
        bare = piece[len(prefix) :] if piece.startswith(prefix) else piece
        if len(bare) == 1 or len(piece) == 1:
            keep[index] = True
    keep[model["vocab"][model["unk_token"]]] = True
    for token in spec.get("added_tokens") or []:
        keep[token["id"]] = True
    for index in _config_token_ids(config).values():
        if 0 <= index < len(keep):
            keep[index] = True
    return np.flatnonzero(keep)


def trimmed_weights(tensors: dict, kept: np.ndarray, vocab_size: int) -> dict:
    """The checkpoint's tensors with the rows of each vocabulary tensor cut to kept, in order;
    the others unchanged (contiguous, ready to save)."""
    trimmed = {}
    found = False
    for name, array in tensors.items():
        array = np.asarray(array)
        if name.endswith(VOCABULARY_TENSORS):
            if array.shape[0] != vocab_size:
                raise CheckpointError(
                    f"{name} has {array.shape[0]} rows, expected one per piece ({vocab_size})"
                )
            array = array[kept]
            found = True
        trimmed[name] = np.ascontiguousarray(array)
    if not found:
        raise CheckpointError("the checkpoint has no word_embeddings.weight to trim")
    return trimmed


def trimmed_config(config: dict, mapping: np.ndarray) -> dict:
    """config.json with vocab_size and every *_token_id renumbered (mapping: old -> new id)."""
    config = dict(config)
    config["vocab_size"] = int((mapping >= 0).sum())
    for key, index in _config_token_ids(config).items():
        if 0 <= index < len(mapping):
            config[key] = int(mapping[index])
    return config


def remap_tokenizer_spec(spec: dict, mapping: np.ndarray) -> dict:
    """A tokenizer.json dict renumbered: the vocabulary (dropped pieces removed), the added
    tokens, the post-processor's special-token ids and the padding id."""
    spec = json.loads(json.dumps(spec))  # a deep copy
    vocab = spec["model"]["vocab"]
    spec["model"]["vocab"] = {
        piece: int(mapping[index]) for piece, index in vocab.items() if mapping[index] >= 0
    }
    for token in spec.get("added_tokens") or []:
        token["id"] = int(mapping[token["id"]])
    _remap_processor(spec.get("post_processor"), mapping)
    if spec.get("padding"):
        spec["padding"]["pad_id"] = int(mapping[spec["padding"]["pad_id"]])
    return spec


def _remap_processor(processor, mapping) -> None:
    """Renumber a post-processor's special tokens in place (Template, Bert, Sequence)."""
    if not processor:
        return
    for step in processor.get("processors") or []:  # a Sequence of processors
        _remap_processor(step, mapping)
    for entry in (processor.get("special_tokens") or {}).values():  # TemplateProcessing
        entry["ids"] = [int(mapping[i]) for i in entry["ids"]]
    for role in ("sep", "cls"):  # BertProcessing: [token, id]
        if isinstance(processor.get(role), list):
            processor[role][1] = int(mapping[processor[role][1]])


def _write_tokenizer_config(source: Path, target: Path, mapping) -> None:
    """tokenizer_config.json with added_tokens_decoder's id keys renumbered (if it has one)."""
    file = source / "tokenizer_config.json"
    if not file.is_file():
        return
    config = json.loads(file.read_text(encoding="utf-8"))
    decoder = config.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        config["added_tokens_decoder"] = {
            str(int(mapping[int(index)])): token
            for index, token in decoder.items()
            if mapping[int(index)] >= 0
        }
    write_json(config, target / "tokenizer_config.json")


def _config_token_ids(config: dict) -> dict:
    """config.json's pad_token_id, cls_token_id, ...: {key: id} for integer values."""
    return {
        key: value
        for key, value in config.items()
        if key.endswith("_token_id") and isinstance(value, int) and not isinstance(value, bool)
    }


def _check_texts(texts) -> list:
    if isinstance(texts, str):
        raise InputError("texts must be a list of strings, got one string")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a non-empty list of strings")
    return texts


def _tokenizer_bytes(folder: Path) -> int:
    """The bytes of the tokenizer files trimming rewrites (tokenizer.json, vocab.txt, ...)."""
    return sum(
        (folder / name).stat().st_size for name in TOKENIZER_OUTPUTS if (folder / name).is_file()
    )


def tokenization_agreement(original, trimmed, texts) -> dict:
    """How the trimmed tokenizer splits held-out texts, against the original.

    Returns {"token_survival": share of the original's pieces that the trimmed vocabulary
    has, "texts_identical": share of texts split into the same pieces, "identical": (N,) bool}.
    """
    texts = _check_texts(texts)
    kept_pieces = set(trimmed.backend.get_vocab())
    before = [e.tokens for e in original.backend.encode_batch(texts, add_special_tokens=False)]
    after = [e.tokens for e in trimmed.backend.encode_batch(texts, add_special_tokens=False)]
    total = sum(len(pieces) for pieces in before)
    survived = sum(piece in kept_pieces for pieces in before for piece in pieces)
    identical = np.array([a == b for a, b in zip(before, after, strict=True)])
    return {
        "token_survival": survived / max(total, 1),
        "texts_identical": float(identical.mean()),
        "identical": identical,
    }


def held_out_agreement(model_path, trimmed_path, texts, batch_size: int = 32) -> dict:
    """How the trimmed folder agrees with the untrimmed one on held-out texts: the tokenization
    (tokenization_agreement) and the sentence vectors (SentenceEncoder, the folder's pooling).

    Returns {"token_survival", "texts_identical", "mean_cosine" over all texts,
    "identical_min_cosine" over the texts split identically (1.0 up to float rounding; None
    without such texts), "changed_mean_cosine" over the others (None without them)}.
    """
    texts = _check_texts(texts)
    original, trimmed = SentenceEncoder(model_path), SentenceEncoder(trimmed_path)
    tokens = tokenization_agreement(original.tokenizer, trimmed.tokenizer, texts)
    before = original.encode(texts, batch_size=batch_size)  # (N, C)
    after = trimmed.encode(texts, batch_size=batch_size)  # (N, C)
    cosines = np.sum(l2_normalize(before) * l2_normalize(after), axis=1)  # (N,)
    identical = tokens["identical"]
    return {
        "token_survival": tokens["token_survival"],
        "texts_identical": tokens["texts_identical"],
        "mean_cosine": float(cosines.mean()),
        "identical_min_cosine": float(cosines[identical].min()) if identical.any() else None,
        "changed_mean_cosine": float(cosines[~identical].mean()) if (~identical).any() else None,
    }
