"""`minibert finetune` end to end on a tiny model: class names in config.json, token
classification from CoNLL files (sub-token labels checked against transformers' own, from
fixtures/conll/), multi-label classification, and the command's refusals."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import minibert
from conftest import needs_minilm
from minibert import EncoderConfig
from minibert.cli.main import main
from minibert.config import IGNORE_INDEX
from minibert.data.batches import collate
from minibert.data.conll import read_conll, token_classification_examples
from minibert.data.text import read_labelled
from minibert.errors import MinibertError
from minibert.models import from_config
from minibert.tokenizer import load_tokenizer, train_wordpiece

CONLL = Path(__file__).parent / "fixtures" / "conll"
WORDS = (
    "the cat sat on a mat while dogs ran over green hills and birds sang in tall trees "
    "near cold rivers"
).split()


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    """A one-layer BERT with a WordPiece vocabulary of WORDS: config, weights and tokenizer."""
    folder = tmp_path_factory.mktemp("base")
    rng = np.random.default_rng(0)
    tok = train_wordpiece([" ".join(rng.choice(WORDS, 8)) for _ in range(50)], 120, folder)
    config = EncoderConfig(
        architecture="BertModel",
        vocab_size=tok.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=40,
    )
    from_config(config, seed=0).save_pretrained(folder)
    return folder


def write_reviews(path, rows=40, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(rows):
            writer.writerow([" ".join(rng.choice(WORDS, 5)), ["rotten", "fresh"][i % 2]])
    return path


def finetune(model, data, output, *extra):
    return main(
        ["finetune", str(model), "--data", str(data), "--output", str(output), "--steps", "2"]
        + ["--batch-size", "8", *extra]
    )


def saved_config(folder):
    return json.loads((Path(folder) / "config.json").read_text())


# --- class names survive training -------------------------------------------------------------
def test_class_names_go_into_the_saved_config(base_model, tmp_path, capsys):
    data = write_reviews(tmp_path / "reviews.csv")
    assert finetune(base_model, data, tmp_path / "ft") == 0
    folder = tmp_path / "ft" / "checkpoint-2"
    config = saved_config(folder)
    assert config["id2label"] == {"0": "fresh", "1": "rotten"}  # sorted, as report.json says
    assert config["label2id"] == {"fresh": 0, "rotten": 1}
    assert config["problem_type"] == "single_label_classification"
    model = minibert.load(folder)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.to_hf()["id2label"] == config["id2label"]  # and back out unchanged
    answer = minibert.pipeline("text-classification", folder)("the cat sat", top_k=None)
    assert sorted(a["label"] for a in answer) == ["fresh", "rotten"]
    report = json.loads((tmp_path / "ft" / "report.json").read_text())
    assert report["label_names"] == ["fresh", "rotten"]


# --- the command's refusals -------------------------------------------------------------------
def test_a_used_output_needs_resume_or_overwrite(base_model, tmp_path, capsys):
    data = write_reviews(tmp_path / "reviews.csv")
    output = tmp_path / "ft"
    assert finetune(base_model, data, output, "--steps", "3", "--save-every", "1") == 0
    capsys.readouterr()
    assert finetune(base_model, data, output) == 2  # the issue: checkpoint-3 outlived this run
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--output {output} is not empty" in err
    assert "--resume" in err
    assert "--overwrite" in err
    assert finetune(base_model, data, output, "--overwrite") == 0
    assert sorted(p.name for p in output.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())["step"] == 2
    assert finetune(base_model, data, output, "--resume", "--steps", "3") == 0  # continues


def test_overwrite_leaves_a_folder_that_is_no_run_alone(base_model, tmp_path, capsys):
    data = write_reviews(tmp_path / "reviews.csv")
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    assert finetune(base_model, data, precious, "--overwrite") == 2
    assert "holds no training run" in capsys.readouterr().err
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_an_int8_model_is_refused_in_one_line(base_model, tmp_path, capsys):
    int8 = tmp_path / "int8"
    assert main(["quantize", str(base_model), str(int8)]) == 0
    capsys.readouterr()
    assert finetune(int8, write_reviews(tmp_path / "r.csv"), tmp_path / "ft") == 1
    err = capsys.readouterr().err
    assert err.startswith("minibert: error:")
    assert err.count("\n") == 1
    assert "int8 (quantized) model" in err


def test_a_missing_model_folder_is_named_as_such(tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    assert finetune(missing, write_reviews(tmp_path / "r.csv"), tmp_path / "ft") == 1
    err = capsys.readouterr().err.strip()
    assert err == f"minibert: error: model folder {missing} does not exist"


def test_progress_lines_when_stderr_is_no_terminal(base_model, tmp_path, capsys):
    data = write_reviews(tmp_path / "reviews.csv")
    assert finetune(base_model, data, tmp_path / "ft", "--steps", "4", "--log-every", "2") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "tokens/s" in line]
    assert [line.split("  ")[0] for line in lines] == ["step 2/4 (50%)", "step 4/4 (100%)"]
    assert all("loss " in line and " elapsed" in line for line in lines)


def test_progress_lines_default_to_twenty_a_run(base_model, tmp_path, capsys):
    data = write_reviews(tmp_path / "reviews.csv", rows=80)
    assert finetune(base_model, data, tmp_path / "ft", "--steps", "40", "--eval-every", "40") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "tokens/s" in line]
    assert len(lines) == 20
    assert lines[0].startswith("step 2/40 ")


# --- token classification ---------------------------------------------------------------------
def test_read_conll_skips_docstart_and_takes_the_last_column():
    data = read_conll(CONLL / "tiny.conll")
    expected = json.loads((CONLL / "token_labels.json").read_text())
    assert data.words == expected["words"]
    assert data.label_names == expected["label_names"]
    assert data.words[0][:3] == ["EU", "rejects", "German"]
    names = [data.label_names[i] for i in data.tag_ids[0][:3]]
    assert names == ["B-ORG", "O", "B-MISC"]  # four columns: the tag is the last


@needs_minilm
@pytest.mark.parametrize("max_length", ["64", "12"])
def test_sub_token_labels_equal_transformers(max_length):
    """Each word's tag on its first sub-token, -100 elsewhere, cut to max_length: the labels
    transformers' token-classification example computes (fixtures/generate_token_labels.py)."""
    from minibert.pretrained import minilm_path

    expected = json.loads((CONLL / "token_labels.json").read_text())
    data = read_conll(CONLL / "tiny.conll")
    examples = token_classification_examples(
        data.words, data.tag_ids, load_tokenizer(minilm_path()), int(max_length)
    )
    rows = expected["by_max_length"][max_length]
    assert len(examples) == len(rows)
    for example, row in zip(examples, rows, strict=True):
        assert example["input_ids"].tolist() == row["input_ids"]
        assert example["labels"].tolist() == row["labels"]
    assert any(len(row["input_ids"]) == 12 for row in expected["by_max_length"]["12"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EU B-ORG\nrejects\n", "line 2 has no tag"),
        ("-DOCSTART- O\n\n\n", "has no sentences"),
    ],
)
def test_read_conll_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.conll"
    path.write_text(text)
    with pytest.raises(MinibertError, match=message):
        read_conll(path)
    with pytest.raises(MinibertError, match="does not exist"):
        read_conll(tmp_path / "missing.conll")


