"""`minibert diff MODEL --against DUMP`: where another implementation's activations part from
minibert's, op by op, and which known convention (GELU, LayerNorm eps, mask fill, positions,
token types, pooler) explains it (minibert/diff/ does the work)."""

import json


def register(command) -> None:
    sub = command(
        "diff",
        cmd_diff,
        "Compare another implementation's activations with minibert's and name the cause.",
        """
        DUMP is an .npz of named activations from one forward of another implementation:
        in minibert.trace's names (docs/trace.md; an export-fixture file works too), or in
        its own names with --mapping (a JSON file, or 'transformers' for transformers' BERT
        and RoBERTa module names as torch forward hooks capture them). The inputs come from
        the dump (input_ids, attention_mask, token_type_ids) or from --text, tokenized with
        the model folder's tokenizer.

        Prints each compared op's max |diff| and relative error in forward order, the first
        op where the error jumps (past --tolerance and 100x every op before it), then re-runs
        minibert with each known convention flipped (exact or tanh GELU, LayerNorm eps 1e-12,
        1e-5 or 1e-6, mask fill finfo.min, -1e4 or -1e9, RoBERTa's positions or BERT's,
        token types on or off, pooler or [CLS]) and says which flip closes the gap.
        docs/diff.md explains the table and how to make a dump.
        """,
        "minibert diff path/to/bert --against their.npz --mapping transformers",
    )
    sub.add_argument("model", metavar="MODEL", help="model folder (with its tokenizer for --text)")
    sub.add_argument("--against", required=True, metavar="DUMP", help="the .npz to compare")
    sub.add_argument(
        "--mapping",
        metavar="FILE",
        help="their names -> ours: a JSON file, or 'transformers' (default: the dump uses ours)",
    )
    sub.add_argument(
        "--text", action="append", default=[], metavar="TEXT", help="an input text (repeat)"
    )
    sub.add_argument(
        "--pair", action="append", default=None, metavar="TEXT", help="each text's second text"
    )
    sub.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest error counted as agreement, max |diff| / (1 + |theirs|)",
    )
    sub.add_argument(
        "--no-conventions", action="store_true", help="compare only; do not re-run minibert"
    )
    sub.add_argument("--json", action="store_true", help="print the result as JSON")


def cmd_diff(args) -> int:
    from ..diff import compare
    from ..errors import InputError
    from ..io import load

    if args.pair is not None and not args.text:
        raise InputError("--pair needs --text: give each pair's first text")
    model = load(args.model)
    inputs = None
    if args.text:
        from ..tokenizer import load_tokenizer

        if args.pair is not None and len(args.pair) != len(args.text):
            raise InputError(f"{len(args.text)} texts but {len(args.pair)} pairs")
        encoded = load_tokenizer(args.model)(args.text, args.pair, padding=True, truncation=True)
        inputs = {name: encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids")}
    result = compare(
        model,
        args.against,
        mapping=args.mapping,
        inputs=inputs,
        tolerance=args.tolerance,
        conventions_search=not args.no_conventions,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.format())
    return 0
