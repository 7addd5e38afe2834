"""`minibert pretrain` and `minibert finetune` end to end on tiny data, in-process."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert.cli.main import main

WORDS = (
    "the cat sat on a mat while dogs ran over green hills and birds sang in tall trees "
    "near cold rivers"
).split()


def write_corpus(path, n_docs=24, seed=0):
    rng = np.random.default_rng(seed)
    docs = [
        "\n".join(" ".join(rng.choice(WORDS, rng.integers(5, 12))) + "." for _ in range(5))
        for _ in range(n_docs)
    ]
    path.write_text("\n\n".join(docs) + "\n")
    return path


@pytest.mark.parametrize(
    "architecture",
    ["BertForPreTraining", "AlbertForPreTraining", "RobertaForMaskedLM", "DistilBertForMaskedLM"],
)
def test_pretrain_each_family(tmp_path, capsys, architecture):
    corpus = write_corpus(tmp_path / "corpus.txt")
    code = main(
        [
            "pretrain",
            "--corpus",
            str(corpus),
            "--output",
            str(tmp_path / "run"),
            "--architecture",
            architecture,
            "--vocab-size",
            "120",
            "--layers",
            "1",
            "--hidden",
            "16",
            "--heads",
            "2",
            "--intermediate",
            "24",
            "--embedding-size",
            "8" if architecture.startswith("Albert") else "16",
            "--max-length",
            "24",
            "--batch-size",
            "8",
            "--steps",
            "6",
            "--held-out",
            "0.2",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 6
    assert 0 <= summary["mlm_accuracy"] <= 1
    model = minibert.load(tmp_path / "run" / "checkpoint-6")
    assert type(model).__name__ == architecture


def test_pretrain_resume_continues(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    base = [
        "pretrain",
        "--corpus",
        str(corpus),
        "--output",
        str(tmp_path / "run"),
        "--vocab-size",
        "120",
        "--layers",
        "1",
        "--hidden",
        "16",
        "--heads",
        "2",
        "--intermediate",
        "24",
        "--max-length",
        "24",
        "--batch-size",
        "8",
        "--save-every",
        "2",
    ]
    assert main([*base, "--steps", "4"]) == 0
    assert main([*base, "--steps", "4", "--resume"]) == 0  # already done: nothing more to run
    state = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["step"] == 4


def test_finetune_reports(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    assert (
        main(
            [
                "pretrain",
                "--corpus",
                str(corpus),
                "--output",
                str(tmp_path / "pre"),
                "--architecture",
                "BertForMaskedLM",
                "--vocab-size",
                "120",
                "--layers",
                "1",
                "--hidden",
                "16",
                "--heads",
                "2",
                "--intermediate",
                "24",
                "--max-length",
                "24",
                "--batch-size",
                "8",
                "--steps",
                "2",
            ]
        )
        == 0
    )
    rng = np.random.default_rng(0)
    with open(tmp_path / "data.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "movie"])
        for i in range(60):
            label = ["rotten", "fresh"][i % 2]
            words = list(rng.choice(WORDS, 5)) + (["cat"] if label == "fresh" else [])
            writer.writerow([" ".join(words), label, f"m{i % 12}"])
    code = main(
        [
            "finetune",
            str(tmp_path / "pre" / "checkpoint-2"),
            "--data",
            str(tmp_path / "data.csv"),
            "--group-column",
            "movie",
            "--output",
            str(tmp_path / "ft"),
            "--steps",
            "5",
            "--batch-size",
            "8",
            "--lr",
            "1e-3",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "ft" / "report.json").read_text())
    assert report["label_names"] == ["fresh", "rotten"]
    assert sum(report["sizes"].values()) == 60
    assert set(report["test"]) == {"accuracy", "f1"}


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("just one document\n")
    assert main(["pretrain", "--corpus", str(empty), "--output", str(tmp_path / "x")]) == 1
    assert "needs at least 4" in capsys.readouterr().err
    assert (
        main(["finetune", str(tmp_path), "--data", "x.csv", "--output", str(tmp_path / "y")]) == 1
    )
    assert f"{tmp_path} has no config.json" in capsys.readouterr().err  # the model comes first
    bert = Path(__file__).parent / "fixtures" / "bert-base"
    assert (
        main(
            [
                "finetune",
                str(bert),
                "--data",
                str(tmp_path / "nope.csv"),
                "--output",
                str(tmp_path / "y"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("minibert: error:")
    assert "nope.csv" in err
    assert "\n" not in err


def test_pretrain_refuses_a_used_output_before_training(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    output = tmp_path / "run"
    (output / "checkpoint-800").mkdir(parents=True)  # an older, longer run
    argv = ["pretrain", "--corpus", str(corpus), "--output", str(output), "--vocab-size", "120"]
    assert main(argv) == 2
    assert "is not empty (checkpoint-800)" in capsys.readouterr().err
    assert sorted(p.name for p in output.iterdir()) == ["checkpoint-800"]  # no tokenizer/ yet


def test_train_config_rejects_a_log_interval_below_one():
    from minibert.training.trainer import TrainConfig

    with pytest.raises(ValueError, match="log_every must be >= 1"):
        TrainConfig(log_every=0)


def test_resume_and_overwrite_together_are_a_usage_error(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt")
    argv = ["pretrain", "--corpus", str(corpus), "--output", str(tmp_path / "run")]
    assert main([*argv, "--resume", "--overwrite"]) == 2
    assert "give one" in capsys.readouterr().err
