"""``lrpose train temporal``: the GRU temporal module on offline RSC-Net features (paper Sec. 3.5).

Windows of ``seq_len`` frames are drawn from the extracted sequences; the loss is the RSC-Net
basic loss per frame (SMPL pose/betas, 3D keypoints, 2D keypoints) and, optionally, VIBE's
adversarial motion loss: a motion discriminator (GRU + attention pooling) tells generated
body-pose sequences from real ones the user provides (AMASS-style ``.npz``), least-squares GAN.
The module starts as the identity on the per-frame model (see ``TemporalModule.from_rscnet``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lrpose.body import BodyModel
from lrpose.config import check_minimums
from lrpose.errors import InputError
from lrpose.geometry import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_rot6d
from lrpose.metrics import MeanMetric, accel, accel_error, hip_align, mpjpe, pa_mpjpe
from lrpose.models.checkpoint import load_rscnet, load_temporal, save
from lrpose.models.rscnet import RSCNet
from lrpose.models.temporal import TemporalConfig, TemporalModule, TemporalOutput
from lrpose.training.losses import basic_loss_parts
from lrpose.training.plumbing import RunFolder, config_json, resume_state
from lrpose.training.sequences import Sequences


@dataclass(frozen=True)
class TemporalTrainConfig:
    """A temporal-module training run (stored in its checkpoint)."""

    out: str
    steps: int = 2000
    batch_size: int = 32
    seq_len: int = 16
    lr: float = 1e-4
    hidden: int = 1024
    layers: int = 2
    adv_weight: float = 0.0
    """Weight of the adversarial motion loss (0 = off); needs ``motion_data``."""
    motion_data: tuple[str, ...] = ()
    seed: int = 0
    ckpt_every: int = 500
    weights: tuple[tuple[str, float], ...] = (("pose", 1.0), ("betas", 0.001), ("kp3d", 5.0), ("kp2d", 5.0))

    def __post_init__(self) -> None:
        check_minimums(self, steps=1, batch_size=1, seq_len=3, hidden=1, layers=1, ckpt_every=1, adv_weight=0.0)


class MotionDiscriminator(nn.Module):
    """VIBE's motion discriminator: (B, T, 23 * 6) body-pose rot6d -> GRU -> attention pooling -> (B,) score."""

    def __init__(self, hidden: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.gru = nn.GRU(23 * 6, hidden, layers, batch_first=True)
        self.attention = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.out = nn.Linear(hidden, 1)

    def forward(self, pose6d: torch.Tensor) -> torch.Tensor:
        y, _ = self.gru(pose6d)
        weights = torch.softmax(self.attention(y), dim=1)
        return self.out((weights * y).sum(1))[:, 0]


def load_motions(paths: tuple[str, ...], fps: float) -> list[np.ndarray]:
    """Real body-pose sequences (T, 23, 3) axis-angle from ``.npz`` files or folders of them.

    Accepted keys: ``poses`` (AMASS; SMPL-H's first 22 joints are SMPL's, hands set to zero;
    resampled from ``mocap_framerate`` to ``fps``) or ``pose`` ((T, 72) or (N, T, 72)).
    """
    files = [f for p in paths for f in (sorted(Path(p).rglob("*.npz")) if Path(p).is_dir() else [Path(p)])]
    seqs = []
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as z:
                if "poses" in z.files:
                    raw = z["poses"].astype(np.float32)
                    rate = float(z["mocap_framerate"]) if "mocap_framerate" in z.files else fps
                    idx = np.arange(0, len(raw), max(rate / fps, 1e-6)).astype(int)
                    body = np.zeros((len(idx), 23, 3), np.float32)
                    body[:, :21] = raw[idx, 3:66].reshape(-1, 21, 3)
                    seqs.append(body)
                elif "pose" in z.files:
                    pose = z["pose"].astype(np.float32)
                    seqs.extend(p.reshape(-1, 24, 3)[:, 1:] for p in (pose if pose.ndim == 3 else pose[None]))
                else:
                    raise InputError(f"motion file {f} has neither 'poses' (AMASS) nor 'pose' (T, 72)")
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read motion file {f}: {e}") from None
    if not seqs:
        raise InputError(f"--motion-data {', '.join(paths)}: no .npz motion files found")
    return seqs


def _body_rot6d(body_pose_aa: torch.Tensor) -> torch.Tensor:
    """(B, T, 23, 3) axis-angle -> (B, T, 138) rot6d."""
    b, t = body_pose_aa.shape[:2]
    return rotmat_to_rot6d(axis_angle_to_rotmat(body_pose_aa.reshape(-1, 3))).reshape(b, t, -1)


def _batch(seqs: Sequences, windows: np.ndarray, rows: np.ndarray, seq_len: int) -> dict[str, torch.Tensor]:
    idx = (seqs.start[windows[rows, 0]] + windows[rows, 1])[:, None] + np.arange(seq_len)[None]
    return {k: torch.from_numpy(getattr(seqs, k)[idx]) for k in ("features", "pose", "betas", "S", "part")}


def _losses(
    module: TemporalModule, body: BodyModel, batch: dict[str, torch.Tensor], weights: dict[str, float]
) -> tuple[torch.Tensor, dict[str, torch.Tensor], TemporalOutput]:
    """Weighted basic loss over all B x T frames of a batch of windows; (loss, its parts, the module's output)."""
    out = module(batch["features"])
    n = out.cam.shape[0] * out.cam.shape[1]
    gt_rot = axis_angle_to_rotmat(batch["pose"].reshape(-1, 3)).reshape(n, 24, 3, 3)
    ones = torch.ones(n)
    parts = basic_loss_parts(
        body, out.rotmats.reshape(n, 24, 3, 3), out.betas.reshape(n, 10), out.cam.reshape(n, 3), gt_rot,
        batch["betas"].reshape(n, 10), batch["S"].reshape(n, 24, 4), batch["part"].reshape(n, 24, 3), ones, ones,
    )  # fmt: skip
    return sum(weights[k] * v for k, v in parts.items()), parts, out


@dataclass
class _Run:
    """The networks and optimizers of one temporal run (``disc`` None without the adversarial loss)."""

    module: TemporalModule
    opt: torch.optim.Optimizer
    disc: MotionDiscriminator | None
    opt_d: torch.optim.Optimizer | None
    motions: list[np.ndarray]
    start: int = 0


def _setup(cfg: TemporalTrainConfig, rscnet_path: Path, fps: float, resume: Path | None) -> _Run:
    """Seed, build (or load) the module, discriminator and optimizers; on resume restore their state
    and the torch RNG after every constructor, so the restored RNG drives the training steps only."""
    torch.manual_seed(cfg.seed)
    state = resume_state(resume, cfg) if resume is not None else None
    if state is not None:
        module, _ = load_temporal(resume)
    else:
        rscnet, _ = load_rscnet(rscnet_path)
        module = TemporalModule.from_rscnet(rscnet, TemporalConfig(rscnet.feature_dim, cfg.hidden, cfg.layers, rscnet.config.n_iter))
    disc = MotionDiscriminator() if cfg.adv_weight > 0 else None
    motions = load_motions(cfg.motion_data, fps) if disc is not None else []
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr) if disc is not None else None
    run = _Run(module.train(), opt, disc, opt_d, motions)
    if state is not None:
        torch.set_rng_state(state["torch_rng"])
        opt.load_state_dict(state["optimizer"])
        if disc is not None:
            disc.load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["optimizer_d"])
        run.start = int(state["step"])
    return run


