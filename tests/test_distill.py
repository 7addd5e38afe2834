"""Distillation: the losses (finite differences in float64, and torch autograd values stored by
the fixture generator), model.backward(grads) on intermediate outputs, the three students, the
objective's gradients, and short seeded distillation runs through the trainer."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_gradients import RTOL_FD, numeric_grad, rel_error

import minibert
from conftest import FIXTURES, assert_within, case_dir, load_reference, sum_atol
from minibert import functional as F
from minibert.config import IGNORE_INDEX
from minibert.distill.objective import DistillationObjective, LossWeights, layer_map
from minibert.distill.students import (
    RECIPES,
    albert_config,
    distilbert_student,
    make_student,
    parameter_report,
    tinybert_config,
    tinybert_student,
)
from minibert.errors import InputError
from minibert.models.auto import from_config
from minibert.training.trainer import TrainConfig, Trainer

with np.load(FIXTURES / "distill-losses" / "losses.npz") as _z:
    TORCH = {k: _z[k] for k in _z.files}
RTOL_TORCH = 1e-10  # float64 on both sides: only the order of the sums differs


def torch_atol(expected):
    """For entries near 0, where rtol says nothing: no entry sums more terms than the array
    has entries, and none is larger than its largest value (conftest.sum_atol)."""
    return sum_atol(np.abs(expected).max(), expected.size)


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
            atol = torch_atol(a[key])
            np.testing.assert_allclose(g, a[key], rtol=RTOL_TORCH, atol=atol, err_msg=key)


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


def test_layer_map():
    assert layer_map(4, 12) == [3, 6, 9, 12]  # TinyBERT-4 from BERT-base
    assert layer_map(3, 6) == [2, 4, 6]
    assert layer_map(5, 12) == [2, 5, 7, 10, 12]  # rounded; the last maps to the last
    assert layer_map(2, 2) == [1, 2]
    assert layer_map(2, 6, [1, 6]) == [1, 6]
    for bad in ([1], [0, 3], [4, 2], [1, 7]):
        with pytest.raises(ValueError, match="layer map"):
            layer_map(2, 6, bad)
    with pytest.raises(ValueError, match="uniform"):
        layer_map(2, 6, "every")


# --- model.backward(grads): gradients arriving at intermediate outputs --------------------------
HOOK_CASES = {
    # case: outputs with an outside loss (besides hidden_states and attentions)
    "bert-mlm": ("logits", "last_hidden_state"),
    "bert-pretraining": ("prediction_logits", "seq_relationship_logits"),
    "bert-seqcls": ("logits", "pooler_output"),
    "bert-qa": ("start_logits", "end_logits"),
    "albert-base": ("last_hidden_state", "pooler_output"),  # shared layers, no head, no labels
}
TARGET_KEYS = ("labels", "next_sentence_label", "start_positions", "end_positions")


def hook_batch(case):
    ref = load_reference(case)
    inputs = {k: ref[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in ref}
    targets = {}
    if (case_dir(case) / "training.npz").is_file():
        with np.load(case_dir(case) / "training.npz") as z:
            targets = {k: z[k] for k in TARGET_KEYS if k in z.files}
    return inputs, targets


@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("case", sorted(HOOK_CASES))
def test_backward_with_outside_gradients_by_finite_differences(case, dropout):
    """f = own loss + sum_k <R_k, output_k> over head outputs, hidden states and attention
    maps (some by negative index): model.backward(grads={k: R_k}) must give df/dparameter.
    With dropout on, every forward reseeds the model, so the masks stay the same and the
    gradient is with respect to the returned (dropped-out) attention maps."""
    inputs, targets = hook_batch(case)
    model = minibert.load(case_dir(case), dtype="float64").train(dropout=dropout)
    steps = len(model.encoder.schedule)
    rng = np.random.default_rng(0)

    def run():
        model.seed(5)
        return model(**inputs, **targets, output_hidden_states=True, output_attentions=True)

    out = run()

    def draw(shape):  # weights of 0.1 keep |f| ~ 10, so rounding stays far below the tolerance
        return 0.1 * rng.normal(size=shape)

    R = {k: draw(out[k].shape) for k in HOOK_CASES[case]}
    hidden = {0: draw(out.hidden_states[0].shape), -2: draw(out.hidden_states[-2].shape)}
    attentions = {steps - 1: draw(out.attentions[0].shape)}
    attentions[-steps] = draw(out.attentions[0].shape)  # the first map, by negative index

    def f():
        out = run()
        value = float(out.loss) if "loss" in out else 0.0
        value += sum(float((out[k] * r).sum()) for k, r in R.items())
        value += sum(float((out.hidden_states[i] * r).sum()) for i, r in hidden.items())
        return value + sum(float((out.attentions[i] * r).sum()) for i, r in attentions.items())

    run()
    model.zero_grad()
    model.backward({**R, "hidden_states": hidden, "attentions": attentions})
    assert all(not m._caches for m in model.modules())  # every cache popped exactly once
    # f sums many outputs: a step of 1e-5 has truncation errors near the tolerance, and
    # rounding in a step of 1e-6 (~1e-9 here, e.g. on key biases, whose gradient is 0) is what
    # the floor of 1e-2 covers; the worst error measured is 2e-7 of the floor
    eps = 1e-6
    for path, param in model.named_parameters():
        module, key = model._resolve(path)
        direction = rng.normal(size=param.shape)
        if getattr(module, "padding_idx", None) is not None:
            direction[module.padding_idx] = 0.0
        analytic = float((module.grads[key] * direction).sum())
        param += eps * direction
        up = f()
        param -= 2 * eps * direction
        down = f()
        param += eps * direction
        numeric = (up - down) / (2 * eps)
        assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-2), path


def test_outside_gradients_add_to_the_own_loss():
    """backward(grads) after a forward with labels = the labels' gradient + the outside one."""
    inputs, targets = hook_batch("bert-mlm")
    model = minibert.load(case_dir("bert-mlm"), dtype="float64").train(dropout=False)
    out = model(**inputs, **targets)
    model.zero_grad()
    model.backward()
    own = {k: v.copy() for k, v in model.gradients().items()}
    dlogits = np.random.default_rng(1).normal(size=out.logits.shape)
    model(**inputs)  # no labels: only the outside loss
    model.zero_grad()
    model.backward({"logits": dlogits})
    outside = {k: v.copy() for k, v in model.gradients().items()}
    model(**inputs, **targets)
    model.zero_grad()
    model.backward({"logits": dlogits})
    # W^T (a + b) and W^T a + W^T b add the same products in different orders, layer after
    # layer: they agree to what float64 guarantees for sums of B * T terms (conftest.sum_atol)
    # of the size of the terms. An entry can cancel to ~0 (the key bias's gradient is 0 in
    # exact arithmetic: softmax ignores a shift), so the size is the largest gradient of the
    # entry's module (a bias sums the same rows as its weight, times inputs of order 1).
    B, T = inputs["input_ids"].shape
    size = {}
    for k in own:
        module = k.rsplit(".", 1)[0]
        scale = np.abs(own[k]).max() + np.abs(outside[k]).max()
        size[module] = max(size.get(module, 0.0), scale)
    for k, g in model.gradients().items():
        atol = sum_atol(size[k.rsplit(".", 1)[0]], B * T)
        assert_within(g, own[k] + outside[k], atol, err_msg=k)


