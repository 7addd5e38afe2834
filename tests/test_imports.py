"""`import minibert` stays light: no torch, transformers or cupy, and numba only when a kernel
first runs (jaxtyping's test_no_jax_dependency)."""

import subprocess
import sys


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