def write_tagged(path, sentences=30, seed=0):
    """Sentences of WORDS where "cat" and "dogs" are animals (B-ANIMAL), the rest O."""
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(sentences):
        words = rng.choice(WORDS, rng.integers(3, 8))
        blocks.append(
            "\n".join(f"{w} {'B-ANIMAL' if w in ('cat', 'dogs') else 'O'}" for w in words)
        )
    path.write_text("\n\n".join(blocks) + "\n")
    return path


def test_finetune_a_token_classifier_from_conll(base_model, tmp_path, capsys):
    data = write_tagged(tmp_path / "animals.conll")
    assert finetune(base_model, data, tmp_path / "ner", "--task", "token", "--lr", "1e-3") == 0
    folder = tmp_path / "ner" / "checkpoint-2"
    config = saved_config(folder)
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {"0": "B-ANIMAL", "1": "O"}
    model = minibert.load(folder)
    tok = minibert.load_tokenizer(folder)
    out = model(**tok(["the cat sat"]))
    assert out.logits.shape == (1, 5, 2)
    tags = minibert.pipeline("token-classification", folder)("the cat sat", ignore_labels=[])
    assert [tag["word"] for tag in tags] == ["the", "cat", "sat"]
    assert {tag["entity"] for tag in tags} <= {"B-ANIMAL", "O"}  # the names, not LABEL_0
    report = json.loads((tmp_path / "ner" / "report.json").read_text())
    assert report["label_names"] == ["B-ANIMAL", "O"]
    assert sum(report["sizes"].values()) == 30
    assert set(report["test"]) == {"accuracy", "f1"}


