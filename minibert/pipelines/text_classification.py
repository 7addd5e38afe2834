"""text-classification: class names and scores for a text (or a text pair).

    pipe = minibert.pipeline("text-classification", path)
    pipe("What a lovely film.")               -> [{"label": "positive", "score": 0.93}]
    pipe(["Great.", "Dull."])                 -> [{...}, {...}]       one best label per text
    pipe("Great.", top_k=None)                -> every label, best first
    pipe({"text": "A man eats.", "text_pair": "Someone eats."})      a sentence pair

As transformers' TextClassificationPipeline. The scores are, by default, a softmax over the
labels; a sigmoid of each logit on its own when config.json says
problem_type="multi_label_classification" or the model has one label; the logits as they are
for problem_type="regression". function_to_apply ("softmax", "sigmoid", "none") overrides it.
Labels are config.json's id2label names. Without top_k a call gives the best label only (in a
list of one for a single text); with top_k (None: all) a list sorted by score per text.
"""

import numpy as np

from ..errors import InputError
from .base import Pipeline, check_int, check_text, label_names, sigmoid, softmax
from .encoding import encode_windows

FUNCTIONS = {"softmax": softmax, "sigmoid": sigmoid, "none": lambda logits: logits}
BEST_ONLY = "best only"  # top_k's default: transformers' legacy output, one dict per text


class TextClassificationPipeline(Pipeline):
    task = "text-classification"
    head = "ForSequenceClassification"
    defaults = {"top_k": BEST_ONLY, "function_to_apply": None}

    def __init__(self, model_path, **options):
        super().__init__(model_path, **options)
        self.labels = label_names(self.model)

    def __call__(self, inputs, **options):
        """Scores for one text, a {"text", "text_pair"} dict, or a list of either."""
        best_only = "top_k" not in options  # as transformers: the call's own keywords decide
        options = self.check_options(options)
        top_k = options["top_k"]
        if top_k is not BEST_ONLY:
            top_k = check_int("top_k", top_k, allow_none=True)
        apply = self.score_function(options["function_to_apply"])
        single = isinstance(inputs, (str, dict))
        items = [inputs] if single else inputs
        if not isinstance(items, (list, tuple)) or not items:
            raise InputError(
                "inputs must be a str, a {'text', 'text_pair'} dict or a non-empty list of them, "
                f"got {inputs!r:.80}"
            )
        windows = [encode_windows(self.tokenizer, *_text_and_pair(item))[0] for item in items]
        outputs = self.forward(windows, options["batch_size"])
        results = [self.classify(apply(out["logits"]), top_k) for out in outputs]
        if isinstance(inputs, str) and best_only:
            return results  # one text: [{"label", "score"}] (a pair's dict gives the dict alone)
        return results[0] if single else results

    def classify(self, scores, top_k):
        """The best label, or the top_k labels best first, from one text's scores (K,)."""
        if top_k is BEST_ONLY:
            best = int(np.argmax(scores))
            return {"label": self.labels[best], "score": float(scores[best])}
        ranked = sorted(
            ({"label": self.labels[i], "score": float(s)} for i, s in enumerate(scores)),
            key=lambda entry: entry["score"],
            reverse=True,
        )
        return ranked if top_k is None else ranked[:top_k]

    def score_function(self, name):
        """The function from logits to scores: the option's, else what the config implies."""
        if name is None:
            problem = self.model.config.to_hf().get("problem_type")
            if problem == "regression":
                name = "none"
            elif problem == "multi_label_classification" or len(self.labels) == 1:
                name = "sigmoid"
            else:
                name = "softmax"
        if not isinstance(name, str) or name.lower() not in FUNCTIONS:
            raise InputError(f"function_to_apply must be one of {sorted(FUNCTIONS)}, got {name!r}")
        return FUNCTIONS[name.lower()]


def _text_and_pair(item):
    """(text, pair or None) from a str or a {"text", "text_pair"} dict."""
    if isinstance(item, dict):
        unknown = set(item) - {"text", "text_pair"}
        if "text" not in item or unknown:
            raise InputError(
                f"a text pair is a dict with keys 'text' and 'text_pair', got keys {sorted(item)}"
            )
        pair = item.get("text_pair")
        return check_text(item["text"]), None if pair is None else check_text(pair, "text_pair")
    return check_text(item, "each input"), None
