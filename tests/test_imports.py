"""`import minibert` stays light: no torch, transformers or cupy, and numba only when a kernel
first runs (jaxtyping's test_no_jax_dependency)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import minibert


def test_import_does_not_pull_heavy_modules():
    code = (
        "import sys, minibert\n"
        "heavy = [m for m in ('torch', 'transformers', 'cupy', 'numba') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api():
    import minibert

    for name in ("load", "load_tokenizer", "SentenceEncoder", "EncoderConfig"):
        assert name in minibert.__all__
        assert hasattr(minibert, name)


def test_numba_avoids_a_spinning_openmp_runtime_loaded_before_it():
    """With torch imported first, our GOMP_SPINCOUNT comes too late, so Numba's workqueue pool is
    used instead of OpenMP (a stand-in module plays torch here; CI has no torch)."""
    code = (
        "import os, sys, types\n"
        "for name in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'NUMBA_THREADING_LAYER'):\n"
        "    os.environ.pop(name, None)\n"
        "sys.modules['torch'] = types.ModuleType('torch')\n"
        "from minibert.kernels.jit import numba_available\n"
        "import numba\n"
        "print(numba_available(), numba.config.THREADING_LAYER)\n"
    )
    out = _run_without_thread_policy(code)
    assert out.stdout.split() == ["True", "workqueue"]


# --- the shape of the house: layers and cycles, read from the source -------------------------
# Top to bottom; a module may import from any layer below its own, never from its own layer's
# other packages or from above. docs/architecture.md draws the same order.
LAYERS = (
    ("cli",),
    ("serve", "scale"),
    ("distill", "compression"),
    ("training",),
    ("evaluation",),
    ("pipelines",),
    ("sentence",),
    ("io", "reference", "diff", "explain"),
    ("quant", "models", "tokenizer"),
    ("nn",),
    ("functional",),
    ("kernels",),
    ("backend",),
    ("data",),
    ("config", "checkpoint", "wordpiece", "outputs", "pretrained", "tracing"),
    ("errors",),
)
PACKAGE = Path(minibert.__file__).parent


def _modules(package: Path = PACKAGE) -> dict:
    """{dotted module name: (file, is a package __init__)} for every file of the package."""
    found = {}
    for file in sorted(package.rglob("*.py")):
        parts = list(file.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (file, is_package)
    return found


def _imports(modules: dict) -> dict:
    """{module: {(imported module, line)}}: every import statement in the file, at the top or
    inside a function, resolved to the package's modules (outside ones are left out)."""
    edges = {}
    for name, (file, is_package) in modules.items():
        found = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = name.split(".") if is_package else name.split(".")[:-1]
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    root = ".".join(base + ([node.module] if node.module else []))
                else:
                    root = node.module
                # `from . import x` imports module x; `from .m import f` imports module m
                targets = [
                    f"{root}.{alias.name}" if f"{root}.{alias.name}" in modules else root
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name and target.startswith("minibert"):
                    found.add((target, node.lineno))
        edges[name] = found
    return edges


def _layer_of(module: str) -> tuple[int, str]:
    """(rank, top-level part) of minibert.<part>...; the root package ranks above everything."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1, "minibert"
    for rank, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return rank, parts[1]
    raise AssertionError(f"{module} is in no layer of LAYERS: give minibert.{parts[1]} a place")


def _layer_problems(edges: dict) -> list[str]:
    """An import into a layer above, or into another package of the same layer."""
    problems = []
    for module, targets in sorted(edges.items()):
        rank, part = _layer_of(module)
        for target, line in sorted(targets):
            target_rank, target_part = _layer_of(target)
            if target_part == part:
                continue  # inside one package or module: the cycle check watches it
            if target_rank <= rank:
                where = "a layer above" if target_rank < rank else "a sibling in its layer"
                problems.append(f"{module} (line {line}) imports {target}, {where}")
    return problems


def _cycles(edges: dict) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module (Tarjan)."""
    graph = {m: {t for t, _ in ts} for m, ts in edges.items()}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_imports_run_down_the_layers():
    problems = _layer_problems(_imports(_modules()))
    assert not problems, "\n".join(problems)


def test_no_import_cycles():
    cycles = _cycles(_imports(_modules()))
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_see_lazy_upward_imports_and_cycles(tmp_path):
    """A tree with a function-level import from kernels/ up into functional/, and functional/
    importing kernels/ back: both checks must name them."""
    files = {
        "__init__.py": "",
        "kernels/__init__.py": "",
        "kernels/softmax.py": "def reference():\n    from ..functional.softmax import forward\n",
        "functional/__init__.py": "",
        "functional/softmax.py": "from ..kernels import softmax\n\n\ndef forward():\n    pass\n",
        "nn.py": "import minibert.quant\n",
        "quant.py": "",
    }
    for name, text in files.items():
        file = tmp_path / "minibert" / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    edges = _imports(_modules(tmp_path / "minibert"))
    assert _layer_problems(edges) == [
        "minibert.kernels.softmax (line 2) imports minibert.functional.softmax, a layer above",
        "minibert.nn (line 1) imports minibert.quant, a layer above",
    ]
    assert _cycles(edges) == [["minibert.functional.softmax", "minibert.kernels.softmax"]]


@pytest.mark.parametrize(
    ("preset", "expected"),
    [({}, "100000"), ({"OMP_WAIT_POLICY": "PASSIVE"}, "unset"), ({"GOMP_SPINCOUNT": "7"}, "7")],
)
def test_openmp_spin_is_set_before_numba_unless_the_user_chose(preset, expected):
    """Numba's OpenMP threads spin about 1 ms (GOMP_SPINCOUNT) unless a policy was chosen."""
    code = (
        "import os\n"
        "from minibert.kernels.jit import numba_available\n"
        "numba_available()\n"
        "print(os.environ.get('GOMP_SPINCOUNT', 'unset'))\n"
    )
    assert _run_without_thread_policy(code, preset).stdout.split() == [expected]


def _run_without_thread_policy(code: str, preset: dict | None = None):
    """Run code in a fresh Python whose environment sets no OpenMP or Numba thread policy
    (but `preset`'s variables)."""
    policy = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_THREADING_LAYER")
    env = {k: v for k, v in os.environ.items() if k not in policy} | (preset or {})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
