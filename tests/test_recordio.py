"""mx.recordio (the .rec/.idx format, byte for byte against files MXNet wrote) and
ImageRecordIter (the exact batches MXNet yields; shuffling, partitions, threads, damaged input).
Fixtures: tests/fixtures/recordio/, made by gen_recordio.py with MXNet 1.9.1."""
import json
import os
import pickle
import shutil
import struct

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError, ParamError
from hybridnet.image import ImageDecodeError
from hybridnet.recordio import RecordIOError, encode_record

D = os.path.join(os.path.dirname(__file__), "fixtures", "recordio")
MAGIC = struct.pack("<I", 0xCED7230A)
with open(os.path.join(D, "raw.json")) as _f:
    RAW = [bytes.fromhex(h) for h in json.load(_f)["payloads_hex"]]
with open(os.path.join(D, "iters.json")) as _f:
    ITERS = json.load(_f)
ITER_REF = np.load(os.path.join(D, "iters.npz"))


# ---- the format ----------------------------------------------------------------------------
def test_reads_records_mxnet_wrote_sequentially_and_by_key():
    r = mx.recordio.MXRecordIO(os.path.join(D, "raw.rec"), "r")
    assert [r.read() for _ in RAW] == RAW
    assert r.read() is None
    r.reset()
    assert r.read() == RAW[0]
    r.close()
    ir = mx.recordio.MXIndexedRecordIO(os.path.join(D, "raw.idx"), os.path.join(D, "raw.rec"), "r")
    assert ir.keys == list(range(len(RAW)))
    for key in (6, 0, 9, 4):
        assert ir.read_idx(key) == RAW[key]


def test_writes_files_byte_identical_to_mxnet(tmp_path):
    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "x.idx"), str(tmp_path / "x.rec"), "w")
    positions = []
    for i, payload in enumerate(RAW):
        positions.append(w.tell())
        w.write_idx(i, payload)
    w.close()
    assert (tmp_path / "x.rec").read_bytes() == open(os.path.join(D, "raw.rec"), "rb").read()
    assert (tmp_path / "x.idx").read_text() == open(os.path.join(D, "raw.idx")).read()
    assert positions[:3] == [0, 8, 20]


def test_payloads_holding_the_magic_word_are_split_into_parts():
    enc = encode_record(b"xy" + MAGIC + b"zw")          # not 4-byte aligned: one part
    assert struct.unpack("<II", enc[:8]) == (0xCED7230A, 8) and len(enc) == 16
    enc = encode_record(b"abcd" + MAGIC + b"efgh")      # aligned: two parts, magic dropped
    head1 = struct.unpack("<II", enc[:8])
    head2 = struct.unpack("<II", enc[12:20])
    assert head1 == (0xCED7230A, (1 << 29) | 4) and head2 == (0xCED7230A, (3 << 29) | 4)
    assert enc[8:12] == b"abcd" and enc[20:] == b"efgh"
    enc = encode_record(MAGIC + MAGIC)                  # first, middle, last (all empty)
    flags = [struct.unpack("<II", enc[i:i + 8])[1] >> 29 for i in range(0, len(enc), 8)]
    assert flags == [1, 2, 3]


def test_pack_unpack_headers_and_labels():
    s = mx.recordio.pack(mx.recordio.IRHeader(7, 3.5, 12, 0), b"img")
    header, payload = mx.recordio.unpack(s)
    assert header == mx.recordio.IRHeader(0, 3.5, 12, 0) and payload == b"img"
    assert type(header).__name__ == "HEADER"
    s = mx.recordio.pack(mx.recordio.IRHeader(0, [1.0, 2.5, 4.0], 3, 9), b"xyz")
    header, payload = mx.recordio.unpack(s)
    assert header.flag == 3 and header.id2 == 9 and payload == b"xyz"
    np.testing.assert_array_equal(header.label, [1.0, 2.5, 4.0])
    ir = mx.recordio.MXIndexedRecordIO(os.path.join(D, "multilabel.idx"),
                                       os.path.join(D, "multilabel.rec"), "r")
    header, _ = mx.recordio.unpack(ir.read_idx(3))
    assert header.id == 2003
    np.testing.assert_array_equal(header.label, [3.0, 3.5])
    with pytest.raises(RecordIOError, match="24-byte header"):
        mx.recordio.unpack(b"short")


