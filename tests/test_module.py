"""Module: traces against real MXNet 1.9.1 (tests/fixtures/gen_module.py), the state machine,
fit/score/predict, data parallelism, reshape, early stopping and bad input."""
from __future__ import annotations

import io
import json
import logging
import os
import sys

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.module import ModuleStateError
from hybridnet.test_utils import assert_almost_equal, environment

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "module")
REF = np.load(os.path.join(FIX, "module.npz"))
PARAMS = ("fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias", "fc3_weight", "fc3_bias")
TOL = {"rtol": 1e-4, "atol": 1e-5}
sys.path.insert(0, os.path.dirname(FIX))
from gen_module import BATCH, OPT  # noqa: E402  (the fixture's settings and network)
from gen_module import mlp as _mlp  # noqa: E402


def mlp():
    """The seeds' MLP, named as in the fixture."""
    return _mlp(mx)


def init_params():
    return {k: mx.nd.array(REF[f"in/{k}"]) for k in PARAMS}


def bound_module(context=None, **kw):
    mod = mx.mod.Module(mlp(), context=context or mx.cpu(), **kw)
    mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))],
             label_shapes=[("softmax_label", (BATCH,))])
    mod.init_params(arg_params=init_params())
    return mod


def batch_at(k):
    lo = (k * BATCH) % 60
    return mx.io.DataBatch([mx.nd.array(REF["in/x"][lo:lo + BATCH])],
                           [mx.nd.array(REF["in/y"][lo:lo + BATCH])])


# ---- against MXNet --------------------------------------------------------------------------
@pytest.mark.parametrize("case, context, kvstore, work_load, update_on_kv", [
    ("single", None, "local", None, None),
    ("two_dev", [mx.cpu(0), mx.cpu(1)], "local", [1, 3], True),
    ("two_dev_noupd", [mx.cpu(0), mx.cpu(1)], "device", None, False),
])
def test_steps_match_mxnet(case, context, kvstore, work_load, update_on_kv):
    with environment("MXNET_UPDATE_ON_KVSTORE", "0" if update_on_kv is False else None):
        mod = bound_module(context, work_load_list=work_load)
        mod.init_optimizer(kvstore=kvstore, optimizer="sgd", optimizer_params=OPT)
    if update_on_kv is not None:
        assert mod._update_on_kvstore is update_on_kv
        assert mod._kvstore.type == kvstore
    for k in range(4):
        mod.forward_backward(batch_at(k))
        assert_almost_equal(mod.get_outputs()[0], REF[f"{case}/step{k}/out"], **TOL)
        mod.update()
        arg, _ = mod.get_params()
        for name in PARAMS:
            assert_almost_equal(arg[name], REF[f"{case}/step{k}/{name}"], **TOL,
                                names=(f"{case} step {k} {name}", "mxnet"))


def test_fit_matches_mxnet(caplog):
    x, y = REF["in/x"], REF["in/y"]
    train = mx.io.NDArrayIter(x[:50], y[:50], batch_size=BATCH)
    val = mx.io.NDArrayIter(x[50:], y[50:], batch_size=BATCH)
    mod = mx.mod.Module(mlp())
    with caplog.at_level(logging.INFO):
        mod.fit(train, eval_data=val, eval_metric=["acc", "ce"], optimizer="sgd",
                optimizer_params=OPT, num_epoch=2, arg_params=init_params())
    arg, _ = mod.get_params()
    for name in PARAMS:
        assert_almost_equal(arg[name], REF[f"fit/{name}"], **TOL)
    assert_almost_equal(mod.predict(train), REF["fit/predict"], **TOL)
    ours = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch[")]
    assert sum("Time cost=" in line for line in ours) == 2
    expected = json.load(open(os.path.join(FIX, "module.json")))["fit_log"]
    ours = [line for line in ours if "Time cost" not in line]
    assert [line.split("=")[0] for line in ours] == [line.split("=")[0] for line in expected]
    for a, b in zip(ours, expected):
        assert float(a.split("=")[1]) == pytest.approx(float(b.split("=")[1]), abs=2e-6)


def test_resume_from_mxnet_checkpoint_with_optimizer_states():
    prefix = os.path.join(FIX, "mx_ckpt")
    mod = mx.mod.Module.load(prefix, 2, load_optimizer_states=True)
    mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))],
             label_shapes=[("softmax_label", (BATCH,))])
    mod.init_optimizer(optimizer="sgd", optimizer_params=OPT)
    mod.forward_backward(batch_at(0))
    mod.update()
    arg, _ = mod.get_params()
    for name in PARAMS:
        assert_almost_equal(arg[name], REF[f"resume/{name}"], **TOL)


