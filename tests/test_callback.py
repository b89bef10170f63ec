"""mx.callback: MXNet's log lines, checkpoint numbering, the stop signal and EarlyStopping,
the TensorBoard writer (a stand-in tensorboardX, and the real one when installed), the tqdm
progress bar and when fit shows it."""
import glob
import importlib
import io
import logging
import struct
import sys
import types
from collections import namedtuple

import pytest

import hybridnet as mx
from hybridnet import callback as cb

Param = namedtuple("BatchEndParams", ["epoch", "nbatch", "eval_metric", "locals"])


def acc_metric(value_pairs=((1, [0, 1]), (0, [0, 1]))):
    m = mx.metric.Accuracy()
    for label, pred in value_pairs:
        m.update([mx.nd.array([label])], [mx.nd.array([pred])])
    return m


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(cb.time, "time", lambda: now[0])
    return now


def test_speedometer_auto_reset_format(caplog, clock):
    metric = acc_metric()
    speedo = cb.Speedometer(batch_size=32, frequent=2)
    with caplog.at_level(logging.INFO):
        speedo(Param(0, 0, metric, None))     # starts the clock
        clock[0] += 0.5
        speedo(Param(0, 1, metric, None))     # not a multiple of frequent
        speedo(Param(0, 2, metric, None))
    assert caplog.messages == ["Epoch[0] Batch [0-2]\tSpeed: 128.00 samples/sec\taccuracy=0.500000"]
    assert metric.num_inst == 0 and metric.global_num_inst == 2


def test_speedometer_no_reset_and_no_metric(caplog, clock):
    metric = acc_metric()
    speedo = cb.Speedometer(batch_size=10, frequent=1, auto_reset=False)
    with caplog.at_level(logging.INFO):
        speedo(Param(3, 0, metric, None))
        clock[0] += 2.0
        speedo(Param(3, 1, metric, None))
        speedo(Param(4, 0, None, None))       # new epoch: restarts
        clock[0] += 1.0
        speedo(Param(4, 1, None, None))
    assert caplog.messages == ["Epoch[3] Batch [0-1]\tSpeed: 5.00 samples/sec\taccuracy=0.500000",
                               "Iter[4] Batch [1]\tSpeed: 10.00 samples/sec"]
    assert metric.num_inst == 2


def test_log_train_metric(caplog):
    metric = acc_metric()
    with caplog.at_level(logging.INFO):
        cb.log_train_metric(2)(Param(1, 3, metric, None))
        cb.log_train_metric(2, auto_reset=True)(Param(1, 4, metric, None))
    assert caplog.messages == ["Iter[1] Batch[4] Train-accuracy=0.500000"]
    assert metric.num_inst == 0


def test_progress_bar_and_validation_log(caplog):
    with caplog.at_level(logging.INFO):
        cb.ProgressBar(total=4, length=8)(Param(0, 1, None, None))
        cb.LogValidationMetricsCallback()(Param(2, 0, acc_metric(), None))
        cb.LogValidationMetricsCallback()(Param(2, 0, None, None))
    assert caplog.messages == ["[==------] 25%\r", "Epoch[2] Validation-accuracy=0.500000"]


@pytest.fixture
def fake_model(monkeypatch):
    calls = []
    try:
        model = importlib.import_module("hybridnet.model")
    except ImportError:
        model = types.ModuleType("hybridnet.model")
        monkeypatch.setitem(sys.modules, "hybridnet.model", model)
    monkeypatch.setattr(model, "save_checkpoint",
                        lambda prefix, epoch, sym, arg, aux: calls.append((prefix, epoch)),
                        raising=False)
    return calls


def test_do_checkpoint_numbers_from_one(fake_model):
    save = cb.do_checkpoint("run/net", period=2)
    for epoch in range(5):
        save(epoch, None, {}, {})
    assert fake_model == [("run/net", 2), ("run/net", 4)]


def test_save_checkpoint_is_the_models():
    assert mx.callback.save_checkpoint is mx.model.save_checkpoint
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        mx.callback.nosuch


def test_module_checkpoint():
    class Mod:
        def __init__(self):
            self.calls = []

        def save_checkpoint(self, prefix, epoch, save_optimizer_states):
            self.calls.append((prefix, epoch, save_optimizer_states))

    mod = Mod()
    save = cb.module_checkpoint(mod, "p", period=0, save_optimizer_states=True)
    save(0)
    save(1)
    assert mod.calls == [("p", 1, True), ("p", 2, True)]


def test_stop_signal_raised_or_returned():
    ran = []

    def raiser(param):
        ran.append("raiser")
        raise cb.StopTraining("enough")

    def returner(param):
        ran.append("returner")
        return cb.StopTraining

    def plain(param):
        ran.append("plain")

    signal = cb.run_callbacks([raiser, plain, returner], Param(0, 0, None, None))
    assert isinstance(signal, cb.StopTraining) and signal.reason == "enough"
    assert ran == ["raiser", "plain", "returner"]
    signal = cb.run_callbacks(returner, None)
    assert "returner asked to stop" in signal.reason
    assert cb.run_callbacks(plain, None) is None and cb.run_callbacks(None, 1) is None
    with pytest.raises(ZeroDivisionError):
        cb.run_callbacks(lambda p: 1 / 0, None)


