"""Distillation losses: finite differences in float64, and torch autograd values stored by the
fixture generator."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_gradients import RTOL_FD, numeric_grad, rel_error

from conftest import FIXTURES
from minibert import functional as F

with np.load(FIXTURES / "distill-losses" / "losses.npz") as _z:
    TORCH = {k: _z[k] for k in _z.files}
RTOL_TORCH = 1e-10  # float64 on both sides: only the order of the sums differs


def check_loss(forward, backward, arrays):
    """Central differences of the scalar loss forward(*arrays) against backward(1, cache)."""
    _, cache = forward(*arrays)
    analytic = backward(1.0, cache)
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    for x, g in zip(arrays, analytic, strict=True):
        numeric = numeric_grad(lambda: float(forward(*arrays)[0]), x)
        assert rel_error(g, numeric) < RTOL_FD


def random_mask(rng, shape):
    mask = (rng.random(shape) < 0.7).astype(np.int64)
    mask.reshape(-1)[0] = 1  # at least one row counts
    return mask


dims = st.integers(1, 5)


# --- the losses against finite differences ------------------------------------------------------
@given(B=dims, T=dims, K=st.integers(2, 7), temp=st.floats(0.5, 4.0), seed=st.integers(0, 2**16))
def test_soft_target_gradient(B, T, K, temp, seed):
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(B, T, K)) * 2, rng.normal(size=(B, T, K)) * 3
    mask = random_mask(rng, (B, T))
    check_loss(lambda s: F.soft_target_forward(s, t, temp, mask), F.soft_target_backward, (s,))


@given(N=dims, C=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_cosine_gradient(N, C, seed):
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(N, C)), rng.normal(size=(N, C))
    mask = random_mask(rng, (N,))
    check_loss(lambda s: F.cosine_forward(s, t, mask), F.cosine_backward, (s,))


@given(B=dims, T=dims, C=dims, seed=st.integers(0, 2**16))
def test_masked_mse_gradient(B, T, C, seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(size=(B, T, C)), rng.normal(size=(B, T, C))
    keep = random_mask(rng, (B, T))[..., None]  # broadcast over C
    check_loss(lambda p: F.masked_mse_forward(p, target, keep), F.masked_mse_backward, (pred,))


@given(B=dims, T=dims, C=dims, C_teacher=dims, seed=st.integers(0, 2**16))
def test_hidden_mse_gradient_with_projection(B, T, C, C_teacher, seed):
    rng = np.random.default_rng(seed)
    h, target = rng.normal(size=(B, T, C)), rng.normal(size=(B, T, C_teacher))
    w, b = rng.normal(size=(C_teacher, C)), rng.normal(size=C_teacher)
    mask = random_mask(rng, (B, T))
    check_loss(
        lambda h, w, b: F.hidden_mse_forward(h, w, b, target, mask),
        F.hidden_mse_backward,
        (h, w, b),
    )


def test_hidden_mse_without_projection_is_masked_mse():
    rng = np.random.default_rng(1)
    h, target = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 3))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    loss, cache = F.hidden_mse_forward(h, None, None, target, mask)
    assert loss == pytest.approx(((h - target) ** 2)[mask == 1].mean())
    dh, dw, db = F.hidden_mse_backward(1.0, cache)
    assert dw is None
    assert db is None
    check_loss(
        lambda h: F.hidden_mse_forward(h, None, None, target, mask),
        lambda d, c: F.hidden_mse_backward(d, c)[0],
        (h,),
    )


@given(B=st.integers(1, 3), H=st.integers(1, 3), T=dims, seed=st.integers(0, 2**16))
def test_attention_mse_gradient(B, H, T, seed):
    rng = np.random.default_rng(seed)
    s = F.softmax_forward(rng.normal(size=(B, H, T, T)))[0]
    t = F.softmax_forward(rng.normal(size=(B, H, T, T)))[0]
    mask = random_mask(rng, (B, T))
    check_loss(lambda s: F.attention_mse_forward(s, t, mask), F.attention_mse_backward, (s,))


# --- the losses against torch autograd ----------------------------------------------------------
def test_losses_match_torch():
    a, mask = TORCH, TORCH["attention_mask"]
    checks = {
        "soft_target": (
            F.soft_target_forward(
                a["student_logits"], a["teacher_logits"], float(a["temperature"]), mask
            ),
            F.soft_target_backward,
            ("soft_target_grad",),
        ),
        "cosine": (
            F.cosine_forward(a["student_hidden"], a["teacher_hidden_same_width"], mask),
            F.cosine_backward,
            ("cosine_grad",),
        ),
        "hidden_mse": (
            F.hidden_mse_forward(
                a["student_hidden"],
                a["projection_weight"],
                a["projection_bias"],
                a["teacher_hidden"],
                mask,
            ),
            F.hidden_mse_backward,
            ("hidden_mse_grad_student", "hidden_mse_grad_weight", "hidden_mse_grad_bias"),
        ),
        "attention_mse": (
            F.attention_mse_forward(a["student_probs"], a["teacher_probs"], mask),
            F.attention_mse_backward,
            ("attention_mse_grad",),
        ),
    }
    for name, ((loss, cache), backward, grad_keys) in checks.items():
        np.testing.assert_allclose(loss, a[f"{name}_loss"], rtol=RTOL_TORCH, err_msg=name)
        grads = backward(1.0, cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        for key, g in zip(grad_keys, grads, strict=True):
            np.testing.assert_allclose(g, a[key], rtol=RTOL_TORCH, atol=1e-15, err_msg=key)


# --- properties ---------------------------------------------------------------------------------
def test_soft_target_is_zero_for_the_teacher_itself_and_ce_minus_entropy_otherwise():
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)) * 2
    assert F.soft_target_forward(t, t, 3.0)[0] == pytest.approx(0.0, abs=1e-12)
    T = 2.0
    p_t = np.exp(F.log_softmax(t / T))
    cross = -(p_t * F.log_softmax(s / T)).sum(-1).mean()
    entropy = -(p_t * np.log(p_t)).sum(-1).mean()
    loss = F.soft_target_forward(s, t, T)[0]
    assert loss == pytest.approx(T * T * (cross - entropy))


def test_padded_rows_count_nowhere():
    rng = np.random.default_rng(3)
    B, H, T, C, V = 2, 2, 4, 3, 5
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]])
    s, t = rng.normal(size=(B, T, V)), rng.normal(size=(B, T, V))
    h, g = rng.normal(size=(B, T, C)), rng.normal(size=(B, T, C))
    p, q = rng.random((B, H, T, T)), rng.random((B, H, T, T))
    losses = {
        "soft": lambda s, h, p: F.soft_target_forward(s, t, 2.0, mask),
        "cosine": lambda s, h, p: F.cosine_forward(h, g, mask),
        "hidden": lambda s, h, p: F.hidden_mse_forward(h, None, None, g, mask),
        "attention": lambda s, h, p: F.attention_mse_forward(p, q, mask),
    }
    s2, h2, p2 = s.copy(), h.copy(), p.copy()
    s2[mask == 0] = 100.0  # padded tokens hold anything
    h2[mask == 0] = -7.0
    for row in range(B):  # padded queries and padded keys
        p2[row][:, mask[row] == 0] = 0.5
        p2[row][:, :, mask[row] == 0] = 0.5
    for name, f in losses.items():
        assert f(s, h, p)[0] == pytest.approx(f(s2, h2, p2)[0]), name
    dsoft = F.soft_target_backward(1.0, losses["soft"](s, h, p)[1])
    assert not dsoft[mask == 0].any()
    dprobs = F.attention_mse_backward(1.0, losses["attention"](s, h, p)[1])
    assert not dprobs[1, :, :, 1:].any()
    assert not dprobs[1, :, 1:].any()


def test_a_loss_over_no_row_is_zero():
    x = np.ones((2, 3, 4))
    none = np.zeros((2, 3), np.int64)
    for (loss, cache), backward in (
        (F.soft_target_forward(x, 2 * x, 2.0, none), F.soft_target_backward),
        (F.cosine_forward(x, -x, none), F.cosine_backward),
        (
            F.hidden_mse_forward(x, None, None, 2 * x, none),
            lambda d, c: F.hidden_mse_backward(d, c)[0],
        ),
    ):
        assert loss == 0.0
        dx = backward(1.0, cache)
        assert dx.shape == x.shape
        assert not dx.any()
