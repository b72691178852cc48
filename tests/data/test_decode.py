"""Decoding to uint8 (C, H, W): every accepted mode against a reference computed here in NumPy.

Each reference takes the samples as stored (written here, or read by PIL as the reference
decoder) and converts them with the documented formula in NumPy, never with the code
under test. PNG and JPEG cases run twice: through torchvision's fast decoder and through
PIL alone (the ``decoder`` fixture), which must give the same pixels.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageOps, PngImagePlugin

from engine.data import decode
from engine.data.decode import CONVERSIONS, channels_of, decode_image, read_header
from engine.data.errors import BadInputError

MAX = 10**6  # max_pixels of every call here


def _encode(arr: np.ndarray | Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    (arr if isinstance(arr, Image.Image) else Image.fromarray(arr)).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _pil(payload: bytes, mode: str) -> np.ndarray:
    arr = np.asarray(Image.open(io.BytesIO(payload)).convert(mode))
    return (arr[:, :, None] if arr.ndim == 2 else arr).transpose(2, 0, 1)


def _texture(shape: tuple, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(shape[0] // 4, shape[1] // 4, *shape[2:]), dtype=np.uint8)
    return np.kron(small, np.ones((4, 4, *([1] * len(shape[2:]))), np.uint8))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(
    samples: np.ndarray, colour_type: int, depth: int, *chunks: bytes, after: bytes = b""
) -> bytes:
    """A PNG written by hand (PIL cannot write 16-bit colour): samples (H, W[, C]) as stored.

    ``chunks`` go before the pixels (IDAT), ``after`` between them and IEND.
    """
    h, w = samples.shape[:2]
    flat = samples.reshape(h, -1)
    if depth == 16:
        rows = flat.astype(">u2").view(np.uint8).reshape(h, -1)
    elif depth == 8:
        rows = flat.astype(np.uint8)
    else:  # 1, 2, 4 bits, most significant first, each row padded to a byte
        bits = (flat[:, :, None].astype(np.uint8) >> np.arange(depth - 1, -1, -1)) & 1
        rows = np.packbits(bits.reshape(h, -1), axis=1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + b"".join(chunks)
            + _chunk(b"IDAT", zlib.compress(raw)) + after + _chunk(b"IEND", b""))  # fmt: skip


def _tiff(samples: np.ndarray, bits: int, photometric: int) -> bytes:
    """An uncompressed little-endian TIFF written by hand (12 bits, or 16-bit RGB)."""
    h, w = samples.shape[:2]
    spp = 1 if samples.ndim == 2 else samples.shape[2]
    if bits == 12:  # two samples in three bytes, most significant bit first
        v = samples.reshape(-1).astype(np.uint32)
        data = np.stack([v[::2] >> 4, ((v[::2] & 15) << 4) | (v[1::2] >> 8), v[1::2] & 255], 1)
        data = data.astype(np.uint8).tobytes()
    else:
        data = samples.astype(f"<u{bits // 8}").tobytes()
    tags = [(256, [w]), (257, [h]), (258, [bits] * spp), (259, [1]), (262, [photometric]),
            (273, [0]), (277, [spp]), (278, [h]), (279, [len(data)])]  # fmt: skip
    ifd_end = 8 + 2 + 12 * len(tags) + 4
    extra, entries, offset = b"", b"", 0
    for tag, values in tags:
        typ, fmt = (4, "<I") if tag in (273, 279) else (3, "<H")
        packed = b"".join(struct.pack(fmt, v) for v in values)
        if len(packed) > 4:
            entries += struct.pack("<HHII", tag, typ, len(values), ifd_end + len(extra))
            extra += packed
        else:
            entries += struct.pack("<HHI", tag, typ, len(values)) + packed.ljust(4, b"\x00")
        if tag == 273:
            offset = len(entries) - 4
    data_at = ifd_end + len(extra)
    entries = entries[:offset] + struct.pack("<I", data_at) + entries[offset + 4 :]
    head = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    return head + entries + b"\x00" * 4 + extra + data


@pytest.fixture(params=["torchvision", "pil"])
def decoder(request, monkeypatch) -> str:
    """Run a case through torchvision's decoder, then again with PIL alone."""
    if request.param == "pil":
        monkeypatch.setattr(decode, "_torchvision_decoder", lambda: None)
    return request.param


