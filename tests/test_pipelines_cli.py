"""`minibert fill-mask`, `classify`, `ner` and `qa`, driven in-process through main(argv).

--json must print what the pipeline returns, so it is compared with the transformers outputs
stored for the same cases (tests/fixtures/pipelines); the tables are checked for their rows.
"""

import json
import re

import pytest
from test_pipelines import CASES, QA_CASES, assert_same

from conftest import FIXTURES
from minibert.cli.main import main

PIPELINES = FIXTURES / "pipelines"


def run(capsys, *argv):
    """(exit code, stdout, stderr) of `minibert argv...`."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def case(task, **call_options):
    return next(c for c in CASES[task] if c["call_options"] == call_options)


def test_fill_mask_json(capsys):
    expected = case("fill-mask", top_k=3)  # two texts
    texts = expected["inputs"]
    code, out, err = run(
        capsys, "fill-mask", PIPELINES / "bert-mlm", *texts, "--top-k", 3, "--json"
    )
    assert (code, err) == (0, "")
    assert_same(json.loads(out), expected["output"])


def test_fill_mask_table(capsys):
    expected = CASES["fill-mask"][0]
    code, out, _ = run(capsys, "fill-mask", PIPELINES / "bert-mlm", expected["inputs"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == expected["inputs"]
    assert lines[1].split() == ["score", "token", "sequence"]
    for line, proposition in zip(lines[2:], expected["output"], strict=True):
        assert line.split()[1] == proposition["token_str"]
        assert line.endswith(proposition["sequence"])


def test_classify_json_and_table(capsys):
    expected = case("text-classification", top_k=None)
    folder = PIPELINES / expected["folder"]
    code, out, _ = run(capsys, "classify", folder, expected["inputs"], "--all", "--json")
    assert code == 0
    assert_same(json.loads(out), expected["output"])
    code, out, _ = run(capsys, "classify", folder, expected["inputs"], "--all")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [row[-2] for row in rows] == [entry["label"] for entry in expected["output"]]


def test_classify_pair(capsys):
    expected = next(c for c in CASES["text-classification"] if isinstance(c["inputs"], dict))
    pair = expected["inputs"]
    code, out, _ = run(
        capsys,
        "classify",
        PIPELINES / expected["folder"],
        pair["text"],
        "--pair",
        pair["text_pair"],
        "--all",
        "--json",
    )
    assert code == 0
    assert_same(json.loads(out), expected["output"])


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_ner_json(capsys, strategy):
    expected = case("token-classification", aggregation_strategy=strategy)
    argv = ["ner", PIPELINES / "bert-ner", *expected["inputs"], "--aggregation", strategy]
    code, out, _ = run(capsys, *argv, "--json")
    assert code == 0
    assert_same(json.loads(out), expected["output"])


def test_ner_stride(capsys):
    expected = next(c for c in CASES["token-classification"] if "stride" in c["call_options"])
    options = expected["call_options"]
    argv = ["ner", PIPELINES / expected["folder"], expected["inputs"], "--json"]
    argv += ["--aggregation", options["aggregation_strategy"], "--stride", options["stride"]]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert_same(json.loads(out), expected["output"])


def test_ner_table_and_ignore_labels(capsys):
    expected = case("token-classification", ignore_labels=[])
    text = expected["inputs"]
    code, out, _ = run(capsys, "ner", PIPELINES / "bert-ner", text, "--ignore-labels", "")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == text
    chars = [line.split()[2] for line in lines[2:]]
    assert chars == [f"{e['start']}-{e['end']}" for e in expected["output"]]


def test_qa_json(capsys):
    expected = next(c for c in QA_CASES if c["call_options"].get("max_seq_len") == 24)
    options = expected["call_options"]
    code, out, _ = run(
        capsys,
        "qa",
        PIPELINES / "bert-qa",
        "--question",
        expected["inputs"]["question"],
        "--context",
        expected["inputs"]["context"],
        "--max-seq-len",
        options["max_seq_len"],
        "--doc-stride",
        options["doc_stride"],
        "--top-k",
        options["top_k"],
        "--json",
    )
    assert code == 0
    assert_same(json.loads(out), expected["output"])


def test_qa_context_file_and_no_answer(capsys, tmp_path):
    expected = next(c for c in QA_CASES if c["call_options"].get("handle_impossible_answer"))
    context = tmp_path / "context.txt"
    context.write_text(expected["inputs"]["context"], encoding="utf-8")
    code, out, _ = run(
        capsys,
        "qa",
        PIPELINES / expected["folder"],
        "-q",
        expected["inputs"]["question"],
        "--context-file",
        context,
        "--top-k",
        expected["call_options"]["top_k"],
        "--handle-impossible-answer",
    )
    assert code == 0
    rows = out.splitlines()[1:]
    answers = [a["answer"] or "(no answer)" for a in expected["output"]]
    assert [row.split(maxsplit=2)[2] for row in rows] == answers


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fill-mask", "bert-mlm", "paris"], r"no mask token \(\[MASK\]\) found"),
        (["classify", "bert-mlm", "paris"], "which has no head for text-classification"),
        (["qa", "bert-qa", "-q", " ", "-c", "ada."], "the question is empty"),
        (["ner", "no-such-folder", "paris"], "no-such-folder"),
        (["qa", "bert-qa", "-q", "who?", "--context-file", "missing.txt"], "missing.txt"),
    ],
)
def test_errors_are_one_line(capsys, argv, message):
    argv = [
        str(PIPELINES / a) if a in ("bert-mlm", "bert-qa", "no-such-folder") else a for a in argv
    ]
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("minibert: error: ")
    assert re.search(message, err), err
