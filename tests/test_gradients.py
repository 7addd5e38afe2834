"""Backward passes checked two ways: central finite differences in float64 (every op with
hypothesis-drawn shapes, and every parameter of every model), and torch autograd gradients
stored by the fixture generator (rtol 1e-4, atol 1e-5)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minibert
from conftest import FIXTURES, META, case_dir, load_reference
from minibert import functional as F
from minibert.config import IGNORE_INDEX

RTOL_FD = 1e-6  # relative error of a float64 central difference with eps 1e-6
TARGET_KEYS = (
    "labels",
    "next_sentence_label",
    "sentence_order_label",
    "start_positions",
    "end_positions",
)
INPUT_GRAD = "inputs_embeds_grad"
TRAINING_CASES = sorted(n for n in META["cases"] if (FIXTURES / n / "training.npz").is_file())


def rel_error(a, b):
    # The floor keeps a gradient that is ~0 by symmetry (LayerNorm over C = 2) from turning the
    # central difference's rounding into a large relative error: (f(x+h) - f(x-h)) / 2h loses
    # about eps |f| / h = 2.2e-16 * 5 / 1e-6 ~ 1e-9 for the losses here (|f| up to ~5), so a
    # floor of 1e-2 keeps that noise near 1e-7, under RTOL_FD; a wrong term is still O(1).
    return np.abs(a - b).max() / max(np.abs(a).max(), np.abs(b).max(), 1e-2)


def numeric_grad(f, x, eps=1e-6):
    """Central differences of the scalar f() with respect to every element of x (in place)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def check_op(forward, backward, arrays, rng):
    """Differentiate sum(forward(*arrays) * dout) (llm.c's fakeloss) against backward."""
    out, cache = forward(*arrays)
    dout = rng.normal(size=out.shape)
    analytic = backward(dout, cache)
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    for x, g in zip(arrays, analytic, strict=False):
        numeric = numeric_grad(lambda: float((forward(*arrays)[0] * dout).sum()), x)
        assert rel_error(g, numeric) < RTOL_FD


dims = st.integers(1, 5)


@given(B=dims, T=dims, I=dims, O=dims, seed=st.integers(0, 2**16))
def test_linear(B, T, I, O, seed):  # noqa: E741
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(B, T, I)), rng.normal(size=(O, I)), rng.normal(size=O)
    check_op(F.linear_forward, F.linear_backward, (x, w, b), rng)


@given(N=dims, C=st.integers(2, 7), seed=st.integers(0, 2**16))
def test_layernorm(N, C, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(N, C)), rng.normal(size=C), rng.normal(size=C)
    check_op(
        lambda x, w, b: F.layernorm_forward(x, w, b, 1e-5), F.layernorm_backward, (x, w, b), rng
    )


@given(N=dims, K=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_softmax(N, K, seed):
    rng = np.random.default_rng(seed)
    check_op(F.softmax_forward, F.softmax_backward, (rng.normal(size=(N, K)) * 3,), rng)


@pytest.mark.parametrize("name", sorted(F.ACTIVATION_FORWARD))
def test_activations(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # relu's kink at 0 has no derivative
    check_op(
        lambda x: F.activation_forward(name, x),
        lambda d, c: F.activation_backward(name, d, c),
        (x,),
        rng,
    )


@given(
    B=st.integers(1, 3),
    H=st.integers(1, 3),
    T=st.integers(1, 5),
    D=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_attention_with_padding(B, H, T, D, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(B, H, T, D)) for _ in range(3))
    mask = (rng.random((B, T)) < 0.7).astype(np.int64)
    mask[:, 0] = 1
    bias = F.padding_mask_bias(mask, np.float64)

    def forward(q, k, v):
        ctx, _, cache = F.attention_forward(q, k, v, bias)
        return ctx, cache

    check_op(forward, F.attention_backward, (q, k, v), rng)


def test_attention_dropout_uses_the_same_mask():
    rng = np.random.default_rng(3)
    q, k, v = (rng.normal(size=(2, 2, 4, 3)) for _ in range(3))
    state = np.random.default_rng(7).bit_generator.state

    def forward(q, k, v):
        drop_rng = np.random.default_rng()
        drop_rng.bit_generator.state = state  # the same dropout mask on every call
        ctx, _, cache = F.attention_forward(q, k, v, None, 0.3, drop_rng)
        return ctx, cache

    check_op(forward, F.attention_backward, (q, k, v), rng)


def test_embedding_scatter_add_and_padding_row():
    rng = np.random.default_rng(4)
    table = rng.normal(size=(6, 3))
    ids = np.array([[1, 2, 1], [0, 5, 1]])
    out, cache = F.embedding_forward(ids, table)
    dout = rng.normal(size=out.shape)
    dtable = F.embedding_backward(dout, cache)
    numeric = numeric_grad(lambda: float((F.embedding_forward(ids, table)[0] * dout).sum()), table)
    np.testing.assert_allclose(dtable, numeric, atol=1e-8)
    np.testing.assert_allclose(F.embedding_backward(dout, cache, padding_idx=0)[0], 0.0)


@given(N=dims, K=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_cross_entropy_with_ignored_rows(N, K, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, K)) * 2
    labels = rng.integers(0, K, N)
    labels[rng.random(N) < 0.3] = IGNORE_INDEX
    loss, cache = F.cross_entropy_forward(logits, labels)
    numeric = numeric_grad(lambda: float(F.cross_entropy_forward(logits, labels)[0]), logits)
    assert rel_error(F.cross_entropy_backward(1.0, cache), numeric) < RTOL_FD or (
        (labels == IGNORE_INDEX).all() and loss == 0
    )


def test_cross_entropy_value():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    loss, _ = F.cross_entropy_forward(logits, np.array([0, IGNORE_INDEX]))
    expected = -np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1)))
    assert loss == pytest.approx(expected)


