"""The device plumbing: model.to("cuda"), load(..., device=), inputs, outputs, gradients and the
optimizer on the device, and the error without cupy.

Without a GPU these run on tests/fake_cupy.py, a cupy whose arrays are numpy underneath: the
outputs on the "device" then equal the CPU reference path's exactly (the same numpy arithmetic),
and the double counts every copy between host and device and refuses numpy functions on device
arrays. The tests marked `gpu` run on real cupy and a CUDA device, and are skipped elsewhere
(conftest.py); no GPU run has been recorded yet (docs/gpu.md).
"""

import contextlib
from pathlib import Path

import fake_cupy
import numpy as np
import pytest
from test_gradients import TRAINING_CASES, model_batch, rel_error
from test_models import INPUT_KEYS, our_output

import minibert
from conftest import ATOL_HF, META, MODEL_CASES, RTOL_GRAD, case_dir, load_reference, model_inputs
from minibert.backend import to_numpy
from minibert.errors import DeviceError
from minibert.kernels.jit import kernels_for_call
from minibert.kernels.softmax import masked_softmax
from minibert.models.inputs import check_forward
from minibert.training.optim import AdamW

FAMILY_CASES = ["bert-base", "albert-base", "distilbert-base", "roberta-base"]


@pytest.fixture
def fake(monkeypatch):
    """cupy replaced by the double for one test; transfers counted from zero."""
    return fake_cupy.install(monkeypatch)


def on_device(a) -> bool:
    return isinstance(a, fake_cupy.ndarray)


def output_arrays(out) -> dict:
    """{name: array} of every array a model output holds, the tuples' items included."""
    found = {}
    for name, value in out.items():
        if isinstance(value, tuple):
            found.update({f"{name}_{i}": v for i, v in enumerate(value)})
        elif value is not None and hasattr(value, "shape"):
            found[name] = value
    return found


def reference_model(case, device="cpu", **kwargs):
    """On the CPU, the model on its readable numpy path: the arithmetic the device path
    repeats. On the device, the model as loaded: its path must not depend on the kernels."""
    model = minibert.load(case_dir(case), device=device, **kwargs)
    if device == "cpu":
        model.kernels = "reference"
    return model


def cpu_reference(device):
    """Backward on the CPU's readable path (model.kernels applies to forward calls only)."""
    return kernels_for_call("reference") if device == "cpu" else contextlib.nullcontext()


def run(model, inputs, **kwargs):
    return model(**inputs, output_hidden_states=True, output_attentions=True, **kwargs)


# --- the double itself: what it refuses is what the other tests rely on ------------------------
def test_fake_cupy_refuses_numpy_on_device_arrays(fake):
    a = fake.asarray(np.arange(6.0).reshape(2, 3))
    assert fake.asarray(a) is a
    assert fake.transfers == {"to_device": 1}
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError):
        np.zeros_like(a)
    with pytest.raises(TypeError):
        a + np.ones(3)  # a host array in a device operation
    with pytest.raises(TypeError):
        a[np.array([0, 1])]  # a host index
    with pytest.raises(TypeError):
        a.__array__()
    with pytest.raises(TypeError, match="Numba"):  # the CPU kernels refuse device arrays
        masked_softmax(a[None, None].astype(np.float32), fake.zeros((1, 3), np.float32), 1.0)
    assert on_device(a + 1)
    assert on_device(a.sum())
    assert on_device(fake.exp(a))
    assert on_device(a[0, 0])
    float(a.sum())
    a.get()
    assert fake.transfers == {"to_device": 1, "scalar": 1, "to_host": 1}


# --- forward -------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", MODEL_CASES)
def test_forward_on_device_equals_the_cpu(case, fake):
    """Every fixture model moved to the device: outputs on the device, equal to the CPU reference
    path's, within 1e-4 of transformers'; the only copies are the inputs', at the boundary."""
    ref = load_reference(case)
    inputs = {k: v for k, v in model_inputs(ref).items() if v is not None}
    expected = output_arrays(run(reference_model(case), inputs))
    model = minibert.load(case_dir(case)).to("cuda")
    assert model.device == "cuda"
    fake.reset()
    out = run(model, inputs)
    assert fake.transfers["to_device"] == len(inputs)  # ids, mask, types: host -> device once
    assert fake.transfers["to_host"] == 0
    got = output_arrays(out)
    assert got.keys() == expected.keys()
    for name, value in got.items():
        assert on_device(value), name
        np.testing.assert_array_equal(value.get(), expected[name], err_msg=f"{case}: {name}")
    for key in (k for k in ref if k not in INPUT_KEYS):
        np.testing.assert_allclose(
            our_output(out, key).get(), ref[key], atol=ATOL_HF, rtol=0, err_msg=f"{case}: {key}"
        )


