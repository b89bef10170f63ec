"""``mx.metric``: evaluation metrics, updated batch by batch and read with ``get()``.

A metric accumulates ``sum_metric`` and ``num_inst`` over ``update(labels, preds)`` calls (lists
of NDArrays or numpy arrays, one per output); ``get()`` returns ``(name, sum_metric /
num_inst)``. As in MXNet 1.9 every metric also keeps *global* statistics that ``reset_local()``
leaves alone (Module.fit resets the local ones every ``Speedometer`` period and reports the
global ones at the end of an epoch): ``get_global()``, ``get_global_name_value()``.

    >>> acc = mx.metric.create('acc')
    >>> acc.update([mx.nd.array([0, 1, 1])], [mx.nd.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])])
    >>> acc.get()
    ('accuracy', 0.6666666666666666)
    >>> mx.metric.create(['acc', 'ce'])                       # a CompositeEvalMetric
    >>> mx.metric.create(lambda label, pred: 0.5)             # a CustomMetric

Registered names (``create``): acc/accuracy, top_k_accuracy/top_k_acc, f1, mcc, perplexity,
mae, mse, rmse, ce/crossentropy, nll_loss/negativeloglikelihood, pearsonr/pearsoncorrelation,
pcc, loss, torch, caffe, composite/compositeevalmetric, custommetric.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import numpy

from .ndarray import NDArray

__all__ = ["EvalMetric", "CompositeEvalMetric", "Accuracy", "TopKAccuracy", "F1", "MCC",
           "Perplexity", "MAE", "MSE", "RMSE", "CrossEntropy", "NegativeLogLikelihood",
           "PearsonCorrelation", "PCC", "Loss", "Torch", "Caffe", "CustomMetric", "create",
           "register", "alias", "np", "check_label_shapes"]


def _as_numpy(x) -> numpy.ndarray:
    """An NDArray's values (waits for them) or a numpy array as is."""
    return x.asnumpy() if isinstance(x, NDArray) else numpy.asarray(x)


def check_label_shapes(labels, preds, wrap: bool = False, shape: bool = False):
    """Check that labels and predictions match: their counts, or with ``shape=True`` their
    shapes. With ``wrap=True`` a single array is wrapped in a list. Returns (labels, preds)."""
    if not shape:
        label_shape, pred_shape = len(labels), len(preds)
    else:
        label_shape, pred_shape = labels.shape, preds.shape
    if label_shape != pred_shape:
        raise ValueError(f"Shape of labels {label_shape} does not match shape of predictions "
                         f"{pred_shape}")
    if wrap:
        if isinstance(labels, (NDArray, numpy.ndarray)):
            labels = [labels]
        if isinstance(preds, (NDArray, numpy.ndarray)):
            preds = [preds]
    return labels, preds


