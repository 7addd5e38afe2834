"""Group-wise low-bit quantisation (quant/groupwise.py): int4 nibble packing, the group scales,
torch's arithmetic for the same scheme on fixture models (tests/fixtures/generate_lowbit.py),
the Numba dequantisation against the numpy reference, save/load round trips, and the errors."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors import safe_open

import minibert
from conftest import FIXTURES, case_dir, load_reference, model_inputs
from minibert.errors import ConfigError, InputError
from minibert.functional.quantize import (
    dequantize_groups,
    group_qmax,
    pack_int4,
    quantize_groups,
    unpack_int4,
)
from minibert.kernels import use_fast_kernels
from minibert.kernels.lowbit import dequantize_weight_fast
from minibert.nn import Linear
from minibert.quant import GroupQuantEmbedding, GroupQuantLinear, is_quantized, quantization_of
from minibert.quant.groupwise import decode_reference, encode

EPS32 = float(np.finfo(np.float32).eps)
# name in the fixture -> (bits, group_size, embedding_bits or None for a float32 word table)
SCHEMES = {"b4g16": (4, 16, None), "b4g16e": (4, 16, 4), "b4g8e": (4, 8, 4),
           "b8g16e": (8, 16, 8), "b4g32": (4, 32, None), "b8g16t4": (8, 16, 4)}  # fmt: skip
OUTPUT = {"bert-base": "last_hidden_state", "bert-mlm": "logits"}


@pytest.fixture(autouse=True)
def fast_kernels_restored():
    previous = use_fast_kernels(True)
    yield
    use_fast_kernels(previous)


def lowbit_reference(case: str) -> dict:
    with np.load(FIXTURES / "lowbit" / f"{case}.npz") as z:
        return {k: z[k] for k in z.files}


# --- nibbles ----------------------------------------------------------------------------------
def test_pack_int4_is_low_nibble_first_in_twos_complement():
    q = np.array([[-8, 7, -1, 0, 1]], np.int8)
    packed = pack_int4(q)
    assert packed.dtype == np.uint8
    # byte 0: -8 (0x8) low, 7 (0x7) high; byte 1: -1 (0xF) low, 0 high; byte 2: 1 low, pad 0
    np.testing.assert_array_equal(packed, [[0x78, 0x0F, 0x01]])


@given(
    hnp.arrays(
        np.int8,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9),
        elements=st.integers(-8, 7),
    )
)
def test_unpack_int4_undoes_pack_for_every_code_and_width(q):
    packed = pack_int4(q)
    assert packed.shape == (*q.shape[:-1], (q.shape[-1] + 1) // 2)
    np.testing.assert_array_equal(unpack_int4(packed, q.shape[-1]), q)


def test_every_byte_unpacks_to_its_two_nibbles():
    every = np.arange(256, dtype=np.uint8)[None, :]
    codes = unpack_int4(every, 512).reshape(256, 2).astype(int)
    low, high = np.arange(256) % 16, np.arange(256) // 16
    np.testing.assert_array_equal(codes[:, 0], np.where(low > 7, low - 16, low))
    np.testing.assert_array_equal(codes[:, 1], np.where(high > 7, high - 16, high))
    np.testing.assert_array_equal(pack_int4(codes.reshape(1, 512).astype(np.int8)), every)


# --- the group scales ------------------------------------------------------------------------
@settings(deadline=None)
@given(
    w=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 40)),
        elements=st.floats(-1e3, 1e3, width=32),
    ),
    bits=st.sampled_from([4, 8]),
    group_size=st.integers(1, 17),
)
def test_group_scales_and_rounding(w, bits, group_size):
    q, scale = quantize_groups(w, bits, group_size)
    n, k = w.shape
    groups = -(-k // group_size)
    assert q.shape == (n, groups * group_size)
    assert scale.shape == (n, groups)
    qmax = group_qmax(bits)
    for row in range(n):  # one group at a time, as the definition reads
        for g in range(groups):
            values = w[row, g * group_size : (g + 1) * group_size]
            expected = np.float32(np.abs(values).max()) / np.float32(qmax)
            if expected < np.finfo(np.float32).tiny:
                expected = np.float32(1.0)
            assert scale[row, g] == expected
    assert np.abs(q.astype(int)).max() <= qmax
    assert (q[:, k:] == 0).all()  # the padding of a last, shorter group
    back = dequantize_groups(q, scale, k)
    step = np.repeat(scale, group_size, axis=1)[:, :k]
    assert np.all(np.abs(back - w) <= step * 0.5 * (1 + 4 * EPS32) + 1e-30)


def test_an_all_zero_group_gets_scale_one_and_zero_codes():
    w = np.zeros((2, 8), np.float32)
    w[1, :4] = [0.6, -1.0, 0.2, 0.0]
    q, scale = quantize_groups(w, 4, 4)
    np.testing.assert_array_equal(scale, np.float32([[1, 1], [np.float32(1) / np.float32(7), 1]]))
    np.testing.assert_array_equal(q[1, :4], [4, -7, 1, 0])  # 4.2 -> 4, 1.4 -> 1
    assert (q[0] == 0).all()
    assert (q[1, 4:] == 0).all()


# --- against torch's arithmetic (tests/fixtures/generate_lowbit.py) --------------------------
@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_codes_scales_and_bytes_equal_torchs(name):
    bits, group_size, _ = SCHEMES[name]
    ref = lowbit_reference("bert-base")
    weight = minibert.load(case_dir("bert-base")).encoder.layers[0].ffn.down.params["weight"]
    assert weight.shape[1] == 37  # a padded last group
    q, scale = quantize_groups(weight, bits, group_size)
    np.testing.assert_array_equal(q, ref[f"{name}.codes"])
    np.testing.assert_array_equal(scale, ref[f"{name}.scales"])
    codes, _ = encode(weight, bits, group_size)
    np.testing.assert_array_equal(codes, ref[f"{name}.packed"] if bits == 4 else q)


@pytest.mark.parametrize("case", sorted(OUTPUT))
@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_quantized_model_equals_torch_on_the_rounded_weights(case, name):
    bits, group_size, table_bits = SCHEMES[name]
    model = minibert.load(case_dir(case))
    qmodel = minibert.quantize(
        model,
        bits=bits,
        group_size=group_size,
        embeddings=table_bits is not None,
        embedding_bits=table_bits,
    )
    out = getattr(qmodel(**model_inputs(load_reference(case))), OUTPUT[case])
    expected = lowbit_reference(case)[f"{name}.{OUTPUT[case]}"]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-4)


# --- the fast path against the reference ------------------------------------------------------
@settings(deadline=None, max_examples=30)
@given(
    n=st.integers(1, 40),
    k=st.integers(1, 70),
    bits=st.sampled_from([4, 8]),
    group_size=st.integers(1, 24),
    seed=st.integers(0, 2**32 - 1),
)
def test_numba_dequantisation_equals_the_reference_bit_for_bit(n, k, bits, group_size, seed):
    w = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32)
    codes, scale = encode(w, bits, group_size)
    reference = decode_reference(codes, scale, bits, group_size, k)
    fast = dequantize_weight_fast(codes, scale, bits, group_size, k)
    assert fast is not None, "the Numba kernel ran"
    np.testing.assert_array_equal(fast, reference)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("add_bias", [True, False])
def test_linear_fast_and_reference_agree_within_the_float32_product_bound(bits, add_bias):
    rng = np.random.default_rng(bits)
    m, k, n, group_size = 37, 200, 96, 64  # 200 = 3 groups of 64 and a padded one
    linear = Linear(k, n)
    linear.params["weight"] = rng.standard_normal((n, k)).astype(np.float32)
    linear.params["bias"] = rng.standard_normal(n).astype(np.float32)
    layer = GroupQuantLinear.from_linear(linear, bits, group_size)
    x = rng.standard_normal((m, k)).astype(np.float32)
    fast = layer.forward(x, add_bias=add_bias)
    use_fast_kernels(False)
    reference = layer.forward(x, add_bias=add_bias)
    w = layer.dequantized_weight()
    # each side's sum of k float32 products is within k * eps / 2 * sum |x w| of the exact one
    # (plus one rounding for the bias): the two within twice that
    magnitude = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64).T
    if add_bias:
        magnitude += np.abs(layer.params["bias"])
    bound = (k + 1) * EPS32 * magnitude
    assert np.all(np.abs(fast.astype(np.float64) - reference) <= bound)
    exact = x.astype(np.float64) @ w.astype(np.float64).T
    if add_bias:
        exact += layer.params["bias"]
    assert np.all(np.abs(reference - exact) <= bound / 2)


def test_the_model_runs_the_same_with_either_kernel_set():
    case = "bert-mlm"
    model = minibert.load(case_dir(case))
    qmodel = minibert.quantize(model, bits=4, group_size=16)
    inputs = model_inputs(load_reference(case))
    fast = qmodel(**inputs).logits
    use_fast_kernels(False)
    np.testing.assert_allclose(qmodel(**inputs).logits, fast, rtol=0, atol=1e-4)


# --- the embedding table ----------------------------------------------------------------------
@pytest.mark.parametrize("bits", [4, 8])
def test_embedding_stays_low_bit_and_dequantises_the_rows_it_reads(bits):
    model = minibert.load(case_dir("bert-base"))
    qmodel = minibert.quantize(model, bits=bits, group_size=16)
    table = qmodel.embeddings.word
    assert isinstance(table, GroupQuantEmbedding)
    vocab, dim = model.embeddings.word.params["weight"].shape
    codes = table.params["weight"]
    assert codes.dtype == (np.uint8 if bits == 4 else np.int8)
    assert codes.shape == (vocab, dim // 2 if bits == 4 else dim)
    assert table.params["weight_scale"].shape == (vocab, dim // 16)
    ids = np.array([[5, 98, 5], [0, 1, 2]])
    rows = table.forward(ids)
    whole = decode_reference(codes, table.params["weight_scale"], bits, 16, dim)
    np.testing.assert_array_equal(rows, whole[ids])


def test_tied_decoder_shares_the_low_bit_table_and_its_scales():
    qmodel = minibert.quantize(minibert.load(case_dir("bert-mlm")), bits=4, group_size=16)
    assert isinstance(qmodel.mlm.decoder, GroupQuantLinear)
    for key in ("weight", "weight_scale"):
        assert qmodel.mlm.decoder.params[key] is qmodel.embeddings.word.params[key]


def test_without_embeddings_the_table_and_tied_decoder_stay_float():
    qmodel = minibert.quantize(
        minibert.load(case_dir("bert-mlm")), bits=4, group_size=16, embeddings=False
    )
    assert qmodel.embeddings.word.params["weight"].dtype == np.float32
    assert qmodel.mlm.decoder.params["weight"] is qmodel.embeddings.word.params["weight"]


# --- save and load ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "bits", "group_size", "table_bits"),
    [
        ("bert-mlm", 4, 16, 4),
        ("bert-base", 8, 12, 8),
        ("albert-pretraining", 4, 8, 4),
        ("bert-mlm", 8, 16, 4),
    ],
)
def test_save_and_load_round_trip_exactly(case, bits, group_size, table_bits, tmp_path):
    qmodel = minibert.quantize(
        minibert.load(case_dir(case)), bits=bits, group_size=group_size, embedding_bits=table_bits
    )
    qmodel.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    block = config["quantization"]
    assert block["method"] == "minibert-groupwise"
    assert (block["bits"], block["group_size"]) == (bits, group_size)
    assert (block["embeddings"], block["embedding_bits"]) == (True, table_bits)
    with safe_open(str(tmp_path / "model.safetensors"), "np") as f:
        names = set(f.keys())
        code_dtype = np.uint8 if bits == 4 else np.int8
        coded = [n for n in names if f.get_tensor(n).dtype == code_dtype]
        table = [n for n in names if n.endswith("word_embeddings.weight")]
        assert f.get_tensor(table[0]).dtype == (np.uint8 if table_bits == 4 else np.int8)
    assert coded
    for name in coded:
        assert name + "_scale" in names, f"{name} is stored without its scales"
    loaded = minibert.load(tmp_path)
    assert is_quantized(loaded)
    saved = dict(qmodel.named_parameters())
    for path, array in loaded.named_parameters():
        assert array.dtype == saved[path].dtype, path
        np.testing.assert_array_equal(array, saved[path], err_msg=path)
    inputs = model_inputs(load_reference(case))
    a, b = qmodel(**inputs), loaded(**inputs)
    for field in ("last_hidden_state", "logits", "prediction_logits"):
        if getattr(a, field, None) is not None:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_int4_file_is_smaller_than_int8(tmp_path):
    model = minibert.load(case_dir("bert-base"))
    minibert.quantize(model).save_pretrained(tmp_path / "int8")
    minibert.quantize(model, bits=4, group_size=16).save_pretrained(tmp_path / "int4")
    int8 = (tmp_path / "int8" / "model.safetensors").stat().st_size
    int4 = (tmp_path / "int4" / "model.safetensors").stat().st_size
    assert int4 < int8, (int4, int8)


# --- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bits": 3, "group_size": 16}, "bits must be 4 or 8"),
        ({"bits": 2}, "bits must be 4 or 8"),
        ({"bits": 4}, "pass group_size"),
        ({"bits": 8, "embedding_bits": 4}, "pass group_size"),
        ({"bits": 8, "group_size": 16, "embedding_bits": 2}, "embedding_bits must be 4 or 8"),
        ({"bits": 4, "group_size": 0}, "positive integer"),
        ({"bits": 4, "group_size": 2.5}, "positive integer"),
        ({"bits": 8, "group_size": 64}, "wider than the 32 input channels"),
    ],
)
def test_quantize_refuses_bad_schemes(kwargs, message):
    model = minibert.load(case_dir("bert-base"))
    with pytest.raises(InputError, match=message):
        minibert.quantize(model, **kwargs)


def test_quantized_model_refuses_training_and_requantizing():
    qmodel = minibert.quantize(minibert.load(case_dir("bert-base")), bits=4, group_size=16)
    with pytest.raises(InputError, match="already quantized"):
        minibert.quantize(qmodel, bits=4, group_size=16)
    qmodel.train()
    with pytest.raises(RuntimeError, match="inference only"):
        qmodel(**model_inputs(load_reference("bert-base")))


def test_checkpoint_with_a_bad_quantization_block_is_refused(tmp_path):
    minibert.quantize(minibert.load(case_dir("bert-base")), bits=4, group_size=16).save_pretrained(
        tmp_path
    )
    config_file = tmp_path / "config.json"
    config = json.loads(config_file.read_text())
    config["quantization"]["bits"] = 3
    config_file.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="bits must be 4 or 8"):
        minibert.load(tmp_path)
    config["quantization"]["bits"] = 8  # the stored codes are packed int4, not int8
    config_file.write_text(json.dumps(config))
    with pytest.raises(minibert.CheckpointError, match="shape|dtype"):
        minibert.load(tmp_path)
    assert quantization_of(minibert.load(case_dir("bert-base")).config) is None


@pytest.mark.parametrize(("bits", "group_size"), [(4, 8), (4, 32), (8, 16)])
def test_parameter_counts_are_the_float_models(bits, group_size):
    """Packed int4 codes (two a byte, padded to whole groups) count as the weights they stand
    for, and scales count as none: the count is the float model's, component by component."""
    model = minibert.load(case_dir("bert-mlm"))
    q = minibert.quantize(model, bits=bits, group_size=group_size, embeddings=True)
    assert q.parameter_counts() == model.parameter_counts()


