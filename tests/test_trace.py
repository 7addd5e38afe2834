"""minibert.trace: every documented name and shape on all four families, values that agree
with the model's own outputs and with transformers', and gradients against finite differences."""

import re
from pathlib import Path

import numpy as np
import pytest

import minibert
from conftest import ATOL_HF, RTOL_GRAD, case_dir, load_reference, model_inputs
from minibert.errors import InputError

DOC = Path(__file__).parent.parent / "docs" / "trace.md"
FAMILIES = {
    "bert-base": "BERT",
    "albert-base": "ALBERT",
    "distilbert-base": "DistilBERT",
    "roberta-base": "RoBERTa",
}
ROW = re.compile(r"^\| `([^`]+)` \| \(([^)]*)\) \| [^|]+ \| ([^|]+) \|$")


def documented_rows():
    """(name pattern, shape letters, families) for each row of docs/trace.md's table that
    names a shape in letters and applies to a base model of the family given."""
    rows = [ROW.match(line.strip()) for line in DOC.read_text().splitlines()]
    return [(m[1], [s.strip() for s in m[2].split(",")], m[3].strip()) for m in rows if m]


def expected_shapes(model, ref, family):
    """{name: shape} the documented table promises for a base model (embeddings, encoder,
    pooler) of this family on this input."""
    c = model.config
    B, T = ref["input_ids"].shape
    dims = {
        "B": B,
        "T": T,
        "C": c.hidden_size,
        "H": c.num_attention_heads,
        "D": c.hidden_size // c.num_attention_heads,
        "F": c.intermediate_size,
        "E": c.embedding_size or c.hidden_size,
    }
    shapes = {}
    for pattern, letters, families in documented_rows():
        applies = families == "all" or FAMILIES[family] in families.split(", ")
        if pattern.startswith("pooler."):
            applies = hasattr(model, "pooler")
        if not applies:
            continue
        shape = tuple(dims[letter] for letter in letters)
        steps = range(len(model.encoder.schedule)) if "{i}" in pattern else [None]
        for step in steps:
            shapes[pattern.replace("{i}", str(step))] = shape
    return shapes


@pytest.fixture(scope="module", params=list(FAMILIES))
def traced(request):
    name = request.param
    model = minibert.load(case_dir(name))
    ref = load_reference(name)
    t = minibert.trace(
        model, **model_inputs(ref), output_hidden_states=True, output_attentions=True
    )
    return name, model, ref, t


def test_the_documented_table_is_read():
    rows = documented_rows()
    assert len(rows) >= 28
    assert any(p == "encoder.step.{i}.attention.masked_scores" for p, _, _ in rows)


def test_every_documented_name_appears_with_its_shape(traced):
    family, model, ref, t = traced
    expected = expected_shapes(model, ref, family)
    assert len(expected) > 20
    missing = sorted(set(expected) - set(t))
    assert not missing, missing
    for name, shape in expected.items():
        assert t[name].shape == shape, name
    undocumented = [n for n in t if n not in expected and not n.startswith("output.")]
    assert not undocumented, undocumented


def test_names_come_in_forward_order(traced):
    family, model, ref, t = traced
    assert isinstance(t, dict)  # DESIGN.md's contract: {name: array}
    names = list(t)
    assert names[0] == "embeddings.word"
    first_step = [n for n in names if n.startswith("encoder.step.0.")]
    assert first_step[0].endswith("attention.q")
    assert first_step[-1].endswith("ln2")
    steps = [int(n.split(".")[2]) for n in names if n.startswith("encoder.step.")]
    assert steps == sorted(steps)


def test_values_agree_with_the_models_own_outputs_exactly(traced):
    family, model, ref, t = traced
    out = t.output
    first = "embeddings.projection" if family == "albert-base" else "embeddings.layernorm"
    assert np.array_equal(out.hidden_states[0], t[first])
    for step in range(len(t.steps)):
        assert np.array_equal(out.hidden_states[step + 1], t[f"encoder.step.{step}.ln2"])
        assert np.array_equal(out.attentions[step], t[f"encoder.step.{step}.attention.probs"])
    assert np.array_equal(out.last_hidden_state, t["output.last_hidden_state"])
    if hasattr(model, "pooler"):
        assert np.array_equal(out.pooler_output, t["pooler.output"])


