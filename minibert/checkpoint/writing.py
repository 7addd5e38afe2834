"""Writing a folder's files atomically: a temporary file, then a rename, so a folder never
holds half a file."""

import json
import os
from pathlib import Path

from safetensors.numpy import save_file


def write_safetensors(tensors: dict, file, metadata: dict | None = None) -> None:
    """{name: array} into a .safetensors file, atomically (metadata {"format": "pt"} by
    default, which transformers expects)."""
    file = Path(file)
    tmp = file.with_name(file.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata or {"format": "pt"})
    os.replace(tmp, file)


def write_json(data, file) -> None:
    """Indented, key-sorted JSON with a final newline, written atomically."""
    file = Path(file)
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, file)
