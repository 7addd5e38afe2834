"""`minibert explain TEXT`: what a model does with one text: tokens, per-op costs, attention,
residual norms, pooled vectors, a memory estimate, and with --html the attention views
(minibert/explain/ holds the report; docs/explain.md explains each part)."""

import json
import sys


def register(command) -> None:
    sub = command(
        "explain",
        cmd_explain,
        "Explain one forward: tokens, FLOPs and bytes per op, attention, norms, memory.",
        """
        Tokenizes TEXT (and --pair, its second text) with the model folder's tokenizer,
        traces one forward and prints: the word pieces with their character offsets and
        words; per layer each op's shape, FLOPs and bytes moved; per head the attention
        entropy and the share of attention on [CLS] and [SEP] (<s> and </s>); the mean
        token norm along the residual stream; the vector under cls, mean and max pooling;
        the memory of an inference forward of --batch x --length tokens (default: one row of
        this text), and with --measure the peak measured for it; and what the model's family
        does differently. --html also writes the attention views (a head view and a model view
        of every head) as one self-contained page. --json prints the report as JSON instead.
        Without --model the bundled model is used.
        """,
        'minibert explain "The cat sat on the mat." --html explain.html',
    )
    sub.add_argument("text", metavar="TEXT", help="the text to explain")
    sub.add_argument("--pair", metavar="TEXT", help="a second text, as in a sentence pair")
    sub.add_argument("--model", metavar="PATH", help="model folder (default: the bundled model)")
    sub.add_argument("--html", metavar="FILE", help="also write the attention views to FILE")
    sub.add_argument("--batch", type=int, default=1, metavar="B", help="memory estimate: rows")
    sub.add_argument(
        "--length", type=int, metavar="T", help="memory estimate: tokens per row (default: TEXT's)"
    )
    sub.add_argument(
        "--measure", action="store_true", help="also measure the forward's peak (tracemalloc)"
    )
    sub.add_argument("--json", action="store_true", help="print the report as JSON")


def cmd_explain(args) -> int:
    from ..explain import explain, render_text, write_page
    from ..io import load
    from ..pretrained import shipped_path
    from ..tokenizer import load_tokenizer

    folder = args.model if args.model is not None else shipped_path()
    model = load(folder)
    tokenizer = load_tokenizer(folder)
    name = args.model if args.model is not None else "the bundled model"
    report = explain(
        model,
        tokenizer,
        args.text,
        args.pair,
        batch=args.batch,
        length=args.length,
        measure=args.measure,
        model_name=str(name),
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(render_text(report), end="")
    if args.html:
        path = write_page(report, args.html)
        # after JSON, stdout stays JSON alone
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
