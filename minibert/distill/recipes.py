"""Distillation runs on top of the trainer; the CLI's `minibert distill` calls these.

distill_agnostic: a student of a teacher without an MLM head (all-MiniLM-L6-v2 is a sentence
encoder) learns the teacher's hidden states and sentence embeddings on plain sentences: the
recipe's L_cos / L_hidn / L_attn (its logit losses switched off, there are no logits) plus
L_sent, 1 - cos between the mean-pooled sentence vectors (agnostic_weights). No masking: every
token is seen as it is.

distill_task: a classifier teacher (e.g. MiniLM fine-tuned on Rotten Tomatoes) and a smaller
student trained on its logits, soft targets at temperature T plus the hard labels
(TASK_WEIGHTS, DistilBERT's 5 : 2 at T = 2), on the split of recipes.finetune; with
no_teacher=True the same student from the same initialisation learns from the labels alone,
the baseline the distilled student is compared with.

Both report the Lee benchmark (evaluation/lee.py) of teacher and student when given its data.

Every checkpoint of a student carries the teacher's tokenizer files (and its sentence-
transformers pooling files), so minibert.SentenceEncoder and `minibert encode --model` take a
student folder as they are.
"""

import inspect
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..data.batches import batches, text_examples
from ..evaluation.lee import lee_scores, read_lee
from ..evaluation.metrics import classification_metrics
from ..io import load, read_config
from ..models.auto import BASE_CLASSES
from ..sentence import sentence_length
from ..tokenizer import copy_tokenizer_files, load_tokenizer
from ..training.recipes import classification_splits, classifier_batches, predict, split_metrics
from ..training.trainer import TrainConfig, Trainer
from .objective import DistillationObjective, LossWeights
from .students import RECIPES, describe, make_student, parameter_report

# the student's loss on a classifier's logits: DistilBERT's 5 L_soft + 2 L_hard at T = 2
TASK_WEIGHTS = LossWeights(soft=5.0, hard=2.0, temperature=2.0)
__all__ = [
    "TASK_WEIGHTS",
    "agnostic_weights",
    "build_student",
    "distill_agnostic",
    "distill_task",
]


