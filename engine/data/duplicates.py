"""Exact and near duplicates in a dataset cache, found once at ingest.

A pool sample that duplicates a training sample makes a benchmark leak: every model
trained on the training split has seen it, so it looks easy whatever it is. The
ingest therefore signs every sample and groups duplicates, split-independently
(the split may be seeded later); :mod:`engine.data.report` reads the groups against
the split.

- **Exact duplicates** have the same stored content: the same uint8 pixels after
  conversion and resizing (so the same picture saved as PNG and as a lossless
  WebP, or at a larger size that resizes to the same pixels, is one), or the same
  text after Unicode normalisation and whitespace collapsing. Signature: a 16-byte
  BLAKE2b digest.
- **Near duplicates** (images only) are the same picture re-encoded (JPEG at another
  quality) or resized, i.e. differing by fine noise only. Every image is signed by a
  grey 32x32 thumbnail (:func:`thumbnails`, made while ingesting). Candidates come from
  a 64-bit perceptual hash of it (pHash: the signs of its 8x8 lowest DCT frequencies
  against their median; Zauner 2010) within a Hamming distance of
  :data:`NEAR_HAMMING`, found without comparing all pairs by multi-index hashing (the
  hash cut into ``NEAR_HAMMING + 1`` bands: two hashes that close agree on a whole
  band). A candidate pair is confirmed when the two thumbnails are close (mean
  absolute difference at most :data:`NEAR_MAD` of the range) **and** their fine
  detail correlates (:data:`NEAR_DETAIL_CORR`; the detail is the thumbnail minus its
  5x5 binomial blur, normalised): a re-encoded copy keeps both, while two different
  pictures of similar objects share their silhouette (and often their pHash) but not
  their detail. On small images (Fashion-MNIST's 28x28, the 8x8 digits) a copy that
  was resized and re-encoded loses much of its detail and may be missed; the rule
  errs on the side of not calling two different pictures one (docs/data.md shows
  what it finds on Fashion-MNIST).

Groups are connected components over exact and confirmed near pairs, named by
their smallest sample id.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata

import numpy as np

DIGEST_BYTES = 16  # BLAKE2b digest size of a sample's exact-content signature
THUMB_SIZE = 32  # side of the grey thumbnail every image is signed by (hash, near check)
HASH_FREQS = 8  # the hash keeps the HASH_FREQS x HASH_FREQS lowest DCT frequencies (64 bits)
NEAR_HAMMING = 6  # pHash bits two near-duplicate candidates may differ in
DC_BIT = 63  # the hash bit of the DC coefficient (always set: the median leaves it out)
NEAR_DETAIL_CORR = 0.95  # fine-detail correlation that confirms a near duplicate
NEAR_MAD = 0.01  # mean absolute thumbnail difference (of the range) a near duplicate stays within
MAX_BUCKET_PAIRS = 4_000_000  # candidate pairs examined at once (bounds memory)
PAIRS_PER_READ = 50_000  # candidate pairs confirmed at a time (bounds memory)
DETAIL_ROWS = 8192  # thumbnails whose fine detail is computed at a time
POOL = 4  # the cheap pre-check compares thumbnails mean-pooled over POOL x POOL pixels
NO_GROUP = -1  # group id of a sample without a duplicate


def image_digests(block: np.ndarray) -> list[bytes]:
    """The exact-content signature of each image: BLAKE2b of its stored bytes and shape.

    Args:
        block: Uint8 (n, C, H, W) stored pixels.

    Returns:
        n digests of :data:`DIGEST_BYTES` bytes.
    """
    shape = ",".join(str(d) for d in block.shape[1:]).encode()
    block = np.ascontiguousarray(block)
    out = []
    for img in block:  # rows of a contiguous block: hashed without a copy
        h = hashlib.blake2b(shape, digest_size=DIGEST_BYTES)
        h.update(memoryview(img).cast("B"))
        out.append(h.digest())
    return out


def text_digests(texts: list[str]) -> list[bytes]:
    """The exact-content signature of each text (NFC, whitespace collapsed; case kept)."""
    return [
        hashlib.blake2b(
            " ".join(unicodedata.normalize("NFC", t).split()).encode(), digest_size=DIGEST_BYTES
        ).digest()
        for t in texts
    ]


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix (n, n): ``D @ x`` transforms a column."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


@functools.lru_cache(maxsize=16)
def _resize_matrix(n: int) -> np.ndarray:
    """(THUMB_SIZE, n) weights of a bilinear resize of n samples to THUMB_SIZE (antialiased).

    Bilinear resizing is separable and linear, so ``R_h @ img @ R_w.T`` is the resized
    image: two small matrix products per image instead of a resize call.
    """
    import torch
    import torch.nn.functional as F

    if n <= THUMB_SIZE:  # growing: plain linear interpolation
        eye = torch.eye(n, dtype=torch.float64)[:, None, :]
        out = F.interpolate(eye, size=THUMB_SIZE, mode="linear", align_corners=False)[:, 0]
    else:  # shrinking: antialiased, as the 2-D bilinear resize does
        img = torch.eye(n, dtype=torch.float64)[:, None, :, None].expand(n, 1, n, 2)
        out = F.interpolate(img, size=(THUMB_SIZE, 2), mode="bilinear", antialias=True,
                            align_corners=False)[:, 0, :, 0]  # fmt: skip
    return out.numpy().T.astype(np.float32)


def thumbnails(block: np.ndarray, *, scale: float = 255.0) -> np.ndarray:
    """The grey THUMB_SIZE x THUMB_SIZE thumbnail of each image, the signature near duplicates compare.

    Args:
        block: Uint8 (n, C, H, W) stored pixels.
        scale: The stored values' full range (255; 16 for the bundled digits).

    Returns:
        Uint8 (n, THUMB_SIZE, THUMB_SIZE): the channel mean, resized (bilinear,
        antialiased), on 0..255.
    """
    grey = block.sum(axis=1, dtype=np.float32) * np.float32(255.0 / (scale * block.shape[1]))
    rh, rw = _resize_matrix(block.shape[2]), _resize_matrix(block.shape[3])
    thumb = np.matmul(rh, grey @ rw.T)  # (S, H) @ (n, H, S): batched BLAS, ~12 us per 64x64
    return np.clip(np.rint(thumb), 0, 255).astype(np.uint8)


def perceptual_hashes(thumbs: np.ndarray) -> np.ndarray:
    """64-bit pHash of each thumbnail (see the module docstring).

    Args:
        thumbs: Uint8 (n, THUMB_SIZE, THUMB_SIZE) (:func:`thumbnails`).

    Returns:
        Uint64 (n,) hashes: the 8x8 lowest DCT frequencies against their median (the DC
        term left out of the median), row by row from the top bit.
    """
    if not len(thumbs):
        return np.zeros(0, np.uint64)
    d = _dct_matrix(THUMB_SIZE)[:HASH_FREQS]
    low = np.einsum("fh,nhw,gw->nfg", d, thumbs.astype(np.float32), d, optimize=True)
    low = low.reshape(len(thumbs), -1)
    median = np.median(low[:, 1:], axis=1, keepdims=True)
    return np.packbits(low > median, axis=1).view(">u8").ravel().astype(np.uint64)


def fine_detail(thumbs: np.ndarray) -> np.ndarray:
    """Each thumbnail's fine detail as a unit vector: itself minus its 5x5 binomial blur.

    Args:
        thumbs: Uint8 (n, S, S).

    Returns:
        Float32 (n, S*S) rows of norm 1 (0 for a flat image).
    """
    x = thumbs.astype(np.float32)
    blurred = x
    for axis in (1, 2):  # the separable [1 4 6 4 1] / 16 filter, edges replicated
        pad = [(0, 0)] * 3
        pad[axis] = (2, 2)
        p = np.pad(blurred, pad, mode="edge")
        n = x.shape[axis]
        taps = [np.take(p, range(k, k + n), axis=axis) for k in range(5)]
        blurred = (taps[0] + 4 * taps[1] + 6 * taps[2] + 4 * taps[3] + taps[4]) / 16.0
    detail = (x - blurred).reshape(len(x), -1)
    detail -= detail.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(detail, axis=1, keepdims=True)
    return detail / np.where(norm > 0, norm, 1.0)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def _bands() -> list[range]:
    """Bit positions of each of the ``NEAR_HAMMING + 1`` bands.

    Interleaved, so that correlated neighbouring frequencies fall in different bands
    (half the pairs to compare on Fashion-MNIST), and the DC bit (always set) in none.
    """
    bands = NEAR_HAMMING + 1
    return [range(k, DC_BIT, bands) for k in range(bands)]


def hash_candidates(hashes: np.ndarray) -> np.ndarray:
    """Pairs ``(i, j)``, ``i < j``, whose hashes differ in at most :data:`NEAR_HAMMING` bits.

    Multi-index hashing: hashes that close agree on at least one of the
    ``NEAR_HAMMING + 1`` bands, so only samples sharing a band value are compared,
    at most :data:`MAX_BUCKET_PAIRS` pairs at a time.

    Args:
        hashes: Uint64 (N,), one per sample.

    Returns:
        Int64 (P, 2) distinct pairs of sample ids, sorted.
    """
    h = hashes
    found: list[np.ndarray] = []

    def keep_close(left: np.ndarray, right: np.ndarray) -> None:
        close = _popcount(h[left] ^ h[right]) <= NEAR_HAMMING
        found.append(np.stack([left[close], right[close]], axis=1))

    for positions in _bands():
        band = np.zeros(len(h), np.int64)
        for j, pos in enumerate(positions):
            band |= ((h >> np.uint64(pos)) & np.uint64(1)).astype(np.int64) << j
        order = np.argsort(band, kind="stable")
        sorted_band = band[order]
        starts = np.flatnonzero(np.r_[True, sorted_band[1:] != sorted_band[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        for size in np.unique(sizes[sizes > 1]).tolist():
            groups = starts[sizes == size]
            a, b = np.triu_indices(size, 1)
            per_chunk = max(1, MAX_BUCKET_PAIRS // len(a))
            if len(a) <= MAX_BUCKET_PAIRS:  # many groups of this size at once
                for s in range(0, len(groups), per_chunk):
                    members = order[groups[s : s + per_chunk, None] + np.arange(size)]
                    keep_close(members[:, a].ravel(), members[:, b].ravel())
                continue
            rows = max(1, MAX_BUCKET_PAIRS // size)  # one huge group: a few rows at a time
            for g in groups.tolist():
                members = order[g : g + size]
                for r in range(0, size, rows):
                    left = np.repeat(np.arange(r, min(r + rows, size)), size)
                    right = np.tile(np.arange(size), min(r + rows, size) - r)
                    upper = right > left
                    keep_close(members[left[upper]], members[right[upper]])
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(found)
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of ``pairs`` over n nodes: the smallest member's id, or NO_GROUP."""
    parent = np.arange(n)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(n)]) if len(pairs) else np.arange(n)
    sizes = np.bincount(roots, minlength=n)
    return np.where(sizes[roots] > 1, roots, NO_GROUP).astype(np.int64)


