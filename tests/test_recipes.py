"""Pretraining from scratch and fine-tuning, end to end on tiny synthetic data."""

import numpy as np

import minibert
from minibert import EncoderConfig
from minibert.tokenizer import train_wordpiece
from minibert.training.recipes import finetune, mlm_examples, plot_history, pretrain
from minibert.training.trainer import TrainConfig

WORDS = (
    "the cat sat on a mat while dogs ran over green hills and birds sang in tall trees "
    "near cold rivers"
).split()


def corpus(n_docs=30, seed=0):
    rng = np.random.default_rng(seed)
    return [
        [" ".join(rng.choice(WORDS, rng.integers(5, 12))) + "." for _ in range(6)]
        for _ in range(n_docs)
    ]


def test_pretrain_bert_with_nsp_learns(tmp_path):
    docs = corpus()
    tok = train_wordpiece([s for d in docs for s in d], 120, tmp_path / "tok")
    config = EncoderConfig(
        architecture="BertForPreTraining",
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=40,
    )
    train = TrainConfig(max_steps=40, lr=3e-3, warmup_steps=4, eval_every=20, progress=False)
    model, history = pretrain(
        docs[:25],
        tok,
        config,
        train,
        tmp_path / "run",
        eval_documents=docs[25:],
        max_length=32,
        batch_size=8,
    )
    assert np.mean(history.loss[-5:]) < np.mean(history.loss[:5]) - 0.5
    assert set(history.evals[-1]) == {"step", "mlm_accuracy", "mlm_loss", "pair_accuracy"}
    folder = tmp_path / "run" / "checkpoint-40"
    again = minibert.load(folder)  # a checkpoint is a model folder with its tokenizer
    assert minibert.load_tokenizer(folder).vocab_size == tok.vocab_size
    assert type(again).__name__ == "BertForPreTraining"
    assert plot_history(history, tmp_path / "curve.png", "test").stat().st_size > 1000


def test_mlm_examples_fill_the_length(tmp_path):
    docs = corpus(4)
    tok = train_wordpiece([s for d in docs for s in d], 120, tmp_path / "tok")
    examples = mlm_examples(docs, tok, max_length=16)
    assert all(len(e["input_ids"]) <= 16 for e in examples)
    assert all(e["input_ids"][0] == tok.cls_token_id for e in examples)
    assert all(e["input_ids"][-1] == tok.sep_token_id for e in examples)


def test_finetune_splits_by_group_and_reports(tmp_path):
    docs = corpus(2)
    tok_dir = tmp_path / "base"
    tok = train_wordpiece([s for d in docs for s in d], 120, tok_dir)
    config = EncoderConfig(
        architecture="BertModel",
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=40,
    )
    from minibert.models import from_config

    from_config(config, seed=0).save_pretrained(tok_dir)
    rng = np.random.default_rng(1)
    texts, labels, groups = [], [], []
    for i in range(200):  # label 1 iff the sentence mentions a cat: learnable
        words = list(rng.choice(WORDS[2:], 6))
        label = int(rng.random() < 0.5)
        if label:
            words[rng.integers(0, 6)] = "cat"
        texts.append(" ".join(words))
        labels.append(label)
        groups.append(f"g{i % 40}")
    train = TrainConfig(max_steps=60, lr=3e-3, warmup_steps=5, eval_every=30, progress=False)
    model, history, report = finetune(
        tok_dir, texts, labels, groups, train, tmp_path / "ft", batch_size=16, max_length=16
    )
    assert report["initialized"] == ["classifier.out.weight", "classifier.out.bias"]
    assert sum(report["sizes"].values()) == 200
    assert report["test"]["accuracy"] > 0.8
