"""`minibert convert IN OUT` and `minibert inspect PATH`: checkpoints in other formats.

convert loads a folder in any format minibert reads (safetensors, pytorch_model.bin, sharded
files, Google's TF1 BERT/ALBERT checkpoints with bert_config.json / albert_config.json,
fairseq RoBERTa model.pt) and writes it as a Hugging Face folder: config.json,
model.safetensors and the tokenizer files found beside it. It then loads the written folder
and checks that it gives the same outputs.

inspect lists every tensor a folder (or one weights file) stores: dtype, shape, the Hugging
Face name it maps to and its status: mapped (the model uses it), ignored (optimizer slots,
step counters, buffers), unused head (a head the model class has no use for), unused (no
Hugging Face name fits, or the body does not use it), filled (made by the conversion:
fairseq's missing token-type table), and missing (needed, not stored).
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from ..checkpoint import checkpoint_format, hf_config_of, list_tensors
from ..checkpoint.files import TF1_CONFIGS
from ..errors import CheckpointError


def register(command) -> None:
    sub = command(
        "convert",
        cmd_convert,
        "Write a checkpoint of another format as a Hugging Face folder.",
        """
        Reads IN (a folder holding model.safetensors, pytorch_model.bin, a sharded index, a
        Google TF1 checkpoint PREFIX.index + PREFIX.data-* with bert_config.json or
        albert_config.json, or a fairseq RoBERTa model.pt) and writes OUT: config.json,
        model.safetensors and the tokenizer files of IN (vocab.txt, tokenizer.json, ...;
        Google's ALBERT 30k-clean.model as spiece.model).
        Optimizer slots and step counters are left out. The class is the one whose heads IN
        stores (BertForPreTraining for a pretraining checkpoint), unless --architecture names
        another of the same family. OUT is loaded again and must give IN's outputs.
        """,
        "minibert convert uncased_L-12_H-768_A-12 bert-base-uncased-hf",
    )
    sub.add_argument("input", metavar="IN", help="folder to convert")
    sub.add_argument("output", metavar="OUT", help="folder to write (new or empty)")
    sub.add_argument(
        "--architecture",
        metavar="CLASS",
        help="class to write, e.g. BertModel to drop the pretraining heads (default: the "
        "class whose heads IN stores)",
    )
    sub.add_argument(
        "--cased",
        action="store_true",
        help="IN's vocab.txt is cased (Google's cased_* models): write tokenizer_config.json "
        "with do_lower_case false, as Google's folders do not say",
    )

    sub = command(
        "inspect",
        cmd_inspect,
        "List every tensor a checkpoint stores and what it maps to.",
        """
        For each stored tensor: its name, dtype, shape, the Hugging Face name it maps to and
        its status: mapped, ignored (optimizer slots such as adam_m/adam_v, global_step,
        buffers), unused head (stored, but the class does not use it), unused (no Hugging
        Face name fits), filled (made by the conversion), then the tensors the class needs
        that are missing. PATH is a folder in
        any format convert reads, or a single weights file (.safetensors, .bin, .index, .pt).
        Nothing is loaded into a model, so a checkpoint that does not load can be inspected.
        """,
        "minibert inspect uncased_L-12_H-768_A-12",
    )
    sub.add_argument("path", metavar="PATH", help="folder or weights file")
    sub.add_argument(
        "--architecture",
        metavar="CLASS",
        help="check the tensors against this class (default: the folder's own)",
    )
    sub.add_argument("--json", action="store_true", help="print a JSON list instead")


def cmd_convert(args) -> int:
    from ..io import load
    from ..tokenizer import copy_tokenizer_files

    source, target = Path(args.input), Path(args.output)
    if not source.is_dir():
        problem = "does not exist" if not source.exists() else "is not a folder"
        raise CheckpointError(f"model folder {source} {problem}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"{target} exists and is not an empty folder: choose a new one")
    if args.cased and not (source / "vocab.txt").is_file():
        raise ValueError(f"--cased applies to a vocab.txt, and {source} has none")
    kind = checkpoint_format(source)
    model = load(source, architecture=args.architecture)
    model.save_pretrained(target)
    copied = copy_tokenizer_files(source, target)
    copied += _google_sentencepiece(source, target, copied)
    if args.cased:
        settings = target / "tokenizer_config.json"
        config = json.loads(settings.read_text()) if settings.is_file() else {}
        settings.write_text(json.dumps({**config, "do_lower_case": False}, indent=2) + "\n")
        copied.append("tokenizer_config.json (do_lower_case false)")
    difference = _round_trip_difference(model, target)
    report = model.load_report
    print(f"read {source} ({kind}) as {model.config.architecture}")
    print(f"  tensors  {report['used']} mapped, {len(report['ignored'])} ignored", end="")
    print(f", {len(report['unexpected'])} unused" if report["unexpected"] else "")
    print(f"wrote {target}: config.json, model.safetensors")
    if copied:
        print(f"  copied   {', '.join(copied)}")
    elif kind in ("tf1", "fairseq"):
        print("  no tokenizer files were found beside the weights: add them to OUT")
    print(f"  check    reloaded outputs differ by at most {difference:.1e}")
    return 0


def _google_sentencepiece(source: Path, target: Path, copied: list) -> list[str]:
    """Google's ALBERT folders ship the SentencePiece model as 30k-clean.model; a Hugging Face
    folder calls it spiece.model. Copy the one *.model file under that name."""
    models = sorted(source.glob("*.model"))
    if "spiece.model" in copied or len(models) != 1:
        return []
    shutil.copyfile(models[0], target / "spiece.model")
    return [f"{models[0].name} as spiece.model"]


def _round_trip_difference(model, folder: Path) -> float:
    """Largest difference between the model's and the written folder's last hidden states on
    a few random token ids (their layout and values must be the same)."""
    from ..io import load

    again = load(folder)
    rng = np.random.default_rng(0)
    T = min(8, model.config.max_length)
    ids = rng.integers(0, model.config.vocab_size, (2, T))
    mask = np.ones_like(ids)
    before = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    after = again(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return float(np.abs(before.hidden_states[-1] - after.hidden_states[-1]).max())


def inspect_rows(path, architecture: str | None = None) -> list[dict]:
    """The rows `minibert inspect` prints: one per stored tensor, then one per missing one."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such folder or file: {path}")
    stored = list_tensors(path)
    rows = [
        {
            "name": t.name,
            "dtype": t.dtype,
            "shape": list(t.shape),
            "hf_name": t.hf_name,
            "status": t.status,
            "note": t.note,
        }
        for t in stored
    ]
    model = _skeleton(path, architecture)
    if model is None:  # a lone file: no config says what the model needs
        return rows
    from ..io import checkpoint_status

    names = [t.hf_name for t in stored if t.status in ("mapped", "filled")]
    status, missing = checkpoint_status(model, names)
    for row in rows:
        if row["status"] == "mapped":
            row["status"] = status[row["hf_name"]]
    body = (f"{model.prefix}.embeddings.", f"{model.prefix}.encoder.", "embeddings.", "encoder.")
    for name in missing:
        fresh = architecture is not None and not name.startswith(body)
        note = "drawn fresh when loaded as this class" if fresh else ""
        rows.append(
            {"name": "-", "dtype": "-", "shape": None, "hf_name": name, "status": "missing",
             "note": note}
        )  # fmt: skip
    return rows


def _skeleton(path: Path, architecture: str | None):
    """A model of the folder's class (its parameters freshly drawn), or None for a file."""
    if not path.is_dir():
        return None
    from ..io import read_config
    from ..models.auto import model_class

    if not (path / "config.json").is_file():
        google = [name for name in TF1_CONFIGS if (path / name).is_file()]
        if checkpoint_format(path) == "tf1" and not google:
            return None  # a bundle without its config: list what it stores, nothing more
        if hf_config_of(path) is None:
            return None
    config = read_config(path)
    if architecture is not None:
        config = config.replace(architecture=architecture)
    return model_class(config)(config)


def cmd_inspect(args) -> int:
    rows = inspect_rows(args.path, args.architecture)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        shape = "-" if row["shape"] is None else "x".join(map(str, row["shape"])) or "scalar"
        target = row["hf_name"] or "-"
        note = f"  ({row['note']})" if row["note"] else ""
        line = f"{row['name']:<{width}}  {row['dtype']:<8} {shape:<10} {row['status']:<11} {target}"
        print(line + note)
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{len(rows)} rows: {summary}", file=sys.stderr)
    return 0
