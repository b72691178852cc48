"""The fast decode path (torchvision's libjpeg-turbo/libpng) gives PIL's pixels, or defers to PIL."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.data.decode import _torchvision_decoder, decode_image, header_shape
from engine.data.registry import BadInputError


def _encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _pil(payload: bytes, mode: str) -> np.ndarray:
    arr = np.asarray(Image.open(io.BytesIO(payload)).convert(mode))
    return (arr[:, :, None] if arr.ndim == 2 else arr).transpose(2, 0, 1)


def _texture(shape: tuple, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(shape[0] // 4, shape[1] // 4, *shape[2:]), dtype=np.uint8)
    return np.kron(small, np.ones((4, 4, *([1] * len(shape[2:]))), np.uint8))


CASES = [
    ("JPEG", (48, 40, 3), {"quality": 90}, 3, (3, 48, 40)),
    ("JPEG", (48, 40, 3), {"quality": 75, "progressive": True}, 3, (3, 48, 40)),
    ("JPEG", (32, 32), {"quality": 90}, 1, (1, 32, 32)),
    ("PNG", (32, 20, 3), {}, 3, (3, 32, 20)),
    ("PNG", (32, 20), {}, 1, (1, 32, 20)),
]


def test_the_torchvision_decoder_loads_here():
    assert _torchvision_decoder() is not None  # else every case below only tests PIL


@pytest.mark.parametrize(("fmt", "shape", "kw", "channels", "head"), CASES)
def test_fast_path_pixels_equal_pil(fmt, shape, kw, channels, head):
    payload = _encode(_texture(shape), fmt, **kw)
    assert header_shape(payload) == head
    out = decode_image(payload, "k", channels=channels, size=None, max_pixels=10**6)
    np.testing.assert_array_equal(out, _pil(payload, "RGB" if channels == 3 else "L"))
    resized = decode_image(payload, "k", channels=channels, size=(16, 12), max_pixels=10**6)
    assert resized.shape == (channels, 16, 12)


@pytest.mark.parametrize(
    ("arr", "fmt", "channels", "mode"),
    [
        (_texture((24, 24, 4)), "PNG", 3, "RGB"),  # RGBA: alpha dropped by PIL
        (_texture((24, 24, 3)), "JPEG", 1, "L"),  # colour to grey: PIL's formula
        (_texture((24, 24)), "PNG", 3, "RGB"),  # grey to colour
    ],
)
def test_conversions_go_through_pil(arr, fmt, channels, mode):
    payload = _encode(arr, fmt)
    out = decode_image(payload, "k", channels=channels, size=None, max_pixels=10**6)
    np.testing.assert_array_equal(out, _pil(payload, mode))


def test_header_size_refuses_a_bomb_before_decoding():
    payload = _encode(np.zeros((1100, 1000, 3), np.uint8), "JPEG")
    assert header_shape(payload) == (3, 1100, 1000)
    with pytest.raises(BadInputError, match=r"1000x1100 = 1,100,000 pixels is over"):
        decode_image(payload, "bomb.jpg", channels=3, size=None, max_pixels=1_000_000)


def test_corrupt_and_truncated_payloads_are_worded_by_pil():
    good = _encode(_texture((32, 32, 3)), "JPEG")
    assert header_shape(b"\xff\xd8\xff") is None
    for bad in (good[:200], good[:2] + b"\x00" * 50, b"not an image"):
        with pytest.raises(BadInputError, match=r"k\.jpg"):
            decode_image(bad, "k.jpg", channels=3, size=None, max_pixels=10**6)
