"""The distillation runs reported in docs/results/distill.json, reproducible from the offline data.

    python scripts/fetch_data.py                        # the corpora, Rotten Tomatoes, Lee
    python scripts/train_reports.py finetune            # the RT classifier (the task teacher)
    python scripts/distill_reports.py time              # seconds per step of every recipe
    python scripts/distill_reports.py layers            # each 2-layer pick of MiniLM, untrained
    python scripts/distill_reports.py agnostic --recipes distilbert --layers 4 5 --steps 400
    python scripts/distill_reports.py agnostic --recipes tinybert --steps 600
    python scripts/distill_reports.py agnostic --recipes albert --steps 200
    python scripts/distill_reports.py task --recipes distilbert      # 2 epochs, 638 steps
    python scripts/distill_reports.py task --recipes tinybert --steps 638
    python scripts/distill_reports.py lee               # teacher vs every student, again

(Each agnostic run and each task pair takes 15-30 minutes on a busy 2-core CPU; `time` measures
what a step costs on yours.)

agnostic: all-MiniLM-L6-v2 (no MLM head) distilled into each recipe's student on sentences of
the offline corpus (a seeded sample), its hidden states and mean-pooled sentence embeddings
(distill.recipes.agnostic_weights); 256 held-out sentences and the Lee correlation measured
four times per run. task: the Rotten Tomatoes classifier of the training issue distilled into a
smaller student on its logits (soft targets at T = 2 + hard labels), and the same student from
the same initialisation trained on the labels alone; the split is finetune's (by movie, seed 0).
The student starts from the agnostic run's student when there is one (--init agnostic: general
then task distillation, as TinyBERT), else from the recipe's builder (--init recipe). lee: the
Spearman and Pearson correlations of the teacher, each student before distillation (the
recipe's initialisation) and after. layers: the distilbert student with 2 of MiniLM's 6
layers (33% of its encoder, the size the distillation issue asks for) copied from each pair
of teacher layers, before training: its Lee correlation and the mean cosine of its sentence
vectors with the teacher's on the held-out sentences; the best pair (4, 5) is the one the
agnostic run above copies; that run, quantized with `minibert quantize`, was the model
minibert shipped before minilm-l6-int4 (docs/model-card.md, "History").

Runs checkpoint as they go (--runs, default runs/distill/ beside the data cache): run the same
command again to resume. Each command updates its own section of docs/results/distill.json
(--results); a short trial run should point both elsewhere.
"""

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

import minibert
from minibert.data.batches import batches, text_examples
from minibert.data.text import corpus_files, corpus_sentences, data_dir
from minibert.distill.objective import DistillationObjective
from minibert.distill.recipes import (
    TASK_WEIGHTS,
    agnostic_weights,
    build_student,
    distill_agnostic,
    distill_task,
)
from minibert.distill.students import RECIPES
from minibert.evaluation.lee import lee_scores, read_lee
from minibert.sentence import sentence_length
from minibert.training.recipes import classification_splits, classifier_batches
from minibert.training.trainer import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "distill.json"
HELD_OUT = 256  # held-out sentences of the agnostic runs
TASK_LENGTH = 64  # the classifier's fine-tuning length (scripts/train_reports.py)


def default_runs() -> Path:
    return data_dir().parent / "runs" / "distill"


