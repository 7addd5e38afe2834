"""The task heads beyond test_models' reference comparisons: how a sequence classifier picks
its loss (problem_type), the errors a head's targets raise, and transformers' other forward
arguments (position_ids, inputs_embeds and the gradient reaching them, head_mask's errors)."""

import json

import numpy as np
import pytest

import minibert
from conftest import ATOL_HF, FIXTURES, META, case_dir, load_reference, model_inputs
from minibert.errors import InputError
from minibert.models import MODEL_CLASSES


def multilabel_batch():
    ref = load_reference("bert-multilabel")
    with np.load(case_dir("bert-multilabel") / "training.npz") as z:
        return model_inputs(ref), z["labels"], float(z["loss"])


def test_multilabel_labels_may_be_integers_when_the_config_says_multi_label():
    inputs, labels, loss = multilabel_batch()
    model = minibert.load(case_dir("bert-multilabel"))
    assert model.config.hf_extra["problem_type"] == "multi_label_classification"
    out = model(**inputs, labels=labels.astype(np.int64))  # 0/1 as integers: still BCE
    np.testing.assert_allclose(out.loss, loss, rtol=1e-5)


def test_problem_type_follows_the_labels_when_the_config_names_none():
    """transformers' rule: integer labels are single-label, float labels multi-label."""
    ref = load_reference("bert-seqcls")  # 3 labels, no problem_type in config.json
    model = minibert.load(case_dir("bert-seqcls"))
    assert "problem_type" not in model.config.hf_extra
    logits = model(**model_inputs(ref)).logits  # (B, 3)
    targets = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0]], np.float32)
    out = model(**model_inputs(ref), labels=targets)
    bce = np.logaddexp(0, logits) - logits * targets  # -log sigmoid terms, per element
    np.testing.assert_allclose(out.loss, bce.mean(), rtol=1e-5)
    out = model(**model_inputs(ref), labels=np.array([0, 2, 1]))
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    np.testing.assert_allclose(out.loss, -logp[[0, 1, 2], [0, 2, 1]].mean(), rtol=1e-5)


@pytest.mark.parametrize(
    ("case", "labels", "match"),
    [
        ("bert-multilabel", np.zeros((3, 3), np.float32), r"shape \(3, 3\), expected \(3, 4\)"),
        ("bert-multilabel", np.full((3, 4), np.nan, np.float32), "NaN"),
        ("bert-multilabel", np.array([["a"] * 4] * 3), "numbers"),
        ("albert-regression", np.zeros((3, 2)), r"expected \(3,\) or \(3, 1\)"),
        ("roberta-regression", np.zeros(2), r"expected \(2, 2\)"),
        ("bert-seqcls", np.array([0, 1, 3]), r"outside \[0, 3\)"),
    ],
)
def test_bad_labels_are_named(case, labels, match):
    model = minibert.load(case_dir(case))
    with pytest.raises(InputError, match=match):
        model(**model_inputs(load_reference(case)), labels=labels)


# --- transformers' other forward arguments: position_ids, inputs_embeds ----------------------
ARGUMENT_CASES = sorted(n for n in META["cases"] if (FIXTURES / n / "arguments.npz").is_file())
TARGET_KEYS = ("labels", "next_sentence_label", "start_positions", "end_positions")


def load_arguments(case):
    with np.load(case_dir(case) / "arguments.npz") as z:
        return {k: z[k] for k in z.files}


def test_every_family_has_an_arguments_fixture():
    assert {META["cases"][c]["model_type"] for c in ARGUMENT_CASES} == {
        "bert",
        "albert",
        "distilbert",
        "roberta",
    }


@pytest.mark.parametrize("case", ARGUMENT_CASES)
def test_position_ids_and_inputs_embeds_match_transformers(case):
    ref, args = load_reference(case), load_arguments(case)
    model = minibert.load(case_dir(case))
    inputs = model_inputs(ref)
    runs = {
        "positions": model(**inputs, position_ids=args["position_ids"]),
        "embeds": model(
            **{**inputs, "input_ids": None},
            inputs_embeds=args["inputs_embeds"],
        ),
    }
    compared = 0
    for key, expected in args.items():
        prefix, _, name = key.partition(".")
        if prefix in runs:
            got = getattr(runs[prefix], name)
            np.testing.assert_allclose(got, expected, atol=ATOL_HF, rtol=0, err_msg=key)
            compared += 1
    assert compared >= 2