def test_intermediates_agree_with_each_other(traced):
    family, model, ref, t = traced
    total = t["embeddings.word"] + t["embeddings.position"]
    if "embeddings.token_type" in t:
        total = t["embeddings.word"] + t["embeddings.token_type"] + t["embeddings.position"]
    np.testing.assert_allclose(t["embeddings.sum"], total, atol=1e-6)
    x = t.output.hidden_states[0]
    for step in range(len(t.steps)):
        s = f"encoder.step.{step}."
        masked = t[s + "attention.masked_scores"]
        softmax = np.exp(masked - masked.max(-1, keepdims=True))
        softmax /= softmax.sum(-1, keepdims=True)
        np.testing.assert_allclose(t[s + "attention.probs"], softmax, atol=1e-6)
        ctx = t[s + "attention.probs"] @ t[s + "attention.v"]  # (B, H, T, D)
        merged = ctx.transpose(0, 2, 1, 3).reshape(t[s + "attention.context"].shape)
        np.testing.assert_allclose(t[s + "attention.context"], merged, atol=1e-6)
        assert np.array_equal(t[s + "residual1"], x + t[s + "attention.output"])
        assert np.array_equal(t[s + "residual2"], t[s + "ln1"] + t[s + "ffn.output"])
        for normed, summed in (("ln1", "residual1"), ("ln2", "residual2")):
            mean = t[s + summed].mean(-1, keepdims=True)
            var = t[s + summed].var(-1, keepdims=True)
            ln = getattr(model.encoder.layers[t.steps[step]], normed).params
            expected = (t[s + summed] - mean) / np.sqrt(var + model.config.layer_norm_eps)
            expected = expected * ln["weight"] + ln["bias"]
            np.testing.assert_allclose(t[s + normed], expected, atol=1e-5)
        x = t[s + "ln2"]


def test_intermediates_agree_with_transformers(traced):
    family, model, ref, t = traced
    first = "embeddings.projection" if family == "albert-base" else "embeddings.layernorm"
    np.testing.assert_allclose(t[first], ref["hidden_states_0"], atol=ATOL_HF)
    for step in range(len(t.steps)):
        np.testing.assert_allclose(
            t[f"encoder.step.{step}.ln2"], ref[f"hidden_states_{step + 1}"], atol=ATOL_HF
        )
        np.testing.assert_allclose(
            t[f"encoder.step.{step}.attention.probs"], ref[f"attentions_{step}"], atol=ATOL_HF
        )
    if "pooler_output" in ref:
        np.testing.assert_allclose(t["pooler.output"], ref["pooler_output"], atol=ATOL_HF)


def test_a_traced_forward_leaves_the_outputs_alone(traced):
    family, model, ref, t = traced
    for attentions in (True, False):  # with and without the fused attention kernel
        plain = model(**model_inputs(ref), output_hidden_states=True, output_attentions=attentions)
        with minibert.Trace() as again:
            traced_out = model(
                **model_inputs(ref), output_hidden_states=True, output_attentions=attentions
            )
        for a, b in zip(plain.hidden_states, traced_out.hidden_states, strict=True):
            assert np.array_equal(a, b)
        assert np.array_equal(plain.last_hidden_state, t.output.last_hidden_state)
    model.train(dropout=False)
    try:  # training mode runs the same path traced or not: bit for bit
        plain = model(**model_inputs(ref), output_hidden_states=True)
        with minibert.Trace() as again:
            traced_out = model(**model_inputs(ref), output_hidden_states=True)
    finally:
        model.eval()
    for a, b in zip(plain.hidden_states, traced_out.hidden_states, strict=True):
        assert np.array_equal(a, b)
    assert again
    assert minibert.tracing.active_trace() is None


def test_shared_albert_layers_are_named_by_use():
    model = minibert.load(case_dir("albert-base"))
    t = minibert.trace(model, **model_inputs(load_reference("albert-base")))
    assert t.steps == model.encoder.schedule
    assert len(set(t.steps)) < len(t.steps)  # one layer ran at several steps
    assert not np.array_equal(t["encoder.step.0.ln2"], t["encoder.step.1.ln2"])


def test_head_intermediates():
    ref = load_reference("distilbert-seqcls")
    model = minibert.load(case_dir("distilbert-seqcls"))
    t = minibert.trace(model, **model_inputs(ref))
    np.testing.assert_allclose(t["output.logits"], ref["logits"], atol=ATOL_HF)
    dense = t["encoder.step.1.ln2"][:, 0] @ model.classifier.dense.params["weight"].T
    np.testing.assert_allclose(
        t["classifier.dense"], dense + model.classifier.dense.params["bias"], atol=1e-5
    )
    assert np.array_equal(t["classifier.activation"], np.maximum(t["classifier.dense"], 0))
    mlm = minibert.load(case_dir("bert-mlm"))
    t = minibert.trace(mlm, **model_inputs(load_reference("bert-mlm")))
    assert t["mlm.layernorm"].shape == t["mlm.transform"].shape
    np.testing.assert_allclose(
        t["output.logits"], load_reference("bert-mlm")["logits"], atol=ATOL_HF
    )


# --- gradients -----------------------------------------------------------------------------

# intermediate -> the parameter whose every entry adds to it at every position, so that
# d loss / d parameter = the intermediate's gradient summed over all but the last axis
BIAS_OF = {
    "attention.output": "attn.o.bias",
    "ffn.up": "ffn.up.bias",
    "ffn.output": "ffn.down.bias",
    "ln1": "ln1.bias",
    "ln2": "ln2.bias",
}


