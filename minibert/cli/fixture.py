"""`minibert export-fixture MODEL --text TEXT -o case.npz`: a reference fixture for other
implementations, with no torch: the inputs, every traced intermediate (and with --grads their
gradients) and a JSON manifest, in one .npz (minibert/reference.py describes the file)."""

from pathlib import Path

from .common import positive_int


def register(command) -> None:
    sub = command(
        "export-fixture",
        cmd_export_fixture,
        "Write one forward's inputs and every intermediate to an .npz, to test another BERT.",
        """
        Tokenizes the texts (--pair gives each a second text) with the model folder's
        tokenizer, traces one forward (minibert.trace) and writes input_ids,
        attention_mask, token_type_ids, every named intermediate (docs/trace.md's table) and
        manifest.json (each array's name, shape and dtype, the model config, minibert's
        version, the tolerance minibert meets against transformers) into one .npz.
        --grads also runs backward on the loss sum(last_hidden_state * loss.weights), with
        loss.weights a seeded standard normal tensor stored in the file, and stores each
        intermediate's gradient as grad/NAME. --float64 loads the model in float64.
        docs/reference-fixtures.md shows how to test an implementation against the file.
        """,
        'minibert export-fixture path/to/bert --text "Hello world." --grads -o case.npz',
    )
    sub.add_argument("model", metavar="MODEL", help="model folder with its tokenizer")
    sub.add_argument(
        "--text", action="append", default=[], metavar="TEXT", help="a text (repeat for a batch)"
    )
    sub.add_argument(
        "--pair", action="append", default=None, metavar="TEXT", help="each text's second text"
    )
    sub.add_argument("--grads", action="store_true", help="also store gradients (grad/NAME)")
    sub.add_argument("--float64", action="store_true", help="load and run the model in float64")
    sub.add_argument("--max-length", type=positive_int, metavar="N", help="tokens per row at most")
    sub.add_argument("--seed", type=int, default=0, help="seed of the loss weights (--grads)")
    sub.add_argument("-o", "--output", required=True, metavar="FILE", help="the .npz to write")
    sub.add_argument("--force", action="store_true", help="replace FILE if it exists")


def cmd_export_fixture(args) -> int:
    from ..errors import InputError
    from ..io import load
    from ..reference import build_fixture, write_fixture
    from ..tokenizer import load_tokenizer

    if not args.text:
        raise InputError("no --text given: a fixture needs at least one text")
    output = Path(args.output)
    if output.exists() and not args.force:
        raise InputError(f"{output} already exists: pass --force to replace it")
    model = load(args.model, dtype="float64" if args.float64 else "float32")
    tokenizer = load_tokenizer(args.model)
    arrays, manifest = build_fixture(
        model,
        tokenizer,
        args.text,
        args.pair,
        grads=args.grads,
        max_length=args.max_length,
        seed=args.seed,
    )
    write_fixture(output, arrays, manifest, force=args.force)
    print(f"wrote {output}: {len(arrays)} arrays, {len(manifest['arrays'])} in the manifest")
    return 0
