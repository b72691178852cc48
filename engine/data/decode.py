"""One payload to one fixed-shape uint8 image (C, H, W), or a :class:`BadInputError` saying why not."""

from __future__ import annotations

import io

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
    from PIL import Image, ImageOps

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
        img = _open(bytes(payload), key, max_pixels=max_pixels)
    else:
        raise BadInputError(key, f"holds a {type(payload).__name__}, not image bytes")
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
