"""mx.image: decoding and resizing against MXNet 1.9.1 (tests/fixtures/recordio/decode.npz, made
by gen_recordio.py), crops and augmenters against numpy references, the numba kernels against
plain numpy versions, ImageIter's batches against MXNet's (imageiter.npz)."""
import json
import os
import random
import sys

import numpy as np
import pytest

import hybridnet as mx
from hybridnet.base import HybridNetError
from hybridnet.image import ImageDecodeError, kernels
from hybridnet.image.codec import decode, encode
from hybridnet.image.resize import resize

D = os.path.join(os.path.dirname(__file__), "fixtures", "recordio")
REF = np.load(os.path.join(D, "decode.npz"))
JPEGS = [f"jpeg_{i}" for i in range(6)] + ["jpeg_gray"]


def read(name):
    with open(os.path.join(D, name + ".jpg"), "rb") as f:
        return f.read()


# ---- decoding ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", JPEGS)
def test_imdecode_equals_mxnet(name):
    buf = read(name)
    color = mx.image.imdecode(buf)
    assert isinstance(color, mx.nd.NDArray) and color.dtype == np.uint8
    np.testing.assert_array_equal(color.asnumpy(), REF[f"{name}/color"])
    np.testing.assert_array_equal(mx.image.imdecode(buf, flag=0).asnumpy(), REF[f"{name}/gray"])
    np.testing.assert_array_equal(mx.image.imdecode(buf, to_rgb=0).asnumpy(), REF[f"{name}/bgr"])
    np.testing.assert_array_equal(mx.image.imdecode(np.frombuffer(buf, np.uint8)).asnumpy(),
                                  REF[f"{name}/color"])


def test_imread_and_out(tmp_path):
    img = mx.image.imread(os.path.join(D, "jpeg_3.jpg"))
    np.testing.assert_array_equal(img.asnumpy(), REF["jpeg_3/color"])
    out = mx.nd.zeros(img.shape, dtype="uint8")
    assert mx.image.imdecode(read("jpeg_3"), out=out) is out
    np.testing.assert_array_equal(out.asnumpy(), REF["jpeg_3/color"])
    with pytest.raises(FileNotFoundError, match="no image file at"):
        mx.image.imread(str(tmp_path / "missing.jpg"))


def test_decode_modes_of_pngs():
    rgba = np.random.RandomState(0).randint(0, 256, (5, 6, 4)).astype(np.uint8)
    buf = encode(rgba, ".png", 3)
    assert decode(buf, -1).shape == (5, 6, 4)
    np.testing.assert_array_equal(decode(buf, -1), rgba)
    np.testing.assert_array_equal(decode(buf, 1), rgba[:, :, :3])
    np.testing.assert_array_equal(decode(buf, 1, to_rgb=False), rgba[:, :, 2::-1])
    gray = encode(rgba[:, :, 0], ".png")
    assert decode(gray, -1).shape == (5, 6, 1)
    np.testing.assert_array_equal(decode(gray, 1), np.repeat(rgba[:, :, :1], 3, axis=2))


def test_decode_errors_name_the_source():
    with pytest.raises(ImageDecodeError, match=r"cannot decode image record 7 \(4 bytes starting "
                                               r"with 6e 6f 70 65\)"):
        decode(b"nope", where="record 7")
    truncated = read("jpeg_0")[:200]
    with pytest.raises(ImageDecodeError, match="cannot decode image"):
        mx.image.imdecode(truncated)
    with pytest.raises(TypeError, match="encoded image as bytes"):
        mx.image.imdecode("cat.jpg")
    with pytest.raises(HybridNetError, match="flag must be 1"):
        mx.image.imdecode(read("jpeg_0"), flag=2)
    with pytest.raises(HybridNetError, match="unknown image format"):
        encode(np.zeros((2, 2, 3), np.uint8), ".xyz")
    with pytest.raises(HybridNetError, match="only uint8 images"):
        encode(np.zeros((2, 2, 3), np.float32))


def test_missing_pillow_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(HybridNetError, match=r"need Pillow.*pip install pillow"):
        decode(read("jpeg_0"))


# ---- resizing ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", range(5))
@pytest.mark.parametrize("interp", range(5))
def test_imresize_equals_mxnet(case, interp):
    src = REF[f"resize{case}/src"]
    want = REF[f"resize{case}/{interp}"]
    got = mx.image.imresize(mx.nd.array(src, dtype="uint8"), want.shape[1], want.shape[0],
                            interp=interp).asnumpy()
    diff = np.abs(got.astype(int) - want)
    if interp == 2:       # bicubic: OpenCV's SIMD float sums may round a rare pixel the other way
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    else:
        assert diff.max() == 0


