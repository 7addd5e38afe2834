"""AdamW, schedules and clipping against the torch trajectory the generator stored."""

import numpy as np
import pytest

from conftest import FIXTURES, META
from minibert.nn import Module
from minibert.training.optim import AdamW, clip_grad_norm, lr_at

with np.load(FIXTURES / "optimizer" / "adamw.npz") as _z:
    TRAJ = {k: _z[k] for k in _z.files}
SETTINGS = META["cases"]["optimizer"]
NAMES = ("matrix", "bias", "table")


class Params(Module):
    def __init__(self):
        super().__init__()
        for name in NAMES:
            self.params[name] = TRAJ[f"initial.{name}"].copy()
        self.zero_grad()


def test_adamw_with_schedule_and_clipping_matches_torch():
    model = Params()
    opt = AdamW(
        model,
        lr=SETTINGS["peak_lr"],
        betas=SETTINGS["betas"],
        eps=SETTINGS["eps"],
        weight_decay=SETTINGS["weight_decay"],
    )
    for step in range(SETTINGS["steps"]):
        lr = lr_at(step, SETTINGS["peak_lr"], SETTINGS["warmup"], SETTINGS["steps"])
        assert lr == pytest.approx(float(TRAJ[f"lr.{step}"]), rel=1e-12, abs=1e-15)
        opt.set_lr(lr)
        for name in NAMES:
            model.grads[name][...] = TRAJ[f"grad.{step}.{name}"]
        norm = clip_grad_norm(model, SETTINGS["max_norm"])
        assert norm == pytest.approx(float(TRAJ[f"norm.{step}"]), rel=1e-6)
        opt.step()
        for name in NAMES:
            np.testing.assert_allclose(
                model.params[name],
                TRAJ[f"param.{step}.{name}"],
                rtol=1e-6,
                atol=1e-7,
                err_msg=f"step {step} {name}",
            )


def test_cosine_schedule_matches_transformers():
    for step in range(22):
        assert lr_at(step, 2.0, 4, 20, "cosine") == pytest.approx(
            float(TRAJ[f"cosine_lr.{step}"]), abs=1e-12
        )


def test_no_decay_on_vectors_and_state_roundtrip():
    model = Params()
    opt = AdamW(model, lr=0.1, weight_decay=0.5)
    assert opt.decays("matrix")
    assert not opt.decays("bias")
    for name in NAMES:
        model.grads[name][...] = 1.0
    opt.step()
    clone = Params()
    for name in NAMES:
        clone.params[name] = model.params[name].copy()
        clone.grads[name][...] = 1.0
    restored = AdamW(clone, lr=0.1, weight_decay=0.5)
    restored.load_state_dict(opt.state_dict())
    opt.step()
    restored.step()
    for name in NAMES:
        np.testing.assert_array_equal(clone.params[name], model.params[name])


def test_bad_settings():
    with pytest.raises(ValueError, match="invalid AdamW"):
        AdamW(Params(), lr=-1)
    with pytest.raises(ValueError, match="schedule"):
        lr_at(5, 1.0, 1, 10, "triangle")
