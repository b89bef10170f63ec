"""Engine.push_async: work that completes through a callback (MXNet's Engine::PushAsync)."""
import threading
import time

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import EngineError
from hybridnet.engine import COPY, ThreadedEngine, Var


def later(seconds, fn):
    """Run ``fn`` on another thread after ``seconds`` (a reply arriving on a socket thread)."""
    timer = threading.Timer(seconds, fn)
    timer.start()
    return timer


def test_dependents_wait_for_the_callback_not_for_fn(engine):
    v, log = Var(), []

    def start(on_complete):
        log.append("started")
        later(0.05, lambda: (log.append("completed"), on_complete()))
    engine.push_async(start, [], [v])
    engine.push(lambda: log.append("reader"), [v], [])
    engine.wait_for_var(v)
    assert log[:2] == ["started", "completed"]
    engine.wait_all()
    assert log == ["started", "completed", "reader"]


def test_async_work_is_ordered_after_earlier_writes(engine):
    v, log = Var(), []
    engine.push(lambda: (time.sleep(0.03), log.append("write")), [], [v])
    engine.push_async(lambda done: (log.append("async"), done()), [v], [])
    engine.wait_all()
    assert log == ["write", "async"]


def test_no_worker_thread_waits_while_async_work_is_pending():
    # one I/O thread: two async tasks in flight at once and a plain task still runs
    eng = ThreadedEngine(cpu_threads=1, io_threads=1)
    callbacks, ran = [], threading.Event()
    for _ in range(2):
        eng.push_async(callbacks.append, [], [Var()], prop=COPY)
    eng.push(ran.set, [], [Var()], prop=COPY)
    assert ran.wait(5)
    deadline = time.monotonic() + 5
    while len(callbacks) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(callbacks) == 2
    for done in callbacks:
        done()
    eng.wait_all()
    eng.shutdown()


def test_inline_starts_in_the_calling_thread_when_ready():
    eng = ThreadedEngine(cpu_threads=1, io_threads=1)
    v, threads = Var(), []
    eng.push_async(lambda done: (threads.append(threading.current_thread()), done()), [], [v],
                   prop=COPY, inline=True)
    assert threads == [threading.current_thread()]
    # not ready: it runs on a worker after the write it depends on
    eng.push(lambda: time.sleep(0.03), [], [v], prop=COPY)
    eng.push_async(lambda done: (threads.append(threading.current_thread()), done()), [v], [],
                   prop=COPY, inline=True)
    eng.wait_all()
    assert len(threads) == 2 and threads[1] is not threading.current_thread()
    eng.shutdown()


def test_failure_through_the_callback_is_stored_and_inherited(engine):
    v, w, log = Var(), Var(), []
    engine.push_async(lambda done: later(0.01, lambda: done(ValueError("no reply"))), [], [v])
    engine.push(lambda: log.append("skipped"), [v], [w])
    with pytest.raises(ValueError, match="no reply"):
        engine.wait_for_var(w)
    with pytest.raises(ValueError, match="no reply"):
        engine.wait_for_var(v)             # a failed var stays failed
    assert log == []
    engine.wait_all()                      # raised by a wait already: not again


def test_exception_raised_by_fn_fails_the_task(engine):
    v = Var()

    def start(on_complete):
        raise KeyError("cannot start")
    engine.push_async(start, [], [v])
    with pytest.raises(KeyError, match="cannot start"):
        engine.wait_all()
    with pytest.raises(KeyError, match="cannot start"):
        engine.wait_for_var(v)


def test_async_task_after_a_failed_write_is_skipped(engine):
    v, started = Var(), []
    engine.push(lambda: 1 / 0, [], [v])
    engine.push_async(lambda done: (started.append(1), done()), [v], [])
    with pytest.raises(ZeroDivisionError):
        engine.wait_all()
    assert started == []


def test_exception_after_on_complete_is_raised_by_wait_all(engine):
    v = Var()

    def start(on_complete):
        on_complete()
        raise RuntimeError("late bug")
    engine.push_async(start, [], [v])
    engine.wait_for_var(v)                 # the task itself completed
    with pytest.raises(RuntimeError, match="late bug"):
        engine.wait_all()


def test_calling_on_complete_twice_is_an_error(engine):
    v, second = Var(), []

    def start(on_complete):
        on_complete()
        try:
            on_complete()
        except EngineError as err:
            second.append(str(err))
    engine.push_async(start, [], [v], name="twice")
    engine.wait_all()
    assert second and "called twice" in second[0] and "twice" in second[0]


def test_many_async_tasks_complete_from_other_threads():
    eng = ThreadedEngine(cpu_threads=2, io_threads=2)
    v, log = Var(), []
    for i in range(300):
        # writes of one var stay FIFO even when each completes on a timer thread
        eng.push_async(lambda done, i=i: later(0.0, lambda: (log.append(i), done())), [], [v],
                       prop=COPY)
    eng.wait_all()
    assert log == list(range(300))
    eng.shutdown()


def test_public_push_async_fills_an_ndarray():
    a = mx.nd.zeros((3,))

    def fill(on_complete):
        later(0.01, lambda: (a._data.fill(7), on_complete()))
    mx.engine.push_async(fill, write=[a])
    np.testing.assert_array_equal(a.asnumpy(), [7, 7, 7])
    b = a + 1                              # ordinary ops after it see the value
    np.testing.assert_array_equal(b.asnumpy(), [8, 8, 8])


def test_public_push_async_checks_its_arguments():
    with pytest.raises(TypeError, match="must be callable"):
        mx.engine.push_async(3)
    with pytest.raises(ValueError, match="prop must be one of"):
        mx.engine.push_async(lambda done: done(), prop="gpu")
    with pytest.raises(TypeError, match="NDArrays or engine Vars"):
        mx.engine.push_async(lambda done: done(), write=[np.zeros(3)])


def test_push_async_flushes_this_threads_bulk_segment():
    eng = ThreadedEngine(cpu_threads=1, io_threads=1)
    v, log = Var(), []
    with eng.bulk(8):
        eng.push(lambda: log.append("bulk"), [], [v])
        eng.push_async(lambda done: (log.append("async"), done()), [v], [])
    eng.wait_all()
    assert log == ["bulk", "async"]
    eng.shutdown()
