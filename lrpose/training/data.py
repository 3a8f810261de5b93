"""Training and evaluation data: synthetic crop shards and SPIN-format real data, mixed by ratios,
augmented, and turned into multi-resolution views (paper section 3.2 / 4.1).

A sample is a 224 px person-centred crop with SPIN-style labels: ``part`` (24, 3) SPIN-24
keypoints in crop pixels + confidence, ``S`` (24, 4) 3D keypoints (metres, camera frame) +
confidence, ``pose`` (72) / ``betas`` (10) with ``has_smpl``, and ``has_3d``.

Batches are a pure function of (seed, step): ``StepBatches[t]`` draws its indices and
augmentations from generators seeded by (seed, t), so a resumed run sees exactly the batches it
would have seen, and DDP ranks take disjoint slices of the same batch.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from lrpose.crops import SquareCrop, apply_affine, cut_square, normalize, resize_square
from lrpose.errors import InputError
from lrpose.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle
from lrpose.resolution import degrade, sample_size
from lrpose.training import cctv

HR = 224
# SPIN's left/right permutations
J24_FLIP_PERM = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22]
SMPL_FLIP_PERM = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]


@dataclass
class Sample:
    """One training sample (numpy)."""

    image: np.ndarray  # (224, 224, 3) uint8
    part: np.ndarray  # (24, 3) pixels + conf
    S: np.ndarray  # (24, 4)
    pose: np.ndarray  # (72,)
    betas: np.ndarray  # (10,)
    has_smpl: float
    has_3d: float
    gender: str = ""
    """'m' or 'f' when the data gives it (3DPW), else ''."""


class CropShards:
    """Random access to the samples of ``crops_*.npz`` shards, one shard cached at a time.

    ``keys`` are the arrays read per sample; ``require`` are checked to exist in every shard.
    """

    def __init__(self, folder: Path, keys: tuple[str, ...], require: tuple[str, ...] = ()) -> None:
        self.files = sorted(Path(folder).glob("crops_*.npz"))
        if not self.files:
            raise InputError(f"no crops_*.npz shards in {folder} (make them with 'lrpose synth --kind crops')")
        self.keys = keys
        counts = []
        for f in self.files:
            with _open_shard(f) as z:
                lacking = [k for k in require if k not in z.files]
                if lacking:
                    raise InputError(f"{f} lacks {', '.join(lacking)} (synthesise with a body that has UVs, e.g. the stand-in)")
                lacking = [k for k in keys if k not in z.files]
                if lacking:
                    raise InputError(f"{f} is an incomplete crops shard: it lacks {', '.join(lacking)}")
                counts.append(_shard_array(f, z, "pose").shape[0])
        self.offsets = np.cumsum([0, *counts])
        if not self.offsets[-1]:
            raise InputError(f"the crops shards in {folder} hold no samples")
        self._cache: tuple[int, dict] | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def item(self, i: int) -> dict[str, np.ndarray]:
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        if self._cache is None or self._cache[0] != k:
            f = self.files[k]
            with _open_shard(f) as z:
                arrays = {n: _shard_array(f, z, n) for n in self.keys}
            if any(len(v) != self.offsets[k + 1] - self.offsets[k] for v in arrays.values()):
                raise InputError(f"{f} is not a valid crops shard: its arrays hold different numbers of samples")
            self._cache = (k, arrays)
        j = i - int(self.offsets[k])
        return {n: v[j] for n, v in self._cache[1].items()}


def _open_shard(path: Path):  # noqa: ANN202  (an NpzFile)
    """``np.load`` of a crops shard (no pickles); InputError naming the file when it is not a readable ``.npz``."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"{path} is not a readable crops shard (.npz): {type(e).__name__}: {e}") from None


def _shard_array(path: Path, z, key: str) -> np.ndarray:  # noqa: ANN001
    """One array of an open shard; InputError naming the file when it is truncated or corrupt."""
    try:
        a = z[key]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"{path} is a truncated or corrupt crops shard ({key}: {type(e).__name__}: {e})") from None
    if a.ndim == 0:
        raise InputError(f"{path} is not a valid crops shard: {key} is a scalar")
    return a


