"""Images per second of ImageRecordIter: hybridnet against MXNet 1.9.1's C++ iterator, same run.

A temporary .rec of synthetic JPEGs (ImageNet-like: about 500x375, quality 90) is made first;
then each framework, in its own subprocess, reads it with the usual training pipeline:
resize the shorter side to 256, random 224x224 crop, random mirror, mean/std normalisation,
float32 NCHW batches of 32, ``preprocess_threads=2``. The frameworks take turns for
``--rounds`` rounds of ``--epochs`` epochs each and the best epoch of each counts (the first also
warms up numba's cache), so a busy machine hurts both alike; CPU time per image is printed too
(less sensitive to other load). MXNet runs in its own venv
(HYBRIDNET_MXNET_PYTHON, default /tmp/mxref/bin/python). Target: hybridnet >= 0.7x MXNet.

    python benchmark/image_pipeline.py [--images 512] [--threads 2] [--epochs 2] [--rounds 3]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

_ITER_ARGS = dict(data_shape=(3, 224, 224), batch_size=32, resize=256, rand_crop=True,
                  rand_mirror=True, mean_r=123.68, mean_g=116.28, mean_b=103.53, std_r=58.395,
                  std_g=57.12, std_b=57.375, shuffle=False)

_MEASURE = """
import json, sys, time
args = json.loads(sys.argv[1])
epochs = args.pop("epochs")
it = mx.io.ImageRecordIter(**args)
best, best_cpu = float("inf"), float("inf")
count = 0
for _ in range(epochs):
    t, c = time.perf_counter(), time.process_time()
    count = 0
    for batch in it:
        batch.data[0].wait_to_read()
        count += batch.data[0].shape[0] - batch.pad
    best = min(best, time.perf_counter() - t)
    best_cpu = min(best_cpu, time.process_time() - c)
    it.reset()
print(json.dumps({"images_per_s": count / best, "seconds": best, "images": count,
                  "cpu_ms_per_image": best_cpu / count * 1e3}))
"""


def make_record_file(path: str, n: int, seed: int = 0) -> None:
    """``n`` synthetic photo-like JPEGs (gradients, blobs and noise) packed into ``path``."""
    from PIL import Image

    from hybridnet import recordio
    rng = np.random.RandomState(seed)
    writer = recordio.MXIndexedRecordIO(path[:-4] + ".idx", path, "w")
    y, x = np.mgrid[0:375, 0:500].astype(np.float32)
    for i in range(n):
        h, w = (375, 500) if i % 3 else (500, 375)
        yy, xx = (y, x) if i % 3 else (x.T[:h, :w], y.T[:h, :w])
        base = np.stack([np.sin(xx / (20 + i % 17)) * 80 + 128,
                         np.cos(yy / (15 + i % 11)) * 80 + 128, (xx + yy) % 256], -1)
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        header = recordio.IRHeader(0, float(i % 10), i, 0)
        writer.write_idx(i, recordio.pack(header, buf.getvalue()))
    writer.close()


def run(framework: str, python: str, rec: str, threads: int, epochs: int) -> dict | None:
    header = {"hybridnet": f"import sys; sys.path.insert(0, {os.path.dirname(HERE)!r})\n"
                           "import hybridnet as mx\n",
              "mxnet": "import mxnet as mx\n"}[framework]
    args = dict(_ITER_ARGS, path_imgrec=rec, path_imgidx=rec[:-4] + ".idx",
                preprocess_threads=threads, epochs=epochs, verbose=False)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    try:
        out = subprocess.run([python, "-c", header + textwrap.dedent(_MEASURE), json.dumps(args)],
                             capture_output=True, text=True, timeout=1800, env=env)
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"  {framework}: not measured ({err})", file=sys.stderr)
        return None
    if out.returncode != 0:
        print(f"  {framework}: not measured:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    mxnet_python = os.environ.get("HYBRIDNET_MXNET_PYTHON", "/tmp/mxref/bin/python")
    with tempfile.TemporaryDirectory() as tmp:
        rec = os.path.join(tmp, "bench.rec")
        make_record_file(rec, opts.images)
        size_mb = os.path.getsize(rec) / 2 ** 20
        print(f"{opts.images} JPEGs ({size_mb:.1f} MB), 224x224 crops after resize 256 + mirror, "
              f"batch 32, preprocess_threads={opts.threads}")
        pythons = {"hybridnet": sys.executable}
        if os.path.exists(mxnet_python):
            pythons["mxnet"] = mxnet_python
        results = {}
        for _ in range(opts.rounds):
            for name, python in pythons.items():
                r = run(name, python, rec, opts.threads, opts.epochs)
                if r and (name not in results or r["images_per_s"] > results[name]["images_per_s"]):
                    results[name] = r
    for name, r in results.items():
        if r:
            print(f"{name:<10} {r['images_per_s']:8.1f} images/s  ({r['images']} images in "
                  f"{r['seconds']:.2f} s; {r['cpu_ms_per_image']:.2f} ms of CPU per image)")
    hn, ref = results.get("hybridnet"), results.get("mxnet")
    if hn and ref:
        ratio = hn["images_per_s"] / ref["images_per_s"]
        print(f"hybridnet / MXNet: {ratio:.2f}x  (target >= 0.7x)")


if __name__ == "__main__":
    main()
