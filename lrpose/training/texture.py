"""Texture network training and evaluation (paper sections 3.6, 4.4) on synthetic crops.

Per sample: the 224 px crop x_H, its low-resolution version x_L (shrunk to ``low_res`` px, then
enlarged to the network input, bicubic), the mesh and camera (the synthetic ground truth, or an
RSC-Net estimate on x_H when ``--weights`` is given), the ground-truth UV map and body mask.
The predicted texture T(x_L) is rendered on the mesh with the differentiable torch renderer,
R(M(x_H), delta(x_H), T(x_L)). Losses: masked L1 on the UV texels visible in the view, L1 between
the render and x_H inside the body mask, and optionally the ReID feature loss (Eq. 13) with a
user-supplied ResNet-50 re-identification backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from lrpose.body import BodyModel
from lrpose.config import check_choice, check_minimums
from lrpose.crops import normalize, resize_square
from lrpose.errors import AssetFormatError, InputError
from lrpose.geometry import SPIN_FOCAL_PX
from lrpose.models.checkpoint import load_rscnet, load_texture, read_weights_only, save
from lrpose.models.official import spin_to_official_key
from lrpose.models.texture import TexGlo, TexGloConfig
from lrpose.render import Fragments, project_to_screen, rasterize, sample_texture, texel_visibility
from lrpose.training.data import CropShards
from lrpose.training.plumbing import RunFolder, config_json, resume_state


class TextureCrops(Dataset):
    """Synthetic crop shards with ground-truth UV textures (``lrpose synth --kind crops`` on a body with UVs)."""

    KEYS = ("images", "mask", "texture", "pose", "betas", "trans")

    def __init__(self, folder: Path) -> None:
        self.shards = CropShards(folder, self.KEYS, require=("texture",))

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return self.shards.item(i)


class TextureFolder(Dataset):
    """A user's pedestrian images (Market-1501-style crops) with person masks of the same file name
    (PNG, non-zero = person) in ``masks``. Each image is padded to a square and resized to 224 px.
    There is no ground-truth texture: training uses the image losses only."""

    def __init__(self, images: Path, masks: Path) -> None:
        self.images = sorted(p for p in Path(images).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not self.images:
            raise InputError(f"no .png/.jpg images in {images}")
        self.masks = [Path(masks) / (p.stem + ".png") for p in self.images]
        missing = [m.name for m in self.masks if not m.exists()]
        if missing:
            raise InputError(f"{len(missing)} image(s) have no mask in {masks} (e.g. {missing[0]})")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        import cv2

        from lrpose.crops import cut_square, square_from_box

        img = cv2.imread(str(self.images[i]), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(self.masks[i]), cv2.IMREAD_GRAYSCALE)
        if img is None or mask is None:
            raise InputError(f"cannot read {self.images[i]} or its mask")
        h, w = img.shape[:2]
        sq = square_from_box(np.array([0.0, 0.0, w, h]), scale=1.0)
        rgb = resize_square(cut_square(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), sq), 224)
        m = resize_square(cut_square(mask[..., None], sq)[..., 0], 224) > 127
        return {"images": rgb, "mask": m}


class RSCNetMeshes(Dataset):
    """Adds the mesh and camera of a frozen RSC-Net run on each 224 px image (the paper's
    M(x_H), delta(x_H)) as ``pose``/``betas``/``trans``, replacing any ground truth."""

    def __init__(self, data: Dataset, model) -> None:
        self.data, self.model = data, model.eval()

    def __len__(self) -> int:
        return len(self.data)

    @torch.no_grad()
    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        from lrpose.geometry import SPIN_FOCAL_PX, crop_cam_to_translation, rotmat_to_axis_angle

        item = dict(self.data[i])
        hr = resize_square(item["images"], 224)
        out = self.model(normalize(resize_square(hr, self.model.config.input_size))[None], 0)
        item["pose"] = rotmat_to_axis_angle(out.rotmats[0]).reshape(72).numpy()
        item["betas"] = out.betas[0].numpy()
        item["trans"] = crop_cam_to_translation(out.cam, SPIN_FOCAL_PX, float(item["images"].shape[0]))[0].numpy()
        return item


def low_res_input(hr: np.ndarray, low_res: int, input_size: int) -> torch.Tensor:
    """(3, S, S) network input: the crop shrunk to ``low_res`` px and enlarged back (the paper: 32 -> 128)."""
    return normalize(resize_square(resize_square(hr, low_res), input_size))


@dataclass(frozen=True)
class RenderedBatch:
    fragments: Fragments
    images: torch.Tensor  # (B, R, R, 3) x_H at render size in [0, 1]
    mask: torch.Tensor  # (B, R, R) body mask (rendered and ground truth)
    visible: torch.Tensor  # (B, T, T) texels seen in this view


@torch.no_grad()
def prepare(samples: list[dict], body: BodyModel, render_size: int, tex_size: int) -> RenderedBatch:
    """Rasterise the ground-truth meshes of a batch at ``render_size`` (no gradient needed here)."""
    pose = torch.from_numpy(np.stack([s["pose"] for s in samples])).float()
    betas = torch.from_numpy(np.stack([s["betas"] for s in samples])).float()
    trans = torch.from_numpy(np.stack([s["trans"] for s in samples])).float()
    verts = body.forward_axis_angle(pose, betas, trans).vertices
    crop = samples[0]["images"].shape[0]
    f = SPIN_FOCAL_PX * render_size / crop
    c = torch.tensor([[render_size / 2 - 0.5] * 2]).expand(len(samples), 2)
    frags = rasterize(project_to_screen(verts, torch.zeros_like(trans), f, c), body.faces, render_size, render_size)
    images = torch.from_numpy(np.stack([resize_square(s["images"], render_size) for s in samples])).float() / 255.0
    gt_mask = torch.from_numpy(np.stack([resize_square(s["mask"].astype(np.uint8) * 255, render_size) > 127 for s in samples]))
    return RenderedBatch(frags, images, frags.mask & gt_mask, texel_visibility(frags, body.uv, body.uv_faces, tex_size))


def texture_losses(
    pred: torch.Tensor, gt_tex: torch.Tensor | None, rb: RenderedBatch, body: BodyModel
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(UV L1 on visible texels (0 without ground truth), image L1 inside the body mask, the render (B, R, R, 3))."""
    vis = rb.visible[:, None].expand_as(pred)
    uv_l1 = (pred - gt_tex).abs()[vis].mean() if gt_tex is not None and bool(vis.any()) else pred.new_zeros(())
    render = sample_texture(rb.fragments, body.uv, body.uv_faces, pred)
    m = rb.mask[..., None].expand_as(render)
    img_l1 = (render - rb.images).abs()[m].mean() if bool(m.any()) else pred.new_zeros(())
    return uv_l1, img_l1, render