def _metric_with(name, value):
    m = mx.metric.CustomMetric(lambda label, pred: value, name=name)
    m.update([mx.nd.ones((1,))], [mx.nd.ones((1,))])
    return m


def test_early_stopping_max_and_min():
    stop = cb.EarlyStopping(patience=2)
    results = [stop(Param(e, 0, _metric_with("accuracy", v), None))
               for e, v in enumerate([0.5, 0.6, 0.6, 0.55])]
    assert results[:3] == [None, None, None]
    assert isinstance(results[3], cb.StopTraining)
    assert "best 0.600000 at epoch 1" in results[3].reason
    loss_stop = cb.EarlyStopping(patience=1, min_delta=0.01)
    assert loss_stop(Param(0, 0, _metric_with("val-loss", 1.0), None)) is None
    assert loss_stop(Param(1, 0, _metric_with("val-loss", 0.5), None)) is None
    assert isinstance(loss_stop(Param(2, 0, _metric_with("val-loss", 0.495), None)),
                      cb.StopTraining)


def test_early_stopping_errors():
    with pytest.raises(ValueError, match="mode must be"):
        cb.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience must be >= 1"):
        cb.EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="no value named 'f1'; it has accuracy"):
        cb.EarlyStopping("f1")(Param(0, 0, acc_metric(), None))


def test_tensorboard_with_stand_in_writer(monkeypatch):
    written = []

    class SummaryWriter:
        def __init__(self, logdir):
            self.logdir = logdir

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

    monkeypatch.setitem(sys.modules, "tensorboardX",
                        types.SimpleNamespace(SummaryWriter=SummaryWriter))
    tb = cb.TensorBoard("logs", prefix="train-")
    tb(Param(0, 1, acc_metric(), None))
    tb(Param(0, 2, acc_metric(), None))
    tb(Param(0, 3, None, None))
    assert written == [("train-accuracy", 0.5, 1), ("train-accuracy", 0.5, 2)]
    assert tb.summary_writer.logdir == "logs"


def test_tensorboard_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        cb.TensorBoard("logs")


def test_tensorboard_writes_real_event_files(tmp_path):
    pytest.importorskip("tensorboardX")
    from tensorboardX.proto import event_pb2
    tb = cb.TensorBoard(str(tmp_path), prefix="val-", step="epoch")
    tb(Param(3, 0, acc_metric(), None))
    tb(Param(4, 0, acc_metric(((1, [0, 1]), (1, [0, 1]))), None))
    tb.close()
    files = glob.glob(str(tmp_path / "events.out.tfevents.*"))
    assert len(files) == 1
    data = open(files[0], "rb").read()
    scalars, pos = [], 0
    while pos < len(data):                # TFRecord: u64 length, u32 crc, payload, u32 crc
        (length,) = struct.unpack_from("<Q", data, pos)
        event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
        pos += 16 + length
        scalars += [(v.tag, round(v.simple_value, 6), event.step) for v in event.summary.value]
    assert scalars == [("val-accuracy", 0.5, 3), ("val-accuracy", 1.0, 4)]


def test_tqdm_progress_bar_counts_batches_and_shows_metrics():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    bar = cb.TqdmProgressBar(total=3, file=out)
    metric = acc_metric()
    for nbatch in range(3):
        bar(Param(0, nbatch, metric, None))
    assert bar.bar.n == 3 and bar.bar.total == 3
    bar(Param(1, 0, None, None))           # a new epoch starts a new bar
    assert bar.epoch == 1 and bar.bar.n == 1
    bar.close()
    text = out.getvalue()
    assert "Epoch[0]" in text and "3/3" in text and "accuracy=0.5000" in text
    assert "Epoch[1]" in text and bar.bar is None


def test_auto_progress_bar_only_for_a_person_at_a_terminal(monkeypatch):
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    info, quiet = logging.getLogger("hn.info"), logging.getLogger("hn.quiet")
    info.setLevel(logging.INFO)
    quiet.setLevel(logging.WARNING)
    assert isinstance(cb.auto_progress_bar(info, 10, Terminal()), cb.TqdmProgressBar)
    assert cb.auto_progress_bar(quiet, 10, Terminal()) is None          # not at INFO
    assert cb.auto_progress_bar(info, 10, io.StringIO()) is None         # a pipe or file
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert cb.auto_progress_bar(info, 10, Terminal()) is None            # tqdm missing
    with pytest.raises(ImportError, match="pip install tqdm"):
        cb.TqdmProgressBar()