class EvalMetric:
    """Base class: ``EvalMetric(name, output_names=None, label_names=None, **kwargs)``.

    Subclasses implement ``update(labels, preds)`` and count with ``_add(value, count)``.
    ``output_names`` / ``label_names`` pick which entries ``update_dict`` uses. The keyword
    arguments are kept for ``get_config()``.
    """

    def __init__(self, name: str, output_names=None, label_names=None, **kwargs):
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._has_global_stats = kwargs.pop("has_global_stats", False)
        self._kwargs = kwargs
        self.reset()

    def __str__(self):
        return f"EvalMetric: {dict(self.get_name_value())}"

    def get_config(self) -> dict:
        """The arguments that recreate this metric with ``create(**config)``-style calls."""
        config = self._kwargs.copy()
        config.update({"metric": type(self).__name__, "name": self.name,
                       "output_names": self.output_names, "label_names": self.label_names})
        return config

    def update_dict(self, label: dict, pred: dict) -> None:
        """``update`` from dicts name -> array (``output_names``/``label_names`` pick entries)."""
        preds = ([pred[n] for n in self.output_names] if self.output_names is not None
                 else list(pred.values()))
        labels = ([label[n] for n in self.label_names] if self.label_names is not None
                  else list(label.values()))
        self.update(labels, preds)

    def update(self, labels, preds) -> None:
        """Add a batch: ``labels`` and ``preds`` are lists of arrays (one per output)."""
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    def _add(self, value, count) -> None:
        """Accumulate ``value`` over ``count`` instances, locally and globally."""
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += count
        self.global_num_inst += count

    def reset(self) -> None:
        """Clear the local and the global statistics."""
        self.num_inst = 0
        self.sum_metric = 0.0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0

    def reset_local(self) -> None:
        """Clear the local statistics only."""
        self.num_inst = 0
        self.sum_metric = 0.0

    def _value(self, total, count) -> float:
        return float(total / count)

    def get(self):
        """``(name, value)`` of the local statistics (nan before any update)."""
        if self.num_inst == 0:
            return self.name, float("nan")
        return self.name, self._value(self.sum_metric, self.num_inst)

    def get_global(self):
        """``(name, value)`` since the last ``reset()`` (ignores ``reset_local``)."""
        if not self._has_global_stats:
            return self.get()
        if self.global_num_inst == 0:
            return self.name, float("nan")
        return self.name, self._value(self.global_sum_metric, self.global_num_inst)

    @staticmethod
    def _pairs(name, value) -> list:
        names = name if isinstance(name, list) else [name]
        values = value if isinstance(value, list) else [value]
        return list(zip(names, values))

    def get_name_value(self) -> list:
        """``[(name, value), ...]`` of the local statistics."""
        return self._pairs(*self.get())

    def get_global_name_value(self) -> list:
        """``[(name, value), ...]`` of the global statistics."""
        return self._pairs(*self.get_global())


_REGISTRY: dict[str, type] = {}


def register(klass: type) -> type:
    """Register an EvalMetric subclass under its lower-cased class name (a decorator)."""
    if not (isinstance(klass, type) and issubclass(klass, EvalMetric)):
        raise TypeError(f"register expects an EvalMetric subclass, got {klass!r}")
    _REGISTRY[klass.__name__.lower()] = klass
    return klass


def alias(*aliases: str) -> Callable[[type], type]:
    """Register extra names for a metric class (a decorator)."""
    def reg(klass):
        for name in aliases:
            _REGISTRY[name.lower()] = klass
        return klass
    return reg


def create(metric, *args, **kwargs) -> EvalMetric:
    """A metric from a name (``'acc'``), an EvalMetric (returned as is), a callable
    ``feval(label, pred)`` (a CustomMetric) or a list of those (a CompositeEvalMetric)."""
    if isinstance(metric, EvalMetric):
        return metric
    if callable(metric) and not isinstance(metric, type):
        return CustomMetric(metric, *args, **kwargs)
    if isinstance(metric, list):
        composite = CompositeEvalMetric()
        for child in metric:
            composite.add(create(child, *args, **kwargs))
        return composite
    if isinstance(metric, str):
        klass = _REGISTRY.get(metric.lower())
        if klass is None:
            raise ValueError(f"Cannot find metric {metric!r}; registered metrics: "
                             f"{', '.join(sorted(_REGISTRY))}")
        return klass(*args, **kwargs)
    raise TypeError(f"create expects a metric name, an EvalMetric, a callable or a list, got "
                    f"{type(metric).__name__}")


