"""Numba failing must degrade to the numpy references with one warning, never break a model."""

import subprocess
import sys
import warnings

import numpy as np

import minibert
from conftest import ATOL_INVARIANT, case_dir, load_reference, model_inputs
from minibert.kernels import jit, layernorm


def test_numba_missing_runs_every_kernel_as_reference_with_one_warning():
    """In a fresh process where `import numba` fails: one RuntimeWarning, correct outputs."""
    code = f"""
import sys, warnings
sys.modules["numba"] = None  # import numba now raises ImportError
import numpy as np
import minibert
warnings.simplefilter("always")
ref = dict(np.load({str(case_dir("bert-base") / "reference.npz")!r}))
with warnings.catch_warnings(record=True) as caught:
    model = minibert.load({str(case_dir("bert-base"))!r})
    inputs = dict(attention_mask=ref["attention_mask"], token_type_ids=ref["token_type_ids"])
    out = model(ref["input_ids"], **inputs)
    qout = minibert.quantize(model)(ref["input_ids"], **inputs)
gap = np.abs(out.last_hidden_state - ref["last_hidden_state"]).max()
messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
print(len(messages), gap < 1e-4, np.isfinite(qout.last_hidden_state).all())
print(messages[0])
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    count, close, finite, message = result.stdout.split(maxsplit=3)
    assert (count, close, finite) == ("1", "True", "True"), result.stdout
    assert "numba could not be imported" in message


def _broken_layernorm_kernel(out, x, bias, residual, w, b, eps):
    """Numba cannot type this (a module it does not know): a kernel failing on some platform."""
    warnings.warn("never reached", stacklevel=1)
    out[...] = 0.0


def test_a_kernel_that_fails_to_compile_falls_back_alone(monkeypatch):
    model = minibert.load(case_dir("bert-base"))
    ref = load_reference("bert-base")
    expected = model(**model_inputs(ref)).last_hidden_state
    monkeypatch.setattr(layernorm, "_add_layernorm_numba", _broken_layernorm_kernel)
    monkeypatch.setitem(jit._STATE, "warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = model(**model_inputs(ref)).last_hidden_state
        again = model(**model_inputs(ref)).last_hidden_state  # no second warning
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert len(messages) == 1, messages
    assert "failed to compile _broken_layernorm_kernel" in messages[0]
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_array_equal(out, again)
    assert jit.fast_kernels_enabled(), "the other kernels stay fast"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(**model_inputs(ref))


def test_small_forwards_run_numba_kernels_on_one_thread_with_the_same_outputs(monkeypatch):
    """A forward below SERIAL_WORK multiply-adds runs on one Numba thread and one BLAS thread
    (waking the second costs more than it saves there); a larger one on every Numba thread,
    with BLAS on one where the float32 linear kernel calls it from Numba's threads. The outputs
    agree either way, and the caller's thread counts come back afterwards."""
    import numba
    import pytest

    from minibert import nn

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one CPU: there is no second thread to leave out")
    model = minibert.load(case_dir("bert-base"))
    inputs = model_inputs(load_reference("bert-base"))
    model(**inputs)  # the float model counts its work first; the int8 copy must count its own
    qmodel = minibert.quantize(model)
    tokens = int(np.size(inputs["input_ids"]))
    work = tokens * model._work_per_token()
    assert work > 0
    assert qmodel._work_per_token() == pytest.approx(jit.INT8_COST * model._work_per_token())
    seen = []
    layernorm_forward = nn.LayerNorm.forward
    blas = [lib for lib in jit._blas_controller().lib_controllers if lib.user_api == "blas"]
    assert blas, "threadpoolctl finds no BLAS in this process"
    for lib in blas:
        lib.set_num_threads(2)

    def spy(self, *args, **kwargs):
        seen.append((numba.get_num_threads(), *(lib.num_threads for lib in blas)))
        return layernorm_forward(self, *args, **kwargs)

    monkeypatch.setattr(nn.LayerNorm, "forward", spy)
    numba.set_num_threads(2)
    outputs = {}
    for serial in (True, False):  # the float32 model's work just above / at the threshold
        monkeypatch.setattr(jit, "SERIAL_WORK", work + 1 if serial else work)
        seen.clear()
        outputs[serial] = model(**inputs).last_hidden_state
        threads = 1 if serial else 2
        blas_threads = 1 if serial or jit._BLAS["called_from_kernels"] else 2
        assert set(seen) == {(threads,) + (blas_threads,) * len(blas)}, (serial, seen)
        assert numba.get_num_threads() == 2
        assert all(lib.num_threads == 2 for lib in blas)
    # Numba's kernels split rows between threads, never a sum, so they give the same bits;
    # a BLAS may block a product differently for another thread count: float32 sums of C terms
    np.testing.assert_allclose(outputs[True], outputs[False], rtol=0, atol=ATOL_INVARIANT)
    monkeypatch.setattr(jit, "SERIAL_WORK", work)  # int8: a quarter of the work, so one thread
    seen.clear()
    qmodel(**inputs)
    # one Numba thread; BLAS left alone: every linear layer is int8 and calls no BLAS
    assert model._calls_blas()
    assert not qmodel._calls_blas()
    assert set(seen) == {(1,) + (2,) * len(blas)}, seen
