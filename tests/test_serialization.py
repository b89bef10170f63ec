"""nd.save / nd.load / pickling in MXNet's binary format, checked against files MXNet 1.9.1 wrote.

The fixtures come from tests/fixtures/gen_ndarray_files.py (run with the MXNet oracle).
"""
import json
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.test_utils import environment
from hybridnet.ndarray import serialization as ser
from hybridnet.ndarray.serialization import MXNetUnpickler, NDArrayFormatError

FIXTURES = Path(__file__).parent / "fixtures" / "ndarray_files"
INDEX = json.loads((FIXTURES / "index.json").read_text())["files"]
VALUES = dict(np.load(FIXTURES / "arrays.npz"))
# files hybridnet must reproduce byte for byte (not hand-made, not sparse, not V3/np_shape)
MXNET_WRITTEN = sorted(f for f, spec in INDEX.items()
                       if not spec.get("handmade") and "stype" not in spec
                       and not spec.get("np_shape"))


def _expected(fname):
    spec = INDEX[fname]
    keys = [n if n is not None else i for i, n in enumerate(spec["names"])]
    return spec, [VALUES[f"{fname}/{k}"] for k in keys]


def _rebuild(fname):
    """The arrays MXNet saved into ``fname``, rebuilt as hybridnet NDArrays, saved the same way."""
    spec, values = _expected(fname)
    arrays = [mx.nd.array(v, ctx=mx.Context(c[0], c[1]), dtype=v.dtype)
              for v, c in zip(values, spec["ctx"])]
    if spec["kind"] == "single":
        return arrays[0]
    if spec["kind"] == "dict":
        return dict(zip(spec["names"], arrays))
    return arrays


# ---- MXNet compatibility ------------------------------------------------------------------------
@pytest.mark.parametrize("fname", MXNET_WRITTEN)
def test_saved_bytes_identical_to_mxnet(tmp_path, fname):
    out = tmp_path / fname
    mx.nd.save(str(out), _rebuild(fname))
    assert out.read_bytes() == (FIXTURES / fname).read_bytes()


@pytest.mark.parametrize("fname", sorted(f for f in INDEX))
def test_load_files_mxnet_wrote_or_reads(fname):
    spec, values = _expected(fname)
    got = mx.nd.load(str(FIXTURES / fname))
    if spec["kind"] == "dict":
        assert isinstance(got, dict)
        assert list(got) == spec["names"]          # insertion order kept
        got = list(got.values())
    else:
        assert isinstance(got, list)
    assert len(got) == len(values)
    for g, v in zip(got, values):
        assert g.context == mx.cpu(0)              # loaded to CPU whatever the saved device
        assert g.shape == v.shape
        want_dtype = np.float32 if spec["dtype"][0] == "bfloat16" else v.dtype
        assert g.dtype == want_dtype
        np.testing.assert_array_equal(g.asnumpy(), v)


def test_mxnet_file_with_zero_dim_array_loads_as_scalar():
    # MXNet 1.9 writes a 0-d array's data after ndim 0 and cannot read the file back; we can
    got = mx.nd.load(str(FIXTURES / "scalar.nd"))
    assert got[0].shape == () and got[0].asscalar() == np.float32(3.5)


def test_sparse_files_load_dense():
    got = mx.nd.load(str(FIXTURES / "sparse.nd"))
    np.testing.assert_array_equal(got["rs"].asnumpy(), VALUES["sparse.nd/rs"])
    np.testing.assert_array_equal(got["csr"].asnumpy(), VALUES["sparse.nd/csr"])
    assert got["rs"].stype == "default"


def test_single_array_bytes_identical_to_mxnet():
    raw = (FIXTURES / "raw_single.bin").read_bytes()
    x = mx.nd.array(VALUES["pickle_mxnet.pkl/0"])
    assert ser.array_to_bytes(x) == raw
    np.testing.assert_array_equal(ser.array_from_bytes(raw).asnumpy(), x.asnumpy())


def test_unpickle_what_mxnet_pickled():
    with open(FIXTURES / "pickle_mxnet.pkl", "rb") as f:
        x = MXNetUnpickler(f).load()
    assert isinstance(x, mx.nd.NDArray)
    np.testing.assert_array_equal(x.asnumpy(), VALUES["pickle_mxnet.pkl/0"])


def test_pickle_state_is_mxnets():
    x = mx.nd.array([[1, 2, 3]], dtype="int32")
    state = x.__getstate__()
    assert list(state) == ["handle"] and state["handle"] == ser.array_to_bytes(x)
    fn, args, st = x.__reduce__()
    assert fn is mx.nd.NDArray and args == (None,) and st == state


