"""pytest configuration: fixed seeds, an engine drained between tests, the `slow` marker."""
import numpy as np
import pytest

import hybridnet as mx


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and cupy")


def pytest_collection_modifyitems(config, items):
    if mx.num_gpus() == 0:
        skip = pytest.mark.skip(reason="no GPU present")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_and_drain():
    # Every test starts from the same random state, whatever ran before it.
    np.random.seed(0)
    mx.random.seed(0)
    yield
    try:
        mx.nd.waitall()
    except Exception:  # a test that left an error behind on purpose already checked it
        pass


@pytest.fixture(params=["threaded", "naive"])
def engine(request):
    """A private engine of each kind (the engine tests run against both)."""
    from hybridnet.engine import NaiveEngine, ThreadedEngine
    eng = ThreadedEngine(cpu_threads=2, io_threads=2) if request.param == "threaded" \
        else NaiveEngine()
    yield eng
    eng.shutdown()
