"""SentenceEncoder: texts to vectors, following the folder's modules as sentence-transformers does.

A text runs through the modules that modules.json lists (folder.py reads them): the encoder
(Transformer), one pooling of its token vectors (functional/pooling.py), then any Dense layers
(dense.py) and Normalize. A prompt ("query: ") is put before each text when encode() is given
one, or when the folder names a default; with include_prompt false its tokens are left out of
the pooling. A plain Hugging Face folder (no modules.json) is mean-pooled and normalised.

pooling= and normalize= given explicitly win over the folder. Pooling other than the folder's
gives vectors the model was not trained to produce, so it warns (FolderOverrideWarning);
normalize only rescales each vector, keeps every cosine, and is a common wish (raw vectors to
normalise later, or unit vectors from a model without Normalize), so it does not.
"""

import warnings
from pathlib import Path

import numpy as np
from tokenizers import normalizers
from tqdm import tqdm

from ..errors import ConfigError, InputError
from ..functional.pooling import check_pooling, l2_normalize, pool
from ..io import load
from ..pretrained import minilm_path
from ..tokenizer import load_tokenizer
from .dense import Dense
from .folder import read_sentence_folder


class FolderOverrideWarning(UserWarning):
    """An argument to SentenceEncoder overrides what the folder's modules say."""


