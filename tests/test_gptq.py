"""GPTQ rounding (quant/gptq.py): the Cholesky loop against an independent Optimal Brain
Surgeon reference written here (a fresh inverse Hessian after every column), round-to-nearest
when the Hessian is diagonal, a smaller output error than round-to-nearest on correlated
inputs, and a fixture model quantized, saved and loaded."""

import numpy as np
import pytest

import minibert
from conftest import case_dir, load_reference, model_inputs
from minibert.errors import InputError
from minibert.functional.quantize import dequantize_groups, group_qmax, quantize_groups
from minibert.quant.gptq import DAMPING, gptq_round, input_hessians, quantize_gptq


def obs_reference(w, h, bits, group_size, damping=DAMPING):
    """Optimal Brain Surgeon, column by column, the slow way: keep the inverse Hessian of the
    columns still free, and after fixing column i remove it from that inverse (a Gauss step)
    and push the error onto the free columns by -err / Hinv[i, i] * Hinv[i, :]."""
    w = w.astype(np.float64).copy()
    n, k = w.shape
    h = h.astype(np.float64).copy()
    h[np.diag_indices(k)] += damping * np.mean(np.diag(h))
    hinv = np.linalg.inv(h)
    qmax = group_qmax(bits)
    groups = -(-k // group_size)
    q = np.zeros((n, groups * group_size), np.int8)
    scale = np.ones((n, groups), np.float32)
    for i in range(k):
        g = i // group_size
        if i % group_size == 0:
            s = np.abs(w[:, i : i + group_size].astype(np.float32)).max(axis=1) / np.float32(qmax)
            scale[:, g] = np.where(s > 0, s, np.float32(1.0))
        code = np.clip(
            np.rint(w[:, i].astype(np.float32) * (np.float32(1) / scale[:, g])), -qmax, qmax
        )
        q[:, i] = code
        err = (w[:, i] - code * scale[:, g].astype(np.float64)) / hinv[i, i]
        w -= np.outer(err, hinv[i, :])  # column i itself becomes its code: no longer used
        hinv -= np.outer(hinv[:, i], hinv[i, :]) / hinv[i, i]  # column i leaves the free set
    return q, scale


def correlated_inputs(rng, tokens, k):
    mix = rng.standard_normal((k, k)) * 0.3 + np.eye(k)
    return rng.standard_normal((tokens, k)) @ mix


@pytest.mark.parametrize(("bits", "group_size", "k"), [(4, 8, 24), (4, 16, 20), (8, 8, 16)])
def test_gptq_equals_the_optimal_brain_surgeon_reference(bits, group_size, k):
    rng = np.random.default_rng(k + bits)
    w = rng.standard_normal((12, k)).astype(np.float32)
    x = correlated_inputs(rng, 200, k)
    h = x.T @ x
    q, scale = gptq_round(w, h, bits, group_size)
    q_ref, scale_ref = obs_reference(w, h, bits, group_size)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_allclose(scale, scale_ref, rtol=1e-6)


def test_a_diagonal_hessian_gives_round_to_nearest():
    """With uncorrelated inputs no other column can cancel an error: GPTQ is plain rounding."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 40)).astype(np.float32)
    h = np.diag(rng.uniform(0.5, 2.0, 40))
    q, scale = gptq_round(w, h, 4, 16)
    q_rtn, scale_rtn = quantize_groups(w, 4, 16)
    np.testing.assert_array_equal(q, q_rtn)
    np.testing.assert_array_equal(scale, scale_rtn)


def test_gptq_has_a_smaller_output_error_than_rounding_to_nearest():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((32, 64)).astype(np.float32)
    x = correlated_inputs(rng, 500, 64)
    q, scale = gptq_round(w, x.T @ x, 4, 16)
    q_rtn, scale_rtn = quantize_groups(w, 4, 16)

    def output_error(codes, scales):
        return np.linalg.norm(x @ (w - dequantize_groups(codes, scales, 64)).T)

    assert output_error(q, scale) < 0.8 * output_error(q_rtn, scale_rtn)


def test_an_input_channel_never_fed_is_quantized_to_zero():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 16)).astype(np.float32)
    x = rng.standard_normal((50, 16))
    x[:, 5] = 0.0
    q, _ = gptq_round(w, x.T @ x, 4, 8)
    assert not q[:, 5].any()
    assert q[:, 4].any()


def test_bad_arguments_are_named():
    w = np.ones((4, 16), np.float32)
    with pytest.raises(InputError, match="Hessian"):
        gptq_round(w, np.eye(8), 4, 8)
    with pytest.raises(InputError, match="bits"):
        gptq_round(w, np.eye(16), 3, 8)
    with pytest.raises(InputError, match="wider"):
        gptq_round(w, np.eye(16), 4, 32)


def fixture_batches(name="bert-base"):
    ref = load_reference(name)
    inputs = model_inputs(ref)
    return minibert.load(case_dir(name)), inputs


def test_hessians_cover_every_encoder_linear_and_skip_padding():
    model, inputs = fixture_batches()
    hessians = input_hessians(model, [inputs])
    layers = model.config.num_hidden_layers
    assert len(hessians) == 6 * layers
    # the queries, keys and values read the same input
    np.testing.assert_array_equal(
        hessians["encoder.layers.0.attn.q"], hessians["encoder.layers.0.attn.v"]
    )
    mask = inputs["attention_mask"].astype(bool)
    t = minibert.trace(
        model, inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids")
    )
    x = t["encoder.step.0.ln1"][mask].astype(np.float64)
    np.testing.assert_allclose(hessians["encoder.layers.0.ffn.up"], x.T @ x, rtol=1e-12)
    with pytest.raises(InputError, match="no tokens"):
        input_hessians(model, [{"input_ids": inputs["input_ids"], "attention_mask": 0 * mask}])


def test_a_gptq_model_is_closer_to_float_and_saves_and_loads(tmp_path):
    model, inputs = fixture_batches()
    group = 8
    gptq = quantize_gptq(model, [inputs], bits=4, group_size=group)
    rtn = minibert.quantize(model, bits=4, group_size=group)
    want = model(**inputs).last_hidden_state
    gptq_err = np.abs(gptq(**inputs).last_hidden_state - want).mean()
    rtn_err = np.abs(rtn(**inputs).last_hidden_state - want).mean()
    assert gptq_err < rtn_err
    entry = gptq.config.hf_extra["quantization"]
    assert entry["rounding"] == "gptq"
    assert entry["calibration_tokens"] == int(inputs["attention_mask"].sum())
    gptq.save_pretrained(tmp_path)
    loaded = minibert.load(tmp_path)
    assert loaded.config.hf_extra["quantization"] == entry  # rounding and calibration kept
    np.testing.assert_array_equal(
        loaded(**inputs).last_hidden_state, gptq(**inputs).last_hidden_state
    )
    with pytest.raises(InputError, match="at least one"):
        quantize_gptq(model, [], bits=4, group_size=group)
