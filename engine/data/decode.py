"""One payload to one fixed-shape uint8 image (C, H, W), or a :class:`BadInputError` saying why not.

Every image goes the same four steps: its stored samples become 8-bit grey or RGB on
white (the table below), the EXIF orientation is applied, it is resized, and it is
converted to the channels asked for. A value is never guessed: an image whose range
the file does not state is refused, naming the key, the mode and what to do.

====================================  =====================================================
Source (PIL's mode name)              What happens
====================================  =====================================================
``L``, ``RGB`` (8 bits)               unchanged
``1`` (bilevel)                       0 -> 0, 1 -> 255
``I;16`` / ``I;16B`` / ``I;16L``      scaled to 8 bits by the file's stated maximum M,
                                      ``round(v * 255 / M)``: M = 65535 for 16-bit PNG,
                                      ``2**BitsPerSample - 1`` for TIFF (12-bit TIFF: 4095)
``RGB;16``, ``RGBA;16``, ``LA;16``    16-bit colour / alpha PNG (PIL would keep only the
                                      high byte): decoded at 16 bits by torchvision and
                                      scaled the same way; refused where torchvision's
                                      decoder is missing
``I`` from PGM with maxval > 255      scaled by the file's maxval (exact)
other ``I`` (signed, 32-bit), ``F``   refused: the value range is unknown
``LA``, ``RGBA``, ``P`` or ``L`` /    composited on white (``BACKGROUND`` = 255), exactly:
``RGB`` with a transparency colour    ``round((a * v * 255 + (M - a) * 255 * M) / M**2)``, M
(PNG tRNS), GIF transparency          the maximum (255, 65535); a tRNS colour is alpha 0
``P`` (palette)                       expanded through the palette (RGB)
``CMYK`` (JPEG, TIFF)                 PIL's conversion, ``round((255 - C) * (255 - K) / 255)``
                                      per channel (Adobe-inverted JPEGs read as such)
16-bit colour TIFF                    refused (PIL keeps only the high byte)
uint8 array (H, W[, 1 | 3])           unchanged
other arrays (uint16, float, ...)     refused: the value range is unknown
any other mode (``RGBX``, ``La``,     refused: convert it to 8-bit RGB or grey
``YCbCr``, ``LAB``, ...)
====================================  =====================================================

Then: **EXIF orientation is applied** (what every viewer shows, and what Hugging Face
``datasets`` does): the orientation is PIL's (``ImageOps.exif_transpose``: the EXIF
tag, else XMP ``tiff:Orientation``). Resizing (``size``) scales the shorter side and
crops the centre (bilinear, on 8-bit values). Last, colour to grey (``channels: 1``) is
ITU-R 601-2 luma, ``L = round((299 R + 587 G + 114 B) / 1000)`` exactly (PIL's own
conversion approximates it in fixed point), and grey to RGB repeats the channel.
Multi-frame files (GIF, TIFF) give their first frame.

JPEG and 8/16-bit grey, RGB, grey+alpha and RGBA PNG files, the common case, are
decoded by torchvision's libjpeg-turbo / libpng bindings as stored, about 3x faster
than PIL for small images (the same libraries, the same pixels; the tests check them
against PIL's). Their header (size, layout, tRNS, EXIF) is read first, so a
decompression bomb is refused before any pixel is decoded. Every other file goes
through PIL, which also words the errors. ``seen`` counts, per image, its mode, its size
and each conversion applied (:data:`CONVERSIONS`), for the ingest's data report.
"""

from __future__ import annotations

import functools
import io
import re
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from engine.data.errors import BadInputError

BACKGROUND = 255  # the white (on 8 bits) every transparent pixel is composited on
LUMA = (299, 587, 114)  # ITU-R 601-2 luma weights of R, G, B, in thousandths (PIL's documented)
EIGHT_BIT_MAX = 255  # the largest 8-bit sample

