"""minibert.pipeline against transformers' pipelines on the same tiny models.

tests/fixtures/generate_pipelines.py made the model folders (BERT and DistilBERT with a WordPiece
vocabulary, RoBERTa with a byte-level BPE: masked-LMs, a base model, sequence classifiers, token
classifiers and span heads) and ran each case
through transformers' pipeline (question answering through transformers 4, which still has
it). Every case here runs the same inputs and options through minibert: same structure, same
labels, tokens, words and character spans exactly, scores and vectors within ATOL_HF.
"""

import json
import math
import re

import numpy as np
import pytest

import minibert
from conftest import ATOL_HF, FIXTURES, needs_minilm
from minibert.errors import ConfigError, InputError, MinibertError

PIPELINES = FIXTURES / "pipelines"
CASES = json.loads((PIPELINES / "cases.json").read_text())
QA_CASES = json.loads((PIPELINES / "question-answering.json").read_text())
_loaded = {}


def pipe_for(task, folder, init_options):
    """One pipeline per (task, folder, options): loading is the slow part."""
    key = (task, folder, json.dumps(init_options, sort_keys=True))
    if key not in _loaded:
        _loaded[key] = minibert.pipeline(task, PIPELINES / folder, **init_options)
    return _loaded[key]


def assert_same(got, expected, where="output"):
    """Same nesting, keys, ints and strings; floats within ATOL_HF."""
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{where}: {type(got).__name__} instead of a dict"
        assert sorted(got) == sorted(expected), f"{where}: keys {sorted(got)}"
        for key in expected:
            assert_same(got[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        got = got.tolist() if isinstance(got, np.ndarray) else got
        assert isinstance(got, list), f"{where}: {type(got).__name__} instead of a list"
        assert len(got) == len(expected), f"{where}: {len(got)} items, expected {len(expected)}"
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(got, float), f"{where}: {type(got).__name__} instead of a float"
        assert math.isclose(got, expected, rel_tol=0, abs_tol=ATOL_HF), (
            f"{where}: {got} vs {expected}"
        )
    else:
        assert type(got) is type(expected), f"{where}: {got!r} vs {expected!r}"
        assert got == expected, f"{where}: {got!r} vs {expected!r}"


def case_id(case):
    return f"{case['folder']}-{json.dumps(case['init_options'])}-{json.dumps(case['call_options'])}"


def run_case(task, case):
    pipe = pipe_for(task, case["folder"], case["init_options"])
    return pipe(case["inputs"], **case["call_options"])


@pytest.mark.parametrize("case", CASES["fill-mask"], ids=case_id)
def test_fill_mask(case):
    if "zebra" in case["call_options"].get("targets", []):  # not a token: its first piece is used
        with pytest.warns(UserWarning, match="'zebra' is not in the vocabulary; using 'z'"):
            got = run_case("fill-mask", case)
    else:
        got = run_case("fill-mask", case)
    assert_same(got, case["output"])


@pytest.mark.parametrize("case", CASES["text-classification"], ids=case_id)
def test_text_classification(case):
    assert_same(run_case("text-classification", case), case["output"])


@pytest.mark.parametrize("case", CASES["token-classification"], ids=case_id)
def test_token_classification(case):
    assert_same(run_case("token-classification", case), case["output"])


@pytest.mark.parametrize("case", QA_CASES, ids=case_id)
def test_question_answering(case):
    assert_same(run_case("question-answering", case), case["output"])


@pytest.mark.parametrize("case", CASES["feature-extraction"], ids=case_id)
def test_feature_extraction(case):
    got = run_case("feature-extraction", case)
    if case["call_options"].get("return_tensors"):
        assert isinstance(got, np.ndarray)
        assert got.dtype == np.float32
    assert_same(got, case["output"])


@pytest.mark.parametrize(
    "case", CASES["sentence-similarity"], ids=lambda c: c["inputs"]["source_sentence"]
)
def test_sentence_similarity(case):
    pipe = pipe_for("sentence-similarity", case["folder"], {})
    assert_same(pipe(case["inputs"]), case["output"])
    inputs = case["inputs"]  # the source sentence with the sentences beside it: the same scores
    assert_same(pipe(inputs["source_sentence"], inputs["sentences"]), case["output"])


LIST_CASES = [
    (task, case)
    for task in ("fill-mask", "text-classification", "token-classification", "feature-extraction")
    for case in CASES[task]
    if isinstance(case["inputs"], list) and len(case["inputs"]) > 1
] + [("question-answering", case) for case in QA_CASES if case["call_options"].get("max_seq_len")]


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize(("task", "case"), LIST_CASES, ids=[case_id(c) for _, c in LIST_CASES])
def test_batch_size_changes_nothing(task, case, batch_size):
    """Texts (or a long context's windows) run one at a time or padded together: same output."""
    got = run_case(
        task, {**case, "call_options": {**case["call_options"], "batch_size": batch_size}}
    )
    assert_same(got, case["output"])


def test_batch_size_must_be_positive():
    with pytest.raises(InputError, match="batch_size must be an integer >= 1, got 0"):
        pipe_for("fill-mask", "bert-mlm", {})("a [MASK].", batch_size=0)


def test_fixtures_cover_every_option():
    """The cases exercise each option the issue names, so a missing one cannot pass unseen."""
    used = {
        task: {key for case in cases for key in {**case["init_options"], **case["call_options"]}}
        for task, cases in {**CASES, "question-answering": QA_CASES}.items()
        if task != "sentence-similarity"
    }
    assert {"top_k", "targets"} <= used["fill-mask"]
    assert {"top_k", "function_to_apply"} <= used["text-classification"]
    assert {"aggregation_strategy", "ignore_labels"} <= used["token-classification"]
    strategies = {
        c["call_options"].get("aggregation_strategy") for c in CASES["token-classification"]
    }
    assert {"none", "simple", "first", "average", "max"} <= strategies
    assert {
        "top_k",
        "max_answer_len",
        "handle_impossible_answer",
        "doc_stride",
        "max_seq_len",
        "align_to_words",
    } <= used["question-answering"]
    families = {case["folder"].split("-")[0] for cases in CASES.values() for case in cases}
    assert {"bert", "distilbert", "roberta"} <= families
    assert {case["folder"] for case in QA_CASES} == {"bert-qa", "roberta-qa"}
    # a long text really was read in windows: entities reach its end (the models take 64 tokens)
    assert "stride" in used["token-classification"]
    for case in CASES["token-classification"]:
        if "stride" in {**case["init_options"], **case["call_options"]}:
            single = isinstance(case["inputs"], str)
            text, entities = (
                (case["inputs"], case["output"])
                if single
                else (
                    case["inputs"][0],
                    case["output"][0],
                )
            )
            assert max(entity["end"] for entity in entities) > 0.9 * len(text)
    # a long context really was split: a case with a short max_seq_len answers from later windows
    long_case = next(c for c in QA_CASES if c["call_options"].get("max_seq_len") == 24)
    assert max(answer["start"] for answer in long_case["output"]) > 100  # past the 1st window


def test_question_answering_keyword_forms():
    """question= and context= give what the dict gives; lists give a list."""
    case = QA_CASES[0]
    pipe = pipe_for("question-answering", case["folder"], {})
    q, c = case["inputs"]["question"], case["inputs"]["context"]
    assert_same(pipe(question=q, context=c), case["output"])
    assert_same(pipe(q, c), case["output"])
    assert_same(pipe(question=[q, q], context=c), [case["output"]] * 2)


def test_aliases_and_pipeline_export():
    assert minibert.pipeline is minibert.pipelines.pipeline
    case = CASES["token-classification"][0]
    pipe = minibert.pipeline("ner", PIPELINES / case["folder"])
    assert_same(pipe(case["inputs"]), case["output"])


def test_model_keyword_as_transformers_takes_it():
    case = CASES["fill-mask"][0]
    pipe = minibert.pipeline("fill-mask", model=str(PIPELINES / case["folder"]))
    assert_same(pipe(case["inputs"]), case["output"])
    with pytest.raises(MinibertError, match="needs a model folder"):
        minibert.pipeline("fill-mask")
    with pytest.raises(MinibertError, match="give the model folder once"):
        minibert.pipeline("fill-mask", PIPELINES / "bert-mlm", model=PIPELINES / "bert-mlm")


# --- bad input: a clear error naming what was wrong -----------------------------------------------
def test_unknown_task():
    with pytest.raises(MinibertError, match="unknown task 'summarization'"):
        minibert.pipeline("summarization", PIPELINES / "bert-mlm")


def test_fill_mask_without_mask():
    pipe = pipe_for("fill-mask", "bert-mlm", {})
    with pytest.raises(InputError, match=r"no mask token \(\[MASK\]\) found in the text 'paris'"):
        pipe("paris")


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question(question):
    pipe = pipe_for("question-answering", "bert-qa", {})
    with pytest.raises(InputError, match="the question is empty"):
        pipe(question=question, context="ada lives in london.")


def test_heads_loaded_for_a_task():
    """A *ForPreTraining checkpoint gives fill-mask its masked-LM head, and feature extraction
    takes the body of a head checkpoint: both checked against the stored transformers outputs."""
    from minibert.pipelines.base import load_for_task

    folder = FIXTURES / "bert-pretraining"
    ref = np.load(folder / "reference.npz")
    inputs = {name: ref[name] for name in ("input_ids", "attention_mask", "token_type_ids")}
    model = load_for_task(folder, "fill-mask", "ForMaskedLM")
    assert type(model).__name__ == "BertForMaskedLM"
    np.testing.assert_allclose(model(**inputs).logits, ref["prediction_logits"], atol=ATOL_HF)
    body = load_for_task(folder, "feature-extraction", "")
    assert type(body).__name__ == "BertModel"
    last = ref[f"hidden_states_{len([k for k in ref if k.startswith('hidden_states_')]) - 1}"]
    np.testing.assert_allclose(body(**inputs).last_hidden_state, last, atol=ATOL_HF)


def test_model_without_the_head():
    with pytest.raises(ConfigError, match="holds a BertModel, which has no head for fill-mask"):
        minibert.pipeline("fill-mask", PIPELINES / "bert-encoder")


@pytest.mark.parametrize(
    ("task", "folder", "inputs", "options", "message"),
    [
        ("fill-mask", "bert-mlm", "a [MASK].", {"top_n": 3}, "fill-mask takes no option 'top_n'"),
        ("fill-mask", "bert-mlm", "a [MASK].", {"top_k": 0}, "top_k must be an integer >= 1"),
        ("fill-mask", "bert-mlm", 3, {}, "inputs must be a str or a list of str, got int"),
        ("fill-mask", "bert-mlm", [], {}, "inputs is an empty list"),
        ("fill-mask", "bert-mlm", "a [MASK].", {"targets": []}, "targets must be a str or"),
        (
            "text-classification",
            "bert-sentiment",
            "paris.",
            {"function_to_apply": "tanh"},
            "function_to_apply must be one of",
        ),
        (
            "text-classification",
            "bert-sentiment",
            {"text": "a", "pair": "b"},
            {},
            "a text pair is a dict with keys 'text' and 'text_pair'",
        ),
        (
            "token-classification",
            "bert-ner",
            "paris.",
            {"aggregation_strategy": "longest"},
            "aggregation_strategy must be one of",
        ),
        (
            "token-classification",
            "bert-ner",
            "paris.",
            {"ignore_labels": "O"},
            "ignore_labels must",
        ),
        ("token-classification", "bert-ner", "a.", {"stride": 4}, "not 'none'"),
        (
            "token-classification",
            "bert-ner",
            "a.",
            {"stride": 64, "aggregation_strategy": "simple"},
            "stride",
        ),
        (
            "question-answering",
            "bert-qa",
            {"question": "who?"},
            {},
            "each example must be a dict with 'question' and 'context'",
        ),
        (
            "question-answering",
            "bert-qa",
            {"question": "who?", "context": "ada."},
            {"doc_stride": 40, "max_seq_len": 32},
            r"doc_stride \(40\) is larger than max_seq_len \(32\)",
        ),
        (
            "question-answering",
            "bert-qa",
            {"question": "who?", "context": "ada."},
            {"handle_impossible_answer": "yes"},
            "handle_impossible_answer must be True or False, got 'yes'",
        ),
        (
            "question-answering",
            "bert-qa",
            {"question": "who " * 40, "context": "ada lives in london."},
            {"max_seq_len": 24, "doc_stride": 4},
            "cannot encode the text",
        ),
    ],
)
def test_bad_input(task, folder, inputs, options, message):
    pipe = pipe_for(task, folder, {})
    with pytest.raises(InputError, match=message):
        pipe(inputs, **options)


def test_sentence_similarity_needs_sentences():
    pipe = pipe_for("sentence-similarity", "bert-encoder", {})
    with pytest.raises(InputError, match="needs `sentences`"):
        pipe("paris.")
    with pytest.raises(InputError, match="'source_sentence'"):
        pipe({"source": "paris.", "sentences": ["a"]})
    with pytest.raises(InputError, match=r"takes no option \['top_k'\]; only batch_size"):
        pipe("paris.", ["a"], top_k=1)


# --- the task pages' examples run -----------------------------------------------------------------
DOCS = FIXTURES.parents[1] / "docs"
TASK_PAGES = sorted(DOCS.glob("tasks-*.md"))


@pytest.mark.parametrize("page", TASK_PAGES, ids=[page.stem for page in TASK_PAGES])
def test_task_page_examples_run(page, monkeypatch):
    """The "Try it on the test models" code of each task page runs from the repository root."""
    section = page.read_text(encoding="utf-8").split("## Try it on the test models")[1]
    blocks = re.findall(r"```python\n(.*?)```", section.split("\n## ")[0], re.DOTALL)
    assert blocks, f"{page.name} has no example on the test models"
    monkeypatch.chdir(DOCS.parent)
    for block in blocks:
        exec(compile(block, str(page), "exec"), {})


@needs_minilm
def test_sentence_similarity_on_minilm():
    """On the real all-MiniLM-L6-v2: the cosines of sentence-transformers' stored embeddings."""
    from minibert.pretrained import minilm_path

    sentences = json.loads((FIXTURES / "minilm" / "sentences.json").read_text())
    vectors = np.load(FIXTURES / "minilm" / "reference.npz")["sentence_embeddings"]  # (20, 384)
    expected = (vectors[1:] @ vectors[0]).tolist()  # unit vectors: dot products are cosines
    pipe = minibert.pipeline("sentence-similarity", minilm_path())
    got = pipe({"source_sentence": sentences[0], "sentences": sentences[1:]})
    assert_same(got, expected)
    assert got[0] == max(got)  # the paraphrase of the first sentence comes first
