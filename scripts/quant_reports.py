"""How much int8 quantisation costs in accuracy, measured on real weights and offline data.

    python scripts/fetch_data.py                          # the corpora and Rotten Tomatoes
    python scripts/train_reports.py finetune              # the float classifier (training issue)
    python scripts/train_reports.py finetune --qat        # the same recipe, quantization-aware
    python scripts/quant_reports.py                       # this report

1. Sentence embeddings of all-MiniLM-L6-v2, float32 vs int8 (minibert.quantize, with and
   without the int8 word-embedding table): cosine of mean-pooled, L2-normalised vectors over a
   few hundred varied sentences (Rotten Tomatoes reviews, Wikipedia, Austen, Shakespeare, the
   King James Bible, the Python docs: one fixed, seeded draw).
2. Retrieval: each of 100 query sentences against the others; does int8 rank the same nearest
   neighbour first (top-1 agreement), how many of the float top-10 stay in the int8 top-10,
   and the Spearman correlation of the two full rankings. And a task with a known answer:
   the first half of each sentence (10 words or more) must find its own second half among all
   second halves (recall@1, mean reciprocal rank), float32 vs int8.
3. The Rotten Tomatoes classifier fine-tuned in the training issue (runs/finetune), float32 vs
   int8 on its test split (split by movie, seed 0), and the quantization-aware run
   (runs/finetune-qat) quantised the same way.
Writes docs/results/quant.json; docs/quantization.md shows it.
"""

import argparse
import csv
import json
import re
import time
from pathlib import Path

import numpy as np

import minibert
from minibert.data.batches import classification_examples
from minibert.data.text import data_dir, group_split
from minibert.evaluation.metrics import classification_metrics
from minibert.training.recipes import predict

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
CORPORA = ("wiki", "austen", "shakespeare", "kjv", "pydocs")
PER_SOURCE = 60  # sentences per corpus, plus as many reviews
MAX_LENGTH = 64  # the classifier's fine-tuning length


def varied_sentences(seed: int = 0) -> list:
    """A fixed draw of sentences of 5-40 words from every offline source."""
    rng = np.random.default_rng(seed)
    folder = data_dir()
    picked = []
    for name in CORPORA:
        text = (folder / "corpus" / f"{name}.txt").read_text(encoding="utf-8")
        pieces = re.split(r"(?<=[.!?])\s+|\n+", text)
        pieces = [" ".join(p.split()) for p in pieces]
        pieces = [p for p in pieces if 5 <= len(p.split()) <= 40]
        picked += [pieces[i] for i in rng.choice(len(pieces), PER_SOURCE, replace=False)]
    reviews = [r["text"] for r in _reviews()]
    picked += [reviews[i] for i in rng.choice(len(reviews), PER_SOURCE, replace=False)]
    return picked


def _reviews():
    with (data_dir() / "rotten_tomatoes.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def embeddings_report(sentences) -> dict:
    from minibert.pretrained import minilm_path

    encoder = minibert.SentenceEncoder(minilm_path())
    fp32 = encoder.model
    vectors = encoder.encode(sentences)
    firsts, seconds = halves(sentences)
    out = {"sentences": len(sentences), "halves": len(firsts)}
    out["float32"] = {"halves": halves_retrieval(encoder, firsts, seconds)}
    for label, embeddings in (("int8", True), ("int8, float32 word embeddings", False)):
        encoder.model = minibert.quantize(fp32, embeddings=embeddings)
        qvectors = encoder.encode(sentences)
        cos = np.sum(vectors * qvectors, axis=1)
        out[label] = {
            "mean_cosine": float(cos.mean()),
            "min_cosine": float(cos.min()),
            "p05_cosine": float(np.percentile(cos, 5)),
            "retrieval": retrieval_agreement(vectors, qvectors),
            "halves": halves_retrieval(encoder, firsts, seconds),
        }
    return out


def halves(sentences, min_words: int = 10):
    """Sentences of min_words or more cut in two at the middle word: a retrieval task with a
    known answer (the second half of the query's own sentence)."""
    firsts, seconds = [], []
    for text in sentences:
        words = text.split()
        if len(words) >= min_words:
            firsts.append(" ".join(words[: len(words) // 2]))
            seconds.append(" ".join(words[len(words) // 2 :]))
    return firsts, seconds


def halves_retrieval(encoder, firsts, seconds) -> dict:
    """Recall@1 and mean reciprocal rank of each first half finding its own second half."""
    q, d = encoder.encode(firsts), encoder.encode(seconds)
    sim = q @ d.T
    rank = (sim > sim[np.arange(len(q)), np.arange(len(q))][:, None]).sum(1) + 1  # 1 = found
    return {"recall_at_1": float(np.mean(rank == 1)), "mrr": float(np.mean(1.0 / rank))}


def retrieval_agreement(vectors, qvectors, queries: int = 100) -> dict:
    """Queries are the first `queries` sentences of a shuffled order; documents the rest."""
    order = np.random.default_rng(1).permutation(len(vectors))
    q, d = order[:queries], order[queries:]
    sim, qsim = vectors[q] @ vectors[d].T, qvectors[q] @ qvectors[d].T
    top1 = float(np.mean(sim.argmax(1) == qsim.argmax(1)))
    top10 = np.argsort(-sim, axis=1)[:, :10]
    qtop10 = np.argsort(-qsim, axis=1)[:, :10]
    overlap = float(
        np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top10, qtop10, strict=True)])
    )
    rho = float(np.mean([_spearman(a, b) for a, b in zip(sim, qsim, strict=True)]))
    return {
        "queries": queries,
        "documents": len(d),
        "top1_agreement": top1,
        "top10_overlap": overlap,
        "spearman": rho,
    }


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def classifier_report(run: Path) -> dict | None:
    """Test accuracy of the newest checkpoint under `run`, float32 and int8."""
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not checkpoints:
        return None
    folder = checkpoints[-1]
    rows = _reviews()
    texts = [r["text"] for r in rows]
    labels = [int(r["label"] == "fresh") for r in rows]
    _, _, test_idx = group_split(np.arange(len(texts)), [r["movie"] for r in rows], seed=0)
    tokenizer = minibert.load_tokenizer(folder)
    examples = classification_examples(
        [texts[i] for i in test_idx], [labels[i] for i in test_idx], tokenizer, MAX_LENGTH
    )
    gold = np.array([e["labels"] for e in examples])
    model = minibert.load(folder)
    out = {"checkpoint": f"{run.parent.name}/{folder.name}", "test_size": len(examples)}
    for label, m in (("float32", model), ("int8", minibert.quantize(model))):
        start = time.perf_counter()
        predicted = predict(m, examples, 64, tokenizer.pad_token_id)
        out[label] = classification_metrics(predicted, gold)
        out[label]["seconds"] = time.perf_counter() - start
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=None, help="folder of the training runs")
    parser.add_argument(
        "--embeddings-only", action="store_true", help="keep the classifier rows of the last run"
    )
    args = parser.parse_args(argv)
    runs = Path(args.runs) if args.runs else data_dir().parent / "runs"
    target = RESULTS / "quant.json"
    sentences = varied_sentences()
    result = {"embeddings": embeddings_report(sentences)}
    for name in ("finetune", "finetune-qat"):
        if args.embeddings_only and target.is_file():
            result[name] = json.loads(target.read_text())[name]
        else:
            result[name] = classifier_report(runs / name / "run")
    RESULTS.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
