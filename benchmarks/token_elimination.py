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
and so does every configuration, its counts cut to that length (capped): padding is eliminated
first, so the same real tokens survive; its test accuracy is measured that way too, every batch
of the test split padded to its own longest. The configuration that keeps only [CLS] after the
first layer's attention shows the floor of the time.

    python benchmarks/token_elimination.py --json docs/results/token_elimination.json \
        --plot docs/img/token_elimination.png
"""

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np
from provenance import cpu_model

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


def rotten_tomatoes_splits(tokenizer, length: int = LENGTH) -> dict:
    """{"train", "validation", "test"}: tokenized examples, split by movie as the classifier
    was, cut at `length` tokens."""
    rows = list(csv.DictReader((data_dir() / "rotten_tomatoes.csv").open(encoding="utf-8")))
    texts = [r["text"] for r in rows]
    labels = [int(r["label"] == "fresh") for r in rows]
    movies = [r["movie"] for r in rows]
    return classification_splits(texts, labels, movies, tokenizer, length)


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


def capped(retention, length: int) -> tuple:
    """A configuration for T = 128 on a batch padded to `length` tokens: each count at most
    `length`. Padding scores below every real token, so the same real tokens survive and the
    predictions are those of the 128-token batch (up to float rounding)."""
    return tuple(min(k, length) for k in retention)


def accuracy(model, retention, batches) -> float:
    right = total = 0
    for batch, labels in batches:
        counts = capped(retention, batch["input_ids"].shape[1])
        logits = eliminate_tokens(model, counts, **batch).output.logits
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
    test_to_longest = padded_batches(splits["test"], args.batch_size, pad, length=None)
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
                "test_accuracy_padded_to_longest": round(
                    accuracy(model, retention, test_to_longest), 4
                ),
            }
        )
        print(rows[-1], flush=True)

    sample, _ = padded_batches(splits["test"][:BATCH], BATCH, pad)[0]
    shortest, _ = padded_batches(splits["test"][:BATCH], BATCH, pad, length=None)[0]
    longest = shortest["input_ids"].shape[1]
    runs = []
    for row in rows:  # each configuration at 8 x 128, then on the batch padded to its longest
        counts = tuple(row["retention"])
        short = capped(counts, longest)
        runs.append(lambda r=counts: eliminate_tokens(model, r, **sample))
        runs.append(lambda r=short: eliminate_tokens(model, r, **shortest))
    runs[0] = lambda: model(**sample)  # the full configuration: the model's own forward
    runs[1] = lambda: model(**shortest)
    load_before = os.getloadavg()
    timings = latencies_ms(runs)
    load_after = os.getloadavg()
    for i, row in enumerate(rows):
        row["latency_ms_8x128"], row["median_ms_8x128"] = timings[2 * i]
        row["latency_ms_padded_to_longest"], row["median_ms_padded_to_longest"] = timings[2 * i + 1]
    padded_to_longest = {
        "tokens": int(longest),
        "latency_ms": rows[0]["latency_ms_padded_to_longest"],
        "median_ms": rows[0]["median_ms_padded_to_longest"],
    }
    lengths = [len(e["input_ids"]) for e in splits["test"]]
    result = {
        "benchmark": "benchmarks/token_elimination.py",
        "model": f"all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes ({folder.name})",
        "cpu": cpu_model(),
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
    """Test accuracy against time, padded to 128 and to the longest; the floor (only [CLS]
    after the first layer) is left out, far below the others."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["retention"][0] > 1]  # the floor keeps 1 from the start
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.scatter(
        [r["latency_ms_8x128"] for r in rows],
        [r["test_accuracy"] for r in rows],
        color="C0",
        label="padded to 128 tokens",
    )
    ax.scatter(
        [r["latency_ms_padded_to_longest"] for r in rows],
        [r["test_accuracy_padded_to_longest"] for r in rows],
        color="C2",
        marker="x",
        label=f"padded to the longest ({result['full_model_padded_to_longest']['tokens']} tokens)",
    )
    for i, r in enumerate(rows):
        name = "full model" if i == 0 else "-".join(str(k) for k in r["retention"])
        offset = (4, 6 - 12 * (i % 3))  # three labels in turn, so that neighbours do not overlap
        ax.annotate(
            name,
            (r["latency_ms_8x128"], r["test_accuracy"]),
            xytext=offset,
            textcoords="offset points",
            fontsize=8,
            ha="right" if i == 0 else "left",
        )
    ax.legend(loc="lower right", fontsize=8)
    ax.margins(y=0.1)
    ax.set(
        xlabel="ms per forward of 8 reviews (fastest of the rounds)",
        ylabel="Rotten Tomatoes test accuracy",
        title="PoWER-BERT token elimination on the MiniLM classifier",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