def training_batch(case):
    ref = load_reference(case)
    with np.load(case_dir(case) / "training.npz") as z:
        train = {k: z[k] for k in z.files}
    return model_inputs(ref), {k: train[k] for k in TARGET_KEYS if k in train}, train


def looked_up(model, ids):
    """The word vectors the model would look up, and the positions it would count, as the
    generator passes them to transformers with inputs_embeds."""
    embeds = model.embeddings.word.params["weight"][ids]
    if model.config.model_type != "roberta":
        return embeds, None
    pad = model.config.pad_token_id
    real = ids != pad
    return embeds, np.cumsum(real, axis=-1) * real + pad


@pytest.mark.parametrize(
    "case", ["bert-multiple-choice", "albert-qa", "distilbert-tokcls", "roberta-regression"]
)
def test_backward_reaches_given_inputs_embeds(case):
    """Given the looked-up vectors as inputs_embeds, the loss and the gradient at them are
    torch's (training.npz's inputs_embeds_grad), and the word table gets no gradient."""
    inputs, targets, train = training_batch(case)
    model = minibert.load(case_dir(case)).train(dropout=False)
    embeds, positions = looked_up(model, inputs["input_ids"])
    given = {**inputs, "input_ids": None}
    out = model(**given, **targets, inputs_embeds=embeds, position_ids=positions)
    np.testing.assert_allclose(out.loss, train["loss"], rtol=1e-5)
    model.zero_grad()
    model.backward()
    np.testing.assert_allclose(
        model.input_gradient(), train["inputs_embeds_grad"], rtol=1e-4, atol=1e-5
    )
    assert not model.embeddings.word.grads["weight"].any()


@pytest.mark.parametrize("case", ["bert-nsp", "albert-multiple-choice", "roberta-qa"])
def test_input_gradient_by_finite_differences(case):
    inputs, targets, _ = training_batch(case)
    model = minibert.load(case_dir(case), dtype="float64").train(dropout=False)
    embeds, positions = looked_up(model, inputs["input_ids"])
    embeds = embeds.copy()
    given = {**inputs, "input_ids": None, "position_ids": positions, **targets}
    model(**given, inputs_embeds=embeds)
    model.backward()
    direction = np.random.default_rng(0).normal(size=embeds.shape)
    analytic = float((model.input_gradient() * direction).sum())
    eps = 1e-5

    def loss_at(step):
        return float(model(**given, inputs_embeds=embeds + step * direction).loss)

    numeric = (8 * (loss_at(eps) - loss_at(-eps)) - (loss_at(2 * eps) - loss_at(-2 * eps))) / (
        12 * eps
    )
    assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"input_ids": None}, "exactly one of input_ids and inputs_embeds"),
        ({"inputs_embeds": np.zeros((3, 7, 32), np.float32)}, "exactly one"),
        ({"position_ids": np.full((3, 7), 20)}, r"position_ids must lie in \[0, 20\)"),
        ({"position_ids": np.zeros((2, 7), np.int64)}, "position_ids has shape"),
        ({"head_mask": np.ones(3)}, r"head_mask must have shape \(4,\) or \(1, 4\)"),
        ({"head_mask": np.array([1.0, np.nan, 1, 1])}, "NaN"),
    ],
)
def test_bad_forward_arguments_are_named(arguments, match):
    model = minibert.load(case_dir("bert-nsp"))
    inputs = {**model_inputs(load_reference("bert-nsp")), **arguments}
    with pytest.raises(InputError, match=match):
        model(**inputs)


def test_bad_inputs_embeds_and_choices_are_named():
    model = minibert.load(case_dir("albert-multiple-choice"))  # E = 8
    with pytest.raises(InputError, match=r"inputs_embeds must have shape \(batch, tokens, 8\)"):
        minibert.load(case_dir("albert-qa"))(inputs_embeds=np.zeros((2, 5, 32), np.float32))
    ids = load_reference("albert-multiple-choice")["input_ids"]  # (2, 2, 6)
    with pytest.raises(InputError, match="num_choices"):
        model(input_ids=ids[0])
    with pytest.raises(InputError, match="attention_mask has shape"):
        model(input_ids=ids, attention_mask=np.ones((2, 6), np.int64))
    with pytest.raises(InputError, match=r"outside \[0, 2\)"):
        model(input_ids=ids, labels=np.array([0, 2]))


