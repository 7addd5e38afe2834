"""The seven ways of running an encoder that benchmarks/bench_inference.py compares.

    minibert-reference  minibert, float32, the readable numpy reference kernels
    minibert-numba      minibert, float32, the Numba kernels (the default)
    minibert-int8       minibert.quantize(model): int8 weights, per-row dynamic activations
    torch-fp32          transformers on torch, float32
    torch-int8          torch.ao.quantization.quantize_dynamic(model, {Linear}, dtype=qint8)
    ort-fp32            onnxruntime on the model exported to ONNX from transformers
    ort-int8            onnxruntime on onnxruntime.quantization.quantize_dynamic of that export

`Runtime(kind)` is built inside a worker process (benchmarks/workers.py), one per kind. Each
library is imported only there, so this module imports without torch or onnxruntime; a missing
library (or minibert.quantize, or an ONNX export) raises workers.Unavailable.
"""

import json
import logging
import sys
import time
import warnings
from pathlib import Path

from workers import THREADS, Unavailable

KINDS = {
    "minibert-reference": "minibert fp32 (reference)",
    "minibert-numba": "minibert fp32 (Numba)",
    "minibert-int8": "minibert int8",
    "torch-fp32": "torch fp32",
    "torch-int8": "torch int8 (quantize_dynamic)",
    "ort-fp32": "onnxruntime fp32",
    "ort-int8": "onnxruntime int8",
}
# memory only: the int8 model saved by quantize + save_pretrained and loaded back, the minibert
# counterpart of onnxruntime int8, which also loads a file quantised beforehand
SAVED_INT8 = {"minibert-int8-saved": "minibert int8 (saved, then loaded)"}
LABELS = {**KINDS, **SAVED_INT8}
FLOAT32 = ("minibert-reference", "minibert-numba", "torch-fp32", "ort-fp32")
# what `prepare` writes into a model's artifacts folder
ONNX_FP32, ONNX_INT8, MINIBERT_INT8 = "model.onnx", "model-int8.onnx", "minibert-int8"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def _require(module: str):
    """Import a module by name, or raise Unavailable naming the package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Unavailable(f"{module} is not installed ({exc})") from None


class Runtime:
    """One kind's model and inputs; `run` times one forward pass."""

    def __init__(self, kind: str):
        if kind not in LABELS:
            raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(LABELS)}")
        self.kind = kind
        self.library = kind.split("-")[0]

    def load(self, path, artifacts=None) -> str:
        """Load the model at path (a Hugging Face folder); the ONNX files and the saved int8
        model come from the artifacts folder `prepare` wrote. Returns a short note on how it
        runs (attention, quantisation)."""
        path, artifacts = str(path), Path(artifacts) if artifacts else None
        if self.library == "minibert":
            return self._load_minibert(path, artifacts)
        if self.library == "torch":
            return self._load_torch(path)
        return self._load_onnxruntime(artifacts)

    def _load_minibert(self, path, artifacts):
        minibert = _require("minibert")
        if self.kind == "minibert-int8-saved":
            folder = artifacts / MINIBERT_INT8 if artifacts else None
            if folder is None or not folder.is_dir():
                raise Unavailable(f"no saved int8 model: {_error(artifacts, MINIBERT_INT8)}")
            self.model = minibert.load(folder)
            return "int8 folder written by quantize + save_pretrained"
        self.model = minibert.load(path)
        if self.kind == "minibert-reference":
            if hasattr(self.model, "kernels"):  # the per-model switch
                self.model.kernels = "reference"
            else:  # an older minibert: the global one (a worker runs only this model)
                from minibert.kernels.jit import use_fast_kernels

                use_fast_kernels(False)
            return "numpy reference kernels"
        if self.kind == "minibert-int8":
            if not hasattr(minibert, "quantize"):
                raise Unavailable("not available: this minibert has no minibert.quantize")
            self.model = minibert.quantize(self.model)
            return "int8 linear layers"
        return "Numba kernels"

    def _load_torch(self, path):
        self.torch = torch = _require("torch")
        transformers = _require("transformers")
        torch.set_num_threads(THREADS)
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self.model = transformers.AutoModel.from_pretrained(path).eval()
        attention = getattr(self.model.config, "_attn_implementation", "?")
        if self.kind == "torch-int8":
            quantize_dynamic = torch_quantize_dynamic(torch)
            with warnings.catch_warnings():  # torch.ao.quantization warns it is deprecated
                warnings.simplefilter("ignore")
                self.model = quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
            return f"attention {attention}, engine {torch.backends.quantized.engine}"
        return f"attention {attention}"

    def _load_onnxruntime(self, artifacts):
        ort = _require("onnxruntime")
        file = (
            None
            if artifacts is None
            else artifacts / (ONNX_INT8 if "int8" in self.kind else ONNX_FP32)
        )
        if file is None or not file.is_file():
            raise Unavailable(f"no ONNX model: {_error(artifacts, 'onnx')}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        return f"onnxruntime {ort.__version__}, {THREADS} intra-op threads, sequential"

    def set_inputs(self, inputs: dict):
        """Keep the inputs for `run`; returns last_hidden_state of one forward."""
        if self.library == "torch":
            self.inputs = {k: self.torch.from_numpy(v) for k, v in inputs.items()}
        elif self.library == "ort":
            self.inputs = {k: v for k, v in inputs.items() if k in self.input_names}
        else:
            self.inputs = inputs
        return self.forward()

    def forward(self):
        if self.library == "torch":
            with self.torch.inference_mode():
                return self.model(**self.inputs).last_hidden_state.numpy()
        if self.library == "ort":
            return self.session.run(["last_hidden_state"], self.inputs)[0]
        return self.model(**self.inputs).last_hidden_state

    def run(self) -> float:
        start = time.perf_counter()
        self.forward()
        return time.perf_counter() - start


def torch_quantize_dynamic(torch):
    """torch's eager dynamic quantisation, wherever this torch keeps it."""
    for owner in ("ao.quantization", "quantization"):
        module = torch
        for part in owner.split("."):
            module = getattr(module, part, None)
        if module is not None and hasattr(module, "quantize_dynamic"):
            return module.quantize_dynamic
    raise Unavailable(f"torch {torch.__version__} has no quantize_dynamic")


# --- prepared models ---------------------------------------------------------------------------
def prepare(path, artifacts) -> None:
    """Write what some runtimes load into the folder `artifacts`:
      * model.onnx: transformers' model at `path` exported to ONNX (TorchScript exporter, opset
        17, batch and token axes dynamic), and model-int8.onnx: that file quantised by
        onnxruntime's quantize_dynamic (int8 weights);
      * minibert-int8/: minibert.quantize of the model, saved with save_pretrained.
    Where a step fails, its reason goes to error-onnx.txt or error-minibert-int8.txt.

    Run it in a process of its own: in transformers 5 the traced model computes wrong outputs
    after the export."""
    artifacts = Path(artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    for step, name in ((_export, "onnx"), (_save_minibert_int8, MINIBERT_INT8)):
        try:
            step(str(path), artifacts)
        except Exception as exc:  # Unavailable included: the runtimes report it as n/a
            (artifacts / f"error-{name}.txt").write_text(f"{type(exc).__name__}: {exc}\n")


def _error(artifacts, name) -> str:
    """Why `prepare` did not write `name`, as it recorded it."""
    file = artifacts / f"error-{name}.txt" if artifacts else None
    return file.read_text().strip() if file and file.is_file() else "not prepared"


def _save_minibert_int8(path, artifacts) -> None:
    minibert = _require("minibert")
    if not hasattr(minibert, "quantize"):
        raise Unavailable("this minibert has no minibert.quantize")
    minibert.quantize(minibert.load(path)).save_pretrained(artifacts / MINIBERT_INT8)


def _export(path, artifacts) -> None:
    torch = _require("torch")
    transformers = _require("transformers")
    _require("onnx")  # the TorchScript exporter writes through it
    quantization = _require("onnxruntime.quantization")
    torch.set_num_threads(THREADS)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's advice to pre-process
    model = transformers.AutoModel.from_pretrained(path).eval()

    class Outputs(torch.nn.Module):
        """Positional inputs and a tuple of outputs, as the exporter wants them."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state, out.pooler_output

    # trace with a padded batch of 2, so that the mask is traced as data, not folded away
    ids = torch.full((2, 21), 2000, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUT_NAMES, "last_hidden_state")}
    axes["pooler_output"] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow
        torch.onnx.export(
            Outputs(model),
            (ids, mask, torch.zeros_like(ids)),
            str(artifacts / ONNX_FP32),
            input_names=list(INPUT_NAMES),
            output_names=["last_hidden_state", "pooler_output"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,  # the dynamo exporter needs onnxscript
        )
        quantization.quantize_dynamic(
            str(artifacts / ONNX_FP32),
            str(artifacts / ONNX_INT8),
            weight_type=quantization.QuantType.QInt8,
        )


# --- peak memory --------------------------------------------------------------------------------
def peak_mib() -> float:
    """This process's RSS high-water mark in MiB. Linux keeps getrusage's ru_maxrss across fork +
    exec, so a child of a big parent would start at the parent's peak; VmHWM belongs to this
    process image alone."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB -> MiB
    except OSError:
        pass
    import resource

    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def memory_child(kind: str, path: str, artifacts: str, vocab: int) -> None:
    """Print {"import": MiB, "load": MiB, "forward": MiB} as JSON: the peak after importing the
    library, after loading (and quantising) the model, and after one 8 x 128 forward. Run in a
    fresh `python -c` process that imports only this module."""
    runtime = Runtime(kind)
    stages = {}
    try:
        _require({"ort": "onnxruntime"}.get(runtime.library, runtime.library))
        if runtime.library == "torch":
            _require("transformers")
        stages["import"] = peak_mib()
        runtime.load(path, artifacts)
        stages["load"] = peak_mib()
        import numpy as np

        ids = np.random.default_rng(0).integers(1000, vocab, (8, 128))
        runtime.set_inputs(
            {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
            }
        )
        stages["forward"] = peak_mib()
    except Unavailable as exc:
        stages = {"unavailable": str(exc)}
    print(json.dumps(stages))