def test_mxnet_checkpoint_predicts_the_same():
    mod = mx.mod.Module.load(os.path.join(FIX, "mx_ckpt"), 2)
    it = mx.io.NDArrayIter(REF["in/x"][:50], REF["in/y"][:50], batch_size=BATCH)
    mod.bind(data_shapes=it.provide_data, for_training=False)
    assert_almost_equal(mod.predict(it), REF["fit/predict"], **TOL)


def test_mxnet_predicts_the_same_with_our_checkpoint():
    # hn_ckpt was written by hybridnet (gen_module.py ours); MXNet's predictions with it are
    # ours/predict
    mod = mx.mod.Module.load(os.path.join(FIX, "hn_ckpt"), 1)
    it = mx.io.NDArrayIter(REF["in/x"][:50], REF["in/y"][:50], batch_size=BATCH)
    mod.bind(data_shapes=it.provide_data, for_training=False)
    assert_almost_equal(mod.predict(it), REF["ours/predict"], **TOL)
    assert sorted(mod.get_params()[0]) == list(REF["ours/arg_names"])


# ---- the state machine ----------------------------------------------------------------------
def test_methods_out_of_order_say_what_to_call_first():
    mod = mx.mod.Module(mlp())
    with pytest.raises(ModuleStateError, match=r"call bind\(\) before init_params\(\)"):
        mod.init_params()
    with pytest.raises(ModuleStateError, match=r"call bind\(\) before forward\(\)"):
        mod.forward(batch_at(0))
    with pytest.raises(ModuleStateError, match=r"call bind\(\) before data_shapes"):
        _ = mod.data_shapes
    mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))],
             label_shapes=[("softmax_label", (BATCH,))])
    with pytest.raises(ModuleStateError, match=r"call init_params\(\) before init_optimizer"):
        mod.init_optimizer()
    with pytest.raises(ModuleStateError, match=r"call init_params\(\) before predict"):
        mod.predict(mx.nd.zeros((BATCH, 1, 6, 6)))
    mod.init_params()
    with pytest.raises(ModuleStateError, match=r"call init_optimizer\(\) before update"):
        mod.update()
    with pytest.raises(ModuleStateError, match=r"init_optimizer\(\) before save_optimizer"):
        mod.save_optimizer_states("x.states")
    with pytest.warns(UserWarning, match="already initialized"):
        mod.init_params()


def test_inference_module_refuses_training_calls():
    mod = mx.mod.Module(mlp())
    mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))], for_training=False)
    mod.init_params(arg_params=init_params())
    with pytest.raises(ModuleStateError, match="for_training=False"):
        mod.init_optimizer()
    with pytest.raises(mx.MXNetError, match="for_training=False"):
        mod.backward()
    with pytest.raises(ValueError, match="inputs_need_grad"):
        mx.mod.Module(mlp()).bind([("data", (2, 36))], for_training=False,
                                  inputs_need_grad=True)


def test_properties():
    mod = bound_module()
    assert mod.data_names == ["data"] and mod.label_names == ["softmax_label"]
    assert mod.output_names == ["softmax_output"]
    assert mod.data_shapes[0].shape == (BATCH, 1, 6, 6)
    assert mod.label_shapes[0].shape == (BATCH,)
    assert mod.output_shapes == [("softmax_output", (BATCH, 10))]
    assert mod.symbol.list_arguments() == mlp().list_arguments()


# ---- fit, score, predict ----------------------------------------------------------------------
def digits_iters(batch=50):
    rng = np.random.RandomState(0)
    centers = rng.rand(4, 36).astype(np.float32) * 3
    y = rng.randint(0, 4, size=400)
    x = (centers[y] + rng.randn(400, 36).astype(np.float32) * 0.5).reshape(400, 1, 6, 6)
    y = y.astype(np.float32)
    return (mx.io.NDArrayIter(x[:300], y[:300], batch_size=batch, shuffle=True),
            mx.io.NDArrayIter(x[300:], y[300:], batch_size=batch))


