"""The Tokenizer: a `tokenizers.Tokenizer` (Rust) that batches into numpy arrays.

It gives what Hugging Face's fast tokenizer gives for the same files and options: ids, masks and
segment ids, and on request character offsets, the special-tokens mask and overflowing windows
with a stride (long texts split into overlapping rows, as question answering needs them).
Shapes: B rows in the batch (texts, or windows with overflow), T tokens per row after padding.
"""

import json
from pathlib import Path

import numpy as np
import tokenizers

from .bert_vocab import GENERIC_CLASS
from .encoding import Encoding
from .special_tokens import ROLES, find_special_tokens, token_text

# BERT's position table has 512 rows; used when tokenizer_config.json gives no sane value.
DEFAULT_MAX_LENGTH = 512
TRUNCATIONS = ("longest_first", "only_first", "only_second")


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
        return cls(backend, find_special_tokens(backend, special_tokens or {}), model_max_length)

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

    def __call__(
        self,
        texts,
        text_pairs=None,
        padding=True,
        truncation=True,
        max_length=None,
        return_offsets_mapping=False,
        return_special_tokens_mask=False,
        return_overflowing_tokens=False,
        stride=0,
    ):
        """Encode a batch (or one str) into arrays, with special tokens added.

        Shapes: -> input_ids, attention_mask, token_type_ids, special_tokens_mask (B, T),
            offset_mapping (B, T, 2), overflow_to_sample_mapping (B,); all np.int64.

        Args:
            texts: a str or a list of str.
            text_pairs: the second text of each pair (a question's context), or None.
            padding: True or "longest" pads to the longest row, "max_length" to max_length,
                False not at all (the rows must then have one length).
            truncation: True cuts the longest text of each pair first ("longest_first") down to
                max_length; "only_first" / "only_second" cut only that text of each pair.
            max_length: tokens per row, special tokens included; None means model_max_length.
            return_offsets_mapping: add offset_mapping, each token's (start, end) characters in
                its text, (0, 0) for special and padding tokens.
            return_special_tokens_mask: add special_tokens_mask, 1 for special and padding
                tokens.
            return_overflowing_tokens: what truncation cuts off becomes extra rows, each
                text's rows in order, and overflow_to_sample_mapping gives each row's text.
            stride: with overflowing tokens, the first `stride` tokens of each window repeat the
                previous window's last ones.

        Returns:
            An Encoding; its methods word_ids(i), sequence_ids(i) and tokens(i) describe row i.
        """
        texts = _as_batch(texts, "texts")
        pairs = None if text_pairs is None else _as_batch(text_pairs, "text_pairs")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(
                f"texts has {len(texts)} items but text_pairs has {len(pairs)}: "
                "give one pair per text"
            )
        max_length = self._check_options(padding, truncation, max_length, pairs is not None)
        for name, flag in (
            ("return_offsets_mapping", return_offsets_mapping),
            ("return_special_tokens_mask", return_special_tokens_mask),
            ("return_overflowing_tokens", return_overflowing_tokens),
        ):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        stride = self._check_stride(stride, return_overflowing_tokens, truncation)
        if truncation and stride > 0:  # windows are cut (and may be dropped) even without overflow
            self._check_windows(texts, pairs, truncation, max_length, stride)
        inputs = texts if pairs is None else list(zip(texts, pairs, strict=True))
        encodings = self._encode(inputs, padding, truncation, max_length, stride)

        rows, row_texts = [], []  # with overflow, a text's windows follow it, as in transformers
        for index, encoding in enumerate(encodings):
            windows = [encoding, *encoding.overflowing] if return_overflowing_tokens else [encoding]
            rows += windows
            row_texts += [index] * len(windows)
        lengths = sorted({len(row.ids) for row in rows})
        if len(lengths) > 1:
            pad = padding not in (False, "do_not_pad")
            why = "padding=False" if not pad else "this tokenizer has no pad token, so"
            raise ValueError(
                f"{why} the rows have different lengths ({lengths[0]} to {lengths[-1]} tokens), "
                "but arrays need one length: use padding=True"
            )

        def stack(field):
            return np.array([getattr(row, field) for row in rows], dtype=np.int64)  # (B, T)

        arrays = {
            "input_ids": stack("ids"),
            "attention_mask": stack("attention_mask"),
            "token_type_ids": stack("type_ids"),
        }
        if return_special_tokens_mask:
            arrays["special_tokens_mask"] = stack("special_tokens_mask")
        if return_offsets_mapping:
            offsets = np.array([row.offsets for row in rows], dtype=np.int64)
            arrays["offset_mapping"] = offsets.reshape(len(rows), lengths[0], 2)  # (B, T, 2)
        if return_overflowing_tokens:
            arrays["overflow_to_sample_mapping"] = np.array(row_texts, dtype=np.int64)  # (B,)
        return Encoding(arrays, rows)

    def _encode(self, inputs, padding, truncation, max_length, stride) -> list:
        """The library's encodings of a batch under these options, which are removed after."""
        pad = padding not in (False, "do_not_pad")
        try:
            if truncation:
                strategy = "longest_first" if truncation is True else truncation
                self.backend.enable_truncation(max_length, stride=stride, strategy=strategy)
            if pad and self.pad_token_id is not None:
                length = max_length if padding == "max_length" else None  # None: the longest row
                pad_token = self.special_tokens["pad"]
                self.backend.enable_padding(
                    pad_id=self.pad_token_id, pad_token=pad_token, length=length
                )
            return self.backend.encode_batch(inputs)
        except Exception as e:  # e.g. truncation="only_second" with a second text too short
            raise ValueError(f"cannot encode with max_length={max_length}: {e}") from e
        except BaseException as e:
            # The library panics (PanicException, not an Exception) on a stride too long for
            # a window; _check_windows should have said so first.
            if type(e).__name__ != "PanicException":
                raise
            reason = str(e).split("(")[0].strip()
            raise ValueError(f"cannot split into windows with stride={stride}: {reason}") from None
        finally:
            self.backend.no_truncation()
            self.backend.no_padding()

    def _check_stride(self, stride, return_overflowing_tokens, truncation) -> int:
        """Validate stride and that overflow has something to cut; return stride as an int."""
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 0:
            raise ValueError(f"stride must be an int >= 0, got {stride!r}")
        if return_overflowing_tokens and not truncation:
            raise ValueError(
                "return_overflowing_tokens=True needs truncation: with truncation=False "
                "nothing is cut off, so there are no overflowing windows"
            )
        return int(stride)

    def _check_windows(self, texts, pairs, truncation, max_length, stride) -> None:
        """Each window must hold more than `stride` tokens of a text it splits, or the windows
        could not move forward (the library would panic). Checked per row, before encoding."""
        single_room = max_length - self.backend.num_special_tokens_to_add(False)
        if pairs is None:
            if stride >= single_room:
                raise ValueError(
                    f"stride={stride} must be less than the {single_room} tokens of text a "
                    f"window holds (max_length={max_length} less "
                    f"{max_length - single_room} special tokens)"
                )
            return
        room = max_length - self.backend.num_special_tokens_to_add(True)  # for both texts
        lengths = zip(self._lengths(texts), self._lengths(pairs), strict=True)
        for index, (first, second) in enumerate(lengths):
            if first + second <= room:
                continue  # fits: nothing to split
            if truncation in ("only_first", "only_second"):
                kept, kept_name = (
                    (first, "texts") if truncation == "only_second" else (second, "text_pairs")
                )
                if room - kept <= stride:
                    raise ValueError(
                        f"{kept_name}[{index}] has {kept} tokens, which leaves "
                        f"{max(room - kept, 0)} of max_length={max_length} (less "
                        f"{max_length - room} special tokens) for the text that "
                        f"truncation={truncation!r} splits; stride={stride} must be less than that"
                    )
                continue
            # longest_first: the shorter text keeps up to half the room, the longer the rest
            # (the first text takes the smaller half on a tie), as the library cuts them.
            short = min(min(first, second), room // 2)
            targets = (short, room - short) if first <= second else (room - short, short)
            sides = zip(("texts", "text_pairs"), (first, second), targets, strict=True)
            for name, length, target in sides:
                if length > target > 0 and stride >= target:
                    raise ValueError(
                        f"{name}[{index}] is cut to windows of {target} tokens (longest_first "
                        f"shares max_length={max_length}, less {max_length - room} special "
                        f"tokens, between the two texts); stride={stride} must be less than that"
                    )

    def _lengths(self, texts) -> list[int]:
        """Token count of each text, without special tokens (the backend has no truncation)."""
        encodings = self.backend.encode_batch(texts, add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def _check_options(self, padding, truncation, max_length, is_pair) -> int:
        """Validate the options of a call; return max_length as an int (None -> the model's)."""
        if padding not in (True, False, "longest", "max_length", "do_not_pad"):
            raise ValueError(
                f"padding must be True, False, 'longest' or 'max_length', got {padding!r}"
            )
        if truncation not in (True, False, *TRUNCATIONS):
            raise ValueError(
                "truncation must be True, False, 'longest_first', 'only_first' or "
                f"'only_second', got {truncation!r}"
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
            if token is not None and token_text(config.get(f"{role}_token")) != token:
                config[f"{role}_token"] = token
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")

    def __repr__(self):
        kind = type(self.backend.model).__name__  # WordPiece, BPE or Unigram
        return f"Tokenizer({kind}, vocab_size={self.vocab_size}, {self.special_tokens})"


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
