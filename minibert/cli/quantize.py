"""`minibert quantize IN OUT`: write an int8 copy of a model folder (minibert.quantize).

The copy keeps the tokenizer files, so `minibert encode --model OUT` works on it, and the
command reports what changed: size on disk before and after, and how closely the int8 model
follows the float one (mean cosine of mean-pooled sentence vectors when the folder has a
tokenizer, else the relative error of the hidden states on random token ids).
"""

import time
from pathlib import Path

import numpy as np

from ..checkpoint import weight_bytes
from ..io import load
from ..quant import quantize
from ..sentence import SentenceEncoder
from ..tokenizer import copy_tokenizer_files

CHECK_SENTENCES = (
    "The chef chopped onions and garlic for the sauce.",
    "Astronomers found a new planet orbiting a red dwarf.",
    "The striker scored twice in the second half.",
    "How do I reset the password of my account?",
    "Prices rose by three percent over the last year.",
    "A quiet village lies at the foot of the mountains.",
    "The committee will meet again on Tuesday at noon.",
    "She could not believe how the story ended!",
)


def register(command) -> None:
    sub = command(
        "quantize",
        cmd_quantize,
        "Write an int8 copy of a model folder.",
        """
        Loads IN (float32), quantizes every linear layer to int8 (weights symmetric per output
        channel; activations quantized per row as the model runs) and, unless
        --no-embeddings, the word-embedding table (one scale per row), then writes OUT:
        config.json with a "quantization" entry, model.safetensors with int8 tensors and their
        scales, and IN's tokenizer files. minibert.load(OUT) returns the int8 model. Prints
        the sizes and how closely the int8 model follows the float one.
        """,
        "minibert quantize path/to/all-MiniLM-L6-v2 minilm-int8",
    )
    sub.add_argument("input", metavar="IN", help="float model folder (config.json + weights)")
    sub.add_argument("output", metavar="OUT", help="folder to write (created if missing)")
    sub.add_argument(
        "--no-embeddings", action="store_true", help="keep the word-embedding table float32"
    )


def cmd_quantize(args) -> int:
    source, target = Path(args.input), Path(args.output)
    if target.exists() and target.resolve() == source.resolve():
        raise ValueError("OUT must differ from IN: quantize writes a new folder")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder")
    start = time.perf_counter()
    model = load(source)
    qmodel = quantize(model, embeddings=not args.no_embeddings)
    qmodel.save_pretrained(target)
    copied = copy_tokenizer_files(source, target)
    seconds = time.perf_counter() - start

    before, after = weight_bytes(source), weight_bytes(target)
    print(f"wrote {target} in {seconds:.1f} s")
    print(f"  weights  {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB ({100 * after / before:.0f}%)")
    print(f"  int8     {_int8_share(qmodel)}")
    print(f"  agreement {_agreement(source, model, qmodel, bool(copied))}")
    if copied:
        print(f"  copied   {', '.join(copied)}")
    return 0


def _int8_share(qmodel) -> str:
    total = qmodel.num_parameters()
    int8 = sum(a.size for _, a in qmodel.named_parameters() if a.dtype.name == "int8")
    return f"{int8:,} of {total:,} parameters ({100 * int8 / total:.1f}%)"


def _agreement(source: Path, model, qmodel, has_tokenizer: bool) -> str:
    if has_tokenizer:
        try:
            encoder = SentenceEncoder(source)
        except Exception:  # a tokenizer file we cannot read: fall back to random ids
            encoder = None
        if encoder is not None:
            vectors = encoder.encode(list(CHECK_SENTENCES))
            encoder.model = qmodel
            qvectors = encoder.encode(list(CHECK_SENTENCES))
            cos = np.sum(vectors * qvectors, axis=1)
            return (
                f"mean cosine {cos.mean():.4f} (min {cos.min():.4f}) between float32 and int8 "
                f"sentence vectors of {len(CHECK_SENTENCES)} sentences"
            )
    config = model.config
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.vocab_size, (2, min(32, config.max_position_embeddings)))
    a = model(ids).last_hidden_state
    b = qmodel(ids).last_hidden_state
    gap = float(np.abs(a - b).max() / np.abs(a).max())
    return f"hidden states on random ids differ by {gap:.2%} of their largest value"