def test_a_conll_file_without_task_token_is_a_usage_error(base_model, tmp_path, capsys):
    data = write_tagged(tmp_path / "animals.conll")
    assert finetune(base_model, data, tmp_path / "ner") == 2
    assert "add --task token" in capsys.readouterr().err
    assert (
        finetune(base_model, data, tmp_path / "ner", "--task", "token", "--group-column", "x") == 2
    )
    assert "--group-column is for tables" in capsys.readouterr().err


# --- multi-label classification ---------------------------------------------------------------
def test_read_labelled_multi_label_from_jsonl_lists_and_csv_strings(tmp_path):
    jsonl = tmp_path / "topics.jsonl"
    rows = [("a", ["sports", "politics"]), ("b", []), ("c", ["arts"]), ("d", ["sports"])]
    jsonl.write_text("".join(json.dumps({"text": t, "label": ls}) + "\n" for t, ls in rows))
    data = read_labelled(jsonl, multi_label=True)
    assert data.label_names == ["arts", "politics", "sports"]
    assert data.label_ids.dtype == np.float32
    assert data.label_ids.tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0], [0, 0, 1]]
    table = tmp_path / "topics.csv"
    table.write_text("text,label\na,sports; politics\nb,\nc,arts;\nd,sports\n")
    again = read_labelled(table, multi_label=True, separator=";")
    assert again.label_names == data.label_names
    np.testing.assert_array_equal(again.label_ids, data.label_ids)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": null}\n')
    with pytest.raises(MinibertError, match="line 1: 'label' is null"):
        read_labelled(bad, multi_label=True)


def test_a_list_of_labels_without_multi_label_is_named(tmp_path, base_model, capsys):
    jsonl = tmp_path / "topics.jsonl"
    jsonl.write_text('{"text": "a", "label": ["sports", "arts"]}\n')
    with pytest.raises(MinibertError, match="line 1: 'label' is of type list.*needs multi-label"):
        read_labelled(jsonl)
    assert finetune(base_model, jsonl, tmp_path / "ft") == 1
    assert "needs multi-label" in capsys.readouterr().err


def test_collate_stacks_multi_hot_rows():
    examples = [
        {"input_ids": np.array([2, 7, 3]), "labels": np.array([1, 0, 1], np.float32)},
        {"input_ids": np.array([2, 3]), "labels": np.array([0, 0, 1], np.float32)},
    ]
    batch = collate(examples, pad_id=0)
    assert batch["labels"].shape == (2, 3)
    assert batch["labels"].dtype == np.float32
    tagged = [{"input_ids": np.array([2, 7, 3]), "labels": np.array([IGNORE_INDEX, 1, 0])}]
    assert collate(tagged, pad_id=0)["labels"].shape == (1, 3)  # integers: per token


