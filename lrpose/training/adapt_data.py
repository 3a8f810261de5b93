"""Training batches of ``lrpose adapt``: pseudo-labelled crops of the user's footage, each seen at its
native resolution and at lower ranges (the paper's resolution views), mixed with synthetic people
rendered on the fly with exact labels (to limit drift).

A batch is a pure function of (seed, step), like ``lrpose.training.data.StepBatches``, so a resumed
run sees the batches it would have seen. All samples of a step share the ranges of its views
(one forward per view, as in training), high to low: the native range ``r0`` of the step's
pseudo-labels, ``min(r0 + 1, 4)`` and 4.
"""

from __future__ import annotations

import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.config import BodyConfig
from lrpose.crops import normalize, resize_square
from lrpose.geometry import weak_perspective_project
from lrpose.models.rscnet import RSCNet
from lrpose.resolution import LOWER_BOUNDS, NUM_RANGES, degrade, sample_size, select_range
from lrpose.training.data import flip_pose
from lrpose.training.pseudo import LabelSet

SYNTH_ID_BASE = 1 << 40
"""Feature-queue ids of synthetic samples start here (pseudo-labels use their index)."""


def view_ranges(r0: int) -> list[int]:
    """The ranges of a step's three views, high to low, for pseudo-labels of native range ``r0``."""
    return [r0, min(r0 + 1, NUM_RANGES - 1), NUM_RANGES - 1]


def view_side(range_index: int, native: int, rng: np.random.Generator) -> int:
    """A crop side (px) inside ``range_index`` and not above the crop's ``native`` side."""
    return min(sample_size(range_index, rng), int(native))


def _colour_noise(img: np.ndarray, rng: np.random.Generator, color: float = 0.3, noise: float = 4.0) -> np.ndarray:
    out = img.astype(np.float32) * rng.uniform(1 - color, 1 + color, 3)
    out = out + rng.normal(0, rng.uniform(0, noise), out.shape)
    return out.clip(0, 255).astype(np.uint8)


def pseudo_views(
    labels: LabelSet, index: int, ranges: list[int], rng: np.random.Generator, size: int, flip: bool
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    """One pseudo-label's views ``(V, 3, size, size)`` (normalised) and its labels after the flip:
    pose (72,), betas (10,), crop camera (3,). The first view is the crop at its native resolution;
    the others are degraded to a side inside their range. Flipping mirrors image, pose and camera alike."""
    img, pose, cam = labels.crops[index], labels.pose[index].copy(), labels.cam[index].copy()
    if flip:
        img, pose = img[:, ::-1], flip_pose(pose)
        cam[1] = -cam[1]  # weak perspective: u = s (X + tx); a mirrored body has X -> -X, so tx -> -tx
    img = _colour_noise(resize_square(np.ascontiguousarray(img), size), rng)
    native = int(labels.native[index])
    views = [img if k == 0 else degrade(img, view_side(p, native, rng), size) for k, p in enumerate(ranges)]
    return torch.stack([normalize(v) for v in views]), pose, labels.betas[index], cam


@torch.no_grad()
@torch.no_grad()
def network_outputs(model: RSCNet, labels: LabelSet, rows: np.ndarray, batch: int = 64) -> tuple[torch.Tensor, ...]:
    """RSC-Net in eval mode (its mode is restored) on the crops ``rows`` (R,) of ``labels``, each at its native
    range, ``batch`` at a time -> (R, D) phi, (R, 24, 3, 3) rotations, (R, 10) betas, (R, 3) crop cameras."""
    was_training = model.training
    model.eval()
    outs = []
    for start in range(0, len(rows), batch):
        sl = rows[start : start + batch]
        out = model(torch.stack([normalize(c) for c in labels.crops[sl]]), torch.tensor([select_range(int(n)) for n in labels.native[sl]]))
        outs.append((out.features, out.rotmats, out.betas, out.cam))
    model.train(was_training)
    if not outs:
        return torch.zeros(0, model.feature_dim), torch.zeros(0, 24, 3, 3), torch.zeros(0, 10), torch.zeros(0, 3)
    return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))


