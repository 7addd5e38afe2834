"""Tokenizers: text in, integer ids out, as numpy arrays.

`load_tokenizer(path)` returns a `Tokenizer`, a thin wrapper of the Hugging Face `tokenizers`
library (Rust). It gives the same ids as Hugging Face's fast tokenizer for that folder. It reads
any tokenizer.json (BERT WordPiece, RoBERTa byte-level BPE, ALBERT Unigram), or builds BERT's
tokenizer from a bare vocab.txt. Beside it: `train_wordpiece` (a new BERT vocabulary from
text) and `copy_tokenizer_files` (the files a model folder needs beside its weights).
wordpiece.py writes BERT's WordPiece from scratch, to be read.

The file runs past 400 lines because a folder describes its tokenizer in three places that must
be read together (tokenizer.json, vocab.txt, and the config files naming the special tokens).
Shapes: B texts in the batch, T tokens per row after padding.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from .errors import CheckpointError
from .wordpiece import read_vocab

# BERT's position table has 512 rows; used when tokenizer_config.json gives no sane value.
DEFAULT_MAX_LENGTH = 512
ROLES = ("unk", "cls", "sep", "pad", "mask")
GENERIC_CLASS = "PreTrainedTokenizerFast"  # Hugging Face's tokenizer class for any tokenizer.json
# Names a special token usually has: BERT/ALBERT first, then RoBERTa/ALBERT. Only used when neither
# the config files nor the tokenizer's own structure say which token plays the role.
USUAL_NAMES = {
    "unk": ("[UNK]", "<unk>"),
    "cls": ("[CLS]", "<s>"),
    "sep": ("[SEP]", "</s>"),
    "pad": ("[PAD]", "<pad>"),
    "mask": ("[MASK]", "<mask>"),
}
BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # train_wordpiece's, in order
# What a tokenizer (or a sentence-transformers pooling setup) needs beside the weights
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)


class Encoding(dict):
    """What a Tokenizer call returns: input_ids, attention_mask, token_type_ids, np.int64 (B, T).

    Item access (enc["input_ids"]) and attribute access (enc.input_ids) both work.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Tokenizer:
    """A `tokenizers.Tokenizer` plus what it needs to batch: special tokens and a length limit.

    Build one with `load_tokenizer(folder)` or `Tokenizer.from_tokenizers(tok)`. The wrapped
    tokenizer is kept without truncation or padding; each call sets its own and then removes them,
    so one Tokenizer should not be called from several threads at once.
    """

    def __init__(self, backend, special_tokens, model_max_length=DEFAULT_MAX_LENGTH, config=None):
        self.backend = backend
        self.special_tokens = dict(special_tokens)  # role ("cls", "pad", ...) -> token or None
        self.model_max_length = model_max_length
        self.config = dict(config or {})  # tokenizer_config.json, kept for save()

    @classmethod
    def from_tokenizers(cls, tok, model_max_length=DEFAULT_MAX_LENGTH, special_tokens=None):
        """Wrap an in-memory `tokenizers.Tokenizer` (it is copied, not changed).

        special_tokens: optional {role: token} for roles among unk, cls, sep, pad, mask; the
        others are found from the tokenizer itself (its model, padding and post-processor).
        """
        backend = tokenizers.Tokenizer.from_str(tok.to_str())
        return cls(backend, _find_special_tokens(backend, special_tokens or {}), model_max_length)

    # Vocabulary.

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included: the model's embedding table needs this many."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def _role_id(self, role):
        token = self.special_tokens.get(role)
        return None if token is None else self.backend.token_to_id(token)

    pad_token_id = property(lambda self: self._role_id("pad"), doc="Id of the padding token.")
    cls_token_id = property(lambda self: self._role_id("cls"), doc="Id of [CLS] (RoBERTa: <s>).")
    sep_token_id = property(lambda self: self._role_id("sep"), doc="Id of [SEP] (RoBERTa: </s>).")
    mask_token_id = property(lambda self: self._role_id("mask"), doc="Id of the mask token.")
    unk_token_id = property(lambda self: self._role_id("unk"), doc="Id of the unknown token.")

    @property
    def special_ids(self) -> set:
        """Ids of every special token: the roles above plus the tokenizer's special added tokens."""
        ids = {self._role_id(role) for role in ROLES} - {None}
        for token_id, added in self.backend.get_added_tokens_decoder().items():
            if added.special:
                ids.add(token_id)
        return ids

    def convert_tokens_to_ids(self, tokens):
        """Id of one token, or a list of ids; a token outside the vocabulary gives the unk id."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(token) for token in tokens]

    def _token_to_id(self, token):
        if not isinstance(token, str):
            raise ValueError(f"tokens must be str, got {type(token).__name__}")
        token_id = self.backend.token_to_id(token)
        if token_id is None:
            token_id = self.unk_token_id
            if token_id is None:
                raise ValueError(
                    f"token {token!r} is not in the vocabulary, which has no unk token"
                )
        return token_id

    def convert_ids_to_tokens(self, ids):
        """Token of one id, or a list of tokens."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            return self.backend.id_to_token(self._check_ids([ids], "id")[0])
        return [self.backend.id_to_token(i) for i in self._check_ids(ids, "ids")]

    def _check_ids(self, ids, name) -> list:
        """A 1-D sequence of ids as a list of Python ints, each checked to be in the vocabulary."""
        if isinstance(ids, np.ndarray):
            if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
                raise ValueError(
                    f"{name} must be a 1-D integer array, got {ids.ndim}-D {ids.dtype} "
                    "(batch_decode takes a 2-D array)"
                )
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple)):
            raise ValueError(
                f"{name} must be a list or 1-D array of ints, got {type(ids).__name__}"
            )
        out = []
        for position, token_id in enumerate(ids):
            if isinstance(token_id, bool) or not isinstance(token_id, (int, np.integer)):
                kind = type(token_id).__name__
                raise ValueError(f"{name}[{position}] must be an int, got {kind}")
            if not 0 <= token_id < self.vocab_size:
                raise ValueError(
                    f"{name}[{position}] = {token_id} is not in the vocabulary, "
                    f"whose ids are 0 to {self.vocab_size - 1}"
                )
            out.append(int(token_id))
        return out

    # Text to ids and back.

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text, without special tokens, truncation or padding."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        return self.backend.encode(text, add_special_tokens=False).tokens

    def __call__(self, texts, text_pairs=None, padding=True, truncation=True, max_length=None):
        """Encode a batch (or one str) into arrays, with special tokens added.

        padding: True or "longest" pads to the longest row, "max_length" to max_length, False not at
            all (the rows must then have one length). truncation: True cuts the longest text of each
            pair first ("longest_first") down to max_length; None means model_max_length.
        Shapes: -> input_ids, attention_mask, token_type_ids, each np.int64 (B, T).
        """
        texts = _as_batch(texts, "texts")
        pairs = None if text_pairs is None else _as_batch(text_pairs, "text_pairs")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(
                f"texts has {len(texts)} items but text_pairs has {len(pairs)}: "
                "give one pair per text"
            )
        max_length = self._check_options(padding, truncation, max_length, pairs is not None)
        pad = padding not in (False, "do_not_pad")
        try:
            if truncation:
                strategy = "longest_first" if truncation is True else truncation
                self.backend.enable_truncation(max_length, strategy=strategy)
            if pad and self.pad_token_id is not None:
                length = max_length if padding == "max_length" else None  # None: the longest row
                pad_token = self.special_tokens["pad"]
                self.backend.enable_padding(
                    pad_id=self.pad_token_id, pad_token=pad_token, length=length
                )
            inputs = texts if pairs is None else list(zip(texts, pairs, strict=True))
            encodings = self.backend.encode_batch(inputs)
        except Exception as e:  # e.g. truncation="only_second" with a second text too short
            raise ValueError(f"cannot encode with max_length={max_length}: {e}") from e
        finally:
            self.backend.no_truncation()
            self.backend.no_padding()

        lengths = sorted({len(encoding.ids) for encoding in encodings})
        if len(lengths) > 1:
            why = "padding=False" if not pad else "this tokenizer has no pad token, so"
            raise ValueError(
                f"{why} the rows have different lengths ({lengths[0]} to {lengths[-1]} tokens), "
                "but arrays need one length: use padding=True"
            )

        def stack(field):
            return np.array([getattr(encoding, field) for encoding in encodings], dtype=np.int64)

        return Encoding(  # each (B, T)
            input_ids=stack("ids"),
            attention_mask=stack("attention_mask"),
            token_type_ids=stack("type_ids"),
        )

    def _check_options(self, padding, truncation, max_length, is_pair) -> int:
        """Validate the options of a call; return max_length as an int (None -> the model's)."""
        if padding not in (True, False, "longest", "max_length", "do_not_pad"):
            raise ValueError(
                f"padding must be True, False, 'longest' or 'max_length', got {padding!r}"
            )
        if truncation not in (True, False, "longest_first", "only_first", "only_second"):
            raise ValueError(
                f"truncation must be True, False or 'longest_first', got {truncation!r}"
            )
        if max_length is None:
            max_length = self.model_max_length
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
            raise ValueError(f"max_length must be a positive int, got {type(max_length).__name__}")
        if max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length}")
        if padding == "max_length" and self.pad_token_id is None:
            raise ValueError("padding='max_length' needs a pad token, and this tokenizer has none")
        num_special = self.backend.num_special_tokens_to_add(is_pair)
        if truncation and max_length < num_special:
            # The library would return rows longer than max_length without a word.
            raise ValueError(
                f"max_length={max_length} leaves no room for the {num_special} special tokens"
            )
        return int(max_length)

    def decode(self, ids, skip_special_tokens=True) -> str:
        """Text of a list or 1-D array of ids; special tokens (and padding) left out by default."""
        return self.backend.decode(self._check_ids(ids, "ids"), skip_special_tokens)

    def batch_decode(self, sequences, skip_special_tokens=True) -> list[str]:
        """decode() of each row of a 2-D array or each list of a list of lists."""
        if isinstance(sequences, np.ndarray) and sequences.ndim != 2:
            raise ValueError(f"batch_decode takes a 2-D array, got {sequences.ndim}-D")
        rows = [self._check_ids(row, f"sequences[{i}]") for i, row in enumerate(sequences)]
        return self.backend.decode_batch(rows, skip_special_tokens)

    def save(self, path) -> None:
        """Write tokenizer.json and tokenizer_config.json into folder `path` (made if missing)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(folder / "tokenizer.json"))
        config = dict(self.config)
        config.setdefault("tokenizer_class", GENERIC_CLASS)
        config["model_max_length"] = self.model_max_length
        for role, token in self.special_tokens.items():
            if token is not None and _token_text(config.get(f"{role}_token")) != token:
                config[f"{role}_token"] = token
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")

    def __repr__(self):
        kind = type(self.backend.model).__name__  # WordPiece, BPE or Unigram
        return f"Tokenizer({kind}, vocab_size={self.vocab_size}, {self.special_tokens})"


def load_tokenizer(path) -> Tokenizer:
    """Load the tokenizer of a Hugging Face folder: tokenizer.json, else BERT's from vocab.txt.

    tokenizer_config.json (if present) gives the special tokens, model_max_length and, for
    vocab.txt, do_lower_case / strip_accents / tokenize_chinese_chars. Truncation and padding saved
    in tokenizer.json are switched off: each call sets its own. Bad files raise CheckpointError.
    """
    folder = Path(path)
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise CheckpointError(f"tokenizer folder {folder} {problem}")
    config = _read_json(folder / "tokenizer_config.json")
    given = {}  # role -> token named by the config files; tokenizer_config.json wins
    for source in (_read_json(folder / "special_tokens_map.json"), config):
        given.update(
            {r: _token_text(source[f"{r}_token"]) for r in ROLES if f"{r}_token" in source}
        )
    given = {role: token for role, token in given.items() if token is not None}

    if (folder / "tokenizer.json").is_file():
        file = folder / "tokenizer.json"
        _read_json(file)  # a clear message for broken JSON before the library's own
        try:
            backend = tokenizers.Tokenizer.from_file(str(file))
        except Exception as e:
            raise CheckpointError(f"{file} is not a valid tokenizer.json: {e}") from e
        _apply_bert_config(backend, config)
        special = _find_special_tokens(backend, given)
        backend.no_truncation()  # after _find_special_tokens, which reads the pad token there
        backend.no_padding()
    elif (folder / "vocab.txt").is_file():
        backend, special = _bert_from_vocab(folder / "vocab.txt", config, given)
    else:
        raise CheckpointError(f"{folder} has neither tokenizer.json nor vocab.txt")

    max_length = config.get("model_max_length")
    sane = isinstance(max_length, int) and not isinstance(max_length, bool)
    if not (sane and 0 < max_length <= 1_000_000):  # HF writes 1e30 for "no limit"
        max_length = DEFAULT_MAX_LENGTH
    return Tokenizer(backend, special, max_length, config)


def _bert_from_vocab(file, config, given):
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


def _apply_bert_config(backend, config) -> None:
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


def _find_special_tokens(backend, given) -> dict:
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


def _token_text(value):
    """A special token from a config file: a str, or an AddedToken dict with "content"."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_json(file) -> dict:
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