# ---- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "uint8", "int8", "int32",
                                   "int64", "bool"])
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (2, 3, 4)])
def test_round_trip_every_dtype_and_shape(tmp_path, dtype, shape):
    rng = np.random.RandomState(0)
    v = (rng.standard_normal(shape) * 50).astype(dtype)
    x = mx.nd.array(v, dtype=dtype)
    mx.nd.save(tmp_path / "a.nd", {"x": x, "y": x})
    got = mx.nd.load(tmp_path / "a.nd")
    for k in ("x", "y"):
        assert got[k].dtype == np.dtype(dtype) and got[k].shape == shape
        np.testing.assert_array_equal(got[k].asnumpy(), v)
    back = pickle.loads(pickle.dumps(x))
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back.asnumpy(), v)


def test_round_trip_list_single_and_empty(tmp_path):
    a, b = mx.nd.arange(6).reshape((2, 3)), mx.nd.ones((4,), dtype="int64")
    mx.nd.save(tmp_path / "l.nd", [a, b])
    got = mx.nd.load(tmp_path / "l.nd")
    assert isinstance(got, list) and len(got) == 2
    np.testing.assert_array_equal(got[0].asnumpy(), a.asnumpy())
    mx.nd.save(tmp_path / "s.nd", a)
    assert len(mx.nd.load(tmp_path / "s.nd")) == 1
    mx.nd.save(tmp_path / "e.nd", {})
    assert mx.nd.load(tmp_path / "e.nd") == []          # MXNet: an empty dict loads as a list
    mx.nd.save(tmp_path / "t.nd", (a, b))               # tuples work like lists
    assert len(mx.nd.load(tmp_path / "t.nd")) == 2


def test_round_trip_keeps_many_names_in_order(tmp_path):
    names = [f"arg:layer{i}_weight" for i in range(30)][::-1] + ["\u00fcnicode \u2603"]
    data = {n: mx.nd.full((2,), i) for i, n in enumerate(names)}
    mx.nd.save(tmp_path / "m.params", data)
    got = mx.nd.load(tmp_path / "m.params")
    assert list(got) == names
    assert [float(v.asnumpy()[0]) for v in got.values()] == list(range(len(names)))


def test_load_frombuffer_matches_load(tmp_path):
    mx.nd.save(tmp_path / "a.nd", {"w": mx.nd.ones((2, 2))})
    raw = (tmp_path / "a.nd").read_bytes()
    for buf in (raw, bytearray(raw), memoryview(raw)):
        got = mx.nd.load_frombuffer(buf)
        np.testing.assert_array_equal(got["w"].asnumpy(), np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match="expects bytes"):
        mx.nd.load_frombuffer("not bytes")


def test_save_records_source_device_and_loads_to_cpu0(tmp_path):
    x = mx.nd.array([1.0, 2.0], ctx=mx.cpu(3))
    mx.nd.save(tmp_path / "d.nd", [x])
    raw = (tmp_path / "d.nd").read_bytes()
    # header 24 bytes, magic 4, stype 4, ndim 4, one dim 8 -> context at byte 44
    assert struct.unpack_from("<ii", raw, 44) == (1, 3)
    assert mx.nd.load(tmp_path / "d.nd")[0].context == mx.cpu(0)


def test_save_waits_for_pending_writes(tmp_path):
    x = mx.nd.zeros((1000,))

    def slow_fill():
        time.sleep(0.05)
        x._data[:] = 7
    mx.engine.push(slow_fill, write=[x])
    mx.nd.save(tmp_path / "w.nd", [x])
    assert (mx.nd.load(tmp_path / "w.nd")[0].asnumpy() == 7).all()


def test_saved_file_permissions_follow_umask(tmp_path):
    mx.nd.save(tmp_path / "p.nd", [mx.nd.ones((1,))])
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert (tmp_path / "p.nd").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_none_placeholder_record_loads_as_none():
    # MXNet's never-allocated array: a V2 record that ends right after ndim 0
    rec = struct.pack("<Iii", ser.V2_MAGIC, 0, 0)
    good = ser.array_to_bytes(mx.nd.array([5.0]))
    buf = struct.pack("<QQQ", 0x112, 0, 2) + rec + good + struct.pack("<Q", 0)
    got = mx.nd.load_frombuffer(buf)
    assert got[0] is None and got[1].asnumpy().tolist() == [5.0]
    buf = struct.pack("<QQQ", 0x112, 0, 1) + rec + struct.pack("<Q", 1) + struct.pack("<Q", 1) + b"a"
    assert mx.nd.load_frombuffer(buf) == {"a": None}