def labels_from_params(body: BodyModel, pose: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoint labels of pseudo-labels from their SMPL parameters: (B, 24, 4) 3D SPIN keypoints
    (metres, confidence 1) and (B, 24, 3) 2D keypoints ``[u, v, 1]`` in [-1, 1] crop units (through
    the fit's weak-perspective camera ``cam`` (B, 3)), from (B, 72) ``pose`` and (B, 10) ``betas``."""
    j24 = body.spin_j24(body.forward_axis_angle(pose, betas))
    ones = torch.ones(*j24.shape[:2], 1)
    return torch.cat([j24, ones], -1), torch.cat([weak_perspective_project(j24, cam), ones], -1)


class AdaptBatches:
    """``batches[t]``: the batch of step ``t`` (dict of tensors; ``images`` (B, V, 3, S, S), labels as
    ``lrpose.training.data.to_tensors``, ``id``, ``ranges`` (V,), ``synthetic`` (B,) bool)."""

    def __init__(self, labels: LabelSet, body: BodyModel, body_cfg: BodyConfig, size: int, batch: int, synth_batch: int,
                 seed: int) -> None:  # fmt: skip
        self.labels, self.body, self.body_cfg, self.size = labels, body, body_cfg, size
        self.batch, self.synth_batch, self.seed = batch, synth_batch, seed
        self.range_of = np.array([select_range(int(n)) for n in labels.native], np.int64)
        self.groups = {int(r): np.nonzero(self.range_of == r)[0] for r in np.unique(self.range_of)}
        self.weights = np.array([len(v) for v in self.groups.values()], np.float64)

    def __getitem__(self, t: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, t, 7])
        r0 = list(self.groups)[int(rng.choice(len(self.groups), p=self.weights / self.weights.sum()))]
        ranges = view_ranges(r0)
        idx = rng.choice(self.groups[r0], size=self.batch, replace=len(self.groups[r0]) < self.batch)
        items = [pseudo_views(self.labels, int(i), ranges, np.random.default_rng([self.seed, t, k]), self.size, bool(rng.random() < 0.5))
                 for k, i in enumerate(idx)]  # fmt: skip
        pose = torch.from_numpy(np.stack([it[1] for it in items])).float()
        betas = torch.from_numpy(np.stack([it[2] for it in items])).float()
        s3, part = labels_from_params(self.body, pose, betas, torch.from_numpy(np.stack([it[3] for it in items])).float())
        batch = {"images": torch.stack([it[0] for it in items]), "pose": pose, "betas": betas, "S": s3, "part": part,
                 "id": torch.from_numpy(idx.astype(np.int64))}  # fmt: skip
        if self.synth_batch:
            batch = _cat(batch, self._synthetic(t, ranges))
        n = batch["images"].shape[0]
        batch.update(has_smpl=torch.ones(n), has_3d=torch.ones(n), ranges=torch.tensor(ranges))
        batch["synthetic"] = torch.arange(n) >= self.batch
        return batch

    def _synthetic(self, t: int, ranges: list[int]) -> dict[str, torch.Tensor]:
        """``synth_batch`` synthetic people (``lrpose synth``'s crops, shard ``t`` of this run's seed) at the step's ranges."""
        from lrpose.training.data import to_tensors
        from lrpose.training.synth import SynthConfig, make_crops_shard

        threads = torch.get_num_threads()
        crop = min(224, 2 * self.size)
        cfg = SynthConfig(kind="crops", n=10_000_000, seed=self.seed + 1, crop_size=crop, tex_size=64, shard_size=self.synth_batch)
        shard = make_crops_shard(cfg, self.body_cfg, t)
        torch.set_num_threads(threads)  # the synthesiser sets one thread for its worker processes
        items = []
        for k, s in enumerate(_samples(shard)):
            srng = np.random.default_rng([self.seed, t, 1000 + k])
            native = sample_size(ranges[0], srng) if ranges[0] else LOWER_BOUNDS[0]
            views = [degrade(_colour_noise(s.image, srng), view_side(p, native, srng), self.size) for p in ranges]
            item = to_tensors(s, views)
            item["id"] = torch.tensor(SYNTH_ID_BASE + t * self.synth_batch + k)
            items.append(item)
        return {k: torch.stack([it[k] for it in items]) for k in ("images", "pose", "betas", "S", "part", "id")}


def _samples(shard: dict[str, np.ndarray]) -> list:
    """A synthetic crops shard's people as 224 px ``Sample`` s (keypoints rescaled with the image)."""
    from lrpose.training.data import HR, Sample

    out = []
    for k in range(len(shard["pose"])):
        img, part = shard["images"][k], shard["part"][k].copy()
        part[:, :2] = (part[:, :2] + 0.5) * HR / img.shape[0] - 0.5
        out.append(Sample(resize_square(img, HR), part, shard["S"][k], shard["pose"][k], shard["betas"][k], 1.0, 1.0))
    return out


def _cat(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([a[k], b[k]]) for k in a}
