"""How much int8 changes sentence embeddings: each int8 runtime against its own float32.

On all-MiniLM-L6-v2, every runtime embeds the same texts (mean pooling over the attention mask,
then L2 normalisation, as sentence-transformers does for this model). For each pair we report
the mean and the smallest cosine between the two embeddings of a text, and retrieval top-1
agreement: for each query, whether the nearest corpus text under int8 is the one float32 finds.

The texts are built from templates with a seeded generator, so every run embeds the same ones:
sentences on a dozen topics with shared vocabulary, so that near neighbours are close calls. For
the queries whose neighbour changed we also report float32's margin there (its best score minus
its second best): a small margin means the two candidates were nearly tied.
"""

import sys

import numpy as np
from workers import Unavailable, Worker

PAIRS = (  # (float32, int8, label)
    ("torch-fp32", "torch-int8", "torch fp32 vs torch int8 (quantize_dynamic)"),
    ("ort-fp32", "ort-int8", "onnxruntime fp32 vs onnxruntime int8"),
    ("minibert-numba", "minibert-int8", "minibert fp32 vs minibert int8"),
    ("torch-fp32", "minibert-numba", "control: torch fp32 vs minibert fp32"),
)
TOPICS = {
    "cooking": (
        ["The chef", "My grandmother", "A young cook", "The baker", "Our neighbour"],
        [
            "chopped onions and garlic",
            "baked a loaf of rye bread",
            "burned the rice again",
            "simmered a tomato sauce for hours",
            "tasted the soup and added salt",
        ],
        [
            "in the small kitchen",
            "before the guests arrived",
            "on Sunday morning",
            "for the village fair",
            "without a recipe",
        ],
    ),
    "football": (
        ["The goalkeeper", "Their captain", "A substitute striker", "The referee", "The coach"],
        [
            "saved a penalty",
            "scored in the last minute",
            "argued with the linesman",
            "was sent off for a second foul",
            "changed the formation at half time",
        ],
        [
            "in the cup final",
            "in front of a full stadium",
            "during heavy rain",
            "on a cold evening in November",
            "after a long injury",
        ],
    ),
    "astronomy": (
        [
            "Astronomers",
            "A space telescope",
            "The research team",
            "An amateur stargazer",
            "The observatory",
        ],
        [
            "found a new planet",
            "measured the light of a distant galaxy",
            "tracked a comet near the sun",
            "photographed the rings of Saturn",
            "detected a burst of radio waves",
        ],
        [
            "last night",
            "after months of data",
            "from a mountain in Chile",
            "with a new infrared camera",
            "for the first time",
        ],
    ),
    "finance": (
        [
            "The central bank",
            "Investors",
            "A small start-up",
            "The finance minister",
            "The retail chain",
        ],
        [
            "raised interest rates",
            "sold their shares in a panic",
            "reported a quarterly loss",
            "announced new taxes on fuel",
            "borrowed money to expand",
        ],
        [
            "to fight inflation",
            "after the market fell",
            "despite strong sales",
            "earlier than expected",
            "for the third year running",
        ],
    ),
    "medicine": (
        ["The doctor", "A nurse", "The surgeon", "Researchers", "The pharmacist"],
        [
            "prescribed antibiotics",
            "checked the patient's blood pressure",
            "performed a difficult operation",
            "tested a new vaccine",
            "warned about the side effects",
        ],
        [
            "at the local clinic",
            "during the night shift",
            "in a small trial",
            "before the holidays",
            "with great care",
        ],
    ),
    "travel": (
        ["The tourists", "My sister", "A backpacker", "The tour guide", "An old couple"],
        [
            "missed the last train",
            "booked a cheap flight",
            "got lost in the old town",
            "crossed the border on foot",
            "rented a car at the airport",
        ],
        [
            "to Lisbon",
            "in the middle of summer",
            "without a map",
            "after a long delay",
            "on their honeymoon",
        ],
    ),
    "computing": (
        ["The programmer", "Our server", "The new laptop", "A security researcher", "The compiler"],
        [
            "crashed after the update",
            "found a bug in the parser",
            "ran out of memory",
            "encrypted every file on the disk",
            "optimised the inner loop",
        ],
        [
            "on Friday afternoon",
            "under heavy load",
            "in production",
            "without any warning",
            "by a factor of ten",
        ],
    ),
    "weather": (
        ["A storm", "The heat wave", "Heavy snow", "Thick fog", "A sudden flood"],
        [
            "closed the motorway",
            "damaged the harvest",
            "cut power to thousands of homes",
            "delayed every flight",
            "kept the children indoors",
        ],
        [
            "along the coast",
            "for a whole week",
            "in the northern valleys",
            "early in the morning",
            "across the region",
        ],
    ),
    "music": (
        ["The orchestra", "A street musician", "The band", "The young pianist", "The choir"],
        [
            "played a Beethoven symphony",
            "sang an old folk song",
            "released a new album",
            "cancelled the tour",
            "practised scales for hours",
        ],
        [
            "in the cathedral",
            "to a sold-out hall",
            "on the radio",
            "for the first time in years",
            "in the rain",
        ],
    ),
    "animals": (
        ["The cat", "A stray dog", "The old horse", "A family of ducks", "The parrot"],
        [
            "chased a mouse",
            "slept on the warm windowsill",
            "jumped over the fence",
            "crossed the busy road",
            "learned a new word",
        ],
        [
            "in the garden",
            "all afternoon",
            "behind the barn",
            "while everyone watched",
            "to get some food",
        ],
    ),
    "politics": (
        ["The parliament", "The opposition leader", "The mayor", "Voters", "The new government"],
        [
            "passed a controversial law",
            "called for early elections",
            "promised cheaper public transport",
            "rejected the budget",
            "opened an inquiry",
        ],
        [
            "after a long debate",
            "by a narrow margin",
            "in the capital",
            "before the summer break",
            "under public pressure",
        ],
    ),
    "school": (
        ["The teacher", "A shy student", "The headmaster", "The class", "Her tutor"],
        [
            "explained fractions with pizza",
            "failed the chemistry exam",
            "won the spelling contest",
            "planted trees in the yard",
            "wrote a play about pirates",
        ],
        [
            "on the last day of term",
            "with a little help",
            "after school",
            "for the parents' evening",
            "in only one week",
        ],
    ),
}


