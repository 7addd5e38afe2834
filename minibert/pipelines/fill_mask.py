"""fill-mask: the most likely tokens for each [MASK] (RoBERTa: `<mask>`) in a text.

    pipe = minibert.pipeline("fill-mask", path)
    pipe("Paris is the [MASK] of France.", top_k=3)
    -> [{"score": 0.41, "token": 3007, "token_str": "capital",
         "sequence": "paris is the capital of france."}, ...]

As transformers' FillMaskPipeline: the scores are the softmax of the masked-LM logits at the
mask; `targets` limits them to the given words (probabilities still over the whole vocabulary);
`sequence` is the text decoded with the proposed token in place of the mask. A text with
several masks gives one list per mask (each mask scored on its own, not jointly), and its
sequences keep the special tokens, as transformers' do.
"""

import warnings

import numpy as np

from ..errors import ConfigError, InputError
from .base import Pipeline, as_text_list, check_int, check_text, softmax
from .encoding import encode_windows

DEFAULT_TOP_K = 5


class FillMaskPipeline(Pipeline):
    task = "fill-mask"
    head = "ForMaskedLM"
    defaults = {"top_k": DEFAULT_TOP_K, "targets": None}

    def __init__(self, model_path, **options):
        super().__init__(model_path, **options)
        if self.tokenizer.mask_token_id is None:
            raise ConfigError(
                f"the tokenizer of {self.path} has no mask token; fill-mask needs one"
            )

    def __call__(self, inputs, **options):
        """Propositions for the mask(s) of one text, or of each text of a list."""
        options = self.check_options(options)
        top_k = check_int("top_k", options["top_k"])
        target_ids = None if options["targets"] is None else self.target_ids(options["targets"])
        texts, single = as_text_list(inputs)
        windows = [self.encode(text) for text in texts]  # every text checked before any runs
        outputs = self.forward(windows, options["batch_size"])
        results = [
            self.fill(window, out["logits"], top_k, target_ids)
            for window, out in zip(windows, outputs, strict=True)
        ]
        # transformers unwraps a list of one text too
        return results[0] if single or len(results) == 1 else results

    def encode(self, text: str) -> dict:
        """The text's window; InputError if it holds no mask token."""
        window = encode_windows(self.tokenizer, check_text(text))[0]
        if self.tokenizer.mask_token_id not in window["input_ids"]:
            mask = self.tokenizer.special_tokens["mask"]
            raise InputError(f"no mask token ({mask}) found in the text {text!r}")
        return window

    def fill(self, window: dict, logits, top_k: int, target_ids) -> list:
        """The propositions for each mask of one text, from its logits (T, V)."""
        ids = np.asarray(window["input_ids"])  # (T,)
        masked = np.flatnonzero(ids == self.tokenizer.mask_token_id)
        probs = softmax(logits[masked])  # (masks, V), over the whole vocabulary
        candidates = np.arange(probs.shape[-1]) if target_ids is None else target_ids
        k = min(top_k, len(candidates))
        single_mask = masked.size == 1
        per_mask = []
        for row, position in zip(probs, masked, strict=True):
            chosen = candidates[_top(row[candidates], k)]
            propositions = [self.proposition(ids, position, int(t), float(row[t])) for t in chosen]
            per_mask.append(propositions)
        return per_mask[0] if single_mask else per_mask

    def proposition(self, ids, position, token_id, score) -> dict:
        """One proposed token for the mask at `position`, with the text it makes."""
        single_mask = int((ids == self.tokenizer.mask_token_id).sum()) == 1
        filled = ids.copy()
        filled[position] = token_id
        pad = self.tokenizer.pad_token_id
        kept = filled[filled != pad] if pad is not None else filled
        return {
            "score": score,
            "token": token_id,
            "token_str": self.tokenizer.decode([token_id], skip_special_tokens=False),
            "sequence": self.tokenizer.decode(kept.tolist(), skip_special_tokens=single_mask),
        }

    def target_ids(self, targets) -> np.ndarray:
        """Ids of the target words: a word of the vocabulary is taken as it is; another word is
        tokenized and its first token used, with a warning (as transformers does)."""
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, (list, tuple)) or not targets:
            raise InputError(f"targets must be a str or a non-empty list of str, got {targets!r}")
        ids = []
        for target in targets:
            check_text(target, "each target")
            token_id = self.tokenizer.backend.token_to_id(target)
            if token_id is None:
                pieces = self.tokenizer.tokenize(target)
                if not pieces:
                    warnings.warn(f"target {target!r} gives no token; it is left out", stacklevel=3)
                    continue
                replacement = pieces[0]
                token_id = self.tokenizer.convert_tokens_to_ids(replacement)
                warnings.warn(
                    f"target {target!r} is not in the vocabulary; using {replacement!r}",
                    stacklevel=3,
                )
            ids.append(token_id)
        if not ids:
            raise InputError(f"none of the targets {targets!r} gives a token")
        return np.array(sorted(set(ids)))


def _top(scores, k: int):
    """Indices of the k largest scores, largest first (ties: the lower index first)."""
    return np.argsort(-scores, kind="stable")[:k]
