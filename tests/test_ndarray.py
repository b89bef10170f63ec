"""The NDArray API: creation, properties, repr, conversion, copies, arithmetic, indexing, pickling.

Indexing semantics (shapes, values, view-or-copy, errors) are checked against
tests/fixtures/ndarray_indexing.json, written by MXNet 1.9.1 (gen_ndarray_indexing.py).
"""
import importlib.util
import json
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError, ShapeError

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "ndarray_indexing.json").read_text())
SOURCES = {"1d": np.arange(5, dtype=np.float32),
           "3d": np.arange(24, dtype=np.float32).reshape(2, 3, 4)}


def _decode(k):
    """The fixture's JSON key encoding (see gen_ndarray_indexing.py) -> an index."""
    if isinstance(k, int):
        return k
    if k == "...":
        return Ellipsis
    if "newaxis" in k:
        return None
    if "slice" in k:
        return slice(*k["slice"])
    if "list" in k:
        return k["list"]
    if "nd" in k:
        return mx.nd.array(k["nd"])
    return tuple(_decode(i) for i in k["tuple"])


# ---- creation and dtypes ---------------------------------------------------------------------
@pytest.mark.parametrize("source,dtype,want", [
    (np.arange(3), None, np.float32),               # MXNet: numpy int64 input becomes float32
    (np.arange(3, dtype=np.float64), None, np.float32),
    ([1, 2, 3], None, np.float32),
    ([True, False], None, np.float32),
    ([1, 2], "int32", np.int32), ([1, 0], "bool", np.bool_), ([1, 2], np.float16, np.float16),
    ([1, 2], "uint8", np.uint8), ([1, 2], "int8", np.int8), ([1, 2], "int64", np.int64),
    ([1, 2], "float64", np.float64)])
def test_array_dtype_rules(source, dtype, want):
    x = mx.nd.array(source, dtype=dtype)
    assert x.dtype is want
    np.testing.assert_array_equal(x.asnumpy(), np.asarray(source).astype(want))


def test_array_from_ndarray_keeps_dtype_and_copies():
    a = mx.nd.array([1, 2], dtype="int32")
    b = mx.nd.array(a)
    assert b.dtype is np.int32
    b[:] = 7
    assert a.asnumpy().tolist() == [1, 2]
    c = mx.nd.array(a, ctx=mx.cpu(1), dtype="float64")
    assert c.context == mx.cpu(1) and c.dtype is np.float64


def test_zero_dim_and_empty_arrays():
    s = mx.nd.array(3.0)
    assert s.shape == () and s.size == 1 and s.ndim == 0 and s.asscalar() == 3.0
    e = mx.nd.array([])
    assert e.shape == (0,) and e.size == 0
    assert mx.nd.array(np.ones((2, 0))).shape == (2, 0)
    assert mx.nd.empty((0,)).shape == (0,)


def test_creation_functions():
    assert mx.nd.zeros((2, 3)).asnumpy().tolist() == [[0] * 3] * 2
    assert mx.nd.zeros(3, dtype="float16").dtype is np.float16
    assert mx.nd.ones((2,), dtype=np.int64).dtype is np.int64
    assert mx.nd.empty((2,)).dtype is np.float32
    assert mx.nd.full((2,), 3, dtype="int32").asnumpy().tolist() == [3, 3]
    out = mx.nd.zeros((2,))
    assert mx.nd.full((2,), 5, out=out) is out and out.asnumpy().tolist() == [5, 5]
    np.testing.assert_array_equal(mx.nd.arange(0, 1, 0.25).asnumpy(), [0, 0.25, 0.5, 0.75])
    assert mx.nd.arange(5, dtype="int32").asnumpy().tolist() == [0, 1, 2, 3, 4]
    assert mx.nd.arange(2, 6, 2, repeat=2).asnumpy().tolist() == [2, 2, 4, 4]
    assert mx.nd.arange(0, -3, -1).asnumpy().tolist() == [0, -1, -2]
    assert mx.nd.arange(3, infer_range=True).asnumpy().tolist() == [0, 1, 2]
    np.testing.assert_array_equal(mx.nd.eye(2, 3, 1).asnumpy(), np.eye(2, 3, 1))
    np.testing.assert_allclose(mx.nd.linspace(0, 1, 5, endpoint=False).asnumpy(),
                               [0, 0.2, 0.4, 0.6, 0.8], rtol=1e-6)
    z = mx.nd.zeros_like(mx.nd.ones((2,), dtype="int32"))
    assert z.dtype is np.int32 and z.asnumpy().tolist() == [0, 0]
    assert mx.nd.zeros((2,), ctx=mx.cpu(2)).context == mx.cpu(2)
    with mx.cpu(1):
        assert mx.nd.ones((1,)).context == mx.cpu(1)
        assert mx.nd.array([1]).context == mx.cpu(1)
    with pytest.raises(HybridNetError, match="storage type 'csr' is not supported"):
        mx.nd.zeros((2, 2), stype="csr")
    with pytest.raises(ValueError, match="step must not be 0"):
        mx.nd.arange(0, 3, 0)


