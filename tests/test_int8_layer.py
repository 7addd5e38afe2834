"""The fused int8 encoder layer (kernels/int8_layer.py, QuantLinear.layer_forward and
.encoder_forward): the same values as the layer run kernel by kernel, bit for bit, on every
family and on every int8 path this CPU can run (the others skipped with their reason); when it
runs and when it steps aside; its kept arguments follow the weights; non-finite activations
still an error."""

import numpy as np
import pytest

import minibert
from conftest import MODEL_CASES, case_dir, load_reference, model_inputs
from minibert.kernels import cpu, int8_layer
from minibert.kernels.jit import fast_kernels_enabled
from minibert.quant import QuantLinear

pytestmark = pytest.mark.skipif(
    not fast_kernels_enabled(), reason="Numba is not usable here: no fused layer to test"
)

FAMILIES = ["bert-base", "roberta-base", "distilbert-base", "albert-base"]
SKIPPED = cpu.skipped_int8_paths()
PATHS = [
    pytest.param(p, marks=pytest.mark.skipif(p in SKIPPED, reason=f"{p}: {SKIPPED.get(p)}"))
    for p in cpu.INT8_PATHS
]


def _count_fused(monkeypatch) -> list:
    """The path of each layer the fused kernel runs (it still runs them)."""
    calls = []
    run = int8_layer.layers

    def counted(path, x, mask_bias, steps, *args):
        calls.extend([path] * len(steps))
        return run(path, x, mask_bias, steps, *args)

    monkeypatch.setattr("minibert.quant.int8.int8_layers", counted)
    return calls


def _unfused(patch):
    patch.setattr(QuantLinear, "layer_forward", None)
    patch.setattr(QuantLinear, "encoder_forward", None)


def _both_ways(model, inputs, monkeypatch, **kwargs):
    """The model's outputs with the fused layer, and with the layer kernel by kernel."""
    fused = model(**inputs, **kwargs)
    with monkeypatch.context() as patch:
        _unfused(patch)
        unfused = model(**inputs, **kwargs)
    return fused, unfused


@pytest.mark.parametrize("case", FAMILIES)
def test_fused_layer_equals_the_layer_kernel_by_kernel(case, monkeypatch):
    assert case in MODEL_CASES
    model = minibert.quantize(minibert.load(case_dir(case)))
    inputs = model_inputs(load_reference(case))
    assert (inputs["attention_mask"] == 0).any(), "the fixture pads a row: masks are covered"
    calls = _count_fused(monkeypatch)
    fused, unfused = _both_ways(model, inputs, monkeypatch)
    # every layer once; ALBERT's tanh GELU ("gelu_new") is not the kernel's: it steps aside
    fuses = model.config.hidden_act == "gelu"
    assert len(calls) == (model.config.num_hidden_layers if fuses else 0)
    np.testing.assert_array_equal(fused.last_hidden_state, unfused.last_hidden_state)


@pytest.mark.parametrize("path", PATHS)
def test_every_path_fuses_exactly(path, monkeypatch):
    monkeypatch.setenv("MINIBERT_ISA", path)  # the weights are packed for this path
    model = minibert.quantize(minibert.load(case_dir("bert-base")))
    inputs = model_inputs(load_reference("bert-base"))
    calls = _count_fused(monkeypatch)
    fused, unfused = _both_ways(model, inputs, monkeypatch)
    assert calls
    assert set(calls) == {path}
    np.testing.assert_array_equal(fused.last_hidden_state, unfused.last_hidden_state)


def test_a_forward_on_the_thread_pool_fuses_exactly(monkeypatch):
    """Above SERIAL_WORK the layer's kernels run their parallel builds; the same values."""
    monkeypatch.setattr("minibert.kernels.jit.SERIAL_WORK", 0)
    model = minibert.quantize(minibert.load(case_dir("bert-base")))
    inputs = model_inputs(load_reference("bert-base"))
    calls = _count_fused(monkeypatch)
    fused, unfused = _both_ways(model, inputs, monkeypatch)
    assert len(calls) == model.config.num_hidden_layers
    np.testing.assert_array_equal(fused.last_hidden_state, unfused.last_hidden_state)


def test_steps_aside_for_attentions_and_head_masks(monkeypatch):
    model = minibert.quantize(minibert.load(case_dir("bert-base")))
    inputs = model_inputs(load_reference("bert-base"))
    calls = _count_fused(monkeypatch)
    model(**inputs, output_attentions=True)  # probabilities: the kernel never forms them
    heads = model.config.num_attention_heads
    model(**inputs, head_mask=np.ones(heads, np.float32))
    assert calls == []


def test_non_finite_activations_are_still_an_error(monkeypatch):
    model = minibert.quantize(minibert.load(case_dir("bert-base")))
    model.encoder.layers[0].ln1.params["weight"][0] = np.nan  # h holds NaN
    inputs = model_inputs(load_reference("bert-base"))
    calls = _count_fused(monkeypatch)
    with pytest.raises(ValueError, match="NaN or infinity"):
        model(**inputs)
    assert calls
    _unfused(monkeypatch)
    with pytest.raises(ValueError, match="NaN or infinity"):
        model(**inputs)