def test_backward_grads_errors():
    inputs, _ = hook_batch("bert-mlm")
    model = minibert.load(case_dir("bert-mlm")).train(dropout=False)
    out = model(**inputs, output_hidden_states=True)
    with pytest.raises(InputError, match="hidden_states"):
        model.backward({"hidden_states": {3: out.hidden_states[0]}})  # 3 hidden states: 0..2
    model(**inputs)
    with pytest.raises(InputError, match="shape"):
        model.backward({"attentions": {0: np.zeros((3, 4, 7))}})
    model(**inputs)
    with pytest.raises(InputError, match="pooler_output"):
        model.backward({"pooler_output": np.zeros((3, 32))})
    model(**inputs)
    with pytest.raises(InputError, match="start_logits"):
        model.backward({"start_logits": np.zeros((3, 7))})
    model(**inputs)
    model.backward({"last_hidden_state": np.ones(out.last_hidden_state.shape, np.float32)})
    with pytest.raises(RuntimeError, match="only once"):
        model.backward({"last_hidden_state": np.ones(out.last_hidden_state.shape, np.float32)})


# --- students ---------------------------------------------------------------------------------
def tiny_teacher(layers=6, seed=1, architecture="BertForMaskedLM", **sizes):
    config = minibert.EncoderConfig(
        architecture=architecture,
        vocab_size=99,
        hidden_size=24,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=20,
        **sizes,
    )
    return from_config(config, seed)


