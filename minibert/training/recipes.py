"""End-to-end recipes on the trainer: pretraining from scratch and fine-tuning a classifier.

The CLI's `minibert pretrain` and `minibert finetune` call these.

pretrain: a WordPiece vocabulary trained on the corpus (or a given tokenizer), a fresh model,
masked-LM batches masked anew every epoch, plus NSP pairs (BERT) or SOP pairs (ALBERT) when the
architecture is *ForPreTraining; evaluation is masked-token accuracy on held-out documents.

finetune: a checkpoint loaded as *ForSequenceClassification, a split by group (so no group,
e.g. a movie, is in two splits), accuracy and macro-F1 on the validation split while training
and on the test split at the end. With multi_label=True each text has any number of the K
labels (rows of 0/1), the head has K sigmoids (binary cross-entropy) and the scores are the
exact-match rate and micro- and macro-F1 at probability 0.5. The saved config.json names the
classes (id2label, label2id), so minibert.load and transformers both see them.
tagging.py fine-tunes token classifiers the same way.
"""

from pathlib import Path

import numpy as np

from ..config import IGNORE_INDEX, EncoderConfig
from ..data.batches import batches, classification_examples, collate
from ..data.masking import make_nsp_examples, make_sop_examples, mask_batch
from ..data.text import group_split
from ..errors import CheckpointError
from ..evaluation.metrics import classification_metrics
from ..io import load, read_config
from ..models.auto import BASE_CLASSES, from_config
from ..quant import quantization_of
from ..tokenizer import load_tokenizer
from .trainer import TrainConfig, Trainer

SPLITS = ("train", "validation", "test")


def mlm_examples(documents, tokenizer, max_length: int) -> list[dict]:
    """[CLS] chunk [SEP] examples that fill max_length from each document's running text, for
    masked-LM-only models (RoBERTa, DistilBERT, *ForMaskedLM)."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    examples, width = [], max_length - 2
    for document in documents:
        text = " ".join(document) if isinstance(document, list) else document
        ids = tokenizer(text, truncation=False, padding=False)["input_ids"][0][1:-1]
        for start in range(0, len(ids), width):
            chunk = [cls, *ids[start : start + width], sep]
            examples.append(
                {
                    "input_ids": np.array(chunk, np.int64),
                    "token_type_ids": np.zeros(len(chunk), np.int64),
                }
            )
    return examples


def pretraining_batches(
    documents,
    tokenizer,
    config: EncoderConfig,
    max_length: int,
    batch_size: int,
    whole_word: bool = False,
):
    """`batches(epoch, rng)` for the trainer: pairs (if any) and masks drawn anew each epoch."""
    pair_task = None
    if config.architecture.endswith("ForPreTraining"):
        pair_task = make_sop_examples if config.model_type == "albert" else make_nsp_examples
    fixed = None if pair_task else mlm_examples(documents, tokenizer, max_length)

    def epoch_batches(epoch, rng):
        examples = pair_task(documents, tokenizer, max_length, rng) if pair_task else fixed
        for batch in batches(examples, batch_size, rng, pad_id=tokenizer.pad_token_id):
            yield mask_batch(batch, tokenizer, rng, whole_word=whole_word)

    return epoch_batches


def mlm_metrics(model, batches) -> dict:
    """Masked-token accuracy and loss (and pair accuracy for NSP/SOP) over fixed batches."""
    correct = total = pair_correct = pair_total = 0
    loss_sum = 0.0
    for batch in batches:
        out = model(**batch)
        logits = out.prediction_logits if "prediction_logits" in out else out.logits
        chosen = batch["labels"] != IGNORE_INDEX
        correct += int((logits.argmax(-1)[chosen] == batch["labels"][chosen]).sum())
        total += int(chosen.sum())
        loss_sum += float(out.loss) * int(chosen.sum())
        pair = batch.get("next_sentence_label", batch.get("sentence_order_label"))
        if pair is not None:
            pair_correct += int((out.seq_relationship_logits.argmax(-1) == pair).sum())
            pair_total += len(pair)
    metrics = {"mlm_accuracy": correct / max(total, 1), "mlm_loss": loss_sum / max(total, 1)}
    if pair_total:
        metrics["pair_accuracy"] = pair_correct / pair_total
    return metrics


def pretrain(
    documents,
    tokenizer,
    config: EncoderConfig,
    train: TrainConfig,
    output_dir,
    eval_documents=None,
    max_length: int = 128,
    batch_size: int = 32,
    whole_word: bool = False,
    resume: bool = False,
):
    """Pretrain a fresh model of `config` on documents; returns (model, history)."""
    model = from_config(config, seed=train.seed)
    train_batches = pretraining_batches(
        documents, tokenizer, config, max_length, batch_size, whole_word
    )
    eval_fn = None
    if eval_documents:
        held_out = pretraining_batches(
            eval_documents, tokenizer, config, max_length, batch_size, whole_word
        )
        fixed = list(held_out(0, np.random.default_rng(12345)))  # the same masks every time
        eval_fn = lambda m: mlm_metrics(m, fixed)  # noqa: E731
    trainer = Trainer(model, train_batches, train, eval_fn=eval_fn, output_dir=output_dir)
    if resume and trainer.latest_checkpoint() is not None:
        trainer.resume()
    history = trainer.train()
    if trainer.latest_checkpoint() is not None:  # output_dir=None keeps nothing on disk
        tokenizer.save(trainer.latest_checkpoint())
    return model, history


def classifier_batches(examples, batch_size: int, pad_id: int):
    """`batches(epoch, rng)` for the trainer: the examples shuffled and padded anew each epoch."""

    def epoch_batches(epoch, rng):
        return batches(examples, batch_size, rng, pad_id=pad_id)

    return epoch_batches


def predict(model, examples, batch_size: int, pad_id: int, multi_label: bool = False):
    """Predicted label ids, in the order of examples; with multi_label, (N, K) booleans, True
    where a label's probability exceeds 0.5 (its logit exceeds 0)."""
    chunks = []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_id)
        batch.pop("labels", None)
        logits = model(**batch).logits  # (B, K)
        chunks.append(logits > 0 if multi_label else logits.argmax(-1))
    if not chunks:
        return np.zeros((0, model.config.num_labels) if multi_label else 0, np.int64)
    return np.concatenate(chunks)