def _decode(payload: object, channels: int, **kw) -> np.ndarray:
    return decode_image(payload, "cls/x.png", channels=channels, size=kw.pop("size", None),
                        max_pixels=MAX, **kw)  # fmt: skip


def _scaled(v: np.ndarray, top: int) -> np.ndarray:
    """round(v * 255 / top), half up, in float64 (exact for these integers)."""
    return np.floor(v.astype(np.float64) * 255 / top + 0.5).astype(np.uint8)


def _on_white(v: np.ndarray, a: np.ndarray, top: int) -> np.ndarray:
    """Alpha ``a`` over white, then to 8 bits: round((a v + (top - a) top) 255 / top**2)."""
    v, a = v.astype(np.float64), a.astype(np.float64)
    return np.round((a * v + (top - a) * top) * 255 / top**2).astype(np.uint8)


SIXTEEN = np.array([0, 1, 128, 129, 200, 383, 384, 32767, 32768, 65279, 65407, 65408, 65535])


def _sixteen(shape: tuple, seed: int = 1) -> np.ndarray:
    """uint16 samples: the boundary values above, then random ones."""
    rng = np.random.default_rng(seed)
    flat = rng.integers(0, 65536, size=int(np.prod(shape)), dtype=np.uint16)
    flat[: len(SIXTEEN)] = SIXTEEN
    return flat.reshape(shape)


# ---------------------------------------------------------------- the fast path stays exact

CASES = [
    ("JPEG", (48, 40, 3), {"quality": 90}, 3, (3, 48, 40)),
    ("JPEG", (48, 40, 3), {"quality": 75, "progressive": True}, 3, (3, 48, 40)),
    ("JPEG", (32, 32), {"quality": 90}, 1, (1, 32, 32)),
    ("PNG", (32, 20, 3), {}, 3, (3, 32, 20)),
    ("PNG", (32, 20), {}, 1, (1, 32, 20)),
]


def test_the_torchvision_decoder_loads_here():
    assert decode._torchvision_decoder() is not None  # else every case below only tests PIL


@pytest.mark.parametrize(("fmt", "shape", "kw", "channels", "head"), CASES)
def test_fast_path_pixels_equal_pil(fmt, shape, kw, channels, head, decoder):
    payload = _encode(_texture(shape), fmt, **kw)
    got = read_header(payload)
    assert got.fast and (got.channels, got.height, got.width) == head and got.orientation == 1
    out = _decode(payload, channels)
    np.testing.assert_array_equal(out, _pil(payload, "RGB" if channels == 3 else "L"))
    resized = _decode(payload, channels, size=(16, 12))
    assert resized.shape == (channels, 16, 12)


# ---------------------------------------------------------------- deep samples: scaled, not clipped


def test_a_16_bit_grey_png_is_scaled_not_saturated(decoder):
    # The report: a grey image with mean 133, written as 16 bits (v * 257), came out at 254.7.
    a = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    payload = _encode((a.astype(np.uint16) * 257), "PNG")
    assert Image.open(io.BytesIO(payload)).mode == "I;16"
    out = _decode(payload, 1)
    np.testing.assert_array_equal(out[0], a)  # round(257 a * 255 / 65535) = a
    v = _sixteen((16, 24))
    np.testing.assert_array_equal(_decode(_encode(v, "PNG"), 1)[0], _scaled(v, 65535))


@pytest.mark.parametrize("byte_order", ["<u2", ">u2"])
def test_16_bit_grey_tiff_is_scaled(byte_order):
    v = _sixteen((10, 14)).astype(byte_order)
    payload = _encode(v, "TIFF")
    assert Image.open(io.BytesIO(payload)).mode == ("I;16" if byte_order[0] == "<" else "I;16B")
    np.testing.assert_array_equal(_decode(payload, 1)[0], _scaled(v, 65535))


def test_a_12_bit_tiff_is_scaled_by_its_stated_depth():
    v = np.random.default_rng(2).integers(0, 4096, (6, 8), dtype=np.uint16)
    v[0, :4] = [0, 8, 2048, 4095]
    payload = _tiff(v, 12, photometric=1)
    assert Image.open(io.BytesIO(payload)).mode == "I;16"  # PIL: 0..4095 in a 16-bit mode
    np.testing.assert_array_equal(_decode(payload, 1)[0], _scaled(v, 4095))


