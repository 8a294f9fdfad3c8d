"""One exact sort of every pixel score, shared by P-AUROC, pixel AP, pixel F1-max and AU-PRO.

Fast path (float32 maps, the normal case): each pixel becomes one uint64 whose high 32 bits are an
order-preserving key of its score and whose low 32 bits are its payload (the mask bit, or the
global id of its ground-truth region, 0 for a normal pixel). Sorting these integers (np.sort, a
SIMD sort on x86) is several times faster than np.argsort of the scores, and it carries the
payload along, so no index array and no gather are needed. Ties are runs of equal high words and
only the last point of each run is kept, so the order inside a run changes no count; the packed
sort fixes that order anyway (payload ascending), which makes AU-PRO's float sums reproducible to
the bit. Maps that float32 cannot hold exactly are keyed by their dense ranks (np.unique, one
extra sort) and then take the same path, so every input gives bit-identical results for the same
ranking.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from .ranking import RankCounts, ap_from_counts, auroc_from_counts, counts_from_sorted, f1_max_from_counts
from .validation import check_maps_masks


@dataclass(frozen=True)
class PixelRanking:
    counts: RankCounts
    positive_payload: np.ndarray | None  # payload of each positive pixel in descending score order


def float32_order_key(scores: np.ndarray) -> np.ndarray:
    """uint32 keys whose unsigned order is the numeric order of finite float32 scores (-0.0 == 0.0)."""
    bits = scores.view(np.uint32)
    key = (bits.view(np.int32) >> 31).view(np.uint32)  # all ones for negative scores, else zero
    key |= np.uint32(0x80000000)
    key ^= bits  # negative: every bit flipped; non-negative: sign bit set
    key[key == np.uint32(0x7FFFFFFF)] = np.uint32(0x80000000)  # -0.0 ties with +0.0
    return key


def rank_pixels(maps: np.ndarray, payload: np.ndarray, keep_payload: bool) -> PixelRanking:
    """Rank validated maps; `payload` (bool or uint32, same shape) is nonzero on positive pixels."""
    flat = maps.reshape(-1)
    if maps.dtype == np.float32:
        key = float32_order_key(flat)
    else:  # dense ranks are an order key too (one extra sort, only for maps float32 cannot hold)
        key = np.unique(flat, return_inverse=True)[1].astype(np.uint32)
    packed = key.astype(np.uint64)
    del key
    packed <<= np.uint64(32)
    packed |= payload.reshape(-1)
    packed.sort()
    words = packed.view(np.uint32).reshape(-1, 2)
    high, low = (1, 0) if sys.byteorder == "little" else (0, 1)
    values_desc, payload_desc = words[::-1, high], words[::-1, low]
    positive_desc = payload_desc != 0
    counts = counts_from_sorted(values_desc, positive_desc)
    kept = payload_desc[positive_desc] if keep_payload else None
    return PixelRanking(counts, kept)


def pixel_counts(maps, masks) -> RankCounts:
    maps, masks = check_maps_masks(maps, masks)
    return rank_pixels(maps, masks, keep_payload=False).counts


def pixel_auroc(maps, masks) -> float:
    """Exact ROC AUC over every pixel of every image, normal images included (one sort)."""
    return auroc_from_counts(pixel_counts(maps, masks))


def pixel_ap(maps, masks) -> float:
    """Average precision over every pixel (sklearn's average_precision_score, step-wise)."""
    return ap_from_counts(pixel_counts(maps, masks))


def pixel_f1_max(maps, masks) -> float:
    """Best F1 over every distinct pixel threshold (anomalous iff score >= threshold)."""
    return f1_max_from_counts(pixel_counts(maps, masks))
