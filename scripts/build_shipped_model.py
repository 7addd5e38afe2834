"""Build the model minibert ships (minibert/shipped/minilm-l6-int4) from all-MiniLM-L6-v2.

    python scripts/fetch_data.py                      # the offline corpus, Rotten Tomatoes, Lee
    python scripts/build_shipped_model.py             # trim, cut, quantize, save, measure
    python scripts/build_shipped_model.py --latency   # ... and time it against the teacher

No training: the model is the teacher itself, all six layers, made small in three steps.

1. Vocabulary: trim_vocabulary (minibert/compression/vocabulary.py) on a seeded sample of
   --max-texts sentences of the offline corpus (distill_reports.sentences, the sample the
   distillation runs use; its --held-out sentences are left out), keeping the word pieces used
   at least --min-count times plus every special and single-character piece, so that no text
   becomes untokenizable (docs/compression.md).
2. Positions: the position table cut to --max-positions rows (default 256, the teacher's own
   sentence_bert_config.json max_seq_length: the longest input a SentenceEncoder gives it).
3. int4: quantize_gptq (minibert/quant/gptq.py): every linear layer group-wise int4 (one scale
   per --group-size input channels) with GPTQ's error-compensating rounding, its Hessians from
   the first --calibration sentences of the sample (batches of 32, at most 128 tokens); the
   word-embedding table int4 per group too, rounded to nearest.
4. Saved with save_pretrained, with the trimmed tokenizer files (written without indentation:
   a third smaller), the teacher's sentence_bert_config.json and a README.md, into --output.
5. Measured against the untrimmed float32 teacher (with its own tokenizer), into --results
   (docs/results/shipped.json, which docs/model-card.md shows): the size of every file; the
   mean cosine of mean-pooled sentence vectors and the agreement of nearest neighbours on the
   held-out sentences and on --rotten-tomatoes review sentences (text the trimming never saw),
   for the shipped model, the trimmed float32 model before int4 and, for scale, the teacher
   in int8; the Lee correlation; with --latency the forward time at 1 x 16 and 8 x 128 tokens
   against the teacher in float32 and int8, with the CPU and the load average before and after
   (run it on a quiet machine). Without --latency the last timing in --results is kept.

Everything is seeded and the results hold no dates or timings but --latency's: the same
command on the same machine writes the same bytes (tests/test_shipped.py builds a tiny model
twice and compares every file).

The previous bundled model, minilm-l2-int8 (a 2-layer student distilled from the teacher's
layers 4 and 5, then int8), is the run `python scripts/distill_reports.py agnostic --recipes
distilbert --layers 4 5 --steps 400` quantized with `minibert quantize`; docs/model-card.md
keeps its figures.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import minibert
from minibert.checkpoint import read_weights
from minibert.checkpoint.writing import write_safetensors
from minibert.compression.vocabulary import trim_vocabulary
from minibert.evaluation.lee import lee_scores, read_lee
from minibert.functional.pooling import l2_normalize, pool
from minibert.pretrained import SHIPPED_NAME, minilm_path
from minibert.quant import calibration_batches, quantize_gptq
from minibert.sentence import sentence_length

sys.path.insert(0, str(Path(__file__).resolve().parent))
import distill_reports  # noqa: E402  (the sample of sentences, Rotten Tomatoes)

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "minibert" / "shipped" / SHIPPED_NAME
RESULTS = ROOT / "docs" / "results" / "shipped.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
CALIBRATION_BATCH = 32  # sentences per calibration batch
MAX_LENGTH = 128  # tokens per sentence, for calibration and the agreement measurements
LATENCY_SHAPES = ((1, 16), (8, 128))  # (batch, tokens)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-count", type=int, default=3, help="uses to keep a word piece")
    parser.add_argument("--max-positions", type=int, default=256, help="position rows kept")
    parser.add_argument("--group-size", type=int, default=128, help="input channels per scale")
    parser.add_argument("--calibration", type=int, default=512, help="GPTQ sentences")
    parser.add_argument("--max-texts", type=int, default=50000, help="sentences sampled")
    parser.add_argument("--held-out", type=int, default=distill_reports.HELD_OUT)
    parser.add_argument("--corpus", type=Path, help="folder of .txt files (default: the cache's)")
    parser.add_argument(
        "--rotten-tomatoes", type=int, default=400, help="review sentences measured (0: none)"
    )
    parser.add_argument("--lee", type=Path, help="Lee data folder (default: the cache's lee/)")
    parser.add_argument("--no-lee", action="store_true", help="skip the Lee correlations")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the folder to write")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON to write")
    parser.add_argument("--latency", action="store_true", help="time it against the teacher")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per latency shape")
    return parser.parse_args(argv)


# --- building ----------------------------------------------------------------------------------
def cut_positions(folder: Path, rows: int) -> None:
    """Keep the first `rows` position vectors (and say so in config.json)."""
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    if config["max_position_embeddings"] <= rows:
        return
    tensors = read_weights(folder)
    name = next(n for n in tensors if n.endswith("position_embeddings.weight"))
    tensors[name] = tensors[name][:rows].copy()
    tensors = {n: a for n, a in tensors.items() if not n.endswith("position_ids")}
    write_safetensors(tensors, folder / "model.safetensors")
    config["max_position_embeddings"] = rows
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def save_shipped(qmodel, trimmed: Path, teacher_folder: Path, output: Path) -> None:
    """The int4 model and the files that make it a sentence encoder, in a clean folder."""
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    qmodel.save_pretrained(output)
    for name in TOKENIZER_FILES:  # no indentation: tokenizer.json is a third smaller
        spec = json.loads((trimmed / name).read_text(encoding="utf-8"))
        text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
        (output / name).write_text(text, encoding="utf-8")
    shutil.copyfile(
        teacher_folder / "sentence_bert_config.json", output / "sentence_bert_config.json"
    )
    (output / "README.md").write_text(
        f"# {SHIPPED_NAME}\n\n"
        "The sentence encoder bundled with minibert: all-MiniLM-L6-v2 with all six of its "
        "layers, no retraining, made small: the vocabulary trimmed to the word pieces an "
        "English corpus uses, the position table cut to the 256 tokens the teacher reads, and "
        "the linear layers and word table quantized to int4 in groups of input channels (GPTQ "
        "rounding for the layers). Load it with "
        "`minibert.SentenceEncoder(minibert.pretrained.shipped_path())`; `minibert demo`, "
        "`encode`, `similarity` and `serve` use it by default.\n\n"
        "How it was made, its size, speed and agreement with the teacher: docs/model-card.md "
        "(rebuild it with `python scripts/build_shipped_model.py`). The teacher, "
        "sentence-transformers/all-MiniLM-L6-v2, is licensed under Apache-2.0; so is this "
        "derived model.\n",
        encoding="utf-8",
    )
    for file in output.iterdir():  # package data: readable by all (save_pretrained writes 0600)
        file.chmod(0o644)


def build(args, teacher_folder: Path, texts: list, trimmed: Path) -> dict:
    """Steps 1 to 4 (the float32 model of steps 1 and 2 is left in `trimmed`); returns the
    recipe as the results record it."""
    trim = trim_vocabulary(teacher_folder, texts, trimmed, min_count=args.min_count)
    cut_positions(trimmed, args.max_positions)
    model = minibert.load(trimmed).eval()
    tokenizer = minibert.load_tokenizer(trimmed)
    calibration = texts[: args.calibration]
    batches = calibration_batches(tokenizer, calibration, CALIBRATION_BATCH, MAX_LENGTH)
    qmodel = quantize_gptq(model, batches, bits=4, group_size=args.group_size, embedding_bits=4)
    save_shipped(qmodel, trimmed, teacher_folder, args.output)
    return {
        "min_count": args.min_count,
        "vocabulary": [trim.old_vocab_size, len(trim.kept_ids)],
        "corpus_coverage": trim.coverage,
        "max_positions": args.max_positions,
        "calibration_sentences": min(args.calibration, len(texts)),
        "sentences": len(texts),
        "quantization": qmodel.config.hf_extra["quantization"],
    }


# --- measuring ---------------------------------------------------------------------------------
def sentence_vectors(model, tokenizer, texts, max_length: int = MAX_LENGTH, batch_size: int = 64):
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


def agreements(models: dict, texts: list) -> dict:
    """Each pair the card shows, on `texts`; models: name -> (model, tokenizer)."""
    vectors = {name: sentence_vectors(m, tok, texts) for name, (m, tok) in models.items()}
    pairs = (
        ("shipped", "teacher"),
        ("trimmed_float32", "teacher"),
        ("shipped", "trimmed_float32"),
        ("teacher_int8", "teacher"),  # for scale: what int8 alone costs the teacher
    )
    return {f"{a}_vs_{b}": agreement(vectors[a], vectors[b]) for a, b in pairs}


def folder_bytes(folder: Path) -> dict:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    return {"files": files, "total": sum(files.values())}


def cpu_name() -> str:
    """The CPU's model name as lscpu shows it (from /proc/cpuinfo), and the core count."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} CPUs"


