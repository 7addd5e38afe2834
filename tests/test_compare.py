"""`minibert compare` on tiny fixture models: every row and column, int8 rows, a model agrees
with itself, parameter counts, the projection of a narrower student, and clear errors."""

import csv
import json

import numpy as np
import pytest
from test_distill_recipes import sentences, synthetic_lee, with_tokenizer

import minibert
from minibert.cli.main import main
from minibert.distill.compare import PROJECTION
from minibert.distill.recipes import build_student
from minibert.distill.report import COLUMNS
from minibert.tokenizer import copy_tokenizer_files, train_wordpiece


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A teacher (bert-base with a tokenizer), a narrower student with a saved projection, one
    without, a classifier of the teacher's tokenizer, labelled data, texts and Lee files."""
    root = tmp_path_factory.mktemp("compare")
    teacher = with_tokenizer("bert-base", root / "teacher")
    base = minibert.load(teacher)
    folders = {"teacher": teacher}
    for name, project in (("projected", True), ("plain", False)):
        student = build_student("tinybert", base, seed=1, num_hidden_layers=1, hidden_size=16)
        folder = root / name / "checkpoint-7"
        student.save_pretrained(folder)
        copy_tokenizer_files(teacher, folder)
        if project:
            rng = np.random.default_rng(2)
            from safetensors.numpy import save_file

            save_file(
                {
                    "projection.weight": rng.normal(size=(32, 16)).astype(np.float32),
                    "projection.bias": rng.normal(size=32).astype(np.float32),
                },
                str(folder / PROJECTION),
            )
        folders[name] = folder
    folders["classifier"] = with_tokenizer("bert-seqcls", root / "classifier")
    data = labelled_csv(root / "labelled.csv")
    folders["data"] = data
    texts = root / "texts.txt"
    texts.write_text("\n".join(sentences(12, seed=7)) + "\n\n")
    folders["texts"] = texts
    folders["lee"] = synthetic_lee(root / "lee", sentences(5, seed=9), np.linspace(0, 1, 10))
    return folders


def labelled_csv(data):
    """90 sentences labelled a, b or c, in 30 groups (text, label, group columns)."""
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "group"])
        for i, text in enumerate(sentences(90, seed=5)):
            writer.writerow([text, "abc"[i % 3], f"g{i % 30}"])
    return data


def common(models) -> list[str]:
    return [
        "--texts",
        str(models["texts"]),
        "--lee",
        str(models["lee"]),
        "--data",
        str(models["data"]),
        "--group-column",
        "group",
    ]


@pytest.fixture(scope="module")
def report(models, tmp_path_factory):
    """One full run through the CLI (timing included, 1 repeat): its JSON, Markdown, output."""
    out = tmp_path_factory.mktemp("out")
    argv = [
        "compare",
        str(models["teacher"]),
        str(models["projected"]),
        "--classifiers",
        f"teacher={models['classifier']}",
        f"cls={models['classifier']}",
        "--repeats",
        "1",
        "--pause",
        "0",
        "--json",
        str(out / "c.json"),
        "--markdown",
        str(out / "c.md"),
        *common(models),
    ]
    pytest.importorskip("matplotlib")
    argv += ["--chart", str(out / "c.png")]
    capture = {}
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    capture["stdout"] = stdout.getvalue()
    assert code == 0
    capture["json"] = json.loads((out / "c.json").read_text())
    capture["markdown"] = (out / "c.md").read_text()
    capture["chart"] = out / "c.png"
    return capture


def rows_of(report):
    return {(r["name"], r["precision"]): r for r in report["json"]["rows"]}


def test_every_model_has_a_float32_and_an_int8_row(report):
    rows = rows_of(report)
    names = ["teacher", "projected", "cls"]  # a student is named by its run's folder
    assert list(rows) == [(n, p) for n in names for p in ("float32", "int8")]
    assert rows[("cls", "int8")]["role"] == "classifier"


def test_the_table_has_every_column_in_every_row(report):
    lines = [line for line in report["markdown"].splitlines() if line.startswith("|")]
    assert lines[0] == "| " + " | ".join(COLUMNS) + " |"
    assert len(lines) == 2 + 6
    for line in lines[2:]:
        assert line.count(" | ") == len(COLUMNS) - 1
    printed = report["stdout"].splitlines()
    assert all(column.split()[0] in printed[0] for column in COLUMNS)
    assert report["chart"].stat().st_size > 0


def test_the_teacher_agrees_with_itself(report):
    teacher = rows_of(report)[("teacher", "float32")]
    assert teacher["top1_agreement"] == 1.0
    assert teacher["mean_cosine"] == pytest.approx(1.0, abs=1e-12)
    assert teacher["speedup"]["1x16"] == 1.0
    assert teacher["accuracy_share"] == 1.0
    assert teacher["parameters_share"] == teacher["encoder_share"] == 1.0
    # int8 rounding moves the vectors a little, not to another direction
    assert 0.9 < rows_of(report)[("teacher", "int8")]["mean_cosine"] < 1.0


def test_parameter_counts_and_sizes_on_disk(report, models):
    for (name, precision), row in rows_of(report).items():
        folder = models["classifier" if name == "cls" else name]
        model = minibert.load(folder)
        counts = row["parameters"]
        assert counts["total"] == model.num_parameters()
        assert (
            sum(counts[k] for k in ("embeddings", "encoder", "pooler", "heads"))
            == (counts["total"])
        )
        if precision == "float32":
            assert row["bytes"] == (folder / "model.safetensors").stat().st_size
        else:
            assert 0 < row["bytes"] < rows_of(report)[(name, "float32")]["bytes"]


