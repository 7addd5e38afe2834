"""Head pruning, head importance and layer dropping, against transformers 4's pruned models.

The fixtures under tests/fixtures/pruning/ come from generate_pruning.py (transformers 4.57,
which still has prune_heads and head_mask): folders transformers saved after pruning, with their
outputs, and torch autograd's gradient with respect to the head mask. Outputs are float32 forwards
of the same arithmetic, so they must agree to 1e-5.
"""

import json

import numpy as np
import pytest

import minibert
from conftest import FIXTURES
from minibert.compression.heads import head_importance, least_important, mask_gradient
from minibert.compression.layers import keep_layers
from minibert.errors import ConfigError, InputError

PRUNING = FIXTURES / "pruning"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TOL = 1e-5

# the generator's two prune_heads calls per case (its HEAD_CASES)
HEAD_CASES = {
    "bert-seqcls": ({0: [1], 1: [0, 2]}, {0: [3], 1: [2, 4]}),
    "albert-base": ({0: [1, 2]}, {1: [3], 0: [2]}),
    "distilbert-base": ({0: [0, 3]}, {1: [2]}),
    "roberta-base": ({1: [2]}, {0: [1], 1: [1]}),
}


def reference(folder):
    with np.load(folder / "reference.npz") as z:
        return {k: z[k] for k in z.files}


def inputs_of(ref):
    return {k: ref[k] for k in INPUTS if k in ref}


def assert_outputs(model, ref):
    out = model(**inputs_of(ref), output_hidden_states=True)
    keys = [k for k in ("logits", "last_hidden_state") if k in ref]
    assert keys
    for key in keys:
        np.testing.assert_allclose(getattr(out, key), ref[key], atol=TOL, rtol=0)
    for i, hidden in enumerate(out.hidden_states):
        np.testing.assert_allclose(hidden, ref[f"hidden_states_{i}"], atol=TOL, rtol=0)


def pruned_config(folder):
    raw = json.loads((folder / "config.json").read_text())["pruned_heads"]
    return {int(k): tuple(sorted(v)) for k, v in raw.items()}


@pytest.mark.parametrize("case", sorted(HEAD_CASES))
def test_prune_heads_equals_transformers(case):
    model = minibert.load(FIXTURES / case)
    params_before = model.num_parameters()
    for heads in HEAD_CASES[case]:
        assert minibert.prune_heads(model, heads) is model
    folder = PRUNING / f"{case}-heads"
    assert model.config.pruned_heads == pruned_config(folder)
    removed = sum(len(v) for v in model.config.pruned_heads.values())
    D, C = model.config.head_size, model.config.hidden_size
    assert params_before - model.num_parameters() == removed * (3 * (C * D + D) + D * C)
    assert_outputs(model, reference(folder))


@pytest.mark.parametrize("case", sorted(HEAD_CASES))
def test_load_a_folder_transformers_pruned(case):
    folder = PRUNING / f"{case}-heads"
    model = minibert.load(folder)
    assert model.config.pruned_heads == pruned_config(folder)
    assert_outputs(model, reference(folder))


@pytest.mark.parametrize("case", sorted(HEAD_CASES))
def test_saved_pruned_folder_matches_transformers_layout(case, tmp_path):
    """Our folder holds the tensors transformers saved, by name and shape, and the same
    pruned_heads; loading it back gives the same outputs."""
    from safetensors.numpy import load_file

    model = minibert.load(FIXTURES / case)
    for heads in HEAD_CASES[case]:
        minibert.prune_heads(model, heads)
    model.save_pretrained(tmp_path)
    folder = PRUNING / f"{case}-heads"
    assert pruned_config(tmp_path) == pruned_config(folder)
    ours, theirs = (
        load_file(tmp_path / "model.safetensors"),
        load_file(folder / "model.safetensors"),
    )
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert_outputs(minibert.load(tmp_path), reference(folder))


def test_pruned_model_gradients_equal_transformers():
    folder = PRUNING / "bert-seqcls-heads"
    ref = reference(folder)
    model = minibert.load(folder).train(dropout=False)
    out = model(**inputs_of(ref), labels=ref["labels"])
    np.testing.assert_allclose(out.loss, ref["loss"], atol=TOL, rtol=0)
    model.backward()
    grads = model.gradients()
    expected = {k[len("grad.") :]: v for k, v in ref.items() if k.startswith("grad.")}
    assert set(grads) == set(expected)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, expected[name], atol=TOL, rtol=0, err_msg=name)