class SyntheticCrops(Dataset):
    """Samples from ``lrpose synth --kind crops`` shards (crops of any size are resized to 224)."""

    def __init__(self, folder: Path) -> None:
        self.shards = CropShards(folder, ("images", "part", "S", "pose", "betas", "has_smpl"))

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, i: int) -> Sample:
        z = self.shards.item(i)
        img, part = z["images"], z["part"].copy()
        if img.shape[0] != HR:
            part[:, :2] = (part[:, :2] + 0.5) * HR / img.shape[0] - 0.5
            img = resize_square(img, HR)
        return Sample(img, part, z["S"], z["pose"], z["betas"], float(z["has_smpl"]), 1.0)


class SpinDataset(Dataset):
    """SPIN-format annotations (``imgname, center, scale, part`` and optional ``S, pose, shape, has_smpl``)
    with images under ``img_root``; the crop is the square of side ``scale * 200`` around ``center``."""

    def __init__(self, npz: Path, img_root: Path) -> None:
        try:
            with np.load(npz, allow_pickle=False) as z:
                self.data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise InputError(f"cannot read SPIN annotations {npz}: {type(e).__name__}: {e}") from None
        missing = [k for k in ("imgname", "center", "scale", "part") if k not in self.data]
        if missing:
            raise InputError(f"{npz} lacks SPIN keys: {', '.join(missing)}")
        self.root = Path(img_root)
        n = len(self.data["imgname"])
        if n == 0:
            raise InputError(f"{npz} holds no samples")
        self.has_smpl = self.data.get("has_smpl", np.full(n, 1.0 if "pose" in self.data else 0.0)).astype(np.float32)
        self.genders: list[str] | None = [_gender_code(g) for g in self.data["gender"]] if "gender" in self.data else None
        """Per-sample 'm' / 'f' / '' from the optional ``gender`` array, None without it."""

    def __len__(self) -> int:
        return len(self.data["imgname"])

    def __getitem__(self, i: int) -> Sample:
        d = self.data
        path = self.root / str(d["imgname"][i])
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"cannot read image {path}")
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        side = max(1, int(round(float(d["scale"][i]) * 200)))
        cx, cy = (float(v) for v in d["center"][i])
        sq = SquareCrop(int(round(cx - side / 2)), int(round(cy - side / 2)), side)
        crop = resize_square(cut_square(img, sq), HR)
        to_crop = np.linalg.inv(np.vstack([sq.crop_to_image(HR), [0, 0, 1]]))[:2]
        part = d["part"][i].astype(np.float32).copy()
        part[:, :2] = apply_affine(to_crop, part[:, :2])
        s3 = d["S"][i].astype(np.float32) if "S" in d else np.zeros((24, 4), np.float32)
        pose = d["pose"][i].astype(np.float32) if "pose" in d else np.zeros(72, np.float32)
        betas = d["shape"][i].astype(np.float32) if "shape" in d else np.zeros(10, np.float32)
        gender = self.genders[i] if self.genders is not None else ""
        return Sample(crop, part, s3, pose, betas, float(self.has_smpl[i]), float("S" in d), gender)