def test_integer_fill_values_and_ranges_cast_like_mxnet():
    # MXNet 1.9.1 (values checked on it): C casts of the double value, start and step
    assert mx.nd.full((2,), 2.7, dtype="int32").asnumpy().tolist() == [2, 2]
    assert mx.nd.full((2,), -2.7, dtype="int32").asnumpy().tolist() == [-2, -2]
    assert mx.nd.full((2,), 300, dtype="uint8").asnumpy().tolist() == [44, 44]
    assert mx.nd.full((1,), -1, dtype="uint8").asnumpy().tolist() == [255]
    assert mx.sym.full((2,), 300, dtype="uint8").eval()[0].asnumpy().tolist() == [44, 44]
    assert mx.nd.arange(0, 5, 1.5, dtype="int32").asnumpy().tolist() == [0, 1, 2, 3]
    assert mx.nd.arange(0.5, 5, 1.5, dtype="int32", repeat=2).asnumpy().tolist() == \
        [0, 0, 1, 1, 2, 2]
    assert mx.nd.arange(-3.5, 2, 1.2, dtype="int64").asnumpy().tolist() == [-3, -2, -1, 0, 1]
    assert mx.sym.arange(0.5, 5, 1.5, dtype="int32").eval()[0].asnumpy().tolist() == [0, 1, 2]
    # float32 ranges are start + i * step in float32, bit for bit
    got = mx.nd.arange(0, 3, 0.1).asnumpy()
    want = np.float32(0) + np.arange(30).astype(np.float32) * np.float32(0.1)
    assert got.dtype == np.float32 and got.tobytes() == want.tobytes()


def test_moveaxis():
    x = mx.nd.array(np.arange(24).reshape(2, 3, 4))
    np.testing.assert_array_equal(mx.nd.moveaxis(x, 0, -1).asnumpy(),
                                  np.moveaxis(np.arange(24).reshape(2, 3, 4), 0, -1))
    assert mx.nd.moveaxis(x, [0, 1], [2, 0]).shape == (3, 4, 2)
    with pytest.raises(ValueError, match="destination axis 5 is out of range for an array of "
                                         "3 dims"):
        mx.nd.moveaxis(x, 0, 5)
    with pytest.raises(ValueError, match="source axis -4 is out of range"):
        mx.nd.moveaxis(x, -4, 0)
    with pytest.raises(ValueError, match="repeated axes"):
        mx.nd.moveaxis(x, [0, 0], [1, 2])


def test_from_numpy_zero_copy_and_copy():
    a = np.arange(4, dtype=np.int64)
    x = mx.nd.from_numpy(a)
    assert x.dtype is np.int64 and not a.flags.writeable
    x[1] = 10
    assert a[1] == 10                                 # same memory
    b = np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::2]   # not contiguous: copied
    y = mx.nd.from_numpy(b)
    assert y.shape == (2, 2) and b.flags.writeable
    c = np.ones(3)
    mx.nd.from_numpy(c, zero_copy=False)
    assert c.flags.writeable
    with pytest.raises(TypeError, match="expects a numpy.ndarray"):
        mx.nd.from_numpy([1, 2])


