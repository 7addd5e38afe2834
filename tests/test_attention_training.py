"""The training attention kernels (kernels/attention_training.py) against the readable numpy
code of functional/attention.py, which the same functions run with the kernels off."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import assert_within
from minibert import functional as F
from minibert.kernels import jit
from minibert.kernels.attention_training import attention_backward_fused, attention_forward_fused


def _reference(fn, *args):
    with jit.kernels_for_call("reference"):
        return fn(*args)


def _case(B, H, T, D, padded, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(B, H, T, D)).astype(np.float32) for _ in range(3))
    mask = np.ones((B, T), np.int64)
    if padded:
        mask[:, rng.integers(1, T + 1, B)[0] :] = 0  # padding at the end of every row
        mask[0] = 0 if B > 1 else mask[0]  # a row with no real key: uniform weights
    return q, k, v, F.padding_mask_bias(mask, np.float32)


@given(
    B=st.integers(1, 3),
    H=st.integers(1, 3),
    T=st.sampled_from([1, 2, 5, 6, 7, 16, 17, 33]),
    D=st.sampled_from([1, 3, 8, 16, 20, 32]),
    padded=st.booleans(),
    dropout=st.sampled_from([0.0, 0.3]),
    outside=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_forward_and_backward_match_the_numpy_code(B, H, T, D, padded, dropout, outside, seed):
    q, k, v, bias = _case(B, H, T, D, padded, seed)
    ctx, probs_used, cache = F.attention_forward(
        q, k, v, bias, dropout, np.random.default_rng(seed)
    )
    ctx_ref, probs_ref, cache_ref = _reference(
        F.attention_forward, q, k, v, bias, dropout, np.random.default_rng(seed)
    )
    # the same draws from the same seed: the same dropout mask, exactly
    if dropout:
        np.testing.assert_array_equal(cache[4], cache_ref[4])
    # softmax in both is the masked softmax kernel's arithmetic; scores differ by the order of
    # D float32 products, the context by the order of T (eps32 per term, relative to |terms|)
    eps32 = float(np.finfo(np.float32).eps)
    score_size = np.abs(q) @ np.abs(k).transpose(0, 1, 3, 2) * D**-0.5  # (B, H, T, T)
    assert_within(probs_used, probs_ref, 4 * D * eps32 * score_size.max() + 1e-6, "probs")
    ctx_size = np.abs(probs_ref) @ np.abs(v)
    assert_within(ctx, ctx_ref, 4 * T * eps32 * ctx_size + 1e-5 * np.abs(v).max(), "ctx")

    rng = np.random.default_rng(seed + 1)
    dctx = rng.normal(size=q.shape).astype(np.float32)
    dprobs = rng.normal(size=(B, H, T, T)).astype(np.float32) if outside else None
    # both backwards on the kernel's cache, so that only their arithmetic differs
    dq, dk, dv = F.attention_backward(dctx, cache, dprobs)
    dq_ref, dk_ref, dv_ref = _reference(F.attention_backward, dctx, cache, dprobs)
    bound_dq, bound_dk, bound_dv = _backward_bounds(dctx, cache, dprobs)
    assert_within(dv, dv_ref, bound_dv, "dv")
    assert_within(dq, dq_ref, bound_dq, "dq")
    assert_within(dk, dk_ref, bound_dk, "dk")


def _backward_bounds(dctx, cache, dprobs, safety=4.0):
    """How far two float32 evaluations of attention_backward may differ when only the order of
    their sums differs: n eps |terms| per sum (n terms), carried through softmax's backward."""
    q, k, v, probs, keep = cache
    T, D = q.shape[-2], q.shape[-1]
    scale = D**-0.5
    eps = float(np.finfo(np.float32).eps)
    t = lambda x: x.transpose(0, 1, 3, 2)  # noqa: E731
    keep_abs = np.ones_like(probs) if keep is None else np.abs(keep)
    used = probs * keep_abs
    bound_dv = T * eps * (t(used) @ np.abs(dctx))
    dp_size = (np.abs(dctx) @ t(np.abs(v)) + (0 if dprobs is None else np.abs(dprobs))) * keep_abs
    err_dp = D * eps * (np.abs(dctx) @ t(np.abs(v))) * keep_abs
    row = lambda x: x.sum(-1, keepdims=True)  # noqa: E731
    err_ds = (
        scale * probs * (err_dp + row(probs * err_dp) + 4 * eps * (dp_size + row(dp_size * probs)))
    )
    ds_size = scale * probs * (dp_size + row(dp_size * probs))
    bound_dq = err_ds @ np.abs(k) + T * eps * (ds_size @ np.abs(k))
    bound_dk = t(err_ds) @ np.abs(q) + T * eps * (t(ds_size) @ np.abs(q))
    tiny = 1e-30  # a bound of 0 where both are exactly 0 (padded keys)
    return (safety * b + tiny for b in (bound_dq, bound_dk, bound_dv))


def test_float64_takes_the_numpy_code():
    q = np.zeros((1, 1, 4, 8))
    assert attention_forward_fused(q, q, q, np.zeros((1, 4)), 1.0) is None
    assert attention_backward_fused(q, q, q, q, np.zeros((1, 1, 4, 4)), None, None, 1.0) is None


@pytest.mark.parametrize("T", [4, 13])
def test_padded_keys_get_no_weight_and_no_gradient(T):
    q, k, v, _ = _case(2, 2, T, 8, False, 0)
    mask = np.ones((2, T), np.int64)
    mask[:, T // 2 :] = 0
    bias = F.padding_mask_bias(mask, np.float32)
    ctx, probs, cache = F.attention_forward(q, k, v, bias)
    assert (probs[..., T // 2 :] == 0).all()
    _, dk, dv = F.attention_backward(np.ones_like(ctx), cache)
    assert (dk[:, :, T // 2 :] == 0).all()
    assert (dv[:, :, T // 2 :] == 0).all()
