"""`minibert trim-vocab MODEL OUT --corpus FILE...`: a copy of a model folder whose vocabulary
keeps only the word pieces a corpus uses (minibert.compression.vocabulary).

It prints the corpus coverage, the vocabulary and file sizes before and after, and with
--held-out FILE how the trimmed folder agrees with MODEL on texts it was not trimmed on.
"""

from pathlib import Path

from ..data.text import corpus_sentences
from .common import positive_int, text_lines


def register(command) -> None:
    sub = command(
        "trim-vocab",
        cmd_trim_vocab,
        "Cut a model's vocabulary to the word pieces a corpus uses.",
        """
        Tokenizes the --corpus files (split into sentences), keeps every WordPiece piece used
        at least --min-count times plus the special tokens and every single-character piece
        (so any text stays tokenizable), and writes OUT: the tokenizer files and config.json
        renumbered, and the word-embedding table (float32 or int8) cut to the kept rows.
        Texts whose pieces all survived get exactly MODEL's outputs. --held-out FILE (one text
        a line) reports how many held-out texts are split identically and the cosine of their
        sentence vectors against MODEL's. Only WordPiece (BERT-family) tokenizers are trimmed.
        """,
        "minibert trim-vocab path/to/all-MiniLM-L6-v2 minilm-trimmed --corpus news.txt",
    )
    sub.add_argument("model", metavar="MODEL", help="model folder with a WordPiece tokenizer")
    sub.add_argument("output", metavar="OUT", help="folder to write (created if missing)")
    sub.add_argument(
        "--corpus", nargs="+", required=True, metavar="FILE", help="text files to keep pieces of"
    )
    sub.add_argument(
        "--min-count", type=positive_int, default=1, help="keep pieces used at least this often"
    )
    sub.add_argument("--held-out", metavar="FILE", help="texts to check agreement on, one a line")


def cmd_trim_vocab(args) -> int:
    from ..compression.vocabulary import held_out_agreement, trim_vocabulary

    source, target = Path(args.model), Path(args.output)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder")
    for file in args.corpus + ([args.held_out] if args.held_out else []):
        if not Path(file).is_file():
            raise ValueError(f"no such text file: {file}")
    texts = corpus_sentences(args.corpus, min_words=1)
    if not texts:
        raise ValueError(f"the corpus files {args.corpus} hold no text")
    result = trim_vocabulary(source, texts, target, min_count=args.min_count)
    before = result.weight_bytes_before + result.tokenizer_bytes_before
    after = result.weight_bytes_after + result.tokenizer_bytes_after
    print(f"wrote {target}")
    print(f"  vocabulary {result.old_vocab_size:,} -> {result.new_vocab_size:,} pieces")
    print(
        f"  coverage   {result.coverage:.2%} of {result.corpus_tokens:,} corpus tokens keep "
        f"their piece ({len(texts):,} sentences)"
    )
    print(f"  size       {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB (weights and tokenizer)")
    if args.held_out:
        held_out = text_lines(args.held_out, "--held-out")
        if not held_out:
            raise ValueError(f"--held-out {args.held_out} holds no text")
        report = held_out_agreement(source, target, held_out)
        print(
            f"  held out   {report['texts_identical']:.2%} of {len(held_out):,} texts split "
            f"identically, {report['token_survival']:.2%} of their pieces kept"
        )
        print(f"  agreement  mean sentence cosine {report['mean_cosine']:.4f} with MODEL", end="")
        if report["changed_mean_cosine"] is not None:
            print(f" ({report['changed_mean_cosine']:.4f} over the texts split differently)")
        else:
            print()
    return 0