def test_distilbert_student_takes_every_other_teacher_layer():
    teacher = tiny_teacher(layers=6)
    student = make_student("distilbert", teacher)
    assert type(student) is type(teacher)
    assert student.config.num_hidden_layers == 3
    taken = {}
    for path, array in student.named_parameters():
        source = path
        if path.startswith("encoder.layers."):
            i, rest = path.removeprefix("encoder.layers.").split(".", 1)
            source = f"encoder.layers.{2 * int(i)}.{rest}"  # teacher layers 0, 2, 4
            taken.setdefault(int(i), set()).add(2 * int(i))
        original = teacher.get_parameter(source)
        np.testing.assert_array_equal(array, original, err_msg=path)
        assert not np.shares_memory(array, original), path  # copies: the teacher stays put
    assert taken == {0: {0}, 1: {2}, 2: {4}}
    assert student.mlm.decoder.params["weight"] is student.embeddings.word.params["weight"]
    picked = distilbert_student(teacher, layers=[0, 3, 5])  # any choice, e.g. DistilBERT's own
    np.testing.assert_array_equal(
        picked.encoder.layers[1].attn.q.params["weight"],
        teacher.encoder.layers[3].attn.q.params["weight"],
    )
    with pytest.raises(ValueError, match="layers"):
        distilbert_student(teacher, layers=[0, 6])


def test_albert_student_shares_one_layer_and_factorizes_embeddings():
    teacher = tiny_teacher(layers=4)
    student = make_student("albert", teacher)
    c = student.config
    assert c.architecture == "AlbertForMaskedLM"
    assert c.num_unique_layers == 1
    assert len(student.encoder.layers) == 1
    assert student.encoder.schedule == [0, 0, 0, 0]  # one layer, applied at each of L steps
    assert c.embedding_size < c.hidden_size == teacher.config.hidden_size
    assert student.embeddings.word.params["weight"].shape == (99, c.embedding_size)
    assert student.num_parameters() < teacher.num_parameters()


def test_tinybert_student_sizes():
    teacher = tiny_teacher(layers=6)
    student = make_student("tinybert", teacher)
    c = student.config
    assert (c.num_hidden_layers, c.num_attention_heads) == (2, 4)
    assert c.hidden_size == 8  # 24 * 13/32 = 9.75, rounded to a multiple of the 4 heads
    assert c.intermediate_size == round(8 * 1200 / 312)
    assert c.attention_probs_dropout_prob == 0.0
    with pytest.raises(ValueError, match="recipes"):
        make_student("tiny", teacher)


def test_default_sizes_for_a_bert_base_teacher():
    base = minibert.EncoderConfig(architecture="BertForMaskedLM")  # BERT-base sizes
    tiny = tinybert_config(base)
    assert (tiny.num_hidden_layers, tiny.hidden_size, tiny.intermediate_size) == (4, 312, 1200)
    assert tiny.num_attention_heads == 12  # TinyBERT-4 (Jiao et al. 2020, section 4.1)
    albert = albert_config(base)
    assert (albert.embedding_size, albert.hidden_size, albert.num_hidden_layers) == (128, 768, 12)
    assert albert.num_unique_layers == 1


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_students_round_trip_through_save_pretrained(recipe, tmp_path):
    teacher = tiny_teacher(layers=4)
    student = make_student(recipe, teacher)
    student.save_pretrained(tmp_path)
    again = minibert.load(tmp_path)
    assert type(again) is type(student)
    assert again.config == student.config
    ids = np.random.default_rng(0).integers(5, 99, (2, 6))
    np.testing.assert_array_equal(again(ids).logits, student(ids).logits)
    report = parameter_report(student, teacher)
    assert f"{student.num_parameters():,} parameters, " in report
    assert "% of the teacher" in report


# --- the objective ------------------------------------------------------------------------------
def mlm_batch(seed=0, B=3, T=7):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 99, (B, T))
    mask = (np.arange(T)[None, :] < np.array([T, 5, 3])[:B, None]).astype(np.int64)
    labels = np.where((rng.random((B, T)) < 0.4) & (mask == 1), ids, IGNORE_INDEX)
    return {"input_ids": np.where(mask == 1, ids, 0), "attention_mask": mask, "labels": labels}