@register
@alias("composite")
class CompositeEvalMetric(EvalMetric):
    """``CompositeEvalMetric(metrics=None, name='composite', output_names=None, label_names=None)``:
    several metrics updated together; ``get()`` returns lists of names and values."""

    def __init__(self, metrics=None, name: str = "composite", output_names=None,
                 label_names=None):
        self.metrics = []
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.metrics = [create(m) for m in (metrics or [])]

    def add(self, metric) -> None:
        """Add a child metric (anything ``create`` accepts)."""
        self.metrics.append(create(metric))

    def get_metric(self, index: int) -> EvalMetric:
        """The child metric at ``index``."""
        try:
            return self.metrics[index]
        except IndexError:
            raise ValueError(f"Metric index {index} is out of range 0 and "
                             f"{len(self.metrics)}") from None

    def update_dict(self, labels: dict, preds: dict) -> None:
        if self.label_names is not None:
            labels = OrderedDict(i for i in labels.items() if i[0] in self.label_names)
        if self.output_names is not None:
            preds = OrderedDict(i for i in preds.items() if i[0] in self.output_names)
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels, preds) -> None:
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self) -> None:
        for metric in self.metrics:
            metric.reset()

    def reset_local(self) -> None:
        for metric in self.metrics:
            metric.reset_local()

    def _collect(self, getter: str):
        names, values = [], []
        for metric in self.metrics:
            name, value = getattr(metric, getter)()
            names.extend(name if isinstance(name, list) else [name])
            values.extend(value if isinstance(value, list) else [value])
        return names, values

    def get(self):
        return self._collect("get")

    def get_global(self):
        return self._collect("get_global")

    def get_config(self) -> dict:
        config = super().get_config()
        config["metrics"] = [m.get_config() for m in self.metrics]
        return config


@register
@alias("acc")
class Accuracy(EvalMetric):
    """``Accuracy(axis=1, name='accuracy', output_names=None, label_names=None)``: the fraction
    of predictions equal to the label (the argmax along ``axis`` of class scores)."""

    def __init__(self, axis: int = 1, name: str = "accuracy", output_names=None,
                 label_names=None):
        super().__init__(name, axis=axis, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.axis = axis

    def update(self, labels, preds) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            pred, label = _as_numpy(pred), _as_numpy(label)
            if pred.shape != label.shape:
                pred = numpy.argmax(pred, axis=self.axis)
            pred = pred.astype("int32").ravel()
            label = label.astype("int32").ravel()
            check_label_shapes(label, pred)
            self._add((pred == label).sum(), len(pred))


@register
@alias("top_k_accuracy", "top_k_acc")
class TopKAccuracy(EvalMetric):
    """``TopKAccuracy(top_k=1, name='top_k_accuracy', ...)``: the label is among the ``top_k``
    highest scores (top_k must be > 1; use Accuracy otherwise). Named ``top_k_accuracy_<k>``."""

    def __init__(self, top_k: int = 1, name: str = "top_k_accuracy", output_names=None,
                 label_names=None):
        super().__init__(name, top_k=top_k, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.top_k = top_k
        if self.top_k <= 1:
            raise ValueError(f"TopKAccuracy needs top_k > 1, got {top_k}; use Accuracy for 1")
        self.name += f"_{self.top_k}"

    def update(self, labels, preds) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            pred = _as_numpy(pred).astype("float32")
            if pred.ndim > 2:
                raise ValueError(f"TopKAccuracy: predictions must have at most 2 dims, got "
                                 f"shape {pred.shape}")
            order = numpy.argpartition(pred, -self.top_k)
            label = _as_numpy(label).astype("int32")
            check_label_shapes(label, order)
            if order.ndim == 1:
                correct = (order.ravel() == label.ravel()).sum()
            else:
                num_classes = order.shape[1]
                correct = sum((order[:, num_classes - 1 - j].ravel() == label.ravel()).sum()
                              for j in range(min(num_classes, self.top_k)))
            self._add(correct, order.shape[0])


class _BinaryStats:
    """True/false positive/negative counts (local and global) of a binary classifier."""
    _FIELDS = ("tp", "fp", "fn", "tn")

    def __init__(self):
        self.local = dict.fromkeys(self._FIELDS, 0)
        self.glob = dict.fromkeys(self._FIELDS, 0)

    def update(self, label, pred) -> None:
        pred, label = _as_numpy(pred), _as_numpy(label).astype("int32")
        pred_label = numpy.argmax(pred, axis=1)
        check_label_shapes(label, pred)
        if len(numpy.unique(label)) > 2:
            raise ValueError(f"binary classification metrics need labels 0/1, got values "
                             f"{numpy.unique(label)[:5].tolist()}")
        pred_true, label_true = pred_label == 1, label == 1
        counts = {"tp": (pred_true & label_true).sum(), "fp": (pred_true & ~label_true).sum(),
                  "fn": (~pred_true & label_true).sum(), "tn": (~pred_true & ~label_true).sum()}
        for k, v in counts.items():
            self.local[k] += v
            self.glob[k] += v

    def reset_local(self):
        self.local = dict.fromkeys(self._FIELDS, 0)

    def reset(self):
        self.reset_local()
        self.glob = dict.fromkeys(self._FIELDS, 0)

    @staticmethod
    def total(c) -> int:
        return c["tp"] + c["fp"] + c["fn"] + c["tn"]

    @staticmethod
    def fscore(c) -> float:
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] > 0 else 0.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] > 0 else 0.0
        if precision + recall > 0:
            return 2 * precision * recall / (precision + recall)
        return 0.0

    @classmethod
    def matthewscc(cls, c) -> float:
        if not cls.total(c):
            return 0.0
        tp, fp, fn, tn = (float(c[k]) for k in cls._FIELDS)
        denom = 1.0
        for t in (tp + fp, tp + fn, tn + fp, tn + fn):
            if t != 0.0:              # MXNet's rule: zero terms are left out of the product
                denom *= t
        return (tp * tn - fp * fn) / math.sqrt(denom)