@pytest.mark.parametrize("fname", sorted(INDEX))
def test_fast_record_path_agrees_with_general_reader(fname, monkeypatch):
    fast = mx.nd.load(str(FIXTURES / fname))
    monkeypatch.setattr(ser, "_read_dense_v2", lambda r: None)
    general = mx.nd.load(str(FIXTURES / fname))
    items = (lambda d: list(d.items()) if isinstance(d, dict) else list(enumerate(d)))
    for (k1, a), (k2, b) in zip(items(fast), items(general)):
        assert k1 == k2 and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


def test_loaded_arrays_are_independent_aligned_and_writable(tmp_path):
    # a float16 array of odd length leaves the next record's data unaligned for float64
    data = [mx.nd.array([1, 2, 3], dtype="float16"), mx.nd.array([4.0, 5.0], dtype="float64"),
            mx.nd.array([6.0, 7.0])]
    mx.nd.save(tmp_path / "a.nd", data)
    got = mx.nd.load(tmp_path / "a.nd")
    assert all(x._data.flags.aligned and x._data.flags.writeable for x in got)
    got[1][:] = 0
    got[0] += 1
    assert got[2].asnumpy().tolist() == [6, 7] and got[0].asnumpy().tolist() == [2, 3, 4]
    assert got[1].asnumpy().tolist() == [0, 0]


def test_save_without_fsync(tmp_path):
    with environment("HYBRIDNET_SAVE_FSYNC", "0"):
        mx.nd.save(tmp_path / "n.nd", [mx.nd.ones((2,))])
    assert mx.nd.load(tmp_path / "n.nd")[0].asnumpy().tolist() == [1, 1]


# ---- atomic save ------------------------------------------------------------------------------
def _listing(path):
    return sorted(p.name for p in path.iterdir())


def test_failed_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "model.params"
    mx.nd.save(target, {"w": mx.nd.ones((3,))})
    before = target.read_bytes()
    calls = []
    real = ser._record_parts

    def interrupted(arr):
        calls.append(arr)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated Ctrl-C in the middle of a save")
        return real(arr)
    monkeypatch.setattr(ser, "_record_parts", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mx.nd.save(target, {"w": mx.nd.zeros((3,)), "b": mx.nd.zeros((2,))})
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["model.params"]


def test_save_of_failed_array_raises_its_error_and_writes_nothing(tmp_path):
    x = mx.nd.zeros((2,))

    def boom():
        raise RuntimeError("kernel exploded")
    mx.engine.push(boom, write=[x])
    with pytest.raises(RuntimeError, match="kernel exploded"):
        mx.nd.save(tmp_path / "f.nd", [mx.nd.ones((1,)), x])
    assert _listing(tmp_path) == []


# ---- bad input ----------------------------------------------------------------------------------
def _file(*records, names=()):
    out = struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records)
    out += struct.pack("<Q", len(names))
    for n in names:
        out += struct.pack("<Q", len(n)) + n
    return out