def _step(run: _Run, cfg: TemporalTrainConfig, body: BodyModel, batch: dict[str, torch.Tensor], rng: np.random.Generator) -> dict:
    """One optimisation step (then one discriminator step); returns the loss parts as floats."""
    weights = dict(cfg.weights)
    loss, parts, pred = _losses(run.module, body, batch, weights)
    adv = d_loss = torch.zeros(())
    if run.disc is not None:
        fake = rotmat_to_rot6d(pred.rotmats[:, :, 1:].reshape(-1, 3, 3)).reshape(cfg.batch_size, cfg.seq_len, -1)
        adv = ((run.disc(fake) - 1) ** 2).mean()
        loss = loss + cfg.adv_weight * adv
    run.opt.zero_grad()
    loss.backward()
    run.opt.step()
    if run.disc is not None:
        real = torch.from_numpy(_real_windows(run.motions, rng, cfg.batch_size, cfg.seq_len))
        d_loss = ((run.disc(_body_rot6d(real)) - 1) ** 2).mean() + (run.disc(fake.detach()) ** 2).mean()
        run.opt_d.zero_grad()
        d_loss.backward()
        run.opt_d.step()
    return {"loss": loss.item(), **{k: parts[k].item() for k in weights}, "adv": adv.item(), "disc": d_loss.item()}