# ---- properties, repr, conversion ------------------------------------------------------------
def test_properties():
    x = mx.nd.array([[1, 2, 3], [4, 5, 6]], ctx=mx.cpu(1))
    assert x.shape == (2, 3) and x.size == 6 and x.ndim == 2 and len(x) == 2
    assert x.dtype is np.float32 and x.context is mx.cpu(1) and x.ctx is mx.cpu(1)
    assert x.stype == "default" and x.writable and x.grad is None and x.handle is not None
    np.testing.assert_array_equal(x.T.asnumpy(), [[1, 4], [2, 5], [3, 6]])
    assert mx.nd.zeros((2, 3, 4)).T.shape == (4, 3, 2)     # MXNet reverses every axis
    assert mx.nd.array([1, 2]).T.shape == (2,)
    with pytest.raises(TypeError, match="len"):
        len(mx.nd.array(1.0))


@pytest.mark.parametrize("make,text", [
    (lambda: mx.nd.array([[1, 2, 3], [4, 5, 6]]),
     "\n[[1. 2. 3.]\n [4. 5. 6.]]\n<NDArray 2x3 @cpu(0)>"),
    (lambda: mx.nd.array(3.0), "\n3.0\n<NDArray  @cpu(0)>"),
    (lambda: mx.nd.array([1, 0], dtype="bool"), "\n[ True False]\n<NDArray 2 @cpu(0)>"),
    (lambda: mx.nd.array([1, 2], dtype="int32"), "\n[1 2]\n<NDArray 2 @cpu(0)>"),
    (lambda: mx.nd.zeros((2, 2), ctx=mx.cpu(1)), "\n[[0. 0.]\n [0. 0.]]\n<NDArray 2x2 @cpu(1)>"),
    (lambda: mx.nd.array(np.arange(2000).reshape(2, 1000)),
     "\n[[0.000e+00 1.000e+00 2.000e+00 ... 9.970e+02 9.980e+02 9.990e+02]\n [1.000e+03 "
     "1.001e+03 1.002e+03 ... 1.997e+03 1.998e+03 1.999e+03]]\n<NDArray 2x1000 @cpu(0)>"),
    (lambda: mx.nd.array([]), "\n[]\n<NDArray 0 @cpu(0)>"),
    (lambda: mx.nd.array([1.5, 2.25], dtype="float16"), "\n[1.5  2.25]\n<NDArray 2 @cpu(0)>"),
    (lambda: mx.nd.array([1e-8, 1]), "\n[1.e-08 1.e+00]\n<NDArray 2 @cpu(0)>"),
    (lambda: mx.nd.array(np.zeros((2, 0))), "\n[]\n<NDArray 2x0 @cpu(0)>")])
def test_repr_is_mxnets(make, text):
    x = make()
    assert repr(x) == text and str(x) == text


def test_asnumpy_asscalar_and_array_protocol():
    x = mx.nd.array([[1, 2], [3, 4]])
    a = x.asnumpy()
    a[0, 0] = 100
    assert x.asnumpy()[0, 0] == 1                       # asnumpy is a copy
    one = mx.nd.array([7])
    assert one.asscalar() == 7 and type(one.asscalar()) is np.float32
    with pytest.raises(ValueError, match=r"size 1.*shape \(2, 2\)"):
        x.asscalar()
    np.testing.assert_array_equal(np.asarray(x), [[1, 2], [3, 4]])
    assert np.asarray(x, dtype=np.int64).dtype == np.int64
    assert float(one) == 7.0 and int(mx.nd.array([2.5])) == 2


def test_bool_len_iter():
    assert bool(mx.nd.array([1])) and not bool(mx.nd.array([0]))
    assert not bool(mx.nd.array([]))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(mx.nd.array([1, 2]))
    rows = list(mx.nd.array([[1, 2], [3, 4]]))
    assert [r.shape for r in rows] == [(2,), (2,)] and rows[1].asnumpy().tolist() == [3, 4]
    items = list(mx.nd.array([5, 6]))
    assert [i.shape for i in items] == [(1,), (1,)]     # legacy: no 0-d results
    assert [i.asscalar() for i in items] == [5, 6]


