"""Accuracy and latency of all-MiniLM-L6-v2 against the fraction of attention heads or layers
removed.

Heads: Michel et al.'s importance of each of the 72 heads (minibert.compression.heads), from the
gradient of a sentence-retrieval loss on a sample of texts: each text in a batch of 16 must find,
among the others, the neighbour the unpruned model finds (in-batch softmax over cosines / 0.05,
cross-entropy). The least important heads over the whole model go first, every layer keeping its
best one; as a control, the same numbers of heads chosen at random (seeded). Layers: keep_layers
with the kept layers spread evenly (0 and 5 always kept).

For each model: agreement with the unpruned model on held-out template texts (benchmarks/
agreement.py's sentences, another seed): mean cosine between a text's two embeddings and
retrieval top-1 agreement (100 queries against 500 texts), and the latency of a forward at
8 x 128 (random ids, no padding), float32, in this process: every model is timed once per round,
in turns, for ROUNDS rounds, so that a busy machine slows all alike; the fastest run (the least
disturbed) is the figure, the median is kept beside it. Run by hand:

    python benchmarks/compression_sweep.py --json docs/results/compression_sweep.json \
        --plot docs/img/compression_sweep.png
"""

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
from agreement import compare, sentences

from minibert import SentenceEncoder, prune_heads
from minibert.compression.heads import least_important
from minibert.compression.layers import keep_layers
from minibert.compression.variants import retrieval_importance

HEAD_FRACTIONS = (0.0, 1 / 6, 1 / 3, 1 / 2, 2 / 3)
LAYERS_KEPT = (6, 5, 4, 3, 2)
N_QUERIES, N_CORPUS = 100, 500
ROUNDS = 15


def latencies_ms(models, rounds=ROUNDS) -> list:
    """(fastest, median) ms per forward at 8 x 128 of each model, timed in turns, one run per
    round."""
    ids = np.random.default_rng(0).integers(1000, models[0].config.vocab_size, (8, 128))
    mask = np.ones_like(ids)
    for model in models:  # warm-up (kernel compilation, first touch of the weights)
        model(ids, attention_mask=mask)
    times = [[] for _ in models]
    for _ in range(rounds):
        for model, kept in zip(models, times, strict=True):
            start = time.perf_counter()
            model(ids, attention_mask=mask)
            kept.append(time.perf_counter() - start)
    return [(round(1000 * min(t), 1), round(1000 * float(np.median(t)), 1)) for t in times]


def measure(encoder, model, reference, texts) -> dict:
    full = encoder.model
    encoder.model = model
    try:
        row = compare(reference, encoder.encode(texts).astype(np.float64), N_QUERIES)
    finally:
        encoder.model = full
    return {k: round(row[k], 4) for k in ("mean_cosine", "min_cosine", "top1")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--plot", help="write the plot (PNG) to this file")
    parser.add_argument("--sample", type=int, default=128, help="texts for head importance")
    args = parser.parse_args()

    encoder = SentenceEncoder()
    model = encoder.model
    held_out = sentences(N_QUERIES + N_CORPUS, seed=7)
    reference = encoder.encode(held_out).astype(np.float64)
    scoring = sentences(args.sample, seed=3)
    importance = retrieval_importance(encoder.model, encoder.tokenizer, scoring)
    total_heads = importance.size
    random_scores = np.random.default_rng(0).random(importance.shape)
    rows = {"heads": [], "random heads": [], "layers": []}
    models = []  # (kind, row index, model), timed together at the end
    for fraction in HEAD_FRACTIONS:
        for kind, scores in (("heads", importance), ("random heads", random_scores)):
            plan = least_important(scores, fraction)
            pruned = prune_heads(copy.deepcopy(model), plan)
            removed = sum(len(h) for h in plan.values())
            row = {"removed": removed, "fraction": round(removed / total_heads, 3)}
            rows[kind].append({**row, **measure(encoder, pruned, reference, held_out)})
            models.append((kind, len(rows[kind]) - 1, pruned))
            print(kind, rows[kind][-1], flush=True)
    for kept in LAYERS_KEPT:
        layers = sorted({int(i) for i in np.round(np.linspace(0, 5, kept))})
        row = {"kept": layers, "fraction": round(1 - len(layers) / 6, 3)}
        smaller = keep_layers(model, layers)
        rows["layers"].append({**row, **measure(encoder, smaller, reference, held_out)})
        models.append(("layers", len(rows["layers"]) - 1, smaller))
        print("layers", rows["layers"][-1], flush=True)
    for (kind, index, _), ms in zip(models, latencies_ms([m for *_, m in models]), strict=True):
        rows[kind][index]["latency_ms_8x128"], rows[kind][index]["median_ms_8x128"] = ms
        print(kind, rows[kind][index], flush=True)
    result = {
        "benchmark": "benchmarks/compression_sweep.py",
        "model": "all-MiniLM-L6-v2 (6 layers x 12 heads)",
        "importance_sample": args.sample,
        "held_out": {"queries": N_QUERIES, "corpus": N_CORPUS},
        "importance": np.round(importance, 4).tolist(),
        **rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot(rows, args.plot)


def plot(rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, lat) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, marker, color in (
        ("heads", "o", "C0"),
        ("random heads", "x", "C1"),
        ("layers", "s", "C2"),
    ):
        x = [r["fraction"] for r in rows[kind]]
        style = {"marker": marker, "color": color}
        acc.plot(x, [r["mean_cosine"] for r in rows[kind]], **style, label=f"{kind}: cosine")
        acc.plot(x, [r["top1"] for r in rows[kind]], **style, ls="--", label=f"{kind}: top-1")
        lat.plot(x, [r["latency_ms_8x128"] for r in rows[kind]], **style, label=kind)
    acc.set(xlabel="fraction removed", ylabel="agreement with the unpruned model")
    lat.set(xlabel="fraction removed", ylabel="ms per forward, 8 x 128")
    acc.legend()
    lat.legend()
    fig.suptitle("all-MiniLM-L6-v2: heads (by importance) and layers removed")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