def test_pack_img_unpack_img_use_opencv_channel_order():
    bgr = np.random.RandomState(0).randint(0, 256, (6, 7, 3)).astype(np.uint8)
    s = mx.recordio.pack_img(mx.recordio.IRHeader(0, 1.0, 5, 0), bgr, quality=3, img_fmt=".png")
    header, img = mx.recordio.unpack_img(s)
    assert header.id == 5
    np.testing.assert_array_equal(img, bgr)
    _, gray = mx.recordio.unpack_img(s, iscolor=0)
    assert gray.shape == (6, 7)
    grid = list(np.meshgrid(np.arange(16) * 8, np.arange(12) * 10))
    smooth = np.stack(grid + [np.full((12, 16), 60)], -1).astype(np.uint8)
    s = mx.recordio.pack_img(mx.recordio.IRHeader(0, 1.0, 5, 0), smooth, quality=95)
    _, jpg = mx.recordio.unpack_img(s, iscolor=1)
    assert jpg.shape == (12, 16, 3) and np.abs(jpg.astype(int) - smooth).mean() < 3


def test_readers_pickle_and_reopen_at_the_start(tmp_path):
    r = mx.recordio.MXIndexedRecordIO(os.path.join(D, "raw.idx"), os.path.join(D, "raw.rec"), "r")
    r.read()
    clone = pickle.loads(pickle.dumps(r))
    assert clone.read() == RAW[0] and clone.read_idx(5) == RAW[5]
    r.close()
    closed = pickle.loads(pickle.dumps(r))
    assert not closed.is_open


def test_recordio_misuse_errors(tmp_path):
    with pytest.raises(ValueError, match="Invalid flag 'x'"):
        mx.recordio.MXRecordIO(str(tmp_path / "a.rec"), "x")
    w = mx.recordio.MXRecordIO(str(tmp_path / "a.rec"), "w")
    with pytest.raises(TypeError, match="expects bytes"):
        w.write("text")
    with pytest.raises(HybridNetError, match="open for writing"):
        w.read()
    w.close()
    with pytest.raises(HybridNetError, match="is closed"):
        w.write(b"x")
    r = mx.recordio.MXRecordIO(os.path.join(D, "raw.rec"), "r")
    r.pid = -1                            # as if inherited by a forked child
    with pytest.raises(RuntimeError, match="opened in another process"):
        r.read()
    ir = mx.recordio.MXIndexedRecordIO(os.path.join(D, "raw.idx"), os.path.join(D, "raw.rec"), "r")
    with pytest.raises(KeyError, match="key 99 is not in"):
        ir.read_idx(99)
    ir.pid = -1
    assert ir.read_idx(1) == RAW[1]       # seek resets in a new process, like MXNet


def _copy(tmp_path, name):
    for ext in (".rec", ".idx"):
        shutil.copy(os.path.join(D, name + ext), tmp_path / (name + ext))
    return str(tmp_path / (name + ".rec")), str(tmp_path / (name + ".idx"))


def test_bad_magic_names_file_record_and_offset(tmp_path):
    rec, idx = _copy(tmp_path, "raw")
    data = bytearray(open(rec, "rb").read())
    data[20:24] = b"\0\0\0\0"                   # header of record 2 (offset 20)
    open(rec, "wb").write(bytes(data))
    r = mx.recordio.MXRecordIO(rec, "r")
    r.read(), r.read()
    with pytest.raises(RecordIOError, match=r"raw\.rec: record at byte offset 20: bad magic number "
                                            r"0x00000000 at byte 20"):
        r.read()
    ir = mx.recordio.MXIndexedRecordIO(idx, rec, "r")
    with pytest.raises(RecordIOError, match=r"record with key 2 at byte offset 20: bad magic"):
        ir.read_idx(2)


def test_truncated_file_and_index_past_the_end(tmp_path):
    rec, idx = _copy(tmp_path, "raw")
    size = os.path.getsize(rec)
    with open(rec, "r+b") as f:
        f.truncate(size - 600)                  # cut into the 768-byte record
    r = mx.recordio.MXRecordIO(rec, "r")
    with pytest.raises(RecordIOError, match=r"record at byte offset 932 is truncated: it "
                                            r"declares 1001 payload bytes"):
        while r.read() is not None:
            pass
    with open(rec, "r+b") as f:
        f.truncate(930)                         # the last record's header is gone too
    with pytest.raises(RecordIOError, match=r"raw\.idx, line 11: key 10 points to byte offset "
                                            r"\d+, past the end of .*raw\.rec"):
        mx.recordio.MXIndexedRecordIO(idx, rec, "r")
    with open(idx, "a") as f:
        f.write("garbage\n")
    with open(rec, "wb") as f:
        f.write(open(os.path.join(D, "raw.rec"), "rb").read())
    with pytest.raises(RecordIOError, match=r"line 12: expected 'key<TAB>offset', got 'garbage'"):
        mx.recordio.MXIndexedRecordIO(idx, rec, "r")