# ---- copies between devices ------------------------------------------------------------------
def test_copyto_and_as_in_context_across_devices():
    x = mx.nd.array(np.arange(6).reshape(2, 3))
    y = x.copyto(mx.cpu(1))
    assert y.context == mx.cpu(1) and y is not x
    np.testing.assert_array_equal(y.asnumpy(), x.asnumpy())
    y[:] = 0
    assert x.asnumpy().sum() == 15
    assert x.as_in_context(mx.cpu(0)) is x
    z = x.as_in_context(mx.cpu(1))
    assert z.context == mx.cpu(1)
    dst = mx.nd.zeros((2, 3), dtype="int32", ctx=mx.cpu(1))
    assert x.copyto(dst) is dst and dst.asnumpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ShapeError, match=r"destination has shape \(3,\), source has \(2, 3\)"):
        x.copyto(mx.nd.zeros((3,)))
    with pytest.raises(TypeError, match="copyto expects an NDArray or a Context"):
        x.copyto("cpu(1)")
    c = x.copy()
    c[0, 0] = 50
    assert x.asnumpy()[0, 0] == 0 and c.context == x.context


def test_copy_waits_for_pending_writes_on_engine():
    x = mx.nd.zeros((200_000,))

    def slow():
        time.sleep(0.05)
        x._data[:] = 3
    mx.engine.push(slow, write=[x])
    y = x.copyto(mx.cpu(1))            # ordered after the write, done on the copy workers
    z = y * 2                           # and work on the copy waits for the copy
    assert (z.asnumpy() == 6).all()


def test_astype():
    x = mx.nd.array([1.7, -2.7])
    i = x.astype("int32")
    assert i.dtype is np.int32 and i.asnumpy().tolist() == [1, -2]
    assert x.astype(np.float32, copy=False) is x
    assert x.astype("float32") is not x
    assert x.astype("float64").dtype is np.float64


# ---- arithmetic --------------------------------------------------------------------------------
def test_arithmetic_broadcasting_and_reflected():
    a_np = np.array([[1.0], [2.0]], np.float32)
    b_np = np.array([1.0, 2.0, 4.0], np.float32)
    a, b = mx.nd.array(a_np), mx.nd.array(b_np)
    for got, want in [(a + b, a_np + b_np), (a - b, a_np - b_np), (a * b, a_np * b_np),
                      (a / b, a_np / b_np), (a % b, np.fmod(a_np, b_np)), (a ** b, a_np ** b_np),
                      (2 - b, 2 - b_np), (2 / b, 2 / b_np), (2 ** b, 2 ** b_np),
                      (7 % b, np.fmod(7, b_np)), (3 + b, 3 + b_np), (3 * b, 3 * b_np),
                      (-b, -b_np), (abs(mx.nd.array([-1, 2])), [1, 2]),
                      (np.float32(2) * b, 2 * b_np)]:
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-6)
    assert (a + b).shape == (2, 3)
    with pytest.raises(TypeError, match="unsupported operand"):
        np.array([1.0, 2.0, 4.0]) + b
    with pytest.raises(TypeError, match="unsupported operand"):
        b + "x"


def test_in_place_forms_write_the_same_memory():
    x = mx.nd.array([[1.0, 2.0], [3.0, 4.0]])
    row = x[1]                                    # a view
    ident = id(x)
    x += 1
    x *= mx.nd.array([2.0, 1.0])
    x -= 1
    x /= 2
    assert id(x) == ident
    np.testing.assert_allclose(x.asnumpy(), [[1.5, 1.0], [3.5, 2.0]])
    np.testing.assert_allclose(row.asnumpy(), [3.5, 2.0])
    y = mx.nd.array([5.0, 7.0])
    y %= 3
    y **= 2
    assert y.asnumpy().tolist() == [4.0, 1.0]


def test_comparisons_give_zero_one_of_the_same_dtype():
    x = mx.nd.array([1, 2, 3])
    for got, want in [(x == 2, [0, 1, 0]), (x != 2, [1, 0, 1]), (x > 2, [0, 0, 1]),
                      (x >= 2, [0, 1, 1]), (x < 2, [1, 0, 0]), (x <= 2, [1, 1, 0]),
                      (x == mx.nd.array([1, 0, 3]), [1, 0, 1])]:
        assert got.dtype is np.float32 and got.asnumpy().tolist() == want
    i = mx.nd.array([1, 2], dtype="int32") == 1
    assert i.dtype is np.int32 and i.asnumpy().tolist() == [1, 0]