SCALED = "16-bit scaled to 8 bits"  # samples over 8 bits (16-bit PNG, 12/16-bit TIFF, PGM) scaled
ALPHA_COMPOSITED = "alpha composited on white"  # alpha, or a transparent colour, on BACKGROUND
PALETTE_EXPANDED = "palette expanded"  # palette indices replaced by their colours
CMYK_CONVERTED = "CMYK converted to RGB"  # PIL's CMYK to RGB
BILEVEL_EXPANDED = "1-bit expanded to 0/255"  # bilevel 0/1 to 0/255
ORIENTED = "EXIF orientation applied"  # flipped or rotated as the EXIF orientation says
RESIZED = "resized"  # scaled and centre-cropped to ``size``
TO_GREY = "colour converted to grey"  # ITU-R 601-2 luma
TO_RGB = "grey converted to RGB"  # the grey channel repeated
CONVERSIONS = (SCALED, ALPHA_COMPOSITED, PALETTE_EXPANDED, CMYK_CONVERTED, BILEVEL_EXPANDED,
               ORIENTED, RESIZED, TO_GREY, TO_RGB)  # fmt: skip  # every ``converted:`` text
MODE_PREFIX = "mode:"  # ``seen`` key: the source's mode (PIL's name; ``array <dtype>`` for arrays)
SIZE_PREFIX = "size:"  # ``seen`` key: ``<W>x<H>`` as shown (after orientation), before resizing
CONVERTED_PREFIX = "converted:"  # ``seen`` key: one of CONVERSIONS

DEEP_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N")  # PIL modes of 16-bit grey samples
GREY_MODES = ("1", "L", "LA", "I", "F", "LA;16", *DEEP_GREY_MODES)  # modes read as one channel
PIL_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK")  # 8-bit modes read through PIL
PIL_CONVERSIONS = {"P": (PALETTE_EXPANDED,), "CMYK": (CMYK_CONVERTED,),
                   "1": (BILEVEL_EXPANDED,)}  # fmt: skip  # PIL's conversion of a mode, as noted
TIFF_BITS = 258  # the TIFF BitsPerSample tag
ORIENTATION_TAG = 0x0112  # the EXIF orientation tag (1 = as stored, 2..8 = flips / rotations)
SIXTEEN_BIT_MAX = 65535  # the largest 16-bit sample

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_LAYOUTS = {  # (colour type, bits) torchvision decodes as stored -> (PIL's mode name, channels)
    (0, 8): ("L", 1), (0, 16): ("I;16", 1), (2, 8): ("RGB", 3), (2, 16): ("RGB;16", 3),
    (4, 8): ("LA", 2), (4, 16): ("LA;16", 2), (6, 8): ("RGBA", 4), (6, 16): ("RGBA;16", 4),
}  # fmt: skip
PNG_KEYED = {0: ">H", 2: ">HHH"}  # colour types whose tRNS is one transparent colour: its layout
PNG_EXIF_TEXTS = (b"Raw profile type exif", b"XML:com.adobe.xmp")  # text chunks PIL reads EXIF from
PNG_CHUNK = struct.Struct(">I4s")  # a chunk's length and type
PNG_IHDR = struct.Struct(">IIBB")  # width, height, bit depth, colour type
NOT_FAST = ("", 0)  # (mode, channels) of a PNG layout PIL decodes (palette, 1-4 bit grey)
JPEG_SOF = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC),
                      *range(0xCD, 0xD0)})  # fmt: skip
JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # markers without a length
JPEG_APP1, JPEG_SOS = 0xE1, 0xDA  # the EXIF / XMP segment; the start of the scan (headers end)
JPEG_SKIPPED = frozenset({0xC4, 0xDB, 0xDD, 0xE0, *range(0xE2, 0xF0), 0xFE})  # tables, APPn, COM
JPEG_MARKER = struct.Struct(">BBH")  # 0xFF, a marker, the segment's length
EXIF_ID = b"Exif\x00\x00"  # how an EXIF APP1 segment starts
XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"  # how an XMP APP1 segment starts
PNM_TOKEN = re.compile(rb"(?:\s|#[^\r\n]*)*([^\s#]+)")  # one header token of a PGM/PPM file


