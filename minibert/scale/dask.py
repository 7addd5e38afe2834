"""Dask: sentence vectors of bags and dataframes, one model per worker process (minibert[dask]).

Each partition is embedded by `map_partitions`; the model is loaded on a process's first
partition and kept for the rest (process.py), so a worker process loads it once however many
partitions it runs, and the threads of one worker take turns with it rather than each holding
a copy:

    import dask.bag as db
    import dask.dataframe as dd
    from distributed import Client
    from minibert.scale.dask import encode_bag, encode_dataframe

    client = Client()  # a local cluster of worker processes
    bag = db.read_text("corpus-*.txt").map(str.strip)
    vectors = encode_bag(bag, "/models/minilm").compute()  # [array (C,), ...], in order
    ddf = dd.read_parquet("corpus.parquet")  # a column "text"
    encode_dataframe(ddf, "/models/minilm").to_parquet("vectors/")  # plus "embedding"

On a cluster, connect to its scheduler instead, `Client("tcp://SCHEDULER:8786")`, and the same
code runs on its workers. Every worker needs minibert installed and the model folder at
`model_path` (a shared file system, or the same copy on each machine). A worker process runs
Numba and BLAS on as many threads as Dask gave it (`--nthreads`; LocalCluster's
threads_per_worker), so for bulk encoding prefer several processes of one or two threads each
to one process with many threads.
"""

from pathlib import Path

import numpy as np

from ..io import read_config
from ..kernels.threads import available_cpus, limit_threads
from .optional import require
from .process import EncoderOptions, encode_texts

_THREADS = {"set": False}  # this process's threads are limited once, on its first partition


def encode_bag(
    bag,
    model_path,
    pooling: str | None = None,
    normalize: bool = True,
    max_length: int | None = None,
    batch_size: int = 32,
    kernels: str | None = None,
    threads: int | None = None,
):
    """A bag of texts -> a bag of vectors (float32 arrays of C), item for item, in order.

    `threads`: Numba and BLAS threads of each worker process; None: the threads Dask gave it.
    """
    require("dask.bag", "dask", "minibert.scale.dask")
    options = EncoderOptions(model_path, pooling, normalize, max_length, batch_size, kernels)
    return bag.map_partitions(_encode_bag_partition, options, threads)


def encode_dataframe(
    ddf,
    model_path,
    text_column: str = "text",
    output_column: str = "embedding",
    pooling: str | None = None,
    normalize: bool = True,
    max_length: int | None = None,
    batch_size: int = 32,
    kernels: str | None = None,
    threads: int | None = None,
):
    """A dataframe -> the same dataframe plus `output_column`: each row's vector as a
    fixed-size list of C float32 (pyarrow-backed, so to_parquet writes it as the CLI does).

    `threads`: Numba and BLAS threads of each worker process; None: the threads Dask gave it.
    """
    require("dask.dataframe", "dask", "minibert.scale.dask")
    if text_column not in ddf.columns:
        raise ValueError(f"no column {text_column!r}; the columns: {list(ddf.columns)}")
    options = EncoderOptions(model_path, pooling, normalize, max_length, batch_size, kernels)
    dim = read_config(Path(model_path)).hidden_size  # C, for the empty frame of the output
    meta = ddf._meta.assign(**{output_column: _vector_column(np.empty((0, dim), np.float32))})
    return ddf.map_partitions(
        _encode_frame_partition, options, text_column, output_column, threads, meta=meta
    )


def _encode_bag_partition(texts, options: EncoderOptions, threads: int | None) -> list:
    _limit_threads_once(threads)
    return list(encode_texts(options, texts))  # N arrays of (C,)


def _encode_frame_partition(frame, options, text_column, output_column, threads):
    _limit_threads_once(threads)
    vectors = encode_texts(options, frame[text_column].tolist())  # (N, C)
    return frame.assign(**{output_column: _vector_column(vectors, frame.index)})


def _vector_column(vectors: np.ndarray, index=None):
    """A pandas Series of fixed-size lists from (N, C) float32, without a copy per row."""
    pa = require("pyarrow", "dask", "minibert.scale.dask")
    pd = require("pandas", "dask", "minibert.scale.dask")
    rows, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1))  # (N * C,)
    lists = pa.FixedSizeListArray.from_arrays(flat, dim)  # (N,) lists of C
    return pd.Series(pd.arrays.ArrowExtensionArray(lists), index=index)


def _limit_threads_once(threads: int | None) -> None:
    if not _THREADS["set"]:
        limit_threads(threads or _threads_of_this_worker())
        _THREADS["set"] = True


def _threads_of_this_worker() -> int:
    """The threads Dask gave this worker process; every core outside a distributed worker (the
    local threaded scheduler, whose threads share one model and take turns)."""
    try:
        from distributed import get_worker

        return max(1, get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):  # ValueError: not in a worker
        return available_cpus()