# ---- ImageRecordIter against MXNet ---------------------------------------------------------
def make_iter(name, **overrides):
    kwargs = dict(ITERS[name]["config"])
    uint8 = kwargs.pop("_uint8", False)
    for key in ("path_imgrec", "path_imgidx"):
        if key in kwargs:
            kwargs[key] = os.path.join(D, kwargs[key])
    kwargs.update(overrides)
    kwargs.setdefault("verbose", False)
    return (mx.io.ImageRecordUInt8Iter if uint8 else mx.io.ImageRecordIter)(**kwargs)


@pytest.mark.parametrize("name", sorted(ITERS))
@pytest.mark.parametrize("threads", [1, 3])
def test_image_record_iter_yields_mxnets_batches(name, threads):
    it = make_iter(name, preprocess_threads=threads)
    meta = ITERS[name]
    assert [[d.name, list(d.shape), np.dtype(d.dtype).name] for d in it.provide_data] == \
        meta["provide_data"]
    assert [[d.name, list(d.shape), np.dtype(d.dtype).name] for d in it.provide_label] == \
        meta["provide_label"]
    pads = []
    for epoch in range(2):
        for k, batch in enumerate(it):
            data, label = batch.data[0].asnumpy(), batch.label[0].asnumpy()
            ref = ITER_REF[f"{name}/e{epoch}b{k}/data"]
            assert data.dtype == ref.dtype
            np.testing.assert_array_equal(data, ref, err_msg=f"{name} epoch {epoch} batch {k}")
            np.testing.assert_array_equal(label, ITER_REF[f"{name}/e{epoch}b{k}/label"])
            pads.append([epoch, k, batch.pad])
        it.reset()
    assert pads == meta["pads"]


def test_image_record_iter_index_holds_record_ids():
    it = make_iter("center")
    assert next(it).index.tolist() == [1000, 1001, 1002, 1003]


def all_ids(it, epochs=1):
    out = []
    for _ in range(epochs):
        out.append(sum((b.index[:len(b.index) - b.pad].tolist() for b in it), []))
        it.reset()
    return out


def test_shuffle_is_sample_level_seeded_and_new_each_epoch():
    kw = dict(shuffle=True, round_batch=False, batch_size=3)
    a = all_ids(make_iter("center", seed=4, **kw), 3)
    b = all_ids(make_iter("center", seed=4, **kw), 3)
    c = all_ids(make_iter("center", seed=5, **kw), 3)
    assert a == b and a != c
    for epoch in a:
        assert sorted(epoch) == list(range(1000, 1010))     # every sample exactly once
    assert a[0] != a[1] != a[2]
    assert a[0] != list(range(1000, 1010))


def test_round_batch_carries_over_into_the_next_epoch_with_shuffle():
    it = make_iter("center", shuffle=True, seed=1, batch_size=4)
    first = [b.index.tolist() for b in it]
    assert len(first) == 3 and len(set(first[2])) == 4
    it.reset()
    second = [b.index.tolist() for b in it]
    # the last batch of epoch 0 borrowed 2 samples from the next pass; epoch 1 continues after
    flat = first[2][2:] + sum(second, [])
    assert sorted(flat) == list(range(1000, 1010))


@pytest.mark.parametrize("parts", [2, 3, 4])
def test_partitions_cover_every_record_exactly_once(parts):
    seen = []
    for part in range(parts):
        it = make_iter("with_idx", num_parts=parts, part_index=part, round_batch=False,
                       batch_size=2)
        seen += all_ids(it)[0]
    assert sorted(seen) == list(range(1000, 1010))


def test_reset_mid_epoch_starts_over():
    it = make_iter("center")
    next(it)
    it.reset()
    assert next(it).index.tolist() == [1000, 1001, 1002, 1003]


