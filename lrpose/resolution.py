"""The P = 5 resolution ranges of RSC-Net, how a crop picks its row of alphas, and the one
low-resolution degradation (training, evaluation, feature extraction and the texture network use it).

Ranges by the side of the person crop in source pixels (the official code's thresholds):
``>= 224 -> 0``, ``[128, 224) -> 1``, ``[64, 128) -> 2``, ``[40, 64) -> 3``, ``< 40 -> 4``.
The paper trains down to 24 px; smaller crops still use range 4 but are flagged.
Evaluation uses the middle of each training range: 224, 176, 96, 52, 32.
"""

from __future__ import annotations

import numpy as np

NUM_RANGES = 5
LOWER_BOUNDS = (224, 128, 64, 40, 24)
"""Smallest side (px) of each range; range 0 is 224 and above."""
UPPER_BOUNDS = (None, 224, 128, 64, 40)
"""Exclusive upper bound of ranges 1..4."""
EVAL_SIZES = (224, 176, 96, 52, 32)
MIN_SUPPORTED_SIZE = 24


def select_range(native_size: float) -> int:
    """Range index 0..4 of a crop whose side is ``native_size`` pixels in the source image."""
    for p, lo in enumerate(LOWER_BOUNDS[:-1]):
        if native_size >= lo:
            return p
    return NUM_RANGES - 1


def below_minimum(native_size: float) -> bool:
    """True when the crop is smaller than the 24 px the model was trained for."""
    return native_size < MIN_SUPPORTED_SIZE


def sample_size(range_index: int, rng: np.random.Generator) -> int:
    """A random crop side (px) inside range ``range_index`` (224 for range 0), for multi-resolution training."""
    if range_index == 0:
        return LOWER_BOUNDS[0]
    return int(rng.integers(LOWER_BOUNDS[range_index], UPPER_BOUNDS[range_index]))


def degrade(img: np.ndarray, side: int, out_size: int) -> np.ndarray:
    """The paper's low-resolution synthesis of a square (S, S, C) uint8 crop: shrink it to ``side`` px
    (area averaging), enlarge to ``out_size`` (bicubic). ``side >= S`` just resizes to ``out_size``."""
    from lrpose.crops import resize_square  # imported here: the CLI reads the ranges without loading OpenCV and torch

    if side < img.shape[0]:
        img = resize_square(img, side)
    return resize_square(img, out_size)
