"""``DataParallelExecutorGroup``: one Executor per device, each running a slice of the batch.

A batch of size B is split along each input's batch axis (the ``N`` of its layout) into one
slice per device, sized by ``work_load_list`` (MXNet's rounding: the last device takes what the
rounding left). Every device has its own copy of the parameters; ``param_arrays[i]`` /
``grad_arrays[i]`` list parameter i's copies and gradients on each device, which Module sums
through a KVStore (``model._update_params``). Per batch the group does O(inputs + outputs)
Python work: one copy per input slice, one engine task per forward and per backward.

Outputs are merged along their batch axis onto the first device (``merge_multi_context``); on
one device they are the executor's own output arrays, no copy.
"""
from __future__ import annotations

import logging

from ..base import HybridNetError, ShapeError, shape_str
from ..context import cpu
from ..io.base import DataDesc
from ..ndarray import NDArray, concatenate, slice_axis

__all__ = ["DataParallelExecutorGroup", "split_input_slice"]


def split_input_slice(batch_size: int, work_load_list: list) -> list:
    """The batch slices for each device, proportional to ``work_load_list`` (MXNet's rule)."""
    total = float(sum(work_load_list))
    counts = [round(w * batch_size / total) for w in work_load_list]
    if sum(counts) < batch_size:
        counts[-1] += batch_size - sum(counts)
    slices, end = [], 0
    for count in counts:
        begin = int(min(end, batch_size))
        end = int(min(begin + count, batch_size))
        if begin >= end:
            raise HybridNetError(f"cannot split a batch of {batch_size} over "
                                 f"{len(work_load_list)} devices with work_load_list "
                                 f"{list(work_load_list)}: some slices would be empty; use a "
                                 f"bigger batch or fewer devices")
        slices.append(slice(begin, end))
    return slices


def _slice_along(arr: NDArray, axis: int, islice: slice) -> NDArray:
    """``arr``'s entries ``islice`` along ``axis`` (a view for axis 0)."""
    if axis == 0:
        return arr[islice]
    return slice_axis(arr, axis=axis, begin=islice.start, end=islice.stop)


def _merge(arrays: list, axis: int):
    """One array from per-device pieces: the piece itself on one device, else concatenated."""
    if len(arrays) == 1:
        return arrays[0]
    if axis < 0:              # not batched (e.g. a scalar loss): the first device's value
        return arrays[0]
    ctx = arrays[0].context
    return concatenate([a.as_in_context(ctx) for a in arrays], axis=axis)