@pytest.mark.parametrize("case", FAMILY_CASES)
def test_device_inputs_need_no_copy(case, fake):
    """Inputs already on the device: no copy either way; the input checks read back only their
    verdicts (one number each), the same ones check_forward reads on its own."""
    model = reference_model(case, device="cuda")
    inputs = {
        k: fake.asarray(v) for k, v in model_inputs(load_reference(case)).items() if v is not None
    }
    fake.reset()
    check_forward(model.config, **inputs, device="cuda")
    verdicts = fake.transfers["scalar"]
    fake.reset()
    out = model(**inputs)
    assert fake.transfers == {"scalar": verdicts}
    assert on_device(out.last_hidden_state)


def test_to_cpu_gives_the_same_model_back(fake):
    ref = load_reference("bert-base")
    cpu = minibert.load(case_dir("bert-base"))
    before = cpu(**model_inputs(ref)).last_hidden_state
    model = minibert.load(case_dir("bert-base")).to("cuda")
    assert all(on_device(a) for _, a in model.named_parameters())
    back = model.to("cpu")
    assert back is model
    assert model.device == "cpu"
    for (name, a), (_, b) in zip(model.named_parameters(), cpu.named_parameters(), strict=True):
        assert type(a) is np.ndarray, name
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(model(**model_inputs(ref)).last_hidden_state, before)


def test_ties_survive_the_move(fake):
    model = minibert.load(case_dir("bert-mlm")).to("cuda")
    assert model.mlm.decoder.params["weight"] is model.embeddings.word.params["weight"]


def test_load_on_the_device(fake):
    model = minibert.load(case_dir("roberta-seqcls"), device="cuda")
    assert model.device == "cuda"
    assert all(m.device == "cuda" for m in model.modules())
    assert all(on_device(a) for _, a in model.named_parameters())


@pytest.mark.parametrize(
    ("scheme", "dtypes"),
    [({}, {np.int8, np.float32}), ({"bits": 4, "group_size": 8}, {np.uint8, np.float32})],
)
def test_quantized_models_move(scheme, dtypes, fake):
    """int8 codes and scales (and int4's packed codes) move with their dtypes kept, and the
    quantized model runs on the device as its readable CPU path does."""
    ref = load_reference("bert-base")
    cpu = minibert.quantize(minibert.load(case_dir("bert-base")), **scheme)
    cpu.kernels = "reference"
    expected = cpu(**model_inputs(ref)).last_hidden_state
    model = minibert.quantize(minibert.load(case_dir("bert-base")), **scheme)
    host_dtypes = {p: a.dtype for p, a in model.named_parameters()}
    model.to("cuda")
    assert {a.dtype.type for _, a in model.named_parameters()} == dtypes
    for path, a in model.named_parameters():
        assert on_device(a), path
        assert a.dtype == host_dtypes[path], path
    out = model(**model_inputs(ref)).last_hidden_state
    assert on_device(out)
    np.testing.assert_array_equal(out.get(), expected)


# --- training ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["bert-mlm", "roberta-qa"])
def test_backward_and_adamw_step_on_device(case, fake):
    """A training step on the device: the loss a 0-d device array, gradients and the updated
    parameters equal the CPU reference path's, and no copy in backward or the step."""
    inputs, targets, _ = model_batch(case)
    inputs = {k: v for k, v in inputs.items() if v is not None}
    results = []
    for device in ("cpu", "cuda"):
        model = reference_model(case, device=device).train(dropout=False)
        optimizer = AdamW(model, lr=1e-3)
        out = model(**inputs, **targets)
        fake.reset()
        with cpu_reference(device):
            model.backward()
        optimizer.step()
        if device == "cuda":
            assert on_device(out.loss)
            assert out.loss.shape == ()
            assert fake.transfers == {}
            assert all(on_device(g) for g in model.gradients().values())
        grads = {k: to_numpy(g) for k, g in model.gradients().items()}
        params = {k: to_numpy(a) for k, a in model.state_dict().items()}
        results.append((to_numpy(out.loss), grads, params))
    (loss_cpu, grads_cpu, params_cpu), (loss_dev, grads_dev, params_dev) = results
    assert loss_cpu == loss_dev
    for name in grads_cpu:
        np.testing.assert_array_equal(grads_dev[name], grads_cpu[name], err_msg=name)
        np.testing.assert_array_equal(params_dev[name], params_cpu[name], err_msg=name)


