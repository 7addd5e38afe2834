"""AdamW, learning-rate schedules and gradient clipping, as torch and transformers define them.

AdamW (Loshchilov & Hutter 2019) decouples weight decay from the adaptive step:

    p <- p (1 - lr wd)                          decay first, on matrices only
    m <- b1 m + (1 - b1) g                      first moment
    v <- b2 v + (1 - b2) g^2                    second moment
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

in exactly torch.optim.AdamW's order of operations, so a float32 trajectory matches torch's.
Weight decay applies to parameters with ndim >= 2 (weight matrices and embedding tables), not to
biases or LayerNorm parameters, the rule BERT's optimizer and nanoGPT use.
"""

import math

import numpy as np

from ..backend import device_of, to_device, to_numpy, xp_of


class AdamW:
    """AdamW over a model's parameters (a tied array is updated once).

    Args:
        model: any minibert Module; its `grads` are read after backward().
        lr: peak learning rate; `set_lr` (or a schedule through the trainer) changes it.
        weight_decay: decoupled decay for parameters with ndim >= 2.
    """

    def __init__(
        self,
        model,
        lr: float = 1e-4,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(
                f"invalid AdamW settings: lr={lr}, betas={betas}, eps={eps}, "
                f"weight_decay={weight_decay}"
            )
        self.model = model
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.step_count = 0
        self.paths = [path for path, _ in model.named_parameters()]
        self.m = {p: None for p in self.paths}
        self.v = {p: None for p in self.paths}

    def set_lr(self, lr: float) -> None:
        self.lr = lr

    def decays(self, path: str) -> bool:
        return self.model.get_parameter(path).ndim >= 2

    def step(self) -> None:
        """One update of every parameter from its accumulated gradient."""
        self.step_count += 1
        b1, b2 = self.betas
        bias1 = 1 - b1**self.step_count
        bias2_sqrt = math.sqrt(1 - b2**self.step_count)
        step_size = self.lr / bias1
        for path in self.paths:
            module, key = self.model._resolve(path)
            p, g = module.params[key], module.grads[key]
            xp = xp_of(p)  # the moments live where the parameter does
            if self.m[path] is None:
                self.m[path] = xp.zeros_like(p)
                self.v[path] = xp.zeros_like(p)
            elif device_of(self.m[path]) != device_of(p):  # the model moved since (model.to)
                self.m[path] = to_device(self.m[path], device_of(p))
                self.v[path] = to_device(self.v[path], device_of(p))
            m, v = self.m[path], self.v[path]
            if self.weight_decay and p.ndim >= 2:
                p *= p.dtype.type(1 - self.lr * self.weight_decay)  # decoupled: not in m or v
            m += (g - m) * p.dtype.type(1 - b1)  # torch's lerp: m + (g - m)(1 - b1)
            v *= p.dtype.type(b2)
            v += (g * g) * p.dtype.type(1 - b2)
            denom = xp.sqrt(v) / p.dtype.type(bias2_sqrt) + p.dtype.type(self.eps)
            p -= p.dtype.type(step_size) * (m / denom)

    def state_dict(self) -> dict:
        """Everything needed to resume: step count, settings and both moments per parameter."""
        state = {
            "step": self.step_count,
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
        }
        moments = {}
        for path in self.paths:
            if self.m[path] is not None:
                moments[f"m.{path}"] = to_numpy(self.m[path])  # saved from the host
                moments[f"v.{path}"] = to_numpy(self.v[path])
        return {"state": state, "moments": moments}

    def load_state_dict(self, d: dict) -> None:
        state, moments = d["state"], d["moments"]
        self.step_count = int(state["step"])
        self.lr, self.betas = float(state["lr"]), tuple(state["betas"])
        self.eps, self.weight_decay = float(state["eps"]), float(state["weight_decay"])
        for path in self.paths:
            if f"m.{path}" in moments:
                self.m[path] = np.array(moments[f"m.{path}"])
                self.v[path] = np.array(moments[f"v.{path}"])


def clip_grad_norm(model, max_norm: float) -> float:
    """Scale all gradients so their global L2 norm is at most max_norm (torch's
    clip_grad_norm_, including its 1e-6 in the denominator). Returns the norm before clipping."""
    grads = [
        model._resolve(path)[0].grads[model._resolve(path)[1]]
        for path, _ in model.named_parameters()
    ]
    total = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= g.dtype.type(coef)
    return total


def lr_at(step: int, peak: float, warmup: int, total: int, schedule: str = "linear") -> float:
    """The learning rate for optimizer step `step` (0-based, the value used *for* that step):
    linear warmup from 0 to `peak` over `warmup` steps, then linear or cosine decay to 0 at
    `total` (transformers' get_linear/cosine_schedule_with_warmup), or "constant" after warmup.
    """
    if step < warmup:
        return peak * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return peak * max(0.0, 1.0 - progress)
    if schedule == "cosine":
        return peak * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    if schedule == "constant":
        return peak
    raise ValueError(f"schedule must be 'linear', 'cosine' or 'constant', got {schedule!r}")