def sentences(n: int, seed: int) -> list[str]:
    """n distinct texts drawn from TOPICS with a seeded generator, in a few sentence forms."""
    rng = np.random.default_rng(seed)
    topics = list(TOPICS)
    texts, seen = [], set()
    while len(texts) < n:
        subjects, actions, tails = TOPICS[topics[rng.integers(len(topics))]]
        subject, action, tail = (x[rng.integers(len(x))] for x in (subjects, actions, tails))
        form = rng.integers(4)
        if form == 0:
            text = f"{subject} {action} {tail}."
        elif form == 1:
            text = f"{tail[0].upper()}{tail[1:]}, {subject[0].lower()}{subject[1:]} {action}."
        elif form == 2:
            text = f"{subject} {action}."
        else:
            text = f"Apparently {subject[0].lower()}{subject[1:]} {action} {tail}!"
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def embed(runtime, tokenizer, texts, batch_size=32) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings (N, C) float64 of texts through runtime.hidden."""
    vectors = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[start : start + batch_size], padding=True, truncation=True, max_length=128
        )
        inputs = {
            k: np.asarray(enc[k], np.int64)
            for k in ("input_ids", "attention_mask", "token_type_ids")
        }
        hidden = np.asarray(runtime.call("set_inputs", inputs), np.float64)  # (B, T, C)
        mask = inputs["attention_mask"][..., None].astype(np.float64)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)  # (B, C)
        vectors.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    return np.concatenate(vectors)


def compare(ref: np.ndarray, other: np.ndarray, n_queries: int) -> dict:
    """Cosines between the two embeddings of each text, and top-1 retrieval agreement: the
    first n_queries rows are queries, the rest the corpus."""
    cosines = (ref * other).sum(1)
    queries, corpus = slice(0, n_queries), slice(n_queries, None)
    scores = ref[queries] @ ref[corpus].T  # (queries, corpus) under float32
    top_ref = scores.argmax(1)
    top_other = (other[queries] @ other[corpus].T).argmax(1)
    # how close float32's call was: its best score minus its second best, per query
    best_two = np.sort(scores, axis=1)[:, -2:]
    margins = best_two[:, 1] - best_two[:, 0]
    changed = top_ref != top_other
    return {
        "mean_cosine": float(cosines.mean()),
        "min_cosine": float(cosines.min()),
        "top1": float(1 - changed.mean()),
        "changed_margin": float(margins[changed].max()) if changed.any() else None,
        "median_margin": float(np.median(margins)),
        "texts": int(len(cosines)),
        "queries": n_queries,
    }


def bench_agreement(runtime_factory, path, artifacts, kinds, n_corpus, n_queries) -> dict:
    """{"rows": one per pair in PAIRS, "unavailable": {kind: reason}}."""
    import minibert

    tokenizer = minibert.load_tokenizer(path)
    texts = sentences(n_queries + n_corpus, seed=0)  # distinct: the queries, then the corpus
    vectors, unavailable = {}, {}
    needed = [k for k in dict.fromkeys(k for pair in PAIRS for k in pair[:2]) if k in kinds]
    for kind in needed:
        worker = Worker(runtime_factory, kind)
        try:
            worker.call("load", str(path), str(artifacts))
            vectors[kind] = embed(worker, tokenizer, texts)
        except Unavailable as exc:
            unavailable[kind] = str(exc)
        finally:
            worker.close()
    rows = []
    for ref, other, label in PAIRS:
        row = {"pair": label, "fp32": ref, "int8": other}
        if ref in vectors and other in vectors:
            row.update(compare(vectors[ref], vectors[other], n_queries))
            print(
                f"  {label}: mean cosine {row['mean_cosine']:.4f}, top-1 {row['top1']:.2f}",
                file=sys.stderr,
            )
        else:
            missing = [k for k in (ref, other) if k not in vectors]
            row["unavailable"] = "; ".join(f"{k}: {unavailable.get(k, 'not run')}" for k in missing)
        rows.append(row)
    return {"rows": rows, "texts": len(texts), "queries": n_queries}