def test_resize_float_images_and_numpy_in_numpy_out():
    src = REF["resize1/src"]
    as_u8 = resize(src, 29, 13, 1).astype(np.float32)
    as_f32 = resize(src.astype(np.float32), 29, 13, 1)
    assert as_f32.dtype == np.float32 and np.abs(as_f32 - as_u8).max() <= 1.0
    out = mx.image.imresize(src, 10, 7)
    assert isinstance(out, np.ndarray) and out.shape == (7, 10, 3)
    gray = resize(src[:, :, 0], 10, 7, 1)
    np.testing.assert_array_equal(gray, out[:, :, 0])
    with pytest.raises(HybridNetError, match="Unknown interp method 7"):
        mx.image.imresize(src, 4, 4, interp=7)
    with pytest.raises(HybridNetError, match="must be positive"):
        resize(src, 0, 4)


def test_resize_short_keeps_aspect_and_auto_interp():
    wide = np.zeros((48, 64, 3), np.uint8)
    assert mx.image.resize_short(wide, 24).shape == (24, 32, 3)
    tall = mx.nd.zeros((64, 48, 3), dtype="uint8")
    out = mx.image.resize_short(tall, 30, interp=9)
    assert isinstance(out, mx.nd.NDArray) and out.shape == (40, 30, 3)


# ---- crops ---------------------------------------------------------------------------------
def test_scale_down_and_center_crop():
    assert mx.image.scale_down((640, 480), (720, 120)) == (640, 106)
    assert mx.image.scale_down((360, 1000), (480, 500)) == (360, 375)
    src = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    out, box = mx.image.center_crop(src, (6, 4))
    assert box == (3, 3, 6, 4)
    np.testing.assert_array_equal(out, src[3:7, 3:9])
    out, box = mx.image.center_crop(mx.nd.array(src, dtype="uint8"), (24, 20), interp=1)
    assert box == (0, 0, 12, 10) and out.shape == (20, 24, 3)
    np.testing.assert_array_equal(out.asnumpy(), resize(src, 24, 20, 1))


def test_fixed_and_random_crops_take_windows_of_the_source():
    src = np.random.RandomState(1).randint(0, 256, (20, 30, 3)).astype(np.uint8)
    np.testing.assert_array_equal(mx.image.fixed_crop(src, 4, 2, 10, 8), src[2:10, 4:14])
    np.testing.assert_array_equal(mx.image.fixed_crop(src, 4, 2, 10, 8, size=(5, 4), interp=1),
                                  resize(src[2:10, 4:14], 5, 4, 1))
    with pytest.raises(HybridNetError, match="does not fit"):
        mx.image.fixed_crop(src, 25, 0, 10, 8)
    random.seed(3)
    for _ in range(5):
        out, (x0, y0, w, h) = mx.image.random_crop(src, (7, 9))
        np.testing.assert_array_equal(out, src[y0:y0 + h, x0:x0 + w])
        out, (x0, y0, w, h) = mx.image.random_size_crop(src, (8, 8), (0.2, 0.6), (0.75, 1.33),
                                                        interp=1)
        assert 0.15 * 600 <= w * h <= 0.65 * 600 and out.shape == (8, 8, 3)
        np.testing.assert_array_equal(out, resize(src[y0:y0 + h, x0:x0 + w], 8, 8, 1))
    out, box = mx.image.random_size_crop(src, (8, 8), 5.0, (1.0, 1.0), interp=1)  # cannot fit
    assert box == mx.image.center_crop(src, (8, 8))[1]


