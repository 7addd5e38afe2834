"""minibert diff: find where another implementation's activations part from minibert's, and why.

    from minibert.diff import compare
    result = compare(model, "their.npz", mapping="transformers")
    print(result.format())        # the per-op table, the first jump, the conventions, a verdict

align.py reads the dump and pairs its arrays with minibert.trace's names (directly, or through a
mapping such as the ready one for transformers' module names, transformers.json); report.py
measures each op's error and finds the first jump; conventions.py re-runs minibert with each
known convention flipped; diagnose.py puts them together. docs/diff.md is the guide.
"""

from .align import load_mapping, read_dump
from .conventions import Flip
from .diagnose import DiffResult, compare
from .report import Comparison, OpError

__all__ = ["Comparison", "DiffResult", "Flip", "OpError", "compare", "load_mapping", "read_dump"]