def task_teacher(args) -> Path:
    if args.teacher:
        return Path(args.teacher)
    runs = data_dir().parent / "runs" / "finetune" / "run"
    found = sorted(runs.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not found:
        raise SystemExit(f"no classifier in {runs}: run scripts/train_reports.py finetune first")
    return found[-1]


def agnostic_teacher() -> Path:
    from minibert.pretrained import minilm_path

    return minilm_path()


def sentences(max_texts: int, held_out: int = HELD_OUT, folder=None):
    """The seeded sample of corpus sentences (folder: default the cache's corpus/): (train,
    held out). scripts/build_shipped_model.py trims the bundled model's vocabulary on it."""
    folder = Path(folder) if folder is not None else data_dir() / "corpus"
    picked = corpus_sentences(corpus_files(folder), max_texts=max_texts + held_out)
    order = np.random.default_rng(0).permutation(len(picked))
    return [picked[i] for i in order[held_out:]], [picked[i] for i in order[:held_out]]


def rotten_tomatoes():
    """Texts, labels (fresh = 1, as the classifier was trained) and movies."""
    rows = list(csv.DictReader((data_dir() / "rotten_tomatoes.csv").open(encoding="utf-8")))
    return (
        [r["text"] for r in rows],
        [int(r["label"] == "fresh") for r in rows],
        [r["movie"] for r in rows],
    )


def train_config(steps: int, lr: float, evals: int) -> TrainConfig:
    """`evals` evaluations and checkpoints per run, 10% warmup, then linear decay."""
    every = max(1, steps // evals)
    return TrainConfig(
        max_steps=steps, lr=lr, warmup_steps=steps // 10, eval_every=every, save_every=every
    )


def agnostic_lr(recipe: str) -> float:
    return 1e-4 if recipe == "distilbert" else 5e-4  # a copied student vs a fresh one


def task_lr(recipe: str, init) -> float:
    if init is not None:  # an agnostic student
        return 1e-4
    return 5e-5 if recipe == "distilbert" else 5e-4  # the teacher's own layers, or fresh


def latest(folder: Path) -> Path | None:
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


# --- (a) task-agnostic distillation of all-MiniLM-L6-v2 -----------------------------------------
def run_agnostic(args) -> dict:
    texts, held_out = sentences(args.max_texts)
    results = {}
    for recipe in args.recipes:
        start = time.perf_counter()
        sizes = {}
        if args.layers is not None:
            if recipe != "distilbert":
                raise SystemExit("--layers picks the teacher layers of the distilbert student")
            sizes["layers"] = args.layers
        _, history, report = distill_agnostic(
            agnostic_teacher(),
            recipe,
            texts,
            train_config(args.steps, args.lr or agnostic_lr(recipe), evals=4),
            args.runs / f"agnostic-{recipe}",
            max_length=args.max_length,
            batch_size=args.batch_size,
            resume=True,
            eval_texts=held_out,
            lee_dir=data_dir() / "lee",
            log=print,
            **sizes,
        )
        report.update(
            checkpoint=_relative(report["checkpoint"], args.runs),
            teacher_layers=args.layers if args.layers is not None else "recipe default",
            steps=args.steps,
            batch_size=args.batch_size,
            max_length=args.max_length,
            lr=args.lr or agnostic_lr(recipe),
            held_out=len(held_out),
            seconds_this_run=round(time.perf_counter() - start),
            first_loss=history.loss[0],
            last_loss=float(np.mean(history.loss[-20:])),
            evals=history.evals,
        )
        results[recipe] = report
        print(json.dumps({k: report[k] for k in ("recipe", "student", "final", "lee")}))
    return results


def _relative(path, runs: Path) -> str:
    """A checkpoint as runs/<run>/<checkpoint>: results files name no machine's folders."""
    path = Path(path)
    try:
        return str(Path("runs") / path.relative_to(runs))
    except ValueError:
        return path.name


# --- (b) task-specific distillation of the RT classifier -----------------------------------------
def run_task(args) -> dict:
    texts, labels, movies = rotten_tomatoes()
    teacher = task_teacher(args)
    steps = args.steps or args.epochs * int(np.ceil(0.8 * len(texts) / args.batch_size))
    results = {}
    for recipe in args.recipes:
        init = None
        if args.init == "agnostic":
            init = latest(args.runs / f"agnostic-{recipe}")
            if init is None:
                raise SystemExit(
                    f"no agnostic {recipe} student in {args.runs}: run the agnostic command "
                    "first, or use --init recipe"
                )
        lr = args.lr or task_lr(recipe, init)
        entry = results[f"{recipe}-{args.init}"] = {
            "init": _relative(init, args.runs) if init else "recipe"
        }
        for mode in ("distilled", "no_teacher"):
            start = time.perf_counter()
            _, history, report = distill_task(
                teacher,
                recipe,
                texts,
                labels,
                movies,
                train_config(steps, lr, evals=8),
                args.runs / f"task-{recipe}-{args.init}-{mode}",
                max_length=TASK_LENGTH,
                batch_size=args.batch_size,
                resume=True,
                no_teacher=mode == "no_teacher",
                student_init=init,
                log=print,
            )
            report.update(
                steps=steps,
                lr=lr,
                batch_size=args.batch_size,
                seconds_this_run=round(time.perf_counter() - start),
                evals=history.evals,
            )
            if "checkpoint" in report:
                report["checkpoint"] = _relative(report["checkpoint"], args.runs)
            if init is not None:  # results name no machine's folders
                report["student_init"] = _relative(init, args.runs)
            entry[mode] = report
            print(json.dumps({k: report[k] for k in ("recipe", "mode", "test", "teacher_test")}))
    return results


# --- (c) Lee correlations ------------------------------------------------------------------------
def run_lee(args) -> dict:
    lee = read_lee(data_dir() / "lee")
    folder = agnostic_teacher()
    teacher = minibert.load(folder)
    tokenizer = minibert.load_tokenizer(folder)
    length = sentence_length(folder, teacher)
    results = {
        "teacher": {"model": "all-MiniLM-L6-v2", **lee_scores(teacher, tokenizer, lee, length)}
    }
    for recipe in args.recipes:
        before = build_student(recipe, teacher, seed=0).eval()
        entry = {"before": lee_scores(before, tokenizer, lee, length)}
        trained = latest(args.runs / f"agnostic-{recipe}")
        if trained is not None:
            student = minibert.load(trained)
            entry["after"] = {
                "checkpoint": trained.name,
                **lee_scores(student, tokenizer, lee, length),
            }
        results[recipe] = entry
        print(recipe, json.dumps({k: v["spearman"] for k, v in entry.items()}))
    return results


# --- which teacher layers a 2-layer distilbert student starts from ------------------------------
def run_layers(args) -> dict:
    """The Lee correlation of distilbert students copied from each choice of teacher layers,
    before any training, and the mean cosine of their sentence vectors with the teacher's on
    the held-out sentences: a cheap way to pick the initialisation."""
    lee = read_lee(data_dir() / "lee")
    folder = agnostic_teacher()
    teacher = minibert.load(folder)
    tokenizer = minibert.load_tokenizer(folder)
    length = sentence_length(folder, teacher)
    _, held_out = sentences(args.max_texts)
    target = _sentence_vectors(teacher, tokenizer, held_out)
    results = {
        "teacher": lee_scores(teacher, tokenizer, lee, length)["spearman"],
        "held_out": len(held_out),
        "choices": {},
    }
    for choice in args.choices:
        layers = [int(i) for i in choice.split(",")]
        student = build_student("distilbert", teacher, seed=0, layers=layers).eval()
        scores = lee_scores(student, tokenizer, lee, length)
        results["choices"][choice] = {
            "layers": layers,
            "parameters": student.num_parameters(),
            "spearman": scores["spearman"],
            "pearson": scores["pearson"],
            "mean_cosine_with_teacher": float(
                np.mean(np.sum(_sentence_vectors(student, tokenizer, held_out) * target, 1))
            ),
        }
        print(
            choice, {k: round(v, 4) for k, v in results["choices"][choice].items() if k[0] in "sm"}
        )
    return results


def _sentence_vectors(model, tokenizer, texts, batch_size: int = 64):
    """Unit-length mean-pooled vectors, (N, C)."""
    from minibert.functional.pooling import l2_normalize, pool

    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start : start + batch_size], max_length=128)
        hidden = model(enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        out.append(l2_normalize(pool(hidden, enc["attention_mask"], "mean")))
    return np.concatenate(out)


# --- seconds per step -----------------------------------------------------------------------------
def time_steps(model, batches, objective, steps: int) -> float:
    """Seconds per optimizer step (batch forward + backward + AdamW), after one warm-up step
    that compiles the Numba kernels."""
    warm = Trainer(model, batches, TrainConfig(max_steps=1, progress=False), objective=objective)
    warm.train()
    config = TrainConfig(max_steps=steps, progress=False, seed=1)
    trainer = Trainer(model, batches, config, objective=objective)
    start = time.perf_counter()
    trainer.train()
    return (time.perf_counter() - start) / steps


def run_time(args) -> dict:
    tokenizer = minibert.load_tokenizer(agnostic_teacher())
    texts, _ = sentences(args.batch_size * (args.steps + 1) * 4)
    examples = text_examples(texts, tokenizer, args.max_length)

    def plain(epoch, rng):
        return batches(examples, args.batch_size, rng, pad_id=tokenizer.pad_token_id)

    results = {
        "machine": f"{os.cpu_count()} CPUs",
        "load_average_at_start": round(os.getloadavg()[0], 2),  # other work slows every figure
        "steps_timed": args.steps,
        "agnostic": {},
    }
    teacher = minibert.load(agnostic_teacher())
    for recipe in args.recipes:
        student = build_student(recipe, teacher, seed=0)
        objective = DistillationObjective(student, teacher, agnostic_weights(recipe))
        seconds = time_steps(student, plain, objective, args.steps)
        results["agnostic"][recipe] = {
            "seconds_per_step": round(seconds, 3),
            "steps_in_15_minutes": int(900 / seconds),
            "parameters": student.num_parameters(),
        }
        print("agnostic", recipe, results["agnostic"][recipe])
    rt_texts, labels, movies = rotten_tomatoes()
    classifier = minibert.load(task_teacher(args))
    splits = classification_splits(rt_texts, labels, movies, tokenizer, TASK_LENGTH, 0)
    task_batches = classifier_batches(splits["train"], args.batch_size, tokenizer.pad_token_id)
    results["task"] = {}
    for recipe in args.recipes:
        entry = {}
        for mode in ("distilled", "no_teacher"):
            student = build_student(recipe, classifier, seed=0)
            objective = None
            if mode == "distilled":
                objective = DistillationObjective(student, classifier, TASK_WEIGHTS)
            seconds = time_steps(student, task_batches, objective, args.steps)
            entry[mode] = {
                "seconds_per_step": round(seconds, 3),
                "steps_in_15_minutes": int(900 / seconds),
            }
        results["task"][recipe] = entry
        print("task", recipe, entry)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=default_runs(), help="checkpoints go here")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON to update")
    sub = parser.add_subparsers(dest="run", required=True)
    every = sorted(RECIPES)
    a = sub.add_parser("agnostic", help="(a) MiniLM into each student on the offline corpus")
    a.add_argument("--recipes", nargs="+", default=every, choices=every)
    a.add_argument("--steps", type=int, default=400)
    a.add_argument("--lr", type=float, help="default 1e-4 (distilbert), 5e-4 (fresh students)")
    a.add_argument("--batch-size", type=int, default=32)
    a.add_argument("--max-length", type=int, default=128)
    a.add_argument("--max-texts", type=int, default=50000, help="sentences sampled")
    a.add_argument(
        "--layers", type=int, nargs="+", help="distilbert: the teacher layers to copy (0-based)"
    )
    t = sub.add_parser("task", help="(b) the RT classifier into a student, with and without it")
    t.add_argument("--recipes", nargs="+", default=["distilbert", "tinybert"], choices=every)
    t.add_argument("--init", choices=("agnostic", "recipe"), default="agnostic")
    t.add_argument("--steps", type=int, help="default: --epochs over the training split")
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--lr", type=float)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--teacher", help="default: the newest runs/finetune/run checkpoint")
    lee = sub.add_parser("lee", help="(c) Lee correlations, teacher vs students")
    lee.add_argument("--recipes", nargs="+", default=every, choices=every)
    layers = sub.add_parser("layers", help="Lee of 2-layer distilbert students, untrained")
    layers.add_argument(
        "--choices",
        nargs="+",
        default=[f"{a},{b}" for a in range(6) for b in range(a + 1, 6)],
        help="comma-separated teacher layers (default: every pair of MiniLM's six)",
    )
    layers.add_argument("--max-texts", type=int, default=50000, help="as for agnostic")
    timing = sub.add_parser("time", help="seconds per step of each recipe, both tasks")
    timing.add_argument("--recipes", nargs="+", default=every, choices=every)
    timing.add_argument("--steps", type=int, default=5)
    timing.add_argument("--batch-size", type=int, default=32)
    timing.add_argument("--max-length", type=int, default=128)
    timing.add_argument("--teacher", help="default: the newest runs/finetune/run checkpoint")
    args = parser.parse_args(argv)
    run = {
        "agnostic": run_agnostic,
        "task": run_task,
        "lee": run_lee,
        "time": run_time,
        "layers": run_layers,
    }[args.run]
    result = run(args)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    everything = json.loads(args.results.read_text()) if args.results.is_file() else {}
    section = everything.setdefault(args.run, {})
    if args.run in ("time", "layers"):
        everything[args.run] = result
    else:
        section.update(result)  # one recipe's rerun keeps the others
    if args.run == "agnostic":  # the Lee figures of these runs, in (c)'s section too
        everything.setdefault("lee", {})
        for recipe, report in result.items():
            everything["lee"].setdefault(recipe, {})["after"] = report["lee"]["student"]
            everything["lee"]["teacher"] = {"model": "all-MiniLM-L6-v2", **report["lee"]["teacher"]}
    args.results.write_text(json.dumps(everything, indent=1) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
