"""``lrpose adapt``, second stage: fine-tune the temporal module (GRU) for the ADAPTED RSC-Net.

The GRU reads the per-frame features phi of one RSC-Net; adapting RSC-Net changes phi, so the
temporal module trained for the base no longer fits it (``lrpose.models.temporal_choice``). This
stage gives the adapted network its own:

1. ``label_sequences``: each track's pseudo-labels on consecutive sampled frames form a run; runs
   are cut into chunks of at most ``chunk`` frames (shorter than ``min_chunk``: unused). Per frame:
   phi of the ADAPTED RSC-Net on the crop at its native range, and the labels (fitted pose, betas,
   3D and 2D keypoints through the fit's camera).
2. ``fine_tune_temporal``: the basic loss on every frame of ``batch_size`` chunks a step (a pure
   function of (seed, step): resumable from ``run_dir/last.pt``), starting from the base's temporal
   module when it fitted the base, else from the identity on the adapted network
   (``TemporalModule.from_rscnet``).

The result is stored inside the adapted RSC-Net file (``temporal_choice.temporal_entry``), so one
file carries both and ``lrpose video --weights adapted.pt`` uses it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.config import check_minimums
from lrpose.geometry import axis_angle_to_rotmat
from lrpose.models.checkpoint import load_temporal, save
from lrpose.models.rscnet import RSCNet
from lrpose.models.temporal import TemporalModule
from lrpose.resolution import select_range
from lrpose.training.adapt_data import labels_from_params, network_outputs
from lrpose.training.losses import basic_loss_parts
from lrpose.training.plumbing import RunFolder, config_json, resume_state
from lrpose.training.pseudo import LabelSet
from lrpose.training.sequences import Sequences

LOG_FIELDS = ("step", "loss", "pose", "betas", "kp3d", "kp2d", "chunks", "seconds")


@dataclass(frozen=True)
class TemporalAdaptConfig:
    """Settings of the temporal stage (stored in its run checkpoint; a resume must match)."""

    steps: int = 150
    """Optimisation steps (0: no temporal stage)."""
    chunk: int = 24
    """Frames per chunk (a track's run of consecutive pseudo-labels is cut into chunks of at most this)."""
    min_chunk: int = 4
    batch_size: int = 8
    """Chunks per step."""
    lr: float = 5e-5
    seed: int = 0
    ckpt_every: int = 50
    base_id: str = ""
    """Checkpoint id of the module it starts from ('' : the identity on the adapted RSC-Net)."""
    freeze_recurrent: bool = True
    """Starting from the base's trained module: keep its GRU layers (its motion model) and fine-tune the
    residual map and the regressor, which read the changed features (backward through the GRU is
    most of a step's time on a CPU: 2.5 of 3.7 s). From the identity start everything is trained."""
    rscnet_digest: str = ""
    """``weights_digest`` of the adapted RSC-Net whose features it learns (a resume must read the same)."""
    weights: tuple[tuple[str, float], ...] = (("pose", 1.0), ("betas", 0.001), ("kp3d", 5.0), ("kp2d", 5.0))

    def __post_init__(self) -> None:
        check_minimums(self, steps=0, chunk=2, min_chunk=2, batch_size=1, ckpt_every=1)


def track_runs(labels: LabelSet) -> list[np.ndarray]:
    """Row indices into ``labels`` of every run of one track's labels on consecutive sampled frames, in
    frame order: a run breaks where the frame step exceeds the track's smallest step (a frame that
    gave no label, or the video's frame/label stride changed)."""
    runs = []
    for track in np.unique(labels.track):
        rows = np.nonzero(labels.track == track)[0]
        rows = rows[np.argsort(labels.frame[rows], kind="stable")]
        step = np.diff(labels.frame[rows].astype(np.int64))
        unit = int(step[step > 0].min()) if bool((step > 0).any()) else 1
        runs.extend(np.split(rows, np.nonzero(step != unit)[0] + 1))
    return runs


@torch.no_grad()
def heldout_score_temporal(model: RSCNet, temporal: TemporalModule | None, body: BodyModel, held: LabelSet, batch: int = 64) -> dict:
    """``adapt.heldout_score`` of what ``lrpose video`` gives with ``model`` and ``temporal`` (no refinement):
    phi of every held-out crop, then the GRU over each track's runs of consecutive frames (``track_runs``);
    ``temporal`` None: the network per frame, as ``heldout_score``."""
    from lrpose.training.adapt import bodies_score, heldout_score

    if temporal is None:
        return heldout_score(model, body, held, batch=batch)
    runs = track_runs(held)
    rows = np.concatenate(runs)
    phi = network_outputs(model, held, rows, batch)[0]
    was_training = temporal.training
    rotmats, betas, cam, _ = temporal.eval().sequences(list(phi.split([len(r) for r in runs])), None)
    temporal.train(was_training)
    return bodies_score(body, model.config.input_size, held, rows, rotmats, betas, cam, batch=batch)


def chunks_of(runs: list[np.ndarray], chunk: int, min_chunk: int) -> list[np.ndarray]:
    """Each run cut into consecutive pieces of ``chunk`` rows (the last one shorter); pieces under ``min_chunk`` are dropped."""
    return [piece for run in runs for piece in np.split(run, range(chunk, len(run), chunk)) if len(piece) >= min_chunk]


@torch.no_grad()
def label_sequences(model: RSCNet, body: BodyModel, labels: LabelSet, cfg: TemporalAdaptConfig, batch: int = 64) -> Sequences:
    """The chunks of ``labels`` as ``Sequences`` (``start``/``length`` per chunk, rows chunk after chunk):
    (F, D) phi of ``model`` in eval mode on each crop at its native range, and the labels."""
    rows = chunks_of(track_runs(labels), cfg.chunk, cfg.min_chunk)
    order = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    s3, part = [], []
    ranges = np.array([select_range(int(n)) for n in labels.native[order]], np.int64)
    for start in range(0, len(order), batch):
        sl = order[start : start + batch]
        s, p = labels_from_params(body, *(torch.from_numpy(getattr(labels, k)[sl]) for k in ("pose", "betas", "cam")))
        s3.append(s)
        part.append(p)
    cat = lambda xs, shape: torch.cat(xs).numpy().astype(np.float32) if xs else np.zeros(shape, np.float32)  # noqa: E731
    lengths = np.array([len(r) for r in rows], np.int64)
    features = network_outputs(model, labels, order, batch)[0].numpy().astype(np.float32)
    return Sequences(
        features=features, pose=labels.pose[order], betas=labels.betas[order], S=cat(s3, (0, 24, 4)),
        part=cat(part, (0, 24, 3)), range_index=ranges.astype(np.int8), length=lengths, rscnet_id="adapted",
        start=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
    )  # fmt: skip


def chunk_batch(seqs: Sequences, cfg: TemporalAdaptConfig, step: int) -> list[np.ndarray]:
    """Rows of the ``cfg.batch_size`` chunks of step ``step`` (without replacement when there are enough);
    a function of (seed, step), so a resumed run sees the batches it would have seen."""
    rng = np.random.default_rng([cfg.seed, step, 11])
    picks = rng.choice(len(seqs.length), cfg.batch_size, replace=len(seqs.length) < cfg.batch_size)
    return [np.arange(seqs.start[k], seqs.start[k] + seqs.length[k]) for k in picks]


def chunk_loss(module: TemporalModule, body: BodyModel, seqs: Sequences, rows: list[np.ndarray],
               weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
    """The weighted basic loss over every frame of the chunks ``rows`` (each run through the GRU from a zero state)."""
    state = torch.zeros(module.config.layers, len(rows), module.config.hidden)
    rotmats, betas, cam, _ = module.sequences([torch.from_numpy(seqs.features[r]) for r in rows], state)
    flat = np.concatenate(rows)
    ones = torch.ones(len(flat))
    gt_rot = axis_angle_to_rotmat(torch.from_numpy(seqs.pose[flat]).reshape(-1, 3)).reshape(-1, 24, 3, 3)
    parts = basic_loss_parts(body, rotmats, betas, cam, gt_rot, torch.from_numpy(seqs.betas[flat]), torch.from_numpy(seqs.S[flat]),
                             torch.from_numpy(seqs.part[flat]), ones, ones)  # fmt: skip
    loss = sum(weights[k] * v for k, v in parts.items())
    return loss, {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}


def fine_tune_temporal(cfg: TemporalAdaptConfig, start_module: TemporalModule, body: BodyModel, seqs: Sequences, run_dir: Path,
                       body_id: str, progress: Callable[[int, int, dict], None] | None = None) -> tuple[TemporalModule, dict]:  # fmt: skip
    """Fine-tune a copy of ``start_module`` on ``seqs``' chunks for ``cfg.steps`` steps, resuming
    ``run_dir/last.pt`` when it holds this run; returns the module (eval mode) and its provenance
    (chunks, frames, steps, mean loss of the first and last steps)."""
    torch.manual_seed(cfg.seed)
    resume = run_dir / "last.pt"
    state = resume_state(resume, cfg) if resume.is_file() else None
    module = load_temporal(resume)[0] if state is not None else copy.deepcopy(start_module)  # the caller's stays as it was
    module.train()
    frozen = cfg.freeze_recurrent and bool(cfg.base_id)
    module.gru.requires_grad_(not frozen)
    optim = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=cfg.lr)
    start, losses = 0, []
    if state is not None:
        start, losses = int(state["step"]), list(state["losses"])
        optim.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])

    def save_run(path: Path, step: int) -> None:
        train_state = {"step": step, "optimizer": optim.state_dict(), "torch_rng": torch.get_rng_state(), "config": config_json(cfg),
                       "losses": list(losses)}  # fmt: skip
        save(path, module, body_id, trained=True, meta={"steps": step, "adapt_run": True}, train_state=train_state)

    weights = dict(cfg.weights)
    folder = RunFolder(run_dir, LOG_FIELDS, cfg.steps, cfg.ckpt_every, save_run, start, progress)
    t0 = time.time()
    with folder:
        for step in range(start, cfg.steps):
            loss, parts = chunk_loss(module, body, seqs, chunk_batch(seqs, cfg, step), weights)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(parts["loss"])
            folder.step_done(step + 1, {**parts, "step": step + 1, "chunks": len(seqs.length), "seconds": f"{time.time() - t0:.1f}"}, parts)
        folder.finish()
    k = max(1, min(10, len(losses) // 2))
    prov = {"steps": cfg.steps, "chunks": len(seqs.length), "frames": int(seqs.length.sum()), "chunk": cfg.chunk,
            "start": cfg.base_id or "identity on the adapted RSC-Net", "recurrent": "kept (the base's)" if frozen else "trained",
            "loss_first": float(np.mean(losses[:k])) if losses else None,
            "loss_last": float(np.mean(losses[-k:])) if losses else None}  # fmt: skip
    module.gru.requires_grad_(True)
    return module.eval(), prov