def test_narrower_students_agreement(report):
    rows = rows_of(report)
    projected = rows[("projected", "float32")]
    assert -1 <= projected["mean_cosine"] <= 1
    assert "projection" in projected["cosine_note"]
    assert 0 <= projected["top1_agreement"] <= 1
    assert "lee" in projected
    assert "lee" not in rows[("cls", "float32")]  # a classifier is no sentence encoder


def test_timing_and_memory_figures(report):
    settings = report["json"]["settings"]
    assert settings["threads"] == 2
    for row in report["json"]["rows"]:
        assert set(row["latency_ms"]) == {"1x16", "8x128"}
        assert all(v > 0 for v in row["latency_ms"].values())
        memory = row["memory_mib"]
        assert memory["peak"] >= memory["loaded"] >= memory["imports"] >= memory["bare"] > 0
        assert memory["increase"] == pytest.approx(memory["peak"] - memory["imports"])
    # the fixtures have 20 positions: 8 x 128 ran as 8 x 20, and the table says so
    assert rows_of(report)[("teacher", "float32")]["shapes_run"]["8x128"] == "8x20"
    assert "8x128 as 8x20" in report["markdown"]


def test_the_classifier_accuracy_matches_its_predictions(report, models):
    """The accuracy column recomputed from the same split, by hand."""
    from minibert.data.text import read_labelled
    from minibert.training.recipes import classification_splits, predict

    data = read_labelled(models["data"])
    groups = [row["group"] for row in data.rows]
    tokenizer = minibert.load_tokenizer(models["classifier"])
    test = classification_splits(data.texts, data.label_ids, groups, tokenizer, 64, 0)["test"]
    model = minibert.load(models["classifier"])
    gold = np.array([int(e["labels"]) for e in test])
    expected = float(np.mean(predict(model, test, 8, tokenizer.pad_token_id) == gold))
    row = rows_of(report)[("teacher", "float32")]
    assert row["accuracy"]["accuracy"] == pytest.approx(expected)
    assert row["accuracy"]["test"] == len(test)
    assert rows_of(report)[("cls", "float32")]["accuracy"] == row["accuracy"]


def test_no_int8_no_timing_and_a_student_without_projection(models, tmp_path, capsys):
    argv = ["compare", str(models["teacher"]), str(models["plain"]), "--no-int8", "--no-timing"]
    argv += ["--no-lee", "--texts", str(models["texts"]), "--json", str(tmp_path / "c.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "int8" not in out.split("\n", 2)[2]
    assert "not timed" in out
    rows = json.loads((tmp_path / "c.json").read_text())["rows"]
    assert [(r["name"], r["precision"]) for r in rows] == [
        ("teacher", "float32"),
        ("plain", "float32"),
    ]
    assert rows[1]["mean_cosine"] is None  # narrower, no projection: n/a, and the notes say why
    assert "plain: mean cosine n/a" in out
    assert 0 <= rows[1]["top1_agreement"] <= 1


def run_error(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert err.startswith("minibert: error:"), err
    assert len(err.strip().splitlines()) == 1
    return code, err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["missing-student"], "no such model folder: missing-student"),
        (["--classifiers", "nofolder"], "expected NAME=FOLDER"),
        (["--classifiers", "x=missing"], "no such folder missing"),
        (["--names", "a", "b"], "2 name(s) for 1 model(s)"),
        (["--repeats", "0"], "--repeats"),
    ],
)
def test_bad_input_is_one_clear_line(models, capsys, extra, message):
    argv = ["compare", str(models["teacher"]), *extra, "--texts", str(models["texts"])]
    code, err = run_error(argv, capsys)
    assert code == 1
    assert message in err


def test_a_student_with_another_tokenizer(models, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.json", "model.safetensors"):
        (other / name).write_bytes((models["plain"] / name).read_bytes())
    train_wordpiece(["zebra quokka yak " * 3, "axolotl narwhal okapi"] * 20, 40, other)
    argv = ["compare", str(models["teacher"]), str(other), "--no-timing"]
    code, err = run_error(argv + ["--texts", str(models["texts"]), "--no-lee"], capsys)
    assert code == 1
    assert "another tokenizer than the teacher" in err


def test_a_teacher_that_is_a_classifier_and_a_folder_without_a_tokenizer(models, capsys):
    argv = ["compare", str(models["classifier"]), "--texts", str(models["texts"]), "--no-lee"]
    code, err = run_error(argv + ["--no-timing"], capsys)
    assert "is a classifier" in err
    from conftest import case_dir

    argv = ["compare", str(case_dir("bert-base")), "--texts", str(models["texts"]), "--no-lee"]
    code, err = run_error(argv, capsys)
    assert "has no tokenizer" in err


def test_no_texts_anywhere(models, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path / "empty"))
    code, err = run_error(["compare", str(models["teacher"]), "--no-timing"], capsys)
    assert code == 1
    assert "--texts FILE" in err


def test_unknown_option(models, capsys):
    assert main(["compare", str(models["teacher"]), "--fast"]) == 2
    assert "unrecognized arguments: --fast" in capsys.readouterr().err


def test_targets_say_which_condition_fails():
    from minibert.distill.report import targets

    def row(name, role, encoder, accuracy, speedup):
        return {
            "name": name,
            "role": role,
            "precision": "float32",
            "encoder_share": encoder,
            "parameters_share": encoder,
            "accuracy_share": accuracy,
            "speedup": {"1x16": speedup, "8x128": speedup},
        }

    results = {
        "rows": [
            row("teacher", "teacher", 1.0, 1.0, 1.0),
            row("good", "student", 0.3, 0.96, 2.5),
            row("slow", "student", 0.3, 0.99, 1.5),
        ]
    }
    good, slow = targets(results)
    assert "good float32: met" in good
    assert "slow float32: not met" in slow
    assert "1.50x faster at 8x128 (no)" in slow