def test_pruning_keeps_accumulated_gradients_of_the_kept_heads():
    ref = reference(FIXTURES / "bert-seqcls") | {"labels": np.array([0, 2, 1])}
    model = minibert.load(FIXTURES / "bert-seqcls").train(dropout=False)
    model(**inputs_of(ref), labels=ref["labels"])
    model.backward()
    before = model.encoder.layers[0].attn.q.grads["weight"].copy()
    minibert.prune_heads(model, {0: [1]})
    D = model.config.head_size
    kept_rows = np.r_[0:D, 2 * D : before.shape[0]]
    np.testing.assert_array_equal(model.encoder.layers[0].attn.q.grads["weight"], before[kept_rows])
    model(**inputs_of(ref), labels=ref["labels"])  # and training goes on
    model.backward()


def test_quantize_a_pruned_model(tmp_path):
    model = minibert.load(FIXTURES / "bert-seqcls")
    for heads in HEAD_CASES["bert-seqcls"]:
        minibert.prune_heads(model, heads)
    ref = reference(PRUNING / "bert-seqcls-heads")
    qmodel = minibert.quantize(model)
    logits = qmodel(**inputs_of(ref)).logits
    assert logits.shape == ref["logits"].shape
    # int8 weights and activations: close to the float model, not equal
    assert np.abs(logits - ref["logits"]).max() < 0.05 * np.abs(ref["logits"]).max() + 1e-3
    qmodel.save_pretrained(tmp_path)  # and the int8 folder loads back to the same model
    reloaded = minibert.load(tmp_path)
    assert reloaded.config.pruned_heads == model.config.pruned_heads
    np.testing.assert_array_equal(reloaded(**inputs_of(ref)).logits, logits)


def test_head_mask_row_on_a_pruned_model_reads_the_kept_heads():
    """A head_mask keeps one entry per original head; a pruned head's entry is not read."""
    model = minibert.load(PRUNING / "bert-seqcls-heads")
    ref = reference(PRUNING / "bert-seqcls-heads")
    mask = np.ones((2, 5), np.float32)
    mask[0, 1] = mask[1, 0] = 7.0  # pruned heads: no effect
    np.testing.assert_allclose(
        model(**inputs_of(ref), head_mask=mask).logits, ref["logits"], atol=TOL, rtol=0
    )
    with pytest.raises(InputError, match="head_mask"):
        model(**inputs_of(ref), head_mask=np.ones((2, 4), np.float32))


# --- head importance ---------------------------------------------------------------------------
def seqcls_batches():
    ref = reference(FIXTURES / "bert-seqcls")
    with np.load(FIXTURES / "bert-seqcls" / "training.npz") as z:
        labels = z["labels"]
    inputs = inputs_of(ref)
    return [
        {**{k: v[i : i + 1] for k, v in inputs.items()}, "labels": labels[i : i + 1]}
        for i in range(len(labels))
    ], {**inputs, "labels": labels}


def test_mask_gradient_equals_torch_autograd():
    rows, batch = seqcls_batches()
    with np.load(PRUNING / "importance.npz") as z:
        expected_rows, expected_batch = z["mask_grad_rows"], z["mask_grad_batch"]
    model = minibert.load(FIXTURES / "bert-seqcls").train(dropout=False)
    model(**batch, head_mask=np.ones((2, 5), np.float32))
    model.backward()
    np.testing.assert_allclose(mask_gradient(model), expected_batch, atol=1e-7, rtol=1e-4)
    for one, expected in zip(rows, expected_rows, strict=True):
        model(**one, head_mask=np.ones((2, 5), np.float32))
        model.backward()
        np.testing.assert_allclose(mask_gradient(model), expected, atol=1e-7, rtol=1e-4)


def test_head_importance_equals_transformers_bertology():
    rows, _ = seqcls_batches()
    with np.load(PRUNING / "importance.npz") as z:
        expected = z["importance"]
    model = minibert.load(FIXTURES / "bert-seqcls")
    importance = head_importance(model, rows)
    np.testing.assert_allclose(importance, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(importance, axis=1), 1.0, atol=1e-6)
    assert not model.training  # back to its mode


