"""Optimizer states of a distributed job: gather from the servers, scatter back, save, load.

Each server holds the states of the keys (and slices of big keys) it owns, exported by
``Updater.state_arrays()`` as numpy arrays plus a JSON layout. Gathering joins the slices of a
big key back into whole arrays (a state array with one element per weight element is cut like
the weight; any other array -- a step counter -- is the same on every server), so a file saved
with S servers loads into a job with any number of servers.

File format (no pickle): a NumPy ``.npz`` with arrays ``a0, a1, ...`` and ``meta``, the UTF-8
JSON ``{"format": "hybridnet-dist-states", "version": 1, "states": [[key, layout], ...],
"counts": [[key, n], ...], "num_update": n, "optimizer": spec-or-null}``, where a layout is
``None``, ``{"a": i}``, ``{"tuple": [...]}`` or ``{"list": [...]}`` (the Updater's layout).
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from ...base import HybridNetError

__all__ = ["gather", "scatter", "save", "load", "FORMAT"]

FORMAT = "hybridnet-dist-states"


def _leaves(layout, out):
    """Array indices of ``layout`` in tree order."""
    if layout is None:
        return out
    if "a" in layout:
        out.append(layout["a"])
    else:
        for sub in layout.get("tuple", layout.get("list", [])):
            _leaves(sub, out)
    return out


def _renumber(layout, mapping):
    if layout is None:
        return None
    if "a" in layout:
        return {"a": mapping[layout["a"]]}
    kind = "tuple" if "tuple" in layout else "list"
    return {kind: [_renumber(sub, mapping) for sub in layout[kind]]}


def gather(keys: dict, per_server: list) -> tuple:
    """Join per-server ``(arrays, meta)`` into whole-key states.

    ``keys`` maps each key to ``(shape, [(server, start, stop), ...])``. Returns
    ``(arrays, meta)`` in the file's form.
    """
    arrays, states, counts, num_update = [], [], {}, 0
    index = []
    for server, (s_arrays, s_meta) in enumerate(per_server):
        index.append({_key(k): lay for k, lay in s_meta.get("states", [])})
        for k, n in s_meta.get("counts", []):
            counts[_key(k)] = max(counts.get(_key(k), 0), int(n))
        num_update = max(num_update, int(s_meta.get("num_update", 0)))
    for key, (shape, slices) in keys.items():
        layouts = [index[s].get(_key(key), "missing") for s, _, _ in slices]
        if all(lay == "missing" for lay in layouts):
            continue              # never updated: no state yet
        if any(lay == "missing" for lay in layouts):
            raise HybridNetError(f"optimizer states of key {key!r} exist on some servers only")
        leaves = [_leaves(lay, []) for lay in layouts]
        if any(len(l) != len(leaves[0]) for l in leaves):
            raise HybridNetError(f"servers disagree on the state layout of key {key!r}")
        size = int(np.prod(shape))
        mapping = {}
        for j, first in enumerate(leaves[0]):
            parts = [per_server[s][0][leaves[i][j]] for i, (s, _, _) in enumerate(slices)]
            sliced = len(slices) > 1 and all(p.size == stop - start for p, (_, start, stop)
                                             in zip(parts, slices))
            if sliced:
                whole = np.concatenate([p.reshape(-1) for p in parts]).reshape(shape)
            elif len(slices) == 1 and parts[0].size == size:
                whole = parts[0].reshape(shape)
            else:
                whole = parts[0]
            mapping[first] = len(arrays)
            arrays.append(np.ascontiguousarray(whole))
        states.append([key, _renumber(layouts[0], mapping)])
    meta = {"format": FORMAT, "version": 1, "states": states,
            "counts": [[k, n] for k, n in counts.items()], "num_update": num_update}
    return arrays, meta


def scatter(keys: dict, arrays: list, meta: dict, num_servers: int) -> list:
    """The inverse of ``gather``: per-server ``(arrays, meta)`` for the current layout."""
    out = [([], {"states": [], "counts": [], "num_update": int(meta.get("num_update", 0))})
           for _ in range(num_servers)]
    counts = {_key(k): n for k, n in meta.get("counts", [])}
    for key, layout in meta.get("states", []):
        key = _key(key)
        if key not in keys:
            raise HybridNetError(f"the states file has key {key!r}, which this job never "
                                 f"initialized (kv.init it before loading states)")
        shape, slices = keys[key]
        size = int(np.prod(shape))
        for server, start, stop in slices:
            s_arrays, s_meta = out[server]
            mapping = {}
            for leaf in _leaves(layout, []):
                if not 0 <= leaf < len(arrays):
                    raise HybridNetError(f"states file: key {key!r} refers to array {leaf}, "
                                         f"the file has {len(arrays)}")
                arr = arrays[leaf]
                if len(slices) > 1 and arr.size == size:
                    arr = arr.reshape(-1)[start:stop]
                mapping[leaf] = len(s_arrays)
                s_arrays.append(np.ascontiguousarray(arr))
            s_meta["states"].append([key, _renumber(layout, mapping)])
            if key in counts:
                s_meta["counts"].append([key, counts[key]])
    return out


def _key(k):
    return k if isinstance(k, str) else int(k)


def save(fname: str, arrays: list, meta: dict) -> None:
    """Write the states file atomically (temp file, then rename)."""
    payload = {f"a{i}": a for i, a in enumerate(arrays)}
    payload["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(fname))
    fd, tmp = tempfile.mkstemp(prefix=".states-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp, fname)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(fname: str) -> tuple:
    """Read a states file written by ``save``; ``(arrays, meta)``."""
    try:
        with np.load(fname, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            arrays = [data[f"a{i}"] for i in range(len(data.files) - 1)]
    except (OSError, ValueError, KeyError) as err:
        raise HybridNetError(f"{fname}: not a distributed optimizer states file "
                             f"({type(err).__name__}: {err}); MXNet's pickled .states files "
                             f"load into a local KVStore, not a dist one") from None
    if meta.get("format") != FORMAT:
        raise HybridNetError(f"{fname}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return arrays, meta