@pytest.mark.parametrize("maxval", [1000, 4095, 65535])
def test_a_deep_pgm_is_scaled_by_its_maxval(maxval):
    v = np.random.default_rng(maxval).integers(0, maxval + 1, (5, 7))
    v[0, :3] = [0, maxval // 2, maxval]
    payload = f"P5\n# made by hand\n7 5\n{maxval}\n".encode() + v.astype(">u2").tobytes()
    assert Image.open(io.BytesIO(payload)).mode == "I"
    np.testing.assert_array_equal(_decode(payload, 1)[0], _scaled(v, maxval))


@pytest.mark.parametrize(("colour_type", "channels"), [(2, 3), (6, 4), (4, 2)])
def test_16_bit_colour_pngs_are_exact_not_high_bytes(colour_type, channels):
    v = _sixteen((12, 10, channels), seed=colour_type)
    payload = _png(v, colour_type, 16)
    colour, alpha = (v, None) if channels in (1, 3) else (v[..., :-1], v[..., -1:])
    want = _scaled(colour, 65535) if alpha is None else _on_white(colour, alpha, 65535)
    if channels == 2:
        want = np.repeat(want, 3, axis=2)  # grey + alpha, asked for RGB
    assert (_scaled(colour, 65535) != (colour >> 8)).any()  # PIL's high byte would be wrong
    np.testing.assert_array_equal(_decode(payload, 3), want.transpose(2, 0, 1))


def test_16_bit_colour_png_without_torchvision_is_refused(monkeypatch):
    monkeypatch.setattr(decode, "_torchvision_decoder", lambda: None)
    payload = _png(_sixteen((4, 4, 3)), 2, 16)
    with pytest.raises(BadInputError, match=r"^cls/x\.png: 16-bit colour PNG \(RGB;16\).*8 bits"):
        _decode(payload, 3)


def test_16_bit_colour_tiff_is_refused():
    payload = _tiff(_sixteen((4, 6, 3)), 16, photometric=2)
    with pytest.raises(BadInputError, match=r"^cls/x\.png: 16-bit colour TIFF \(RGB\): .*PNG"):
        _decode(payload, 3)


@pytest.mark.parametrize(
    ("arr", "words"),
    [
        (
            np.arange(12, dtype=np.int32).reshape(3, 4) * 1000,
            r"signed or 32-bit integer image \(mode I\)",
        ),
        (np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), r"32-bit float image \(mode F\)"),
    ],
)
def test_a_value_range_the_file_does_not_state_is_refused(arr, words):
    payload = _encode(arr, "TIFF")
    with pytest.raises(BadInputError, match=rf"^cls/x\.png: {words}: its value range is unknown; "
                                            "convert it to 8 or 16 bits"):  # fmt: skip
        _decode(payload, 1)


def test_unsupported_modes_are_refused_by_name():
    payload = _encode(Image.new("LAB", (4, 3), (50, 10, 20)), "TIFF")
    with pytest.raises(BadInputError, match=r"^cls/x\.png: image mode LAB is not supported"):
        _decode(payload, 3)


# ---------------------------------------------------------------- transparency: on white


@pytest.mark.parametrize(("mode", "fmt"), [("RGBA", "PNG"), ("LA", "PNG"), ("RGBA", "WEBP")])
def test_alpha_is_composited_on_white(mode, fmt, decoder):
    c = len(mode)
    arr = _texture((16, 12, c), seed=3)
    arr[0, 0, -1], arr[0, 1, -1], arr[0, 2, -1] = 0, 255, 128
    payload = _encode(
        Image.fromarray(arr, mode), fmt, **({"lossless": True} if fmt == "WEBP" else {})
    )
    stored = np.asarray(Image.open(io.BytesIO(payload)))  # PIL as the reference decoder
    want = _on_white(stored[..., :-1], stored[..., -1:], 255)
    out = _decode(payload, c - 1)
    np.testing.assert_array_equal(out, want.transpose(2, 0, 1))
    assert (out[:, 0, 0] == 255).all()  # alpha 0: white, whatever the colour under it