class _BinaryMetric(EvalMetric):
    """F1 and MCC: a score of the binary counts, averaged per batch ('macro') or over all
    examples ('micro')."""
    _score: Callable

    def __init__(self, name, output_names, label_names, average):
        if average not in ("macro", "micro"):
            raise ValueError(f"{type(self).__name__}: average must be 'macro' or 'micro', got "
                             f"{average!r}")
        self.average = average
        self._stats = _BinaryStats()
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def update(self, labels, preds) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            self._stats.update(label, pred)
        score = type(self)._score
        if self.average == "macro":
            # one score per update; the counts start afresh (so local == global counts here)
            self._add(score(self._stats.local), 1)
            self._stats.reset()
        else:
            self.num_inst = self._stats.total(self._stats.local)
            self.global_num_inst = self._stats.total(self._stats.glob)
            self.sum_metric = score(self._stats.local) * self.num_inst
            self.global_sum_metric = score(self._stats.glob) * self.global_num_inst

    def reset(self) -> None:
        super().reset()
        self._stats.reset()

    def reset_local(self) -> None:
        super().reset_local()
        self._stats.reset_local()


@register
class F1(_BinaryMetric):
    """``F1(name='f1', output_names=None, label_names=None, average='macro')``: the F1 score of
    a binary classifier (class 1 positive; predictions are (n, 2) scores)."""
    _score = staticmethod(_BinaryStats.fscore)

    def __init__(self, name: str = "f1", output_names=None, label_names=None,
                 average: str = "macro"):
        super().__init__(name, output_names, label_names, average)


@register
class MCC(_BinaryMetric):
    """``MCC(name='mcc', output_names=None, label_names=None, average='macro')``: the Matthews
    correlation coefficient of a binary classifier."""
    _score = staticmethod(_BinaryStats.matthewscc)

    def __init__(self, name: str = "mcc", output_names=None, label_names=None,
                 average: str = "macro"):
        super().__init__(name, output_names, label_names, average)


