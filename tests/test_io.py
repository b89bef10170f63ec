"""mx.io: the iterator protocol, NDArrayIter / CSVIter / LibSVMIter against MXNet's batches
(tests/fixtures/io.json, made by gen_io.py), MNISTIter on generated idx files, PrefetchingIter
and ResizeIter."""
import gzip
import json
import os
import struct
import threading

import numpy as np
import pytest

import hybridnet as mx
from hybridnet import test_utils
from hybridnet.base import HybridNetError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
with open(os.path.join(FIXTURES, "io.json")) as _f:
    REF = json.load(_f)


def run(it, epochs):
    out = []
    for _ in range(epochs):
        out.append([{"data": [d.asnumpy().tolist() for d in b.data],
                     "label": [lab.asnumpy().tolist() for lab in b.label],
                     "pad": int(b.pad)} for b in it])
        it.reset()
    return out


def describe(descs):
    return [[d.name, list(d.shape), np.dtype(d.dtype).name, d.layout] for d in descs]


# ---- protocol --------------------------------------------------------------------------------
def test_datadesc_is_a_tuple_with_dtype_and_layout():
    d = mx.io.DataDesc("data", (4, 3), layout="NC")
    name, shape = d
    assert (name, shape) == ("data", (4, 3))
    assert d.dtype is np.float32 and d.layout == "NC"
    assert repr(d) == "DataDesc[data,(4, 3),<class 'numpy.float32'>,NC]"
    assert mx.io.DataDesc.get_batch_axis("TNC") == 1
    assert mx.io.DataDesc.get_batch_axis(None) == 0
    descs = mx.io.DataDesc.get_list([("a", (1, 2)), ("b", (3,))],
                                    [("a", np.int32), ("b", np.float64)])
    assert [(x.name, x.shape, x.dtype) for x in descs] == [("a", (1, 2), np.int32),
                                                           ("b", (3,), np.float64)]


def test_databatch_str_and_type_checks():
    b = mx.io.DataBatch([mx.nd.zeros((4, 3))], [mx.nd.zeros((4,))], pad=1)
    assert str(b) == "DataBatch: data shapes: [(4, 3)] label shapes: [(4,)]"
    assert repr(b) == str(b)
    assert str(mx.io.DataBatch([mx.nd.zeros((2,))])) == \
        "DataBatch: data shapes: [(2,)] label shapes: None"
    with pytest.raises(TypeError, match="list of NDArrays"):
        mx.io.DataBatch(mx.nd.zeros((2,)))


def test_custom_iterator_uses_the_protocol():
    class Count(mx.io.DataIter):
        def __init__(self):
            super().__init__(batch_size=2)
            self.i = 0

        def reset(self):
            self.i = 0

        def iter_next(self):
            self.i += 1
            return self.i <= 3

        def getdata(self):
            return [mx.nd.full((2,), self.i)]

        def getlabel(self):
            return []

        def getpad(self):
            return 0

    it = Count()
    assert iter(it) is it
    assert [b.data[0].asnumpy()[0] for b in it] == [1, 2, 3]
    with pytest.raises(StopIteration):
        it.next()
    it.reset()
    assert next(it).data[0].asnumpy()[0] == 1
    assert it.getindex() is None


def test_base_iterator_says_what_to_implement():
    with pytest.raises(NotImplementedError, match="iter_next"):
        next(mx.io.DataIter())


def test_mxnets_cpp_iterator_classes_share_mxdataiter():
    for cls in (mx.io.CSVIter, mx.io.LibSVMIter, mx.io.MNISTIter, mx.io.ImageRecordIter,
                mx.io.ImageRecordUInt8Iter, mx.io.ImageRecordInt8Iter):
        assert issubclass(cls, mx.io.MXDataIter) and issubclass(cls, mx.io.DataIter)
    assert not issubclass(mx.io.NDArrayIter, mx.io.MXDataIter)     # Python in MXNet too
    assert mx.io.ImageRecordIter_v1 is mx.io.ImageRecordIter
    assert mx.io.ImageRecordUInt8Iter_v1 is mx.io.ImageRecordUInt8Iter


