"""What every model shares, whatever its family and task.

The embeddings -> encoder -> pooler -> heads pipeline, the backward pass through it,
parameters under Hugging Face's names, and saving.

A family file (bert.py, ...) subclasses PreTrainedModel once, as BertPreTrainedModel, with what
the family is: its embeddings (build_embeddings), its encoder's dropout placement
(build_encoder), whether it has a pooler, and its Hugging Face weight names. The task classes
in tasks.py add heads. A concrete class combines the two:

    class BertForMaskedLM(BertPreTrainedModel, ForMaskedLM): ...

Python looks a method up in the family class first, then the task, then here: the family's
few differences read as ordinary overriding methods, and everything else is written once.
"""

import weakref
from pathlib import Path

import numpy as np

from .. import functional as F
from ..backend import cupy_module, random_generator, to_numpy, xp_of
from ..checkpoint import CONFIG_NAME, SAFETENSORS_NAME, write_json, write_safetensors
from ..config import DIALECTS, EncoderConfig
from ..errors import InputError
from ..kernels.jit import kernels_for_call, threads_for_work
from ..nn import Encoder, Module, Pooler
from ..outputs import BaseModelOutput
from ..tracing import active_trace
from .inputs import (
    check_forward,
    gradients_by_index,
    on_model_device,
    reject_output_grads,
    shape_of,
)

# model -> (PreTrainedModel._work_per_token(), ._calls_blas()), counted together once
_THREAD_INPUTS = weakref.WeakKeyDictionary()

COMPONENTS = ("embeddings", "encoder", "pooler", "heads")  # parameter_counts' parts