def test_input_gradient_before_backward_is_an_error():
    with pytest.raises(RuntimeError, match="backward"):
        minibert.load(case_dir("bert-nsp")).input_gradient()


# --- head_mask, against transformers 4 (5 removed the argument) -------------------------------
HEAD_MASK = FIXTURES / "head-mask"
HEAD_MASK_CASES = sorted(json.loads((HEAD_MASK / "meta.json").read_text())["cases"])
NOT_OUTPUTS = ("head_mask", "dlast_hidden_state", "loss")


def our_output(out, key):
    for stacked in ("hidden_states", "attentions"):
        if key.startswith(stacked + "_"):
            return getattr(out, stacked)[int(key.rsplit("_", 1)[1])]
    return getattr(out, key)


@pytest.mark.parametrize("case", HEAD_MASK_CASES)
def test_head_mask_matches_transformers_4(case):
    with np.load(HEAD_MASK / f"{case}.npz") as z:
        expected = {k: z[k] for k in z.files}
    targets = {}
    if (case_dir(case) / "training.npz").is_file():
        targets = training_batch(case)[1]
    inputs = {**model_inputs(load_reference(case)), "head_mask": expected["head_mask"]}
    model = minibert.load(case_dir(case))
    fused = model(**inputs)  # inference: the fused attention kernel scales each head's context
    model.train(dropout=False)
    out = model(**inputs, **targets, output_hidden_states=True, output_attentions=True)
    outputs = [k for k in expected if k not in NOT_OUTPUTS and not k.startswith("grad.")]
    assert any(k.startswith("attentions_") for k in outputs)
    inner = model.config.inner_group_num if model.config.model_type == "albert" else 1
    for key in outputs:
        ours = key
        if key.startswith("hidden_states_"):  # transformers 4's ALBERT: one per group call
            ours = f"hidden_states_{int(key.rsplit('_', 1)[1]) * inner}"
        np.testing.assert_allclose(
            our_output(out, ours), expected[key], atol=ATOL_HF, rtol=0, err_msg=key
        )
    last = next(k for k in ("logits", "start_logits", "last_hidden_state") if k in expected)
    np.testing.assert_allclose(getattr(fused, last), expected[last], atol=ATOL_HF, rtol=0)
    if targets:
        np.testing.assert_allclose(out.loss, expected["loss"], rtol=1e-5)
        model.backward()
    else:
        model.backward(grads={"last_hidden_state": expected["dlast_hidden_state"]})
    grads = model.gradients()
    stored = {k.removeprefix("grad."): v for k, v in expected.items() if k.startswith("grad.")}
    for name, grad in grads.items():
        want = stored.get(name, np.zeros_like(grad))  # not stored: torch computed none (0)
        np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-5, err_msg=name)
    assert set(stored) <= set(grads)
    silenced = expected["head_mask"].reshape(-1, model.config.num_attention_heads)[:, 1]
    assert (silenced == 0).all()
    assert not out.attentions[0][:, 1].any()  # head 1 gives nothing


def test_albert_reads_head_mask_rows_by_group():
    """transformers' ALBERT indexes head_mask by group: with 4 layers in 2 groups, steps 0 and
    1 read row 0, steps 2 and 3 row 2 (albert-base's fixture holds transformers' outputs)."""
    model = minibert.load(case_dir("albert-base"))
    rows = model.head_mask_steps(np.arange(4)[:, None] * np.ones((4, 4)))
    assert rows[:, 0].tolist() == [0, 0, 2, 2]


def test_every_class_has_a_transformers_fixture():
    """Each class minibert builds has a reference case, and each head class a gradient one."""
    by_class = {}
    for name, case in META["cases"].items():
        if (FIXTURES / name / "config.json").is_file():
            by_class.setdefault(case["class"], []).append(name)
    assert set(MODEL_CLASSES) <= set(by_class)
    for cls, cases in by_class.items():
        if not cls.endswith("Model"):
            assert any((FIXTURES / c / "training.npz").is_file() for c in cases), cls