def test_random_augmentation_is_repeatable_and_plausible():
    kw = dict(rand_crop=True, rand_mirror=True, resize=20, max_rotate_angle=15,
              brightness=0.3, contrast=0.3, saturation=0.3, pca_noise=0.1, pad=2,
              random_h=20, random_s=30, random_l=30,
              max_random_contrast=0.2, max_random_illumination=5, seed_aug=3)
    runs = [np.concatenate([b.data[0].asnumpy() for b in make_iter("center", **kw)])
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    plain = np.concatenate([b.data[0].asnumpy() for b in make_iter("center")])
    assert (runs[0] != plain).any()
    assert runs[0].min() > -100 and runs[0].max() < 360


def test_rand_mirror_flips_some_images_and_keeps_others():
    plain = np.concatenate([b.data[0].asnumpy() for b in make_iter("center", round_batch=False)])
    mirrored = np.concatenate([b.data[0].asnumpy()
                               for b in make_iter("center", round_batch=False, rand_mirror=True)])
    same = [(m == p).all() for m, p in zip(mirrored, plain)]
    flipped = [(m == p[:, :, ::-1]).all() for m, p in zip(mirrored, plain)]
    assert all(s or f for s, f in zip(same, flipped)) and any(flipped) and any(same)


def test_random_resized_crop_and_crop_sizes_give_the_data_shape():
    for kw in (dict(random_resized_crop=True, min_random_area=0.3, max_aspect_ratio=0.3),
               dict(max_crop_size=16, min_crop_size=10, rand_crop=True),
               dict(max_random_scale=1.3, min_random_scale=0.9, inter_method=10)):
        batch = next(make_iter("center", **kw))
        assert batch.data[0].shape == (4, 3, 16, 16)


def test_output_dtypes():
    ref = ITER_REF["uint8/e0b0/data"].astype(np.float32)
    half = next(make_iter("center", dtype="float16")).data[0]
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half.asnumpy(), ref.astype(np.float16))
    int8 = next(make_iter("center", dtype="int8", mean_r=128, mean_g=128, mean_b=128)).data[0]
    np.testing.assert_array_equal(int8.asnumpy(), np.clip(ref - 128, -128, 127))
    with pytest.raises(ParamError, match="dtype must be one of"):
        make_iter("center", dtype="int64")


def test_mean_image_is_created_then_loaded(tmp_path):
    path = str(tmp_path / "mean.nd")
    it = make_iter("center", mean_img=path)
    assert os.path.exists(path)
    raw = np.concatenate([b.data[0].asnumpy()[:4 - b.pad]
                          for b in make_iter("uint8", round_batch=False)]).astype(np.float32)
    mean = raw.mean(axis=0)
    np.testing.assert_allclose(mx.nd.load(path)["mean_img"].asnumpy(), mean, rtol=1e-5)
    again = make_iter("center", mean_img=path)
    np.testing.assert_allclose(next(again).data[0].asnumpy(), raw[:4] - mean, atol=1e-4)
    del it


def test_labels_from_an_image_list(tmp_path):
    lst = tmp_path / "images.lst"
    lst.write_text("".join(f"{1000 + i}\t{i * 10}\t{i * 10 + 1}\timg{i}.png\n" for i in range(10)))
    it = make_iter("center", path_imglist=str(lst), label_width=2)
    np.testing.assert_array_equal(next(it).label[0].asnumpy(),
                                  [[0, 1], [10, 11], [20, 21], [30, 31]])


def test_parameter_errors():
    with pytest.raises(ParamError, match="unknown parameter.*bogus"):
        make_iter("center", bogus=1)
    with pytest.raises(ParamError, match="aug_seq='det_aug_default' is not supported"):
        make_iter("center", aug_seq="det_aug_default")
    with pytest.raises(ParamError, match="path_imgrec is required"):
        mx.io.ImageRecordIter(data_shape=(3, 4, 4), batch_size=2)
    with pytest.raises(ParamError, match=r"data_shape must be \(channels, height, width\)"):
        make_iter("center", data_shape=(16, 16))
    with pytest.raises(ParamError, match="part_index must be in"):
        make_iter("center", num_parts=2, part_index=2)
    with pytest.raises(FileNotFoundError, match="no RecordIO file"):
        mx.io.ImageRecordIter(path_imgrec="/nonexistent.rec", data_shape=(3, 4, 4), batch_size=2)
    it = make_iter("center", label_width=3)
    with pytest.raises(HybridNetError, match=r"record 0 \(id 1000\) at byte offset 0 .* holds 1 "
                                             r"label but label_width is 3"):
        next(it)