class DataParallelExecutorGroup:
    """``DataParallelExecutorGroup(symbol, contexts, workload, data_shapes, label_shapes, param_names, for_training, inputs_need_grad, shared_group=None, logger=logging, fixed_param_names=None, grad_req='write', state_names=None)``.

    ``data_shapes`` / ``label_shapes`` are lists of ``DataDesc`` with the whole batch's shapes.
    ``shared_group`` (BucketingModule): bind every executor sharing the parameters and the
    memory of ``shared_group``'s executor on the same device.
    """

    def __init__(self, symbol, contexts: list, workload: list, data_shapes: list,
                 label_shapes: list | None, param_names: list, for_training: bool,
                 inputs_need_grad: bool, shared_group=None, logger=logging,
                 fixed_param_names=None, grad_req="write", state_names=None,
                 group2ctxs=None):
        self.param_names = list(param_names)
        self.arg_names = symbol.list_arguments()
        self.aux_names = symbol.list_auxiliary_states()
        self.symbol = symbol
        self.contexts = list(contexts)
        self.workload = list(workload)
        self.group2ctxs = group2ctxs
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self.logger = logger
        self.fixed_param_names = list(fixed_param_names or [])
        self.state_names = list(state_names or [])
        self.grad_req = self._grad_reqs(grad_req, data_shapes)
        self.shared_data_arrays = (shared_group.shared_data_arrays if shared_group is not None
                                   else [{} for _ in self.contexts])
        self.execs: list = []
        self.output_layouts = [DataDesc.get_batch_axis(symbol[i].attr("__layout__"))
                               for i in range(len(symbol.list_outputs()))]
        self.bind_exec(data_shapes, label_shapes, shared_group)

    def _grad_reqs(self, grad_req, data_shapes) -> dict:
        data_names = [d[0] for d in data_shapes]
        if not self.for_training:
            return dict.fromkeys(self.arg_names, "null")
        if isinstance(grad_req, str):
            reqs = {}
            for name in self.arg_names:
                if name in self.param_names:
                    reqs[name] = "null" if name in self.fixed_param_names else grad_req
                elif name in data_names:
                    reqs[name] = grad_req if self.inputs_need_grad else "null"
                else:
                    reqs[name] = "null"
            return reqs
        if isinstance(grad_req, (list, tuple)):
            if len(grad_req) != len(self.arg_names):
                raise ValueError(f"grad_req has {len(grad_req)} entries for "
                                 f"{len(self.arg_names)} arguments ({', '.join(self.arg_names)})")
            return dict(zip(self.arg_names, grad_req))
        if isinstance(grad_req, dict):            # arguments not named: 'null', as in MXNet
            return {name: grad_req.get(name, "null") for name in self.arg_names}
        raise TypeError(f"grad_req must be a str, list or dict, got {type(grad_req).__name__}")

    # ---- binding ----------------------------------------------------------------------------
    def _batch_axes(self, shapes: list) -> list:
        """Each input's batch axis; checks that every batched input has ``batch_size``."""
        axes = [DataDesc.get_batch_axis(getattr(d, "layout", None)) for d in shapes]
        for desc, axis in zip(shapes, axes):
            if axis < 0:
                continue
            size = desc[1][axis]
            if self.batch_size is None:
                self.batch_size = size
            elif size != self.batch_size:
                raise ShapeError("Module", f"all inputs must have the same batch size: "
                                 f"batch_size = {self.batch_size}, but {desc[0]} has shape "
                                 f"{shape_str(desc[1])}")
        return axes

    def _sliced_shapes(self, shapes: list, islice: slice, axes: list) -> list:
        out = []
        for desc, axis in zip(shapes, axes):
            shape = list(desc[1])
            if axis >= 0:
                shape[axis] = islice.stop - islice.start
            out.append(DataDesc(desc[0], tuple(shape), getattr(desc, "dtype", None),
                                getattr(desc, "layout", "NCHW")))
        return out

    def bind_exec(self, data_shapes: list, label_shapes: list | None, shared_group=None,
                  reshape: bool = False) -> None:
        """Bind (or with ``reshape`` re-shape) one executor per device for these shapes."""
        self.batch_size = None
        self.data_layouts = self._batch_axes(data_shapes)
        self.label_layouts = (self._batch_axes(label_shapes) if label_shapes is not None
                              else None)
        self.slices = split_input_slice(self.batch_size, self.workload)
        self.data_shapes, self.label_shapes = list(data_shapes), label_shapes
        self.data_names = [d[0] for d in data_shapes]
        self.label_names = [d[0] for d in label_shapes] if label_shapes is not None else []
        execs = []
        for i, ctx in enumerate(self.contexts):
            shapes = self._sliced_shapes(data_shapes, self.slices[i], self.data_layouts)
            if label_shapes is not None:
                shapes += self._sliced_shapes(label_shapes, self.slices[i], self.label_layouts)
            if reshape:
                execs.append(self._reshape_one(self.execs[i], shapes))
            else:
                shared = shared_group.execs[i] if shared_group is not None else None
                group2ctx = (self.group2ctxs[i] if isinstance(self.group2ctxs, (list, tuple))
                             else self.group2ctxs)
                execs.append(self._bind_one(ctx, shapes, shared, self.shared_data_arrays[i],
                                            group2ctx))
        self.execs = execs
        self._collect_arrays()

    def _reshape_one(self, exe, shapes: list):
        new = exe.reshape(partial_shaping=True, allow_up_sizing=True,
                          **{d[0]: d[1] for d in shapes})
        for name in self.param_names:
            old_shape, new_shape = exe.arg_dict[name].shape, new.arg_dict[name].shape
            if old_shape != new_shape:
                raise ShapeError("Module", f"with these input shapes parameter '{name}' would "
                                 f"need shape {shape_str(new_shape)}, but it has "
                                 f"{shape_str(old_shape)}; only the batch size may change")
        return new

    def _bind_one(self, ctx, shapes: list, shared_exec, shared_buffer: dict, group2ctx):
        type_dict = {d[0]: d.dtype for d in shapes if getattr(d, "dtype", None) is not None}
        return self.symbol.simple_bind(
            ctx, grad_req=self.grad_req, type_dict=type_dict, group2ctx=group2ctx,
            shared_arg_names=self.param_names if shared_exec is not None else None,
            shared_exec=shared_exec, shared_buffer=shared_buffer,
            **{d[0]: d[1] for d in shapes})

    def _collect_arrays(self) -> None:
        execs = self.execs
        self.data_arrays = [[(self.slices[k], e.arg_dict[name]) for k, e in enumerate(execs)]
                            for name in self.data_names]
        self.label_arrays = [[(self.slices[k], e.arg_dict[name]) for k, e in enumerate(execs)]
                             for name in self.label_names if name in execs[0].arg_dict]
        self.state_arrays = [[e.arg_dict[name] for e in execs] for name in self.state_names]
        self.param_arrays = [[e.arg_arrays[i] for e in execs]
                             for i, name in enumerate(self.arg_names) if name in self.param_names]
        self.grad_arrays = ([[e.grad_arrays[i] for e in execs]
                             for i, name in enumerate(self.arg_names)
                             if name in self.param_names] if self.for_training else [])
        self.aux_arrays = [[e.aux_arrays[i] for e in execs] for i in range(len(self.aux_names))]
        self.input_grad_arrays = ([[e.grad_dict[name] for e in execs]
                                   for name in self.data_names]
                                  if self.inputs_need_grad else [])
        # what forward copies per batch: (input index, device, destination), made once
        self._data_targets = [(j, axis, self.slices[k], dst)
                              for j, (axis, devs) in enumerate(zip(self.data_layouts,
                                                                   self.data_arrays))
                              for k, (_, dst) in enumerate(devs)]
        label_axes = self.label_layouts or []
        self._label_targets = [(j, axis, self.slices[k], dst)
                               for j, (axis, devs) in enumerate(zip(label_axes,
                                                                    self.label_arrays))
                               for k, (_, dst) in enumerate(devs)]

    def reshape(self, data_shapes: list, label_shapes: list | None) -> None:
        """Re-shape every executor for new input shapes (sharing memory where it fits)."""
        if data_shapes == self.data_shapes and label_shapes == self.label_shapes:
            return
        before = dict(self.__dict__)
        try:
            self.bind_exec(data_shapes, label_shapes, reshape=True)
        except Exception:
            self.__dict__.update(before)      # still bound for the old shapes
            raise

    # ---- parameters -------------------------------------------------------------------------
    def set_params(self, arg_params: dict, aux_params: dict, allow_extra: bool = False) -> None:
        """Copy the parameters into every device's executor."""
        for exe in self.execs:
            exe.copy_params_from(arg_params, aux_params, allow_extra_params=allow_extra)

    def get_params(self, arg_params: dict, aux_params: dict) -> None:
        """Copy the devices' parameters (their mean, when several) into the given CPU dicts."""
        for names, blocks, out in ((self.param_names, self.param_arrays, arg_params),
                                   (self.aux_names, self.aux_arrays, aux_params)):
            for name, block in zip(names, blocks):
                dst = out[name]
                if len(block) == 1:
                    block[0].copyto(dst)
                else:
                    total = block[0].copyto(cpu())
                    for w in block[1:]:
                        total += w.copyto(cpu())
                    (total / len(block)).copyto(dst)

    # ---- running ----------------------------------------------------------------------------
    def _load(self, targets: list, sources: list, what: str, names: list) -> None:
        if len(sources) != len(names):
            raise HybridNetError(f"the batch has {len(sources)} {what} arrays, the module was "
                                 f"bound with {len(names)} ({', '.join(names) or 'none'})")
        for j, axis, islice, dst in targets:
            src = sources[j]
            if not isinstance(src, NDArray):
                raise TypeError(f"{what} '{names[j]}' must be an NDArray, got "
                                f"{type(src).__name__}")
            piece = src if len(self.execs) == 1 or axis < 0 else _slice_along(src, axis, islice)
            if piece.shape != dst.shape:
                bound = self.data_shapes if what == "data" else self.label_shapes
                raise ShapeError("Module.forward", f"{what} '{names[j]}' has shape "
                                 f"{shape_str(src.shape)}, the module is bound with "
                                 f"{shape_str(bound[j][1])}")
            piece.copyto(dst)

    def forward(self, data_batch, is_train: bool | None = None) -> None:
        """Copy the batch's slices into the executors and run forward on each."""
        self._load(self._data_targets, data_batch.data, "data", self.data_names)
        if is_train is None:
            is_train = self.for_training
        label = data_batch.label
        if self.label_arrays and label:
            self._load(self._label_targets, label, "label", self.label_names)
        elif self.label_arrays and is_train:
            raise HybridNetError(f"Module.forward(is_train=True): the batch has no labels but "
                                 f"the network needs {', '.join(self.label_names)} for its "
                                 f"loss; give the iterator labels, or bind for inference "
                                 f"(for_training=False)")
        for exe in self.execs:
            exe.forward(is_train=is_train)

    def backward(self, out_grads=None) -> None:
        """Run backward on each device (``out_grads`` sliced along each output's batch axis)."""
        if not self.for_training:
            raise HybridNetError("backward: the module was bound with for_training=False; "
                                 "bind(..., for_training=True) to compute gradients")
        if out_grads is not None and not isinstance(out_grads, (list, tuple)):
            out_grads = [out_grads]
        for k, exe in enumerate(self.execs):
            grads = None
            if out_grads is not None:
                grads = [None if g is None else
                         (g if axis < 0 or len(self.execs) == 1 else
                          _slice_along(g, axis, self.slices[k]).as_in_context(exe._ctx))
                         for g, axis in zip(out_grads, self.output_layouts)]
            exe.backward(out_grads=grads)

    def get_outputs(self, merge_multi_context: bool = True, begin: int = 0, end=None) -> list:
        """Outputs ``[begin, end)``: merged arrays, or per output a list over devices."""
        n = len(self.execs[0].outputs)
        end = n if end is None else end
        outputs = [[exe.outputs[i] for exe in self.execs] for i in range(begin, end)]
        if merge_multi_context:
            return [_merge(o, axis) for o, axis in zip(outputs, self.output_layouts[begin:end])]
        return outputs

    def get_output_shapes(self) -> list:
        """``[(name, shape)]`` of the outputs with the whole batch along the batch axis."""
        shapes = []
        for name, out, axis in zip(self.symbol.list_outputs(), self.execs[0].outputs,
                                   self.output_layouts):
            shape = list(out.shape)
            if axis >= 0 and shape:
                shape[axis] = self.batch_size
            shapes.append((name, tuple(shape)))
        return shapes

    def get_input_grads(self, merge_multi_context: bool = True) -> list:
        """Gradients of the data inputs (bound with ``inputs_need_grad``)."""
        if not self.inputs_need_grad:
            raise HybridNetError("get_input_grads: bind the module with inputs_need_grad=True")
        if merge_multi_context:
            return [_merge(g, axis) for g, axis in zip(self.input_grad_arrays,
                                                       self.data_layouts)]
        return self.input_grad_arrays

    def get_states(self, merge_multi_context: bool = True) -> list:
        """The state inputs (``state_names``)."""
        if merge_multi_context:
            return [_merge(s, 0) for s in self.state_arrays]
        return self.state_arrays

    def set_states(self, states=None, value=None) -> None:
        """Set the state inputs from ``states`` (per state, a list over devices) or to the
        scalar ``value``."""
        if (states is None) == (value is None):
            raise ValueError("set_states: give exactly one of states and value")
        if states is not None:
            for src_list, dst_list in zip(states, self.state_arrays):
                for src, dst in zip(src_list, dst_list):
                    src.copyto(dst)
        else:
            for dst_list in self.state_arrays:
                for dst in dst_list:
                    dst[:] = value

    def update_metric(self, eval_metric, labels: list, pre_sliced: bool = False) -> None:
        """Update ``eval_metric`` with each device's outputs and its slice of ``labels``."""
        names = self.symbol.list_outputs()
        for k, exe in enumerate(self.execs):
            if pre_sliced:
                labels_slice = labels[k]
            elif len(self.execs) == 1:
                labels_slice = labels
            else:
                axes = self.label_layouts or [0] * len(labels)
                labels_slice = [_slice_along(lab, axis, self.slices[k]) if axis >= 0 else lab
                                for lab, axis in zip(labels, axes)]
            eval_metric.update_dict(dict(zip(self.label_names, labels_slice)),
                                    dict(zip(names, exe.outputs)))

    def install_monitor(self, mon) -> None:
        """Install ``mon`` (an ``mx.mon.Monitor``) on every executor."""
        for exe in self.execs:
            mon.install(exe)
