"""kernels/threads.py: the CPUs a process may use, and how the pools are sized to them (the
cgroup and affinity cases are in tests/test_serve.py, which reads fake cgroup trees)."""

import threadpoolctl

from minibert.kernels import threads


def test_limit_threads_only_ever_lowers_blas(monkeypatch):
    """Setting OpenBLAS to the count it already has, before its first product, slowed every
    later float32 forward ten-fold (kernels/threads.py): limit_threads leaves it alone."""
    calls = []
    monkeypatch.setattr(threads, "apply_numba_threads", lambda n: n)  # this process keeps its own
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda **kw: calls.append(kw))
    monkeypatch.setattr(threads, "blas_info", lambda: [{"num_threads": 2}])
    assert threads.limit_threads(2)["blas"] == 2
    assert threads.limit_threads(4)["blas"] == 2
    assert calls == []
    assert threads.limit_threads(1)["blas"] == 1
    assert calls == [{"limits": 1, "user_api": "blas"}]