def classification_splits(
    texts, label_ids, groups, tokenizer, max_length: int, split_seed: int = 0
) -> dict:
    """{"train", "validation", "test"}: tokenized examples, split 80/10/10 by group (seeded), so
    no group (e.g. a movie) is in two splits. finetune and distill_task share it."""
    index = np.arange(len(texts))
    rows = group_split(index, groups, seed=split_seed)

    label_ids = np.asarray(label_ids)  # (N,) ids, or (N, K) rows of 0/1 for multi-label

    def examples(chosen):
        return classification_examples(
            [texts[i] for i in chosen], label_ids[chosen], tokenizer, max_length
        )

    return {name: examples(chosen) for name, chosen in zip(SPLITS, rows, strict=True)}


def split_metrics(model, examples, batch_size: int, pad_id: int) -> dict:
    """Accuracy and macro-F1 of a classifier on tokenized examples; for multi-label examples
    (a row of 0/1 each), multi_label_metrics."""
    gold = np.array([e["labels"] for e in examples])
    if gold.ndim == 2:
        return multi_label_metrics(predict(model, examples, batch_size, pad_id, True), gold)
    return classification_metrics(predict(model, examples, batch_size, pad_id), gold)


def multi_label_metrics(predicted, gold) -> dict:
    """Exact match (every label of a text right), micro-F1 (over all text-label decisions) and
    macro-F1 (the mean over labels) of (N, K) 0/1 predictions against (N, K) 0/1 truth."""
    predicted, gold = np.asarray(predicted, bool), np.asarray(gold) > 0.5  # (N, K)
    tp = (predicted & gold).sum(0)  # (K,)
    fp = (predicted & ~gold).sum(0)
    fn = (~predicted & gold).sum(0)
    per_label = 2 * tp / np.maximum(2 * tp + fp + fn, 1)  # (K,); no text and no guess: 0
    return {
        "exact_match": float((predicted == gold).all(1).mean()) if len(gold) else 0.0,
        "micro_f1": float(2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)),
        "macro_f1": float(per_label.mean()) if len(per_label) else 0.0,
    }


