"""The fused int8 encoder layer (kernels/int8_layer.py, QuantLinear.layer_forward): the same
values as the layer run kernel by kernel, bit for bit, on every family and on every int8 path
this CPU can run (the others skipped with their reason); when it runs and when it steps aside;
non-finite activations still an error."""

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
    """Count the fused layer's calls (it still runs)."""
    calls = []
    run = int8_layer.layer

    def counted(*args):
        calls.append(args[0])
        return run(*args)

    monkeypatch.setattr("minibert.quant.int8.int8_layer", counted)
    return calls


def _both_ways(model, inputs, monkeypatch, **kwargs):
    """The model's outputs with the fused layer, and with the layer kernel by kernel."""
    fused = model(**inputs, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(QuantLinear, "layer_forward", None)
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
    monkeypatch.setattr(QuantLinear, "layer_forward", None)
    with pytest.raises(ValueError, match="NaN or infinity"):
        model(**inputs)