def test_a_layer_keeps_its_decoded_weight_until_its_codes_change():
    rng = np.random.default_rng(5)
    linear = Linear(48, 8)
    linear.params["weight"] = rng.standard_normal((8, 48)).astype(np.float32)
    layer = GroupQuantLinear.from_linear(linear, 4, 16)
    x = rng.standard_normal((3, 48)).astype(np.float32)
    first = layer.dequantized_weight()
    assert layer.dequantized_weight() is first  # decoded once, kept
    y = layer.forward(x)
    use_fast_kernels(False)  # the reference decoding: decoded again, the same floats
    again = layer.dequantized_weight()
    assert again is not first
    np.testing.assert_array_equal(again, first)
    use_fast_kernels(True)
    codes, scale = encode(-linear.params["weight"], 4, 16)  # new codes: decoded again
    layer.params["weight"], layer.params["weight_scale"] = codes, scale
    np.testing.assert_array_equal(layer.dequantized_weight(), -first)
    layer.params["weight"], layer.params["weight_scale"] = encode(linear.params["weight"], 4, 16)
    kept = layer.dequantized_weight()
    layer.keep_decoded = False  # decode on every call, keep only the codes
    assert layer.dequantized_weight() is not kept
    assert layer.dequantized_weight() is not layer.dequantized_weight()
    assert layer._decoded[3] is None  # the kept copy is let go
    np.testing.assert_array_equal(layer.forward(x), y)
