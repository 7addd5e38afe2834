"""Build the model minibert ships (minibert/shipped/minilm-l2-int8) from all-MiniLM-L6-v2.

    python scripts/fetch_data.py                  # the offline corpus and the Lee benchmark
    python scripts/build_shipped_model.py         # distil, quantize, save, measure
    python scripts/build_shipped_model.py --latency   # ... and time it against the teacher

1. The student: a DistilBERT-style student of all-MiniLM-L6-v2 (distill.distilbert_student)
   made of the teacher's embeddings and its layers 4 and 5 (0-based; `distill_reports.py
   layers` measured every pair before training and this one scored best on both the Lee
   correlation and the cosine with the teacher). It is distilled task-agnostically on a seeded
   sample of 50,000 sentences of the offline corpus: 400 steps of 32 sentences cut to 128
   tokens, AdamW at 1e-4 with 10% warm-up then linear decay, seed 0; the loss is DistilBERT's
   cosine between the last hidden states of every token plus 1 - cos between the mean-pooled
   sentence vectors (distill.recipes.agnostic_weights("distilbert")). This is exactly the run
   `python scripts/distill_reports.py agnostic --recipes distilbert --layers 4 5 --steps 400`,
   in the same runs folder: when that run is already complete there it is reused, otherwise
   it is trained (or resumed). --fresh trains it again from the teacher.
2. int8: minibert.quantize(student) (linear layers and the word-embedding table), saved with
   save_pretrained, plus the tokenizer files and sentence_bert_config.json, into --output.
3. Measurements, written to --results (docs/results/shipped.json, which docs/model-card.md
   shows): size, parameters, the mean cosine with the teacher's sentence vectors and the
   agreement of nearest neighbours on the held-out sentences, the Lee correlation of teacher,
   float student and int8 student, and with --latency the forward time at 1 x 16 and 8 x 128
   tokens against the teacher in float32 and int8 (run it on a quiet machine: the load
   average is recorded beside the figures).

Everything is seeded: the same command on the same machine writes the same bytes
(tests/test_shipped.py checks this with a tiny run).
"""

import argparse
import json
import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

import minibert
from minibert.distill.recipes import distill_agnostic
from minibert.distill.students import describe
from minibert.evaluation.lee import lee_scores, read_lee
from minibert.functional.pooling import l2_normalize, pool
from minibert.pretrained import SHIPPED_NAME, minilm_path
from minibert.sentence import sentence_length
from minibert.training.trainer import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import distill_reports  # noqa: E402  (the sample of sentences and the runs folder)

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "minibert" / "shipped" / SHIPPED_NAME
RESULTS = ROOT / "docs" / "results" / "shipped.json"
LAYERS = (4, 5)  # the teacher layers the student starts from
RECIPE = "distilbert"
SHIPPED_FILES = (  # what the folder holds besides config.json and model.safetensors
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentence_bert_config.json",
)
LATENCY_SHAPES = ((1, 16), (8, 128))  # (batch, tokens)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128, help="tokens per sentence")
    parser.add_argument("--max-texts", type=int, default=50000, help="sentences sampled")
    parser.add_argument("--held-out", type=int, default=distill_reports.HELD_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=Path, help="folder of .txt files (default: the cache's)")
    parser.add_argument("--lee", type=Path, help="Lee data folder (default: the cache's lee/)")
    parser.add_argument("--no-lee", action="store_true", help="skip the Lee correlations")
    parser.add_argument(
        "--run-dir",
        type=Path,
        help="the distillation run (default: agnostic-distilbert in distill_reports' runs)",
    )
    parser.add_argument("--fresh", action="store_true", help="train again, ignoring the run")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the folder to write")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON to write")
    parser.add_argument("--latency", action="store_true", help="time it against the teacher")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per latency shape")
    return parser.parse_args(argv)


