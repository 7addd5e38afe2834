"""Where a benchmark ran: the CPU model, and the git revision of the code it measured.
Standard library only, so that the light tools (load_test.py) can use it too."""

import platform
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (what `lscpu` shows), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_revision() -> str:
    """The git commit minibert was measured at ("dirty" when the working tree had changes)."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=10"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"