class ReIDFeatures(torch.nn.Module):
    """A user-supplied ResNet-50 re-identification backbone (torchvision-layout state dict, e.g. a
    BoT/PCB ReID model's backbone), used as a frozen feature extractor for the ReID loss (Eq. 13)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        from lrpose.models.backbone import ResolutionAwareResNet

        obj = read_weights_only(path)
        sd = obj.get("state_dict", obj.get("model", obj)) if isinstance(obj, dict) else None
        if not isinstance(sd, dict):
            raise AssetFormatError(f"{path}: no state dict of a ResNet-50 found")
        sd = {spin_to_official_key(k.removeprefix("module.").removeprefix("base.").removeprefix("backbone.")): v for k, v in sd.items()}
        self.net = ResolutionAwareResNet(50)
        own = self.net.state_dict()
        missing = [k for k in own if ".alphas." not in k and "num_batches_tracked" not in k and k not in sd]
        if missing:
            raise AssetFormatError(f"{path}: not a torchvision-layout ResNet-50 (missing {', '.join(missing[:5])} ...)")
        self.net.load_state_dict({k: sd.get(k, v) for k, v in own.items()})
        self.net.eval().requires_grad_(False)

    def forward(self, images_01: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) in [0, 1] -> (B, 2048) L2-normalised features (256 x 128 input as in ReID)."""
        mean = torch.tensor([0.485, 0.456, 0.406], device=images_01.device)
        std = torch.tensor([0.229, 0.224, 0.225], device=images_01.device)
        x = ((images_01 - mean) / std).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(256, 128), mode="bilinear", align_corners=False)
        return F.normalize(self.net(x, 0).mean(dim=(2, 3)), dim=-1)