def test_head_mask_embeddings_and_outside_gradients_on_device(fake):
    """transformers' extra inputs (inputs_embeds, head_mask) and gradients handed to backward
    from outside (distillation) move at the boundary like the ids; the head-mask gradient and
    the input gradient stay on the device and equal the CPU reference path's."""
    ref = load_reference("albert-base")
    rng = np.random.default_rng(0)
    B, T = ref["input_ids"].shape
    width = META["cases"]["albert-base"]["config"]["embedding_size"]
    embeds = rng.normal(0, 0.5, (B, T, width)).astype(np.float32)
    head_mask = rng.uniform(0.5, 1.5, 4).astype(np.float32)
    dlast = rng.normal(size=(B, T, 32)).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        model = reference_model("albert-base", device=device).train(dropout=False)
        out = model(inputs_embeds=embeds, attention_mask=ref["attention_mask"], head_mask=head_mask)
        fake.reset()
        with cpu_reference(device):
            model.backward(grads={"last_hidden_state": dlast, "hidden_states": {1: dlast}})
        if device == "cuda":
            assert fake.transfers == {"to_device": 2}  # the two gradients, at the boundary
            assert on_device(out.last_hidden_state)
            assert on_device(model.input_gradient())
            assert on_device(model.encoder.head_mask_grad)
        arrays = (out.last_hidden_state, model.input_gradient(), model.encoder.head_mask_grad)
        results.append([to_numpy(a) for a in arrays])
    for cpu, device in zip(*results, strict=True):
        np.testing.assert_array_equal(device, cpu)


def test_save_from_the_device(fake, tmp_path):
    model = minibert.load(case_dir("distilbert-base"), device="cuda")
    model.save_pretrained(tmp_path)
    again = minibert.load(tmp_path)
    for (name, a), (_, b) in zip(model.named_parameters(), again.named_parameters(), strict=True):
        np.testing.assert_array_equal(a.get(), b, err_msg=name)


def test_dropout_draws_on_the_device(fake):
    inputs, targets, _ = model_batch("bert-mlm")
    model = minibert.load(case_dir("bert-mlm"), device="cuda").train()
    out = model(input_ids=inputs["input_ids"], labels=targets["labels"])
    fake.reset()
    model.backward()
    assert on_device(out.loss)
    assert fake.transfers == {}


def test_optimizer_state_follows_the_model(fake):
    inputs, targets, _ = model_batch("bert-mlm")
    model = minibert.load(case_dir("bert-mlm")).train(dropout=False)
    optimizer = AdamW(model)
    model(input_ids=inputs["input_ids"], labels=targets["labels"])
    model.backward()
    optimizer.step()
    assert not any(on_device(m) for m in optimizer.m.values())
    model.to("cuda").train(dropout=False)
    model.zero_grad()
    model(input_ids=inputs["input_ids"], labels=targets["labels"])
    model.backward()
    optimizer.step()
    assert all(
        on_device(m) and on_device(v)
        for m, v in zip(optimizer.m.values(), optimizer.v.values(), strict=True)
    )
    assert all(type(m) is np.ndarray for m in optimizer.state_dict()["moments"].values())


# --- errors --------------------------------------------------------------------------------------
def test_cuda_without_cupy_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)  # import cupy -> ImportError
    model = minibert.load(case_dir("bert-base"))
    with pytest.raises(DeviceError, match=r'pip install "minibert\[gpu\]"'):
        model.to("cuda")
    assert model.device == "cpu"
    assert all(type(a) is np.ndarray for _, a in model.named_parameters())
    with pytest.raises(DeviceError, match="minibert"):
        minibert.load(case_dir("bert-base"), device="cuda")


def test_unknown_device_is_named():
    model = minibert.load(case_dir("bert-base"))
    with pytest.raises(DeviceError, match="'tpu'"):
        model.to("tpu")
    with pytest.raises(DeviceError, match="'gpu'"):
        minibert.load(case_dir("bert-base"), device="gpu")


def test_gpu_extra_is_cupy_for_cuda_12():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()  # (no tomllib in 3.10)
    extras = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    assert 'gpu = ["cupy-cuda12x"]' in extras.splitlines()


# --- on a real GPU (skipped without cupy and a CUDA device) --------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("case", MODEL_CASES)
def test_gpu_forward_matches_transformers(case):
    meta = META["cases"][case]
    model = minibert.load(case_dir(case), device="cuda")
    assert type(model).__name__ == meta["class"]
    ref = load_reference(case)
    out = run(model, model_inputs(ref))
    for key in (k for k in ref if k not in INPUT_KEYS):
        ours = our_output(out, key)
        assert type(ours).__module__.startswith("cupy"), key
        np.testing.assert_allclose(
            to_numpy(ours), ref[key], atol=ATOL_HF, rtol=0, err_msg=f"{case}: {key}"
        )


@pytest.mark.gpu
@pytest.mark.parametrize("case", TRAINING_CASES)
def test_gpu_gradients_match_the_cpu_float64_path(case):
    inputs, targets, _ = model_batch(case)
    grads = []
    for device in ("cpu", "cuda"):
        model = minibert.load(case_dir(case), dtype="float64", device=device).train(dropout=False)
        model(**inputs, **targets)
        model.backward()
        grads.append({k: to_numpy(g) for k, g in model.gradients().items()})
    for name, expected in grads[0].items():
        assert rel_error(grads[1][name], expected) < RTOL_GRAD, name
