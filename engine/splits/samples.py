"""What the split builder knows of a task's samples: labels, leaks, images and their columns.

:func:`engine.splits.builder.build_splits` cuts the splits of every task from a
:class:`SplitSamples`: the labels it may read (None for a task without classes), the
training sample each pool sample duplicates, and the per-sample columns the task's
split files carry (an image's pixels or a cache reference, a text, a question and its
answer). :func:`classification_samples` is the one of a classification dataset.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from engine.data import ClassificationData
from engine.data.cache import CachedInputs
from engine.shards import fixed_list
from engine.splits.inputs import cache_metadata

INPUT_SHAPE_KEY = b"input_shape"  # Parquet schema metadata: the shape of one input
IMAGE_CHANNELS = (1, 3)  # inputs exportable as PNG images (grey or RGB, values in [0, 1])
PIXEL_SCALE = 255  # a cache whose stored uint8 values are the 8-bit pixels themselves
LABEL_SET_COLUMN = "label_set"  # a multi-label split file's multi-hot truth (uint8 (L,))


@dataclass(frozen=True)
class SplitImages:
    """The samples' images, for the ``imagefolder`` and ``hf`` exports.

    Attributes:
        png: Sample id -> PNG bytes of its image as the models see it, in 8 bits.
        stored_png: Sample id -> PNG bytes of its stored pixels, for the HF export's
            ``image`` column; None when the split files carry the inputs themselves (an
            ``input`` column), which the HF export then keeps instead.
    """

    png: Callable[[int], bytes]
    stored_png: Callable[[int], bytes] | None = None


@dataclass(frozen=True)
class SplitSamples:
    """A task's samples as the split builder needs them, indexed by sample id.

    A split file holds ``sample_id``, the scores-table columns (``score_columns``),
    ``bin``, ``is_hard``, then ``key``, ``leaked`` and ``duplicate_of`` where known,
    then the task's own ``columns``; a label-free split leaves out ``label_columns``.

    Attributes:
        columns: Pool sample ids -> the task's per-sample columns for them, in order.
        labels: Int (N,) class of every sample, -1 for an unlabelled one; None for a
            task without classes (no per-class rule, no image folders by class).
        leak_partner: Int (N,) the training sample each sample duplicates (-1: none),
            or None where duplicates were not looked for.
        keys: N keys of the samples in their source (a file's path, an id), or None.
        score_columns: The scores-table columns the split files carry besides
            ``sample_id``, or None for all of them.
        label_columns: Columns that hold the samples' labels, left out of the files of
            a label-free benchmark.
        metadata: Schema metadata of every split file (an input's shape, the dataset
            cache the inputs stay in).
        class_names: K class names (``labels`` index them), or None.
        images: The images, for image exports; None for samples that are no images.
    """

    columns: Callable[[np.ndarray], dict[str, pa.Array]]
    labels: np.ndarray | None = None
    leak_partner: np.ndarray | None = None
    keys: Sequence[str] | None = None
    score_columns: Sequence[str] | None = None
    label_columns: Sequence[str] = ("label",)
    metadata: Mapping[bytes, bytes] = field(default_factory=dict)
    class_names: Sequence[str] | None = None
    images: SplitImages | None = None


def png_bytes(pixels: np.ndarray) -> bytes:
    """A uint8 (C, H, W) image, C in :data:`IMAGE_CHANNELS`, as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)).save(
        buf, "PNG"
    )
    return buf.getvalue()


def _images(data: ClassificationData) -> SplitImages | None:
    """PNG makers of image data: the stored pixels of a cache, else 8-bit rounded inputs."""
    shape = tuple(data.input_shape)
    if len(shape) != 3 or shape[0] not in IMAGE_CHANNELS:
        return None
    inputs = data.inputs
    cached = isinstance(inputs, CachedInputs)

    def stored(i: int) -> bytes:
        return png_bytes(inputs.stored(int(i)))

    def rounded(i: int) -> bytes:
        pixels = np.clip(inputs[int(i)], 0.0, 1.0) * 255
        return png_bytes(np.round(pixels).astype(np.uint8))

    exact = cached and inputs.scale == PIXEL_SCALE  # the stored uint8 values are the pixels
    in_files = not (cached and data.dataset is not None)
    return SplitImages(png=stored if exact else rounded, stored_png=None if in_files else stored)


def classification_samples(data: ClassificationData) -> SplitSamples:
    """The split builder's view of a classification dataset (images or token ids).

    Its split files carry ``input`` (flattened; the shape is in the schema metadata)
    or, for data read from a dataset cache, a reference to that cache in the schema
    metadata (:mod:`engine.splits.inputs`), then ``text`` for text data.
    """
    metadata = {INPUT_SHAPE_KEY: ",".join(str(d) for d in data.input_shape).encode()}
    by_reference = isinstance(data.inputs, CachedInputs) and data.dataset is not None
    if by_reference:
        metadata.update(cache_metadata(data.dataset))  # inputs stay in the cache: a reference

    def columns(ids: np.ndarray) -> dict[str, pa.Array]:
        out: dict[str, pa.Array] = {}
        if not by_reference:
            flat = np.asarray(data.inputs[ids]).reshape(len(ids), -1)
            if not np.issubdtype(flat.dtype, np.integer):  # token ids keep their int64 type
                flat = flat.astype(np.float32)
            out["input"] = fixed_list(flat, pa.from_numpy_dtype(flat.dtype))
        if getattr(data, "texts", None) is not None:
            out["text"] = pa.array([data.texts[i] for i in ids], pa.string())
        if data.multilabel:
            out[LABEL_SET_COLUMN] = fixed_list(data.label_sets[ids], pa.uint8())
        return out

    partner = getattr(data, "leak_partner", None)
    return SplitSamples(
        columns=columns,
        labels=None if data.multilabel else np.asarray(data.labels),
        leak_partner=None if partner is None else np.asarray(partner),
        keys=data.keys,
        label_columns=(LABEL_SET_COLUMN,) if data.multilabel else ("label",),
        metadata=metadata,
        class_names=list(data.class_names),
        images=_images(data),
    )