# ---- NDArrayIter ---------------------------------------------------------------------------
NDARRAY_CASES = [k for k in REF if k.startswith("ndarray_") and k not in
                 ("ndarray_pad_tile", "ndarray_dict_list")]


@pytest.mark.parametrize("case", NDARRAY_CASES)
def test_ndarray_iter_matches_mxnet(case):
    ref = REF[case]
    x = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.float32)
    np.random.seed(ref["seed"])
    it = mx.io.NDArrayIter(x, y, **ref["args"])
    assert run(it, 3) == ref["epochs"]
    assert describe(it.provide_data) == ref["provide_data"]
    assert describe(it.provide_label) == ref["provide_label"]


def test_ndarray_iter_batch_larger_than_data_tiles_like_mxnet():
    ref = REF["ndarray_pad_tile"]
    x = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)[:3]
    it = mx.io.NDArrayIter(x, np.arange(3, dtype=np.float32), batch_size=8)
    assert run(it, 1) == ref["epochs"]


def test_ndarray_iter_dict_and_list_inputs_are_named_and_sorted_like_mxnet():
    ref = REF["ndarray_dict_list"]
    x = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    y = np.arange(10, dtype=np.float32)
    it = mx.io.NDArrayIter({"b": x, "a": x * 2}, [y, y + 1], batch_size=3,
                           last_batch_handle="discard")
    assert describe(it.provide_data) == ref["provide_data"]
    assert describe(it.provide_label) == ref["provide_label"]
    assert run(it, 1) == ref["epochs"]


def test_ndarray_iter_shuffle_is_deterministic_and_a_permutation():
    def epochs(seed):
        np.random.seed(seed)
        it = mx.io.NDArrayIter(np.arange(12, dtype=np.float32), batch_size=4, shuffle=True)
        out = []
        for _ in range(3):
            out.append(np.concatenate([b.data[0].asnumpy() for b in it]))
            it.reset()
        return out
    a, b, c = epochs(5), epochs(5), epochs(6)
    assert all((x == y).all() for x, y in zip(a, b))
    assert any((x != y).any() for x, y in zip(a, c))
    for ep in a:
        assert sorted(ep.tolist()) == list(range(12))
    assert (a[0] != a[1]).any()      # reshuffled at reset


def test_ndarray_iter_keeps_ndarray_dtype_and_accepts_ndarrays():
    data = mx.nd.array(np.arange(8).reshape(4, 2), dtype="int32")
    it = mx.io.NDArrayIter(data, batch_size=2, shuffle=True)
    batch = next(it)
    assert batch.data[0].dtype == np.int32
    assert it.provide_data[0].dtype == np.int32
    assert batch.label == []


def test_ndarray_iter_layout_with_batch_axis_not_first():
    data = np.arange(2 * 6 * 3, dtype=np.float32).reshape(2, 6, 3)   # T, N, C
    it = mx.io.NDArrayIter(data, batch_size=4, layout="TNC", last_batch_handle="pad")
    assert it.provide_data[0].shape == (2, 4, 3)
    batches = [b.data[0].asnumpy() for b in it]
    np.testing.assert_array_equal(batches[0], data[:, 0:4])
    np.testing.assert_array_equal(batches[1], np.concatenate([data[:, 4:6], data[:, 0:2]], axis=1))


def test_ndarray_iter_batches_are_copies_not_views():
    data = np.zeros((4, 2), np.float32)
    it = mx.io.NDArrayIter(data, batch_size=2)
    batch = next(it)
    batch.data[0][:] = 5
    it.reset()
    assert next(it).data[0].asnumpy().sum() == 0