def exact_groups(digests: list[bytes]) -> np.ndarray:
    """Int64 (N,) exact-duplicate group of each sample (its first copy's id), or NO_GROUP."""
    first: dict[bytes, int] = {}
    group = np.full(len(digests), NO_GROUP, np.int64)
    for i, d in enumerate(digests):
        j = first.setdefault(d, i)
        if j != i:
            group[i] = group[j] = j
    return group


def _could_be_close(pairs: np.ndarray, thumbs: np.ndarray) -> np.ndarray:
    """Bool (P,) pairs whose thumbnails, mean-pooled over POOL x POOL, differ by <= NEAR_MAD.

    The pooled difference is a lower bound of the full one, so a pair this drops cannot
    pass: a cheap first pass before any fine detail is computed.
    """
    involved = np.unique(pairs)
    side = THUMB_SIZE // POOL
    pooled = np.asarray(thumbs[involved]).reshape(len(involved), side, POOL, side, POOL)
    pooled = pooled.mean(axis=(2, 4), dtype=np.float32).reshape(len(involved), -1)
    a, b = np.searchsorted(involved, pairs).T
    return np.concatenate([
        np.abs(pooled[a[s : s + PAIRS_PER_READ]] - pooled[b[s : s + PAIRS_PER_READ]]).mean(axis=1)
        / 255.0 <= NEAR_MAD for s in range(0, len(pairs), PAIRS_PER_READ)
    ])  # fmt: skip


