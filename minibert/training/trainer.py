"""A model-agnostic training loop (in the spirit of minGPT's trainer.py).

The loop is forward -> backward -> (every `grad_accum` batches) clip -> AdamW step, with a
warmup schedule, evaluation every `eval_every` steps and checkpoints every `save_every` steps.
Everything random is seeded and saved, so a run resumed from a checkpoint produces the same
losses, to the last bit, as the run that was never interrupted:

  * batches come from `batches(epoch, rng)`, with rng = default_rng([seed, epoch]); resuming
    mid-epoch rebuilds that epoch's batches and skips the ones already seen;
  * dropout draws from model.rng, whose state the checkpoint stores.

A checkpoint folder holds config.json + model.safetensors (what minibert.load and transformers
read), optimizer.safetensors (AdamW's moments) and trainer_state.json; it is written under a
temporary name and renamed, so a crash never leaves half a checkpoint. Ctrl-C finishes the
current step, saves, and stops. A NaN or infinite loss stops the run, naming the step, and
leaves the last good checkpoint in place.

Progress shows as a bar on a terminal (progress=True); where no one watches a bar (a log file,
a CI job), log_lines=True prints one line to stderr every `log_every` steps and one per
evaluation instead.
"""

import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from ..checkpoint import read_weights
from ..io import load_state
from ..quant import enable_fake_quant
from .allocator import keep_freed_memory
from .optim import AdamW, clip_grad_norm, lr_at

STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.safetensors"
OBJECTIVE_NAME = "objective.safetensors"  # an objective's own parameters (distillation)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last checkpoint."""


@dataclass
class TrainConfig:
    """How to train. Steps count optimizer updates (each `grad_accum` batches)."""

    max_steps: int = 1000
    lr: float = 1e-4
    warmup_steps: int = 0
    schedule: str = "linear"  # linear | cosine | constant (after warmup)
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    max_grad_norm: float | None = 1.0
    grad_accum: int = 1
    eval_every: int = 0  # 0: only at the end
    save_every: int = 0  # 0: only at the end (and on Ctrl-C)
    keep_checkpoints: int = 2
    log_every: int = 10  # steps between updates of the bar's loss, or between lines
    seed: int = 0
    progress: bool = True  # a progress bar (for a terminal)
    log_lines: bool = False  # a line on stderr every log_every steps (for a log file)
    # quantization-aware training (Q8BERT): linear layers see int8-rounded weights and inputs
    # in the forward pass, gradients pass straight through; quantize the result afterwards
    qat: bool = False

    def __post_init__(self):
        if self.max_steps < 1 or self.grad_accum < 1 or self.log_every < 1:
            raise ValueError(
                "max_steps, grad_accum and log_every must be >= 1, got "
                f"{self.max_steps}, {self.grad_accum}, {self.log_every}"
            )
        self.betas = tuple(self.betas)


@dataclass
class History:
    """What a run measured: one entry per optimizer step, and each evaluation."""

    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    evals: list = field(default_factory=list)  # {"step": s, **metrics}