def test_color_normalize_and_copy_make_border():
    src = np.random.RandomState(2).rand(4, 5, 3).astype(np.float32) * 255
    mean, std = np.array([1.0, 2.0, 3.0], np.float32), np.array([2.0, 4.0, 8.0], np.float32)
    np.testing.assert_allclose(mx.image.color_normalize(src, mean, std), (src - mean) / std)
    nd_out = mx.image.color_normalize(mx.nd.array(src), mx.nd.array(mean))
    np.testing.assert_allclose(nd_out.asnumpy(), src - mean, rtol=1e-6)
    img = np.arange(2 * 3 * 1, dtype=np.uint8).reshape(2, 3, 1)
    padded = mx.image.copyMakeBorder(img, 1, 2, 3, 0, type=0, value=9)
    np.testing.assert_array_equal(padded, np.pad(img, ((1, 2), (3, 0), (0, 0)), constant_values=9))
    np.testing.assert_array_equal(mx.image.copyMakeBorder(img, 1, 1, 1, 1, type=1),
                                  np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge"))
    colour = mx.image.copyMakeBorder(np.zeros((1, 1, 3), np.uint8), 1, 0, 0, 0, values=[1, 2, 3])
    np.testing.assert_array_equal(colour[0, 0], [1, 2, 3])
    with pytest.raises(HybridNetError, match="copyMakeBorder type must be"):
        mx.image.copyMakeBorder(img, 1, 1, 1, 1, type=3)


# ---- augmenters ----------------------------------------------------------------------------
GRAY = np.array([0.299, 0.587, 0.114], np.float32)


def _img():
    return np.random.RandomState(4).randint(0, 256, (6, 8, 3)).astype(np.float32)


def test_color_jitter_augmenters_match_their_formulas():
    src = _img()
    draw = random.Random(11)
    random.seed(11)
    alpha = 1 + draw.uniform(-0.4, 0.4)
    np.testing.assert_allclose(mx.image.BrightnessJitterAug(0.4)(src), src * alpha, rtol=1e-6)
    alpha = 1 + draw.uniform(-0.5, 0.5)
    gray = src * GRAY
    want = src * alpha + 3.0 * (1 - alpha) / gray.size * gray.sum()
    np.testing.assert_allclose(mx.image.ContrastJitterAug(0.5)(src), want, rtol=1e-5)
    alpha = 1 + draw.uniform(-0.3, 0.3)
    want = src * alpha + (src * GRAY).sum(axis=2, keepdims=True) * (1 - alpha)
    np.testing.assert_allclose(mx.image.SaturationJitterAug(0.3)(src), want, rtol=1e-5)
    alpha = draw.uniform(-0.2, 0.2)
    u, w = np.cos(alpha * np.pi), np.sin(alpha * np.pi)
    tyiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
    ityiq = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])
    t = ityiq @ np.array([[1, 0, 0], [0, u, -w], [0, w, u]]) @ tyiq
    np.testing.assert_allclose(mx.image.HueJitterAug(0.2)(src), src @ t.T, rtol=1e-4, atol=1e-3)


def test_lighting_gray_flip_cast_and_normalize_augmenters():
    src = _img()
    eigval, eigvec = np.array([55.46, 4.794, 1.148]), np.eye(3)
    np.random.seed(5)
    alpha = np.random.normal(0, 0.1, size=(3,))
    np.random.seed(5)
    np.testing.assert_allclose(mx.image.LightingAug(0.1, eigval, eigvec)(src),
                               src + (eigvec * alpha) @ eigval, rtol=1e-5)
    mat = np.array([[0.21] * 3, [0.72] * 3, [0.07] * 3], np.float32)
    np.testing.assert_allclose(mx.image.RandomGrayAug(1.0)(src), src @ mat, rtol=1e-5)
    np.testing.assert_array_equal(mx.image.RandomGrayAug(0.0)(src), src)
    np.testing.assert_array_equal(mx.image.HorizontalFlipAug(1.0)(src), src[:, ::-1])
    nd_src = mx.nd.array(src)
    flipped = mx.image.HorizontalFlipAug(1.0)(nd_src)
    assert isinstance(flipped, mx.nd.NDArray)
    np.testing.assert_array_equal(flipped.asnumpy(), src[:, ::-1])
    assert mx.image.CastAug()(src.astype(np.uint8)).dtype == np.float32
    np.testing.assert_allclose(mx.image.ColorNormalizeAug(np.float32(3), np.float32(2))(src),
                               (src - 3) / 2)


def test_geometry_augmenters_and_composition():
    src = np.random.RandomState(6).randint(0, 256, (20, 30, 3)).astype(np.uint8)
    assert mx.image.ResizeAug(10)(src).shape == (10, 15, 3)
    assert mx.image.ForceResizeAug((7, 9))(src).shape == (9, 7, 3)
    assert mx.image.RandomCropAug((8, 6))(src).shape == (6, 8, 3)
    np.testing.assert_array_equal(mx.image.CenterCropAug((8, 6))(src), src[7:13, 11:19])
    assert mx.image.RandomSizedCropAug((8, 8), 0.3, (0.8, 1.2))(src).shape == (8, 8, 3)
    seq = mx.image.SequentialAug([mx.image.ResizeAug(10), mx.image.CenterCropAug((10, 10))])
    assert seq(src).shape == (10, 10, 3)
    order = mx.image.RandomOrderAug([mx.image.CastAug(), mx.image.HorizontalFlipAug(1.0)])
    np.testing.assert_array_equal(order(src), src[:, ::-1].astype(np.float32))
    # MXNet's composite dumps(): a list holding the members' JSON strings
    assert seq.dumps() == ["sequentialaug", ['["resizeaug", {"size": 10, "interp": 2}]',
                                             '["centercropaug", {"size": [10, 10], "interp": 2}]']]