def _record(shape=(2,), flag=0, data=None, dev=(1, 0), magic=ser.V2_MAGIC):
    data = data if data is not None else b"\0" * 4 * int(np.prod(shape))
    return (struct.pack("<Iii", magic, 0, len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
            + struct.pack("<iii", dev[0], dev[1], flag) + data)


def _load_error(buf, match):
    with pytest.raises(NDArrayFormatError, match=match):
        mx.nd.load_frombuffer(buf)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file.*nope.params"):
        mx.nd.load(tmp_path / "nope.params")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        mx.nd.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mx.nd.save(tmp_path / "no" / "dir.nd", [mx.nd.ones((1,))])


def test_empty_file_names_the_file(tmp_path):
    (tmp_path / "empty.nd").write_bytes(b"")
    with pytest.raises(NDArrayFormatError, match=r"empty\.nd: empty file"):
        mx.nd.load(tmp_path / "empty.nd")


def test_every_truncation_is_an_error_naming_file_and_offset(tmp_path):
    raw = (FIXTURES / "model-0001.params").read_bytes()
    path = tmp_path / "cut.params"
    for n in range(1, len(raw)):
        path.write_bytes(raw[:n])
        with pytest.raises(NDArrayFormatError, match=r"cut\.params: .* at byte \d+"):
            mx.nd.load(path)


def test_bad_file_magic():
    buf = struct.pack("<QQQ", 0x113, 0, 0) + struct.pack("<Q", 0)
    _load_error(buf, r"buffer: not an NDArray file: bad magic 0x113, expected 0x112 at byte 0")


def test_bad_array_magic_names_offset():
    buf = _file(struct.pack("<I", 0x12345678) + b"\0" * 40)
    _load_error(buf, r"bad array magic 0x12345678, expected 0xF993FAC9 .* at byte 24")


def test_unknown_and_unsupported_type_flags():
    _load_error(_file(_record(flag=99)), r"unknown type flag 99.* at byte 52")
    _load_error(_file(_record(flag=8)), r"type flag 8 \(int16\) is not supported")


def test_bad_context_and_storage_type():
    _load_error(_file(_record(dev=(9, 0))), r"bad context \(device type 9, id 0\)")
    rec = struct.pack("<Iii", ser.V2_MAGIC, 7, 1)
    _load_error(_file(rec + b"\0" * 30), r"unknown storage type 7.* at byte 28")


def test_trailing_garbage():
    _load_error(_file(_record()) + b"xyz", r"trailing garbage: 3 bytes after the last name")
    with pytest.raises(NDArrayFormatError, match="trailing garbage"):
        ser.array_from_bytes(ser.array_to_bytes(mx.nd.ones((2,))) + b"\0")


def test_absurd_sizes_fail_fast_without_allocating():
    _load_error(struct.pack("<QQQ", 0x112, 0, 1 << 60), r"bad array count \d+")
    huge_ndim = struct.pack("<Iii", ser.V2_MAGIC, 0, 1 << 30)
    _load_error(_file(huge_ndim), r"bad shape: ndim 1073741824 is impossible")
    huge_dims = _record(shape=(1 << 40, 1 << 20), data=b"")
    _load_error(_file(huge_dims), r"truncated: data of shape \(1099511627776, 1048576\)")
    neg = _record(shape=(2, -3), data=b"")
    _load_error(_file(neg), r"dimension -3 .* is negative")
    long_name = _file(_record(), names=[b"w"])[:-9] + struct.pack("<Q", 1 << 50) + b"w"
    _load_error(long_name, r"name 0 has length 1125899906842624")


def test_bad_names():
    _load_error(_file(_record(), _record(), names=[b"a"]), r"bad name count 1: expected 0")
    _load_error(_file(_record(), names=[b"\xff\xfe"]), "name 0 is not valid UTF-8")
    _load_error(_file(_record(), _record(), names=[b"a", b"a"]), "name 'a' appears more than once")


def test_corrupt_sparse_record():
    raw = bytearray((FIXTURES / "sparse.nd").read_bytes())
    # the row_sparse record's row indices are its last 16 bytes before the csr record; point
    # one of them far outside the 5 rows
    good = mx.nd.load_frombuffer(bytes(raw))
    assert good["rs"].shape == (5, 2)
    pos = raw.find(struct.pack("<qq", 1, 3))
    raw[pos:pos + 8] = struct.pack("<q", 99)
    _load_error(bytes(raw), "row_sparse row index out of range")


def test_save_rejects_bad_data(tmp_path):
    with pytest.raises(TypeError, match="dict keys must be str"):
        mx.nd.save(tmp_path / "x", {1: mx.nd.ones((1,))})
    with pytest.raises(TypeError, match="value of key 'a' is a ndarray"):
        mx.nd.save(tmp_path / "x", {"a": np.ones(1)})
    with pytest.raises(TypeError, match="item 1 is a int"):
        mx.nd.save(tmp_path / "x", [mx.nd.ones((1,)), 3])
    with pytest.raises(TypeError, match="data must be an NDArray"):
        mx.nd.save(tmp_path / "x", "hello")
    assert _listing(tmp_path) == []


def test_unpickle_without_data_is_an_error():
    x = mx.nd.NDArray.__new__(mx.nd.NDArray)
    with pytest.raises(mx.MXNetError, match="without data"):
        x.__setstate__({"handle": None})


@pytest.mark.gpu
def test_gpu_array_saves_with_gpu_device_and_loads_to_cpu(tmp_path):
    x = mx.nd.array([1.0, 2.0], ctx=mx.gpu(0))
    mx.nd.save(tmp_path / "g.nd", [x])
    raw = (tmp_path / "g.nd").read_bytes()
    assert struct.unpack_from("<ii", raw, 44) == (2, 0)
    got = mx.nd.load(tmp_path / "g.nd")[0]
    assert got.context == mx.cpu(0) and got.asnumpy().tolist() == [1.0, 2.0]
    assert pickle.loads(pickle.dumps(x)).asnumpy().tolist() == [1.0, 2.0]
