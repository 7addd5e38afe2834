"""Checkpoint files: the formats only, never a model.

One module per format, each reading tensors into numpy without the library that wrote them:

    safetensors_format.py   model.safetensors (and the shards of an index)
    pytorch_pickle.py       pytorch_model.bin and other torch.save zips, through an unpickler
                            that refuses every global a weights file should not need
    tf1_bundle.py           TensorFlow checkpoints (Google's BERT and ALBERT), parsing the
                            .index table (sstable.py) and the .data-* shards
    tf1_names.py            Google's TF1 names and config files -> Hugging Face's
    fairseq.py              fairseq RoBERTa model.pt -> Hugging Face names and config
    files.py                a folder: which format, which files, {HF name: array}, a listing
    writing.py              atomic writes of safetensors and JSON

io.py turns the tensors into a model; this package imports nothing from the models.
"""

from .fairseq import FAIRSEQ_NAME
from .files import (
    CONFIG_NAME,
    PYTORCH_INDEX,
    PYTORCH_NAME,
    SAFETENSORS_INDEX,
    SAFETENSORS_NAME,
    StoredTensor,
    checkpoint_format,
    hf_config_of,
    list_tensors,
    read_weights,
    stored_dtypes,
    weight_bytes,
    weight_files,
)
from .pytorch_pickle import read_pytorch_bin, read_torch_file
from .safetensors_format import SAFETENSORS_NUMPY, read_safetensors, safetensors_header
from .tf1_bundle import read_bundle, tf1_prefix
from .writing import write_json, write_safetensors

__all__ = [
    "CONFIG_NAME",
    "FAIRSEQ_NAME",
    "PYTORCH_INDEX",
    "PYTORCH_NAME",
    "SAFETENSORS_INDEX",
    "SAFETENSORS_NAME",
    "SAFETENSORS_NUMPY",
    "StoredTensor",
    "checkpoint_format",
    "hf_config_of",
    "list_tensors",
    "read_bundle",
    "read_pytorch_bin",
    "read_safetensors",
    "read_torch_file",
    "read_weights",
    "safetensors_header",
    "stored_dtypes",
    "tf1_prefix",
    "weight_bytes",
    "weight_files",
    "write_json",
    "write_safetensors",
]