@register
class Perplexity(EvalMetric):
    """``Perplexity(ignore_label, axis=-1, name='perplexity', ...)``: ``exp`` of the mean
    negative log probability of the labels (labels equal to ``ignore_label`` do not count)."""

    def __init__(self, ignore_label, axis: int = -1, name: str = "perplexity",
                 output_names=None, label_names=None):
        super().__init__(name, ignore_label=ignore_label, output_names=output_names,
                         label_names=label_names, has_global_stats=True)
        self.ignore_label = ignore_label
        self.axis = axis

    def update(self, labels, preds) -> None:
        if len(labels) != len(preds):
            raise ValueError(f"Perplexity: {len(labels)} labels but {len(preds)} predictions")
        loss, num = 0.0, 0
        for label, pred in zip(labels, preds):
            label, pred = _as_numpy(label), _as_numpy(pred)
            if label.size != pred.size / pred.shape[-1]:
                raise ValueError(f"Perplexity: shape mismatch: labels {label.shape} vs. "
                                 f"predictions {pred.shape}")
            label = label.reshape(-1)
            index = numpy.expand_dims(label.astype("int64"), self.axis)
            picked = numpy.take_along_axis(pred.reshape(label.size, -1)
                                           if self.axis in (-1, pred.ndim - 1) else pred,
                                           index, self.axis).reshape(-1)
            if self.ignore_label is not None:
                ignore = (label == self.ignore_label).astype(picked.dtype)
                num -= int(ignore.sum())
                picked = picked * (1 - ignore) + ignore
            loss -= float(numpy.log(numpy.maximum(picked, 1e-10)).sum(dtype=numpy.float32))
            num += picked.size
        self._add(loss, num)

    def _value(self, total, count):
        return math.exp(total / count)


def _column_pairs(labels, preds):
    """(label, pred) numpy pairs with 1-D arrays made (n, 1) (the regression metrics' rule)."""
    labels, preds = check_label_shapes(labels, preds, True)
    for label, pred in zip(labels, preds):
        label, pred = _as_numpy(label), _as_numpy(pred)
        if label.ndim == 1:
            label = label.reshape(label.shape[0], 1)
        if pred.ndim == 1:
            pred = pred.reshape(pred.shape[0], 1)
        yield label, pred


