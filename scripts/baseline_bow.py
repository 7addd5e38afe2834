"""Bag-of-words logistic regression on Rotten Tomatoes: the number a fine-tuned encoder must beat.

    python scripts/fetch_data.py --only rotten_tomatoes
    python scripts/baseline_bow.py [--data rotten_tomatoes.csv] [--seed 0] [--json OUT]

Plain numpy, about fifteen seconds on one core:
1. split the labelled sentences 80/10/10 by movie (minibert.data.text.group_split, the split the
   fine-tuning recipe uses), so no movie is in two splits;
2. lowercase word tokens; vocabulary from the train split, words seen at least twice;
3. binary features: does the sentence contain the word;
4. L2-regularised logistic regression, a fixed number of Nesterov gradient steps from zero;
5. the regularisation strength is the one with the best validation accuracy; we then report
   accuracy and F1 on validation and test.
"""

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from minibert.data.text import data_dir, group_split

LABELS = ("rotten", "fresh")  # index 1, fresh, is the positive class
TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?")  # words, with an inner apostrophe (it's, don't)
LAMBDAS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)  # L2 strengths tried on validation


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(text.lower().replace("\u2019", "'"))


def build_vocab(token_lists, min_count: int = 2) -> dict[str, int]:
    """Words seen at least min_count times, in order of first appearance."""
    counts = {}
    for tokens in token_lists:
        for token in tokens:
            counts[token] = counts.get(token, 0) + 1
    return {w: i for i, w in enumerate(w for w, c in counts.items() if c >= min_count)}


def featurize(token_lists, vocab: dict[str, int]):
    """Binary bag of words as a sparse matrix (rows, cols, vals, shape): 1 where a word occurs.

    Unknown words are dropped; a sentence with no known word is an all-zero row.
    """
    rows, cols = [], []
    for r, tokens in enumerate(token_lists):
        ids = sorted({vocab[t] for t in tokens if t in vocab})
        rows += [r] * len(ids)
        cols += ids
    rows, cols = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)  # (nnz,) each
    return rows, cols, np.ones(len(rows)), (len(token_lists), len(vocab))


def matvec(x, w):
    """x @ w for the sparse x. Shapes: w (D,) -> (N,)"""
    rows, cols, vals, (n, _) = x
    return np.bincount(rows, weights=vals * w[cols], minlength=n)


def rmatvec(x, r):
    """x.T @ r for the sparse x. Shapes: r (N,) -> (D,)"""
    rows, cols, vals, (_, d) = x
    return np.bincount(cols, weights=vals * r[rows], minlength=d)


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|, unlike 1 / (1 + exp(-z))


def loss_and_grad(x, y, w, b, lam):
    """Mean logistic loss + lam/2 |w|^2 (the bias is not regularised), and its gradient.

    loss = mean(log(1 + exp(z)) - y z) with z = x w + b; d loss / dz = (sigmoid(z) - y) / N.
    """
    z = matvec(x, w) + b  # (N,)
    loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * (w @ w)
    dz = (sigmoid(z) - y) / len(y)  # (N,)
    return loss, rmatvec(x, dz) + lam * w, dz.sum()


def largest_eigenvalue(x, steps: int = 50, seed: int = 0) -> float:
    """Power iteration for the top eigenvalue of [x 1]^T [x 1], the bias column included."""
    v = np.random.default_rng(seed).standard_normal(x[3][1] + 1)  # (D + 1,)
    value = 0.0
    for _ in range(steps):
        v /= np.linalg.norm(v)
        u = matvec(x, v[:-1]) + v[-1]  # (N,)
        v = np.append(rmatvec(x, u), u.sum())
        value = np.linalg.norm(v)
    return value


def fit(x, y, lam: float, steps: int = 1000):
    """Nesterov's accelerated gradient with step 1/L from w = 0, b = 0; returns (w, b, loss).

    L bounds the loss's curvature: the logistic loss's second derivative is at most 1/4, so
    L = top eigenvalue of [x 1]^T [x 1] / (4 N) + lam; we add 10% for the power iteration's slack.
    """
    step = 1.0 / (1.1 * largest_eigenvalue(x) / (4 * len(y)) + lam)
    w = w_prev = np.zeros(x[3][1])  # (D,)
    b = b_prev = 0.0
    for t in range(1, steps + 1):
        momentum = (t - 1) / (t + 2)
        w_look, b_look = w + momentum * (w - w_prev), b + momentum * (b - b_prev)
        _, dw, db = loss_and_grad(x, y, w_look, b_look, lam)
        w_prev, b_prev = w, b
        w, b = w_look - step * dw, b_look - step * db
    return w, b, loss_and_grad(x, y, w, b, lam)[0]


