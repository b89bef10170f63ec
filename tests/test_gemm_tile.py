"""The register-blocked GEMM tile (ops/kernels/gemm_tile.py) against numpy: strided operands,
offsets, store and accumulate, an empty reduction."""
import numba
import numpy as np
import pytest

from hybridnet.ops.kernels.gemm_tile import MR, NR, make_tile

_tile_1 = make_tile(1)
_tile_40 = make_tile(40)


@numba.njit
def _run(sa_i, a, a_off, sa_r, b, b_off, sb_r, c, c_off, ldc, r_len, accumulate):
    if sa_i == 1:
        _tile_1(a, a_off, sa_r, b, b_off, sb_r, c, c_off, ldc, r_len, accumulate)
    else:
        _tile_40(a, a_off, sa_r, b, b_off, sb_r, c, c_off, ldc, r_len, accumulate)


def _expected(sa_i, a, a_off, sa_r, b, b_off, sb_r, c, c_off, ldc, r_len, accumulate):
    out = c.astype(np.float64).copy()
    for i in range(MR):
        for j in range(NR):
            acc = sum(float(a[a_off + i * sa_i + r * sa_r]) * float(b[b_off + r * sb_r + j])
                      for r in range(r_len))
            k = c_off + i * ldc + j
            out[k] = out[k] + acc if accumulate else acc
    return out


@pytest.mark.parametrize("sa_i, sa_r, r_len", [(1, MR, 37), (40, 1, 33), (1, MR + 3, 5),
                                               (40, 2, 1), (1, MR, 0)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_tile_matches_numpy(sa_i, sa_r, r_len, accumulate):
    rng = np.random.RandomState(r_len)
    a_off, b_off, c_off, sb_r, ldc = 3, 5, 7, NR + 9, NR + 4
    a = rng.standard_normal(a_off + MR * sa_i + r_len * sa_r + 1).astype(np.float32)
    b = rng.standard_normal(b_off + max(r_len, 1) * sb_r + NR).astype(np.float32)
    c = rng.standard_normal(c_off + MR * ldc + NR).astype(np.float32)
    want = _expected(sa_i, a, a_off, sa_r, b, b_off, sb_r, c, c_off, ldc, r_len, accumulate)
    _run(sa_i, a, a_off, sa_r, b, b_off, sb_r, c, c_off, ldc, r_len, accumulate)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    # nothing outside the tile's rows and columns is touched
    untouched = np.ones(c.size, bool)
    for i in range(MR):
        untouched[c_off + i * ldc:c_off + i * ldc + NR] = False
    np.testing.assert_array_equal(c[untouched], want[untouched].astype(np.float32))
