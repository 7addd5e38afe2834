"""Rotten Tomatoes accuracy of the compressed classifier: low-bit schemes, heads and layers.

The classifier is all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes by scripts/train_reports.py
finetune (the newest checkpoint under runs/finetune/run, or --model); the test split is the one
it was trained against (1,265 reviews of unseen movies, split by movie, seed 0), at its
fine-tuning length of 64 tokens. No variant is retrained.

1. Low-bit: minibert.quantize with each scheme of benchmarks/lowbit_accuracy.py (int8 per
   channel, int8 and int4 group-wise, with an int8 or int4 word-embedding table).
2. Heads: Michel et al.'s importance from the classifier's own loss (cross-entropy against the
   labels) on 256 training reviews, in batches of 16; the least important fraction removed over
   the whole model (each layer keeps its best head), as benchmarks/compression_sweep.py does.
3. Layers: keep_layers with the kept layers spread evenly (0 and 5 always kept).

    python benchmarks/compression_rt_accuracy.py --json docs/results/compression_rt.json
"""

import argparse
import copy
import json
from pathlib import Path

import numpy as np
from token_elimination import newest_classifier, rotten_tomatoes_splits

import minibert
from minibert.compression.heads import head_importance, least_important
from minibert.compression.layers import keep_layers
from minibert.data.batches import collate
from minibert.evaluation.metrics import classification_metrics
from minibert.training.recipes import predict

LENGTH = 64  # the classifier's fine-tuning length
SCHEMES = (  # (name, quantize keyword arguments)
    ("int8 per channel", {}),
    ("int8 group 128", {"bits": 8, "group_size": 128}),
    ("int8 group 128, int4 word table", {"bits": 8, "group_size": 128, "embedding_bits": 4}),
    ("int4 group 128", {"bits": 4, "group_size": 128}),
    ("int4 group 64", {"bits": 4, "group_size": 64}),
    ("int4 group 32", {"bits": 4, "group_size": 32}),
)
HEAD_FRACTIONS = (1 / 6, 1 / 3, 1 / 2, 2 / 3)
LAYERS_KEPT = (5, 4, 3, 2)
IMPORTANCE_SAMPLE, IMPORTANCE_BATCH = 256, 16


def test_accuracy(model, examples, pad_id) -> dict:
    gold = np.array([e["labels"] for e in examples])
    scores = classification_metrics(predict(model, examples, 64, pad_id), gold)
    return {"accuracy": round(scores["accuracy"], 4), "f1": round(scores["f1"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="classifier folder (default: the newest RT checkpoint)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()

    folder = Path(args.model) if args.model else newest_classifier()
    model = minibert.load(folder)
    tokenizer = minibert.load_tokenizer(folder)
    pad = tokenizer.pad_token_id
    splits = rotten_tomatoes_splits(tokenizer, LENGTH)
    test = splits["test"]
    rows = {"float32": test_accuracy(model, test, pad), "lowbit": [], "heads": [], "layers": []}
    print("float32", rows["float32"], flush=True)

    for name, scheme in SCHEMES:
        rows["lowbit"].append(
            {"scheme": name, **test_accuracy(minibert.quantize(model, **scheme), test, pad)}
        )
        print(rows["lowbit"][-1], flush=True)

    sample = splits["train"][:IMPORTANCE_SAMPLE]
    batches = [
        collate(sample[i : i + IMPORTANCE_BATCH], pad)
        for i in range(0, len(sample), IMPORTANCE_BATCH)
    ]
    importance = head_importance(model, batches)
    total = importance.size
    for fraction in HEAD_FRACTIONS:
        plan = least_important(importance, fraction)
        removed = sum(len(h) for h in plan.values())
        pruned = minibert.prune_heads(copy.deepcopy(model), plan)
        rows["heads"].append({"removed": removed, "of": total, **test_accuracy(pruned, test, pad)})
        print(rows["heads"][-1], flush=True)

    L = model.config.num_hidden_layers
    for kept in LAYERS_KEPT:
        layers = sorted({int(i) for i in np.round(np.linspace(0, L - 1, kept))})
        smaller = keep_layers(model, layers)
        rows["layers"].append({"kept": layers, **test_accuracy(smaller, test, pad)})
        print(rows["layers"][-1], flush=True)

    result = {
        "benchmark": "benchmarks/compression_rt_accuracy.py",
        "model": f"all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes ({folder.name})",
        "test_size": len(test),
        "max_length": LENGTH,
        "importance_sample": {"reviews": len(sample), "batch": IMPORTANCE_BATCH},
        **rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