def near_pairs(
    hashes: np.ndarray, thumbs: np.ndarray, exact: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confirmed near-duplicate pairs that are not exact duplicates, with their measures.

    Args:
        hashes: Uint64 (N,) perceptual hashes.
        thumbs: Uint8 (N, S, S) thumbnails (memory-mapped is fine: read in batches).
        exact: Int64 (N,) exact groups (pairs inside one are left out).

    Returns:
        ``(pairs int64 (P, 2), fine-detail correlation float32 (P,), mean absolute
        thumbnail difference float32 (P,) as a fraction of the range)``.
    """
    pairs = hash_candidates(hashes)
    same = (exact[pairs[:, 0]] != NO_GROUP) & (exact[pairs[:, 0]] == exact[pairs[:, 1]])
    pairs = pairs[~same]
    if len(pairs):
        pairs = pairs[_could_be_close(pairs, thumbs)]
    if not len(pairs):
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
    involved = np.unique(pairs)
    small = np.asarray(thumbs[involved])  # uint8: 1 KiB per sample
    detail = np.concatenate([fine_detail(small[i : i + DETAIL_ROWS]).astype(np.float16)
                             for i in range(0, len(small), DETAIL_ROWS)])  # fmt: skip
    flat = small.reshape(len(small), -1)
    kept, corr_out, mad_out = [], [], []
    for s in range(0, len(pairs), PAIRS_PER_READ):
        batch = pairs[s : s + PAIRS_PER_READ]
        a, b = np.searchsorted(involved, batch).T
        corr = np.einsum("ij,ij->i", detail[a].astype(np.float32), detail[b].astype(np.float32))
        diff = np.abs(flat[a].astype(np.int16) - flat[b].astype(np.int16))
        mad = (diff.mean(axis=1) / 255.0).astype(np.float32)
        keep = (corr >= NEAR_DETAIL_CORR) & (mad <= NEAR_MAD)
        kept.append(batch[keep])
        corr_out.append(corr[keep])
        mad_out.append(mad[keep])
    return np.concatenate(kept), np.concatenate(corr_out), np.concatenate(mad_out)


def duplicate_groups(
    digests: list[bytes], hashes: np.ndarray | None = None, thumbs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact and near duplicate groups of a dataset.

    Args:
        digests: N exact-content signatures.
        hashes: Uint64 (N,) perceptual hashes (images), or None (texts: exact only).
        thumbs: Uint8 (N, S, S) thumbnails (needed with ``hashes``).

    Returns:
        ``(exact_group (N,), near_group (N,), near pairs (P, 2), their fine-detail
        correlation (P,), their mean absolute difference (P,))``; a near group is a
        component over exact and near pairs, so it contains the exact groups.
    """
    n = len(digests)
    exact = exact_groups(digests)
    if hashes is None or thumbs is None:
        empty = np.zeros(0, np.float32)
        return exact, exact.copy(), np.zeros((0, 2), np.int64), empty, empty
    pairs, corr, mad = near_pairs(hashes, thumbs, exact)
    has = np.flatnonzero(exact != NO_GROUP)
    exact_links = np.stack([has, exact[has]], axis=1)
    exact_links = exact_links[exact_links[:, 0] != exact_links[:, 1]]
    near = _components(n, np.concatenate([exact_links, pairs]))
    return exact, near, pairs, corr, mad


def describe_groups(exact: np.ndarray, near: np.ndarray, near_pairs: int) -> dict:
    """Split-independent duplicate counts, for the cache's ``meta.json``.

    Args:
        exact: Int64 (N,) exact groups.
        near: Int64 (N,) near groups (which contain the exact ones).
        near_pairs: Confirmed near pairs that are not exact copies.
    """
    return {
        "exact_groups": len(np.unique(exact[exact != NO_GROUP])),
        "exact_samples": int((exact != NO_GROUP).sum()),
        "near_pairs": int(near_pairs),
        "near_groups": len(np.unique(near[near != NO_GROUP])),
        "near_samples": int((near != NO_GROUP).sum()),
        "near_rule": (
            f"pHash within {NEAR_HAMMING} bits, mean thumbnail difference <= {NEAR_MAD:.0%} and "
            f"fine-detail correlation >= {NEAR_DETAIL_CORR}"
        ),
    }