class SentenceEncoder:
    """Texts -> vectors with a model folder (config, weights, tokenizer, and modules.json if it
    is a sentence-transformers folder).

    Args:
        path: model folder; None means the installed all-MiniLM-L6-v2.
        pooling: one of functional.pooling.POOLINGS, or a tuple of them (concatenated); None
            means the folder's Pooling module (mean for a plain folder).
        normalize: scale each vector to unit length; None means as the folder says (a Normalize
            module last; True for a plain folder).
        max_length: token limit per text; default the folder's (sentence_bert_config.json's
            max_seq_length, else, in the modern layout, tokenizer_config.json's
            model_max_length), within the model's position table.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        pooling: str | tuple | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
    ):
        if path is None:
            path = minilm_path()
        self.path = Path(path)
        self.folder = read_sentence_folder(self.path)
        self.model = load(self.folder.transformer)
        self.tokenizer = load_tokenizer(self.folder.transformer)
        if self.folder.do_lower_case:
            _lowercase_first(self.tokenizer)
        self.pooling = self._choose_pooling(pooling)
        self.normalize = self.folder.normalize if normalize is None else bool(normalize)
        self.steps = self._build_steps()
        self.prompts = dict(self.folder.prompts)
        self.default_prompt_name = self.folder.default_prompt_name
        if max_length:
            self.max_length = min(max_length, self.model.config.max_length)
        else:
            self.max_length = sentence_length(self.path, self.model)

    def _choose_pooling(self, pooling):
        """The pooling to run: the argument if given (a warning when it differs from the
        folder's modules), else the folder's. A single mode is a str, several a tuple."""
        modes = self.folder.pooling if pooling is None else check_pooling(pooling)
        if pooling is not None and self.folder.has_modules and modes != self.folder.pooling:
            warnings.warn(
                f"pooling={pooling!r} overrides the folder's Pooling module "
                f"({_mode_text(self.folder.pooling)}) in {self.path}: these vectors are not the "
                "ones the model was trained to give; pass pooling=None to follow the folder",
                FolderOverrideWarning,
                stacklevel=3,
            )
        return modes[0] if len(modes) == 1 else modes

    def _build_steps(self) -> list:
        """The modules after pooling: Dense layers, and Normalize where the folder has one
        before the last step; the last Normalize is self.normalize's business."""
        steps, width = [], self.model.config.hidden_size * len(check_pooling(self.pooling))
        after = list(self.folder.after_pooling)
        if self.folder.normalize:
            after.pop()
        for kind, folder in after:
            if kind == "normalize":
                steps.append(l2_normalize)
                continue
            dense = Dense(folder)
            if dense.in_features != width:
                raise ConfigError(
                    f"{folder}: the Dense layer takes {dense.in_features} features but the "
                    f"pooling ({_mode_text(self.pooling)}) gives {width}"
                )
            steps.append(dense)
            width = dense.out_features
        self.width = width
        return steps

    @property
    def dim(self) -> int:
        """The width of the vectors encode() returns (after any Dense layer)."""
        return self.width

    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str:
        """The text to put before each input: `prompt`, the folder's prompt called
        `prompt_name`, else the folder's default prompt, else none ("")."""
        if prompt is not None and prompt_name is not None:
            raise ValueError("give prompt= or prompt_name=, not both")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
            return prompt
        if prompt_name is None:
            prompt_name = self.default_prompt_name
            if prompt_name is None:
                return ""
        if prompt_name not in self.prompts:
            known = ", ".join(map(repr, sorted(self.prompts))) or "none"
            raise ValueError(
                f"prompt_name {prompt_name!r} is not a prompt of {self.path} (its prompts: {known})"
            )
        return self.prompts[prompt_name]

    def prompt_length(self, prompt: str) -> int:
        """How many leading tokens of a prompted text are the prompt's, as sentence-transformers
        counts them: the prompt tokenized alone, without its closing special token ([SEP])."""
        if not prompt:
            return 0
        ids = self.tokenizer([prompt], truncation=True, max_length=self.max_length)["input_ids"][0]
        return len(ids) - (1 if int(ids[-1]) in self.tokenizer.special_ids else 0)

    def sentence_vectors(self, hidden, mask, prompt_length: int = 0):
        """Token vectors -> sentence vectors: pooling, then the modules after it, then
        normalisation if self.normalize. prompt_length leading tokens are left out of the
        pooling when the folder says include_prompt false.

        Shapes: hidden (B, T, C), mask (B, T) -> (B, dim)
        """
        if prompt_length and not self.folder.include_prompt:
            mask = np.array(mask, copy=True)
            mask[:, :prompt_length] = 0  # the tokenizer pads on the right
        vectors = pool(hidden, mask, self.pooling)  # (B, k C) for k pooling modes
        for step in self.steps:
            vectors = step(vectors)
        return l2_normalize(vectors) if self.normalize else vectors

    def encode(
        self,
        texts,
        batch_size: int = 32,
        progress: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
    ):
        """Embed texts, batching texts of similar length together so little padding is run.

        prompt_name picks one of the folder's prompts, prompt gives the text itself; without
        either the folder's default prompt (if any) is used, and prompt="" uses none.
        Shapes: N texts -> (N, dim) float32, in the order given.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise InputError("encode() needs at least one text")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        prefix = self.resolve_prompt(prompt_name, prompt)
        prompt_length = self.prompt_length(prefix)
        if prefix:
            texts = [prefix + text if isinstance(text, str) else text for text in texts]
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length)
        lengths = enc["attention_mask"].sum(1)  # (N,)
        order = np.argsort(-lengths, kind="stable")  # longest first: the slowest batch starts
        out = np.empty((len(texts), self.dim), np.float32)  # (N, dim)
        starts = range(0, len(texts), batch_size)
        if progress:
            starts = tqdm(starts, desc="encode", unit="batch")
        for start in starts:
            rows = order[start : start + batch_size]
            T = int(lengths[rows].max())  # pad only to this batch's longest text
            ids = enc["input_ids"][rows, :T]
            mask = enc["attention_mask"][rows, :T]
            types = enc["token_type_ids"][rows, :T]
            hidden = self.model(ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            out[rows] = self.sentence_vectors(hidden, mask, prompt_length)
        return out

    def similarity(self, a, b=None):
        """Cosine similarity matrix of two lists of texts (or of one list with itself)."""
        va = l2_normalize(self.encode(a))
        vb = va if b is None else l2_normalize(self.encode(b))
        return va @ vb.T

    def __repr__(self):
        steps = "".join(f" -> {step!r}" for step in self.steps if isinstance(step, Dense))
        norm = " -> normalize" if self.normalize else ""
        return (
            f"SentenceEncoder({self.path.name}: {_mode_text(self.pooling)} pooling{steps}"
            f"{norm}, max_length={self.max_length})"
        )


def sentence_length(folder, model) -> int:
    """The token limit of a folder within the model's position table: sentence_bert_config.json's
    max_seq_length (256 for MiniLM), else, for a folder with modules.json,
    tokenizer_config.json's model_max_length; the table's length when the folder sets none."""
    limit = read_sentence_folder(folder).max_seq_length
    return model.config.max_length if limit is None else min(limit, model.config.max_length)


def _lowercase_first(tokenizer) -> None:
    """sentence_bert_config.json's do_lower_case: put a Lowercase normaliser in front of the
    tokenizer's own, as sentence-transformers does, unless it is one already."""
    current = tokenizer.backend.normalizer
    if isinstance(current, normalizers.Lowercase):
        return
    lowercase = normalizers.Lowercase()
    tokenizer.backend.normalizer = (
        lowercase if current is None else normalizers.Sequence([lowercase, current])
    )


def _mode_text(pooling) -> str:
    return pooling if isinstance(pooling, str) else "+".join(pooling)