def test_functional_binary_forms():
    x = mx.nd.array([1.0, 2.0, 3.0])
    assert mx.nd.add(1, 2) == 3
    assert mx.nd.equal(2, 2) == 1 and mx.nd.greater(1, 2) == 0
    cases = [(mx.nd.add(x, 1), x.asnumpy() + 1), (mx.nd.subtract(5, x), 5 - x.asnumpy()),
             (mx.nd.multiply(x, x), x.asnumpy() ** 2), (mx.nd.divide(6, x), 6 / x.asnumpy()),
             (mx.nd.true_divide(x, 2), x.asnumpy() / 2), (mx.nd.modulo(7, x), [0, 1, 1]),
             (mx.nd.power(2, x), [2, 4, 8]), (mx.nd.maximum(x, 2), [2, 2, 3]),
             (mx.nd.minimum(2, x), [1, 2, 2]), (mx.nd.greater(2, x), [1, 0, 0]),
             (mx.nd.greater_equal(2, x), [1, 1, 0]), (mx.nd.lesser(2, x), [0, 0, 1]),
             (mx.nd.lesser_equal(x, 2), [1, 1, 0]), (mx.nd.not_equal(x, 2), [1, 0, 1]),
             (mx.nd.equal(x, mx.nd.array([1, 0, 3])), [1, 0, 1]),
             (mx.nd.logical_and(x > 1, 1), [0, 1, 1]),
             (mx.nd.logical_or(mx.nd.array([0, 0, 1]), mx.nd.array([0, 1, 0])), [0, 1, 1]),
             (mx.nd.logical_xor(mx.nd.array([0, 1]), 1), [1, 0])]
    for got, want in cases:
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-6)
    assert mx.nd.add(mx.nd.ones((2, 1)), mx.nd.ones((3,))).shape == (2, 3)
    with pytest.raises(TypeError, match="add: arguments must be NDArrays or numbers"):
        mx.nd.add("a", x)


def test_scalar_arithmetic_leaves_parameter_strings_alone():
    # regression: x * 2 parses scalar=2.0; a later parse of scalar=2 (a symbol) must still store
    # "2" -- the registry's parse cache once conflated 2, 2.0 and True
    from hybridnet.ops import get_op
    (mx.nd.ones((1,)) * 2).wait_to_read()
    op = get_op("_mul_scalar")
    assert op.parse_params({"scalar": 2}).raw == {"scalar": "2"}
    assert op.parse_params({"scalar": 2.0}).raw == {"scalar": "2.0"}
    assert op.parse_params({"scalar": True}).raw == {"scalar": "True"}


def test_binary_op_across_devices_is_a_clear_error():
    with pytest.raises(HybridNetError, match=r"different devices \(cpu\(0\) and cpu\(1\)\)"):
        mx.nd.array([1.0]) + mx.nd.array([1.0], ctx=mx.cpu(1))


# ---- indexing ----------------------------------------------------------------------------------
GET_CASES = FIXTURE["get"]
SET_CASES = FIXTURE["set"]


@pytest.mark.parametrize("case", GET_CASES, ids=[json.dumps(c["key"]) + "@" + c["source"]
                                                 for c in GET_CASES])
def test_getitem_matches_mxnet(case):
    x = mx.nd.array(SOURCES[case["source"]])
    key = _decode(case["key"])
    if "error" in case:
        with pytest.raises(IndexError, match="out of bounds|too many indices"):
            x[key]
        return
    y = x[key]
    assert list(y.shape) == case["shape"]
    np.testing.assert_array_equal(y.asnumpy().ravel(), case["values"])
    if y.size:
        y[:] = -1
        assert bool((x.asnumpy() == -1).any()) == case["view"]


@pytest.mark.parametrize("case", SET_CASES, ids=[json.dumps(c["key"]) for c in SET_CASES])
def test_setitem_matches_mxnet(case):
    x = mx.nd.array(SOURCES[case["source"]])
    v = case["value"]
    if isinstance(v, dict):
        v = np.array(v["np"], np.float32) if "np" in v else mx.nd.array(v["nd"])
    if "error" in case:
        with pytest.raises((IndexError, ValueError)):
            x[_decode(case["key"])] = v
        return
    x[_decode(case["key"])] = v
    np.testing.assert_array_equal(x.asnumpy().ravel(), case["after"])