def _palette_image(seed: int = 4) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 6, (10, 14), dtype=np.uint8), "P")
    img.putpalette(rng.integers(0, 256, 6 * 3, dtype=np.uint8).tolist())
    return img


def _palette_reference(payload: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(RGB, alpha) of a palette file: its indices through its palette and transparency."""
    img = Image.open(io.BytesIO(payload))
    assert img.mode == "P"
    index = np.asarray(img)
    palette = np.asarray(img.getpalette(), np.uint8).reshape(-1, 3)
    alpha = np.full(len(palette), 255, np.uint8)
    t = img.info.get("transparency")
    if isinstance(t, int):
        alpha[t] = 0
    elif t is not None:
        alpha[: len(t)] = np.frombuffer(t, np.uint8)
    return palette[index], alpha[index][..., None]


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [
        ("PNG", {}),
        ("GIF", {}),
        ("PNG", {"transparency": bytes([255, 0, 128, 30])}),
        ("PNG", {"transparency": 2}),
        ("GIF", {"transparency": 3}),
    ],
)
def test_palettes_are_expanded_and_their_transparency_composited(fmt, kw, decoder):
    payload = _encode(_palette_image(), fmt, **kw)
    rgb, alpha = _palette_reference(payload)
    want = _on_white(rgb, alpha, 255) if kw else rgb
    np.testing.assert_array_equal(_decode(payload, 3), want.transpose(2, 0, 1))


def test_a_png_transparent_colour_is_white(decoder):
    v = np.random.default_rng(5).integers(0, 3, (6, 8, 3), dtype=np.uint8) * 100
    key = (100, 0, 200)
    v[0, 0] = key
    payload = _png(v, 2, 8, _chunk(b"tRNS", struct.pack(">HHH", *key)))
    want = np.where(np.all(v == key, axis=2, keepdims=True), 255, v).astype(np.uint8)
    np.testing.assert_array_equal(_decode(payload, 3), want.transpose(2, 0, 1))


def test_a_2_bit_grey_png_transparent_level_is_white(decoder):
    # PIL compares the tRNS level (0..3) with its stretched values (0, 85, 170, 255): it misses
    v = np.array([[0, 1, 2, 3, 2, 1, 0, 3]], np.uint8)
    payload = _png(v, 0, 2, _chunk(b"tRNS", struct.pack(">H", 2)))
    want = np.where(v == 2, 255, v * 85).astype(np.uint8)
    np.testing.assert_array_equal(_decode(payload, 1)[0], want)


def test_a_16_bit_grey_png_transparent_level_is_white(decoder):
    v = _sixteen((5, 6))
    payload = _png(v, 0, 16, _chunk(b"tRNS", struct.pack(">H", int(v[0, 3]))))
    want = np.where(v == v[0, 3], 255, _scaled(v, 65535))
    np.testing.assert_array_equal(_decode(payload, 1)[0], want)


# ---------------------------------------------------------------- CMYK, bilevel, channels


def _cmyk_reference(payload: bytes) -> np.ndarray:
    """PIL's CMYK to RGB, written out: round((255 - C) (255 - K) / 255) per channel."""
    img = Image.open(io.BytesIO(payload))
    assert img.mode == "CMYK"
    cmyk = np.asarray(img).astype(np.float64)
    return np.round((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) / 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_is_converted_to_rgb(fmt):
    grid = np.arange(0, 256, 17, dtype=np.uint8)
    c, k = np.meshgrid(grid, grid)
    cmyk = np.stack([c, 255 - c, c // 2, k], axis=2)  # every (C, K) pair of the grid
    payload = _encode(
        Image.fromarray(cmyk, "CMYK"), fmt, **({"quality": 95} if fmt == "JPEG" else {})
    )
    np.testing.assert_array_equal(_decode(payload, 3), _cmyk_reference(payload).transpose(2, 0, 1))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "BMP"])
def test_bilevel_is_0_or_255(fmt):
    bits = np.random.default_rng(6).integers(0, 2, (9, 16)).astype(bool)
    payload = _encode(bits, fmt)
    assert Image.open(io.BytesIO(payload)).mode == "1"
    np.testing.assert_array_equal(_decode(payload, 1)[0], bits.astype(np.uint8) * 255)


def test_colour_to_grey_is_the_documented_luma_exactly(decoder):
    rgb = np.random.default_rng(7).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    payload = _encode(rgb, "PNG")
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    want = np.floor((r * 299 + g * 587 + b * 114) / 1000 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(_decode(payload, 1)[0], want)
    assert (want != _pil(payload, "L")[0]).any()  # PIL's fixed point is off by one here


def test_grey_to_rgb_repeats_the_channel(decoder):
    grey = _texture((16, 12), seed=8)
    for payload in (_encode(grey, "PNG"), grey):
        np.testing.assert_array_equal(_decode(payload, 3), np.stack([grey] * 3))


def test_uint8_arrays_are_unchanged():
    rgb = _texture((16, 12, 3), seed=9)
    np.testing.assert_array_equal(_decode(rgb, 3), rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(_decode(rgb[..., :1], 1)[0], rgb[..., 0])
    np.testing.assert_array_equal(_decode(rgb[..., 0], 1)[0], rgb[..., 0])


@pytest.mark.parametrize(
    ("arr", "words"),
    [
        (np.zeros((4, 4), np.uint16), r"array of uint16 \(4, 4\): its value range is unknown"),
        (np.zeros((4, 4), np.float32), r"array of float32 \(4, 4\): its value range is unknown"),
        (np.zeros((4, 4, 4), np.uint8), r"array of shape \(4, 4, 4\) is not an image"),
    ],
)
def test_other_arrays_are_refused(arr, words):
    for call in (lambda: _decode(arr, 1), lambda: channels_of(arr, "cls/x.png")):
        with pytest.raises(BadInputError, match=rf"^cls/x\.png: {words}"):
            call()


# ---------------------------------------------------------------- EXIF orientation


def _with_orientation(arr: np.ndarray, orientation: int, fmt: str) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(arr, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pil_does(fmt, orientation, decoder):
    payload = _with_orientation(_texture((24, 40, 3), seed=10), orientation, fmt)
    assert read_header(payload).orientation == orientation
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(payload))).convert("RGB"))
    out = _decode(payload, 3)
    assert out.shape == (3, 40, 24) if orientation >= 5 else (3, 24, 40)
    np.testing.assert_array_equal(out, want.transpose(2, 0, 1))


def test_a_png_exif_after_the_pixels_counts_too(decoder):
    exif = Image.Exif()
    exif[0x0112] = 8
    rgb = _texture((12, 20, 3), seed=14)
    tiff = exif.tobytes()[len(b"Exif\x00\x00") :]  # an eXIf chunk holds the TIFF part only
    payload = _png(rgb, 2, 8, after=_chunk(b"eXIf", tiff))
    assert read_header(payload).orientation == 8
    np.testing.assert_array_equal(_decode(payload, 3), np.rot90(rgb, 1).transpose(2, 0, 1))


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
       b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
       b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')  # fmt: skip


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_an_xmp_orientation_is_left_to_pil_and_applied(fmt, decoder):
    arr = _texture((24, 40, 3), seed=11)
    if fmt == "JPEG":
        payload = _encode(arr, fmt, xmp=XMP, quality=95)
    else:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        payload = _encode(arr, fmt, pnginfo=info)
    assert read_header(payload).orientation is None  # the header alone cannot tell
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(payload))).convert("RGB"))
    np.testing.assert_array_equal(_decode(payload, 3), want.transpose(2, 0, 1))