@pytest.mark.parametrize("case", ["bert-seqcls", "albert-seqcls", "distilbert-seqcls"])
def test_mask_gradient_by_finite_differences_in_float64(case):
    """d loss / d xi against central differences of the loss with the gate moved by +-eps;
    ALBERT's gate multiplies its shared layer's head at every step."""
    ref = reference(FIXTURES / case)
    with np.load(FIXTURES / case / "training.npz") as z:
        labels = z["labels"]
    inputs = inputs_of(ref)
    model = minibert.load(FIXTURES / case, dtype="float64").train(dropout=False)
    minibert.prune_heads(model, {0: [1]})  # pruned heads get 0, the rest still check
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    model(**inputs, labels=labels, head_mask=np.ones((L, H)))
    model.backward()
    grad = mask_gradient(model)
    assert grad[0, 1] == 0.0
    schedule = model.encoder.schedule
    eps = 1e-6
    for layer in range(len(model.encoder.layers)):
        for head in range(H):
            losses = []
            for sign in (1, -1):
                mask = np.ones((L, H))
                steps = [step for step, index in enumerate(schedule) if index == layer]
                mask[steps, head] += sign * eps  # as head_mask rows; ALBERT reads them by step
                losses.append(float(model(**inputs, labels=labels, head_mask=mask).loss))
            numeric = (losses[0] - losses[1]) / (2 * eps)
            assert abs(grad[layer, head] - numeric) < 1e-7 + 1e-5 * abs(numeric), (layer, head)


def test_head_importance_needs_targets():
    ref = reference(FIXTURES / "bert-seqcls")
    model = minibert.load(FIXTURES / "bert-seqcls")
    with pytest.raises(InputError, match="targets"):
        head_importance(model, [inputs_of(ref)])
    with pytest.raises(InputError, match="at least one batch"):
        head_importance(model, [])


def test_least_important_leaves_every_layer_a_head():
    scores = np.array([[0.1, 0.9, 0.2], [0.5, 0.4, 0.3]])
    assert least_important(scores, 0.5) == {0: [0, 2], 1: [2]}
    assert least_important(scores, 1.0) == {0: [0, 2], 1: [1, 2]}
    assert least_important(scores, 0.0) == {}
    assert least_important(np.array([[0.0, 0.9, 0.2]]), 1.0) == {0: [2]}  # 0: already pruned


# --- layer dropping -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "keep", "folder"),
    [
        (FIXTURES / "distilbert-base", [1], "distilbert-base-layers"),
        (PRUNING / "bert-seqcls-heads", [1], "bert-seqcls-layers"),
    ],
)
def test_keep_layers_equals_transformers(source, keep, folder, tmp_path):
    model = minibert.load(source)
    smaller = keep_layers(model, keep)
    assert len(model.encoder.layers) == 2  # the original is untouched
    expected_config = json.loads((PRUNING / folder / "config.json").read_text())
    key = "n_layers" if "n_layers" in expected_config else "num_hidden_layers"
    assert smaller.config.num_hidden_layers == expected_config[key] == len(keep)
    has_pruned = "pruned_heads" in expected_config
    assert smaller.config.pruned_heads == (pruned_config(PRUNING / folder) if has_pruned else {})
    ref = reference(PRUNING / folder)
    assert_outputs(smaller, ref)
    smaller.save_pretrained(tmp_path)
    assert_outputs(minibert.load(tmp_path), ref)
    assert_outputs(minibert.load(PRUNING / folder), ref)


def test_keep_layers_refuses_bad_input():
    model = minibert.load(FIXTURES / "bert-base")
    for bad, message in [
        ([2], "out of range"),
        ([], "at least one"),
        ([1, 0], "increasing"),
        ([0, 0], "increasing"),
        (1, "list"),
        (["0"], "integer"),
    ]:
        with pytest.raises(InputError, match=message):
            keep_layers(model, bad)
    with pytest.raises(InputError, match="ALBERT"):
        keep_layers(minibert.load(FIXTURES / "albert-base"), [0])


# --- bad input ----------------------------------------------------------------------------------
def test_prune_heads_refuses_bad_input():
    model = minibert.load(FIXTURES / "bert-base")  # 2 layers of 4 heads
    for bad, message in [
        ({2: [0]}, "layer 2 is out of range"),
        ({0: [4]}, "head of layer 0 4 is out of range"),
        ({0: [-1]}, "out of range"),
        ({0: 1}, "must be a list"),
        ({"0": [1]}, "integer"),
        ({0: [0, 1, 2, 3]}, "no head"),
        ([0, 1], "takes"),
    ]:
        with pytest.raises(InputError, match=message):
            minibert.prune_heads(model, bad)
    assert not model.config.pruned_heads  # nothing half-done
    minibert.prune_heads(model, {0: [0, 1, 2]})
    with pytest.raises(InputError, match="no head"):
        minibert.prune_heads(model, {0: [3]})
    minibert.prune_heads(model, {0: [0, 1]})  # already pruned: nothing to do
    assert model.config.pruned_heads == {0: (0, 1, 2)}
    with pytest.raises(InputError, match="float model"):
        minibert.prune_heads(minibert.quantize(model), {1: [0]})