def test_index_errors_are_clear():
    x = mx.nd.zeros((2, 3))
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 1 with size 3"):
        x[:, 5]
    with pytest.raises(IndexError, match="index 3 is out of bounds for axis 1 with size 3"):
        x[0, [0, 3]]
    with pytest.raises(IndexError, match="boolean mask indexing is not supported"):
        x[np.array([True, False])]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(ShapeError, match=r"cannot assign a value of shape \(2,\) to a region "
                                          r"of shape \(3,\)"):
        x[0] = mx.nd.ones((2,))


def test_setitem_value_kinds_and_broadcast():
    x = mx.nd.zeros((2, 3))
    x[:] = 5
    x[0] = [1, 2, 3]
    x[1, 1:] = np.array([8, 9])
    x[:, 0] = mx.nd.array([6, 7], ctx=mx.cpu(1))        # copied over from another device
    assert x.asnumpy().tolist() == [[6, 2, 3], [7, 8, 9]]
    i = mx.nd.zeros((2,), dtype="int32")
    i[:] = 3.7
    assert i.asnumpy().tolist() == [3, 3]


def test_setitem_copies_list_values_at_call_time():
    x = mx.nd.zeros((3,))
    v = np.array([1.0, 2.0, 3.0])
    x[:] = v
    v[:] = 0
    assert x.asnumpy().tolist() == [1, 2, 3]


def test_slice_assign_methods_write_in_place():
    x = mx.nd.zeros((3, 4))
    assert x.slice_assign(mx.nd.ones((2, 2)), (0, 1), (2, 3), (None, None)) is x
    assert x.slice_assign_scalar(5, (2,), (3,), ()) is x
    assert x.asnumpy().tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [5, 5, 5, 5]]


def test_dlpack_round_trip_shares_memory():
    a = mx.nd.array([1.0, 2.0, 3.0])
    b = mx.nd.from_dlpack(a.to_dlpack_for_read())
    assert b.shape == (3,) and b.dtype is np.float32
    c = mx.nd.from_dlpack(mx.nd.to_dlpack_for_write(a))
    c[0] = 9
    assert a.asnumpy().tolist() == [9, 2, 3] and b.asnumpy().tolist() == [9, 2, 3]
    n = mx.nd.from_dlpack(np.arange(4, dtype=np.int32))       # any object with __dlpack__
    assert n.dtype is np.int32 and n.asnumpy().tolist() == [0, 1, 2, 3]


# ---- reshape views ----------------------------------------------------------------------------
@pytest.mark.parametrize("src,args,kwargs,want", [
    ((2, 3, 4), ((4, 6),), {}, (4, 6)), ((2, 3, 4), (4, 6), {}, (4, 6)),
    ((2, 3, 4), (), {"shape": (6, 4)}, (6, 4)), ((2, 3, 4), ((0, -1),), {}, (2, 12)),
    ((2, 3, 4), ((-2,),), {}, (2, 3, 4)), ((2, 3, 4), ((0, -3),), {}, (2, 12)),
    ((2, 3, 4), ((-4, 1, 2, -2),), {}, (1, 2, 3, 4)), ((2, 3, 4), ((-1, 0),), {"reverse": True},
                                                        (6, 4)),
    ((6,), ((2, -1),), {"reverse": True}, (2, 3)), ((2, 3, 4), ((-3, -2),), {}, (6, 4))])
def test_reshape_special_codes_are_views(src, args, kwargs, want):
    x = mx.nd.array(np.arange(int(np.prod(src))).reshape(src))
    y = x.reshape(*args, **kwargs)
    assert y.shape == want
    np.testing.assert_array_equal(y.asnumpy().ravel(), np.arange(int(np.prod(src))))
    y[:] = -1
    assert (x.asnumpy() == -1).all()                       # shares memory


def test_reshape_errors():
    x = mx.nd.zeros((2, 3, 4))
    with pytest.raises(ValueError):
        x.reshape((5, -1))
    with pytest.raises(TypeError, match="unexpected arguments"):
        x.reshape((4, 6), foo=1)
    empty = mx.nd.zeros((0, 3))
    assert empty.reshape((3, 0, -1)).shape == (3, 3, 0) and empty.reshape(-1).shape == (0,)
    with pytest.raises(ShapeError, match=r"cannot reshape data of shape \(0, 3\) \(size 0\) "
                                         r"into \(3, 3\)"):
        empty.reshape((3, 0))              # 0 copies the input's dim: (3, 3)