def scores(y, predicted) -> dict:
    """Accuracy, F1 of the positive class (fresh) and macro F1 over both classes."""

    def f1(positive):
        tp = np.sum((predicted == positive) & (y == positive))
        denominator = np.sum(predicted == positive) + np.sum(y == positive)
        return 2 * tp / denominator if denominator else 0.0

    return {
        "accuracy": float(np.mean(predicted == y)),
        "f1_fresh": float(f1(1)),
        "f1_macro": float((f1(0) + f1(1)) / 2),
    }


def read_rotten_tomatoes(path: Path):
    """(texts, labels as 0 rotten / 1 fresh, movies) from fetch_data.py's rotten_tomatoes.csv."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"text", "label", "movie"} <= set(rows[0]):
        raise ValueError(f"{path}: expected columns text,label,movie")
    labels = np.array([LABELS.index(row["label"]) for row in rows], dtype=np.float64)
    return [row["text"] for row in rows], labels, [row["movie"] for row in rows]


def default_data() -> Path:
    return data_dir() / "rotten_tomatoes.csv"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="rotten_tomatoes.csv")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split by movie")
    parser.add_argument("--steps", type=int, default=1000, help="gradient steps per fit")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"{args.data} not found: run python scripts/fetch_data.py first", file=sys.stderr)
        return 1
    start = time.perf_counter()

    texts, y, movies = read_rotten_tomatoes(args.data)
    splits = dict(
        zip(
            ("train", "val", "test"),
            group_split(range(len(movies)), movies, seed=args.seed),
            strict=True,
        )
    )
    tokens = [tokenize(text) for text in texts]
    vocab = build_vocab(tokens[i] for i in splits["train"])
    x = {name: featurize([tokens[i] for i in idx], vocab) for name, idx in splits.items()}
    y_of = {name: y[idx] for name, idx in splits.items()}

    print(f"{'split':6} {'movies':>6} {'sentences':>9} {'fresh':>6}")
    sizes = {}
    for name, idx in splits.items():
        sizes[name] = {"movies": len({movies[i] for i in idx}), "sentences": len(idx)}
        fresh = y_of[name].mean()
        print(f"{name:6} {sizes[name]['movies']:6} {len(idx):9,} {fresh:6.1%}")
    print(f"vocabulary: {len(vocab):,} words seen at least twice in train\n")

    print(f"{'lambda':>7} {'train loss':>10} {'train acc':>9} {'val acc':>7}")
    grid, best = [], None
    for lam in LAMBDAS:
        w, b, loss = fit(x["train"], y_of["train"], lam, args.steps)
        predict = {n: (matvec(x[n], w) + b > 0).astype(np.float64) for n in ("train", "val")}
        train_acc = float(np.mean(predict["train"] == y_of["train"]))
        val = scores(y_of["val"], predict["val"])
        grid.append({"lambda": lam, "train_loss": loss, "train_accuracy": train_acc, **val})
        print(f"{lam:7.0e} {loss:10.4f} {train_acc:9.3f} {val['accuracy']:7.3f}")
        if best is None or val["accuracy"] > best[0]:  # ties keep the stronger regularisation
            best = (val["accuracy"], lam, w, b)
    _, lam, w, b = best

    results = {}
    print(f"\nchosen lambda = {lam:.0e}")
    print(f"{'':16} {'accuracy':>8} {'F1 fresh':>8} {'macro F1':>8}")
    for name in ("val", "test"):
        results[name] = scores(y_of[name], (matvec(x[name], w) + b > 0).astype(np.float64))
        majority = scores(y_of[name], np.ones_like(y_of[name]))  # always "fresh"
        results[f"{name}_majority"] = majority
        for label, r in ((name, results[name]), (f"{name} (majority)", majority)):
            print(f"{label:16} {r['accuracy']:8.3f} {r['f1_fresh']:8.3f} {r['f1_macro']:8.3f}")
    seconds = time.perf_counter() - start
    print(f"\n{seconds:.1f} s")

    if args.json:
        report = {
            "data": args.data.name,
            "rows": len(texts),
            "seed": args.seed,
            "steps": args.steps,
            "splits": sizes,
            "vocabulary": len(vocab),
            "grid": grid,
            "lambda": lam,
            **results,
            "seconds": round(seconds, 1),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