def test_fit_learns_and_calls_callbacks():
    train, val = digits_iters()
    seen = {"batch": [], "epoch": [], "eval": [], "eval_batch": 0}
    mod = mx.mod.Module(mlp())
    mod.fit(train, eval_data=val, optimizer="sgd", num_epoch=3,
            optimizer_params={"learning_rate": 0.05, "momentum": 0.9},
            initializer=mx.init.Xavier(),
            batch_end_callback=lambda p: seen["batch"].append((p.epoch, p.nbatch)),
            epoch_end_callback=lambda e, s, a, x: seen["epoch"].append((e, sorted(a))),
            eval_end_callback=lambda p: seen["eval"].append(p.eval_metric.get()[1]),
            eval_batch_end_callback=lambda p: seen.__setitem__("eval_batch",
                                                                 seen["eval_batch"] + 1))
    assert seen["batch"] == [(e, b) for e in range(3) for b in range(6)]
    assert seen["epoch"] == [(e, sorted(PARAMS)) for e in range(3)]
    assert seen["eval_batch"] == 3 * 2
    assert seen["eval"][-1] > 0.9
    assert mod.score(val, "acc")[0][1] == seen["eval"][-1]
    preds = mod.predict(val)
    assert preds.shape == (100, 10)
    outs = [(o[0].copy(), nbatch) for o, nbatch, _ in mod.iter_predict(val)]
    assert [nbatch for _, nbatch in outs] == [0, 1]
    assert_almost_equal(mx.nd.concatenate([o for o, _ in outs]), preds)
    per_batch = mod.predict(val, merge_batches=False)
    assert len(per_batch) == 2 and per_batch[0][0].shape == (50, 10)
    assert len(mod.predict(val, num_batch=1, always_output_list=True)) == 1


def test_predict_strips_padding_and_takes_arrays():
    mod = bound_module()
    x = REF["in/x"][:45]
    it = mx.io.NDArrayIter(x, batch_size=BATCH)          # 3 batches, the last padded by 15
    out = mod.predict(it)
    assert out.shape == (45, 10)
    # a raw array of another batch size re-shapes the module and gives the same rows
    direct = mod.predict(x)
    assert direct.shape == (45, 10)
    assert_almost_equal(out, direct, **TOL)
    assert_almost_equal(mod.predict(mx.nd.array(x[:7])), direct.asnumpy()[:7], **TOL)


def test_fit_stops_early_after_the_epoch_end_checkpoint(tmp_path, caplog):
    train, val = digits_iters()
    prefix = str(tmp_path / "early")

    def stop_at_batch_2(param):
        if param.epoch == 1 and param.nbatch == 2:
            raise mx.callback.StopTraining("enough")
    batches = []
    mod = mx.mod.Module(mlp())
    with caplog.at_level(logging.INFO):
        mod.fit(train, eval_data=val, num_epoch=5, optimizer_params={"learning_rate": 0.05},
                batch_end_callback=[stop_at_batch_2, lambda p: batches.append(p.nbatch)],
                epoch_end_callback=mx.callback.do_checkpoint(prefix))
    assert batches == list(range(6)) + [0, 1, 2]      # the other callback still ran
    assert sorted(os.listdir(tmp_path)) == ["early-0001.params", "early-0002.params",
                                            "early-symbol.json"]
    text = caplog.text
    assert "Epoch[1] Validation-accuracy" in text and "Stopping training early: enough" in text
    assert "Epoch[2]" not in text
    _, arg, _ = mx.model.load_checkpoint(prefix, 2)
    for name, value in mod.get_params()[0].items():
        assert_almost_equal(arg[name], value)


def test_early_stopping_callback_ends_fit():
    train, val = digits_iters()
    stopper = mx.callback.EarlyStopping(patience=1, mode="min")   # accuracy never "decreases"
    epochs = []
    mx.mod.Module(mlp()).fit(train, eval_data=val, num_epoch=6, eval_end_callback=stopper,
                             epoch_end_callback=lambda e, *a: epochs.append(e),
                             optimizer_params={"learning_rate": 0.1})
    assert epochs == [0, 1]


def test_monitor_in_fit(caplog):
    train, _ = digits_iters()
    mon = mx.mon.Monitor(2, pattern="fc1.*")
    with caplog.at_level(logging.INFO):
        mx.mod.Module(mlp()).fit(train, num_epoch=1, monitor=mon)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Batch:")]
    assert any("fc1_weight" in line for line in lines)
    assert any("fc1_output" in line for line in lines)


