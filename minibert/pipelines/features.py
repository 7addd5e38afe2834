"""feature-extraction and sentence-similarity: the model's vectors rather than a head's scores.

    pipe = minibert.pipeline("feature-extraction", path)
    pipe("A text.")                      -> [[[0.12, ...], ...]]   1 x T x C nested lists
    pipe("A text.", return_tensors=True) -> np.ndarray (1, T, C)

feature-extraction is transformers' FeatureExtractionPipeline: the last hidden state of the
base model (any checkpoint of the family: a head's checkpoint gives its body), one row per
token, special tokens included, as nested lists of floats unless return_tensors=True.

    pipe = minibert.pipeline("sentence-similarity", path)
    pipe({"source_sentence": "A cat sits.", "sentences": ["A cat rests.", "Stocks fell."]})
    -> [0.83, 0.12]

sentence-similarity is the Hugging Face task of that name (transformers has no pipeline for
it): the cosine similarity of the source sentence's vector with each sentence's, the vectors
made by minibert.SentenceEncoder from the same folder, so pooling and length limits are those
the folder's sentence-transformers files set.
"""

import numpy as np

from ..errors import InputError
from ..sentence import SentenceEncoder
from .base import DEFAULT_BATCH_SIZE, Pipeline, as_text_list, check_int, check_text
from .encoding import encode_windows


class FeatureExtractionPipeline(Pipeline):
    task = "feature-extraction"
    head = ""  # the base model, from any checkpoint of the family
    defaults = {"return_tensors": False, "truncation": True, "tokenize_kwargs": None}

    def __call__(self, inputs, **options):
        """Token vectors of one text (1 x T x C) or of each text of a list."""
        options = self.check_options(options)
        max_length = self.max_length(options)
        texts, single = as_text_list(inputs)
        windows = [encode_windows(self.tokenizer, text, max_length=max_length)[0] for text in texts]
        results = []
        for out in self.forward(windows, options["batch_size"]):
            hidden = out["last_hidden_state"][None]  # (1, T, C), as transformers gives it
            results.append(hidden if options["return_tensors"] else hidden.tolist())
        return results[0] if single else results

    def max_length(self, options) -> int | None:
        """The token limit from truncation and tokenize_kwargs={"max_length": N}; without
        truncation a text longer than the model takes is an error from the model."""
        extra = options["tokenize_kwargs"] or {}
        if not isinstance(extra, dict) or set(extra) - {"max_length", "truncation"}:
            raise InputError(
                f"tokenize_kwargs takes only 'max_length' and 'truncation', got {extra!r}"
            )
        truncation = extra.get("truncation", options["truncation"])
        if not truncation:
            return 1_000_000_000  # no cut: the model says if the text is too long
        limit = check_int("max_length", extra.get("max_length", self.tokenizer.model_max_length))
        return min(limit, self.model.config.max_length)


class SentenceSimilarityPipeline:
    """Cosine similarity of one source sentence with each of a list of sentences."""

    task = "sentence-similarity"

    def __init__(self, model_path, **options):
        self.batch_size = _batch_size(options, DEFAULT_BATCH_SIZE)
        self.encoder = SentenceEncoder(model_path)
        self.path = self.encoder.path

    def __call__(self, inputs=None, sentences=None, **options):
        """inputs: {"source_sentence": str, "sentences": [str, ...]}, or the source sentence
        with `sentences` beside it. Returns one float per sentence, in order."""
        batch_size = _batch_size(options, self.batch_size)
        if isinstance(inputs, dict):
            if set(inputs) != {"source_sentence", "sentences"} or sentences is not None:
                raise InputError(
                    "sentence-similarity takes {'source_sentence': str, 'sentences': [str, ...]}, "
                    f"got keys {sorted(inputs)}"
                )
            inputs, sentences = inputs["source_sentence"], inputs["sentences"]
        source = check_text(inputs, "source_sentence")
        if sentences is None:
            raise InputError("sentence-similarity needs `sentences` to compare the source with")
        others, _ = as_text_list(sentences, "sentences")
        vectors = self.encoder.encode([source, *others], batch_size=batch_size)  # (1 + N, C)
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
        return [float(score) for score in vectors[1:] @ vectors[0]]

    def __repr__(self):
        return f"SentenceSimilarityPipeline({str(self.path)!r})"


def _batch_size(options: dict, default: int) -> int:
    """sentence-similarity's one option, batch_size; any other name is an error naming it."""
    unknown = sorted(set(options) - {"batch_size"})
    if unknown:
        raise InputError(f"sentence-similarity takes no option {unknown}; only batch_size")
    return check_int("batch_size", options.get("batch_size", default))
