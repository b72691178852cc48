"""One payload to one fixed-shape uint8 image (C, H, W), or a :class:`BadInputError` saying why not.

JPEG and 8-bit grey or RGB PNG files, the common case, are decoded by torchvision's
libjpeg-turbo / libpng bindings straight into (C, H, W) uint8, about 3x faster than
PIL for small images (same libraries, the same pixels; ``tests/data/test_ingest.py``
checks them against PIL's). Their size is read from the header first, so a
decompression bomb is refused before any pixel is decoded. Every other format, a
conversion (RGBA to RGB, colour to grey, palettes, 16 bits) and any file torchvision
cannot decode go through PIL, which also words the errors.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.data.registry import BadInputError

MODES = {1: "L", 3: "RGB"}  # channels -> the PIL mode images are converted to
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # PIL modes read as one channel


def channels_of(payload: object, key: str) -> int:
    """1 for a grey image, 3 for a colour one (what ``channels: null`` takes from the first image)."""
    if isinstance(payload, np.ndarray):
        return 1 if payload.ndim == 2 or payload.shape[-1] == 1 else 3
    return 1 if _open(payload, key, max_pixels=None).mode in GREY_MODES else 3


def _open(payload: bytes, key: str, *, max_pixels: int | None) -> object:
    from PIL import Image, UnidentifiedImageError

    try:  # only the header is read here; the size check comes before any pixel is decoded
        img = Image.open(io.BytesIO(payload))
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise BadInputError(key, f"not a readable image ({type(exc).__name__})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInputError(key, f"not a readable image: {exc}") from None
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise BadInputError(
            key,
            f"{img.width}x{img.height} = {img.width * img.height:,} pixels is over the limit of "
            f"{max_pixels:,} (data.max_pixels; a decompression bomb?)",
        )
    return img


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_CHANNELS = {0: 1, 2: 3}  # PNG colour types torchvision decodes as PIL does: grey, RGB
JPEG_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                      *range(0xCD, 0xD0)})  # fmt: skip
JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # markers without a length


def header_shape(payload: bytes) -> tuple[int, int, int] | None:
    """(channels, height, width) from a JPEG or 8-bit grey/RGB PNG header, else None.

    Only the header is parsed (no pixel is decoded). None for any other format or
    layout (palette, alpha, 16 bits, CMYK): those go through PIL.
    """
    if payload[:8] == PNG_SIGNATURE and payload[12:16] == b"IHDR" and len(payload) >= 26:
        width, height = struct.unpack(">II", payload[16:24])
        channels = PNG_COLOUR_CHANNELS.get(payload[25])
        return (channels, height, width) if channels and payload[24] == 8 else None
    if payload[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(payload)
    while i + 4 <= n:
        if payload[i] != 0xFF:
            return None
        marker = payload[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in JPEG_STANDALONE:
            i += 2
        elif marker in JPEG_SOF:
            if i + 10 > n:
                return None
            height, width = struct.unpack(">HH", payload[i + 5 : i + 9])
            channels = payload[i + 9]
            return (channels, height, width) if channels in (1, 3) else None
        else:
            i += 2 + struct.unpack(">H", payload[i + 2 : i + 4])[0]
    return None


@functools.cache
def _torchvision_decoder() -> Callable | None:
    """Torchvision's ``decode_image`` op, loaded without importing torchvision (or None).

    Importing ``torchvision`` costs ~2.5 s more than torch on these machines (it
    imports its models and datasets), once per Ray worker; its image extension alone
    loads in milliseconds. This is the op ``torchvision.io.decode_image`` calls (that
    wrapper also warns that torchvision's image I/O is deprecated in favour of
    TorchCodec). Where the extension is missing or differs, PIL decodes everything.
    """
    import importlib.util

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        if not hasattr(torch.ops.image, "decode_image"):
            folder = Path(spec.submodule_search_locations[0])
            libs = sorted(folder.glob("image_stable*.so")) or sorted(folder.glob("image*.so"))
            if not libs:
                return None
            torch.ops.load_library(str(libs[0]))
        op = torch.ops.image.decode_image
    except (OSError, RuntimeError, AttributeError):
        return None
    return lambda payload: op(torch.frombuffer(bytearray(payload), dtype=torch.uint8),
                              0, False)  # fmt: skip  # mode 0 = unchanged, no EXIF rotation


def _fast_decode(payload: bytes, channels: int) -> np.ndarray | None:
    """Decode a JPEG/PNG with torchvision when it is already in ``channels`` (C, H, W) uint8, else None."""
    import torch

    decoder = _torchvision_decoder()
    if decoder is None:
        return None
    try:
        out = decoder(payload)
    except RuntimeError:  # corrupt or truncated: PIL decides and words the error
        return None
    if out.dtype != torch.uint8 or out.ndim != 3 or out.shape[0] != channels:
        return None
    return out.numpy()


def decode_image(
    payload: object,
    key: str,
    *,
    channels: int,
    size: tuple[int, int] | None,
    max_pixels: int,
) -> np.ndarray:
    """Decode, convert and resize one image to uint8 (channels, H, W).

    Args:
        payload: Encoded bytes (PNG, JPEG, WebP, ...) or a uint8 array (H, W) / (H, W, C).
        key: The sample's key, named in errors.
        channels: 1 (grey) or 3 (RGB); the image is converted.
        size: ``(H, W)`` to resize to (shorter side, then centre crop), or None to keep.
        max_pixels: Larger images are refused before they are decoded.

    Returns:
        A uint8 array of shape (channels, H, W) (a view: copy it into the block).

    Raises:
        BadInputError: For bytes that are not an image, a truncated file, an image over
            ``max_pixels`` or an array that is not uint8 (H, W[, C]).
    """
    from PIL import Image

    if isinstance(payload, np.ndarray):
        if payload.dtype != np.uint8 or payload.ndim not in (2, 3):
            raise BadInputError(
                key, f"array of {payload.dtype} {payload.shape} is not a uint8 image"
            )
        if size is None and (payload.ndim == 2 or payload.shape[-1] == channels):
            arr = payload if payload.ndim == 3 else payload[:, :, None]
            return arr.transpose(2, 0, 1)
        img = Image.fromarray(payload if payload.ndim == 2 or payload.shape[-1] > 1
                              else payload[:, :, 0])  # fmt: skip
    elif isinstance(payload, (bytes, bytearray, memoryview)):
        payload = bytes(payload)
        head = header_shape(payload)
        if head is not None and head[0] == channels:
            pixels = head[1] * head[2]
            if pixels > max_pixels:
                raise BadInputError(
                    key,
                    f"{head[2]}x{head[1]} = {pixels:,} pixels is over the limit of "
                    f"{max_pixels:,} (data.max_pixels; a decompression bomb?)",
                )
            arr = _fast_decode(payload, channels)
            if arr is not None:
                if size is None or tuple(arr.shape[1:]) == tuple(size):
                    return arr
                img = Image.fromarray(arr[0] if channels == 1 else arr.transpose(1, 2, 0))
                return _fit(img, key, channels, size)
        img = _open(payload, key, max_pixels=max_pixels)
    else:
        raise BadInputError(key, f"holds a {type(payload).__name__}, not image bytes")
    return _fit(img, key, channels, size)


def _fit(img: object, key: str, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """A PIL image decoded, converted to ``channels`` and resized: uint8 (C, H, W) (a view)."""
    from PIL import Image, ImageOps

    try:
        img.load()
        if img.mode != MODES[channels]:
            img = img.convert(MODES[channels])
        if size is not None and (img.height, img.width) != size:
            img = ImageOps.fit(img, (size[1], size[0]), Image.Resampling.BILINEAR)
        raw = img.tobytes()  # faster than np.asarray(img) for small images
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInputError(key, f"cannot decode the image: {exc}") from None
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(img.height, img.width, channels)
    return arr.transpose(2, 0, 1)