class Trainer:
    """Train `model` on `batches(epoch, rng)`, an iterable of dicts of model keyword arguments
    (input_ids, attention_mask, ..., labels, ...) for one epoch.

    Args:
        eval_fn: model -> {metric: value}, run in eval mode every `eval_every` steps.
        output_dir: where checkpoints go; None keeps nothing on disk.
        objective: replaces the model's own loss (distillation): a Module holding the model,
            called as objective(batch) -> loss, then objective.backward(). Its parameters (the
            model's and its own, e.g. projections) are what the optimizer updates; its own
            are checkpointed beside the model in objective.safetensors.
    """

    def __init__(
        self, model, batches, config: TrainConfig, eval_fn=None, output_dir=None, objective=None
    ):
        self.model, self.batches, self.config = model, batches, config
        self.eval_fn = eval_fn
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.objective = objective
        self.trainable = model if objective is None else objective  # what the optimizer sees
        self.optimizer = AdamW(
            self.trainable,
            lr=config.lr,
            betas=config.betas,
            eps=config.eps,
            weight_decay=config.weight_decay,
        )
        self.history = History()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.model.seed(config.seed)
        if config.qat:
            enable_fake_quant(model)
        self._stop = False
        self._started = time.perf_counter()  # for the elapsed time of the progress lines
        self._window = [0, 0.0]  # tokens and seconds since the last progress line

    # --- the loop ---------------------------------------------------------------------------
    def train(self) -> History:
        """Train to config.max_steps optimizer steps (Ctrl-C stops after the current step) and
        return the History of losses, learning rates and evaluations; a resumed run's History
        holds the earlier steps too."""
        cfg = self.config
        keep_freed_memory()  # each step reuses the last one's memory (allocator.py)
        self.trainable.train()
        self.trainable.zero_grad()
        bar = self._progress()
        self._started, self._window = time.perf_counter(), [0, 0.0]
        previous_handler = (
            signal.signal(signal.SIGINT, self._request_stop) if _main_thread() else None
        )
        try:
            while self.step < cfg.max_steps and not self._stop:
                self._run_epoch(bar)
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if bar is not None:
                bar.close()
        if self._stop:
            self.save_checkpoint()
            raise KeyboardInterrupt(
                f"stopped at step {self.step}; resume from {self.latest_checkpoint()}"
            )
        if cfg.eval_every == 0 or self.step % cfg.eval_every:
            self.evaluate()
        self.save_checkpoint()
        self.trainable.eval()
        return self.history

    def _run_epoch(self, bar) -> None:
        cfg, model = self.config, self.model
        rng = np.random.default_rng([cfg.seed, self.epoch])
        accumulated, loss_sum, tokens, started = 0, 0.0, 0, time.perf_counter()
        for index, batch in enumerate(self.batches(self.epoch, rng)):
            if index < self.batch_in_epoch:  # resuming: these batches were already used
                continue
            if self.objective is None:
                loss = float(model(**batch).loss)
            else:  # distillation: the objective runs the teacher and the model
                loss = float(self.objective(batch))
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss became {loss} at step {self.step + 1} (epoch {self.epoch}, "
                    f"batch {index}); the last good checkpoint is {self.latest_checkpoint()}"
                )
            (model if self.objective is None else self.objective).backward()  # adds to grads
            accumulated += 1
            loss_sum += loss
            tokens += int(np.asarray(batch["attention_mask"]).sum())
            self.batch_in_epoch = index + 1
            if accumulated < cfg.grad_accum:
                continue
            self._update(loss_sum / accumulated, tokens, time.perf_counter() - started, bar)
            accumulated, loss_sum, tokens, started = 0, 0.0, 0, time.perf_counter()
            if self.step >= cfg.max_steps or self._stop:
                return
        self.epoch += 1
        self.batch_in_epoch = 0

    def _update(self, loss, tokens, seconds, bar) -> None:
        cfg = self.config
        lr = lr_at(self.step, cfg.lr, cfg.warmup_steps, cfg.max_steps, cfg.schedule)
        if cfg.grad_accum > 1:  # the loss is a mean per batch: average the summed gradients
            for path, _ in self.trainable.named_parameters():  # a tied gradient only once
                module, key = self.trainable._resolve(path)
                module.grads[key] *= module.grads[key].dtype.type(1 / cfg.grad_accum)
        if cfg.max_grad_norm:
            clip_grad_norm(self.trainable, cfg.max_grad_norm)
        self.optimizer.set_lr(lr)
        self.optimizer.step()
        self.trainable.zero_grad()
        self.step += 1
        h = self.history
        h.step.append(self.step)
        h.loss.append(loss)
        h.lr.append(lr)
        h.tokens.append(tokens)
        if bar is not None:
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == 1:
                bar.set_postfix(
                    loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens / max(seconds, 1e-9):,.0f}"
                )
        self._window[0] += tokens
        self._window[1] += seconds
        if cfg.log_lines and (self.step % cfg.log_every == 0 or self.step == cfg.max_steps):
            tokens_per_second = self._window[0] / max(self._window[1], 1e-9)
            self._window = [0, 0.0]
            self._log(f"loss {loss:.4f}  lr {lr:.2e}  {tokens_per_second:,.0f} tokens/s")
        if cfg.eval_every and self.step % cfg.eval_every == 0:
            self.evaluate()
        if cfg.save_every and self.step % cfg.save_every == 0:
            self.save_checkpoint()

    def evaluate(self) -> dict:
        if self.eval_fn is None:
            return {}
        self.trainable.eval()
        metrics = {k: float(v) for k, v in self.eval_fn(self.model).items()}
        self.trainable.train()
        self.trainable.zero_grad()
        self.history.evals.append({"step": self.step, **metrics})
        if self.config.log_lines and metrics:
            self._log("evaluation: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return metrics

    def _log(self, text: str) -> None:
        """One progress line on stderr: the step, the share of the run done, the time, text."""
        cfg = self.config
        elapsed = time.perf_counter() - self._started
        line = f"step {self.step}/{cfg.max_steps} ({100 * self.step / cfg.max_steps:.0f}%)"
        print(f"{line}  {text}  {_duration(elapsed)} elapsed", file=sys.stderr, flush=True)

    def _request_stop(self, signum, frame) -> None:
        if self._stop:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop = True

    def _progress(self):
        if not self.config.progress:
            return None
        return tqdm(total=self.config.max_steps, initial=self.step, unit="step", desc="train")

    # --- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write `checkpoint-<step>/` atomically; keep the newest `keep_checkpoints`."""
        if self.output_dir is None:
            return None
        final = self.output_dir / f"checkpoint-{self.step}"
        tmp = self.output_dir / f".checkpoint-{self.step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        if self._objective_params():
            save_file(self._objective_params(), str(tmp / OBJECTIVE_NAME))
        opt = self.optimizer.state_dict()
        save_file(
            {k: np.ascontiguousarray(v) for k, v in opt["moments"].items()},
            str(tmp / OPTIMIZER_NAME),
        )
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "optimizer": opt["state"],
            "model_rng": _rng_state(self.model.rng),
            "config": asdict(self.config),
            "history": asdict(self.history),
        }
        (tmp / STATE_NAME).write_text(json.dumps(state, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)  # the checkpoint appears whole or not at all
        self._prune()
        return final

    def _objective_params(self) -> dict:
        """{path: array} of the objective's parameters that are not the model's."""
        if self.objective is None:
            return {}
        ours = {id(a) for _, a in self.model.named_parameters()}
        return {
            p: np.ascontiguousarray(a)
            for p, a in self.objective.named_parameters()
            if id(a) not in ours
        }

    def _checkpoints(self) -> list:
        if self.output_dir is None or not self.output_dir.is_dir():
            return []
        found = [p for p in self.output_dir.glob("checkpoint-*") if (p / STATE_NAME).is_file()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def latest_checkpoint(self) -> Path | None:
        found = self._checkpoints()
        return found[-1] if found else None

    def _prune(self) -> None:
        for old in self._checkpoints()[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def resume(self, checkpoint=None) -> "Trainer":
        """Continue from a checkpoint folder (default: the newest in output_dir)."""
        folder = Path(checkpoint) if checkpoint is not None else self.latest_checkpoint()
        if folder is None or not (folder / STATE_NAME).is_file():
            raise FileNotFoundError(f"no checkpoint to resume from in {self.output_dir}")
        state = json.loads((folder / STATE_NAME).read_text())
        load_state(self.model, read_weights(folder), self.model.dtype)
        if self._objective_params():
            for path, array in load_file(folder / OBJECTIVE_NAME).items():
                self.trainable.get_parameter(path)[...] = array
        self.optimizer = AdamW(
            self.trainable,
            lr=self.config.lr,
            betas=self.config.betas,
            eps=self.config.eps,
            weight_decay=self.config.weight_decay,
        )
        self.optimizer.load_state_dict(
            {"state": state["optimizer"], "moments": load_file(folder / OPTIMIZER_NAME)}
        )
        self.model.rng.bit_generator.state = state["model_rng"]
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.history = History(**state["history"])
        return self


def _duration(seconds: float) -> str:
    """Seconds as H:MM:SS."""
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def _rng_state(rng) -> dict:
    return json.loads(json.dumps(rng.bit_generator.state))  # plain ints and strings


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
