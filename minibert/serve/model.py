"""The served model: texts to token sequences, and batches of sequences to vectors and logits.

One ServedModel wraps a SentenceEncoder (the model, its tokenizer, its token limit) and adds
what a server needs beside encode(): tokenizing apart from running, so a request's sequences
can wait in the scheduler's queue and share batches with other requests' sequences; lengths
before truncation, so a text that is too long can be refused by name; and the classifier's
logits next to the pooled vector.

Threads: tokenize() and tokens() use the tokenizer, which is not thread-safe (each call sets
and resets its truncation), so the server calls them from one tokenizer thread only; run()
is called by the scheduler's one worker thread only.

A served vector is the offline one. run() pads a batch with the tokenizer's pad id and the
same masks SentenceEncoder.encode builds, and pools the same way. What else is in the batch
changes a vector only by float32 rounding: padded keys get exactly zero attention weight,
but OpenBLAS's sgemm picks its kernels by matrix size, so a row's dot products are summed in
another order when the number of rows (batch size x padded length) changes. Measured on unit
vectors: at most 1.2e-7 apart for all-MiniLM-L6-v2 in float32, bit-equal for int8 models
(integer products, activations quantised per row). tests/test_serve.py checks 1e-6.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..sentence import SentenceEncoder

CLASSIFIER_SUFFIX = "ForSequenceClassification"


class InputTooLong(ValueError):
    """A text (or pair) has more tokens than the limit and truncation was not asked for."""

    def __init__(self, index: int, tokens: int, limit: int):
        super().__init__(f"input {index} has {tokens} tokens, more than the limit of {limit}")
        self.index, self.tokens, self.limit = index, tokens, limit


@dataclass
class Sequence:
    """One tokenized text (or text pair), special tokens included. Shapes: (T,) each."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray

    @property
    def length(self) -> int:
        return len(self.input_ids)


@dataclass
class Output:
    """run()'s result for one sequence: the pooled vector (not normalised) and, for a model
    with a sequence-classification head, its logits. Shapes: (C,), (labels,) or None."""

    vector: np.ndarray
    logits: np.ndarray | None


def minibert_version() -> str:
    """minibert.__version__. The package is imported before any of its subpackages, so it is
    read from sys.modules rather than imported (the root package ranks above every layer)."""
    return getattr(sys.modules.get("minibert"), "__version__", "unknown")