@register
class MAE(EvalMetric):
    """``MAE(name='mae', ...)``: mean absolute error, averaged over batches."""

    def __init__(self, name: str = "mae", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def update(self, labels, preds) -> None:
        for label, pred in _column_pairs(labels, preds):
            self._add(numpy.abs(label - pred).mean(), 1)


@register
class MSE(EvalMetric):
    """``MSE(name='mse', ...)``: mean squared error, averaged over batches."""

    def __init__(self, name: str = "mse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def update(self, labels, preds) -> None:
        for label, pred in _column_pairs(labels, preds):
            self._add(((label - pred) ** 2.0).mean(), 1)


@register
class RMSE(EvalMetric):
    """``RMSE(name='rmse', ...)``: root mean squared error per batch, averaged over batches."""

    def __init__(self, name: str = "rmse", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def update(self, labels, preds) -> None:
        for label, pred in _column_pairs(labels, preds):
            self._add(numpy.sqrt(((label - pred) ** 2.0).mean()), 1)


class _LogLoss(EvalMetric):
    """Cross-entropy / NLL: ``-log(p[label] + eps)`` summed, over the number of examples."""

    def __init__(self, eps, name, output_names, label_names):
        super().__init__(name, eps=eps, output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self.eps = eps

    def update(self, labels, preds) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label, pred = _as_numpy(label).ravel(), _as_numpy(pred)
            if label.shape[0] != pred.shape[0]:
                raise ValueError(f"{type(self).__name__}: {label.shape[0]} labels for "
                                 f"{pred.shape[0]} predictions")
            prob = pred[numpy.arange(label.shape[0], dtype=numpy.int64), numpy.int64(label)]
            self._add((-numpy.log(prob + self.eps)).sum(), label.shape[0])


@register
@alias("ce")
class CrossEntropy(_LogLoss):
    """``CrossEntropy(eps=1e-12, name='cross-entropy', ...)``: mean ``-log(p[label] + eps)``."""

    def __init__(self, eps: float = 1e-12, name: str = "cross-entropy", output_names=None,
                 label_names=None):
        super().__init__(eps, name, output_names, label_names)


@register
@alias("nll_loss")
class NegativeLogLikelihood(_LogLoss):
    """``NegativeLogLikelihood(eps=1e-12, name='nll-loss', ...)``: the same as CrossEntropy."""

    def __init__(self, eps: float = 1e-12, name: str = "nll-loss", output_names=None,
                 label_names=None):
        super().__init__(eps, name, output_names, label_names)


@register
@alias("pearsonr")
class PearsonCorrelation(EvalMetric):
    """``PearsonCorrelation(name='pearsonr', output_names=None, label_names=None, average='macro')``:
    Pearson's r of predictions and labels, per batch averaged ('macro') or over all values
    seen ('micro', streaming)."""

    def __init__(self, name: str = "pearsonr", output_names=None, label_names=None,
                 average: str = "macro"):
        if average not in ("macro", "micro"):
            raise ValueError(f"PearsonCorrelation: average must be 'macro' or 'micro', got "
                             f"{average!r}")
        self.average = average
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def reset(self) -> None:
        super().reset()
        # streaming (count, mean, sum of squared deviations) of labels and preds, co-moment
        self._label_agg = (0, 0.0, 0.0)
        self._pred_agg = (0, 0.0, 0.0)
        self._conv = 0.0

    @staticmethod
    def _update_variance(new_values, count, mean, m_2):
        count += len(new_values)
        delta = new_values - mean
        mean += numpy.sum(delta / count)
        m_2 += numpy.sum(delta * (new_values - mean))
        return count, mean, m_2

    def update(self, labels, preds) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            check_label_shapes(label, pred, False, True)
            label = _as_numpy(label).ravel().astype(numpy.float64)
            pred = _as_numpy(pred).ravel().astype(numpy.float64)
            if self.average == "macro":
                self._add(numpy.corrcoef(pred, label)[0, 1], 1)
            else:
                self._add(0.0, 1)
                self._label_agg = self._update_variance(label, *self._label_agg)
                # MXNet's order: the co-moment uses the updated label mean, the old pred mean
                self._conv += numpy.sum((label - self._label_agg[1]) * (pred - self._pred_agg[1]))
                self._pred_agg = self._update_variance(pred, *self._pred_agg)

    def get(self):
        if self.num_inst == 0:
            return self.name, float("nan")
        if self.average == "macro":
            return self.name, float(self.sum_metric / self.num_inst)
        n, _, sse_l = self._label_agg
        sse_p = self._pred_agg[2]
        return self.name, float(self._conv / ((n - 1) * numpy.sqrt(sse_p / (n - 1))
                                              * numpy.sqrt(sse_l / (n - 1))))


@register
class PCC(EvalMetric):
    """``PCC(name='pcc', output_names=None, label_names=None, has_global_stats=True)``: the
    multi-class Matthews correlation (Gorodkin's R_K) from a growing confusion matrix."""

    def __init__(self, name: str = "pcc", output_names=None, label_names=None,
                 has_global_stats: bool = True):
        self.k = 2
        super().__init__(name=name, output_names=output_names, label_names=label_names,
                         has_global_stats=has_global_stats)

    def _grow(self, inc: int) -> None:
        self.lcm = numpy.pad(self.lcm, ((0, inc), (0, inc)), "constant")
        self.gcm = numpy.pad(self.gcm, ((0, inc), (0, inc)), "constant")
        self.k += inc

    @staticmethod
    def _calc_mcc(cmat) -> float:
        n = cmat.sum()
        x, y = cmat.sum(axis=1), cmat.sum(axis=0)
        cov_xx, cov_yy = numpy.sum(x * (n - x)), numpy.sum(y * (n - y))
        if cov_xx == 0 or cov_yy == 0:
            return float("nan")
        cov_xy = numpy.sum(cmat.diagonal() * n - x * y)
        return cov_xy / (cov_xx * cov_yy) ** 0.5

    def update(self, labels, preds) -> None:
        labels, preds = check_label_shapes(labels, preds, True)
        for label, pred in zip(labels, preds):
            label = _as_numpy(label).astype("int32")
            pred = _as_numpy(pred)
            pred = pred.argmax(axis=1) if pred.shape != label.shape else pred.astype("int32")
            n = max(pred.max(), label.max())
            if n >= self.k:
                self._grow(int(n) + 1 - self.k)
            bcm = numpy.zeros((self.k, self.k))
            numpy.add.at(bcm, (pred.ravel(), label.ravel()), 1)
            self.lcm += bcm
            self.gcm += bcm
        self.num_inst += 1
        self.global_num_inst += 1

    @property
    def sum_metric(self):
        return self._calc_mcc(self.lcm) * self.num_inst

    @sum_metric.setter
    def sum_metric(self, value):
        """Kept as the confusion matrix; the base class's resets assign 0 here."""

    @property
    def global_sum_metric(self):
        return self._calc_mcc(self.gcm) * self.global_num_inst

    @global_sum_metric.setter
    def global_sum_metric(self, value):
        """Kept as the confusion matrix; the base class's resets assign 0 here."""

    def reset(self) -> None:
        self.global_num_inst = 0.0
        self.gcm = numpy.zeros((self.k, self.k))
        self.reset_local()

    def reset_local(self) -> None:
        self.num_inst = 0.0
        self.lcm = numpy.zeros((self.k, self.k))


@register
class Loss(EvalMetric):
    """``Loss(name='loss', ...)``: the mean of the outputs themselves (for loss outputs);
    labels are ignored."""

    def __init__(self, name: str = "loss", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names,
                         has_global_stats=True)

    def update(self, _, preds) -> None:
        if isinstance(preds, (NDArray, numpy.ndarray)):
            preds = [preds]
        for pred in preds:
            values = _as_numpy(pred)
            self._add(float(values.sum(dtype=numpy.float64)), values.size)


@register
class Torch(Loss):
    """``Torch(name='torch', ...)``: Loss under the name MXNet's torch plugin used."""

    def __init__(self, name: str = "torch", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)


@register
class Caffe(Loss):
    """``Caffe(name='caffe', ...)``: Loss under the name MXNet's caffe plugin used."""

    def __init__(self, name: str = "caffe", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names)


@register
class CustomMetric(EvalMetric):
    """``CustomMetric(feval, name=None, allow_extra_outputs=False, ...)``: ``feval(label, pred)``
    on numpy arrays returns a value (one instance) or ``(sum, count)``."""

    def __init__(self, feval: Callable, name: str | None = None,
                 allow_extra_outputs: bool = False, output_names=None, label_names=None):
        if name is None:
            name = feval.__name__
            if "<" in name:
                name = f"custom({name})"
        super().__init__(name, feval=feval, allow_extra_outputs=allow_extra_outputs,
                         output_names=output_names, label_names=label_names,
                         has_global_stats=True)
        self._feval = feval
        self._allow_extra_outputs = allow_extra_outputs

    def update(self, labels, preds) -> None:
        if not self._allow_extra_outputs:
            labels, preds = check_label_shapes(labels, preds, True)
        for pred, label in zip(preds, labels):
            reval = self._feval(_as_numpy(label), _as_numpy(pred))
            if isinstance(reval, tuple):
                self._add(*reval)
            else:
                self._add(reval, 1)

    def get_config(self):
        raise NotImplementedError("CustomMetric cannot be serialized")


def np(numpy_feval: Callable, name: str | None = None,
       allow_extra_outputs: bool = False) -> CustomMetric:
    """A CustomMetric from ``numpy_feval(label, pred)`` on numpy arrays."""
    def feval(label, pred):
        return numpy_feval(label, pred)
    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)

