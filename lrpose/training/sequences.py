"""Offline feature extraction for the temporal module (the paper's and VIBE's approach).

A frozen RSC-Net reads every person of every synthetic clip (``lrpose synth --kind video``):
each contiguous run of frames where the person is visible becomes one sequence. The run is shown
at ONE low resolution (a random range, never above the person's native size), as a low-resolution
camera would show it, and each frame's box is jittered like a detector's. Stored per frame: phi,
the ground truth (pose, betas, 3D keypoints, 2D keypoints in crop coordinates) and the range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrpose.crops import apply_affine, cut_square, invert_affine, normalize, square_from_box
from lrpose.errors import InputError
from lrpose.files import save_npz
from lrpose.io import FrameSource
from lrpose.models.rscnet import RSCNet
from lrpose.resolution import degrade, sample_size, select_range

FORMAT = "lrpose.sequences"


@dataclass
class Sequences:
    """Per-frame arrays of all sequences concatenated; sequence k is rows ``start[k] : start[k] + length[k]``."""

    features: np.ndarray
    """(F, D) float32 phi."""
    pose: np.ndarray
    """(F, 72) ground-truth axis-angle (camera-frame root)."""
    betas: np.ndarray
    """(F, 10)"""
    S: np.ndarray
    """(F, 24, 4) ground-truth 3D keypoints (metres) + confidence."""
    part: np.ndarray
    """(F, 24, 3) ground-truth 2D keypoints in crop coordinates [-1, 1] + visibility."""
    range_index: np.ndarray
    """(F,) int8"""
    start: np.ndarray
    """(S,) int64"""
    length: np.ndarray
    """(S,) int64"""
    rscnet_id: str

    @classmethod
    def load(cls, path: Path) -> Sequences:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z.get("format", "")) != FORMAT:
                    raise InputError(f"{path} is not an lrpose sequence-feature file")
                return cls(**{k: z[k] for k in cls.__dataclass_fields__ if k != "rscnet_id"}, rscnet_id=str(z["rscnet_id"]))
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"cannot read sequence features {path}: {e}") from None

    def save(self, path: Path) -> None:
        save_npz(path, {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "format": FORMAT})

    def windows(self, length: int) -> np.ndarray:
        """(N, 2) [sequence, first frame] of every window of ``length`` frames."""
        return np.array([(k, s) for k, n in enumerate(self.length) for s in range(n - length + 1)], np.int64).reshape(-1, 2)


def _runs(present: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """[start, end) of each run of True of at least ``min_len`` frames."""
    runs, start = [], None
    for t, p in enumerate([*present.tolist(), False]):
        if p and start is None:
            start = t
        elif not p and start is not None:
            if t - start >= min_len:
                runs.append((start, t))
            start = None
    return runs


@torch.no_grad()
def extract(
    clips: Path,
    model: RSCNet,
    rscnet_id: str,
    seed: int = 0,
    min_len: int = 16,
    jitter: float = 0.03,
    max_range: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> Sequences:
    """Features and ground truth of every person-run in the clips of folder ``clips``."""
    gts = sorted(Path(clips).glob("clip_*.npz"))
    if not gts:
        raise InputError(f"{clips} has no synthetic clips (clip_*.npz + .mp4 from 'lrpose synth --kind video')")
    model.eval()
    size = model.config.input_size
    cols: dict[str, list] = {k: [] for k in ("features", "pose", "betas", "S", "part", "range_index")}
    lengths = []
    for n_clip, gt_path in enumerate(gts):
        with np.load(gt_path) as z:
            gt = {k: z[k] for k in ("boxes", "present", "pose", "betas", "S", "part")}
        rng = np.random.default_rng([seed, n_clip])
        frames = [f.image for f in FrameSource(gt_path.with_suffix(".mp4"))]
        for person in range(gt["present"].shape[1]):
            for a, b in _runs(gt["present"][:, person], min_len):
                boxes = gt["boxes"][a:b, person]
                native = int(np.median([square_from_box(x).side for x in boxes]))
                p = int(rng.integers(select_range(native), max_range + 1))
                side = min(native, sample_size(p, rng))
                crops, parts = [], []
                for t, box in zip(range(a, b), boxes, strict=True):
                    w, h = box[2] - box[0], box[3] - box[1]
                    noisy = box + rng.normal(0, jitter, 4) * np.array([w, h, w, h])
                    sq = square_from_box(noisy)
                    crops.append(normalize(degrade(cut_square(frames[t], sq), side, size)))
                    uv = gt["part"][t, person]
                    crop_px = apply_affine(invert_affine(sq.crop_to_image(size)), uv[:, :2])
                    parts.append(np.concatenate([(crop_px + 0.5) * 2.0 / size - 1.0, uv[:, 2:]], 1))
                feats = torch.cat([model(x, select_range(side)).features for x in torch.stack(crops).split(64)])
                cols["features"].append(feats.numpy())
                cols["pose"].append(gt["pose"][a:b, person])
                cols["betas"].append(np.repeat(gt["betas"][person][None], b - a, 0))
                cols["S"].append(gt["S"][a:b, person])
                cols["part"].append(np.stack(parts))
                cols["range_index"].append(np.full(b - a, select_range(side), np.int8))
                lengths.append(b - a)
        if progress:
            progress(n_clip + 1, len(gts))
    if not lengths:
        raise InputError(f"no person in {clips} is visible for {min_len} consecutive frames")
    arrays = {k: np.concatenate(v).astype(np.float32 if k != "range_index" else np.int8) for k, v in cols.items()}
    length = np.array(lengths, np.int64)
    return Sequences(**arrays, start=np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64), length=length, rscnet_id=rscnet_id)


def features_for(
    data: Path,
    model: RSCNet,
    rscnet_id: str,
    cache: Path | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Sequences, str]:
    """Sequence features of ``data`` for the RSC-Net ``rscnet_id``, and how they were obtained.

    ``data`` is a folder of synthetic clips (features extracted, then saved to ``cache``) or an
    extracted ``.npz`` (must belong to ``rscnet_id``). A ``cache`` file of the same RSC-Net is reused.
    """
    from lrpose.models.checkpoint import same_weights

    data = Path(data)
    if data.is_file():
        seqs = Sequences.load(data)
        if not same_weights(seqs.rscnet_id, rscnet_id):
            raise InputError(f"{data} holds features of {seqs.rscnet_id}, not of {rscnet_id}")
        return seqs, f"read {data}"
    if cache is not None and cache.is_file():
        seqs = Sequences.load(cache)
        if seqs.rscnet_id == rscnet_id:
            return seqs, f"reusing {cache}"
    if not data.is_dir():
        raise InputError(f"--data {data} is neither a folder of clips nor a features .npz")
    seqs = extract(data, model, rscnet_id, seed=seed, progress=progress)
    if cache is not None:
        seqs.save(cache)
    return seqs, f"extracted from {data}"