def test_fit_with_unknown_names_lists_the_known_ones():
    train, _ = digits_iters()
    with pytest.raises(ValueError, match="registered optimizers: .*adam.*sgd"):
        mx.mod.Module(mlp()).fit(train, num_epoch=1, optimizer="sgdd")
    with pytest.raises(ValueError, match="registered metrics: .*acc"):
        mx.mod.Module(mlp()).fit(train, num_epoch=1, eval_metric="accuracyy")
    with pytest.raises(ValueError, match="registered initializers: .*xavier"):
        mx.mod.Module(mlp()).fit(train, num_epoch=1, initializer="xavierr")
    with pytest.raises(ValueError, match="num_epoch"):
        mx.mod.Module(mlp()).fit(train)


# ---- shapes -----------------------------------------------------------------------------------
def test_forward_reshapes_for_a_new_batch_size():
    mod = bound_module()
    mod.forward(batch_at(0), is_train=False)
    full = mod.get_outputs()[0].asnumpy()
    small = mx.io.DataBatch([mx.nd.array(REF["in/x"][:5])], [mx.nd.array(REF["in/y"][:5])])
    mod.forward(small, is_train=False)
    assert mod.get_outputs()[0].shape == (5, 10)
    assert mod.data_shapes[0].shape == (5, 1, 6, 6)
    assert mod.label_shapes[0].shape == (5,)
    assert_almost_equal(mod.get_outputs()[0], full[:5], **TOL)


def test_data_shape_that_does_not_fit_names_both_shapes():
    mod = bound_module()
    bad = mx.io.DataBatch([mx.nd.zeros((BATCH, 1, 6, 7))], [mx.nd.zeros((BATCH,))])
    with pytest.raises(mx.base.ShapeError, match=r"'data' \(20, 1, 6, 7\) \(bound "
                                                 r"\(20, 1, 6, 6\)\)"):
        mod.forward(bad)
    with pytest.raises(mx.MXNetError, match="2 data arrays, the module was bound with 1"):
        mod.forward(mx.io.DataBatch([mx.nd.zeros((BATCH, 36))] * 2, []))


def test_training_batch_without_labels_is_an_error():
    mod = bound_module()
    mod.init_optimizer()
    with pytest.raises(mx.MXNetError, match="no labels but the network needs "
                                            "softmax_label"):
        mod.forward(mx.io.DataBatch([mx.nd.array(REF["in/x"][:BATCH])]), is_train=True)


def test_bad_names_in_constructor_and_bind():
    with pytest.raises(ValueError, match=r"(?s)input with name .image. is not found.*data"):
        mx.mod.Module(mlp(), data_names=["image"])
    with pytest.raises(ValueError, match="don't match names"):
        mx.mod.Module(mlp()).bind(data_shapes=[("x", (2, 36))])
    with pytest.raises(ValueError, match="work_load_list has 1 entries for 2"):
        mx.mod.Module(mlp(), context=[mx.cpu(0), mx.cpu(1)], work_load_list=[1])


def test_batch_too_small_for_the_devices():
    mod = mx.mod.Module(mlp(), context=[mx.cpu(0), mx.cpu(1)], work_load_list=[1, 100])
    with pytest.raises(mx.MXNetError, match="some slices would be empty"):
        mod.bind(data_shapes=[("data", (4, 36))], label_shapes=[("softmax_label", (4,))])


# ---- parameters -----------------------------------------------------------------------------------
def test_init_params_missing_and_extra_are_listed():
    mod = mx.mod.Module(mlp())
    mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))])
    partial = {k: v for k, v in init_params().items() if k != "fc2_bias"}
    with pytest.raises(mx.MXNetError, match="arg_params lacks fc2_bias.*allow_missing=True"):
        mod.init_params(arg_params=partial)
    extra = dict(init_params(), fc9_weight=mx.nd.zeros((2, 2)))
    with pytest.raises(mx.MXNetError, match="has fc9_weight, which the network does not"):
        mod.init_params(arg_params=extra)
    mod.init_params(arg_params=partial, allow_missing=True)
    arg, _ = mod.get_params()
    assert_almost_equal(arg["fc2_bias"], np.zeros(32))          # initializer: bias -> 0
    assert_almost_equal(arg["fc1_weight"], REF["in/fc1_weight"])
    mod.init_params(arg_params=extra, allow_extra=True, force_init=True)
    with pytest.raises(mx.base.ShapeError, match="fc1_bias"):
        mod.set_params(dict(init_params(), fc1_bias=mx.nd.zeros((3,))), {})


