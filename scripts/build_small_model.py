"""Build an all-MiniLM-L6-v2 under 10 MB with no training: trim, cut positions, GPTQ int4.

    python scripts/fetch_data.py                      # the offline corpus and the Lee benchmark
    python scripts/build_small_model.py [--output DIR] [--latency]

Unlike scripts/build_shipped_model.py (a 2-layer student, distilled), this keeps all six of the
teacher's layers and makes them small:

1. Vocabulary: trim_vocabulary on the same seeded 50,000-sentence sample of the offline corpus
   the distillation uses (its held-out sentences left out), keeping the pieces used at least
   --min-count times plus every special and single-character piece (docs/compression.md).
2. Positions: the position table cut to --max-positions rows (default 256, the teacher's own
   sentence_bert_config max_seq_length, the longest input a SentenceEncoder gives it).
3. int4: quantize_gptq (minibert/quant/gptq.py) with --group-size (default 128) on
   --calibration sentences of the sample; the word table int4 per group, rounded to nearest.
4. Measured against the untrimmed float32 teacher (its own tokenizer): size on disk, sentence
   cosine and retrieval agreement on the held-out sentences (as build_shipped_model.py
   measures the shipped model) and on Rotten Tomatoes review sentences (text from outside the
   trimming corpus), the Lee correlation, and with --latency the forward time at 1 x 16 and
   8 x 128 tokens against the teacher in float32 and int8.

Results go to --results (default docs/results/small-int4.json).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import minibert
from minibert.checkpoint import read_weights
from minibert.checkpoint.writing import write_safetensors
from minibert.compression.vocabulary import trim_vocabulary
from minibert.evaluation.lee import lee_scores, read_lee
from minibert.pretrained import minilm_path
from minibert.quant import quantize_gptq
from minibert.sentence import sentence_length

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_shipped_model as shipped  # noqa: E402  (measurements)
import distill_reports  # noqa: E402  (the sample of sentences)

ROOT = Path(__file__).resolve().parents[1]
FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("minilm-l6-int4"))
    parser.add_argument("--results", type=Path, default=ROOT / "docs/results/small-int4.json")
    parser.add_argument("--min-count", type=int, default=3)
    parser.add_argument("--max-positions", type=int, default=256)
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--calibration", type=int, default=512, help="sentences")
    parser.add_argument("--max-texts", type=int, default=50000)
    parser.add_argument("--rt", type=int, default=400, help="Rotten Tomatoes sentences")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--repeats", type=int, default=30)
    return parser.parse_args(argv)


def cut_positions(folder: Path, rows: int) -> None:
    """Keep the first `rows` position vectors (config.json's max_position_embeddings too)."""
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


def main(argv=None) -> dict:
    args = parse_args(argv)
    teacher_folder = minilm_path()
    texts, held_out = distill_reports.sentences(args.max_texts)
    rt_texts = distill_reports.rotten_tomatoes()[0][: args.rt]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trimmed = Path(tmp) / "trimmed"
        trim = trim_vocabulary(teacher_folder, texts, trimmed, min_count=args.min_count)
        cut_positions(trimmed, args.max_positions)
        model = minibert.load(trimmed)
        tokenizer = minibert.load_tokenizer(trimmed)
        batches = [
            tokenizer(texts[i : i + 32], max_length=128) for i in range(0, args.calibration, 32)
        ]
        qmodel = quantize_gptq(model, batches, bits=4, group_size=args.group_size, embedding_bits=4)
        if args.output.exists():
            shutil.rmtree(args.output)
        args.output.mkdir(parents=True)
        qmodel.save_pretrained(args.output)
        for name in FILES:  # tokenizer.json without indentation: a third smaller
            spec = json.loads((trimmed / name).read_text(encoding="utf-8"))
            text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
            (args.output / name).write_text(text, encoding="utf-8")
        shutil.copyfile(
            teacher_folder / "sentence_bert_config.json",
            args.output / "sentence_bert_config.json",
        )
    build_seconds = time.perf_counter() - start

    small = minibert.load(args.output)
    small_tok = minibert.load_tokenizer(args.output)
    teacher = minibert.load(teacher_folder)
    teacher_tok = minibert.load_tokenizer(teacher_folder)

    def agreement(texts_):
        reference = shipped.sentence_vectors(teacher, teacher_tok, texts_)
        return shipped.agreement(shipped.sentence_vectors(small, small_tok, texts_), reference)

    results = {
        "built": date.today().isoformat(),
        "teacher": "sentence-transformers/all-MiniLM-L6-v2",
        "recipe": {
            "min_count": args.min_count,
            "vocabulary": [trim.old_vocab_size, len(trim.kept_ids)],
            "corpus_coverage": trim.coverage,
            "max_positions": args.max_positions,
            "quantization": small.config.hf_extra["quantization"],
            "calibration_sentences": args.calibration,
        },
        "build_seconds": round(build_seconds),
        "size": shipped.folder_bytes(args.output),
        "agreement": {"held_out": agreement(held_out), "rotten_tomatoes": agreement(rt_texts)},
    }
    lee = read_lee(distill_reports.data_dir() / "lee")
    length = sentence_length(teacher_folder, teacher)
    results["lee"] = {
        "teacher": lee_scores(teacher, teacher_tok, lee, length),
        "small": lee_scores(small, small_tok, lee, min(length, args.max_positions)),
    }
    if args.latency:
        models = {
            "teacher_float32": teacher,
            "teacher_int8": minibert.quantize(teacher),
            "small_int4": small,
        }
        results["latency_ms"] = shipped.latency(models, args.repeats)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    a, r = results["agreement"]["held_out"], results["agreement"]["rotten_tomatoes"]
    print(
        f"wrote {args.output}: {results['size']['total'] / 1e6:.2f} MB; held out: cosine "
        f"{a['mean_cosine']:.4f}, top-1 {a['top1_agreement']:.3f}; Rotten Tomatoes: cosine "
        f"{r['mean_cosine']:.4f}, top-1 {r['top1_agreement']:.3f}; Lee "
        f"{results['lee']['small']['spearman']:.4f} (teacher "
        f"{results['lee']['teacher']['spearman']:.4f})"
    )
    return results


if __name__ == "__main__":
    main()