def _as_batch(texts, name) -> list:
    """One str -> [str]; a list/tuple of str -> list; anything else raises ValueError."""
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        raise ValueError(f"{name} must be a str or a list of str, got {type(texts).__name__}")
    if not texts:
        raise ValueError(f"{name} is an empty list: give at least one text")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{index}] must be a str, got {type(text).__name__}")
    return list(texts)


# --- the files beside a model, and new vocabularies -------------------------------------------
def copy_tokenizer_files(source, target, hidden_size: int | None = None) -> list[str]:
    """Copy the tokenizer and pooling files of folder source into target; returns their names
    (the pooling folder 1_Pooling/ is copied too, and not listed).

    A sentence-transformers pooling config names the width it pools: a narrower student's
    copy says hidden_size instead of the teacher's.
    """
    source, target = Path(source), Path(target)
    copied = [name for name in TOKENIZER_FILES if (source / name).is_file()]
    for name in copied:
        shutil.copyfile(source / name, target / name)
    if (source / "1_Pooling").is_dir():
        shutil.copytree(source / "1_Pooling", target / "1_Pooling", dirs_exist_ok=True)
        pooling = target / "1_Pooling" / "config.json"
        if hidden_size is not None and pooling.is_file():
            config = json.loads(pooling.read_text())
            if "word_embedding_dimension" in config:
                config["word_embedding_dimension"] = hidden_size
                pooling.write_text(json.dumps(config, indent=2) + "\n")
    return copied


def train_wordpiece(texts, vocab_size: int, folder, lowercase: bool = True) -> Tokenizer:
    """Train a BERT WordPiece vocabulary on texts with the tokenizers library, write vocab.txt
    (and tokenizer.json) into folder, and return the loaded Tokenizer.

    The library's trainer breaks ties between equally frequent merges in no fixed order, so two
    trainings on the same text can give slightly different vocabularies: a run keeps its
    vocabulary in its folder, and resuming reuses it (see reuse_or_train_wordpiece).
    """
    tok = tokenizers.Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=BERT_SPECIAL_TOKENS,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = sorted(tok.get_vocab().items(), key=lambda item: item[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase}))
    tokenizer = load_tokenizer(folder)  # BERT's full pipeline, built from vocab.txt
    tokenizer.save(folder)
    return tokenizer


def reuse_or_train_wordpiece(texts, vocab_size: int, folder, lowercase: bool = True):
    """The tokenizer already trained in folder (a resumed run), or a newly trained one."""
    if (Path(folder) / "vocab.txt").is_file():
        return load_tokenizer(folder)
    return train_wordpiece(texts, vocab_size, folder, lowercase)