def _gender_code(value: object) -> str:
    """'m' / 'f' from a ``gender`` entry (str or bytes, any case); '' for anything else."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    text = text.strip().lower()
    return {"m": "m", "male": "m", "f": "f", "female": "f"}.get(text, "")


class MixedDataset(Dataset):
    """Datasets mixed by ratios (the paper: 30 % H36M, 60 % 2D in-the-wild, 10 % MPI-INF-3DHP)."""

    def __init__(self, datasets: list[Dataset], ratios: list[float]) -> None:
        if len(datasets) != len(ratios) or not datasets:
            raise InputError("give one ratio per dataset")
        self.datasets = datasets
        self.ratios = np.asarray(ratios, np.float64) / np.sum(ratios)
        self.length = max(len(d) for d in datasets)

    def __len__(self) -> int:
        return self.length

    def pick(self, rng: np.random.Generator) -> Sample:
        d = self.datasets[int(rng.choice(len(self.datasets), p=self.ratios))]
        return d[int(rng.integers(len(d)))]

    def __getitem__(self, i: int) -> Sample:
        return self.pick(np.random.default_rng(i))


class SynthStream(Dataset):
    """Synthetic crops rendered on demand (``--data synth:SEED``): item ``i`` is crop ``i`` of the
    generator seeded ``seed`` (``synth.make_crops_shard`` with one crop per shard), so no fixed set
    exists, every index gives a different person, pose, camera and scene, and the same index always
    gives the same crop (resumable, identical across DataLoader workers). ``StepBatches`` walks
    consecutive indices, so a run never sees the same crop twice. Rendered at ``crop_size`` px and
    resized to 224 like the crop shards."""

    stream = True
    LENGTH = 10_000_000
    """Crops per seed (``lrpose synth``'s largest --n): a run of 50,000 steps of batch 16 uses 8 %."""

    def __init__(self, seed: int, crop_size: int = 128, tex_size: int = 64) -> None:
        from lrpose.config import BodyConfig
        from lrpose.training.synth import SynthConfig

        self.cfg = SynthConfig(kind="crops", n=self.LENGTH, seed=seed, crop_size=crop_size, tex_size=tex_size, shard_size=1)
        self.body_cfg = BodyConfig()

    def __len__(self) -> int:
        return self.LENGTH

    def __getitem__(self, i: int) -> Sample:
        from lrpose.training.synth import make_crops_shard

        z = make_crops_shard(self.cfg, self.body_cfg, int(i) % self.LENGTH)
        img, part = z["images"][0], z["part"][0].copy()
        if img.shape[0] != HR:
            part[:, :2] = (part[:, :2] + 0.5) * HR / img.shape[0] - 0.5
            img = resize_square(img, HR)
        return Sample(img, part, z["S"][0], z["pose"][0], z["betas"][0], 1.0, 1.0)


def open_dataset(path: Path, img_root: Path | None = None) -> Dataset:
    """A folder of synthetic crops, ``synth:SEED`` (crops rendered on the fly, ``SynthStream``), or a
    SPIN-format annotation ``.npz`` with its image folder."""
    if str(path).startswith("synth:"):
        try:
            return SynthStream(int(str(path).removeprefix("synth:")))
        except ValueError:
            raise InputError(f"--data {path}: expected synth:SEED with an integer seed") from None
    path = Path(path)
    if path.is_dir():
        return SyntheticCrops(path)
    if path.suffix == ".npz" and path.is_file():
        if img_root is None:
            raise InputError(f"{path} is SPIN-format data: give its image folder with --img-root")
        return SpinDataset(path, Path(img_root))
    raise InputError(f"--data {path} is neither a folder of synthetic crops nor a SPIN-format .npz")


@dataclass(frozen=True)
class AugmentConfig:
    flip: float = 0.5
    rotation_deg: float = 30.0
    rotation_prob: float = 0.4
    color: float = 0.4
    noise_std: float = 6.0
    cctv: cctv.CCTVConfig | None = None
    """CCTV degradations (``training.cctv``): scene-level on the sample, camera-level per view. None: off."""


def flip_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror an SMPL axis-angle pose left/right (SPIN): swap joints, negate y and z."""
    p = pose.reshape(24, 3)[SMPL_FLIP_PERM].copy()
    p[:, 1:] *= -1
    return p.reshape(72)


def augment(s: Sample, rng: np.random.Generator, cfg: AugmentConfig) -> Sample:
    """Flip, in-plane rotation, colour scaling and pixel noise, applied to image and labels alike."""
    img, part, s3, pose = s.image, s.part.copy(), s.S.copy(), s.pose.copy()
    if rng.random() < cfg.flip:
        img = img[:, ::-1]
        part = part[J24_FLIP_PERM]
        part[:, 0] = HR - 1 - part[:, 0]
        s3 = s3[J24_FLIP_PERM]
        s3[:, 0] *= -1
        pose = flip_pose(pose)
    if rng.random() < cfg.rotation_prob:
        angle = float(np.clip(rng.normal(0, cfg.rotation_deg / 2), -cfg.rotation_deg, cfg.rotation_deg))
        m = cv2.getRotationMatrix2D(((HR - 1) / 2, (HR - 1) / 2), angle, 1.0)
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (HR, HR), flags=cv2.INTER_LINEAR, borderValue=0)
        part[:, :2] = apply_affine(m, part[:, :2])
        r3 = np.eye(3)
        r3[:2, :2] = m[:, :2]
        s3[:, :3] = s3[:, :3] @ r3.T
        root = axis_angle_to_rotmat(torch.as_tensor(pose[:3], dtype=torch.float64))
        pose[:3] = rotmat_to_axis_angle(torch.as_tensor(r3) @ root).numpy()
    img = img.astype(np.float32) * rng.uniform(1 - cfg.color, 1 + cfg.color, 3)
    img = img + rng.normal(0, rng.uniform(0, cfg.noise_std), img.shape)
    return Sample(img.clip(0, 255).astype(np.uint8), part, s3, pose, s.betas, s.has_smpl, s.has_3d, s.gender)


def to_tensors(s: Sample, views: list[np.ndarray]) -> dict[str, torch.Tensor]:
    part = s.part.copy()
    part[:, :2] = (part[:, :2] + 0.5) * 2.0 / HR - 1.0  # crop pixels -> [-1, 1] (edges at -0.5, HR - 0.5)
    return {
        "images": torch.stack([normalize(v) for v in views]),
        "part": torch.from_numpy(part.astype(np.float32)),
        "S": torch.from_numpy(s.S.astype(np.float32)),
        "pose": torch.from_numpy(s.pose.astype(np.float32)),
        "betas": torch.from_numpy(s.betas.astype(np.float32)),
        "has_smpl": torch.tensor(s.has_smpl, dtype=torch.float32),
        "has_3d": torch.tensor(s.has_3d, dtype=torch.float32),
    }


class StepBatches(Dataset):
    """``self[t]`` is the batch of training step ``t``: indices and augmentations seeded by (seed, t).

    ``ranges`` are the resolution ranges of the current stage; views come high to low. With DDP,
    rank r keeps samples r, r + world, ... of the global batch.
    """

    def __init__(self, data: Dataset, batch_size: int, seed: int, out_size: int, ranges_for_step, aug: AugmentConfig | None = None,
                 rank: int = 0, world: int = 1) -> None:  # fmt: skip
        self.data, self.batch, self.seed, self.out_size = data, batch_size, seed, out_size
        self.ranges_for_step, self.aug = ranges_for_step, aug or AugmentConfig()
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, t: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, t])
        idx = rng.integers(len(self.data), size=self.batch)
        if getattr(self.data, "stream", False):  # rendered on the fly: consecutive crops, never the same twice
            idx = (t * self.batch + np.arange(self.batch)) % len(self.data)
        ranges = self.ranges_for_step(t)
        items = []
        for k in range(self.rank, self.batch, self.world):
            srng = np.random.default_rng([self.seed, t, k])
            s = augment(self.data[int(idx[k])], srng, self.aug)
            if self.aug.cctv is None:
                views = [degrade(s.image, sample_size(p, srng), self.out_size) for p in ranges]
            else:
                image, part = cctv.scene(s.image, s.part, srng, self.aug.cctv)
                s = Sample(image, part, s.S, s.pose, s.betas, s.has_smpl, s.has_3d, s.gender)
                views = [cctv.view(s.image, sample_size(p, srng), self.out_size, srng, self.aug.cctv) for p in ranges]
            item = to_tensors(s, views)
            item["id"] = torch.tensor(int(idx[k]))
            items.append(item)
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        batch["ranges"] = torch.tensor(ranges)
        return batch


def progressive_ranges(step: int, total_steps: int, num_ranges: int, progressive: bool) -> list[int]:
    """Ranges active at ``step``: stage k (of ``num_ranges`` equal stages) trains ranges 0..k."""
    if not progressive:
        return list(range(num_ranges))
    stage = min(num_ranges - 1, int(math.floor(step * num_ranges / max(total_steps, 1))))
    return list(range(stage + 1))
