"""Token elimination (PoWER-BERT) on the Rotten Tomatoes classifier: accuracy against latency.

The classifier is all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes by scripts/train_reports.py
finetune (the newest checkpoint under runs/finetune/run, or --model), on the same split by movie
(seed 0). Every sentence is padded to 128 tokens, the fixed length PoWER-BERT works with.

The retention search (minibert.compression.token_elimination.search_retention) runs on the
validation split, once per accuracy tolerance: greedily, step by step, the fewest word vectors
whose validation accuracy stays within the tolerance of the full model's. No retraining: the
weights are the classifier's (the paper fine-tunes again after choosing; we do not). Each
configuration found is then scored once on the test split, and timed at batch 8 x 128 (eight
test sentences), every configuration once per round, in turns, for ROUNDS rounds: the fastest
run is the figure, the median beside it. As a second baseline, the full model also runs on the
same eight sentences padded only to the longest of them (what padding to the batch gives),
and the configuration that keeps only [CLS] after the first layer's attention shows the floor
of the time.

    python benchmarks/token_elimination.py --json docs/results/token_elimination.json \
        --plot docs/img/token_elimination.png
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

import minibert
from minibert.compression.token_elimination import eliminate_tokens, search_retention
from minibert.data.batches import collate
from minibert.data.text import data_dir
from minibert.training.recipes import classification_splits

LENGTH = 128  # every sentence padded to this many tokens
BATCH = 8  # the latency batch: 8 x 128
TOLERANCES = (0.0, 0.005, 0.01, 0.02, 0.04)  # validation accuracy the search may give up
ROUNDS = 20


def newest_classifier() -> Path:
    runs = data_dir().parent / "runs" / "finetune" / "run"
    found = sorted(runs.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not found:
        raise SystemExit(f"no classifier in {runs}: run scripts/train_reports.py finetune first")
    return found[-1]


def rotten_tomatoes_splits(tokenizer) -> dict:
    """{"train", "validation", "test"}: tokenized examples, split by movie as the classifier was."""
    rows = list(csv.DictReader((data_dir() / "rotten_tomatoes.csv").open(encoding="utf-8")))
    texts = [r["text"] for r in rows]
    labels = [int(r["label"] == "fresh") for r in rows]
    movies = [r["movie"] for r in rows]
    return classification_splits(texts, labels, movies, tokenizer, LENGTH)


def padded_batches(examples, batch_size: int, pad_id: int, length: int | None = LENGTH):
    """Batches of examples padded to `length` tokens (None: to the longest of each batch), and
    their labels. Shapes: each batch's arrays (batch_size, length)."""
    out = []
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_id)
        labels = batch.pop("labels")
        extra = 0 if length is None else length - batch["input_ids"].shape[1]
        for key, value in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
            batch[key] = np.pad(batch[key], ((0, 0), (0, extra)), constant_values=value)
        out.append((batch, labels))
    return out


def accuracy(model, retention, batches) -> float:
    right = total = 0
    for batch, labels in batches:
        logits = eliminate_tokens(model, retention, **batch).output.logits
        right += int((logits.argmax(-1) == labels).sum())
        total += len(labels)
    return right / total


def latencies_ms(runs, rounds=ROUNDS) -> list:
    """(fastest, median) ms of each zero-argument callable, run in turns, once per round."""
    for run in runs:  # warm-up: kernel compilation, first touch of the weights
        run()
    times = [[] for _ in runs]
    for _ in range(rounds):
        for run, kept in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            kept.append(time.perf_counter() - start)
    return [(round(1000 * min(t), 1), round(1000 * float(np.median(t)), 1)) for t in times]