def _loss(model, inputs, labels):
    return float(model(**inputs, labels=labels).loss)


@pytest.mark.parametrize("family", ["bert-seqcls", "albert-seqcls"])
def test_gradients_against_finite_differences(family):
    model = minibert.load(case_dir(family)).astype(np.float64)
    ref = load_reference(family)
    inputs = model_inputs(ref)
    # albert-seqcls has a row with no token at all: its scores drown in the mask's finfo.min,
    # so the forward does not depend on them while backward (as torch's) still passes a
    # gradient through the softmax; finite differences need every row to keep a token
    inputs["attention_mask"] = inputs["attention_mask"].copy()
    inputs["attention_mask"][:, 0] = 1
    labels = np.arange(len(ref["input_ids"])) % model.config.num_labels
    t = minibert.trace(model, **inputs, labels=labels, grads=True)
    assert not model.training
    assert set(t.grads) <= set(t)
    for name, grad in t.grads.items():
        assert grad.shape == t[name].shape, name
    h = 1e-6
    schedule = model.encoder.schedule
    checks = [("embeddings.ln.bias", [t.grads["embeddings.layernorm"]])]
    for layer in sorted(set(schedule)):
        for name, bias in BIAS_OF.items():
            # a shared layer's bias adds to this name at every step that runs it
            uses = [
                g
                for step, index in enumerate(schedule)
                if index == layer
                for g in [t.grads[f"encoder.step.{step}.{name}"]]
            ]
            checks.append((f"encoder.layers.{layer}.{bias}", uses))
    for path, uses in checks:
        param = model.get_parameter(path)
        analytic = sum(g.reshape(-1, param.size).sum(0) for g in uses)
        for j in range(0, param.size, max(1, param.size // 4)):
            old = param[j]
            param[j] = old + h
            up = _loss(model, inputs, labels)
            param[j] = old - h
            down = _loss(model, inputs, labels)
            param[j] = old
            numeric = (up - down) / (2 * h)
            # central differences in float64: rounding ~ eps |loss| / h ~ 1e-10,
            # truncation ~ h^2; RTOL_GRAD on top
            assert abs(numeric - analytic[j]) <= 1e-8 + RTOL_GRAD * abs(numeric), (
                path,
                j,
                numeric,
                analytic[j],
            )


def test_attention_gradients_chain_as_the_arithmetic_says():
    model = minibert.load(case_dir("bert-seqcls")).astype(np.float64)
    ref = load_reference("bert-seqcls")
    t = minibert.trace(model, **model_inputs(ref), labels=np.array([0, 1, 0]), grads=True)
    for step in range(len(t.steps)):
        s = f"encoder.step.{step}.attention."
        g, v = t.grads, t
        D = v[s + "q"].shape[-1]
        np.testing.assert_allclose(g[s + "scores"], g[s + "masked_scores"] * D**-0.5, rtol=1e-12)
        # scores = q k^T: dq = dscores k, dk = dscores^T q
        np.testing.assert_allclose(g[s + "q"], g[s + "scores"] @ v[s + "k"], atol=1e-12)
        np.testing.assert_allclose(
            g[s + "k"], g[s + "scores"].transpose(0, 1, 3, 2) @ v[s + "q"], atol=1e-12
        )
        # ctx = probs v: dv = probs^T dctx
        B, H, T, _ = v[s + "q"].shape
        dctx = g[s + "context"].reshape(B, T, H, D).transpose(0, 2, 1, 3)
        np.testing.assert_allclose(
            g[s + "v"], v[s + "probs"].transpose(0, 1, 3, 2) @ dctx, atol=1e-12
        )
        np.testing.assert_allclose(g[s + "probs"], dctx @ v[s + "v"].transpose(0, 1, 3, 2))


def test_grads_need_a_loss():
    model = minibert.load(case_dir("bert-base"))
    ids = load_reference("bert-base")["input_ids"]
    with pytest.raises(InputError, match="needs a loss"):
        minibert.trace(model, ids, grads=True)
    with pytest.raises(InputError, match="output_grads"):
        minibert.trace(model, ids, output_grads={"last_hidden_state": np.zeros(1)})


def test_output_grads_give_gradients_too():
    model = minibert.load(case_dir("roberta-base")).astype(np.float64)
    ref = load_reference("roberta-base")
    dlast = np.ones_like(ref["last_hidden_state"], dtype=np.float64)
    t = minibert.trace(
        model, **model_inputs(ref), grads=True, output_grads={"last_hidden_state": dlast}
    )
    last = f"encoder.step.{len(t.steps) - 1}.ln2"
    assert np.array_equal(t.grads[last], dlast)
    assert "embeddings.word" in t.grads
    assert "embeddings.token_type" in t.grads


def test_traces_do_not_nest():
    with minibert.Trace(), pytest.raises(RuntimeError, match="nest"):
        with minibert.Trace():
            pass
