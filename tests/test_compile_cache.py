"""The first run's compile: one line says what happens, and the compiled kernels are cached, in
the package's folder or, where that is not writable, in the user's cache folder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import minibert

RUN_A_KERNEL = """
import numpy as np
from minibert.kernels.layernorm import add_layernorm
x = np.ones((3, 8), np.float32)
add_layernorm(x, x, np.ones(8, np.float32), np.zeros(8, np.float32), 1e-5)
"""


def _run(code, cwd, env):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd, env=env
    )


def test_read_only_package_caches_in_the_user_folder_and_says_so_once(tmp_path):
    """A copy of the package whose kernels folder cannot hold a cache (its __pycache__ is a file
    here: a read-only install, for a process that may write anywhere, as root can): the first
    run announces the compile and caches under XDG_CACHE_HOME; the second is silent."""
    package = Path(minibert.__file__).parent
    site = tmp_path / "site"
    shutil.copytree(package, site / "minibert", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "minibert" / "kernels" / "__pycache__").write_text("not a folder")
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env |= {"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(cache), "PYTHONDONTWRITEBYTECODE": "1"}
    first = _run(RUN_A_KERNEL, tmp_path, env)
    lines = [line for line in first.stderr.splitlines() if line.startswith("minibert:")]
    assert len(lines) == 1, first.stderr
    assert "compiling its Numba kernels" in lines[0]
    assert str(cache) in lines[0]
    assert list(cache.rglob("*.nbi")), "no Numba cache index in the user's cache folder"
    second = _run(RUN_A_KERNEL, tmp_path, env)
    assert "minibert:" not in second.stderr


COMPILE_A_FORWARD_AND_BACKWARD = """
import json
import numpy as np
import minibert
from minibert.kernels import attention, attention_training, float32_linear, jit
from minibert.pretrained import minilm_path

model = minibert.load(minilm_path())
model(np.random.default_rng(0).integers(1000, 20000, (1, 16)))
minibert.quantize(model)(np.random.default_rng(2).integers(1000, 20000, (1, 16)))
model.train()
out = model(np.random.default_rng(1).integers(1000, 20000, (2, 9)))
model.backward(grads={"last_hidden_state": np.ones_like(out.last_hidden_state)})
kernels = {f.__name__: len(d.signatures) for (f, _), d in jit._COMPILED.items()}
helpers = {}
for module in (attention, attention_training, float32_linear):
    for name, value in vars(module).items():
        if getattr(value, "signatures", None):
            helpers[f"{module.__name__}.{name}"] = len(value.signatures)
print(json.dumps({"fast": jit.fast_kernels_enabled(), "kernels": kernels, "helpers": helpers}))
"""


def test_each_kernel_and_shared_helper_compiles_once(tmp_path):
    """A first forward and backward, with an empty cache, compile each kernel and each helper
    compiled as a function of its own (device(inline=False)) for one set of argument types: a
    second set is a second compile of seconds. Three ways that happened: a parallel loop's index
    is int64 where Numba types the kernel and uint64 in the loop it builds (so a helper taking
    it compiled twice); tuples of layers of two lengths (one layer; q, k and v); and a True or
    False written into a call inside a kernel, which Numba types as a literal (the int8 layer's
    GEMM compiled three times)."""
    import json

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    report = json.loads(_run(COMPILE_A_FORWARD_AND_BACKWARD, tmp_path, env).stdout)
    if not report["fast"]:
        pytest.skip("Numba is not usable here: nothing compiles")
    kernels, helpers = report["kernels"], report["helpers"]
    assert {"_attention_context_numba", "_backward_numba", "_quantize_rows_numba"} <= set(kernels)
    assert {"_linear_transposed", "_linear_numba"} & set(kernels)  # the CPU's float32 path
    assert {name: n for name, n in kernels.items() if n != 1} == {}
    # the training kernels' tiled_product also takes transposed views (two array layouts)
    twice = {"minibert.kernels.attention_training.tiled_product": 2}
    names = {f"minibert.kernels.{name}" for name in ("attention._attention_pair",
             "attention_training._forward_pair", "attention_training._backward_pair")}  # fmt: skip
    assert names <= set(helpers)
    assert {name: n for name, n in helpers.items() if n != twice.get(name, 1)} == {}