class Header(NamedTuple):
    """What a PNG or JPEG header says, read without decoding a pixel.

    Attributes:
        mode: PIL's name for the stored layout (``L``, ``RGB``, ``I;16``, ``RGBA;16``, ...).
        channels: Stored channels (2 and 4: the last is alpha).
        height: Stored height.
        width: Stored width.
        depth: Bits per sample.
        key: The PNG tRNS colour (stored sample values) that is transparent, or None.
        orientation: The EXIF orientation PIL would apply, or None where only PIL can tell.
        fast: Whether torchvision decodes it as stored.
        plain: 8 bits, no transparent colour, no orientation: what is stored is the image.
    """

    mode: str
    channels: int
    height: int
    width: int
    depth: int
    key: tuple[int, ...] | None
    orientation: int | None
    fast: bool
    plain: bool


def read_header(payload: bytes) -> Header | None:
    """The :class:`Header` of a PNG or of a JPEG torchvision decodes, else None (PIL decides)."""
    if payload.startswith(PNG_SIGNATURE):
        return _png_header(payload)
    if payload.startswith(b"\xff\xd8"):
        return _jpeg_header(payload)
    return None


def _png_header(payload: bytes) -> Header | None:
    if len(payload) < 33 or not payload.startswith(b"IHDR", 12):
        return None
    width, height, depth, colour = PNG_IHDR.unpack_from(payload, 16)
    key = exif = None
    texts = False
    i, n = 33, len(payload)
    while i + 8 <= n:  # every chunk: PIL reads eXIf and text chunks after the pixels too
        length, kind = PNG_CHUNK.unpack_from(payload, i)
        i += length + 12
        if kind == b"IDAT":
            continue
        if kind == b"IEND":
            break
        at = i - length - 4  # the chunk's data
        if kind == b"tRNS" and colour in PNG_KEYED and i <= n:
            if length >= struct.calcsize(PNG_KEYED[colour]):
                key = struct.unpack_from(PNG_KEYED[colour], payload, at)
        elif kind == b"eXIf":
            exif = payload[at : at + length]
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            texts = texts or any(payload.startswith(t + b"\x00", at) for t in PNG_EXIF_TEXTS)
    if exif is None and not texts:
        orientation = 1
    else:
        orientation = _resolve(_exif_orientation(exif) if exif is not None else 0, texts)
    mode, channels = PNG_LAYOUTS.get((colour, depth), NOT_FAST)
    plain = depth == 8 and key is None and orientation == 1
    return Header(mode, channels, height, width, depth, key, orientation, channels > 0, plain)


def _jpeg_header(payload: bytes) -> Header | None:
    i, n, sof, exif, xmp = 2, len(payload), -1, [], False
    while i + 4 <= n:  # up to the scan: PIL reads every APP1 before it
        ff, marker, length = JPEG_MARKER.unpack_from(payload, i)
        if ff != 0xFF:
            return None
        if marker in JPEG_SKIPPED:
            i += 2 + length
        elif marker in JPEG_SOF:
            sof = i
            i += 2 + length
        elif marker == JPEG_SOS:
            break
        elif marker == JPEG_APP1:
            if payload.startswith(EXIF_ID, i + 4):
                exif.append(payload[i + 4 + len(EXIF_ID) : i + 2 + length])
            elif payload.startswith(XMP_ID, i + 4):
                xmp = True
            i += 2 + length
        elif marker == 0xFF:  # fill byte
            i += 1
        elif marker in JPEG_STANDALONE:
            i += 2
        else:
            i += 2 + length
    if sof < 0 or sof + 10 > n or payload[sof + 4] != 8 or payload[sof + 9] not in (1, 3):
        return None  # no frame header, 12-bit, CMYK/YCCK: PIL decodes or refuses it
    height, width = struct.unpack_from(">HH", payload, sof + 5)
    channels = payload[sof + 9]
    orientation = 1
    if exif or xmp:
        orientation = _resolve((_exif_orientation(exif[0]) if len(exif) == 1 else None)
                               if exif else 0, xmp)  # fmt: skip
    return Header("L" if channels == 1 else "RGB", channels, height, width, 8, None, orientation,
                  True, orientation == 1)  # fmt: skip