@dataclass(frozen=True)
class TextureTrainConfig:
    data: str
    out: str
    steps: int = 1000
    batch_size: int = 8
    lr: float = 2e-4
    low_res: int = 32
    render_size: int = 112
    uv_weight: float = 1.0
    image_weight: float = 1.0
    reid_weight: float = 0.0
    reid_weights: str | None = None
    ckpt_every: int = 200
    seed: int = 0
    masks: str | None = None
    """With ``data`` a folder of pedestrian images: the folder of their masks."""
    mesh_weights: str | None = None
    """RSC-Net checkpoint giving mesh and camera (required for image folders; optional for synthetic data)."""
    input_size: int = 128
    tex_size: int = 128
    width: int = 32
    global_context: bool = True
    fusion: str = "sum"

    def __post_init__(self) -> None:
        check_choice("fusion", self.fusion, ("sum", "concat"))
        check_minimums(self, steps=1, batch_size=1, ckpt_every=1, low_res=1, tex_size=1, width=1, reid_weight=0.0)


def _batch(
    data: Dataset, idx: np.ndarray, cfg: TextureTrainConfig, body: BodyModel
) -> tuple[torch.Tensor, torch.Tensor | None, RenderedBatch]:
    """(x_L (B, 3, S, S) normalised, ground-truth UV maps (B, 3, T, T) in [0, 1] or None, the rasterised batch)."""
    samples = [data[int(i)] for i in idx]
    x = torch.stack([low_res_input(s["images"], cfg.low_res, cfg.input_size) for s in samples])
    gt = None
    if "texture" in samples[0]:
        gt = torch.from_numpy(np.stack([resize_square(s["texture"], cfg.tex_size) for s in samples])).permute(0, 3, 1, 2).float() / 255.0
    return x, gt, prepare(samples, body, cfg.render_size, cfg.tex_size)


def texture_dataset(cfg: TextureTrainConfig) -> Dataset:
    """Synthetic crops (with ground-truth textures) or an image folder with masks; meshes from RSC-Net
    when ``cfg.mesh_weights`` is given (required for image folders)."""
    folder = Path(cfg.data)
    if not folder.is_dir():
        raise InputError(f"--data {folder} is not a folder")
    if any(folder.glob("crops_*.npz")):
        data: Dataset = TextureCrops(folder)
    else:
        if not cfg.masks or not cfg.mesh_weights:
            raise InputError(
                f"{folder} holds no synthetic crops: for a folder of pedestrian images give --masks DIR and --weights RSCNET.pt"
            )
        data = TextureFolder(folder, Path(cfg.masks))
    if cfg.mesh_weights:
        data = RSCNetMeshes(data, load_rscnet(Path(cfg.mesh_weights))[0])
    return data


def _setup(cfg: TextureTrainConfig, resume: Path | None) -> tuple[TexGlo, torch.optim.Optimizer, ReIDFeatures | None, int]:
    """Seed, build (or load) the network and optimizer, load the ReID backbone; on resume restore the
    optimizer and the torch RNG. Returns (network in train mode, optimizer, ReID features or None, start step)."""
    torch.manual_seed(cfg.seed)
    net = TexGlo(
        TexGloConfig(
            input_size=cfg.input_size, tex_size=cfg.tex_size, width=cfg.width, global_context=cfg.global_context, fusion=cfg.fusion
        )
    )
    optim = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    reid = ReIDFeatures(Path(cfg.reid_weights)) if cfg.reid_weights else None
    if cfg.reid_weight > 0 and reid is None:
        raise InputError(
            "--reid-weight needs --reid-weights FILE: a ResNet-50 person re-identification backbone (torchvision-layout state dict)"
        )
    start = 0
    if resume is not None:
        state = resume_state(resume, cfg)
        net, _ = load_texture(resume)
        optim = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        optim.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["step"])
    return net.train(), optim, reid, start