class ServedModel:
    """A model folder ready to serve: the encoder, its limits and what its head can do.

    Args:
        path: a model folder with a tokenizer (fp32 or int8).
        pooling: one of functional.pooling.POOLINGS, as SentenceEncoder; None (the default)
            follows the folder's modules.json (mean without one). The folder's default prompt,
            if it names one, goes before every text, as SentenceEncoder.encode puts it.
        max_length: token limit per input; default the encoder's (sentence_bert_config.json's
            max_seq_length, else the position table).
        name: the model id reported by /info and in responses (default: the folder's name).
    """

    def __init__(self, path, pooling=None, max_length=None, name=None):
        self.encoder = SentenceEncoder(path, pooling=pooling, normalize=False, max_length=None)
        self.path = Path(path).resolve()
        self.name = name or self.path.name
        modes = self.encoder.pooling  # a name, or a tuple of names (concatenated)
        self.pooling = modes if isinstance(modes, str) else "+".join(modes)
        self.prompt = self.encoder.resolve_prompt()
        self.prompt_length = self.encoder.prompt_length(self.prompt)
        model_limit = self.encoder.max_length
        if max_length is not None and not 1 <= max_length <= model_limit:
            raise ValueError(
                f"max input length must be between 1 and the model's {model_limit} tokens, "
                f"got {max_length}"
            )
        self.max_length = max_length or model_limit
        tokenizer = self.encoder.tokenizer
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.config.pad_token_id
        # the fewest tokens an input can have: [CLS] [SEP] for a text, more for a pair
        self.min_tokens = {
            False: tokenizer.backend.num_special_tokens_to_add(False),
            True: tokenizer.backend.num_special_tokens_to_add(True),
        }

    @property
    def config(self):
        return self.encoder.model.config

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def dtype(self) -> str:
        """The weights' type: "float32", "int8" or, for group-wise low-bit models, "int4"."""
        entry = self.config.hf_extra.get("quantization")
        if not entry:
            return "float32"
        return f"int{entry.get('bits', 8)}"

    @property
    def labels(self) -> list[str] | None:
        """Class names of a sequence-classification head, by id (config.json's id2label,
        LABEL_i where it names none); None for a model without one."""
        if not self.config.architecture.endswith(CLASSIFIER_SUFFIX):
            return None
        id2label = self.config.hf_extra.get("id2label") or {}
        return [str(id2label.get(str(i), f"LABEL_{i}")) for i in range(self.config.num_labels)]

    # Tokenizer thread.

    def tokenize(self, texts, pairs=None, truncate=False) -> list[Sequence]:
        """Sequences of texts (or of (text, pair) pairs), special tokens added.

        An input longer than max_length raises InputTooLong (the first one, by index) unless
        `truncate`, which cuts it to max_length as SentenceEncoder.encode does.
        """
        tokenizer = self.encoder.tokenizer
        if self.prompt:
            texts = [self.prompt + text for text in texts]
        inputs = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        encodings = tokenizer.backend.encode_batch(inputs)  # the loaded tokenizer never truncates
        sequences, too_long = [], []
        for i, encoding in enumerate(encodings):
            if len(encoding.ids) > self.max_length:
                if not truncate:
                    raise InputTooLong(i, len(encoding.ids), self.max_length)
                too_long.append(i)
            sequences.append(_sequence(encoding.ids, encoding.type_ids))
        if too_long:
            # the wrapper's own truncation (longest_first for a pair), as encode() runs it
            cut = tokenizer(
                [texts[i] for i in too_long],
                text_pairs=None if pairs is None else [pairs[i] for i in too_long],
                padding=True,
                truncation=True,
                max_length=self.max_length,
            )
            for row, i in enumerate(too_long):
                n = int(cut["attention_mask"][row].sum())
                sequences[i] = _sequence(cut["input_ids"][row, :n], cut["token_type_ids"][row, :n])
        return sequences

    def tokens(self, texts, add_special_tokens=True) -> list[list[dict]]:
        """Each text's tokens: id, text, whether special, and its character span in the text
        (start, stop; None for a special token, which stands for no characters)."""
        encodings = self.encoder.tokenizer.backend.encode_batch(
            list(texts), add_special_tokens=add_special_tokens
        )
        out = []
        for encoding in encodings:
            rows = []
            for token_id, token, special, (start, stop) in zip(
                encoding.ids,
                encoding.tokens,
                encoding.special_tokens_mask,
                encoding.offsets,
                strict=True,
            ):
                plain = not special
                rows.append(
                    {
                        "id": int(token_id),
                        "text": token,
                        "special": bool(special),
                        "start": int(start) if plain else None,
                        "stop": int(stop) if plain else None,
                    }
                )
            out.append(rows)
        return out

    # Worker thread.

    def run(self, sequences: list[Sequence]) -> list[Output]:
        """One forward pass over a batch, padded to its longest sequence.

        Shapes: B sequences of up to T tokens -> B outputs of (C,) and (labels,).
        """
        B, T = len(sequences), max(s.length for s in sequences)
        ids = np.full((B, T), self.pad_id, np.int64)  # (B, T)
        types = np.zeros((B, T), np.int64)  # (B, T): the tokenizer pads token types with 0
        mask = np.zeros((B, T), np.int64)  # (B, T)
        for row, s in enumerate(sequences):
            ids[row, : s.length] = s.input_ids
            types[row, : s.length] = s.token_type_ids
            mask[row, : s.length] = 1
        out = self.encoder.model(ids, attention_mask=mask, token_type_ids=types)
        # the encoder's pooling, then any Dense layer of the folder (not normalised here)
        vectors = self.encoder.sentence_vectors(out.last_hidden_state, mask, self.prompt_length)
        logits = getattr(out, "logits", None) if self.labels is not None else None
        return [Output(vectors[row], None if logits is None else logits[row]) for row in range(B)]


def _sequence(ids, type_ids) -> Sequence:
    return Sequence(np.asarray(ids, np.int64), np.asarray(type_ids, np.int64))
