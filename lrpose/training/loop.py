"""``lrpose train rscnet``: progressive multi-resolution training with the RSC-Net losses.

Total loss ``L_b + lambda_s L_s + lambda_f L_f`` (paper Eq. 8, 10, 11-12) with L_b's weights
pose 1, betas 0.001, 3D keypoints 5, 2D keypoints 5 (lambda_1 = lambda_2 = 5 as in the paper;
the small beta weight follows SPIN). Progressive training splits the steps into one stage per
range (stage k trains ranges 0..k) and initialises each new alpha row from the previous one.
Distributed data parallel runs under ``torchrun`` (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from lrpose import assets
from lrpose.body import BodyModel
from lrpose.config import check_choice, check_minimums
from lrpose.errors import InputError
from lrpose.geometry import axis_angle_to_rotmat
from lrpose.models.backbone_file import freeze_pretrained, init_backbone
from lrpose.models.checkpoint import default_mean_params, load_rscnet, save
from lrpose.models.rscnet import BACKBONES, RSCNet, RSCNetConfig, RSCNetOutput
from lrpose.resolution import NUM_RANGES
from lrpose.training.cctv import CCTVConfig
from lrpose.training.data import AugmentConfig, MixedDataset, StepBatches, open_dataset, progressive_ranges
from lrpose.training.losses import FeatureQueue, basic_loss_parts, feature_loss, self_supervision_loss
from lrpose.training.plumbing import RunFolder, config_json, resume_state

LOG_FIELDS = ("step", "loss", "basic", "ss", "cl", "kp2d", "kp3d", "pose", "betas", "ranges", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs (stored in its checkpoints)."""

    data: tuple[str, ...]
    """Synthetic crop folders and/or SPIN-format .npz files."""
    out: str
    img_roots: tuple[str | None, ...] = ()
    ratios: tuple[float, ...] = ()
    init: str | None = None
    backbone: str = "resnet"
    """"resnet" (``depth``) or "mobilenetv2" (starts from ``backbone_init``)."""
    backbone_init: str | None = None
    """Pretrained-backbone file for a fresh run (``tools/convert_backbone.py``); None: the shipped ImageNet
    MobileNetV2 for "mobilenetv2", nothing for "resnet"; "none": random initialisation."""
    cached_passes: int = 0
    """> 0: train only the head, from the fixed backbone's outputs for this many augmented passes over the data,
    cached once (``training.head``; needs ``freeze_backbone`` and a backbone with a readout: yolopose)."""
    freeze_backbone: bool = False
    """Keep the backbone's starting weights fixed (train the alphas, a new readout, the regressor and the
    projection head): a pose-pretrained backbone keeps what it learnt from real photos."""
    depth: int = 18
    input_size: int = 128
    batch_size: int = 16
    steps: int = 1000
    lr: float = 5e-5
    lambda_s: float = 0.1
    lambda_f: float = 0.1
    ss: str = "directional"
    cl: str = "contrastive"
    queue_size: int = 8192
    tau: float = 0.1
    progressive: bool = True
    baseline: bool = False
    ckpt_every: int = 200
    seed: int = 0
    workers: int = 0
    cctv: bool = False
    """CCTV degradations of the training crops (``training.cctv``: light, occluders, truncation, blur,
    interlacing, noise, JPEG / H.264)."""
    weights: dict[str, float] = field(default_factory=lambda: {"pose": 1.0, "betas": 0.001, "kp3d": 5.0, "kp2d": 5.0})

    def __post_init__(self) -> None:
        check_choice("ss", self.ss, ("directional", "highest", "undirected", "none"))
        check_choice("cl", self.cl, ("contrastive", "mse", "cosine", "none"))
        check_choice("backbone", self.backbone, BACKBONES)
        if self.backbone == "resnet" and self.backbone_init not in (None, "none"):
            raise InputError("--backbone-init: no pretrained ResNet backbone format exists; use --init with an RSC-Net or SPIN checkpoint")
        if self.freeze_backbone and not self.init and (self.backbone == "resnet" or self.backbone_init == "none"):
            raise InputError("--freeze-backbone needs a starting backbone: a pretrained one (--backbone) or --init")
        if self.cached_passes and not (self.freeze_backbone and not self.progressive):
            raise InputError("--cached-passes needs --freeze-backbone and --no-progressive (every range in each cached batch)")
        check_minimums(self, steps=1, batch_size=1, queue_size=1, ckpt_every=1, workers=0)
        if self.ratios and len(self.ratios) != len(self.data):
            raise InputError(f"--ratios has {len(self.ratios)} values for {len(self.data)} --data entries")