def _step(
    net: TexGlo,
    optim: torch.optim.Optimizer,
    reid: ReIDFeatures | None,
    cfg: TextureTrainConfig,
    body: BodyModel,
    batch: tuple[torch.Tensor, torch.Tensor | None, RenderedBatch],
) -> dict[str, float]:
    """One optimisation step on ``batch`` = (x_L (B, 3, S, S), ground-truth UV map or None, RenderedBatch); the losses as floats."""
    x, gt, rb = batch
    pred = net(x)
    uv_l1, img_l1, render = texture_losses(pred, gt, rb, body)
    reid_l = pred.new_zeros(())
    if reid is not None and cfg.reid_weight > 0:
        composite = torch.where(rb.mask[..., None], render, rb.images)
        reid_l = (reid(composite) - reid(rb.images).detach()).pow(2).sum(-1).mean()
    loss = cfg.uv_weight * uv_l1 + cfg.image_weight * img_l1 + cfg.reid_weight * reid_l
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    return {
        "loss": float(loss.detach()),
        "uv_l1": float(uv_l1.detach()),
        "image_l1": float(img_l1.detach()),
        "reid": float(reid_l.detach()),
    }


def train_texture(
    cfg: TextureTrainConfig, body: BodyModel, resume: Path | None = None, progress: Callable[[int, int, dict], None] | None = None
) -> Path:
    """Train TexGlo on synthetic crops or masked pedestrian images (resumable); returns ``out/last.pt``
    (format ``lrpose.texture``, recording ``body.body_id``; the resumable state under ``train_state``)."""
    if body.uv is None:
        raise InputError("texture training needs a body model with UVs (the stand-in has them; the real SMPL file has none)")
    data = texture_dataset(cfg)
    net, optim, reid, start = _setup(cfg, resume)

    def save_run(path: Path, step: int) -> None:
        state = {"step": step, "optimizer": optim.state_dict(), "torch_rng": torch.get_rng_state(), "config": config_json(cfg)}
        meta = {"steps": step, "train_config": config_json(cfg)}
        save(path, net, body.body_id, trained=step > 0, meta=meta, train_state=state)

    folder = RunFolder(Path(cfg.out), ["step", "loss", "uv_l1", "image_l1", "reid"], cfg.steps, cfg.ckpt_every, save_run, start, progress)
    with folder:
        for step in range(start, cfg.steps):
            rng = np.random.default_rng([cfg.seed, step])  # batches are a function of (seed, step): exact resume
            parts = _step(net, optim, reid, cfg, body, _batch(data, rng.integers(len(data), size=cfg.batch_size), cfg, body))
            folder.step_done(step + 1, {"step": step + 1, **parts}, parts)
    return folder.finish()


@torch.no_grad()
def evaluate_texture(net: TexGlo, body: BodyModel, data: TextureCrops, low_res: int = 32, render_size: int = 112,
                     batch_size: int = 16, limit: int | None = None, reid: ReIDFeatures | None = None) -> dict[str, float]:  # fmt: skip
    """Mean UV L1 (visible texels), render-vs-image L1 (body mask) and, with ``reid``, the ReID feature distance."""
    net.eval()
    n = len(data) if limit is None else min(limit, len(data))
    cfg = TextureTrainConfig(
        data="", out="", low_res=low_res, render_size=render_size, input_size=net.config.input_size, tex_size=net.config.tex_size
    )
    totals = {"uv_l1": 0.0, "image_l1": 0.0, "reid_distance": 0.0}
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(n, start + batch_size))
        x, gt, rb = _batch(data, idx, cfg, body)
        uv_l1, img_l1, render = texture_losses(net(x), gt, rb, body)
        totals["uv_l1"] += float(uv_l1) * len(idx)
        totals["image_l1"] += float(img_l1) * len(idx)
        if reid is not None:
            composite = torch.where(rb.mask[..., None], render, rb.images)
            totals["reid_distance"] += float((reid(composite) - reid(rb.images)).norm(dim=-1).sum())
    result = {k: v / n for k, v in totals.items()}
    if reid is None:
        result.pop("reid_distance")
    result["samples"] = n
    return result