def test_multi_label_metrics_by_hand():
    from minibert.training.recipes import multi_label_metrics

    gold = [[1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 0, 1]]
    predicted = [[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 1]]
    scores = multi_label_metrics(predicted, gold)
    # per label: tp/fp/fn = 2/0/0, 1/1/0, 1/0/1; F1 = 1, 2/3, 2/3; in all 4/1/1: 8/10
    assert scores["exact_match"] == 0.5
    assert scores["micro_f1"] == pytest.approx(0.8)
    assert scores["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def animal_texts(n=160, seed=1):
    """Texts of WORDS[2:] that mention a cat, dogs, both or neither, and which they mention."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        words = list(rng.choice([w for w in WORDS if w not in ("cat", "dogs")], 6))
        has = rng.random(2) < 0.5
        for animal, present in zip(("cat", "dogs"), has, strict=True):
            if present:
                words[rng.integers(0, 6)] = animal
        texts.append(" ".join(words))
        labels.append([float("cat" in words), float("dogs" in words)])
    return texts, np.array(labels, np.float32)


def test_multi_label_finetuning_learns(base_model, tmp_path):
    from minibert.training.recipes import finetune as finetune_recipe
    from minibert.training.trainer import TrainConfig

    texts, labels = animal_texts()
    train = TrainConfig(max_steps=200, lr=1e-2, warmup_steps=5, eval_every=100, progress=False)
    model, history, report = finetune_recipe(
        base_model,
        texts,
        labels,
        list(range(len(texts))),
        train,
        tmp_path / "ml",
        batch_size=16,
        max_length=16,
        label_names=["cat", "dogs"],
        multi_label=True,
    )
    assert np.mean(history.loss[-5:]) < np.mean(history.loss[:5]) - 0.2
    assert report["test"]["micro_f1"] > 0.8
    config = saved_config(tmp_path / "ml" / "checkpoint-200")
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {"0": "cat", "1": "dogs"}
    again = minibert.load(tmp_path / "ml" / "checkpoint-200")
    batch = minibert.load_tokenizer(tmp_path / "ml" / "checkpoint-200")(texts[:4])
    np.testing.assert_allclose(again(**batch).logits, model(**batch).logits, atol=1e-6)


def test_multi_label_from_the_command_line(base_model, tmp_path, capsys):
    texts, labels = animal_texts(40)
    data = tmp_path / "animals.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "animals"])
        for text, row in zip(texts, labels, strict=True):
            names = [n for n, x in zip(("cat", "dogs"), row, strict=True) if x]
            writer.writerow([text, "|".join(names)])
    extra = ["--task", "multi-label", "--label-column", "animals", "--label-separator", "|"]
    assert finetune(base_model, data, tmp_path / "ml", *extra) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["test"]) == {"exact_match", "micro_f1", "macro_f1"}
    config = saved_config(tmp_path / "ml" / "checkpoint-2")
    assert config["problem_type"] == "multi_label_classification"
    assert config["label2id"] == {"cat": 0, "dogs": 1}


def test_token_finetuning_learns(base_model, tmp_path):
    from minibert.training.tagging import finetune_tagger
    from minibert.training.trainer import TrainConfig

    data = read_conll(write_tagged(tmp_path / "animals.conll", sentences=120))
    train = TrainConfig(max_steps=60, lr=3e-3, warmup_steps=5, eval_every=30, progress=False)
    model, history, report = finetune_tagger(
        base_model,
        data.words,
        data.tag_ids,
        data.label_names,
        train,
        tmp_path / "ner",
        batch_size=16,
        max_length=16,
    )
    assert np.mean(history.loss[-5:]) < np.mean(history.loss[:5]) - 0.2
    assert report["test"]["accuracy"] > 0.9
    assert report["words"]["test"] > 0