def test_fixed_params_are_not_updated():
    mod = bound_module(fixed_param_names=["fc1_weight", "fc1_bias"])
    mod.init_optimizer(optimizer_params=OPT)
    mod.forward_backward(batch_at(0))
    mod.update()
    arg, _ = mod.get_params()
    assert_almost_equal(arg["fc1_weight"], REF["in/fc1_weight"], rtol=0, atol=0)
    assert not np.allclose(arg["fc2_weight"].asnumpy(), REF["in/fc2_weight"])


def test_rescale_grad_and_multipliers_from_the_symbol():
    net = mlp()
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))],
             label_shapes=[("softmax_label", (BATCH,))])
    mod.init_params()
    mod.init_optimizer(optimizer="sgd", optimizer_params={"momentum": 0.5})
    opt = mod._optimizer
    assert opt.rescale_grad == pytest.approx(1.0 / BATCH)
    assert opt.idx2name[0] == "fc1_weight" and opt.momentum == 0.5
    assert opt.wd_mult["fc1_bias"] == 0.0 and "fc1_weight" not in opt.wd_mult
    manual = mx.optimizer.SGD(learning_rate=0.1)
    with pytest.warns(UserWarning, match="rescale_grad"):
        mod.init_optimizer(optimizer=manual, force_init=True)
    assert manual.idx2name[5] == "fc3_bias" and manual.wd_mult["fc3_bias"] == 0.0


def test_inputs_need_grad_gives_input_gradients():
    mod = mx.mod.Module(mlp())
    mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))],
             label_shapes=[("softmax_label", (BATCH,))], inputs_need_grad=True)
    mod.init_params(arg_params=init_params())
    mod.forward_backward(batch_at(0))
    grad = mod.get_input_grads()[0]
    assert grad.shape == (BATCH, 1, 6, 6)
    # the same gradient from a plain executor
    exe = mlp().simple_bind(mx.cpu(), data=(BATCH, 1, 6, 6))
    exe.copy_params_from(init_params())
    exe.forward(is_train=True, data=batch_at(0).data[0], softmax_label=batch_at(0).label[0])
    exe.backward()
    assert_almost_equal(grad, exe.grad_dict["data"], **TOL)
    with pytest.raises(ModuleStateError, match="inputs_need_grad=True"):
        bound_module().get_input_grads()


def test_out_grads_for_a_network_without_loss_head():
    net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=3, name="fc")
    for ctx in (mx.cpu(), [mx.cpu(0), mx.cpu(1)]):
        mod = mx.mod.Module(net, label_names=None, context=ctx)
        mod.bind(data_shapes=[("data", (4, 5))])
        mod.init_params()
        x = np.random.RandomState(1).rand(4, 5).astype(np.float32)
        mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=True)
        head = np.arange(12, dtype=np.float32).reshape(4, 3)
        mod.backward([mx.nd.array(head)])
        grads = mod._exec_group.grad_arrays[0]
        total = sum(g.asnumpy() for g in grads)
        assert_almost_equal(total, head.T @ x, **TOL)


def test_bind_twice_warns_and_force_rebind_keeps_params(caplog):
    mod = bound_module()
    with caplog.at_level(logging.WARNING):
        mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))])
    assert "Already bound" in caplog.text
    mod.bind(data_shapes=[("data", (4, 1, 6, 6))], label_shapes=[("softmax_label", (4,))],
             force_rebind=True)
    assert_almost_equal(mod.get_params()[0]["fc3_weight"], REF["in/fc3_weight"])
    mod.forward(mx.io.DataBatch([mx.nd.array(REF["in/x"][:4])], None), is_train=False)
    assert mod.get_outputs()[0].shape == (4, 10)


def test_shared_module_shares_parameters():
    mod = bound_module()
    mod.init_optimizer(optimizer_params=OPT)
    other = mx.mod.Module(mlp())
    other.bind(data_shapes=[("data", (5, 1, 6, 6))], label_shapes=[("softmax_label", (5,))],
               shared_module=mod)
    assert other.params_initialized and other.optimizer_initialized
    mod.forward_backward(batch_at(0))
    mod.update()
    x = mx.nd.array(REF["in/x"][:5])
    other.forward(mx.io.DataBatch([x], None), is_train=False)
    mod.forward(mx.io.DataBatch([mx.nd.array(REF["in/x"][:BATCH])], None), is_train=False)
    assert_almost_equal(other.get_outputs()[0], mod.get_outputs()[0].asnumpy()[:5], **TOL)


