"""The training runs reported in docs/training.md, reproducible from the offline data.

    python scripts/fetch_data.py                       # the corpora and Rotten Tomatoes
    python scripts/train_reports.py pretrain [--steps 800]
    python scripts/train_reports.py finetune [--epochs 2]
    python scripts/train_reports.py finetune --qat     # the same, quantization-aware

pretrain: a WordPiece vocabulary (8,000) trained on Wikipedia + Austen, then a small BERT
(4 layers, hidden 256) pretrained from scratch with MLM + NSP; 5% of the documents are held out
for masked-token accuracy. finetune: the real all-MiniLM-L6-v2 fine-tuned on the Rotten Tomatoes
fresh/rotten sentences, split 80/10/10 by movie (seed 0, as scripts/baseline_bow.py). Both write
their numbers to docs/results/*.json and their curves to docs/img/*.png, and checkpoint as they
go: run the same command again to resume.
"""

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from minibert import EncoderConfig
from minibert.data.text import data_dir, documents_from_text
from minibert.tokenizer import reuse_or_train_wordpiece
from minibert.training.recipes import finetune, plot_history, pretrain
from minibert.training.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS, IMAGES = ROOT / "docs" / "results", ROOT / "docs" / "img"


def read_corpus(names) -> list:
    documents = []
    for name in names:
        file = data_dir() / "corpus" / f"{name}.txt"
        if not file.is_file():
            raise SystemExit(f"{file} is missing: run python scripts/fetch_data.py first")
        documents += documents_from_text(file.read_text(encoding="utf-8"))
    return documents


def run_pretrain(args) -> dict:
    documents = read_corpus(args.corpus)
    order = np.random.default_rng(0).permutation(len(documents))
    held = max(1, len(documents) // 20)
    eval_docs = [documents[i] for i in order[:held]]
    train_docs = [documents[i] for i in order[held:]]
    out = Path(args.output)
    tokenizer = reuse_or_train_wordpiece(
        (s for d in train_docs for s in d), args.vocab, out / "tokenizer"
    )
    config = EncoderConfig(
        architecture="BertForPreTraining",
        vocab_size=tokenizer.vocab_size,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=args.max_length,
    )
    train = TrainConfig(
        max_steps=args.steps,
        lr=args.lr,
        warmup_steps=args.steps // 10,
        eval_every=args.steps // 8,
        save_every=args.steps // 8,
        seed=0,
    )
    start = time.perf_counter()
    model, history = pretrain(
        train_docs,
        tokenizer,
        config,
        train,
        out / "run",
        eval_documents=eval_docs,
        max_length=args.max_length,
        batch_size=args.batch_size,
        resume=True,
    )
    seconds = time.perf_counter() - start
    plot_history(
        history,
        IMAGES / "pretrain_curve.png",
        f"BERT L4 H256 from scratch on {' + '.join(args.corpus)}: MLM + NSP",
    )
    return {
        "documents": {"train": len(train_docs), "held_out": len(eval_docs)},
        "vocab_size": tokenizer.vocab_size,
        "parameters": model.num_parameters(),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "lr": args.lr,
        "seconds_this_run": round(seconds),
        "tokens_seen": int(np.sum(history.tokens)),
        "first_loss": history.loss[0],
        "last_loss": float(np.mean(history.loss[-20:])),
        "evals": history.evals,
    }


def run_finetune(args) -> dict:
    from minibert.pretrained import minilm_path

    rows = list(csv.DictReader((data_dir() / "rotten_tomatoes.csv").open(encoding="utf-8")))
    texts = [r["text"] for r in rows]
    labels = [int(r["label"] == "fresh") for r in rows]
    movies = [r["movie"] for r in rows]
    steps_per_epoch = int(np.ceil(0.8 * len(texts) / args.batch_size))
    steps = args.epochs * steps_per_epoch
    train = TrainConfig(
        max_steps=steps,
        lr=args.lr,
        warmup_steps=steps // 10,
        eval_every=steps_per_epoch // 2,
        save_every=steps_per_epoch // 2,
        weight_decay=0.01,
        seed=0,
        qat=args.qat,
    )
    start = time.perf_counter()
    model, history, report = finetune(
        minilm_path(),
        texts,
        labels,
        movies,
        train,
        Path(args.output) / "run",
        max_length=64,
        batch_size=args.batch_size,
        num_labels=2,
        resume=True,
    )
    seconds = time.perf_counter() - start
    plot_history(
        history,
        IMAGES / ("finetune_qat_curve.png" if args.qat else "finetune_curve.png"),
        "all-MiniLM-L6-v2 fine-tuned on Rotten Tomatoes (fresh / rotten)"
        + (", quantization-aware" if args.qat else ""),
    )
    baseline = RESULTS / "baseline_bow.json"
    return {
        "report": report,
        "steps": steps,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "qat": args.qat,
        "seconds_this_run": round(seconds),
        "evals": history.evals,
        "baseline": json.loads(baseline.read_text()) if baseline.is_file() else None,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="run", required=True)
    p = sub.add_parser("pretrain")
    p.add_argument("--corpus", nargs="+", default=["wiki", "austen"])
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--output", default=str(data_dir().parent / "runs" / "pretrain"))
    f = sub.add_parser("finetune")
    f.add_argument("--epochs", type=int, default=2)
    f.add_argument("--lr", type=float, default=5e-5)
    f.add_argument("--batch-size", type=int, default=32)
    f.add_argument("--output", help="default: runs/finetune (runs/finetune-qat with --qat)")
    f.add_argument("--qat", action="store_true", help="quantization-aware fine-tuning")
    args = parser.parse_args(argv)
    if args.run == "finetune" and args.output is None:
        args.output = str(data_dir().parent / "runs" / ("finetune-qat" if args.qat else "finetune"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    IMAGES.mkdir(parents=True, exist_ok=True)
    result = run_pretrain(args) if args.run == "pretrain" else run_finetune(args)
    name = "finetune_qat" if args.run == "finetune" and args.qat else args.run
    target = RESULTS / f"{name}.json"
    target.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "evals"}, indent=1))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