OBJECTIVE_CASES = {
    # recipe: loss weights for the check (every loss the recipe allows, hard included)
    "distilbert": LossWeights(soft=5.0, hard=2.0, cosine=1.0, temperature=2.0),
    "tinybert": LossWeights(soft=1.0, hard=0.5, hidden=1.0, attention=3.0, temperature=1.5),
    "albert": LossWeights(soft=1.0, hard=1.0, cosine=2.0, hidden=1.0, attention=1.0),
}


@pytest.mark.parametrize("recipe", sorted(OBJECTIVE_CASES))
def test_objective_gradients_by_finite_differences(recipe):
    """Every parameter of the student and of the projection, float64, dropout off."""
    teacher = tiny_teacher(layers=4).astype(np.float64)
    student = make_student(recipe, teacher)
    objective = DistillationObjective(student, teacher, OBJECTIVE_CASES[recipe])
    assert hasattr(objective, "projection") == (recipe == "tinybert")
    objective.train(dropout=False)
    batch = mlm_batch()
    objective(batch)
    objective.zero_grad()
    objective.backward()
    rng = np.random.default_rng(0)
    eps = 1e-5
    for path, param in objective.named_parameters():
        assert not path.startswith("_teacher")
        module, key = objective._resolve(path)
        direction = rng.normal(size=param.shape)
        if getattr(module, "padding_idx", None) is not None:
            direction[module.padding_idx] = 0.0
        analytic = float((module.grads[key] * direction).sum())
        param += eps * direction
        up = objective(batch)
        param -= 2 * eps * direction
        down = objective(batch)
        param += eps * direction
        numeric = (up - down) / (2 * eps)
        assert abs(analytic - numeric) <= 1e-6 * max(abs(numeric), 1e-3), path


def test_objective_checks_what_it_compares():
    teacher = tiny_teacher(layers=4)
    narrow = make_student("tinybert", teacher)
    with pytest.raises(ValueError, match="cosine"):
        DistillationObjective(narrow, teacher, LossWeights(cosine=1.0))
    fewer_heads = tinybert_student(teacher, num_attention_heads=2)
    with pytest.raises(ValueError, match="heads"):
        DistillationObjective(fewer_heads, teacher, LossWeights(attention=1.0))
    objective = DistillationObjective(narrow, teacher, LossWeights(hard=1.0)).train()
    batch = mlm_batch()
    del batch["labels"]
    with pytest.raises(InputError, match="labels"):
        objective(batch)


def fixed_batches(batch):
    return lambda epoch, rng: [batch]


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_twenty_steps_of_distillation_reduce_the_loss(recipe):
    """On the bert-mlm fixture as teacher, 20 AdamW steps on one batch, seeded."""
    teacher = minibert.load(case_dir("bert-mlm"))
    frozen = {p: a.copy() for p, a in teacher.named_parameters()}
    student = make_student(recipe, teacher)
    objective = RECIPES[recipe].objective(student, teacher)
    batch = mlm_batch()
    before = objective.train(dropout=False)(batch)
    config = TrainConfig(max_steps=20, lr=2e-3, weight_decay=0.0, progress=False, seed=0)
    history = Trainer(student, fixed_batches(batch), config, objective=objective).train()
    after = objective.train(dropout=False)(batch)
    assert after < 0.9 * before, (before, after)
    assert history.loss[-1] < history.loss[0]
    assert not teacher.training
    for p, a in teacher.named_parameters():  # the teacher is never trained
        np.testing.assert_array_equal(a, frozen[p], err_msg=p)


def test_distillation_resumes_to_the_same_losses(tmp_path):
    """The projection (objective.safetensors) and its AdamW moments resume with the student."""
    teacher = minibert.load(case_dir("bert-mlm"))

    def trainer(output_dir):
        student = make_student("tinybert", teacher)
        objective = RECIPES["tinybert"].objective(student, teacher, hard=1.0)
        config = TrainConfig(max_steps=6, lr=1e-3, save_every=3, progress=False, seed=0)
        return Trainer(
            student, fixed_batches(mlm_batch()), config, output_dir=output_dir, objective=objective
        )

    straight = trainer(tmp_path / "a")
    straight.train()
    assert (tmp_path / "a" / "checkpoint-3" / "objective.safetensors").is_file()
    resumed = trainer(tmp_path / "b")
    resumed.resume(tmp_path / "a" / "checkpoint-3")
    resumed.train()
    assert resumed.history.loss == straight.history.loss
    np.testing.assert_array_equal(
        resumed.objective.projection.params["weight"],
        straight.objective.projection.params["weight"],
    )
