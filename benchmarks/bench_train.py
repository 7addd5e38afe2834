"""One training step (forward + backward + AdamW) of a small BERT, minibert against transformers
on torch, same config, weights, batch and 2 threads, in one process.

    python benchmarks/bench_train.py [--steps 10] [--batch 16] [--seq 128] [--output FILE.md]

Prints the median step time of each and the ratio of steps per second (minibert / torch).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")  # before numpy/torch load their thread pools
os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def median_time(fn, steps: int) -> float:
    fn()  # warm-up: compiles the Numba kernels, fills allocator caches
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--output", help="also write the result as a Markdown table")
    args = parser.parse_args(argv)
    # torch is imported before minibert: both use OpenMP (see docs/benchmarks.md); here, not at
    # the top, so that --help works without torch
    import torch
    import transformers

    from minibert import EncoderConfig
    from minibert.models import from_config
    from minibert.training.optim import AdamW

    torch.set_num_threads(2)

    config = EncoderConfig(
        architecture="BertForMaskedLM",
        vocab_size=8000,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=512,
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(5, config.vocab_size, (args.batch, args.seq))
    labels = np.where(rng.random(ids.shape) < 0.15, ids, -100)

    ours = from_config(config, seed=0).train()
    optimizer = AdamW(ours, lr=1e-4)

    def our_step():
        ours(ids, labels=labels)
        ours.backward()
        optimizer.step()
        ours.zero_grad()

    with tempfile.TemporaryDirectory() as folder:
        ours.save_pretrained(folder)
        theirs = transformers.AutoModelForMaskedLM.from_pretrained(folder).train()
    torch_optimizer = torch.optim.AdamW(theirs.parameters(), lr=1e-4)
    t_ids, t_labels = torch.from_numpy(ids), torch.from_numpy(labels)

    def torch_step():
        theirs(input_ids=t_ids, labels=t_labels).loss.backward()
        torch_optimizer.step()
        torch_optimizer.zero_grad()

    t_ours = median_time(our_step, args.steps)
    t_torch = median_time(torch_step, args.steps)
    rows = [
        "| | ms / step | steps / s |",
        "|---|---|---|",
        f"| minibert (NumPy + Numba) | {t_ours * 1e3:.0f} | {1 / t_ours:.2f} |",
        f"| transformers on torch {torch.__version__} | {t_torch * 1e3:.0f} | {1 / t_torch:.2f} |",
        f"| ratio minibert / torch (steps/s) | | **{t_torch / t_ours:.2f}x** |",
    ]
    title = (
        f"BertForMaskedLM L={config.num_hidden_layers} C={config.hidden_size} "
        f"V={config.vocab_size}, batch {args.batch} x {args.seq}, 2 threads, "
        f"dropout on, median of {args.steps} steps"
    )
    print(title)
    print("\n".join(rows))
    if args.output:
        with open(args.output, "w") as f:
            f.write(title + "\n\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
