"""NH payload hash of the wire's 'full' authentication (hybridnet/kvstore/dist/nh.py): the
kernel against the formula in plain numpy, the digest's framing, and that any changed, moved,
added or removed byte changes the digest."""
import numpy as np
import pytest

from hybridnet.kvstore.dist import nh

KEY = nh.derive_key(b"\x07" * 32)


def _reference(data: bytes) -> bytes:
    """The digest written from the module docstring's formula with numpy integers."""
    padded = data + bytes(-len(data) % nh.BLOCK_BYTES)
    words = np.frombuffer(padded, "<u4").astype(np.uint64).reshape(-1, 256)
    key = KEY.astype(np.uint64)
    out = []
    for block in words:
        for shift in (0, 4):
            a = (block[:128] + key[shift:shift + 128]) % 2**32
            b = (block[128:] + key[shift + 128:shift + 256]) % 2**32
            out.append(int(sum(int(x) * int(y) for x, y in zip(a, b)) % 2**64))
    return len(data).to_bytes(8, "little") + np.array(out, "<u8").tobytes()


@pytest.mark.parametrize("size", [0, 1, 5, 1023, 1024, 1025, 4096 + 17])
def test_digest_matches_the_formula(size):
    data = np.random.RandomState(size).bytes(size)
    assert nh.nh_digest([data], KEY) == _reference(data)


def test_key_depends_on_the_secret_and_is_deterministic():
    assert nh.derive_key(b"\x07" * 32).tobytes() == KEY.tobytes()
    assert nh.derive_key(b"\x08" * 32).tobytes() != KEY.tobytes()
    assert KEY.size == 260


def test_unaligned_and_readonly_buffers_hash_like_aligned_ones():
    data = np.random.RandomState(1).bytes(3 * 1024 + 9)
    backing = bytearray(len(data) + 1)
    backing[1:] = data
    unaligned = memoryview(backing)[1:]
    assert nh.nh_digest([unaligned], KEY) == nh.nh_digest([data], KEY)


def test_every_change_of_the_data_changes_the_digest():
    rng = np.random.RandomState(2)
    frames = [rng.bytes(2048 + 100), rng.bytes(700)]
    base = nh.nh_digest(frames, KEY)
    for pos in (0, 1023, 1024, 2147, 2147 - 3):
        changed = bytearray(frames[0])
        changed[pos] ^= 0x01
        assert nh.nh_digest([bytes(changed), frames[1]], KEY) != base, pos
    moved = [frames[0][:-1], frames[0][-1:] + frames[1]]        # a byte moves to frame 1
    assert nh.nh_digest(moved, KEY) != base
    assert nh.nh_digest([frames[0] + b"\x00", frames[1]], KEY) != base  # zero padding is data
    assert nh.nh_digest(frames[:1], KEY) != base
