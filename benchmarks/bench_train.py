"""One training step (forward + backward + AdamW) of a small BERT, minibert against transformers
on torch: same config, weights and batch, 2 threads each, each library in its own process.

    python benchmarks/bench_train.py [--steps 10] [--batch 16] [--seq 128] [--output FILE.md]

Each library runs in a worker process of its own (benchmarks/workers.py), so that no two share a
thread pool or an OpenMP runtime; the steps are timed in turns, after two warm-up steps (the
first compiles minibert's kernels if they are not cached). Prints the median step time of each,
the ratio of steps per second (minibert / torch) and the CPU. minibert's process keeps freed
memory mapped as Trainer.train makes it (minibert/training/allocator.py); --default-allocator
leaves glibc's defaults, to see what that is worth.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# workers sets the thread counts, so it comes before numpy
from workers import THREADS, Worker, median, time_in_turns  # noqa: E402

# isort: split
import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

CONFIG = dict(
    architecture="BertForMaskedLM",
    vocab_size=8000,
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=1024,
    max_position_embeddings=512,
)


class TrainStep:
    """A model, its optimizer and a batch in a worker process; `run` times one training step.
    kind: "minibert" or "torch" (transformers on torch, loading minibert's saved weights)."""

    def __init__(self, kind: str, folder: str, batch: int, seq: int, keep_memory: bool = True):
        rng = np.random.default_rng(0)
        ids = rng.integers(5, CONFIG["vocab_size"], (batch, seq))
        labels = np.where(rng.random(ids.shape) < 0.15, ids, -100)
        if kind == "minibert":
            import minibert
            from minibert.training.allocator import keep_freed_memory
            from minibert.training.optim import AdamW

            if keep_memory:  # as Trainer.train does (training/allocator.py)
                keep_freed_memory()
            model = minibert.load(folder).train()
            optimizer = AdamW(model, lr=1e-4)

            def step():
                model(ids, labels=labels)
                model.backward()
                optimizer.step()
                model.zero_grad()

            self.version = f"minibert {minibert.__version__}"
        else:
            import torch
            import transformers

            torch.set_num_threads(THREADS)
            model = transformers.AutoModelForMaskedLM.from_pretrained(folder).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            t_ids, t_labels = torch.from_numpy(ids), torch.from_numpy(labels)

            def step():
                model(input_ids=t_ids, labels=t_labels).loss.backward()
                optimizer.step()
                optimizer.zero_grad()

            self.version = f"transformers {transformers.__version__} on torch {torch.__version__}"
        self.step = step

    def describe(self) -> str:
        return self.version

    def run(self) -> float:
        start = time.perf_counter()
        self.step()
        return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--output", help="also write the result as a Markdown table")
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc's malloc thresholds alone in minibert's process (Trainer sets them)",
    )
    args = parser.parse_args(argv)

    from minibert import EncoderConfig
    from minibert.kernels import cpu
    from minibert.models import from_config

    with tempfile.TemporaryDirectory() as folder:
        from_config(EncoderConfig(**CONFIG), seed=0).save_pretrained(folder)  # both load these
        keep = not args.default_allocator
        sides = {kind: Worker(TrainStep, kind, folder, args.batch, args.seq, keep) for kind in
                 ("minibert", "torch")}  # fmt: skip
        try:
            labels = {kind: side.call("describe") for kind, side in sides.items()}
            times = time_in_turns(sides, args.steps, warmup=2)
        finally:
            for side in sides.values():
                side.close()
    t_ours, t_torch = median(times["minibert"]), median(times["torch"])
    rows = [
        "| | ms / step | steps / s |",
        "|---|---:|---:|",
        f"| {labels['minibert']} (NumPy + Numba) | {t_ours * 1e3:.0f} | {1 / t_ours:.2f} |",
        f"| {labels['torch']} | {t_torch * 1e3:.0f} | {1 / t_torch:.2f} |",
        f"| minibert / torch (steps/s) | | **{t_torch / t_ours:.2f}x** |",
    ]
    title = (
        f"BertForMaskedLM L={CONFIG['num_hidden_layers']} C={CONFIG['hidden_size']} "
        f"V={CONFIG['vocab_size']}, batch {args.batch} x {args.seq}, dropout on, {THREADS} "
        f"threads each in its own process, median of {args.steps} steps in turns; "
        + cpu.describe()["cpu"]
    )
    print(title)
    print("\n".join(rows))
    if args.output:
        with open(args.output, "w") as f:
            f.write(title + "\n\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