def _resolve(tag: int | None, fallback: bool) -> int | None:
    """The orientation PIL applies from an EXIF tag value (0: absent; None: unsure).

    Without the tag PIL reads XMP (``fallback``: the file has some): left to PIL (None).
    """
    if tag == 0:
        return None if fallback else 1
    return tag if tag is None or 2 <= tag <= 8 else 1


def _exif_orientation(tiff: bytes) -> int | None:
    """The orientation tag of EXIF data (TIFF layout): its value, 0 if absent, None if unsure.

    Only a well-formed first IFD with a one-value SHORT or LONG tag is read here; anything
    else (None) is left to PIL, so the fast path and PIL always agree.
    """
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    if ifd + 2 + 12 * count > len(tiff):
        return None
    for at in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", tiff, at)
        if tag == ORIENTATION_TAG:
            if values != 1 or kind not in (3, 4):
                return None
            return struct.unpack_from(order + ("H" if kind == 3 else "I"), tiff, at + 8)[0]
    return 0


def _pil_orientation(img: object) -> int:
    """The orientation ``ImageOps.exif_transpose`` applies to a PIL image (1: none; bad EXIF: 1)."""
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError, struct.error, KeyError, TypeError):
        return 1  # unreadable EXIF: shown as stored, as viewers do
    return value if isinstance(value, int) and 2 <= value <= 8 else 1


def channels_of(payload: object, key: str) -> int:
    """1 for a grey image, 3 for a colour one (what ``channels: null`` takes from the first image).

    Grey: ``1``, ``L``, ``LA``, 16-bit grey (``I;16``, ``LA;16``), ``I``, ``F``; colour:
    everything else, palettes (``P``, which may hold any colour: set ``data.channels: 1``
    for grey palette images) and ``CMYK`` included. Arrays: (H, W) and (H, W, 1) are grey.
    """
    if isinstance(payload, np.ndarray):
        return _array_planes(payload, key).shape[0]
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise BadInputError(key, f"holds a {type(payload).__name__}, not image bytes")
    payload = bytes(payload)
    head = read_header(payload)
    mode = (
        head.mode if head is not None and head.fast else _open(payload, key, max_pixels=None).mode
    )
    return 1 if mode in GREY_MODES else 3


