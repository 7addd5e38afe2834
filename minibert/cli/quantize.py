"""`minibert quantize IN OUT`: write an int8 (or group-wise int4 / int8, optionally GPTQ-rounded)
copy of a model folder (minibert.quantize, quant.quantize_gptq).

The copy keeps the tokenizer files, so `minibert encode --model OUT` works on it, and the
command reports what changed: size on disk before and after, and how closely the quantized
model follows the float one (mean cosine of mean-pooled sentence vectors when the folder has a
tokenizer, else the relative error of the hidden states on random token ids).
"""

import time
from pathlib import Path

import numpy as np

from ..checkpoint import weight_bytes
from ..io import load
from ..quant import calibration_batches, quantize, quantize_gptq
from ..sentence import SentenceEncoder
from ..tokenizer import copy_tokenizer_files, load_tokenizer
from .common import text_lines

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
        "Write an int8 (or group-wise int4) copy of a model folder.",
        """
        Loads IN (float32), quantizes every linear layer to int8 (weights symmetric per output
        channel; activations quantized per row as the model runs) and, unless
        --no-embeddings, the word-embedding table (one scale per row), then writes OUT:
        config.json with a "quantization" entry, model.safetensors with the codes and their
        scales, and IN's tokenizer files. minibert.load(OUT) returns the quantized model.
        With --group-size, the weights get one scale per group of that many input channels
        instead (Q-BERT's group-wise scheme, activations kept float32), at --bits 8 or 4 (int4
        codes two to a byte), the word table at --embedding-bits; --gptq rounds the encoder's
        layers with GPTQ (docs/quantization.md) on calibration texts. Prints the sizes and how
        closely the quantized model follows the float one.
        """,
        "minibert quantize path/to/all-MiniLM-L6-v2 minilm-int8\n  "
        "minibert quantize path/to/all-MiniLM-L6-v2 minilm-int4 --bits 4 --group-size 128 "
        "--gptq texts.txt",
    )
    sub.add_argument("input", metavar="IN", help="float model folder (config.json + weights)")
    sub.add_argument("output", metavar="OUT", help="folder to write (created if missing)")
    sub.add_argument(
        "--no-embeddings", action="store_true", help="keep the word-embedding table float32"
    )
    sub.add_argument("--bits", type=int, choices=(8, 4), default=8, help="bits a weight")
    sub.add_argument(
        "--group-size",
        type=int,
        metavar="N",
        help="one scale per N input channels (group-wise; --bits 4 needs it, e.g. 128)",
    )
    sub.add_argument(
        "--embedding-bits", type=int, choices=(8, 4), help="the word table's bits (default --bits)"
    )
    sub.add_argument(
        "--gptq",
        metavar="TEXTS",
        help="round the encoder's layers with GPTQ, calibrated on these texts (one a line)",
    )
    sub.add_argument(
        "--calibration", type=int, default=512, metavar="N", help="texts of --gptq used"
    )


def cmd_quantize(args) -> int:
    source, target = Path(args.input), Path(args.output)
    if target.exists() and target.resolve() == source.resolve():
        raise ValueError("OUT must differ from IN: quantize writes a new folder")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder")
    grouped = args.group_size is not None
    if not grouped and (args.bits == 4 or args.embedding_bits is not None or args.gptq):
        raise ValueError(
            "--bits 4, --embedding-bits and --gptq are group-wise: give --group-size too "
            "(e.g. --group-size 128)"
        )
    if args.calibration < 1:
        raise ValueError(f"--calibration must be at least 1, got {args.calibration}")
    batches = _calibration(source, Path(args.gptq), args.calibration) if args.gptq else None
    start = time.perf_counter()
    model = load(source)
    options = {"embeddings": not args.no_embeddings}
    if grouped:
        options.update(bits=args.bits, group_size=args.group_size)
        options["embedding_bits"] = args.embedding_bits
    if batches is not None:
        options.pop("embeddings")  # quantize_gptq quantizes the table as quantize does
        qmodel = quantize_gptq(model, batches, **options)
    else:
        qmodel = quantize(model, **options)
    qmodel.save_pretrained(target)
    copied = copy_tokenizer_files(source, target)
    seconds = time.perf_counter() - start

    before, after = weight_bytes(source), weight_bytes(target)
    print(f"wrote {target} in {seconds:.1f} s")
    print(f"  weights  {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB ({100 * after / before:.0f}%)")
    print(f"  low-bit  {_low_bit_share(qmodel)}")
    print(f"  agreement {_agreement(source, model, qmodel, bool(copied))}")
    if copied:
        print(f"  copied   {', '.join(copied)}")
    return 0


def _low_bit_share(qmodel) -> str:
    """How many parameters are stored as int8 or packed int4 codes (a byte holding two int4
    codes counts as the two weights it stands for)."""
    total = qmodel.num_parameters()
    low = sum(
        m.parameter_size(key)
        for m in qmodel.modules()
        for key, a in m.params.items()
        if a.dtype.name in ("int8", "uint8")
    )
    return f"{low:,} of {total:,} parameters ({100 * low / total:.1f}%)"


def _calibration(source: Path, file: Path, count: int) -> list:
    """The first `count` texts of file, tokenized with IN's tokenizer in batches of 32."""
    texts = text_lines(file, "--gptq")
    if not texts:
        raise ValueError(f"--gptq {file} holds no text")
    try:
        tokenizer = load_tokenizer(source)
    except Exception as exc:
        raise ValueError(f"--gptq needs IN's tokenizer to read the texts: {exc}") from None
    return calibration_batches(tokenizer, texts[:count])


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
                f"mean cosine {cos.mean():.4f} (min {cos.min():.4f}) between float32 and "
                f"quantized sentence vectors of {len(CHECK_SENTENCES)} sentences"
            )
    config = model.config
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.vocab_size, (2, min(32, config.max_position_embeddings)))
    a = model(ids).last_hidden_state
    b = qmodel(ids).last_hidden_state
    gap = float(np.abs(a - b).max() / np.abs(a).max())
    return f"hidden states on random ids differ by {gap:.2%} of their largest value"