def test_ndarray_iter_rejects_bad_input():
    with pytest.raises(ValueError, match="last_batch_handle must be one of"):
        mx.io.NDArrayIter(np.zeros((4, 2)), batch_size=2, last_batch_handle="wrap")
    with pytest.raises(HybridNetError, match="same number of examples"):
        mx.io.NDArrayIter(np.zeros((4, 2)), np.zeros(5), batch_size=2)
    with pytest.raises(HybridNetError, match="batch_size must be a positive integer"):
        mx.io.NDArrayIter(np.zeros((4, 2)), batch_size=0)
    with pytest.raises(TypeError, match="must be an NDArray, a numpy array"):
        mx.io.NDArrayIter(42)
    with pytest.raises(HybridNetError, match="no batch axis"):
        mx.io.NDArrayIter(np.zeros((4, 2)), layout="CHW")


# ---- CSVIter -------------------------------------------------------------------------------
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case", ["csv_round_1", "csv_round_0", "csv_nolabel_int32"])
@pytest.mark.parametrize("chunk_bytes", [1 << 20, 7])
def test_csv_iter_matches_mxnet_even_when_read_in_tiny_chunks(tmp_path, case, chunk_bytes):
    ref = REF[case]
    args = ref["args"]
    data = _write(tmp_path, "d.csv", REF["texts"]["csv_data"])
    label = _write(tmp_path, "l.csv", REF["texts"]["csv_label"]) if args["label"] else "NULL"
    it = mx.io.CSVIter(data_csv=data, data_shape=tuple(args["data_shape"]), label_csv=label,
                       batch_size=args["batch_size"], round_batch=args.get("round_batch", True),
                       dtype=args.get("dtype"), chunk_bytes=chunk_bytes)
    assert describe(it.provide_data) == ref["provide_data"]
    assert describe(it.provide_label) == ref["provide_label"]
    assert run(it, len(ref["epochs"])) == ref["epochs"]


def test_csv_iter_streams_a_file_much_larger_than_its_chunks(tmp_path):
    rows = np.random.RandomState(0).rand(5000, 4).astype(np.float32)
    path = tmp_path / "big.csv"
    np.savetxt(path, rows, delimiter=",", fmt="%.6f")
    it = mx.io.CSVIter(data_csv=str(path), data_shape=(4,), batch_size=500, chunk_bytes=4096)
    parsed = []
    parse = it._data_rows.parse
    it._data_rows.parse = lambda lines, where: parsed.append(len(lines)) or parse(lines, where)
    got = np.concatenate([b.data[0].asnumpy() for b in it])
    np.testing.assert_allclose(got, rows, atol=1e-6)
    assert sum(parsed) == 5000 and max(parsed) < 200       # never more than a chunk at a time