def test_orientation_comes_before_resizing():
    payload = _with_orientation(_texture((24, 40, 3), seed=12), 6, "JPEG")
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(payload))).convert("RGB"))
    want = ImageOps.fit(Image.fromarray(upright), (10, 16), Image.Resampling.BILINEAR)
    out = _decode(payload, 3, size=(16, 10))
    np.testing.assert_array_equal(out, np.asarray(want).transpose(2, 0, 1))


# ---------------------------------------------------------------- what was seen, channels_of


def test_seen_counts_modes_sizes_and_conversions():
    seen: Counter[str] = Counter()
    grey = _texture((12, 20), seed=13)
    rgba = _texture((12, 20, 4), seed=13)
    cases = [
        (_encode(grey, "PNG"), 3, None),
        (_encode(grey, "PNG"), 1, None),
        (_encode(Image.fromarray(rgba, "RGBA"), "PNG"), 3, None),
        (_encode(_palette_image(), "GIF", transparency=1), 3, None),
        (_encode(grey.astype(np.uint16) * 257, "PNG"), 1, None),
        (_encode(Image.fromarray(rgba, "CMYK"), "JPEG"), 3, None),
        (_with_orientation(rgba[..., :3], 6, "JPEG"), 3, (8, 8)),
        (_encode(grey > 128, "PNG"), 1, None),
        (grey, 1, None),
    ]
    for payload, channels, size in cases:
        decode_image(payload, "k", channels=channels, size=size, max_pixels=MAX, seen=seen)
    assert seen == Counter({
        "mode:L": 2, "mode:RGBA": 1, "mode:P": 1, "mode:I;16": 1, "mode:CMYK": 1,
        "mode:RGB": 1, "mode:1": 1, "mode:array uint8": 1,
        "size:20x12": 7, "size:14x10": 1, "size:12x20": 1,
        "converted:grey converted to RGB": 1,
        "converted:alpha composited on white": 2,
        "converted:palette expanded": 1,
        "converted:16-bit scaled to 8 bits": 1,
        "converted:CMYK converted to RGB": 1,
        "converted:EXIF orientation applied": 1,
        "converted:resized": 1,
        "converted:1-bit expanded to 0/255": 1,
    })  # fmt: skip
    converted = {k.split(":", 1)[1] for k in seen if k.startswith("converted:")}
    assert converted < set(CONVERSIONS)
    assert len(set(CONVERSIONS)) == len(CONVERSIONS) == 9