def test_hidden_states_and_a_layer_on_its_own_fuse_exactly(monkeypatch):
    model = minibert.quantize(minibert.load(case_dir("bert-base")))
    inputs = model_inputs(load_reference("bert-base"))
    calls = _count_fused(monkeypatch)
    fused, unfused = _both_ways(model, inputs, monkeypatch, output_hidden_states=True)
    assert len(calls) == model.config.num_hidden_layers
    assert len(fused.hidden_states) == len(unfused.hidden_states)
    for mine, theirs in zip(fused.hidden_states, unfused.hidden_states, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    x = fused.hidden_states[1]
    mask_bias = np.zeros(x.shape[:2], np.float32)
    layer = model.encoder.layers[1]
    y, _ = layer.forward(x, mask_bias, need_probs=False)  # one layer: layer_forward
    assert len(calls) == model.config.num_hidden_layers + 1
    with monkeypatch.context() as patch:
        _unfused(patch)
        expected, _ = layer.forward(x, mask_bias, need_probs=False)
    np.testing.assert_array_equal(y, expected)


def test_the_kept_arguments_follow_new_weights_and_modules(monkeypatch):
    """A layer's fused arguments are made once; a replaced weight array or linear module (as
    loading or editing a model does) is picked up on the next forward."""
    model = minibert.quantize(minibert.load(case_dir("bert-base")))
    inputs = model_inputs(load_reference("bert-base"))
    before = model(**inputs).last_hidden_state
    q = model.encoder.layers[0].attn.q
    q.params["weight"] = -q.params["weight"]  # a new array
    after, unfused = _both_ways(model, inputs, monkeypatch)
    assert np.abs(after.last_hidden_state - before).max() > 1e-3
    np.testing.assert_array_equal(after.last_hidden_state, unfused.last_hidden_state)
    down = model.encoder.layers[1].ffn.down
    swapped = QuantLinear(down.params["weight"].shape[1], down.params["weight"].shape[0])
    swapped.params = {name: value.copy() for name, value in down.params.items()}
    swapped.params["weight_scale"] = swapped.params["weight_scale"] * 2
    model.encoder.layers[1].ffn.down = swapped
    again, unfused = _both_ways(model, inputs, monkeypatch)
    assert np.abs(again.last_hidden_state - after.last_hidden_state).max() > 1e-3
    np.testing.assert_array_equal(again.last_hidden_state, unfused.last_hidden_state)


def test_a_layer_with_pruned_heads_runs_kernel_by_kernel(monkeypatch):
    """q, k and v narrower than the hidden size (compression/heads.py): the fused kernel's
    shapes do not hold, so that layer steps aside and the others still fuse; the values are
    those of the model run kernel by kernel."""
    from minibert.compression.heads import prune_heads

    model = minibert.load(case_dir("bert-base"))
    prune_heads(model, {0: [0]})
    model = minibert.quantize(model)
    inputs = model_inputs(load_reference("bert-base"))
    calls = _count_fused(monkeypatch)
    fused, unfused = _both_ways(model, inputs, monkeypatch)
    assert len(calls) == model.config.num_hidden_layers - 1  # every layer but the pruned one
    assert np.isfinite(fused.last_hidden_state).all()
    np.testing.assert_array_equal(fused.last_hidden_state, unfused.last_hidden_state)


def test_the_kept_arguments_do_not_keep_a_model_alive():
    import gc

    from minibert.quant import int8 as int8_module

    model = minibert.quantize(minibert.load(case_dir("bert-base")))
    model(**model_inputs(load_reference("bert-base")))
    layers = set(map(id, model.encoder.layers))
    assert layers <= set(map(id, int8_module._PLANS.keys()))
    del model
    gc.collect()
    assert not layers & set(map(id, int8_module._PLANS.keys()))


def test_shared_layers_fuse_at_every_step_and_follow_a_new_activation(monkeypatch):
    """ALBERT runs its layers at several steps each; with the exact GELU they fuse every time.
    Switching the activation back to tanh's approximation makes them step aside on the next
    forward."""
    model = minibert.quantize(minibert.load(case_dir("albert-base")))
    inputs = model_inputs(load_reference("albert-base"))
    layers = model.encoder.layers
    assert len(model.encoder.schedule) > len(layers)  # shared: more steps than layers
    for layer in layers:
        layer.ffn.act.name = "gelu"
    calls = _count_fused(monkeypatch)
    fused, unfused = _both_ways(model, inputs, monkeypatch)
    assert len(calls) == model.config.num_hidden_layers
    np.testing.assert_array_equal(fused.last_hidden_state, unfused.last_hidden_state)
    for layer in layers:
        layer.ffn.act.name = "gelu_new"
    calls.clear()
    tanh, unfused = _both_ways(model, inputs, monkeypatch)
    assert calls == []
    np.testing.assert_array_equal(tanh.last_hidden_state, unfused.last_hidden_state)
    assert np.abs(tanh.last_hidden_state - fused.last_hidden_state).max() > 0
