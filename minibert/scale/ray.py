"""Ray Data: sentence vectors as a column, one model per actor (needs minibert[ray]).

`Encoder` is a callable class for `Dataset.map_batches`: Ray makes one instance per actor, so
the model is loaded once per actor and used for every batch it is sent:

    import ray
    from minibert.scale.ray import Encoder, encode_dataset

    ds = ray.data.read_parquet("corpus.parquet")  # a column "text"
    vectors = ds.map_batches(
        Encoder,
        fn_constructor_kwargs={"model_path": "/models/minilm", "pooling": "mean"},
        compute=ray.data.ActorPoolStrategy(size=4),  # 4 actors (concurrency=4 before Ray 2.51)
        num_cpus=2,  # cores per actor: its Numba and BLAS threads
        batch_size=1024,  # rows per call
        batch_format="numpy",
    )
    # or, the same with the order of the rows kept:
    vectors = encode_dataset(ds, "/models/minilm", concurrency=4, num_cpus=2)
    vectors.write_parquet("vectors/")  # every column of ds, plus "embedding"

On one machine, `ray.init()` starts a local Ray (e.g. ray.init(num_cpus=8)); on a cluster,
`ray.init(address="auto")` on a node of it, or `ray.init(address="ray://HEAD:10001")` from
outside, and the same code runs its actors across the nodes. Every node needs minibert
installed and the model folder at `model_path` (a shared file system, or the same copy on each
node). Ray may finish blocks out of order; encode_dataset asks it to keep the input's order.
"""

import sys

import numpy as np

from ..kernels.threads import available_cpus, limit_threads
from .optional import require
from .process import EncoderOptions


class Encoder:
    """A batch of rows -> the same rows plus their vectors, for Dataset.map_batches.

    Args:
        model_path: the model folder, readable on every node.
        pooling, normalize, max_length: as for minibert.SentenceEncoder.
        batch_size: texts per forward pass (map_batches' own batch_size is rows per call).
        text_column: the column holding the texts.
        output_column: the column the vectors go in, a (rows, C) float32 tensor per batch.
        kernels: "fast" or "reference"; None keeps the model's default.
        threads: Numba and BLAS threads of this actor; None: the CPUs Ray gave it (num_cpus).

    Batches in numpy format (a dict of column arrays) or pandas format are accepted.
    """

    def __init__(
        self,
        model_path,
        pooling: str | None = None,
        normalize: bool = True,
        max_length: int | None = None,
        batch_size: int = 32,
        text_column: str = "text",
        output_column: str = "embedding",
        kernels: str | None = None,
        threads: int | None = None,
    ):
        limit_threads(threads or _cpus_of_this_actor())
        self.options = EncoderOptions(
            model_path, pooling, normalize, max_length, batch_size, kernels=kernels
        )
        self.encoder = self.options.load()  # once per actor: every batch reuses it
        self.text_column, self.output_column = text_column, output_column

    def __call__(self, batch):
        texts = batch[self.text_column]
        if not len(texts):
            vectors = np.empty((0, self.encoder.dim), np.float32)  # (0, C)
        else:
            vectors = self.encoder.encode(
                [str(t) for t in texts], batch_size=self.options.batch_size
            )  # (rows, C)
        if isinstance(batch, dict):
            return {**batch, self.output_column: vectors}
        out = batch.copy()  # a pandas DataFrame: one array of C per row
        out[self.output_column] = list(vectors)
        return out


def encode_dataset(
    ds,
    model_path,
    pooling: str | None = None,
    normalize: bool = True,
    max_length: int | None = None,
    batch_size: int = 32,
    text_column: str = "text",
    output_column: str = "embedding",
    concurrency: int = 1,
    num_cpus: float = 1,
    rows_per_call: int = 1024,
    preserve_order: bool = True,
):
    """`ds` with a column of sentence vectors, computed by `concurrency` actors of `num_cpus`
    cores each (lazy, as every Ray Data transform: nothing runs until the result is consumed).

    preserve_order=True keeps the rows in the input's order, which Ray otherwise does not (it
    passes on whichever block finishes first): it sets `ds.context.execution_options.
    preserve_order`. That DataContext is shared by `ds` and the datasets made from it, and for
    some sources (ray.data.from_items) it is the process's current one, so later datasets keep
    their order too.
    """
    ray_data = require("ray.data", "ray", "minibert.scale.ray")
    if preserve_order:
        ds.context.execution_options.preserve_order = True
    return ds.map_batches(
        Encoder,
        fn_constructor_kwargs={
            "model_path": str(model_path),
            "pooling": pooling,
            "normalize": normalize,
            "max_length": max_length,
            "batch_size": batch_size,
            "text_column": text_column,
            "output_column": output_column,
            "threads": max(1, int(num_cpus)),
        },
        compute=ray_data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
        batch_size=rows_per_call,
        batch_format="numpy",
    )


def _cpus_of_this_actor() -> int:
    """The CPUs Ray reserved for this actor (1 unless map_batches was given num_cpus); every
    core of the machine outside Ray (an Encoder called directly)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return available_cpus()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    return max(1, int(cpus))
