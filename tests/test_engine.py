"""The dependency engine: ordering, concurrency, failures, bulk, both engine kinds."""
import random
import threading
import time

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.engine import NaiveEngine, ThreadedEngine, Var
from hybridnet.engine.engine import set_engine


def test_read_after_write_sees_the_write(engine):
    v, log = Var(), []
    engine.push(lambda: (time.sleep(0.05), log.append("w")), [], [v])
    engine.push(lambda: log.append("r"), [v], [])
    engine.wait_all()
    assert log == ["w", "r"]


def test_write_after_read_waits_for_the_read(engine):
    v, log = Var(), []
    engine.push(lambda: (time.sleep(0.05), log.append("r")), [v], [])
    engine.push(lambda: log.append("w"), [], [v])
    engine.wait_all()
    assert log == ["r", "w"]


def test_writes_run_in_push_order(engine):
    v, log = Var(), []
    for i in range(200):
        engine.push(lambda i=i: log.append(i), [], [v])
    engine.wait_for_var(v)
    assert log == list(range(200))


def test_concurrent_readers_run_together():
    eng = ThreadedEngine(cpu_threads=2)
    v = Var()
    barrier = threading.Barrier(2, timeout=5)
    met = []
    # two readers of the same var meet at a barrier: only possible if they overlap in time
    for _ in range(2):
        eng.push(lambda: met.append(barrier.wait()), [v], [])
    eng.wait_all()
    assert sorted(met) == [0, 1]
    eng.shutdown()


def test_unrelated_work_is_not_blocked():
    eng = ThreadedEngine(cpu_threads=2)
    slow, fast, gate = Var(), Var(), threading.Event()
    eng.push(lambda: gate.wait(5), [], [slow])
    done = []
    eng.push(lambda: done.append(1), [], [fast])
    eng.wait_for_var(fast)
    assert done == [1]
    gate.set()
    eng.wait_all()
    eng.shutdown()


def test_exception_is_raised_at_wait_with_operator_name(engine):
    v = Var()

    def bad():
        raise KeyError("broken kernel")
    engine.push(bad, [], [v], name="MyOp")
    with pytest.raises(KeyError, match="broken kernel") as info:
        engine.wait_for_var(v)
    assert any("MyOp" in note for note in getattr(info.value, "__notes__", []))


def test_failure_propagates_through_a_chain_and_stays(engine):
    a, b, c, other = Var(), Var(), Var(), Var()
    ran = []
    engine.push(lambda: 1 / 0, [], [a], name="div")
    engine.push(lambda: ran.append("b"), [a], [b])
    engine.push(lambda: ran.append("c"), [b], [c])
    engine.push(lambda: ran.append("other"), [], [other])
    for _ in range(2):      # a failed var stays failed: every wait raises again
        with pytest.raises(ZeroDivisionError):
            engine.wait_for_var(c)
    engine.wait_for_var(other)
    assert ran == ["other"]


def test_waitall_raises_unobserved_failure_once(engine):
    v = Var()
    engine.push(lambda: [][1], [], [v])
    with pytest.raises(IndexError):
        engine.wait_all()
    engine.wait_all()           # already raised: the engine is usable again
    with pytest.raises(IndexError):
        engine.wait_for_var(v)  # ...but the array itself stays failed


def test_worker_waiting_inside_a_task_does_not_deadlock():
    eng = ThreadedEngine(cpu_threads=1)
    a, b = Var(), Var()
    seen = []

    def outer():
        # a task that pushes work and waits for it, like a custom op calling asnumpy()
        eng.push(lambda: seen.append("inner"), [], [b])
        eng.wait_for_var(b)
        seen.append("outer")
    eng.push(outer, [], [a])
    eng.wait_all()
    assert seen == ["inner", "outer"]
    eng.shutdown()


def test_waitall_from_inside_engine_work_is_an_error():
    eng = ThreadedEngine(cpu_threads=1)
    v = Var()
    eng.push(lambda: eng.wait_all(), [], [v])
    with pytest.raises(mx.base.EngineError, match="wait for itself"):
        eng.wait_for_var(v)
    eng.shutdown()