def test_string_parameters_like_mxnets_kwargs():
    it = make_iter("center", data_shape="(3, 16, 16)", batch_size="4", mirror="1", resize="-1")
    assert it.provide_data[0].shape == (4, 3, 16, 16)
    np.testing.assert_array_equal(next(it).data[0].asnumpy(),
                                  ITER_REF["center/e0b0/data"][:, :, :, ::-1])


# ---- damaged input reaches next(), never a hang or a silent skip ---------------------------
def _damaged(tmp_path, record, how):
    rec, idx = _copy(tmp_path, "images")
    offsets = [int(line.split("\t")[1]) for line in open(idx)]
    data = bytearray(open(rec, "rb").read())
    start = offsets[record]
    if how == "magic":
        data[start:start + 4] = b"\xde\xad\xbe\xef"
    elif how == "image":
        data[start + 8 + 24:start + 8 + 40] = b"\0" * 16      # clobber the PNG signature
    elif how == "truncate":
        data = data[:start + 30]
    open(rec, "wb").write(bytes(data))
    return rec, idx, start


def test_undecodable_image_is_reported_at_next_and_iteration_goes_on(tmp_path):
    rec, idx, start = _damaged(tmp_path, 5, "image")
    it = mx.io.ImageRecordIter(path_imgrec=rec, path_imgidx=idx, data_shape=(3, 16, 16),
                               batch_size=4, preprocess_threads=2, verbose=False)
    assert next(it).index.tolist() == [1000, 1001, 1002, 1003]
    with pytest.raises(ImageDecodeError, match=rf"record 5 \(id 1005\) at byte offset {start} of "
                                               rf".*images\.rec"):
        next(it)
    assert next(it).index.tolist() == [1008, 1009, 1000, 1001]


def test_bad_magic_in_the_middle(tmp_path):
    rec, idx, start = _damaged(tmp_path, 6, "magic")
    with pytest.raises(RecordIOError, match=rf"record 6: bad magic number 0xEFBEADDE at byte "
                                            rf"offset {start}"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 16, 16), batch_size=4)
    it = mx.io.ImageRecordIter(path_imgrec=rec, path_imgidx=idx, data_shape=(3, 16, 16),
                               batch_size=4, verbose=False)
    next(it)
    with pytest.raises(RecordIOError, match=rf"record 6 at byte offset {start}: bad magic"):
        next(it)


def test_truncated_rec_and_index_past_the_end(tmp_path):
    rec, idx, start = _damaged(tmp_path, 7, "truncate")
    with pytest.raises(RecordIOError, match=rf"record 7 at byte offset {start} is truncated"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 16, 16), batch_size=4)
    with pytest.raises(RecordIOError, match=r"images\.idx, line 9: offset \d+ is past the end"):
        mx.io.ImageRecordIter(path_imgrec=rec, path_imgidx=idx, data_shape=(3, 16, 16),
                              batch_size=4)
    open(rec, "wb").close()
    with pytest.raises(RecordIOError, match="is empty"):
        mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 16, 16), batch_size=4)


def test_image_record_iter_under_prefetching_iter():
    ref = [b.data[0].asnumpy() for b in make_iter("center")]
    got = [b.data[0].asnumpy() for b in mx.io.PrefetchingIter(make_iter("center"))]
    assert len(ref) == len(got) and all((a == b).all() for a, b in zip(ref, got))


def test_resizing_only_the_cropped_window_gives_the_same_pixels():
    kw = dict(path_imgrec=os.path.join(D, "jpeg.rec"), resize=26, rand_crop=True,
              data_shape=(3, 20, 20), batch_size=3, seed_aug=2)
    fused = make_iter("jpeg_resize", **kw)
    unfused = make_iter("jpeg_resize", **kw)
    assert fused._aug._plain_crop
    unfused._aug._plain_crop = False            # resize the whole image, then crop
    unfused.reset()                             # drop batches prepared before the switch
    fused.reset()                               # (both now in their second pass)
    for a, b in zip(fused, unfused):
        np.testing.assert_array_equal(a.data[0].asnumpy(), b.data[0].asnumpy())


def test_closed_iterator_says_so():
    it = make_iter("center")
    it.close()
    with pytest.raises(HybridNetError, match="is closed"):
        next(it)