@pytest.mark.parametrize(
    ("payload", "channels"),
    [
        (_encode(_texture((8, 8)), "PNG"), 1),
        (_encode(_texture((8, 8, 3)), "JPEG"), 3),
        (_encode(np.zeros((8, 8), np.uint16), "PNG"), 1),  # I;16
        (_png(np.zeros((4, 4, 2), np.uint16), 4, 16), 1),  # 16-bit grey + alpha: PIL says RGBA
        (_encode(Image.fromarray(_texture((8, 8, 2)), "LA"), "PNG"), 1),
        (_encode(_texture((8, 8, 4)), "PNG"), 3),
        (_encode(_palette_image(), "PNG"), 3),  # a palette may hold any colour
        (_encode(Image.new("CMYK", (8, 8)), "JPEG"), 3),
        (_encode(np.zeros((8, 8), bool), "PNG"), 1),
        (np.zeros((8, 8), np.uint8), 1),
        (np.zeros((8, 8, 1), np.uint8), 1),
        (np.zeros((8, 8, 3), np.uint8), 3),
    ],
)
def test_channels_of_every_mode(payload, channels):
    assert channels_of(payload, "k") == channels


# ---------------------------------------------------------------- bombs and bad bytes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_header_size_refuses_a_bomb_before_decoding(fmt, monkeypatch):
    payload = _encode(np.zeros((1100, 1000, 3), np.uint8), fmt)
    head = read_header(payload)
    assert (head.channels, head.height, head.width) == (3, 1100, 1000)
    monkeypatch.setattr(decode, "_torchvision_decoder", pytest.fail)  # no pixel decoded
    with pytest.raises(BadInputError, match=r"^bomb: 1000x1100 = 1,100,000 pixels is over"):
        decode_image(payload, "bomb", channels=3, size=None, max_pixels=1_000_000)


def test_corrupt_and_truncated_payloads_are_one_line_errors_naming_the_key():
    good = _encode(_texture((32, 32, 3)), "JPEG")
    assert read_header(b"\xff\xd8\xff") is None
    png = _encode(_texture((32, 32, 3)), "PNG")
    for bad in (good[:200], good[:2] + b"\x00" * 50, b"not an image", png[:60], b"P5 4 4"):
        with pytest.raises(BadInputError, match=r"^k\.jpg: ") as caught:
            decode_image(bad, "k.jpg", channels=3, size=None, max_pixels=10**6)
        assert "\n" not in str(caught.value)
