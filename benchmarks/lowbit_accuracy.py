"""Group-wise low-bit quantisation of all-MiniLM-L6-v2: sentence agreement with float32, size on
disk, and the linear layer's time, reference against the fast path.

    python benchmarks/lowbit_accuracy.py            (about a minute on two cores)

1. Accuracy: the 20 sentences of tests/fixtures/minilm plus 400 templated sentences on a dozen
   topics (agreement.sentences, seed 0), embedded by the float32 model and by each quantized
   copy (minibert.quantize): the mean and smallest cosine between the two embeddings of a text,
   and top-1 retrieval agreement (the first 100 texts query the rest: does the quantized model
   rank the same text first?). Schemes: int8 per output channel (the default), int8 group-wise
   and int4 group-wise at groups 32, 64, 128, each with and without a quantized word-embedding
   table, and int8 group-wise layers with an int4 table. Size: model.safetensors as
   save_pretrained writes it. The int4 schemes also with GPTQ rounding (minibert/quant/gptq.py),
   calibrated on 512 sentences of the offline corpus (python scripts/fetch_data.py; rows left out
   with a note when it is missing), none of them among the texts measured.
2. Time of one feed-forward layer (384 -> 1536, MiniLM's up projection) at 16 and 1024 rows:
   float32 Linear, int8 per-channel QuantLinear, and int4 group 128 GroupQuantLinear as it runs
   by default (decoded once, then kept) and with keep_decoded off (decoding on every call, by the
   numpy reference and by the Numba kernel), the fastest of repeated calls. 3. MiniLM forwards.
Prints Markdown tables (docs/quantization.md shows them).
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from agreement import compare, sentences

import minibert
from minibert.data.text import corpus_files, corpus_sentences, data_dir
from minibert.kernels import use_fast_kernels
from minibert.nn import Linear
from minibert.pretrained import minilm_path
from minibert.quant import GroupQuantLinear, QuantLinear, calibration_batches, quantize_gptq

ROOT = Path(__file__).resolve().parents[1]
QUERIES = 100
CALIBRATION = 512  # corpus sentences for GPTQ
LAYERS = [  # (label, quantize keyword arguments); None is the float32 model
    ("float32", None),
    ("int8 per channel", {"bits": 8}),
    ("int8 group 128", {"bits": 8, "group_size": 128}),
    ("int4 group 128", {"bits": 4, "group_size": 128}),
    ("int4 group 64", {"bits": 4, "group_size": 64}),
    ("int4 group 32", {"bits": 4, "group_size": 32}),
]


def schemes():
    """(layers label, word-table label, quantize keyword arguments or None) per table row: each
    scheme with its table quantized alike and with a float32 table; int8 group 128 also with an
    int4 table."""
    for label, kwargs in LAYERS:
        if kwargs is None:
            yield label, "float32", None
            continue
        yield label, f"int{kwargs['bits']}", kwargs
        yield label, "float32", {**kwargs, "embeddings": False}
        if kwargs.get("group_size") and kwargs["bits"] == 8:
            yield label, "int4", {**kwargs, "embedding_bits": 4}


def texts() -> list:
    fixed = json.loads((ROOT / "tests" / "fixtures" / "minilm" / "sentences.json").read_text())
    return fixed + sentences(400, seed=0)


def size_on_disk(model) -> int:
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return (Path(folder) / "model.safetensors").stat().st_size


def corpus_calibration(tokenizer) -> list | None:
    """512 seeded corpus sentences in batches of 32, or None without the offline corpus."""
    if not (data_dir() / "corpus").is_dir():
        return None
    texts = corpus_sentences(corpus_files(), max_texts=CALIBRATION, seed=1)
    return calibration_batches(tokenizer, texts)


def accuracy_rows(all_texts) -> list:
    encoder = minibert.SentenceEncoder(minilm_path())
    fp32 = encoder.model
    reference = encoder.encode(all_texts).astype(np.float64)
    rows = []
    batches = corpus_calibration(encoder.tokenizer)
    if batches is None:
        print("no offline corpus (python scripts/fetch_data.py): the GPTQ rows are left out")
    gptq = [
        (f"{label} GPTQ", f"int{kw['bits']}", {**kw, "gptq": True})
        for label, kw in LAYERS
        if batches is not None and kw is not None and kw["bits"] == 4
    ]
    for label, table, kwargs in [*schemes(), *gptq]:
        if kwargs is None:
            model = fp32
        elif kwargs.get("gptq"):
            kw = {k: v for k, v in kwargs.items() if k != "gptq"}
            model = quantize_gptq(fp32, batches, **kw)
        else:
            model = minibert.quantize(fp32, **kwargs)
        encoder.model = model
        vectors = encoder.encode(all_texts).astype(np.float64)
        row = compare(reference, vectors, QUERIES)
        row["scheme"], row["word table"] = label, table
        row["MB"] = size_on_disk(model) / 1e6
        rows.append(row)
    encoder.model = fp32
    return rows


def best_ms(fn, repeats: int) -> float:
    """The fastest of `repeats` calls after a warm-up, in ms: on a shared machine the fastest
    call is the one least disturbed by other work."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def timing_rows() -> list:
    rng = np.random.default_rng(0)
    linear = Linear(384, 1536).eval()
    linear.params["weight"] = (0.05 * rng.standard_normal((1536, 384))).astype(np.float32)
    linear.params["bias"] = (0.05 * rng.standard_normal(1536)).astype(np.float32)
    int8 = QuantLinear.from_linear(linear).eval()
    int4 = GroupQuantLinear.from_linear(linear, 4, 128).eval()
    rows = []
    for m in (16, 1024):
        x = rng.standard_normal((m, 384)).astype(np.float32)
        repeats = 200 if m == 16 else 30
        row = {"rows": m}
        row["float32"] = best_ms(lambda x=x: linear.forward(x), repeats)
        row["int8 per channel"] = best_ms(lambda x=x: int8.forward(x), repeats)
        int4.keep_decoded = True  # the default: decoded on the first call, then kept
        row["int4 g128, decoded once"] = best_ms(lambda x=x: int4.forward(x), repeats)
        int4.keep_decoded = False  # only the codes kept: a decode on every call
        row["int4 g128 fast, decoding each call"] = best_ms(lambda x=x: int4.forward(x), repeats)
        row["its decoding"] = best_ms(int4.dequantized_weight, repeats)
        previous = use_fast_kernels(False)
        row["int4 g128 reference, decoding each call"] = best_ms(
            lambda x=x: int4.forward(x), repeats
        )
        row["its decoding, reference"] = best_ms(int4.dequantized_weight, repeats)
        use_fast_kernels(previous)
        rows.append(row)
    return rows