def train_config(args) -> TrainConfig:
    return TrainConfig(
        max_steps=args.steps,
        lr=args.lr,
        warmup_steps=args.steps // 10,
        eval_every=max(1, args.steps // 4),
        save_every=max(1, args.steps // 4),
        seed=args.seed,
        progress=sys.stderr.isatty(),
    )


def check_run(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to reuse a run trained with other settings (it would not be this model)."""
    latest = distill_reports.latest(run_dir)
    if latest is None:
        return
    state = json.loads((latest / "trainer_state.json").read_text())["config"]
    wanted = {"max_steps": config.max_steps, "lr": config.lr, "seed": config.seed}
    found = {k: state.get(k) for k in wanted}
    layers = json.loads((latest / "config.json").read_text()).get("num_hidden_layers")
    if found != wanted or layers != len(LAYERS):
        raise SystemExit(
            f"{run_dir} holds a run with {found}, {layers} layers; this build wants {wanted}, "
            f"{len(LAYERS)} layers: pass --fresh to train again, or another --run-dir"
        )


def sentence_vectors(model, tokenizer, texts, max_length: int = 128, batch_size: int = 64):
    """Unit-length mean-pooled vectors, (N, C) float32."""
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start : start + batch_size], max_length=max_length)
        hidden = model(enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        out.append(l2_normalize(pool(hidden, enc["attention_mask"], "mean")))
    return np.concatenate(out)


def agreement(vectors, reference) -> dict:
    """How close sentence vectors are to the reference's: the mean (and 5th percentile) cosine
    of each sentence's two vectors; top-1 retrieval agreement, the share of sentences whose
    nearest other sentence is the same under both models; and the share whose nearest other
    sentence under the reference is among the 5 nearest under `vectors`."""
    cosines = np.sum(vectors * reference, 1)

    def ranked(v):
        sim = v @ v.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1, kind="stable")

    ours, theirs = ranked(vectors), ranked(reference)
    return {
        "mean_cosine": float(cosines.mean()),
        "p5_cosine": float(np.percentile(cosines, 5)),
        "top1_agreement": float(np.mean(ours[:, 0] == theirs[:, 0])),
        "reference_top1_in_top5": float(np.mean(np.any(ours[:, :5] == theirs[:, :1], 1))),
        "sentences": len(vectors),
    }


def encoder_parameters(model) -> int:
    return sum(int(a.size) for name, a in model.named_parameters() if name.startswith("encoder."))


def folder_bytes(folder: Path) -> dict:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    return {"files": files, "total": sum(files.values())}


def latency(models: dict, repeats: int, seed: int = 0) -> dict:
    """Median milliseconds of one forward call per model and (batch, tokens) shape, on random
    token ids, after two warm-up calls (the first compiles or loads the Numba kernels)."""
    rng = np.random.default_rng(seed)
    results = {"load_average_before": round(os.getloadavg()[0], 2), "repeats": repeats}
    for B, T in LATENCY_SHAPES:
        ids = rng.integers(1000, 30000, (B, T))
        row = {}
        for name, model in models.items():
            for _ in range(2):
                model(ids)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                model(ids)
                times.append(time.perf_counter() - start)
            row[name] = round(1000 * float(np.median(times)), 3)
        results[f"{B}x{T}"] = row
        print(f"latency {B}x{T} (ms):", row)
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    return results


def save_shipped(qmodel, teacher_folder: Path, output: Path) -> None:
    """The int8 model and the files that make it a sentence encoder, in a clean folder."""
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    qmodel.save_pretrained(output)
    for name in SHIPPED_FILES:
        shutil.copyfile(teacher_folder / name, output / name)
    (output / "README.md").write_text(
        f"# {SHIPPED_NAME}\n\n"
        "The sentence encoder bundled with minibert: all-MiniLM-L6-v2's embeddings and its "
        "layers 4 and 5, distilled from the full model and quantized to int8. Load it with "
        "`minibert.SentenceEncoder(minibert.pretrained.shipped_path())`; `minibert demo`, "
        "`encode` and `similarity` use it by default.\n\n"
        "How it was made, its size, speed and agreement with the teacher: docs/model-card.md "
        "(rebuild it with `python scripts/build_shipped_model.py`). The teacher, "
        "sentence-transformers/all-MiniLM-L6-v2, is licensed under Apache-2.0; so is this "
        "derived model.\n",
        encoding="utf-8",
    )


def main(argv=None) -> dict:
    args = parse_args(argv)
    teacher_folder = minilm_path()
    run_dir = args.run_dir or distill_reports.default_runs() / f"agnostic-{RECIPE}"
    config = train_config(args)
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    check_run(run_dir, config)
    texts, held_out = distill_reports.sentences(args.max_texts, args.held_out, args.corpus)
    start = time.perf_counter()
    student, history, report = distill_agnostic(
        teacher_folder,
        RECIPE,
        texts,
        config,
        run_dir,
        max_length=args.max_length,
        batch_size=args.batch_size,
        resume=True,
        eval_texts=held_out,
        log=print,
        layers=list(LAYERS),
    )
    train_seconds = time.perf_counter() - start
    student.eval()
    qmodel = minibert.quantize(student)
    save_shipped(qmodel, teacher_folder, args.output)

    shipped = minibert.load(args.output)  # measure what was written, as a user will load it
    teacher = minibert.load(teacher_folder)
    tokenizer = minibert.load_tokenizer(args.output)
    reference = sentence_vectors(teacher, tokenizer, held_out, args.max_length)
    int8_vectors = sentence_vectors(shipped, tokenizer, held_out, args.max_length)
    float_vectors = sentence_vectors(student, tokenizer, held_out, args.max_length)
    teacher_int8 = minibert.quantize(teacher)
    teacher_int8_vectors = sentence_vectors(teacher_int8, tokenizer, held_out, args.max_length)
    results = {
        "name": SHIPPED_NAME,
        "built": date.today().isoformat(),
        "teacher": "sentence-transformers/all-MiniLM-L6-v2",
        "teacher_licence": "Apache-2.0",
        "student": describe(student),
        "recipe": {
            "student": f"distilbert_student(teacher, layers={list(LAYERS)})",
            "teacher_layers": list(LAYERS),
            "losses": {k: v for k, v in report["weights"].items() if v and k != "temperature"},
            "steps": args.steps,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "lr": args.lr,
            "warmup_steps": config.warmup_steps,
            "schedule": config.schedule,
            "seed": args.seed,
            "sentences": report["texts"],
            "held_out": len(held_out),
            "quantization": shipped.config.hf_extra["quantization"],
        },
        "training": {
            "first_loss": history.loss[0] if history.loss else None,
            "last_loss": float(np.mean(history.loss[-20:])) if history.loss else None,
            "evals": history.evals,
            "seconds_this_build": round(train_seconds),
        },
        "parameters": {
            "total": shipped.num_parameters(),
            "encoder": encoder_parameters(shipped),
            "teacher_total": teacher.num_parameters(),
            "teacher_encoder": encoder_parameters(teacher),
            "encoder_share": encoder_parameters(shipped) / encoder_parameters(teacher),
        },
        "size": {
            "shipped": folder_bytes(args.output),
            "teacher_model_safetensors": (teacher_folder / "model.safetensors").stat().st_size,
        },
        "agreement": {
            "int8_vs_teacher": agreement(int8_vectors, reference),
            "float_student_vs_teacher": agreement(float_vectors, reference),
            "int8_vs_float_student": agreement(int8_vectors, float_vectors),
            # for scale: what int8 alone costs the full teacher
            "teacher_int8_vs_teacher": agreement(teacher_int8_vectors, reference),
        },
    }
    if not args.no_lee:
        lee = read_lee(args.lee or distill_reports.data_dir() / "lee")
        length = sentence_length(teacher_folder, teacher)
        results["lee"] = {
            "teacher": lee_scores(teacher, tokenizer, lee, length),
            "float_student": lee_scores(student, tokenizer, lee, length),
            "int8": lee_scores(shipped, tokenizer, lee, length),
        }
    if args.latency:
        models = {
            "teacher_float32": teacher,
            "teacher_int8": teacher_int8,
            "student_float32": student,
            "shipped_int8": shipped,
        }
        results["latency_ms"] = latency(models, args.repeats)
        results["latency_ms"]["machine"] = f"{os.cpu_count()} CPUs"
    elif args.results.is_file():  # keep the last timing: it needs a quiet machine
        previous = json.loads(args.results.read_text())
        if "latency_ms" in previous:
            results["latency_ms"] = previous["latency_ms"]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    size = results["size"]["shipped"]["total"]
    a = results["agreement"]["int8_vs_teacher"]
    print(
        f"wrote {args.output}: {size / 1e6:.2f} MB, {results['parameters']['total']:,} "
        f"parameters ({100 * results['parameters']['encoder_share']:.1f}% of the teacher's "
        f"encoder)\nagreement with the teacher on {a['sentences']} held-out sentences: mean "
        f"cosine {a['mean_cosine']:.4f}, top-1 retrieval agreement {a['top1_agreement']:.3f}"
    )
    if "lee" in results:
        lee = results["lee"]
        print(
            f"Lee Spearman: int8 {lee['int8']['spearman']:.4f}, float student "
            f"{lee['float_student']['spearman']:.4f}, teacher {lee['teacher']['spearman']:.4f}"
        )
    print(f"wrote {args.results}")
    return results


if __name__ == "__main__":
    main()
