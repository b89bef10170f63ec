"""im2rec: make image lists (.lst) from a folder tree and pack images into RecordIO (.rec/.idx).

Same command line as MXNet's ``tools/im2rec.py``::

    python -m hybridnet.tools.im2rec --list --recursive --train-ratio 0.9 data/caltech data/images
    python -m hybridnet.tools.im2rec --resize 256 --num-thread 4 data/caltech data/images

Step 1 (``--list``) walks ``root`` and writes ``prefix.lst`` (or ``prefix_train.lst`` /
``prefix_val.lst`` / ``prefix_test.lst`` with ratios, ``prefix_<k>*.lst`` with ``--chunks``):
lines ``index<TAB>label<TAB>relative/path``. With ``--recursive`` each folder gets its own label
(in sorted walk order); otherwise only ``root``'s own images are listed, with label 0. The list is
shuffled with a fixed seed unless ``--no-shuffle``.

Step 2 (without ``--list``) packs every ``prefix*.lst`` into ``.rec`` + ``.idx``: each image is
decoded, optionally centre-cropped to a square and resized (shorter side, bilinear), re-encoded
(``--encoding``, ``--quality``) -- or stored byte for byte with ``--pass-through`` -- and written
under its list index. Records are written in list order whatever ``--num-thread`` is. An image
that cannot be read is left out with a warning naming the file and its list line.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from ..base import HybridNetError
from ..image import resize as _rs
from ..image.codec import decode, encode
from ..recordio import IRHeader, MXIndexedRecordIO, pack

__all__ = ["list_image", "write_list", "read_list", "make_list", "pack_list", "main"]

_LOG = logging.getLogger("hybridnet.tools.im2rec")


def list_image(root: str, recursive: bool, exts):
    """Yield ``(index, relative path, label)`` for the images under ``root``."""
    exts = {e.lower() for e in exts}
    i = 0
    if recursive:
        labels = {}
        for path, dirs, files in os.walk(root, followlinks=True):
            dirs.sort()
            for fname in sorted(files):
                fpath = os.path.join(path, fname)
                if os.path.isfile(fpath) and os.path.splitext(fname)[1].lower() in exts:
                    if path not in labels:
                        labels[path] = len(labels)
                    yield i, os.path.relpath(fpath, root), labels[path]
                    i += 1
        for path, label in sorted(labels.items(), key=lambda kv: kv[1]):
            _LOG.info("%s %d", os.path.relpath(path, root), label)
    else:
        for fname in sorted(os.listdir(root)):
            fpath = os.path.join(root, fname)
            if os.path.isfile(fpath) and os.path.splitext(fname)[1].lower() in exts:
                yield i, os.path.relpath(fpath, root), 0
                i += 1


def write_list(path_out: str, image_list) -> None:
    """Write ``[(index, path, label, ...)]`` as a .lst file (labels as ``%f``, like MXNet)."""
    with open(path_out, "w") as f:
        for item in image_list:
            labels = "".join(f"{float(v):f}\t" for v in item[2:])
            f.write(f"{int(item[0])}\t{labels}{item[1]}\n")


def read_list(path_in: str):
    """Yield ``[index, path, label, ...]`` per line of a .lst file."""
    with open(path_in) as f:
        for lineno, line in enumerate(f, 1):
            fields = [x.strip() for x in line.strip().split("\t")]
            if fields == [""]:
                continue
            if len(fields) < 3:
                raise HybridNetError(f"{path_in}, line {lineno}: a .lst line needs an index, at "
                                     f"least one label and a path separated by tabs, got "
                                     f"{line.strip()!r}")
            try:
                yield [int(fields[0]), fields[-1]] + [float(v) for v in fields[1:-1]], lineno
            except ValueError as err:
                raise HybridNetError(f"{path_in}, line {lineno}: {err}") from None


def make_list(args) -> list:
    """Write the .lst file(s) for ``args`` (see the module docstring); return their paths."""
    image_list = list(list_image(args.root, args.recursive, args.exts))
    if args.shuffle:
        random.seed(100)
        random.shuffle(image_list)
    n = len(image_list)
    chunk_size = (n + args.chunks - 1) // args.chunks if n else 0
    written = []
    for k in range(args.chunks):
        chunk = image_list[k * chunk_size:(k + 1) * chunk_size]
        suffix = f"_{k}" if args.chunks > 1 else ""
        sep = int(chunk_size * args.train_ratio)
        sep_test = int(chunk_size * args.test_ratio)
        if args.train_ratio == 1.0:
            outputs = [(f"{args.prefix}{suffix}.lst", chunk)]
        else:
            outputs = []
            if args.test_ratio:
                outputs.append((f"{args.prefix}{suffix}_test.lst", chunk[:sep_test]))
            if args.train_ratio + args.test_ratio < 1.0:
                outputs.append((f"{args.prefix}{suffix}_val.lst", chunk[sep_test + sep:]))
            outputs.append((f"{args.prefix}{suffix}_train.lst", chunk[sep_test:sep_test + sep]))
        for path, items in outputs:
            write_list(path, items)
            written.append(path)
    return written


def _encode_item(args, item, lst_path: str, lineno: int):
    """The packed record for one list item, or None (with a warning) if it cannot be read."""
    fullpath = os.path.join(args.root, item[1])
    if len(item) > 3 and args.pack_label:
        header = IRHeader(0, item[2:], item[0], 0)
    else:
        header = IRHeader(0, item[2], item[0], 0)
    try:
        with open(fullpath, "rb") as f:
            raw = f.read()
        if args.pass_through:
            return pack(header, raw)
        img = decode(raw, args.color, True, where=f"file {fullpath!r}")
    except (OSError, HybridNetError) as err:
        _LOG.warning("%s, line %d: left out %s: %s", lst_path, lineno, fullpath, err)
        return None
    if args.center_crop:
        h, w = img.shape[:2]
        if h > w:
            margin = (h - w) // 2
            img = img[margin:margin + w]
        else:
            margin = (w - h) // 2
            img = img[:, margin:margin + h]
    if args.resize:
        h, w = img.shape[:2]
        if h > w:
            new_w, new_h = args.resize, h * args.resize // w
        else:
            new_w, new_h = w * args.resize // h, args.resize
        img = _rs.resize(img, new_w, new_h, _rs.INTER_LINEAR)
    return pack(header, encode(img, args.encoding, args.quality))


def pack_list(args, lst_path: str) -> tuple:
    """Pack the images of one .lst file into .rec/.idx next to it; return (written, left out)."""
    stem = os.path.splitext(lst_path)[0]
    items = list(read_list(lst_path))
    record = MXIndexedRecordIO(stem + ".idx", stem + ".rec", "w")
    written = skipped = 0
    start = time.time()
    try:
        with ThreadPoolExecutor(max(1, args.num_thread)) as pool:
            # results come back in list order, so the file does not depend on the thread count
            results = pool.map(lambda entry: _encode_item(args, entry[0], lst_path, entry[1]),
                               items)
            for (item, _), packed in zip(items, results):
                if packed is None:
                    skipped += 1
                    continue
                record.write_idx(item[0], packed)
                written += 1
                if written % 1000 == 0:
                    _LOG.info("time: %.2f count: %d", time.time() - start, written)
    finally:
        record.close()
    return written, skipped


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Create an image list or make a record database by reading from an image "
                    "list")
    parser.add_argument("prefix", help="prefix of input/output lst and rec files.")
    parser.add_argument("root", help="path to folder containing images.")
    cgroup = parser.add_argument_group("Options for creating image lists")
    cgroup.add_argument("--list", action="store_true",
                        help="create image list(s) by traversing root and write <prefix>.lst; "
                             "otherwise read <prefix>.lst and create <prefix>.rec")
    cgroup.add_argument("--exts", nargs="+", default=[".jpeg", ".jpg", ".png"],
                        help="list of acceptable image extensions.")
    cgroup.add_argument("--chunks", type=int, default=1, help="number of chunks.")
    cgroup.add_argument("--train-ratio", type=float, default=1.0,
                        help="Ratio of images to use for training.")
    cgroup.add_argument("--test-ratio", type=float, default=0,
                        help="Ratio of images to use for testing.")
    cgroup.add_argument("--recursive", action="store_true",
                        help="walk subfolders and give each folder its own label; otherwise "
                             "only images in root, with label 0")
    cgroup.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                        help="do not randomize the image order in <prefix>.lst")
    rgroup = parser.add_argument_group("Options for creating database")
    rgroup.add_argument("--pass-through", action="store_true",
                        help="whether to skip transformation and save image as is")
    rgroup.add_argument("--resize", type=int, default=0,
                        help="resize the shorter edge of image to the newsize, original images "
                             "will be packed by default.")
    rgroup.add_argument("--center-crop", action="store_true",
                        help="specify whether to crop the center image to make it rectangular.")
    rgroup.add_argument("--quality", type=int, default=95,
                        help="JPEG quality for encoding, 1-100; or PNG compression for "
                             "encoding, 1-9")
    rgroup.add_argument("--num-thread", type=int, default=1,
                        help="number of threads to use for encoding")
    rgroup.add_argument("--color", type=int, default=1, choices=[-1, 0, 1],
                        help="1: colour (transparency dropped), 0: grayscale, -1: as stored "
                             "including alpha")
    rgroup.add_argument("--encoding", type=str, default=".jpg", choices=[".jpg", ".png"],
                        help="specify the encoding of the images.")
    rgroup.add_argument("--pack-label", action="store_true",
                        help="Whether to also pack multi dimensional label in the record file")
    args = parser.parse_args(argv)
    args.prefix = os.path.abspath(args.prefix)
    args.root = os.path.abspath(args.root)
    return args


def main(argv=None) -> int:
    """Run im2rec with command-line arguments ``argv`` (default ``sys.argv[1:]``)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parse_args(argv)
    if args.list:
        make_list(args)
        return 0
    if os.path.isdir(args.prefix):
        working_dir, prefix = args.prefix, ""
    else:
        working_dir, prefix = os.path.dirname(args.prefix), args.prefix
    lists = sorted(os.path.join(working_dir, f) for f in os.listdir(working_dir)
                   if os.path.isfile(os.path.join(working_dir, f))
                   and os.path.join(working_dir, f).startswith(prefix) and f.endswith(".lst"))
    if not lists:
        _LOG.error("no .lst file matches %s; run with --list first", args.prefix)
        return 1
    for lst in lists:
        _LOG.info("Creating .rec file from %s in %s", lst, working_dir)
        written, skipped = pack_list(args, lst)
        _LOG.info("%s: %d images packed%s", lst, written,
                  f", {skipped} left out (see the warnings above)" if skipped else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
