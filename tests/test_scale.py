"""minibert.scale's Ray and Dask adapters, on a local Ray and a local Dask cluster of two
processes, and what every path shares (one encoder per process, threads per worker).

The model is the bundled one. Ray and Dask cut the texts into batches of their own, so the
vectors are compared with one SentenceEncoder.encode of all the texts to ATOL_INVARIANT (the
same texts padded and batched differently), and the order of the rows exactly.
"""

import subprocess
import sys

import numpy as np
import pytest

import minibert
from conftest import ATOL_INVARIANT
from minibert import pretrained
from minibert.kernels.threads import threads_per_worker
from minibert.scale import process
from minibert.scale.optional import MissingDependencyError, require
from minibert.scale.process import EncoderOptions

TEXTS = [
    f"sentence {i}: the {'cat sat on the mat' if i % 3 else 'stock prices fell'}" for i in range(40)
]
# Ray's DataContext sets its own deprecated fields when it is first made
RAY_DEPRECATIONS = "ignore::DeprecationWarning:ray.data.context"


@pytest.fixture(scope="module")
def expected():
    return minibert.SentenceEncoder(pretrained.shipped_path()).encode(TEXTS)


def test_optional_packages_load_only_when_used():
    """Importing the command line and every scale module pulls in neither pyarrow, Ray nor
    Dask: each is imported inside the function that needs it."""
    code = (
        "import sys, minibert.cli.main\n"
        "from minibert.scale import bulk, corpus, dask, parts, process, ray\n"
        "optional = ('pyarrow', 'ray', 'dask', 'distributed', 'pandas')\n"
        "print(sorted(m for m in optional if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_missing_package_names_its_extra():
    with pytest.raises(MissingDependencyError, match=r'pip install "minibert\[ray\]"') as caught:
        require("no_such_package_here.data", "ray", "minibert.scale.ray")
    assert isinstance(caught.value, ImportError)
    assert isinstance(caught.value, ValueError)  # the command line reports it in one line


def test_threads_per_worker_share_the_cores():
    assert threads_per_worker(1, cpus=8) == 8
    assert threads_per_worker(3, cpus=8) == 2
    assert threads_per_worker(4, cpus=2) == 1


def test_one_encoder_per_process_and_options(expected):
    options = EncoderOptions(pretrained.shipped_path())
    assert options == EncoderOptions(str(pretrained.shipped_path()))  # a Path or a str: one key
    first = process.process_encoder(options)
    assert process.process_encoder(options) is first
    np.testing.assert_array_equal(process.encode_texts(options, TEXTS), expected)
    assert process.encode_texts(options, []).shape == (0, first.dim)


# --- Ray -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.filterwarnings(RAY_DEPRECATIONS)
def test_ray_encode_dataset_in_order(local_ray, expected):
    from minibert.scale.ray import encode_dataset

    items = [{"text": t, "n": i} for i, t in enumerate(TEXTS)]
    ds = local_ray.data.from_items(items, override_num_blocks=6)
    rows = encode_dataset(ds, pretrained.shipped_path(), concurrency=2, rows_per_call=5).take_all()
    assert [row["n"] for row in rows] == list(range(len(TEXTS)))
    vectors = np.stack([row["embedding"] for row in rows])  # (N, C)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=ATOL_INVARIANT)


@pytest.mark.filterwarnings(RAY_DEPRECATIONS)
def test_ray_encoder_as_a_map_batches_class(local_ray, expected):
    from minibert.scale.ray import Encoder

    ds = local_ray.data.from_items([{"body": t} for t in TEXTS[:10]], override_num_blocks=2)
    ds.context.execution_options.preserve_order = True
    options = {"model_path": str(pretrained.shipped_path()), "text_column": "body"}
    mapped = ds.map_batches(
        Encoder,
        fn_constructor_kwargs=options,
        compute=local_ray.data.ActorPoolStrategy(size=1),
        batch_format="numpy",
    )
    batches = list(mapped.iter_batches(batch_format="numpy", batch_size=None))
    vectors = np.concatenate([b["embedding"] for b in batches])
    assert [str(t) for b in batches for t in b["body"]] == TEXTS[:10]
    np.testing.assert_allclose(vectors, expected[:10], atol=ATOL_INVARIANT)


def test_ray_encoder_called_directly_takes_pandas_batches(expected):
    pd = pytest.importorskip("pandas")
    from minibert.scale.ray import Encoder

    encoder = Encoder(pretrained.shipped_path(), threads=1)
    out = encoder(pd.DataFrame({"text": TEXTS[:4]}))
    np.testing.assert_allclose(np.stack(out["embedding"]), expected[:4], atol=ATOL_INVARIANT)
    assert encoder({"text": np.array([], dtype=object)})["embedding"].shape == (
        0,
        encoder.encoder.dim,
    )


# --- Dask ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=None,
        host="127.0.0.1",
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_bag_in_order_one_model_per_worker(dask_client, expected):
    import dask.bag as db

    from minibert.scale.dask import encode_bag

    bag = db.from_sequence(TEXTS, npartitions=5)
    vectors = encode_bag(bag, pretrained.shipped_path()).compute()
    np.testing.assert_allclose(np.stack(vectors), expected, atol=ATOL_INVARIANT)
    # five partitions on two worker processes: each loaded the model once
    loaded = dask_client.run(process.loaded_encoders)
    assert sorted(loaded.values()) == [1, 1]


def test_dask_dataframe_in_order(dask_client, expected, tmp_path):
    import dask.dataframe as dd
    import pandas as pd
    import pyarrow.parquet as pq

    from minibert.scale.dask import encode_dataframe

    frame = pd.DataFrame({"n": range(len(TEXTS)), "body": TEXTS})
    ddf = dd.from_pandas(frame, npartitions=3)
    out = encode_dataframe(ddf, pretrained.shipped_path(), text_column="body")
    result = out.compute()
    assert list(result["n"]) == list(range(len(TEXTS)))
    vectors = np.stack(result["embedding"].to_numpy()).astype(np.float32)
    np.testing.assert_allclose(vectors, expected, atol=ATOL_INVARIANT)
    # the fixed-size list column writes as parquet; read it back with pyarrow (pandas cannot
    # rebuild a fixed-size list dtype from the metadata dask stores)
    out.to_parquet(tmp_path / "vectors")
    table = pq.read_table(tmp_path / "vectors")
    assert table.num_rows == len(TEXTS)
    assert table.schema.field("embedding").type.list_size == expected.shape[1]


def test_dask_dataframe_names_a_missing_column():
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    from minibert.scale.dask import encode_dataframe

    ddf = dd.from_pandas(pd.DataFrame({"body": TEXTS}), npartitions=1)
    with pytest.raises(ValueError, match="no column 'text'"):
        encode_dataframe(ddf, pretrained.shipped_path())