# ---- pickling ----------------------------------------------------------------------------------
def test_pickle_round_trip():
    for x in [mx.nd.array(np.arange(6).reshape(2, 3)), mx.nd.array([1, 0], dtype="bool"),
              mx.nd.array(2.5), mx.nd.zeros((0, 3), dtype="int64"),
              mx.nd.array(np.arange(12).reshape(3, 4))[1:], mx.nd.ones((2,), ctx=mx.cpu(1))]:
        y = pickle.loads(pickle.dumps(x))
        assert type(y) is mx.nd.NDArray and y.shape == x.shape and y.dtype == x.dtype
        np.testing.assert_array_equal(y.asnumpy(), x.asnumpy())
        assert y.context == mx.cpu(0)
    nested = pickle.loads(pickle.dumps({"w": [mx.nd.ones((2,))]}))
    assert nested["w"][0].asnumpy().tolist() == [1, 1]


def test_pickle_waits_for_values():
    x = mx.nd.zeros((10,))

    def slow():
        time.sleep(0.03)
        x._data[:] = 4
    mx.engine.push(slow, write=[x])
    assert pickle.loads(pickle.dumps(x)).asnumpy().tolist() == [4] * 10


# ---- devices ------------------------------------------------------------------------------------
def test_gpu_without_cupy_is_a_clear_error():
    have_cupy = importlib.util.find_spec("cupy") is not None
    if mx.num_gpus() > 0:
        pytest.skip("a GPU is present")
    want = "GPU" if have_cupy else "cupy is not installed"
    with pytest.raises(HybridNetError, match=want):
        mx.nd.zeros((2,), ctx=mx.gpu(0))
    with pytest.raises(HybridNetError, match=want):
        mx.nd.array([1, 2], ctx=mx.gpu(0))
    with pytest.raises(HybridNetError, match=want):
        mx.nd.ones((2,)).copyto(mx.gpu(0))
    with pytest.raises(HybridNetError, match=want):
        mx.context.gpu_memory_info(0)
    assert mx.context.num_gpus() == 0 and str(mx.gpu(1)) == "gpu(1)"   # naming needs no cupy


@pytest.mark.gpu
def test_gpu_arrays_round_trip():
    x = mx.nd.array([[1, 2], [3, 4]], ctx=mx.gpu(0))
    assert x.context == mx.gpu(0)
    y = (x * 2 + 1).copyto(mx.cpu(0))
    assert y.asnumpy().tolist() == [[3, 5], [7, 9]]
    back = y.as_in_context(mx.gpu(0))
    back[0] = 0
    assert back.asnumpy().tolist() == [[0, 0], [7, 9]]
    assert repr(back).endswith("<NDArray 2x2 @gpu(0)>")


def test_broadcast_methods_prepend_axes_like_mxnet():
    # MXNet 1.x: the NDArray methods pad the shape with leading 1s; the operator does not
    x = mx.nd.array([[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(x.broadcast_to((2, 2, 3)).asnumpy(),
                                  np.broadcast_to(x.asnumpy(), (2, 2, 3)))
    assert x.broadcast_like(mx.nd.ones((3, 2, 3))).shape == (3, 2, 3)
    assert mx.nd.array([[1], [2]]).broadcast_to((2, 4)).asnumpy().tolist() == [[1] * 4, [2] * 4]
    with pytest.raises(ShapeError, match=r"shape=\(2, 2, 3\) has 3 dims, data \(2, 3\) has 2"):
        mx.nd.broadcast_to(x, shape=(2, 2, 3))
    for bad in [(3,), (2, 0), (4, 3)]:
        with pytest.raises(ShapeError, match="cannot be broadcast|could not be broadcast"):
            x.broadcast_to(bad)
    x.attach_grad()
    with mx.autograd.record():
        y = x.broadcast_to((4, 2, 3))
    y.backward()
    assert x.grad.asnumpy().tolist() == [[4] * 3] * 2
