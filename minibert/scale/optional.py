"""Optional dependencies (pyarrow, Ray, Dask), imported where they are first needed.

`import minibert` and `minibert --help` must stay quick, and most installs have none of them,
so each is imported inside the function that uses it, through `require`, whose error says which
extra to install.
"""

import importlib

from ..errors import MinibertError


class MissingDependencyError(MinibertError, ImportError):
    """An optional package that is not installed; the message names the extra that brings it.
    An ImportError, and a ValueError like every error a user can fix, so that the command line
    reports it in one line."""


def require(module: str, extra: str, purpose: str):
    """Import `module` (e.g. "pyarrow.parquet"), or raise MissingDependencyError saying that
    `purpose` needs `pip install "minibert[extra]"`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingDependencyError(
            f"{purpose} needs {top}, which is not installed ({exc}); "
            f'install it with: pip install "minibert[{extra}]"'
        ) from None