def cpu_name() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()
    names = [line.split(":", 1)[1].strip() for line in lines.splitlines() if "Model name" in line]
    return names[0] if names else platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="classifier folder (default: the newest RT checkpoint)")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--plot", help="write the plot (PNG) to this file")
    parser.add_argument("--batch-size", type=int, default=64, help="for the accuracy runs")
    args = parser.parse_args()

    folder = Path(args.model) if args.model else newest_classifier()
    model = minibert.load(folder)
    tokenizer = minibert.load_tokenizer(folder)
    pad = tokenizer.pad_token_id
    splits = rotten_tomatoes_splits(tokenizer)
    validation = padded_batches(splits["validation"], args.batch_size, pad)
    test = padded_batches(splits["test"], args.batch_size, pad)
    steps = len(model.encoder.schedule)
    full = (LENGTH,) * steps

    scores = {}  # retention -> validation accuracy, shared by the searches

    def validation_accuracy(retention):
        if retention not in scores:
            scores[retention] = accuracy(model, retention, validation)
            print(f"  {retention}: validation {scores[retention]:.4f}", flush=True)
        return scores[retention]

    found = {full: []}  # retention -> the tolerances that chose it
    for tolerance in TOLERANCES:
        print(f"search, tolerance {tolerance}", flush=True)
        retention, _ = search_retention(validation_accuracy, steps, LENGTH, tolerance)
        found.setdefault(retention, []).append(tolerance)
    # the floor: the first layer's attention over all T, then [CLS] alone (the least any
    # configuration can cost)
    found.setdefault((1,) * steps, [])

    rows = []
    for retention, tolerances in found.items():
        rows.append(
            {
                "retention": list(retention),
                "tolerances": tolerances,
                "vectors_per_sequence": int(sum(retention)),
                "validation_accuracy": round(validation_accuracy(retention), 4),
                "test_accuracy": round(accuracy(model, retention, test), 4),
            }
        )
        print(rows[-1], flush=True)

    sample, _ = padded_batches(splits["test"][:BATCH], BATCH, pad)[0]
    shortest, _ = padded_batches(splits["test"][:BATCH], BATCH, pad, length=None)[0]
    runs = [lambda r=tuple(r["retention"]): eliminate_tokens(model, r, **sample) for r in rows]
    runs[0] = lambda: model(**sample)  # the full configuration: the model's own forward
    runs.append(lambda: model(**shortest))
    load_before = os.getloadavg()
    timings = latencies_ms(runs)
    load_after = os.getloadavg()
    for row, (fastest, median) in zip(rows, timings, strict=False):
        row["latency_ms_8x128"], row["median_ms_8x128"] = fastest, median
    padded_to_longest = {
        "tokens": int(shortest["input_ids"].shape[1]),
        "latency_ms": timings[-1][0],
        "median_ms": timings[-1][1],
    }
    lengths = [len(e["input_ids"]) for e in splits["test"]]
    result = {
        "benchmark": "benchmarks/token_elimination.py",
        "model": f"all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes ({folder.name})",
        "cpu": cpu_name(),
        "threads": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "length": LENGTH,
        "test_tokens_per_sentence": {
            "mean": round(float(np.mean(lengths)), 1),
            "max": int(np.max(lengths)),
        },
        "sizes": {k: len(v) for k, v in splits.items()},
        "configurations_scored": len(scores),
        "rows": rows,
        "full_model_padded_to_longest": padded_to_longest,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot(result, args.plot)


def plot(result, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    full, pruned = rows[0], rows[1:]
    ax.scatter([full["latency_ms_8x128"]], [full["test_accuracy"]], color="C3", zorder=3)
    ax.annotate(
        "full model  ", (full["latency_ms_8x128"], full["test_accuracy"]), ha="right", va="top"
    )
    ax.scatter(
        [r["latency_ms_8x128"] for r in pruned], [r["test_accuracy"] for r in pruned], color="C0"
    )
    for r in pruned:
        label = "-".join(str(k) for k in r["retention"])
        ax.annotate(label, (r["latency_ms_8x128"], r["test_accuracy"]), fontsize=8)
    longest = result["full_model_padded_to_longest"]
    ax.axvline(longest["latency_ms"], color="C2", ls="--", lw=1)
    ax.text(
        longest["latency_ms"],
        ax.get_ylim()[0],
        f" full model, padded to the\n longest ({longest['tokens']} tokens)",
        color="C2",
        fontsize=8,
        va="bottom",
    )
    ax.set(
        xlabel="ms per forward, 8 x 128 (fastest of the rounds)",
        ylabel="Rotten Tomatoes test accuracy",
        title="PoWER-BERT token elimination on the MiniLM classifier",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