def model_rows() -> list:
    fp32 = minibert.load(minilm_path())
    models = {
        "float32": fp32,
        "int8 per channel": minibert.quantize(fp32),
        "int4 group 128": minibert.quantize(fp32, bits=4, group_size=128),
    }
    rng = np.random.default_rng(0)
    rows = []
    for batch, length in ((1, 16), (8, 128)):
        ids = rng.integers(1000, 20000, (batch, length))
        row = {"tokens": f"{batch} x {length}"}
        for label, model in models.items():
            row[label] = best_ms(lambda m=model, ids=ids: m(input_ids=ids), 20 if batch == 1 else 5)
        rows.append(row)
    return rows


def main() -> None:
    all_texts = texts()
    rows = accuracy_rows(all_texts)
    print(f"{len(all_texts)} texts, {QUERIES} queries\n")
    print("| scheme | word table | mean cosine | min cosine | top-1 agreement | MB on disk |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scheme']} | {r['word table']} | {r['mean_cosine']:.5f} | "
            f"{r['min_cosine']:.4f} | {r['top1']:.0%} | {r['MB']:.1f} |"
        )
    print("\nms per call, 384 -> 1536 layer (fastest of 30-200 calls)\n")
    print_table(timing_rows(), "rows", ".3f")
    print("\nms per MiniLM forward (fastest of 5-20 calls)\n")
    print_table(model_rows(), "tokens", ".1f")


def print_table(rows: list, first: str, number: str) -> None:
    """rows (dicts with the same keys) as a Markdown table: the `first` key, then the others
    formatted as `number`."""
    keys = [k for k in rows[0] if k != first]
    print(f"| {first} | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for row in rows:
        print(f"| {row[first]} | " + " | ".join(f"{row[k]:{number}}" for k in keys) + " |")


if __name__ == "__main__":
    main()