def test_states_are_inputs_kept_between_batches():
    data, state = mx.sym.var("data"), mx.sym.var("state")
    net = mx.sym.FullyConnected(data + state, num_hidden=2, name="fc")
    mod = mx.mod.Module(net, label_names=None, state_names=["state"])
    mod.bind(data_shapes=[("data", (3, 4))], for_training=False)
    mod.init_params(initializer=mx.init.One())
    mod.set_states(value=1.0)
    mod.forward(mx.io.DataBatch([mx.nd.zeros((3, 4))]))
    assert_almost_equal(mod.get_outputs()[0], np.full((3, 2), 4.0))
    mod.set_states(states=[[mx.nd.full((3, 4), 2.0)]])
    assert_almost_equal(mod.get_states()[0], np.full((3, 4), 2.0))


def test_prepare_with_sparse_row_id_fn_warns_for_dense_weights():
    mod = bound_module()
    mod.init_optimizer()
    with pytest.warns(UserWarning, match="not updated in the KVStore"):
        mod.prepare(batch_at(0), sparse_row_id_fn=lambda b: {"fc1_weight": None})


def test_dist_sync_workers_train_like_one_process(tmp_path):
    # 2 workers x 10 rows == one process with batches of 20: the servers run the optimizer
    # with rescale_grad 1 / (10 x 2)
    from dist_helpers import Cluster
    with Cluster(tmp_path, 2, 1, "module", {"steps": 4}) as job:
        job.wait(120)
        job.assert_ok()
        results = [job[f"worker{r}"].result() for r in range(2)]
    for result in results:
        assert result["update_on_kvstore"] is True
        assert result["rescale_grad"] == pytest.approx(1 / 20)
        for name in PARAMS:
            assert_almost_equal(np.array(result["params"][name], np.float32),
                                REF[f"single/step3/{name}"], **TOL)


def test_train_mnist_example_learns_the_digits():
    from test_examples import run_example
    out = run_example("train_mnist.py", ["--quick"])
    assert out.strip().splitlines()[-1].startswith("test accuracy: "), out[-2000:]
    accuracy = float(out.strip().splitlines()[-1].split()[2])
    assert accuracy >= 0.95, out[-2000:]


def test_grad_req_forms():
    mod = mx.mod.Module(mlp())
    mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))],
             label_shapes=[("softmax_label", (BATCH,))], grad_req={"fc3_weight": "add"})
    reqs = mod._exec_group.grad_req
    assert reqs["fc3_weight"] == "add" and reqs["fc1_weight"] == "null"
    mod.init_params(arg_params=init_params())
    for _ in range(2):               # 'add' accumulates over two backward passes
        mod.forward_backward(batch_at(0))
    once = bound_module()
    once.forward_backward(batch_at(0))
    assert_almost_equal(mod._exec_group.grad_arrays[4][0],
                        2 * once._exec_group.grad_arrays[4][0].asnumpy(), **TOL)
    assert mod._exec_group.grad_arrays[0][0] is None


def test_group2ctxs_across_devices_is_refused_clearly():
    with mx.AttrScope(ctx_group="dev1"):
        net = mlp()
    mod = mx.mod.Module(net, group2ctxs={"dev1": mx.cpu(1)})
    with pytest.raises(mx.MXNetError, match="model parallelism across devices is not "
                                            "supported"):
        mod.bind(data_shapes=[("data", (BATCH, 1, 6, 6))])
    same = mx.mod.Module(net, group2ctxs=[{"dev1": mx.cpu(0)}])
    same.bind(data_shapes=[("data", (BATCH, 1, 6, 6))])


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_fit_draws_a_progress_bar_on_a_terminal_at_info(monkeypatch, caplog):
    pytest.importorskip("tqdm")
    train, _ = digits_iters()
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    caplog.set_level(logging.INFO)
    mx.mod.Module(mlp()).fit(train, num_epoch=2, optimizer_params={"learning_rate": 0.05})
    bars = screen.getvalue()
    assert "Epoch[0]" in bars and "Epoch[1]" in bars and "6batch" in bars.replace(" ", "")
    caplog.set_level(logging.WARNING)        # below INFO (as in CI logs): no bar at all
    screen.truncate(0)
    mx.mod.Module(mlp()).fit(train, num_epoch=1, optimizer_params={"learning_rate": 0.05})
    assert screen.getvalue() == ""
