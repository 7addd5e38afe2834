"""The README's Python example runs, and the shapes its comments promise are the real ones."""

import re
from pathlib import Path

import pytest

from conftest import needs_minilm

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.minilm
@needs_minilm
def test_readme_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    for line in code.splitlines():  # "expr   # (2, 10, 384)..." lines state a shape
        m = re.match(r"^(\S[^#=]*?)\s+# (\([\d, ]+\))", line)
        if m:
            assert str(eval(m.group(1), namespace)) == m.group(2), line
    assert (tmp_path / "out" / "model.safetensors").is_file()
