"""hybridnet.tools.im2rec: .lst files equal to MXNet's im2rec (tests/fixtures/im2rec.json, made by
gen_im2rec.py) and packing that ImageRecordIter reads back."""
import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

import hybridnet as mx
from hybridnet.base import HybridNetError
from hybridnet.tools import im2rec

with open(os.path.join(os.path.dirname(__file__), "fixtures", "im2rec.json")) as _f:
    REF = json.load(_f)


@pytest.mark.parametrize("run", sorted(REF["runs"]))
def test_lists_equal_mxnets(tmp_path, run):
    root = tmp_path / "images"
    for rel in REF["tree"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    out = tmp_path / "out"
    out.mkdir()
    assert im2rec.main([str(out / "data"), str(root)] + REF["runs"][run]["flags"]) == 0
    got = {f: (out / f).read_text() for f in sorted(os.listdir(out))}
    assert got == REF["runs"][run]["files"]


def make_tree(tmp_path):
    root = tmp_path / "images"
    rng = np.random.RandomState(0)
    shapes = {"cats/a.jpg": (30, 40), "cats/b.png": (44, 24), "dogs/c.jpg": (36, 36),
              "dogs/d.png": (20, 50)}
    pixels = {}
    for rel, (h, w) in shapes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([x * 5 % 256, y * 5 % 256, rng.randint(0, 256, (h, w))], -1).astype(np.uint8)
        Image.fromarray(img).save(root / rel, quality=95)
        pixels[rel] = img
    return root, pixels


def read_all(prefix):
    r = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    return {key: mx.recordio.unpack(r.read_idx(key)) for key in r.keys}


def test_pack_resize_and_center_crop(tmp_path):
    root, _ = make_tree(tmp_path)
    prefix = str(tmp_path / "data")
    im2rec.main([prefix, str(root), "--list", "--recursive", "--no-shuffle"])
    im2rec.main([prefix, str(root), "--resize", "16", "--encoding", ".png"])
    records = read_all(prefix)
    lst = {int(line.split("\t")[0]): line.split("\t") for line in open(prefix + ".lst")}
    assert sorted(records) == sorted(lst)
    for key, (header, payload) in records.items():
        img = mx.image.imdecode(payload).asnumpy()
        assert header.id == key and header.label == float(lst[key][1])
        assert min(img.shape[:2]) == 16
    im2rec.main([prefix, str(root), "--center-crop", "--resize", "12", "--quality", "90"])
    for _, payload in read_all(prefix).values():
        assert mx.image.imdecode(payload).shape == (12, 12, 3)
    it = mx.io.ImageRecordIter(path_imgrec=prefix + ".rec", path_imgidx=prefix + ".idx",
                               data_shape=(3, 12, 12), batch_size=2, verbose=False)
    labels = np.concatenate([b.label[0].asnumpy() for b in it])
    assert sorted(labels.tolist()) == [0, 0, 1, 1]


def test_png_packing_is_lossless_and_threads_do_not_change_the_file(tmp_path):
    root, pixels = make_tree(tmp_path)
    prefix = str(tmp_path / "data")
    im2rec.main([prefix, str(root), "--list", "--recursive"])
    im2rec.main([prefix, str(root), "--encoding", ".png", "--num-thread", "1"])
    one = open(prefix + ".rec", "rb").read()
    im2rec.main([prefix, str(root), "--encoding", ".png", "--num-thread", "3"])
    assert open(prefix + ".rec", "rb").read() == one
    lst = {int(line.split("\t")[0]): line.strip().split("\t")[-1] for line in open(prefix + ".lst")}
    for key, (_, payload) in read_all(prefix).items():
        rel = lst[key]
        if rel.endswith(".png"):
            np.testing.assert_array_equal(mx.image.imdecode(payload).asnumpy(), pixels[rel])


def test_pass_through_gray_and_multi_labels(tmp_path):
    root, _ = make_tree(tmp_path)
    prefix = str(tmp_path / "multi")
    with open(prefix + ".lst", "w") as f:
        f.write("7\t1.0\t2.5\tcats/a.jpg\n9\t3.0\t4.0\tdogs/d.png\n")
    im2rec.main([prefix, str(root), "--pass-through", "--pack-label"])
    records = read_all(prefix)
    np.testing.assert_array_equal(records[7][0].label, [1.0, 2.5])
    assert records[9][1] == (root / "dogs/d.png").read_bytes()
    im2rec.main([prefix, str(root), "--color", "0"])
    records = read_all(prefix)
    assert records[7][0].label == 1.0          # without --pack-label only the first label
    assert mx.image.imdecode(records[9][1], flag=-1).shape == (20, 50, 1)


def test_unreadable_images_are_left_out_with_a_warning(tmp_path, caplog):
    root, _ = make_tree(tmp_path)
    (root / "dogs" / "broken.jpg").write_bytes(b"not an image")
    prefix = str(tmp_path / "data")
    im2rec.main([prefix, str(root), "--list", "--recursive", "--no-shuffle"])
    with caplog.at_level(logging.WARNING, logger="hybridnet.tools.im2rec"):
        assert im2rec.main([prefix, str(root)]) == 0
    assert len(read_all(prefix)) == 4
    assert any("data.lst, line 3: left out" in r.message and "broken.jpg" in r.message
               for r in caplog.records)


def test_bad_list_lines_and_missing_lists(tmp_path, caplog):
    root, _ = make_tree(tmp_path)
    prefix = str(tmp_path / "bad")
    with open(prefix + ".lst", "w") as f:
        f.write("0\t0\tcats/a.jpg\n1\tcats/b.png\n")
    with pytest.raises(HybridNetError, match=r"bad\.lst, line 2: a \.lst line needs an index"):
        im2rec.main([prefix, str(root)])
    with caplog.at_level(logging.ERROR, logger="hybridnet.tools.im2rec"):
        assert im2rec.main([str(tmp_path / "nothing"), str(root)]) == 1
    assert "no .lst file matches" in caplog.text