class PreTrainedModel(Module):
    """A whole model: embeddings, encoder, optional pooler, and the heads of one task."""

    # --- what a family sets (models/bert.py and the others) ---------------------------------
    model_type: str  # config.json's model_type: "bert", "albert", "distilbert", "roberta"
    has_pooler = True  # DistilBERT has none
    pooler_weight_names: dict = {}  # {our path: HF name} of the pooler
    head_weight_names: dict = {}  # {head attribute: {our path: HF name}}, every task's heads
    weight_aliases: dict = {}  # {older HF name: HF name of the same tensor}, accepted on load

    def build_embeddings(self, config) -> Module:
        """The family's embeddings module: ids and token types -> (B, T, C)."""
        raise NotImplementedError(f"{type(self).__name__} names no embeddings")

    def build_encoder(self, config) -> Encoder:
        """The shared encoder; a family changes where its layers drop out (a plain keyword)."""
        return Encoder(config)

    def body_weight_names(self) -> dict:
        """{our path: HF name} of the embeddings and the encoder layers, for this config."""
        raise NotImplementedError(f"{type(self).__name__} has no weight-name table")

    # --- what a task sets (tasks.py) ----------------------------------------------------------
    uses_pooler = False  # whether the task reads the pooled [CLS] vector
    takes_choices = False  # inputs (B, num_choices, T), folded into the batch (multiple choice)
    heads: tuple = ()  # head attributes the task adds, keys of head_weight_names

    def build_heads(self, config) -> None:
        """Task classes create their head modules here."""

    # "fast": Numba kernels (when Numba works; use_fast_kernels(False) turns them off for all
    # models), "reference": the readable numpy code the kernels are tested against
    kernels = "fast"

    # The additive attention bias on a padded key. None: functional.padding_mask_bias's, the
    # dtype's most negative number (transformers). Other implementations use -1e4 (BERT's
    # TensorFlow code, older transformers) or -1e9; minibert.diff sets it to reproduce them.
    mask_fill = None

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.embeddings = self.build_embeddings(config)
        self.encoder = self.build_encoder(config)
        if self.uses_pooler and self.has_pooler:
            self.pooler = Pooler(config.hidden_size)
        self.build_heads(config)
        self.tie_weights()
        self.load_report = {}
        self._loss_state = None
        self._pending_shape = None  # (B, T, C) of a training forward not yet backpropagated
        self.inputs_embeds_grad = None
        self._num_choices = None
        self.seed(0)

    def seed(self, seed) -> "PreTrainedModel":
        """Seed the one numpy Generator every dropout in the model draws from (on a GPU, the
        dropouts draw from a device Generator seeded by it)."""
        rng = np.random.default_rng(seed)
        self.set_rng(random_generator(self.device, rng))
        self.rng = rng  # the model keeps the numpy one, whose state a checkpoint stores
        return self

    def to(self, device: str) -> "PreTrainedModel":
        """Move the model to "cpu" or "cuda" (cupy: pip install "minibert[gpu]"), and return
        it: every parameter, a quantized layer's codes and scales, and the gradients. Inputs may
        then be numpy or cupy arrays (they move to the model's device as they come in); outputs
        stay on the model's device, and backend.to_numpy brings them back."""
        if device == "cuda":
            cupy_module()  # DeviceError naming the gpu extra, before anything moves
        rng = self.rng
        super().to(device)
        self.set_rng(random_generator(device, rng))
        self.rng = rng
        return self

    # --- parameters -----------------------------------------------------------------
    @property
    def tied(self) -> dict:
        """{our path: path it shares its array with}; tied weights are stored once."""
        if "mlm" in self.heads and self.config.tie_word_embeddings:
            tied = {"mlm.decoder.weight": "embeddings.word.weight"}
            if "weight_scale" in self.embeddings.word.params:  # an int8 table (quant.py)
                tied["mlm.decoder.weight_scale"] = "embeddings.word.weight_scale"
            return tied
        return {}

    def tie_weights(self) -> None:
        for path, source in self.tied.items():
            self.set_parameter(path, self.get_parameter(source))

    @property
    def prefix(self) -> str:
        """HF's base_model_prefix ("bert", ...): head models keep the body's weights under it."""
        return DIALECTS[self.model_type].prefix

    def hf_weight_names(self) -> dict:
        """{our path: Hugging Face name} for every parameter, tied ones included."""
        body = dict(self.body_weight_names())
        if hasattr(self, "pooler"):
            body.update(self.pooler_weight_names)
        names = {}
        if self.heads:  # head models keep the body under HF's prefix ("bert.embeddings...")
            body = {ours: f"{self.prefix}.{hf}" for ours, hf in body.items()}
        names.update(body)
        for head in self.heads:
            names.update(self.head_weight_names[head])
        for ours, hf in list(names.items()):  # int8 layers (quant.py) store a scale per row
            if ours.endswith(".weight"):
                module = self._resolve(ours)[0]
                if "weight_scale" in module.params:
                    names[ours + "_scale"] = hf + "_scale"
        return names

    def num_parameters(self) -> int:
        """Number of scalars in the model, a tied array counted once (an int8 model's scales
        are not parameters: they belong to the int8 weights they scale)."""
        return self.parameter_counts()["total"]

    def parameter_counts(self) -> dict:
        """{"embeddings", "encoder", "pooler", "heads", "total"}: parameters by component (a
        tied decoder counts in embeddings, ALBERT's E -> C projection too)."""
        counts, seen = dict.fromkeys(COMPONENTS, 0), set()
        for path, module, key in self._param_slots():
            array = module.params[key]
            if id(array) in seen or key == "weight_scale":  # tied; a quantized weight's scales
                continue
            seen.add(id(array))
            top = path.split(".", 1)[0]
            counts[top if top in counts else "heads"] += module.parameter_size(key)
        counts["total"] = sum(counts.values())
        return counts

    def astype(self, dtype):
        """Cast every parameter to dtype (float32 or float64), keeping ties."""
        for _, module, key in list(self._param_slots()):
            if np.issubdtype(module.params[key].dtype, np.floating):  # int8 weights stay int8
                module.params[key] = module.params[key].astype(dtype)
        self.tie_weights()
        return self

    @property
    def dtype(self):
        """The float dtype of the model's computations (float32, or float64 for checks)."""
        return self.embeddings.position.params["weight"].dtype

    def init_weights(self, rng: np.random.Generator, only=None) -> "PreTrainedModel":
        """Fresh weights as transformers draws them: N(0, initializer_range) for weight matrices
        and embeddings, zero biases, LayerNorm at (1, 0). `only`: just these parameter paths."""
        std = self.config.initializer_range
        for path, array in self.named_parameters():
            if only is not None and path not in only:
                continue
            if array.ndim == 2:
                array[...] = rng.normal(0.0, std, array.shape)
            elif path.endswith("bias"):
                array[...] = 0.0
        if only is None and hasattr(self.embeddings, "after_init"):  # DistilBERT's sinusoid
            self.embeddings.after_init()
        return self

    # --- running ------------------------------------------------------------------------
    def _thread_inputs(self) -> tuple:
        """(_work_per_token(), _calls_blas()): one walk over the linear layers, once per model.
        Kept outside the model, so that a copy (quantize's) counts its own layers."""
        if self not in _THREAD_INPUTS:
            linears = [m for m in self.modules() if hasattr(m, "work_per_row")]
            _THREAD_INPUTS[self] = (
                sum(m.work_per_row() for m in linears),
                any(getattr(m, "calls_blas", True) for m in linears),
            )
        return _THREAD_INPUTS[self]

    def _work_per_token(self) -> float:
        """Multiply-adds of the linear layers per token (Linear.work_per_row: int8 ones at
        kernels.jit.INT8_COST), for the thread choice."""
        return self._thread_inputs()[0]

    def _calls_blas(self) -> bool:
        """Whether a forward's linear layers may call BLAS (False when every one of them runs
        its own int8 kernel: a class attribute calls_blas = False), for the thread choice."""
        return self._thread_inputs()[1]

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        labels=None,
        next_sentence_label=None,
        sentence_order_label=None,
        start_positions=None,
        end_positions=None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        position_ids=None,
        inputs_embeds=None,
        head_mask=None,
    ):
        """Run the model; with targets (labels=..., ...) also compute out.loss as transformers
        does. In training mode the caches for backward() are kept.

        As in transformers' forward: position_ids replace the family's own positions,
        inputs_embeds (B, T, E) replace the word-embedding lookup (pass them instead of
        input_ids), and head_mask, (H,) or (L, H), multiplies each head's attention weights
        (0 silences a head). A multiple-choice model takes (B, num_choices, T) inputs."""
        tokens = 0  # for the CPU's thread choice only
        if self.device == "cpu":
            try:  # check_forward names what is wrong with odd input
                given = input_ids if input_ids is not None else np.shape(inputs_embeds)[:-1]
                tokens = int(np.size(given) if input_ids is not None else np.prod(given))
            except (ValueError, TypeError):
                tokens = 0
        inputs = check_forward(  # on the model's device: inputs move there, and only there
            self.config,
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            head_mask,
            choices=self.takes_choices,
            dtype=self.dtype,
            device=self.device,
        )
        if next_sentence_label is None:
            next_sentence_label = sentence_order_label
        targets = {
            "labels": labels,
            "next_sentence_label": next_sentence_label,
            "start_positions": start_positions,
            "end_positions": end_positions,
        }
        work = tokens * self._work_per_token()
        with kernels_for_call(self.kernels), threads_for_work(work, self._calls_blas()):
            return self._call(inputs, targets, output_hidden_states, output_attentions)

    def _call(self, inputs, targets, output_hidden_states, output_attentions):
        if self.training:  # each forward starts from empty stacks (STYLE.md section 4);
            self.clear_caches()  # in eval mode save() keeps nothing, and the walk costs ~1 ms
        self._loss_state = None
        self._num_choices = inputs.num_choices
        x, hidden, attentions = self.body(inputs, output_hidden_states, output_attentions)
        self._pending_shape = x.shape if self.training else None
        pooled = self.pooler.forward(x) if hasattr(self, "pooler") else None
        out = self.head_outputs(x, pooled)
        trace = active_trace()
        if trace is not None:  # what the heads return, logits and the like (not the loss)
            for name, value in out.items():
                if hasattr(value, "shape") and name != "pooler_output":
                    trace.record(f"output.{name}", value)
        targets = {k: on_model_device(v, self.device) for k, v in targets.items() if v is not None}
        if targets:
            out.loss, self._loss_state = self.loss(out, targets)
        out.hidden_states = tuple(hidden) if hidden is not None else None
        out.attentions = tuple(attentions) if attentions is not None else None
        return out

    def body(self, inputs, output_hidden_states=False, output_attentions=False):
        """Embeddings and encoder. Shapes: inputs (models/inputs.py's ForwardInputs, B x T)
        -> x (B, T, C), hidden states, attentions"""
        x = self.embeddings.forward(inputs.ids, inputs.types, inputs.positions, inputs.embeds)
        mask_bias = F.padding_mask_bias(inputs.mask, x.dtype)  # (B, T)
        if self.mask_fill is not None:  # another implementation's constant (see mask_fill)
            mask_bias = (mask_bias != 0) * x.dtype.type(self.mask_fill)  # (B, T)
        heads = None if inputs.heads is None else self.head_mask_steps(inputs.heads)
        return self.encoder.forward(x, mask_bias, output_hidden_states, output_attentions, heads)

    def head_mask_steps(self, head_mask):
        """The head_mask row each encoder step uses: (L, H) -> (steps, H); step i uses row i
        (ALBERT, whose steps reuse layers, overrides it)."""
        return head_mask

    def head_outputs(self, x, pooled):
        return BaseModelOutput(last_hidden_state=x, pooler_output=pooled)

    def loss(self, out, targets: dict):
        """(loss, state for backward) for the task's targets; task classes define it."""
        raise InputError(f"{type(self).__name__} has no head, so it takes no {sorted(targets)}")

    def head_backward(self, state, doutputs: dict):
        """Gradients from the loss (state) and from outside losses on the head's outputs
        (doutputs, by output name, e.g. "logits") back to (dx (B, T, C) or None, dpooled (B, C)
        or None). state["shape"] is (B, T, C). A model without a head has no such outputs."""
        reject_output_grads(self, doutputs)
        return None, None

    # --- training ---------------------------------------------------------------------------
    def backward(self, grads: dict | None = None) -> None:
        """Backpropagate the loss of the last forward call into every module's grads.

        `grads` adds the gradient of a loss computed outside the model (distillation) with
        respect to outputs of that forward call, by output name; the model's own loss (when it
        was given labels) is then optional, and both add up:

            {"logits": (B, T, V), "last_hidden_state": (B, T, C), "pooler_output": (B, C),
             "hidden_states": {i: (B, T, C)}, "attentions": {i: (B, H, T, T)}}

        Any subset; a head's other outputs go by their names (prediction_logits, start_logits,
        ...). hidden_states and attentions are indexed as in the output tuples (negative indices
        count from the end) and need not have been returned. An attention gradient is with
        respect to the returned maps, i.e. after attention dropout when it is on.
        Gradients add up (+=) until zero_grad(), which gradient accumulation relies on. The
        gradient with respect to the word vectors (looked up, or given as inputs_embeds) is
        input_gradient()'s, replaced by each backward().
        """
        grads = {  # gradients from outside move to the model's device, as inputs do
            name: {i: on_model_device(g, self.device) for i, g in value.items()}
            if isinstance(value, dict)
            else on_model_device(value, self.device)
            for name, value in (grads or {}).items()
        }
        if self._loss_state is None and not grads:
            raise RuntimeError(
                "backward() needs the previous forward call to compute a loss: "
                "pass labels= (and the task's other targets), or pass grads="
            )
        if not self.training:
            raise RuntimeError(
                "backward() needs the forward call to run in training mode: "
                "call model.train() first (eval mode keeps no caches)"
            )
        if self._pending_shape is None:
            raise RuntimeError("backward() follows one training-mode forward call, and only once")
        B, T, C = shape = self._pending_shape
        steps, layers = len(self.encoder.schedule), self.encoder.layers
        dhidden = gradients_by_index(
            grads.pop("hidden_states", None), steps + 1, "hidden_states", shape
        )
        dattentions = gradients_by_index(  # (B, H, T, T), H the heads the step's layer kept
            grads.pop("attentions", None),
            steps,
            "attentions",
            lambda step: (B, layers[self.encoder.schedule[step]].attn.num_heads, T, T),
        )
        dlast, dpool = grads.pop("last_hidden_state", None), grads.pop("pooler_output", None)
        if dpool is not None and not hasattr(self, "pooler"):
            raise InputError(f"{type(self).__name__} has no pooler_output")
        if "weight" not in self.embeddings.word.grads:  # first backward: allocate gradients
            self.zero_grad()
        dx, dpooled = self.head_backward({**(self._loss_state or {}), "shape": shape}, grads)
        if dpool is not None:
            dpooled = dpool if dpooled is None else dpooled + dpool
        if dpooled is not None:
            dcls = self.pooler.backward(dpooled)  # (B, C): the pooler read x[:, 0]
            if dx is None:
                dx = xp_of(dcls).zeros((B, T, C), dcls.dtype)
            dx[:, 0] += dcls
        if dlast is not None:
            if shape_of(dlast) != shape:
                raise InputError(f"the last_hidden_state gradient has shape {shape_of(dlast)}")
            dx = dlast if dx is None else dx + dlast
        if dx is None:  # only intermediate outputs have a loss: nothing arrives at the top
            dx = xp_of(self.embeddings.position.params["weight"]).zeros((B, T, C), self.dtype)
        dx = self.encoder.backward(dx, dhidden, dattentions)
        dembeds = self.embeddings.backward(dx)  # (B, T, E)
        if self._num_choices is not None:  # as the inputs came: (B, N, T, E)
            dembeds = dembeds.reshape(-1, self._num_choices, *dembeds.shape[1:])
        self.inputs_embeds_grad = dembeds
        self._loss_state = None
        self._pending_shape = None

    def input_gradient(self):
        """The gradient of the last backward() with respect to the word vectors: the ones
        looked up for input_ids, or the inputs_embeds given (transformers' inputs_embeds.grad).
        Shapes: (B, T, E), or (B, N, T, E) for multiple choice; E is C except for ALBERT."""
        if self.inputs_embeds_grad is None:
            raise RuntimeError("no input gradient yet: run a training forward, then backward()")
        return self.inputs_embeds_grad

    def gradients(self) -> dict:
        """{Hugging Face parameter name: gradient}, the keys of the checkpoint; a tied weight
        appears once, under its checkpoint name, holding the sum of its uses' gradients."""
        tied = self.tied
        out = {}
        for ours, hf_name in self.hf_weight_names().items():
            if ours in tied:
                continue
            module, key = self._resolve(ours)
            if key not in module.grads:
                raise RuntimeError("no gradients yet: run a forward with labels, then backward()")
            out[hf_name] = module.grads[key]
        return out

    def state_dict(self) -> dict:
        """{Hugging Face name: array} as transformers saves it: tied weights stored once."""
        tied = self.tied
        return {
            hf_name: np.ascontiguousarray(to_numpy(self.get_parameter(ours)))
            for ours, hf_name in self.hf_weight_names().items()
            if ours not in tied
        }

    def save_pretrained(self, path) -> None:
        """Write config.json + model.safetensors that transformers loads unchanged (float32,
        or float64 for a float64 model; minibert.load reads it back)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config = self.config.to_hf()
        config["torch_dtype"] = "float32" if self.dtype == np.float32 else "float64"
        write_json(config, folder / CONFIG_NAME)
        write_safetensors(self.state_dict(), folder / SAFETENSORS_NAME)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(L={c.num_hidden_layers}, C={c.hidden_size}, "
            f"H={c.num_attention_heads}, V={c.vocab_size}, params={self.num_parameters():,})"
        )


class BaseModel(PreTrainedModel):
    """A family's body alone (BertModel, ...): last_hidden_state and the pooled [CLS] vector."""

    uses_pooler = True
