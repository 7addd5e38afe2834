"""`minibert compare --variants`: int4, pruned-head, fewer-layer and token-eliminated rows on
tiny fixture models, each checked against the library call it stands for, and the specs."""

import json

import numpy as np
import pytest
from test_compare import labelled_csv
from test_distill_recipes import sentences, with_tokenizer

import minibert
from minibert.cli.main import main
from minibert.compression.token_elimination import eliminate_tokens
from minibert.compression.variants import parse_variant, retention_for
from minibert.data.text import read_labelled
from minibert.errors import InputError
from minibert.evaluation.agreement import mean_cosine, top1_agreement
from minibert.training.recipes import classification_splits, predict

VARIANTS = ["int4", "heads:0.25", "layers:1", "tokens:0.5"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    teacher = with_tokenizer("bert-base", root / "teacher")
    classifier = with_tokenizer("bert-seqcls", root / "classifier")
    data = labelled_csv(root / "labelled.csv")
    texts = root / "texts.txt"
    texts.write_text("\n".join(sentences(12, seed=7)) + "\n")
    scoring = root / "scoring.txt"
    scoring.write_text("\n".join(sentences(16, seed=8)) + "\n")
    argv = ["compare", str(teacher), "--classifiers", f"teacher={classifier}", "--no-lee"]
    argv += ["--texts", str(texts), "--data", str(data), "--group-column", "group"]
    argv += ["--variants", *VARIANTS, "--variant-texts", str(scoring)]
    argv += ["--repeats", "1", "--pause", "0", "--json", str(root / "c.json")]
    assert main(argv) == 0
    rows = json.loads((root / "c.json").read_text())["rows"]
    return {"rows": {r["precision"]: r for r in rows}, "order": [r["precision"] for r in rows],
            "teacher": teacher, "classifier": classifier, "data": data, "texts": texts}  # fmt: skip


def encode(model, folder, texts_file):
    encoder = minibert.SentenceEncoder(folder, normalize=False)
    encoder.model = model
    texts = [t for t in texts_file.read_text().splitlines() if t]
    return encoder.encode(texts)


def test_one_row_per_variant_after_float32_and_int8(run):
    assert run["order"] == ["float32", "int8", "int4", "heads -25%", "layers 1", "tokens 50%"]
    for row in run["rows"].values():
        assert set(row["latency_ms"]) == {"1x16", "8x128"}  # every variant timed


def test_the_int4_row_is_minibert_quantize_at_4_bits(run):
    teacher = minibert.load(run["teacher"])
    reference = encode(teacher, run["teacher"], run["texts"])
    # group 128 is wider than this model's 32-wide layers: the row takes their width
    int4 = minibert.quantize(teacher, bits=4, group_size=32, embedding_bits=4)
    row = run["rows"]["int4"]
    assert row["parameters"]["total"] == teacher.num_parameters()
    assert row["bytes"] < run["rows"]["float32"]["bytes"] / 3  # positions, LayerNorms: float
    vectors = encode(int4, run["teacher"], run["texts"])
    assert row["mean_cosine"] == pytest.approx(mean_cosine(vectors, reference), abs=1e-6)


def test_pruned_heads_and_kept_layers_are_smaller(run):
    float_row, heads, layers = (run["rows"][k] for k in ("float32", "heads -25%", "layers 1"))
    C, H, L = 32, 4, 2
    removed = round(0.25 * H * L)  # 2 heads of 8, each C/H wide in q, k, v (rows) and o (columns)
    per_head = 4 * (C // H) * C + 3 * (C // H)  # weights and the q, k, v biases
    assert float_row["parameters"]["total"] - heads["parameters"]["total"] == removed * per_head
    assert layers["parameters"]["encoder"] == float_row["parameters"]["encoder"] // 2
    assert 0 <= heads["top1_agreement"] <= 1
    assert "mean_cosine" in layers


def test_token_elimination_has_accuracy_and_no_sentence_vector(run):
    row = run["rows"]["tokens 50%"]
    assert "mean_cosine" not in row
    assert "top1_agreement" not in row
    model = minibert.load(run["classifier"])
    tokenizer = minibert.load_tokenizer(run["classifier"])
    data = read_labelled(run["data"])
    groups = [r["group"] for r in data.rows]
    test = classification_splits(data.texts, data.label_ids, groups, tokenizer, 64, 0)["test"]

    class Eliminating:  # what the row stands for, written out
        config = model.config

        def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
            counts = retention_for(0.5, model.config.num_hidden_layers, input_ids.shape[1])
            return eliminate_tokens(model, counts, input_ids, attention_mask, token_type_ids).output

    gold = np.array([int(e["labels"]) for e in test])
    expected = float(np.mean(predict(Eliminating(), test, 32, tokenizer.pad_token_id) == gold))
    assert row["accuracy"]["accuracy"] == pytest.approx(expected)


def test_retention_runs_down_to_the_fraction():
    assert retention_for(0.5, 4, 128) == [112, 96, 80, 64]
    assert retention_for((0.5, 0.36, 0.01), 3, 128) == [64, 47, 2]
    assert parse_variant("tokens:0.5,0.36,0.01").label == "tokens 0.5-0.36-0.01"
    with pytest.raises(InputError, match="needs one for each"):
        retention_for((0.5, 0.2), 3, 128)
    assert retention_for(0.01, 2, 16) == [9, 1]  # never below [CLS]
    counts = retention_for(0.3, 6, 37)
    assert counts == sorted(counts, reverse=True)
    assert counts[-1] == 12


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("int5", "unknown variant"),
        ("heads:1.5", "between 0 and 1"),
        ("heads:x", "heads:FRACTION"),
        ("layers:a,b", "layers:I,J"),
        ("int4:2", "no argument"),
        ("heads:0.1,0.2", "one fraction"),
        ("tokens:0.5,0", "each fraction must be"),
    ],
)
def test_bad_specs_are_named(spec, message):
    with pytest.raises(InputError, match=message):
        parse_variant(spec)


def test_top1_of_a_model_with_itself_is_one(run):
    assert run["rows"]["float32"]["top1_agreement"] == 1.0
    vectors = encode(minibert.load(run["teacher"]), run["teacher"], run["texts"])
    assert top1_agreement(vectors, vectors) == 1.0
