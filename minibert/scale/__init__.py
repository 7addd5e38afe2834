"""Scale-out for bulk encoding: a corpus file on a pool of processes, and Ray and Dask adapters.

    corpus.py   corpus files (txt, jsonl, csv, parquet) read as a stream of (id, text) records,
                cut into shards
    process.py  one sentence encoder per process, loaded once, and the threads it may use
    parts.py    part files beside an output, their manifest, and the output assembled from them
    bulk.py     a corpus file -> one output file, shard by shard on worker processes, resumable
                (what `minibert encode --input FILE --output FILE.parquet --workers N` runs)
    ray.py      a Ray Data callable class, one model per actor (needs minibert[ray])
    dask.py     Dask bags and dataframes, one model per worker process (needs minibert[dask])

Nothing here is imported by `import minibert`; pyarrow, Ray and Dask are imported inside the
functions that need them.
"""