def test_bulk_merges_pushes_and_keeps_order(engine):
    v, log = Var(), []
    with engine.bulk(8):
        for i in range(20):
            engine.push(lambda i=i: log.append(i), [], [v])
    engine.wait_for_var(v)
    assert log == list(range(20))
    assert engine.set_bulk_size(4) == 0
    assert engine.set_bulk_size(0) == 4


def _random_program(seed, n_arrays=12, n_ops=1500):
    rng = random.Random(seed)
    program = []
    for _ in range(n_ops):
        dst = rng.randrange(n_arrays)
        srcs = rng.sample(range(n_arrays), rng.randint(0, 3))
        coef = rng.choice([0.5, -1.0, 2.0, 0.25])
        program.append((dst, srcs, coef))
    return program


def _apply(arrays, step):
    dst, srcs, coef = step
    total = arrays[dst] * coef
    for s in srcs:
        total = total + np.tanh(arrays[s])
    arrays[dst][...] = total


def test_random_stress_from_several_threads_equals_sequential_numpy():
    eng = ThreadedEngine(cpu_threads=2, io_threads=2)
    n_threads, n_arrays = 3, 12
    rng = np.random.RandomState(0)
    init = [[rng.standard_normal(5) for _ in range(n_arrays)] for _ in range(n_threads)]
    programs = [_random_program(t) for t in range(n_threads)]
    expected = []
    for t in range(n_threads):
        arrays = [a.copy() for a in init[t]]
        for step in programs[t]:
            _apply(arrays, step)
        expected.append(arrays)
    actual = [[a.copy() for a in init[t]] for t in range(n_threads)]
    variables = [[Var() for _ in range(n_arrays)] for _ in range(n_threads)]

    def pusher(t):
        for step in programs[t]:
            dst, srcs, _ = step
            reads = [variables[t][s] for s in srcs if s != dst]
            eng.push(lambda step=step: _apply(actual[t], step), reads, [variables[t][dst]],
                     prop=random.choice(["normal", "io"]))
    threads = [threading.Thread(target=pusher, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    eng.wait_all()
    for t in range(n_threads):
        for got, want in zip(actual[t], expected[t]):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    eng.shutdown()


def _eager_program():
    rng = np.random.RandomState(1)
    a = mx.nd.array(rng.standard_normal((4, 5)))
    b = mx.nd.array(rng.standard_normal((5,)))
    out = a
    for i in range(50):
        out = mx.nd.tanh(out * 0.9 + b) - a / 3
        if i % 7 == 0:
            out[1:3] = out[0:2] * 2
    return out.asnumpy()


def test_naive_engine_gives_identical_results():
    threaded = _eager_program()
    old = set_engine(NaiveEngine())
    try:
        naive = _eager_program()
    finally:
        set_engine(old)
    np.testing.assert_array_equal(threaded, naive)


def test_public_push_api_orders_against_arrays():
    a = mx.nd.zeros((3,))
    mx.engine.push(lambda: (time.sleep(0.02), a._data.fill(7)), write=[a])
    b = a + 1
    assert b.asnumpy().tolist() == [8, 8, 8]
    with pytest.raises(ValueError, match="prop"):
        mx.engine.push(lambda: None, prop="fast")
    with pytest.raises(TypeError, match="NDArrays or engine Vars"):
        mx.engine.push(lambda: None, read=[np.zeros(3)])


def test_eager_error_is_raised_at_read_and_names_the_operator():
    x = mx.nd.array([1.0, 2.0])

    def boom():
        raise RuntimeError("kernel exploded")
    mx.engine.push(boom, write=[x])
    y = x * 2
    with pytest.raises(RuntimeError, match="kernel exploded"):
        y.asnumpy()
    with pytest.raises(RuntimeError):
        y.wait_to_read()
    mx.nd.waitall()             # the error was already raised by a read: waitall is clean


def test_waitall_raises_an_eager_error_nobody_read():
    x = mx.nd.array([1.0, 2.0])
    mx.engine.push(lambda: 1 / 0, write=[x])
    _ = x + 1
    with pytest.raises(ZeroDivisionError):
        mx.nd.waitall()


# ---- BLAS thread policy (engine/blas.py) ---------------------------------------------------
def test_blas_policy_shares_the_cores_among_cpu_workers():
    from hybridnet.engine import blas
    import os
    cores = os.cpu_count()
    with mx.test_utils.environment({"HYBRIDNET_NUM_BLAS_THREADS": "0", "OMP_NUM_THREADS": None,
                                    "HYBRIDNET_CPU_WORKER_NTHREADS": "1"}):
        assert blas.policy_threads() == cores
    with mx.test_utils.environment({"HYBRIDNET_NUM_BLAS_THREADS": "0", "OMP_NUM_THREADS": None,
                                    "HYBRIDNET_CPU_WORKER_NTHREADS": str(2 * cores)}):
        assert blas.policy_threads() == 1
    with mx.test_utils.environment({"HYBRIDNET_NUM_BLAS_THREADS": "3"}):
        assert blas.policy_threads() == 3


def test_blas_thread_count_is_applied_when_the_engine_starts():
    import os
    import subprocess
    import sys
    code = ("import hybridnet as mx\nfrom hybridnet.engine import blas\n"
            "mx.nd.ones((2,)).asnumpy()\nprint(blas.blas_threads())")
    env = dict(os.environ, HYBRIDNET_NUM_BLAS_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() != "None":            # numpy with OpenBLAS
        assert out.stdout.strip() == "1"


# ---- recycled storage for large eager arrays (engine/storage.py) --------------------------
def test_storage_pool_reuses_only_buffers_nothing_references():
    from hybridnet.engine import storage
    shape = (3, 1 << 18)                          # 3 MB of float32: pooled
    storage.release_free()
    a = storage.empty(shape, np.float32)
    view = a[1:]
    del a
    b = storage.empty(shape, np.float32)          # a's buffer is still seen through `view`
    assert not np.shares_memory(view, b)
    b_ptr = b.__array_interface__["data"][0]
    del b
    c = storage.empty(shape, np.int32)            # b's buffer is free again: reused
    assert c.__array_interface__["data"][0] == b_ptr and c.dtype == np.int32
    assert c.shape == shape
    small = storage.empty((4,), np.float32)       # small arrays are plain numpy arrays
    assert small.base is None
    del view, c
    storage.release_free()
    assert storage.pooled_bytes() == 0


def test_storage_pool_keeps_at_most_its_limit_of_free_memory():
    from hybridnet.engine import storage
    storage.release_free()
    with mx.test_utils.environment("HYBRIDNET_CPU_POOL_MB", "4"):
        kept = [storage.empty((1 << 20,), np.float32) for _ in range(3)]   # 4 MB each, in use
        assert storage.pooled_bytes() == 12 << 20
        del kept                                                           # 12 MB free
        big = storage.empty((3 << 20,), np.float32)      # no free buffer fits: a new one,
        assert storage.pooled_bytes() == (4 + 12) << 20  # after dropping 8 of the free MB
        del big
    with mx.test_utils.environment("HYBRIDNET_CPU_POOL_MB", "0"):
        storage.release_free()
        storage.empty((1 << 20,), np.float32)
        assert storage.pooled_bytes() == 0


def _queued_holder(shape):
    """A pooled array whose only other reference is a queued engine task (running 0.3 s):
    (its address, the event set when the task starts, the list the task appends to)."""
    from hybridnet import engine
    from hybridnet.engine import storage
    a = storage.empty(shape, np.float32)
    a[...] = 1
    started, done = threading.Event(), []

    def slow(arr=a):
        started.set()
        time.sleep(0.3)
        done.append(float(arr[0, 0]))
    engine.push(slow, write=[Var()])
    return a.__array_interface__["data"][0], started, done


def test_storage_pool_waits_for_queued_work_instead_of_growing():
    from hybridnet.engine import storage
    shape = (3, 1 << 18)
    storage.release_free()
    ptr, started, done = _queued_holder(shape)
    started.wait()
    pooled = storage.pooled_bytes()
    b = storage.empty(shape, np.float32)      # main thread: waits for the task, reuses its buffer
    assert done == [1.0]
    assert b.__array_interface__["data"][0] == ptr and storage.pooled_bytes() == pooled
    del b
    mx.nd.waitall()

    ptr, started, done = _queued_holder(shape)
    started.wait()
    got = []                                  # another thread never waits: a new buffer
    worker = threading.Thread(target=lambda: got.append(storage.empty(shape, np.float32)))
    worker.start()
    worker.join()
    assert not done and got[0].__array_interface__["data"][0] != ptr
    assert storage.pooled_bytes() == pooled + got[0].nbytes
    got.clear()
    mx.nd.waitall()
    storage.release_free()


def test_eager_results_stay_correct_when_buffers_are_recycled():
    rng = np.random.RandomState(0)
    x_np = rng.standard_normal((512, 1024)).astype(np.float32)      # 2 MB outputs
    x = mx.nd.array(x_np)
    kept = []
    for i in range(4):
        y = mx.nd.relu(x * (i + 1))
        kept.append(y if i % 2 == 0 else None)
        del y
    for i in (0, 2):
        np.testing.assert_array_equal(kept[i].asnumpy(), np.maximum(x_np * (i + 1), 0))


# ---- one operator's batch split over threads (engine/parallel.py) ---------------------------
def _record_slices(n, parts, work_bytes, monkeypatch):
    import threading
    from hybridnet.engine import parallel
    monkeypatch.setattr(parallel, "policy_threads", lambda: parts)
    seen = {}

    def work(i, part):
        seen[i] = (part, threading.current_thread().name)
    used = parallel.parallel_slices(n, work, work_bytes)
    return used, seen


def test_parallel_slices_cover_the_batch_once_on_separate_threads(monkeypatch):
    import threading
    used, seen = _record_slices(10, 3, 1 << 30, monkeypatch)
    assert used == 3
    assert [seen[i][0] for i in range(3)] == [slice(0, 3), slice(3, 6), slice(6, 10)]
    assert seen[0][1] == threading.current_thread().name        # slice 0 on the caller
    assert {seen[1][1], seen[2][1]} != {threading.current_thread().name}


def test_parallel_slices_keep_small_work_and_tiny_batches_on_the_caller(monkeypatch):
    from hybridnet.engine import parallel
    used, seen = _record_slices(10, 3, parallel.SPLIT_MIN_BYTES - 1, monkeypatch)
    assert (used, list(seen)) == (1, [0]) and seen[0][0] == slice(0, 10)
    used, seen = _record_slices(1, 3, 1 << 30, monkeypatch)
    assert (used, seen[0][0]) == (1, slice(0, 1))


def test_parallel_slices_run_a_nested_split_serially(monkeypatch):
    from hybridnet.engine import parallel
    monkeypatch.setattr(parallel, "policy_threads", lambda: 2)
    inner = []

    def work(i, part):
        inner.append(parallel.parallel_slices(4, lambda j, p: None, 1 << 30))
    assert parallel.parallel_slices(4, work, 1 << 30) == 2
    assert inner == [1, 1]


def test_parallel_slices_raise_the_first_error_after_every_slice_ends(monkeypatch):
    import time
    from hybridnet.engine import parallel
    monkeypatch.setattr(parallel, "policy_threads", lambda: 3)
    done = []

    def work(i, part):
        if i == 1:
            raise ValueError("slice 1 failed")
        time.sleep(0.05)
        done.append(i)
    with pytest.raises(ValueError, match="slice 1 failed"):
        parallel.parallel_slices(9, work, 1 << 30)
    assert sorted(done) == [0, 2]


def _split_sum(n):
    from hybridnet.engine import parallel
    out = np.zeros(n)
    parallel.parallel_slices(n, lambda i, p: out.__setitem__(p, i + 1), 1 << 30)
    return out.tolist()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_parallel_slices_work_in_a_forked_child(monkeypatch):
    """A child forked after the parent used the slice pool gets its own pool (an inherited one
    would count threads that do not exist in the child and hang)."""
    import multiprocessing
    from hybridnet.engine import parallel
    monkeypatch.setattr(parallel, "policy_threads", lambda: 2)
    expected = _split_sum(4)
    assert expected == [1, 1, 2, 2]
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_split_sum, (4,)).get(timeout=60) == expected


def test_parallel_sum_adds_the_slices_partial_sums(monkeypatch):
    from hybridnet.engine import parallel
    monkeypatch.setattr(parallel, "policy_threads", lambda: 3)
    monkeypatch.setattr(parallel, "SPLIT_MIN_BYTES", 0)
    a = np.random.RandomState(4).standard_normal((7, 5, 6))
    np.testing.assert_allclose(parallel.parallel_sum(a, (0, 2)), a.sum(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(parallel.parallel_sum(a, (0,)), a.sum(axis=0), rtol=1e-12)