def finetune(
    model_path,
    texts,
    label_ids,
    groups,
    train: TrainConfig,
    output_dir,
    tokenizer=None,
    max_length: int = 128,
    batch_size: int = 32,
    num_labels=None,
    split_seed: int = 0,
    resume: bool = False,
    label_names=None,
    multi_label: bool = False,
):
    """Fine-tune a checkpoint as a sequence classifier; returns (model, history, report).

    label_ids: one id per text, or with multi_label one row of K 0/1 per text. label_names
    (the class of each id) go into the saved config.json's id2label and label2id.
    """
    fine_tunable(model_path)
    tokenizer = tokenizer or load_tokenizer(model_path)
    label_ids = np.asarray(label_ids)
    if multi_label and label_ids.ndim != 2:
        raise ValueError(f"multi_label needs (N, K) rows of 0/1, got label_ids {label_ids.shape}")
    if num_labels is None:
        num_labels = label_ids.shape[1] if multi_label else int(label_ids.max()) + 1
    architecture = classifier_architecture(model_path, "ForSequenceClassification")
    model = load(model_path, architecture=architecture, num_labels=num_labels, seed=train.seed)
    problem = "multi_label_classification" if multi_label else "single_label_classification"
    name_labels(model, label_names, problem)
    splits = classification_splits(texts, label_ids, groups, tokenizer, max_length, split_seed)
    pad = tokenizer.pad_token_id

    def evaluate(m, name="validation"):
        return split_metrics(m, splits[name], batch_size, pad)

    history = fit_classifier(
        model, tokenizer, splits["train"], train, evaluate, batch_size, pad, output_dir, resume
    )
    report = {
        "sizes": {k: len(v) for k, v in splits.items()},
        "validation": evaluate(model, "validation"),
        "test": evaluate(model, "test"),
        "initialized": model.load_report.get("initialized", []),
    }
    return model, history, report


def fit_classifier(
    model, tokenizer, examples, train, evaluate, batch_size, pad_id, output_dir, resume
):
    """Train a classifier (sequences or tokens) on its examples with `evaluate` as the Trainer's
    check, from the folder's last checkpoint when resume, and put the tokenizer beside the last
    checkpoint's weights; returns the history, the model left in eval mode."""
    trainer = Trainer(
        model,
        classifier_batches(examples, batch_size, pad_id),
        train,
        eval_fn=evaluate,
        output_dir=output_dir,
    )
    if resume and trainer.latest_checkpoint() is not None:
        trainer.resume()
    history = trainer.train()
    model.eval()
    if trainer.latest_checkpoint() is not None:  # output_dir=None keeps nothing on disk
        tokenizer.save(trainer.latest_checkpoint())
    return history


def fine_tunable(model_path) -> EncoderConfig:
    """The config of a model folder that can be fine-tuned; CheckpointError for a missing folder
    (checked before its tokenizer, so the message names the model) or an int8 model."""
    folder = Path(model_path)
    if not folder.is_dir():
        why = "is a file, not a model folder" if folder.exists() else "does not exist"
        raise CheckpointError(f"model folder {folder} {why}")
    config = read_config(folder)
    if quantization_of(config) is not None:
        raise CheckpointError(
            f"{folder} holds an int8 (quantized) model, which runs inference only: fine-tune "
            "the float32 model it was made from (--qat trains through int8 rounding), then "
            "quantize the result"
        )
    return config


def name_labels(model, label_names, problem_type: str | None = None) -> None:
    """Write the class names (id order) into the model's config, as transformers keeps them:
    id2label {"0": name, ...} and label2id {name: 0, ...}; and problem_type when given. Every
    checkpoint saved afterwards carries them in config.json."""
    extra = dict(model.config.hf_extra)
    if label_names is not None:
        names = [str(name) for name in label_names]
        if len(names) != model.config.num_labels or len(set(names)) != len(names):
            raise ValueError(
                f"label_names must be {model.config.num_labels} distinct names, got {names}"
            )
        extra["id2label"] = {str(i): name for i, name in enumerate(names)}
        extra["label2id"] = {name: i for i, name in enumerate(names)}
    if problem_type is not None:
        extra["problem_type"] = problem_type
    model.config = model.config.replace(hf_extra=extra)


def classifier_architecture(model_path, task: str) -> str:
    """The family's class for a task, e.g. "BertForTokenClassification" for a BERT folder."""
    family = BASE_CLASSES[read_config(Path(model_path)).model_type].__name__  # e.g. "BertModel"
    return family.removesuffix("Model") + task


def plot_history(history, path, title: str = "") -> Path:
    """Loss per step (and each evaluation metric) as a PNG; needs matplotlib (imported here:
    an optional extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, 2 if history.evals else 1, figsize=(10 if history.evals else 5, 3.5)
    )
    axes = np.atleast_1d(axes)
    losses = np.array(history.loss)
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    axes[0].plot(history.step, losses, alpha=0.3, label="loss")
    axes[0].plot(history.step[window - 1 :], smooth, label=f"mean of {window}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss")
    axes[0].legend()
    if history.evals:
        steps = [e["step"] for e in history.evals]
        for key in history.evals[0]:
            if key != "step" and "loss" not in key:
                axes[1].plot(steps, [e[key] for e in history.evals], marker="o", label=key)
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("held-out")
        axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
