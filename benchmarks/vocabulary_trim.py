"""What trimming the vocabulary to a corpus costs: coverage, agreement and size on real text.

For each model (all-MiniLM-L6-v2 and the bundled model by default; docs/compression.md's
minilm-l2-int8 rows were measured on the previous bundled model) and each --min-count,
trim_vocabulary keeps the pieces the trimming sentences use, and we report

    pieces       the vocabulary before -> after
    coverage     the share of the trimming corpus's tokens whose piece survived
    held out     on held-out sentences: the share of their pieces that survived, and the share
                 of sentences split into exactly the same pieces
    cosine       sentence cosine against the untrimmed model on the held-out sentences: the
                 mean, the smallest over the identically split sentences (1 up to rounding:
                 the same rows go in) and the mean over the others
    size         model.safetensors plus the tokenizer files, before -> after (MB)

The sentences come from --corpus files (default: the offline corpus of scripts/fetch_data.py);
held-out sentences are --held-out files, else a seeded sample of --held-out-count corpus
sentences kept out of trimming. Run from the repository root:

    python benchmarks/vocabulary_trim.py
    python benchmarks/vocabulary_trim.py --corpus a.txt b.txt --held-out c.txt --min-count 1 3
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minibert.compression.vocabulary import held_out_agreement, trim_vocabulary
from minibert.data.text import corpus_files, corpus_sentences
from minibert.pretrained import SHIPPED_NAME, minilm_path, shipped_path


def split_sentences(args) -> tuple[list, list]:
    """(trimming sentences, held-out sentences), as the module docstring says."""
    files = args.corpus or corpus_files()
    sentences = corpus_sentences(files, min_words=args.min_words)
    if args.held_out:
        held_out = corpus_sentences(args.held_out, min_words=args.min_words)
    else:
        order = np.random.default_rng(args.seed).permutation(len(sentences))
        held = set(order[: args.held_out_count].tolist())
        held_out = [s for i, s in enumerate(sentences) if i in held]
        sentences = [s for i, s in enumerate(sentences) if i not in held]
    if args.max_texts and len(sentences) > args.max_texts:
        keep = np.sort(
            np.random.default_rng(args.seed).choice(len(sentences), args.max_texts, False)
        )
        sentences = [sentences[i] for i in keep]
    return sentences, held_out[: args.held_out_count]


def measure(model: Path, name: str, sentences, held_out, min_count: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = trim_vocabulary(model, sentences, folder, min_count=min_count)
        seconds = time.perf_counter() - start
        agreement = held_out_agreement(model, folder, held_out)
    return {
        "model": name,
        "min_count": min_count,
        "pieces_before": result.old_vocab_size,
        "pieces_after": result.new_vocab_size,
        "coverage": result.coverage,
        "corpus_tokens": result.corpus_tokens,
        "held_out_token_survival": agreement["token_survival"],
        "held_out_texts_identical": agreement["texts_identical"],
        "mean_cosine": agreement["mean_cosine"],
        "identical_min_cosine": agreement["identical_min_cosine"],
        "changed_mean_cosine": agreement["changed_mean_cosine"],
        "bytes_before": result.weight_bytes_before + result.tokenizer_bytes_before,
        "bytes_after": result.weight_bytes_after + result.tokenizer_bytes_after,
        "trim_seconds": seconds,
    }


def markdown(rows) -> str:
    lines = [
        "| model | min count | pieces | coverage | held-out pieces kept | held-out texts "
        "identical | mean cosine | min cosine (identical) | mean cosine (changed) | size MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        changed = r["changed_mean_cosine"]
        identical = r["identical_min_cosine"]
        lines.append(
            f"| {r['model']} | {r['min_count']} | {r['pieces_before']:,} -> "
            f"{r['pieces_after']:,} | {r['coverage']:.2%} | {r['held_out_token_survival']:.2%} "
            f"| {r['held_out_texts_identical']:.2%} | {r['mean_cosine']:.4f} | "
            f"{'-' if identical is None else f'{identical:.7f}'} | "
            f"{'-' if changed is None else f'{changed:.4f}'} | "
            f"{r['bytes_before'] / 1e6:.1f} -> {r['bytes_after'] / 1e6:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", help="text files (default: the offline corpus)")
    parser.add_argument("--held-out", nargs="+", help="held-out text files (default: a sample)")
    parser.add_argument("--held-out-count", type=int, default=1000, help="held-out sentences")
    parser.add_argument("--max-texts", type=int, default=50000, help="trimming sentences, at most")
    parser.add_argument("--min-words", type=int, default=4, help="shortest sentence kept")
    parser.add_argument("--min-count", type=int, nargs="+", default=[1, 3], help="thresholds")
    parser.add_argument("--models", nargs="+", default=["minilm", "shipped"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)

    models = {
        "minilm": ("all-MiniLM-L6-v2", minilm_path()),
        "shipped": (SHIPPED_NAME, shipped_path()),
    }
    sentences, held_out = split_sentences(args)
    print(f"{len(sentences):,} trimming sentences, {len(held_out):,} held-out sentences\n")
    rows = [
        measure(models[key][1], models[key][0], sentences, held_out, min_count)
        for key in args.models
        for min_count in args.min_count
    ]
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