def test_mse():
    rng = np.random.default_rng(5)
    pred, target = rng.normal(size=(4, 1)), rng.normal(size=(4, 1))
    loss, cache = F.mse_forward(pred, target)
    assert loss == pytest.approx(((pred - target) ** 2).mean())
    numeric = numeric_grad(lambda: float(F.mse_forward(pred, target)[0]), pred)
    np.testing.assert_allclose(F.mse_backward(1.0, cache), numeric, rtol=1e-6)


def test_bce_with_logits():
    """torch's BCEWithLogitsLoss by its definition, stable at large |logits|, and its gradient."""
    rng = np.random.default_rng(6)
    logits, targets = rng.normal(size=(4, 3)) * 3, rng.integers(0, 2, (4, 3)).astype(float)
    loss, cache = F.bce_with_logits_forward(logits, targets)
    p = 1 / (1 + np.exp(-logits))
    assert loss == pytest.approx(-(targets * np.log(p) + (1 - targets) * np.log(1 - p)).mean())
    numeric = numeric_grad(lambda: float(F.bce_with_logits_forward(logits, targets)[0]), logits)
    np.testing.assert_allclose(F.bce_with_logits_backward(1.0, cache), numeric, rtol=1e-6)
    huge, _ = F.bce_with_logits_forward(np.array([[1000.0, -1000.0]]), np.array([[0.0, 1.0]]))
    assert huge == pytest.approx(1000.0)  # log(1 + e^1000) without overflow


# --- whole models ---------------------------------------------------------------------------
def model_batch(case):
    ref = load_reference(case)
    with np.load(FIXTURES / case / "training.npz") as z:
        train = {k: z[k] for k in z.files}
    inputs = {
        "input_ids": ref["input_ids"],
        "attention_mask": ref["attention_mask"],
        "token_type_ids": ref.get("token_type_ids"),
    }
    targets = {k: train[k] for k in TARGET_KEYS if k in train}
    return inputs, targets, train


