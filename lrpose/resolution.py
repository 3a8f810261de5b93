"""The P = 5 resolution ranges of RSC-Net, how a crop picks its row of alphas, and the one
low-resolution degradation ``degrade`` (training, evaluation, feature extraction and the texture
network use it) with its two methods (``DEGRADE_METHODS``):

- ``"opencv"``: area averaging down, OpenCV bicubic up (lrpose's training and feature extraction);
- ``"official"``: what the official RSC-Net ``eval.py`` and training data do with
  ``scipy.misc.imresize(float_img, interp='bicubic')``: the float image's value range stretched to
  0-255 and rounded to uint8 (scipy's ``bytescale``), Pillow bicubic down to the side, Pillow bicubic
  back up (``lrpose eval``'s default).

Ranges are chosen by the side of the person crop in source pixels, not by the person's height: the
crop (the person box padded ``--box-scale``, 1.2x, or the whole image given as a crop) is what the
network sees and what RSC-Net degrades to each resolution in training and in the official
evaluation, so a person h px tall in a tight box is in the range of 1.2 h. Thresholds (the official code's):
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


DEGRADE_METHODS = ("official", "opencv")


def degrade(img: np.ndarray, side: int, out_size: int, method: str = "opencv") -> np.ndarray:
    """The paper's low-resolution synthesis of a square (S, S, 3) uint8 crop: shrink it to ``side`` px,
    enlarge to ``out_size``; (out_size, out_size, 3) uint8. ``side >= S`` just resizes to ``out_size``
    (unchanged when S == out_size). ``method`` is one of ``DEGRADE_METHODS`` (see the module docstring)."""
    if method == "official":
        return _degrade_official(img, side, out_size)
    if method != "opencv":
        raise ValueError(f"degradation method must be one of {', '.join(DEGRADE_METHODS)}, got '{method}'")
    from lrpose.crops import resize_square  # imported here: the CLI reads the ranges without loading OpenCV and torch

    if side < img.shape[0]:
        img = resize_square(img, side)
    return resize_square(img, out_size)


def bytescale(img: np.ndarray) -> np.ndarray:
    """scipy's ``bytescale`` of a float image: its [min, max] stretched to [0, 255], rounded half up."""
    data = img.astype(np.float32)
    lo, hi = float(data.min()), float(data.max())
    scaled = (data - lo) * (255.0 / (hi - lo if hi > lo else 1.0))
    return (scaled.clip(0, 255) + 0.5).astype(np.uint8)


def _degrade_official(img: np.ndarray, side: int, out_size: int) -> np.ndarray:
    from PIL import Image  # imported here: only evaluation needs Pillow

    def resize(a: np.ndarray, n: int) -> np.ndarray:
        return np.asarray(Image.fromarray(a).resize((n, n), Image.Resampling.BICUBIC))

    if side < img.shape[0]:
        img = resize(bytescale(img), side)  # the official code resizes float pixels: bytescale first
    return img.copy() if img.shape[0] == out_size else resize(img, out_size)