def test_create_augmenter_builds_mxnets_list():
    augs = mx.image.CreateAugmenter((3, 16, 16), resize=20, rand_crop=True, rand_resize=True,
                                    rand_mirror=True, mean=True, std=True, brightness=0.1,
                                    contrast=0.1, saturation=0.1, hue=0.1, pca_noise=0.1,
                                    rand_gray=0.2)
    assert [type(a).__name__ for a in augs] == [
        "ResizeAug", "RandomSizedCropAug", "HorizontalFlipAug", "CastAug", "ColorJitterAug",
        "HueJitterAug", "LightingAug", "RandomGrayAug", "ColorNormalizeAug"]
    np.testing.assert_allclose(augs[-1].mean, [123.68, 116.28, 103.53])
    img = mx.image.imdecode(read("jpeg_3"))
    for aug in augs:
        img = aug(img)
    assert img.shape == (16, 16, 3) and img.dtype == np.float32
    plain = mx.image.CreateAugmenter((3, 8, 8))
    assert [type(a).__name__ for a in plain] == ["CenterCropAug", "CastAug"]
    with pytest.raises(HybridNetError, match="rand_resize=True needs rand_crop=True"):
        mx.image.CreateAugmenter((3, 8, 8), rand_resize=True)
    with pytest.raises(HybridNetError, match="mean must have 1 or 3 values"):
        mx.image.CreateAugmenter((3, 8, 8), mean=np.zeros(2))


# ---- kernels against numpy references ------------------------------------------------------
def test_to_chw_normalises_crops_and_mirrors():
    img = np.random.RandomState(7).randint(0, 256, (9, 11, 3)).astype(np.uint8)
    mean = np.random.RandomState(8).rand(3, 4, 5).astype(np.float32) * 100
    mult, bias = np.array([0.5, 2, 1], np.float32), np.array([1, 0, -1], np.float32)
    out = np.empty((3, 4, 5), np.float32)
    kernels.to_chw(img, 2, 3, True, out, mean, mult, bias)
    crop = img[2:6, 3:8][:, ::-1].transpose(2, 0, 1).astype(np.float32)
    np.testing.assert_allclose(out, (crop - mean) * mult[:, None, None] + bias[:, None, None],
                               rtol=1e-6)
    raw = np.empty((3, 4, 5), np.uint8)
    kernels.to_chw(img, 2, 3, False, raw)
    np.testing.assert_array_equal(raw, img[2:6, 3:8].transpose(2, 0, 1))


def test_color_jitter_kernel_matches_numpy():
    img = np.random.RandomState(9).randint(0, 256, (5, 7, 3)).astype(np.uint8)
    b, c, s = 1.2, 0.7, 1.3
    x = img.astype(np.float64) * b
    x = x * c + (1 - c) * (x @ [0.299, 0.587, 0.114]).mean()
    x = x * s + ((x @ [0.299, 0.587, 0.114]) * (1 - s))[..., None]
    want = np.clip(np.rint(x), 0, 255)
    np.testing.assert_array_equal(kernels.color_jitter(img, b, c, s), want)


def test_warp_affine_identity_translation_and_fill():
    img = np.random.RandomState(10).randint(0, 256, (6, 8, 3)).astype(np.uint8)
    np.testing.assert_array_equal(kernels.warp_affine(img, [[1, 0, 0], [0, 1, 0]], 8, 6, 0), img)
    shifted = kernels.warp_affine(img, [[1, 0, 2], [0, 1, 1]], 8, 6, 255)
    np.testing.assert_array_equal(shifted[1:, 2:], img[:-1, :-2])
    assert (shifted[0] == 255).all() and (shifted[:, :2] == 255).all()
    np.testing.assert_array_equal(kernels.pad_constant(img, 2, 7),
                                  np.pad(img, ((2, 2), (2, 2), (0, 0)), constant_values=7))