@pytest.mark.parametrize("case", TRAINING_CASES)
def test_gradients_match_torch_autograd(case):
    inputs, targets, train = model_batch(case)
    model = minibert.load(case_dir(case)).train(dropout=False)
    out = model(**inputs, **targets)
    np.testing.assert_allclose(out.loss, train["loss"], rtol=1e-5)
    model.zero_grad()
    model.backward()
    grads = model.gradients()
    expected = {k for k in train if k not in TARGET_KEYS and k not in ("loss", INPUT_GRAD)}
    assert set(grads) == expected  # every parameter, tied ones once under the checkpoint name
    for name in sorted(expected):
        np.testing.assert_allclose(grads[name], train[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # the gradient with respect to the looked-up word vectors (transformers' inputs_embeds)
    np.testing.assert_allclose(model.inputs_embeds_grad, train[INPUT_GRAD], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", TRAINING_CASES)
def test_model_gradients_by_finite_differences(case):
    """For each parameter, the derivative of the float64 loss along a random direction."""
    inputs, targets, _ = model_batch(case)
    model = minibert.load(case_dir(case), dtype="float64").train(dropout=False)
    model(**inputs, **targets)
    model.zero_grad()
    model.backward()
    rng = np.random.default_rng(0)
    eps = 1e-5
    for path, param in model.named_parameters():
        module, key = model._resolve(path)
        direction = rng.normal(size=param.shape)
        padding_idx = getattr(module, "padding_idx", None)
        if padding_idx is not None:  # torch's padding row gets no gradient by definition
            direction[padding_idx] = 0.0
        analytic = float((module.grads[key] * direction).sum())

        def loss_at(step, param=param, direction=direction):
            param += step * direction
            value = float(model(**inputs, **targets).loss)
            param -= step * direction
            return value

        # the five-point difference: its truncation error is O(eps^4), where the central
        # difference's O(eps^2) term reached 1.8e-9 on a 3-row regression loss (albert-regression)
        numeric = (8 * (loss_at(eps) - loss_at(-eps)) - (loss_at(2 * eps) - loss_at(-2 * eps))) / (
            12 * eps
        )
        assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3), path


def test_backward_needs_a_training_forward_with_labels():
    inputs, targets, _ = model_batch("bert-mlm")
    model = minibert.load(case_dir("bert-mlm"))
    model(**inputs, **targets)
    with pytest.raises(RuntimeError, match="model.train"):
        model.backward()
    model.train()
    model(**inputs)
    with pytest.raises(RuntimeError, match="labels="):
        model.backward()


def test_gradients_accumulate_until_zero_grad():
    inputs, targets, train = model_batch("bert-seqcls")
    model = minibert.load(case_dir("bert-seqcls")).train(dropout=False)
    for _ in range(2):
        model(**inputs, **targets)
        model.backward()
    name = "classifier.weight"
    np.testing.assert_allclose(model.gradients()[name], 2 * train[name], rtol=1e-4, atol=1e-5)
    model.zero_grad()
    assert not model.gradients()[name].any()


def test_albert_shared_layer_sums_its_uses():
    """ALBERT applies one layer at several steps: its gradient is the sum over the uses, which
    matches torch (test above); here we check the stack of caches emptied exactly."""
    inputs, targets, _ = model_batch("albert-pretraining")
    model = minibert.load(case_dir("albert-pretraining")).train(dropout=False)
    model(**inputs, **targets)
    model.backward()
    assert all(not m._caches for m in model.modules())


def test_untying_after_zero_grad_separates_the_gradients():
    model = minibert.load(case_dir("bert-mlm")).train(dropout=False)
    model.zero_grad()
    assert model.mlm.decoder.grads["weight"] is model.embeddings.word.grads["weight"]
    model.mlm.decoder.params["weight"] = model.embeddings.word.params["weight"].copy()
    model.zero_grad()
    assert model.mlm.decoder.grads["weight"] is not model.embeddings.word.grads["weight"]


@pytest.mark.parametrize("case", ["bert-mlm", "bert-pretraining", "albert-pretraining"])
def test_the_masked_lm_loss_backpropagates_through_its_labelled_rows_alone(case):
    """The loss's own gradient goes through the head by rows (MaskedLMHead.backward_rows); the
    same gradient as a full (B, T, V) array takes the full path: the two agree, and the
    positions the loss ignores get exactly zero."""
    inputs, targets, _ = model_batch(case)
    model = minibert.load(case_dir(case)).train(dropout=False)
    head = model.mlm
    parts = {"transform": head.transform, "ln": head.ln, "decoder": head.decoder}

    def run(backward):
        model.zero_grad()
        out = model(**inputs, **targets)
        dx = backward(out, model._loss_state["mlm"])
        model.clear_caches()
        grads = {f"{n}.{k}": g.copy() for n, m in parts.items() for k, g in m.grads.items()}
        return dx, grads

    dx_rows, by_rows = run(lambda out, state: head.mlm_backward(state, None))
    dx_full, in_full = run(lambda out, state: head.backward(F.cross_entropy_backward(
        1.0, state[0]).reshape(state[1])))  # fmt: skip
    assert not dx_rows[targets["labels"] == -100].any()
    np.testing.assert_allclose(dx_rows, dx_full, rtol=1e-5, atol=1e-7)
    for name, grad in in_full.items():
        np.testing.assert_allclose(by_rows[name], grad, rtol=1e-5, atol=1e-7, err_msg=name)