def test_csv_iter_index_blank_lines_crlf_and_directories(tmp_path):
    d = tmp_path / "parts"
    d.mkdir()
    (d / "a.csv").write_text("1,2\r\n\r\n3,4\r\n")
    (d / "b.csv").write_text("5,6\n")
    it = mx.io.CSVIter(data_csv=str(d), data_shape=(2,), batch_size=3)
    batch = next(it)
    np.testing.assert_array_equal(batch.data[0].asnumpy(), [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(batch.index, [0, 1, 2])


def test_csv_iter_wrong_column_count_names_file_line_and_offset(tmp_path):
    path = _write(tmp_path, "bad.csv", "1,2,3\n4,5,6\n7,8\n9,10,11\n")
    it = mx.io.CSVIter(data_csv=path, data_shape=(3,), batch_size=1)
    with pytest.raises(HybridNetError, match=r"bad\.csv, line 3 \(byte offset 12\) has 2 values, "
                                             r"expected 3"):
        for _ in it:
            pass


def test_csv_iter_non_numbers_and_row_count_mismatch(tmp_path):
    path = _write(tmp_path, "text.csv", "1,2\n3,x\n")
    with pytest.raises(HybridNetError, match=r"text\.csv, line 2 \(byte offset 4\) is not a row of "
                                             r"numbers"):
        next(mx.io.CSVIter(data_csv=path, data_shape=(2,), batch_size=2))
    data = _write(tmp_path, "d.csv", "1\n2\n3\n")
    label = _write(tmp_path, "l.csv", "1\n2\n")
    with pytest.raises(HybridNetError, match="label file has fewer rows than the data file"):
        list(mx.io.CSVIter(data_csv=data, data_shape=(1,), label_csv=label, batch_size=3))
    with pytest.raises(FileNotFoundError, match="no such file"):
        mx.io.CSVIter(data_csv=str(tmp_path / "nope.csv"), data_shape=(1,), batch_size=1)


# ---- LibSVMIter ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["libsvm", "libsvm_label"])
def test_libsvm_iter_matches_mxnet_as_dense_arrays(tmp_path, case):
    ref = REF[case]
    args = ref["args"]
    data = _write(tmp_path, "d.libsvm", REF["texts"]["libsvm_data"])
    kwargs = {}
    if args["label"]:
        kwargs = dict(label_libsvm=_write(tmp_path, "l.libsvm", REF["texts"]["libsvm_label"]),
                      label_shape=tuple(args["label_shape"]))
    it = mx.io.LibSVMIter(data_libsvm=data, data_shape=tuple(args["data_shape"]),
                          batch_size=args["batch_size"], chunk_bytes=9, **kwargs)
    assert describe(it.provide_data) == ref["provide_data"]
    assert describe(it.provide_label) == ref["provide_label"]
    assert run(it, len(ref["epochs"])) == ref["epochs"]


def test_libsvm_iter_partitions_cover_every_row_once(tmp_path):
    text = "".join(f"{i} {i % 4}:{i}\n" for i in range(11))
    path = _write(tmp_path, "p.libsvm", text)
    seen = []
    for part in range(3):
        it = mx.io.LibSVMIter(data_libsvm=path, data_shape=(4,), batch_size=1, num_parts=3,
                              part_index=part)
        seen += [b.label[0].asnumpy()[0] for b in it]
    assert sorted(seen) == list(range(11))


def test_libsvm_iter_bad_index_and_format(tmp_path):
    path = _write(tmp_path, "bad.libsvm", "1 0:1\n2 7:1\n")
    with pytest.raises(HybridNetError, match=r"bad\.libsvm, line 2 \(byte offset 6\): feature "
                                             r"index 7 is outside 0\.\.4"):
        list(mx.io.LibSVMIter(data_libsvm=path, data_shape=(5,), batch_size=1))
    path = _write(tmp_path, "worse.libsvm", "1 0:x\n")
    with pytest.raises(HybridNetError, match="not in LibSVM format"):
        list(mx.io.LibSVMIter(data_libsvm=path, data_shape=(5,), batch_size=1))
    with pytest.raises(HybridNetError, match="only round_batch=True"):
        mx.io.LibSVMIter(data_libsvm=path, data_shape=(5,), batch_size=1, round_batch=False)


# ---- MNISTIter -----------------------------------------------------------------------------
def write_mnist(tmp_path, n=10, gz=False, rows=28, cols=28):
    images = (np.arange(n * rows * cols) % 256).astype(np.uint8).reshape(n, rows, cols)
    labels = (np.arange(n) % 10).astype(np.uint8)
    img_bytes = struct.pack(">IIII", 2051, n, rows, cols) + images.tobytes()
    lab_bytes = struct.pack(">II", 2049, n) + labels.tobytes()
    suffix = ".gz" if gz else ""
    img_path, lab_path = tmp_path / f"img-idx3-ubyte{suffix}", tmp_path / f"lab-idx1-ubyte{suffix}"
    img_path.write_bytes(gzip.compress(img_bytes) if gz else img_bytes)
    lab_path.write_bytes(gzip.compress(lab_bytes) if gz else lab_bytes)
    return str(img_path), str(lab_path), images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_iter_reads_idx_files_and_scales_by_1_over_256(tmp_path, gz):
    img, lab, images, labels = write_mnist(tmp_path, gz=gz)
    it = mx.io.MNISTIter(image=img, label=lab, batch_size=4, shuffle=False, silent=True)
    assert it.provide_data[0].shape == (4, 1, 28, 28)
    assert it.provide_label[0].shape == (4,)
    batches = list(it)
    assert len(batches) == 2                        # the incomplete last batch is dropped
    np.testing.assert_array_equal(batches[1].data[0].asnumpy(),
                                  images[4:8, None].astype(np.float32) / 256)
    np.testing.assert_array_equal(batches[1].label[0].asnumpy(), labels[4:8])
    it = mx.io.MNISTIter(image=img, label=lab, batch_size=5, shuffle=False, flat=True, silent=True)
    assert next(it).data[0].shape == (5, 784)


def test_mnist_iter_shuffles_once_with_the_seed(tmp_path):
    img, lab, _, _ = write_mnist(tmp_path, n=20)

    def order(seed):
        it = mx.io.MNISTIter(image=img, label=lab, batch_size=5, shuffle=True, seed=seed,
                             silent=True)
        first = [b.index.tolist() for b in it]
        it.reset()
        assert [b.index.tolist() for b in it] == first      # once at load, not per epoch
        return sum(first, [])
    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == list(range(20))


def test_mnist_iter_partitions_like_mxnet(tmp_path):
    img, lab, _, _ = write_mnist(tmp_path, n=10)
    parts = []
    for p in range(3):
        it = mx.io.MNISTIter(image=img, label=lab, batch_size=1, shuffle=False, num_parts=3,
                             part_index=p, silent=True)
        parts.append([int(b.label[0].asnumpy()[0]) for b in it])
    assert parts == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]      # MXNet's split (checked)


def test_mnist_iter_rejects_damaged_files(tmp_path):
    img, lab, _, _ = write_mnist(tmp_path, n=4)
    with open(img, "ab") as f:
        f.write(b"\0" * 5)
    with pytest.raises(HybridNetError, match=r"header says shape \(4, 28, 28\) = 3152 bytes with "
                                             r"the header, but the file has 3157 bytes"):
        mx.io.MNISTIter(image=img, label=lab, batch_size=2)
    img, lab, _, _ = write_mnist(tmp_path, n=4)
    with pytest.raises(HybridNetError, match="idx magic number is 2049, expected 2051"):
        mx.io.MNISTIter(image=lab, label=lab, batch_size=2)
    with pytest.raises(FileNotFoundError, match="no MNIST idx file"):
        mx.io.MNISTIter(image=str(tmp_path / "missing"), label=lab, batch_size=2)


# ---- PrefetchingIter / ResizeIter ----------------------------------------------------------
def test_prefetching_iter_yields_the_same_batches_over_epochs():
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    ref = run(mx.io.NDArrayIter(x, np.arange(10), batch_size=4, last_batch_handle="roll_over"), 3)
    it = mx.io.PrefetchingIter(mx.io.NDArrayIter(x, np.arange(10), batch_size=4,
                                                 last_batch_handle="roll_over"))
    assert run(it, 3) == ref
    assert it.batch_size == 4


def test_prefetching_iter_merges_and_renames_several_iterators():
    a = mx.io.NDArrayIter({"data": np.ones((6, 2))}, batch_size=3)
    b = mx.io.NDArrayIter({"data": np.zeros((6, 5))}, batch_size=3)
    it = mx.io.PrefetchingIter([a, b], rename_data=[{"data": "data_1"}, {"data": "data_2"}])
    assert [(d.name, d.shape) for d in it.provide_data] == [("data_1", (3, 2)), ("data_2", (3, 5))]
    batches = list(it)
    assert len(batches) == 2 and [d.shape for d in batches[0].data] == [(3, 2), (3, 5)]
    assert batches[0].provide_data[0].name == "data_1"
    short = mx.io.NDArrayIter(np.ones((3, 2)), batch_size=3)
    long_ = mx.io.NDArrayIter(np.ones((6, 2)), batch_size=3)
    with pytest.raises(HybridNetError, match="must yield the same number"):
        list(mx.io.PrefetchingIter([short, long_]))


class _Flaky(mx.io.DataIter):
    """Yields 4 batches; the second raises."""

    def __init__(self):
        super().__init__(2)
        self.k = 0
        self.fetch_threads = set()
        self.second_fetch = threading.Event()

    provide_data = [mx.io.DataDesc("data", (2,))]
    provide_label = []

    def reset(self):
        self.k = 0

    def next(self):
        self.fetch_threads.add(threading.current_thread().name)
        self.k += 1
        if self.k == 2:
            self.second_fetch.set()
        if self.k == 2:
            raise ValueError("record 2 is broken")
        if self.k > 4:
            raise StopIteration
        return mx.io.DataBatch([mx.nd.full((2,), self.k)], [], pad=0)


def test_prefetching_iter_raises_worker_errors_at_next_and_goes_on():
    it = mx.io.PrefetchingIter(_Flaky())
    assert next(it).data[0].asnumpy()[0] == 1
    with pytest.raises(ValueError, match="record 2 is broken"):
        next(it)
    assert [b.data[0].asnumpy()[0] for b in it] == [3, 4]
    with pytest.raises(StopIteration):
        next(it)
    it.reset()
    assert next(it).data[0].asnumpy()[0] == 1


def test_prefetching_iter_prepares_the_next_batch_while_the_consumer_works():
    src = _Flaky()
    it = mx.io.PrefetchingIter(src)
    next(it)                                      # the consumer now works on batch 1 ...
    assert src.second_fetch.wait(10)              # ... while batch 2 is fetched in the background
    assert src.fetch_threads == {"PrefetchingIter-0"}


def test_resize_iter_fixes_the_epoch_length():
    base = mx.io.NDArrayIter(np.arange(10, dtype=np.float32), batch_size=4,
                             last_batch_handle="discard")
    it = mx.io.ResizeIter(base, 5)
    epoch = [b.data[0].asnumpy()[0] for b in it]
    assert epoch == [0, 4, 0, 4, 0]
    it.reset()
    assert len(list(it)) == 5
    shorter = mx.io.ResizeIter(mx.io.NDArrayIter(np.arange(12, dtype=np.float32), batch_size=4),
                               2, reset_internal=False)
    assert [b.data[0].asnumpy()[0] for b in shorter] == [0, 4]
    shorter.reset()
    assert [b.data[0].asnumpy()[0] for b in shorter] == [8, 0]
    assert shorter.provide_data[0].shape == (4,)
    with pytest.raises(HybridNetError, match="positive number of batches"):
        mx.io.ResizeIter(base, 0)


# ---- get_mnist -----------------------------------------------------------------------------
def test_get_mnist_reads_local_files_and_never_downloads(tmp_path, monkeypatch):
    for prefix, n in (("train", 6), ("t10k", 4)):
        images = (np.arange(n * 784) % 256).astype(np.uint8)
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes()))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + np.arange(n, dtype=np.uint8).tobytes())
    mnist = test_utils.get_mnist(str(tmp_path))
    assert mnist["train_data"].shape == (6, 1, 28, 28)
    assert mnist["test_data"].shape == (4, 1, 28, 28)
    assert mnist["train_data"].dtype == np.float32
    np.testing.assert_allclose(mnist["train_data"].ravel()[:3], np.arange(3) / 255)
    np.testing.assert_array_equal(mnist["test_label"], np.arange(4))
    monkeypatch.setenv("HYBRIDNET_MNIST_DIR", str(tmp_path))
    assert test_utils.get_mnist()["train_label"].shape == (6,)
    monkeypatch.setenv("HYBRIDNET_MNIST_DIR", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*empty.*never downloads"):
        test_utils.get_mnist()