def build_dataset(cfg: TrainConfig) -> Dataset:
    """One dataset per ``data`` entry (folder: synthetic crops; .npz: SPIN format with its image root)."""
    roots = [*cfg.img_roots, *[None] * len(cfg.data)]
    sets = [open_dataset(Path(item), Path(roots[k]) if roots[k] else None) for k, item in enumerate(cfg.data)]
    if len(sets) == 1:
        return sets[0]
    return MixedDataset(sets, list(cfg.ratios) if cfg.ratios else [1.0] * len(sets))


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def _gather(x: torch.Tensor, world: int) -> torch.Tensor:
    if world == 1:
        return x
    parts = [torch.zeros_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class MultiResolution(torch.nn.Module):
    """All resolution views of a batch in ONE forward call (what DDP needs: shared weights are
    used by every view, and DDP allows one forward per backward). Returns plain dicts of tensors."""

    def __init__(self, model: RSCNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, ranges: list[int]) -> list[dict[str, torch.Tensor]]:
        return [vars(self.model(images[:, k], p)) for k, p in enumerate(ranges)]


def step_losses(
    model: torch.nn.Module, body: BodyModel, batch: dict, queue: FeatureQueue, cfg: TrainConfig
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """Forward all resolution views of a batch (``model``: a ``MultiResolution``, maybe DDP-wrapped)
    and compute the total loss.

    Returns (loss, components, highest-resolution embeddings for the queue).
    """
    return output_losses([RSCNetOutput(**o) for o in model(batch["images"], batch["ranges"].tolist())], body, batch, queue, cfg)


def output_losses(
    outs: list[RSCNetOutput], body: BodyModel, batch: dict, queue: FeatureQueue, cfg: TrainConfig
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """The total loss of a batch's per-view outputs ``outs`` (highest resolution first); see ``step_losses``."""
    gt_rot = axis_angle_to_rotmat(batch["pose"].view(-1, 24, 3))
    w = cfg.weights
    parts = {"kp2d": 0.0, "kp3d": 0.0, "pose": 0.0, "betas": 0.0}
    basic = outs[0].cam.sum() * 0.0
    for out in outs:
        terms = basic_loss_parts(
            body, out.rotmats, out.betas, out.cam, gt_rot, batch["betas"], batch["S"], batch["part"], batch["has_smpl"], batch["has_3d"]
        )
        for name, value in terms.items():  # kp2d, kp3d, pose, betas: the order of the sum is kept
            basic = basic + w[name] * value
            parts[name] += float(value.detach()) / len(outs)
    flat = [torch.cat([o.rotmats.flatten(1), o.betas, o.cam], 1) for o in outs]
    ls = self_supervision_loss(flat, cfg.ss)
    lf = feature_loss([o.embedding for o in outs], [o.features for o in outs], batch["id"], queue, cfg.cl, cfg.tau)
    loss = basic + cfg.lambda_s * ls + cfg.lambda_f * lf
    parts.update(loss=float(loss.detach()), basic=float(basic.detach()), ss=float(ls.detach()), cl=float(lf.detach()))
    return loss, parts, outs[0].embedding.detach()


@dataclass
class _Run:
    """The mutable state of one RSC-Net run: the model, its queue, the current progressive stage."""

    model: RSCNet
    queue: FeatureQueue
    start: int = 0
    stage: int = 0
    state: dict | None = None
    """The resumed training state (None: a fresh run)."""
    backbone_origin: dict | None = None
    """Where the backbone's starting weights came from (a fresh run from a pretrained-backbone file)."""


def _setup(cfg: TrainConfig, body: BodyModel, resume: Path | None) -> _Run:
    """Seed, build (or load) the model and queue; on resume restore them and the torch RNG, last."""
    torch.manual_seed(cfg.seed)
    state = resume_state(resume, cfg) if resume is not None else None
    if state is not None:
        model, _ = load_rscnet(resume)
    elif cfg.init:
        model, _ = load_rscnet(Path(cfg.init))
    else:
        arch = RSCNetConfig(depth=cfg.depth, input_size=cfg.input_size, resolution_aware=not cfg.baseline, backbone=cfg.backbone)
        model = RSCNet(arch, default_mean_params(body))
    origin = None
    if state is None and not cfg.init and cfg.backbone_init != "none" and cfg.backbone != "resnet":
        path = _backbone_file(cfg)
        origin = {**init_backbone(model, path), "backbone_file": path.name}
    elif state is not None:
        origin = state.get("backbone_origin")
    if cfg.freeze_backbone:
        freeze_pretrained(model.backbone)
    if cfg.baseline:
        model.backbone.set_alphas_trainable(False)
    run = _Run(model, FeatureQueue(cfg.queue_size, model.config.embed_dim), state=state, backbone_origin=origin)
    if state is not None:
        run.start, run.stage = int(state["step"]), int(state["stage"])
        run.queue.load_state_dict(state["queue"])
        torch.set_rng_state(state["torch_rng"])
    return run


def _backbone_file(cfg: TrainConfig) -> Path:
    return Path(cfg.backbone_init) if cfg.backbone_init else assets.resolve(f"backbone_{cfg.backbone}")


def _loader(cfg: TrainConfig, run: _Run, rank: int, world: int) -> DataLoader:
    """Batches of steps ``run.start .. cfg.steps - 1`` (a function of seed and step; this rank's share)."""

    def ranges_for(t: int) -> list[int]:
        return progressive_ranges(t, cfg.steps, NUM_RANGES, cfg.progressive)

    aug = AugmentConfig(cctv=CCTVConfig() if cfg.cctv else None)
    batches = StepBatches(
        build_dataset(cfg), cfg.batch_size, cfg.seed, run.model.config.input_size, ranges_for, aug, rank=rank, world=world
    )
    # its own generator: creating the iterator must not consume the global RNG (dropout), so resume is exact
    generator = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(batches, batch_size=None, sampler=range(run.start, cfg.steps), num_workers=cfg.workers, generator=generator)


def _saver(cfg: TrainConfig, run: _Run, optim: torch.optim.Optimizer, body_id: str) -> Callable[[Path, int], None]:
    def save_run(path: Path, step: int) -> None:
        train_state = {"step": step, "stage": run.stage, "optimizer": optim.state_dict(), "queue": run.queue.state_dict(),
                       "torch_rng": torch.get_rng_state(), "config": config_json(cfg), "backbone_origin": run.backbone_origin}  # fmt: skip
        meta = {"steps": step, "train_config": config_json(cfg), "date": time.strftime("%Y-%m-%d"), "backbone_init": run.backbone_origin}
        save(path, run.model, body_id, trained=step > 0, meta=meta, train_state=train_state)

    return save_run


def train_rscnet(
    cfg: TrainConfig, body: BodyModel, resume: Path | None = None, progress: Callable[[int, int, dict], None] | None = None
) -> Path:
    """Train (or resume) RSC-Net; returns the path of the final checkpoint ``out/last.pt``."""
    if cfg.cached_passes:
        from lrpose.training.head import train_cached

        return train_cached(cfg, body, resume, progress)
    rank, world = _dist_info()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if cfg.batch_size % world:
        raise InputError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes {world}")
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    run = _setup(cfg, body, resume)
    model = run.model.to(device).train()
    body = body.to(device)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    if run.state is not None:
        optim.load_state_dict(run.state["optimizer"])
    net = MultiResolution(model)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True)
    loader = _loader(cfg, run, rank, world)
    folder = RunFolder(Path(cfg.out), LOG_FIELDS, cfg.steps, cfg.ckpt_every, _saver(cfg, run, optim, body.body_id), run.start, progress,
                       main=rank == 0)  # fmt: skip
    t0 = time.time()
    with folder:
        for step, batch in enumerate(loader, start=run.start):
            ranges = batch["ranges"].tolist()
            while run.stage < max(ranges):  # progressive: a new range starts from the previous row of alphas
                run.stage += 1
                model.backbone.copy_alpha_row(run.stage - 1, run.stage)
            batch = {k: v.to(device) for k, v in batch.items()}
            loss, parts, hr_emb = step_losses(net, body, batch, run.queue, cfg)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            run.queue.enqueue(_gather(hr_emb, world), _gather(batch["id"], world))
            row = {**{k: parts[k] for k in LOG_FIELDS if k in parts}, "step": step + 1, "ranges": "".join(map(str, ranges)),
                   "seconds": f"{time.time() - t0:.1f}"}  # fmt: skip
            folder.step_done(step + 1, row, parts)
    final = folder.finish()
    if rank == 0:
        summary = {"steps": cfg.steps, "seconds": round(time.time() - t0, 1), "processes": world, "config": asdict(cfg)}
        (Path(cfg.out) / "train_summary.json").write_text(json.dumps(summary, indent=1))
    if world > 1:
        dist.barrier()
    return final