def test_hls_jitter_kernel_matches_colorsys_in_8_bit_hls():
    import colorsys
    img = np.random.RandomState(12).randint(0, 256, (6, 9, 3)).astype(np.uint8)
    for dh, dl, ds in ((0, 0, 0), (25, -10, 40), (-170, 30, -255)):
        want = np.empty_like(img)
        for idx in np.ndindex(img.shape[:2]):
            h, l_, s = colorsys.rgb_to_hls(*(img[idx] / 255.0))
            h8 = min(max(round(h * 180) + dh, 0), 180)
            l8 = min(max(round(l_ * 255) + dl, 0), 255)
            s8 = min(max(round(s * 255) + ds, 0), 255)
            rgb = colorsys.hls_to_rgb((h8 / 180.0) % 1.0, l8 / 255.0, s8 / 255.0)
            want[idx] = np.clip(np.rint(np.array(rgb) * 255), 0, 255)
        got = kernels.hls_jitter(img, dh, dl, ds)
        assert np.abs(got.astype(int) - want).max() <= 1


# ---- ImageIter -----------------------------------------------------------------------------
ITER_REF = np.load(os.path.join(D, "imageiter.npz"))
with open(os.path.join(D, "imageiter.json")) as _f:
    ITER_META = json.load(_f)


def make_image_iter(cfg, **overrides):
    kwargs = dict(cfg, **overrides)
    if kwargs.pop("aug", None) == "force16":
        kwargs["aug_list"] = [mx.image.ForceResizeAug((16, 16), interp=1), mx.image.CastAug()]
    for key in ("path_imgrec", "path_imgidx", "path_imglist", "path_root"):
        if kwargs.get(key):
            kwargs[key] = os.path.join(D, kwargs[key])
    return mx.image.ImageIter(data_shape=tuple(kwargs.pop("data_shape", (3, 16, 16))), **kwargs)


@pytest.mark.parametrize("name", sorted(ITER_META))
def test_image_iter_yields_mxnets_batches(name):
    it = make_image_iter(ITER_META[name]["config"])
    pads = []
    for epoch in range(3):
        for k, batch in enumerate(it):
            ref = f"{name}/e{epoch}b{k}"
            np.testing.assert_allclose(batch.data[0].asnumpy(), ITER_REF[ref + "/data"],
                                       rtol=1e-6, atol=1e-5, err_msg=ref)
            np.testing.assert_array_equal(batch.label[0].asnumpy(), ITER_REF[ref + "/label"])
            pads.append([epoch, k, batch.pad])
        it.reset()
    assert pads == ITER_META[name]["pads"]


def test_image_iter_shuffle_partition_and_prefetch():
    cfg = dict(ITER_META["idx_pad"]["config"], batch_size=5)
    random.seed(7)
    it = make_image_iter(cfg, shuffle=True)                         # shuffled by Python's random
    first = list(it.seq)
    assert sorted(first) == list(range(10)) and first != list(range(10))
    labels = np.concatenate([b.label[0].asnumpy() for b in it])
    np.testing.assert_array_equal(labels, [k % 4 for k in first])   # label = record index % 4
    it.reset()
    assert it.seq != first                                          # a new order every epoch
    random.seed(7)
    assert make_image_iter(cfg, shuffle=True).seq == first          # random.seed repeats it
    parts = [make_image_iter(cfg, batch_size=1, num_parts=3, part_index=k).seq for k in range(3)]
    assert parts == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]               # MXNet drops the remainder
    batches = list(mx.io.PrefetchingIter(make_image_iter(cfg)))
    assert [b.data[0].shape for b in batches] == [(5, 3, 16, 16)] * 2


def test_image_iter_errors(tmp_path):
    cfg = ITER_META["idx_pad"]["config"]
    with pytest.raises(HybridNetError, match="needs path_imgrec, path_imglist or imglist"):
        mx.image.ImageIter(2, (3, 16, 16))
    with pytest.raises(ValueError, match=r"data_shape must be \(3, height, width\)"):
        make_image_iter(cfg, data_shape=(1, 16, 16))
    with pytest.raises(ValueError, match="last_batch_handle must be one of"):
        make_image_iter(cfg, last_batch_handle="wrap")
    with pytest.raises(HybridNetError, match="shuffle needs random access"):
        make_image_iter(dict(cfg, path_imgidx=None), shuffle=True)
    (tmp_path / "bad.lst").write_text("0\t1\tjpeg_0.jpg\n1\tnot_a_label\tjpeg_1.jpg\n")
    with pytest.raises(HybridNetError, match=r"bad\.lst, line 2: index and labels must be "):
        mx.image.ImageIter(2, (3, 8, 8), path_imglist=str(tmp_path / "bad.lst"), path_root=D)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    it = mx.image.ImageIter(2, (3, 8, 8), imglist=[[0, "broken.jpg"], [1, "also.jpg"]],
                            path_root=str(tmp_path))
    with pytest.raises(ImageDecodeError, match=r"broken image \(file .*broken\.jpg\)"):
        next(it)
