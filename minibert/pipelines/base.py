"""What every task pipeline shares: loading the model with the head its task needs, options
given at construction or per call, and running the model on one encoded text.

A pipeline is built once (`minibert.pipeline(task, path, **options)`) and called many times.
Options given to `pipeline()` are the defaults of every call; options given to a call win for
that call. Each task checks its own options, so a misspelt keyword is an error naming it,
never silently ignored. Texts are encoded one by one, then run batch_size at a time, padded to
the longest of their batch (padding changes no real token's output: attention gives padded
keys zero weight). Scores are computed in float32 from the model's logits and returned as
Python floats, as transformers' pipelines return them.
Shapes: B texts (or windows) in a batch, T tokens, C hidden, K labels, V vocabulary.
"""

from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..io import load, read_config
from ..models.auto import BASE_CLASSES
from ..tokenizer import load_tokenizer

DEFAULT_BATCH_SIZE = 8
# outputs with one entry per token, cut back to each row's own length after a padded batch
TOKEN_OUTPUTS = ("last_hidden_state", "start_logits", "end_logits")


class Pipeline:
    """Model + tokenizer of one folder, and the options of one task.

    Subclasses set `task`, `head` (the end of the class name the task needs, e.g.
    "ForMaskedLM"; "" takes the family's base model from any checkpoint) and `defaults` (every
    option the task takes, with its default; every task also takes batch_size), and write
    `__call__`.
    """

    task = ""
    head = ""
    defaults: dict = {}

    def __init__(self, model_path, **options):
        self.path = Path(model_path)
        self.model = load_for_task(self.path, self.task, self.head)
        self.tokenizer = load_tokenizer(self.path)
        self.options = self.check_options(options)

    def check_options(self, options: dict) -> dict:
        """The options of a call over the pipeline's defaults; an unknown name is an error."""
        known = {**self.defaults, "batch_size": DEFAULT_BATCH_SIZE}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InputError(
                f"{self.task} takes no option {', '.join(map(repr, unknown))}; "
                f"its options are {sorted(known)}"
            )
        before = self.options if hasattr(self, "options") else known  # set by __init__
        merged = {**before, **options}
        check_int("batch_size", merged["batch_size"])
        return merged

    def forward(self, windows: list[dict], batch_size: int) -> list[dict]:
        """The model's outputs for each encoded window (encoding.py), batch_size at a time.

        Returns one dict per window, in order: its arrays without the batch axis, and those
        with an entry per token cut to the window's own length (logits (T, K) or (K,),
        start_logits (T,), last_hidden_state (T, C), ...).
        """
        pad = self.tokenizer.pad_token_id or 0
        results = []
        for first in range(0, len(windows), batch_size):
            batch = windows[first : first + batch_size]
            lengths = [len(window["input_ids"]) for window in batch]
            B, T = len(batch), max(lengths)
            ids = np.full((B, T), pad, np.int64)  # (B, T)
            mask = np.zeros((B, T), np.int64)  # (B, T)
            types = np.zeros((B, T), np.int64)  # (B, T)
            for row, window in enumerate(batch):
                n = lengths[row]
                ids[row, :n] = window["input_ids"]
                mask[row, :n] = window["attention_mask"]
                types[row, :n] = window["token_type_ids"]
            if self.model.config.type_vocab_size <= 1:  # RoBERTa has one segment, DistilBERT none
                types = None
            out = self.model(ids, attention_mask=mask, token_type_ids=types)
            for row, n in enumerate(lengths):
                results.append(_row_outputs(out, row, n))
        return results

    def __repr__(self):
        return f"{type(self).__name__}({str(self.path)!r})"


def load_for_task(path: Path, task: str, head: str):
    """Load the folder's model with the head `task` needs.

    The folder's own class is used when it ends with `head`. A *ForPreTraining checkpoint holds
    a masked-LM head, so fill-mask loads it as *ForMaskedLM; feature extraction (head "")
    loads the body of any checkpoint into the family's base model, as transformers' AutoModel
    does. Any other class lacks the head: ConfigError naming the class and what is needed.
    """
    config = read_config(path)
    have = config.architecture
    if head == "":
        base = BASE_CLASSES[config.model_type].__name__
        return load(path) if have == base else load(path, architecture=base)
    if have.endswith(head):
        return load(path)
    if head == "ForMaskedLM" and have.endswith("ForPreTraining"):
        return load(path, architecture=have.replace("ForPreTraining", "ForMaskedLM"))
    family = BASE_CLASSES[config.model_type].__name__.removesuffix("Model")
    raise ConfigError(
        f"{path} holds a {have}, which has no head for {task}: "
        f"{task} needs a *{head} checkpoint (e.g. {family}{head})"
    )


def _row_outputs(out, row: int, length: int) -> dict:
    """Row `row` of a batch's outputs, per-token arrays cut to `length` tokens."""
    found = {}
    for name in ("logits", *TOKEN_OUTPUTS):
        value = getattr(out, name, None)
        if value is None:
            continue
        per_token = name in TOKEN_OUTPUTS or value.ndim == 3  # token-classification logits
        found[name] = value[row, :length] if per_token else value[row]
    return found


# --- scores -------------------------------------------------------------------------------------
def softmax(logits):
    """Probabilities over the last axis; the row max is subtracted so exp never overflows."""
    logits = np.asarray(logits, np.float32)
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def sigmoid(logits):
    """Each logit's own probability, 1 / (1 + e^-x): labels that are not exclusive."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float32)))


def label_names(model) -> list[str]:
    """The class names of a classifier, by label id: config.json's id2label (LABEL_i if none)."""
    id2label = model.config.to_hf()["id2label"]
    return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]


# --- inputs -------------------------------------------------------------------------------------
def check_text(text, what: str = "text") -> str:
    """A str, else InputError naming `what` and the type that came."""
    if not isinstance(text, str):
        raise InputError(f"{what} must be a str, got {type(text).__name__}")
    return text


def as_text_list(inputs, what: str = "inputs") -> tuple[list, bool]:
    """(list of texts, whether one str came): pipelines take a str or a list of str."""
    if isinstance(inputs, str):
        return [inputs], True
    if not isinstance(inputs, (list, tuple)):
        raise InputError(f"{what} must be a str or a list of str, got {type(inputs).__name__}")
    if not inputs:
        raise InputError(f"{what} is an empty list: give at least one text")
    return [check_text(text, f"{what}[{i}]") for i, text in enumerate(inputs)], False


def check_int(name: str, value, minimum: int = 1, allow_none: bool = False):
    """An int >= minimum (None when allowed), else InputError naming the option."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