def _saver(cfg: TemporalTrainConfig, run: _Run, body_id: str, rscnet_id: str) -> Callable[[Path, int], None]:
    def save_run(path: Path, step: int) -> None:
        state = {"step": step, "config": config_json(cfg), "optimizer": run.opt.state_dict(), "torch_rng": torch.get_rng_state()}
        if run.disc is not None:
            state.update(discriminator=run.disc.state_dict(), optimizer_d=run.opt_d.state_dict())
        meta = {"steps": step, "train_config": config_json(cfg)}
        save(path, run.module, body_id, trained=step > 0, parent_id=rscnet_id, meta=meta, train_state=state)

    return save_run


def train_temporal(
    cfg: TemporalTrainConfig,
    body: BodyModel,
    train: Sequences,
    rscnet_path: Path,
    rscnet_id: str,
    fps: float = 15.0,
    resume: Path | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> Path:
    """Train (or resume) the temporal module on ``train``; returns ``out/last.pt``.

    The checkpoint records ``rscnet_id`` (the RSC-Net whose features it was trained on) and keeps
    the resumable state (step, optimizers, discriminator, torch RNG, config) under ``train_state``.
    """
    if cfg.adv_weight > 0 and not cfg.motion_data:
        raise InputError("--adv-weight needs real motion sequences: pass --motion-data (AMASS-style .npz files or a folder)")
    windows = train.windows(cfg.seq_len)
    if len(windows) == 0:
        raise InputError(f"no training sequence has {cfg.seq_len} frames: lower --seq-len or use longer clips")
    run = _setup(cfg, rscnet_path, fps, resume)
    fields = ["step", "loss", *dict(cfg.weights), "adv", "disc"]
    folder = RunFolder(Path(cfg.out), fields, cfg.steps, cfg.ckpt_every, _saver(cfg, run, body.body_id, rscnet_id), run.start, progress)
    with folder:
        for step in range(run.start, cfg.steps):
            rng = np.random.default_rng([cfg.seed, step])  # batches are a function of (seed, step): exact resume
            batch = _batch(train, windows, rng.integers(0, len(windows), cfg.batch_size), cfg.seq_len)
            parts = _step(run, cfg, body, batch, rng)
            folder.step_done(step + 1, {"step": step + 1, **parts}, {k: v for k, v in parts.items() if k not in ("adv", "disc")})
    return folder.finish()


def _real_windows(motions: list[np.ndarray], rng: np.random.Generator, n: int, seq_len: int) -> np.ndarray:
    """(n, seq_len, 23, 3) windows of real motion (short sequences are repeated to length)."""
    out = np.zeros((n, seq_len, 23, 3), np.float32)
    for i in range(n):
        m = motions[int(rng.integers(len(motions)))]
        if len(m) < seq_len:
            m = np.concatenate([m] * math.ceil(seq_len / len(m)))
        s = int(rng.integers(0, len(m) - seq_len + 1))
        out[i] = m[s : s + seq_len]
    return out


@torch.no_grad()
def evaluate_temporal(module: TemporalModule | None, rscnet: RSCNet, body: BodyModel, seqs: Sequences) -> dict[str, float]:
    """MPJPE, PA-MPJPE (14 LSP joints aligned at the hips' midpoint as VIBE does, mm) and accel / accel error (mm/frame^2, VIBE)
    over whole sequences; ``module`` None evaluates the per-frame model (RSC-Net's regressor on phi)."""
    fns = {"mpjpe": mpjpe, "pa_mpjpe": pa_mpjpe, "accel": lambda p, g: accel(p), "accel_error": accel_error}
    metrics = {k: MeanMetric(f) for k, f in fns.items()}
    rscnet.eval()
    if module is not None:
        module.eval()
    for s, n in zip(seqs.start, seqs.length, strict=True):
        feats = torch.from_numpy(seqs.features[s : s + n])
        if module is None:
            pose6d, betas, _ = rscnet.regressor(feats)
            rot = rot6d_to_rotmat(pose6d.reshape(-1, 24, 6))
        else:
            out = module(feats[None])
            rot, betas = out.rotmats[0], out.betas[0]
        pred = hip_align(body.lsp_joints(body(rot[:, 1:], rot[:, 0], betas).vertices))
        gt_out = body.forward_axis_angle(torch.from_numpy(seqs.pose[s : s + n]), torch.from_numpy(seqs.betas[s : s + n]))
        gt = hip_align(body.lsp_joints(gt_out.vertices))
        for m in metrics.values():
            m.update(pred, gt)
    return {**{k: m.compute() for k, m in metrics.items()}, "sequences": int(len(seqs.length)), "frames": int(seqs.length.sum())}