def test_config_pruned_heads_is_checked():
    config = json.loads((PRUNING / "bert-seqcls-heads" / "config.json").read_text())
    for bad, message in [
        ({"5": [0]}, "layer 5"),
        ({"0": [9]}, "head 9"),
        ({"0": [0, 1, 2, 3, 4]}, "every head"),
        ({"x": [0]}, "not a number"),
        ([0], "map layers"),
    ]:
        with pytest.raises(ConfigError, match=message):
            minibert.EncoderConfig.from_hf({**config, "pruned_heads": bad})
    config = minibert.EncoderConfig.from_hf(config)
    assert config.to_hf()["pruned_heads"] == {"0": [1, 3], "1": [0, 2, 4]}
    assert "pruned_heads" not in config.replace(pruned_heads={}).to_hf()


def test_head_importance_with_an_outside_loss_by_finite_differences():
    """A model without a head: loss = sum(last_hidden_state * d), its gradient handed in."""
    ref = reference(FIXTURES / "bert-base")
    inputs = inputs_of(ref)
    model = minibert.load(FIXTURES / "bert-base", dtype="float64")
    d = np.random.default_rng(0).normal(size=ref["last_hidden_state"].shape)
    importance = head_importance(
        model, [inputs], normalize=False, loss_gradient=lambda out: {"last_hidden_state": d}
    )
    eps = 1e-6
    for layer, head in [(0, 0), (1, 3)]:
        losses = []
        for sign in (1, -1):
            mask = np.ones((2, 4))
            mask[layer, head] += sign * eps
            losses.append((model(**inputs, head_mask=mask).last_hidden_state * d).sum())
        numeric = abs(losses[0] - losses[1]) / (2 * eps)
        assert abs(importance[layer, head] - numeric) < 1e-7 + 1e-5 * numeric


def test_pruned_model_on_the_reference_path():
    """The readable numpy path (no Numba kernels) runs the smaller heads as well."""
    model = minibert.load(PRUNING / "albert-base-heads")
    model.kernels = "reference"
    assert_outputs(model, reference(PRUNING / "albert-base-heads"))


def test_outside_loss_on_a_pruned_layers_attention_maps():
    """Distillation losses on attention maps: a pruned layer's maps have its kept heads only;
    the gradient reaching a weight equals central finite differences (float64)."""
    ref = reference(PRUNING / "bert-seqcls-heads")
    inputs = inputs_of(ref)
    model = minibert.load(PRUNING / "bert-seqcls-heads", dtype="float64").train(dropout=False)
    out = model(**inputs, output_attentions=True)
    assert [a.shape[1] for a in out.attentions] == [3, 2]
    target = np.random.default_rng(1).normal(size=out.attentions[1].shape)
    model.backward({"attentions": {1: target}})
    model(**inputs)
    with pytest.raises(InputError, match="attentions"):  # the config's 5 heads: not layer 1's
        model.backward({"attentions": {1: np.ones((3, 5, 7, 7))}})
    weight = model.encoder.layers[1].attn.q.params["weight"]
    analytic = model.encoder.layers[1].attn.q.grads["weight"]
    eps = 1e-6
    for index in [(0, 0), (5, 7), (11, 29)]:
        losses = []
        for sign in (1, -1):
            weight[index] += sign * eps
            losses.append((model(**inputs, output_attentions=True).attentions[1] * target).sum())
            weight[index] -= sign * eps
        numeric = (losses[0] - losses[1]) / (2 * eps)
        assert abs(analytic[index] - numeric) < 1e-7 + 1e-5 * abs(numeric)


@pytest.mark.parametrize("case", sorted(HEAD_CASES))
def test_pruning_a_head_equals_silencing_it(case):
    """Independent of transformers: a pruned head contributes what a head_mask of 0 leaves,
    nothing, so the two models agree (the output projection's bias stays in both)."""
    ref = reference(FIXTURES / case)
    model = minibert.load(FIXTURES / case)
    L, H = model.config.num_hidden_layers, model.config.num_attention_heads
    mask = np.ones((L, H), np.float32)
    mask[:, 1] = 0.0
    silenced = model(**inputs_of(ref), head_mask=mask).last_hidden_state
    minibert.prune_heads(model, {layer: [1] for layer in range(len(model.encoder.layers))})
    pruned = model(**inputs_of(ref)).last_hidden_state
    np.testing.assert_allclose(pruned, silenced, atol=TOL, rtol=0)
