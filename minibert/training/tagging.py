"""Fine-tuning a token classifier (named entities, part-of-speech tags) from tagged sentences.

The recipe is recipes.finetune's with a tag per word instead of a label per text: a checkpoint
loaded as *ForTokenClassification, the sentences split 80/10/10 (seeded), each word's tag on its
first sub-token (data/conll.py), and the scores counted over words, that is over first
sub-tokens: accuracy and macro-F1 over the tags. The saved config.json names the tags in
id2label and label2id.
"""

import numpy as np

from ..config import IGNORE_INDEX
from ..data.batches import collate
from ..data.conll import token_classification_examples
from ..data.text import group_split
from ..evaluation.metrics import classification_metrics
from ..io import load
from ..tokenizer import load_tokenizer
from .recipes import (
    SPLITS,
    classifier_architecture,
    fine_tunable,
    fit_classifier,
    name_labels,
)
from .trainer import TrainConfig


def predict_tags(model, examples, batch_size: int, pad_id: int) -> tuple:
    """(predicted, gold) tag ids of every word (first sub-token) in examples, in order.
    Shapes: -> two (W,) int64 arrays, W words in all."""
    predicted, gold = [], []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_id)
        labels = batch.pop("labels")  # (B, T)
        logits = model(**batch).logits  # (B, T, K)
        scored = labels != IGNORE_INDEX
        predicted.append(logits.argmax(-1)[scored])
        gold.append(labels[scored])
    if not predicted:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(predicted), np.concatenate(gold)


def tagging_metrics(model, examples, batch_size: int, pad_id: int) -> dict:
    """Accuracy and macro-F1 over words (first sub-tokens)."""
    return classification_metrics(*predict_tags(model, examples, batch_size, pad_id))


def finetune_tagger(
    model_path,
    words,
    tag_ids,
    label_names,
    train: TrainConfig,
    output_dir,
    tokenizer=None,
    max_length: int = 128,
    batch_size: int = 32,
    split_seed: int = 0,
    resume: bool = False,
):
    """Fine-tune a checkpoint as a token classifier; returns (model, history, report).

    words: N sentences, each a list of words; tag_ids: an id per word (data.conll.read_conll
    gives both); label_names: the tag of each id.
    """
    fine_tunable(model_path)
    tokenizer = tokenizer or load_tokenizer(model_path)
    architecture = classifier_architecture(model_path, "ForTokenClassification")
    model = load(
        model_path, architecture=architecture, num_labels=len(label_names), seed=train.seed
    )
    name_labels(model, label_names)
    rows = group_split(range(len(words)), range(len(words)), seed=split_seed)
    splits = {
        name: token_classification_examples(
            [words[i] for i in chosen], [tag_ids[i] for i in chosen], tokenizer, max_length
        )
        for name, chosen in zip(SPLITS, rows, strict=True)
    }
    pad = tokenizer.pad_token_id

    def evaluate(m, name="validation"):
        return tagging_metrics(m, splits[name], batch_size, pad)

    history = fit_classifier(
        model, tokenizer, splits["train"], train, evaluate, batch_size, pad, output_dir, resume
    )
    report = {
        "sizes": {k: len(v) for k, v in splits.items()},
        "words": {
            k: int(sum((e["labels"] != IGNORE_INDEX).sum() for e in v)) for k, v in splits.items()
        },
        "validation": evaluate(model, "validation"),
        "test": evaluate(model, "test"),
        "initialized": model.load_report.get("initialized", []),
    }
    return model, history, report