class StudentTrainer(Trainer):
    """The trainer, with the teacher's tokenizer files in every checkpoint it writes."""

    def __init__(self, *args, tokenizer_folder, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokenizer_folder = Path(tokenizer_folder)

    def save_checkpoint(self):
        folder = super().save_checkpoint()
        if folder is not None:
            copy_tokenizer_files(self.tokenizer_folder, folder, self.model.config.hidden_size)
        return folder


def _train_student(student, batches, train, evaluate, output_dir, objective, teacher_path, resume):
    """Train with a StudentTrainer (from its latest checkpoint when resume is set and there is
    one); returns (trainer, history). The two drivers below differ only in what they pass."""
    trainer = StudentTrainer(
        student,
        batches,
        train,
        eval_fn=evaluate,
        output_dir=output_dir,
        objective=objective,
        tokenizer_folder=teacher_path,
    )
    if resume and trainer.latest_checkpoint() is not None:
        trainer.resume()
    return trainer, trainer.train()


# --- task-agnostic distillation -----------------------------------------------------------------
def agnostic_weights(recipe: str) -> LossWeights:
    """A recipe's loss weights without logits: its L_cos / L_hidn / L_attn, plus L_sent = 1."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; the recipes are {sorted(RECIPES)}")
    return RECIPES[recipe].weights.replace(soft=0.0, hard=0.0, sentence=1.0)


def build_student(recipe: str, teacher, seed: int, **student_sizes):
    """make_student, seeding the students that start fresh (tinybert, albert) with `seed`."""
    if recipe in RECIPES and "seed" in inspect.signature(RECIPES[recipe].build).parameters:
        student_sizes.setdefault("seed", seed)
    return make_student(recipe, teacher, **student_sizes)


def distill_agnostic(
    teacher_path,
    recipe: str,
    texts,
    train: TrainConfig,
    output_dir,
    max_length: int = 128,
    batch_size: int = 32,
    resume: bool = False,
    eval_texts=None,
    lee_dir=None,
    weights: LossWeights | None = None,
    log=None,
    **student_sizes,
):
    """Distil a teacher folder (any model with hidden states, no head needed) into the recipe's
    student on plain texts; returns (student, history, report).

    Args:
        weights: the loss weights (default agnostic_weights(recipe)); logit losses must be 0.
        eval_texts: held-out texts; each evaluation reports the objective's losses on them.
        lee_dir: a folder with lee.cor and similarities.txt; evaluations then report the
            student's Lee correlation, and the report has the teacher's beside it.
        student_sizes: passed to the recipe's student builder (num_hidden_layers=, ...).
        log: called with a line of text (the sizes of teacher and student) before training.
    """
    teacher = load(teacher_path)
    tokenizer = load_tokenizer(teacher_path)
    weights = weights or agnostic_weights(recipe)
    if weights.soft or weights.hard:
        raise ValueError("task-agnostic distillation has no logits: set soft and hard to 0")
    student = build_student(recipe, teacher, train.seed, **student_sizes)
    objective = DistillationObjective(student, teacher, weights)
    if log is not None:
        log(parameter_report(student, teacher))
    examples = text_examples(texts, tokenizer, max_length)
    pad = tokenizer.pad_token_id

    def epoch_batches(epoch, rng):
        return batches(examples, batch_size, rng, pad_id=pad)

    held_out = []
    if eval_texts:
        held_out = list(
            batches(
                text_examples(eval_texts, tokenizer, max_length),
                batch_size,
                pad_id=pad,
                shuffle=False,
            )
        )
    lee = read_lee(lee_dir) if lee_dir is not None else None
    lee_length = sentence_length(teacher_path, teacher)

    def evaluate(model):
        metrics = {}
        if held_out:
            sums = {}
            for batch in held_out:  # eval mode: no dropout, no caches
                objective(batch)
                for name, value in objective.losses.items():
                    sums[name] = sums.get(name, 0.0) + value
            metrics = {f"held_out_{k}": v / len(held_out) for k, v in sums.items()}
        if lee is not None:
            metrics["lee_spearman"] = lee_scores(model, tokenizer, lee, lee_length)["spearman"]
        return metrics

    trainer, history = _train_student(
        student, epoch_batches, train, evaluate, output_dir, objective, teacher_path, resume
    )
    report = {
        "recipe": recipe,
        "teacher": describe(teacher),
        "student": describe(student),
        "parameters": student.num_parameters(),
        "teacher_parameters": teacher.num_parameters(),
        "weights": asdict(weights),
        "texts": len(examples),
        "checkpoint": str(trainer.latest_checkpoint()),
        "final": history.evals[-1] if history.evals else {},
    }
    if lee is not None:
        report["lee"] = {
            "teacher": lee_scores(teacher, tokenizer, lee, lee_length),
            "student": lee_scores(student.eval(), tokenizer, lee, lee_length),
        }
    return student, history, report


# --- task-specific distillation -----------------------------------------------------------------
def distill_task(
    teacher_path,
    recipe: str,
    texts,
    labels,
    groups,
    train: TrainConfig,
    output_dir,
    max_length: int = 128,
    batch_size: int = 32,
    split_seed: int = 0,
    resume: bool = False,
    no_teacher: bool = False,
    student_init=None,
    weights: LossWeights | None = None,
    log=None,
    **student_sizes,
):
    """Distil a *ForSequenceClassification teacher folder into a smaller classifier on its
    logits; returns (student, history, report) with accuracy and macro-F1 as recipes.finetune.

    The split is recipes.finetune's (80/10/10 by group, split_seed). With no_teacher=True the
    same student (same initialisation, batches and schedule) learns from the labels alone.

    Args:
        student_init: a model folder to start the student from instead of the recipe's
            builder (e.g. the student of distill_agnostic: TinyBERT's general distillation
            then task distillation), loaded with a fresh classification head (seeded).
        weights: the loss weights (default TASK_WEIGHTS); ignored with no_teacher.
        log: called with a line of text (the sizes of teacher and student) before training.
    """
    teacher = load(teacher_path)
    if not teacher.config.architecture.endswith("ForSequenceClassification"):
        raise ValueError(
            f"task distillation needs a *ForSequenceClassification teacher; {teacher_path} "
            f"holds a {teacher.config.architecture}"
        )
    tokenizer = load_tokenizer(teacher_path)
    num_labels = teacher.config.num_labels
    if len(labels) and (int(np.min(labels)) < 0 or int(np.max(labels)) >= num_labels):
        raise ValueError(
            f"labels must be ids in 0..{num_labels - 1} (the teacher's {num_labels} classes), "
            f"got {int(np.min(labels))}..{int(np.max(labels))}"
        )
    if student_init is not None:
        student = _student_from_folder(student_init, teacher, train.seed)
    else:
        student = build_student(recipe, teacher, train.seed, **student_sizes)
    if log is not None:
        log(parameter_report(student, teacher))
    splits = classification_splits(texts, labels, groups, tokenizer, max_length, split_seed)
    pad = tokenizer.pad_token_id

    def evaluate(model, name="validation"):
        return split_metrics(model, splits[name], batch_size, pad)

    weights = weights or TASK_WEIGHTS
    objective = None if no_teacher else DistillationObjective(student, teacher, weights)
    batches = classifier_batches(splits["train"], batch_size, pad)
    trainer, history = _train_student(
        student, batches, train, evaluate, output_dir, objective, teacher_path, resume
    )
    student.eval()
    gold = np.array([int(e["labels"]) for e in splits["test"]])
    test_predictions = predict(student, splits["test"], batch_size, pad)
    teacher_predictions = predict(teacher, splits["test"], batch_size, pad)
    report = {
        "recipe": recipe,
        "mode": "no_teacher" if no_teacher else "distilled",
        "student": describe(student),
        "student_init": str(student_init) if student_init is not None else recipe,
        "parameters": student.num_parameters(),
        "teacher_parameters": teacher.num_parameters(),
        "weights": None if no_teacher else asdict(weights),
        "sizes": {k: len(v) for k, v in splits.items()},
        "validation": evaluate(student, "validation"),
        "test": classification_metrics(test_predictions, gold),
        "teacher_test": classification_metrics(teacher_predictions, gold),
        "test_agreement_with_teacher": float(np.mean(test_predictions == teacher_predictions)),
        "checkpoint": str(trainer.latest_checkpoint()),
    }
    return student, history, report


def _student_from_folder(folder, teacher, seed: int):
    """A model folder loaded as a classifier of the teacher's labels, with a fresh head."""
    config = read_config(Path(folder))
    family = BASE_CLASSES[config.model_type].__name__.removesuffix("Model")
    if config.vocab_size != teacher.config.vocab_size:
        raise ValueError(
            f"the student in {folder} has a vocabulary of {config.vocab_size}, the teacher "
            f"{teacher.config.vocab_size}: they must share the tokenizer"
        )
    return load(
        folder,
        architecture=family + "ForSequenceClassification",
        num_labels=teacher.config.num_labels,
        seed=seed,
    )