def _open(payload: bytes, key: str, *, max_pixels: int | None) -> object:
    from PIL import Image, UnidentifiedImageError

    try:  # only the header is read here; the size check comes before any pixel is decoded
        img = Image.open(io.BytesIO(payload))
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise BadInputError(key, f"not a readable image ({type(exc).__name__})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInputError(key, f"not a readable image: {_one_line(exc)}") from None
    if max_pixels is not None:
        _check_pixels(img.width, img.height, key, max_pixels)
    return img


def _check_pixels(width: int, height: int, key: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise BadInputError(
            key,
            f"{width}x{height} = {width * height:,} pixels is over the limit of "
            f"{max_pixels:,} (data.max_pixels; a decompression bomb?)",
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@functools.cache
def _torchvision_decoder() -> Callable | None:
    """Torchvision's ``decode_image`` op, loaded without importing torchvision (or None).

    Importing ``torchvision`` costs ~2.5 s more than torch on these machines (it
    imports its models and datasets), once per Ray worker; its image extension alone
    loads in milliseconds. This is the op ``torchvision.io.decode_image`` calls (that
    wrapper also warns that torchvision's image I/O is deprecated in favour of
    TorchCodec). Mode 0 decodes as stored: 16-bit PNGs to uint16, alpha kept, tRNS
    and EXIF ignored (both are applied here). Where the extension is missing or
    differs, PIL decodes everything it can.
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
                              0, False)  # fmt: skip  # mode 0 = as stored, no EXIF rotation


def _fast_decode(payload: bytes, head: Header) -> np.ndarray | None:
    """The stored samples (C, H, W) of a JPEG/PNG by torchvision, or None (PIL decides)."""
    decoder = _torchvision_decoder()
    if decoder is None:
        return None
    try:
        arr = decoder(payload).numpy()
    except RuntimeError:  # corrupt or truncated: PIL decides and words the error
        return None
    if arr.shape != (head.channels, head.height, head.width) or arr.itemsize * 8 != head.depth:
        return None
    return arr


def decode_image(
    payload: object,
    key: str,
    *,
    channels: int,
    size: tuple[int, int] | None,
    max_pixels: int,
    seen: Counter[str] | None = None,
) -> np.ndarray:
    """Decode, convert and resize one image to uint8 (channels, H, W) (the module's table).

    Args:
        payload: Encoded bytes (PNG, JPEG, WebP, GIF, TIFF, ...) or a uint8 array
            (H, W) / (H, W, 1) / (H, W, 3).
        key: The sample's key, named in errors.
        channels: 1 (grey) or 3 (RGB); the image is converted.
        size: ``(H, W)`` to resize to (shorter side, then centre crop), or None to keep.
        max_pixels: Larger images are refused before they are decoded.
        seen: Where given, counts ``mode:<mode>``, ``size:<W>x<H>`` and
            ``converted:<text>`` (each of :data:`CONVERSIONS` applied) for this image.

    Returns:
        A uint8 array of shape (channels, H, W) (possibly a read-only view: copy it into
        the block).

    Raises:
        BadInputError: For bytes that are not an image, a truncated file, an image over
            ``max_pixels``, a mode or array whose value range is unknown, or an
            unsupported mode (the message names the key, the mode and what to do).
    """
    if size is not None:
        size = tuple(size)
    if isinstance(payload, (bytes, bytearray, memoryview)):
        if type(payload) is not bytes:
            payload = bytes(payload)
        head = read_header(payload)
        arr = None
        if head is not None:
            if head.width * head.height > max_pixels:  # before any pixel is decoded
                _check_pixels(head.width, head.height, key, max_pixels)
            if head.fast:
                arr = _fast_decode(payload, head)
        if arr is not None and head.plain and head.channels == channels:
            if size is None or arr.shape[1:] == size:  # the common case: as stored
                if seen is not None:
                    _count(seen, head.mode, head.width, head.height, ())
                return arr
    elif not isinstance(payload, np.ndarray):
        raise BadInputError(key, f"holds a {type(payload).__name__}, not image bytes")
    notes: list[str] = []
    if isinstance(payload, np.ndarray):
        planes, top, transparent = _array_planes(payload, key), EIGHT_BIT_MAX, None
        orientation = 1
        mode = f"array {payload.dtype}"
    elif arr is not None:
        planes, top, transparent, mode = arr, (1 << head.depth) - 1, head.key, head.mode
        orientation = head.orientation or _pil_orientation(_open(payload, key, max_pixels=None))
    else:
        planes, top, transparent, orientation, mode = _pil_planes(
            payload, key, head, max_pixels, notes
        )
    out = _flatten(planes, top, transparent, notes)
    out = _orient(out, orientation, notes)
    height, width = out.shape[1:]
    if size is not None and (height, width) != size:
        out = _resize(out, size, key)
        notes.append(RESIZED)
    if out.shape[0] != channels:
        out = _to_grey(out) if channels == 1 else np.broadcast_to(out, (3, *out.shape[1:]))
        notes.append(TO_GREY if channels == 1 else TO_RGB)
    if seen is not None:
        _count(seen, mode, width, height, notes)
    return out


def _count(seen: Counter[str], mode: str, width: int, height: int, notes: Sequence[str]) -> None:
    """Add one image's mode, size (before resizing) and conversions to ``seen``."""
    seen[MODE_PREFIX + mode] += 1
    seen[f"{SIZE_PREFIX}{width}x{height}"] += 1
    for note in notes:
        seen[CONVERTED_PREFIX + note] += 1


def _array_planes(payload: np.ndarray, key: str) -> np.ndarray:
    """A uint8 (H, W[, 1 | 3]) array as (C, H, W) (a view); any other array refused."""
    if payload.dtype != np.uint8:
        raise BadInputError(
            key,
            f"array of {payload.dtype} {payload.shape}: its value range is unknown (a uint16 "
            "array may hold 10- to 16-bit values); scale it to uint8, or save it as a 16-bit PNG",
        )
    if payload.ndim == 2:
        return payload[None]
    if payload.ndim == 3 and payload.shape[-1] in (1, 3):
        return payload.transpose(2, 0, 1)
    raise BadInputError(
        key, f"array of shape {payload.shape} is not an image: expected (H, W), (H, W, 1) or "
        "(H, W, 3) uint8",
    )  # fmt: skip


def _pil_planes(
    payload: bytes, key: str, head: Header | None, max_pixels: int, notes: list[str]
) -> tuple[np.ndarray, int, tuple[int, ...] | None, int, str]:
    """A file through PIL, as its stored samples, or a refusal where their range is unknown.

    Returns:
        (samples (C, H, W), their maximum, the transparent colour or None, the EXIF
        orientation, PIL's mode).
    """
    img = _open(payload, key, max_pixels=max_pixels)
    mode = img.mode
    top = _sample_max(img, payload, head, key)  # refuses before any pixel is decoded
    try:
        img.load()
        orientation = _pil_orientation(img)
        if mode == "P":
            img = img.convert("RGBA" if img.has_transparency_data else "RGB")
        elif mode == "CMYK":
            img = img.convert("RGB")
        elif mode == "1":
            img = img.convert("L")
        planes = np.asarray(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInputError(key, f"cannot decode the image: {_one_line(exc)}") from None
    planes = planes[None] if planes.ndim == 2 else planes.transpose(2, 0, 1)
    if mode == "I":  # a PGM: PIL stretched v to round(v / maxval * 65535); undo that exactly
        wide = planes.astype(np.int64) * (2 * top) + SIXTEEN_BIT_MAX
        planes = wide // (2 * SIXTEEN_BIT_MAX)
    keyed = mode in ("1", "L", "RGB", *DEEP_GREY_MODES)
    transparent = _transparent_colour(img, head) if keyed else None
    notes.extend(PIL_CONVERSIONS.get(mode, ()))
    return planes, top, transparent, orientation, mode


def _sample_max(img: object, payload: bytes, head: Header | None, key: str) -> int:
    """The largest sample value PIL's reading of ``img`` stands for, or a one-line refusal."""
    mode = img.mode
    bits = max(img.tag_v2.get(TIFF_BITS, (8,))) if img.format == "TIFF" else None
    if mode in DEEP_GREY_MODES:  # 16 bits, or a TIFF's stated BitsPerSample (12-bit: 0..4095)
        return (1 << (bits or (head.depth if head is not None else 16))) - 1
    if mode == "I" and img.format == "PPM" and (maxval := _pnm_maxval(payload)):
        return maxval
    if mode in ("I", "F"):
        kind = "32-bit float" if mode == "F" else "signed or 32-bit integer"
        raise BadInputError(
            key, f"{kind} image (mode {mode}): its value range is unknown; convert it to 8 or "
            "16 bits (unsigned), e.g. a 16-bit PNG",
        )  # fmt: skip
    if mode not in PIL_MODES:
        raise BadInputError(
            key, f"image mode {mode} is not supported: convert it to 8-bit RGB or grey"
        )
    if bits is not None and bits > 8:
        raise BadInputError(
            key, f"{bits}-bit colour TIFF ({mode}): PIL reads only the high byte of each sample; "
            "save it as a 16-bit PNG, or at 8 bits",
        )  # fmt: skip
    if head is not None and head.depth == 16:
        raise BadInputError(
            key, f"16-bit colour PNG ({head.mode}): torchvision's PNG decoder is needed for it "
            "and is missing or failed here; save it at 8 bits",
        )  # fmt: skip
    return EIGHT_BIT_MAX


def _transparent_colour(img: object, head: Header | None) -> tuple[int, ...] | None:
    """The one colour (as read by PIL) that is transparent, from the PNG tRNS or PIL's info."""
    if head is not None:  # a PNG: its tRNS, in the samples PIL gives (1-4 bit grey stretched)
        if head.key is None or head.depth >= 8:
            return head.key
        return tuple(k * (EIGHT_BIT_MAX // ((1 << head.depth) - 1)) for k in head.key)
    value = img.info.get("transparency")  # e.g. a grey GIF read as L
    if isinstance(value, int):
        return (value,)
    return value if isinstance(value, tuple) and all(isinstance(v, int) for v in value) else None


def _pnm_maxval(payload: bytes) -> int | None:
    """The maxval of a PGM header (``P2`` / ``P5``), else None."""
    tokens, pos = [], 0
    for _ in range(4):
        match = PNM_TOKEN.match(payload, pos)
        if match is None:
            return None
        tokens.append(match.group(1))
        pos = match.end()
    if tokens[0] not in (b"P2", b"P5") or not tokens[3].isdigit():
        return None
    return int(tokens[3]) or None


def _flatten(
    planes: np.ndarray, top: int, transparent: tuple[int, ...] | None, notes: list[str]
) -> np.ndarray:
    """Stored samples (C, H, W) of maximum ``top`` to uint8 grey or RGB, on ``BACKGROUND``.

    C = 2 or 4: the last channel is alpha ``a``, and each value ``v`` becomes
    ``round((a * v * 255 + (top - a) * BACKGROUND * top) / top**2)`` (half up); a
    ``transparent`` colour is alpha 0. Without alpha: ``round(v * 255 / top)``.
    """
    colour = planes[:3] if planes.shape[0] >= 3 else planes[:1]
    alpha = planes[-1] if planes.shape[0] in (2, 4) else None
    if transparent is not None:
        hit = np.all(colour == np.asarray(transparent).reshape(-1, 1, 1), axis=0)
        alpha = np.where(hit, 0, top)
    if alpha is not None:
        notes.append(ALPHA_COMPOSITED)
        if top != EIGHT_BIT_MAX:
            notes.append(SCALED)
        a, v = alpha.astype(np.int64), colour.astype(np.int64)
        num = a * v * EIGHT_BIT_MAX + (top - a) * (BACKGROUND * top)
        return ((2 * num + top * top) // (2 * top * top)).astype(np.uint8)
    if top != EIGHT_BIT_MAX:
        notes.append(SCALED)
        wide = colour.astype(np.int64)
        return ((wide * (2 * EIGHT_BIT_MAX) + top) // (2 * top)).astype(np.uint8)
    return colour if colour.dtype == np.uint8 else colour.astype(np.uint8)


def _orient(img: np.ndarray, orientation: int, notes: list[str]) -> np.ndarray:
    """(C, H, W) flipped / rotated as EXIF ``orientation`` says (PIL's ``exif_transpose``)."""
    if orientation == 1:
        return img
    notes.append(ORIENTED)
    swapped = img.transpose(0, 2, 1)
    return {
        2: img[:, :, ::-1],  # mirrored left-right
        3: img[:, ::-1, ::-1],  # rotated 180
        4: img[:, ::-1, :],  # mirrored top-bottom
        5: swapped,  # transposed
        6: swapped[:, :, ::-1],  # rotated 90 clockwise
        7: swapped[:, ::-1, ::-1],  # transversed
        8: swapped[:, ::-1, :],  # rotated 90 counter-clockwise
    }[orientation]


def _resize(img: np.ndarray, size: tuple[int, int], key: str) -> np.ndarray:
    """uint8 (C, H, W) scaled (shorter side) and centre-cropped to ``size`` (H, W), bilinear."""
    from PIL import Image, ImageOps

    c = img.shape[0]
    pil = Image.fromarray(np.ascontiguousarray(img[0] if c == 1 else img.transpose(1, 2, 0)))
    try:
        pil = ImageOps.fit(pil, (size[1], size[0]), Image.Resampling.BILINEAR)
    except (OSError, ValueError) as exc:
        raise BadInputError(key, f"cannot resize the image: {_one_line(exc)}") from None
    return np.frombuffer(pil.tobytes(), np.uint8).reshape(size[0], size[1], c).transpose(2, 0, 1)


def _to_grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 (3, H, W) to (1, H, W): ``round((299 R + 587 G + 114 B) / 1000)``, exactly."""
    wide = rgb.astype(np.uint32)
    weighted = wide[0] * LUMA[0] + wide[1] * LUMA[1] + wide[2] * LUMA[2]
    return ((weighted + sum(LUMA) // 2) // sum(LUMA)).astype(np.uint8)[None]