def latency(models: dict, repeats: int, seed: int = 0) -> dict:
    """Median milliseconds of one forward call per model and (batch, tokens) shape, on random
    token ids every vocabulary has, after two warm-up calls (the first compiles or loads the
    Numba kernels)."""
    rng = np.random.default_rng(seed)
    vocab = min(m.config.vocab_size for m in models.values())
    results = {
        "machine": cpu_name(),
        "load_average_before": round(os.getloadavg()[0], 2),
        "repeats": repeats,
    }
    for B, T in LATENCY_SHAPES:
        ids = rng.integers(1000, vocab, (B, T))
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


def main(argv=None) -> dict:
    args = parse_args(argv)
    teacher_folder = minilm_path()
    texts, held_out = distill_reports.sentences(args.max_texts, args.held_out, args.corpus)
    with tempfile.TemporaryDirectory() as tmp:
        trimmed = Path(tmp) / "trimmed"
        recipe = build(args, teacher_folder, texts, trimmed)
        trimmed_float32 = (minibert.load(trimmed).eval(), minibert.load_tokenizer(trimmed))

    shipped = minibert.load(args.output).eval()  # measure what was written, as users load it
    teacher = minibert.load(teacher_folder).eval()
    teacher_int8 = minibert.quantize(teacher)
    teacher_tok = minibert.load_tokenizer(teacher_folder)
    models = {
        "shipped": (shipped, minibert.load_tokenizer(args.output)),
        "trimmed_float32": trimmed_float32,
        "teacher": (teacher, teacher_tok),
        "teacher_int8": (teacher_int8, teacher_tok),
    }
    results = {
        "name": SHIPPED_NAME,
        "teacher": "sentence-transformers/all-MiniLM-L6-v2",
        "teacher_licence": "Apache-2.0",
        "recipe": recipe,
        "parameters": {
            "shipped": shipped.parameter_counts(),
            "teacher": teacher.parameter_counts(),
        },
        "size": {
            "shipped": folder_bytes(args.output),
            "teacher_model_safetensors": (teacher_folder / "model.safetensors").stat().st_size,
        },
        "agreement": {"held_out": agreements(models, held_out)},
    }
    if args.rotten_tomatoes:
        reviews = distill_reports.rotten_tomatoes()[0][: args.rotten_tomatoes]
        results["agreement"]["rotten_tomatoes"] = agreements(models, reviews)
    if not args.no_lee:
        lee = read_lee(args.lee or distill_reports.data_dir() / "lee")
        length = sentence_length(teacher_folder, teacher)
        results["lee"] = {
            "teacher": lee_scores(teacher, teacher_tok, lee, length),
            "shipped": lee_scores(*models["shipped"], lee, sentence_length(args.output, shipped)),
        }
    if args.latency:
        timed = {"teacher_float32": teacher, "teacher_int8": teacher_int8, "shipped": shipped}
        results["latency_ms"] = latency(timed, args.repeats)
    elif args.results.is_file():  # keep the last timing: it needs a quiet machine
        previous = json.loads(args.results.read_text())
        if "latency_ms" in previous:
            results["latency_ms"] = previous["latency_ms"]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    report(results, args)
    return results


def report(results: dict, args) -> None:
    print(f"wrote {args.output}: {results['size']['shipped']['total'] / 1e6:.2f} MB")
    for where, pairs in results["agreement"].items():
        a = pairs["shipped_vs_teacher"]
        print(
            f"{where} ({a['sentences']} sentences): mean cosine {a['mean_cosine']:.4f}, "
            f"top-1 agreement {a['top1_agreement']:.3f}"
        )
    if "lee" in results:
        lee = results["lee"]
        print(
            f"Lee Spearman: {lee['shipped']['spearman']:.4f} "
            f"(teacher {lee['teacher']['spearman']:.4f})"
        )
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
