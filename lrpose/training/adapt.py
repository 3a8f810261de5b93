"""``lrpose adapt``: fit RSC-Net to the user's own camera by self-training on their footage.

1. Pseudo-labels (``lrpose.training.pseudo``): the video pipeline with keypoint fitting runs over
   each video; trustworthy fits of the first ``1 - val_fraction`` of every video become labels,
   the rest is the held-out part. Cached per video in the run folder (``labels_<digest>.npz``).
2. Held-out score of the base network, WITHOUT refinement (``heldout_score``): agreement of its
   projected COCO keypoints with the detector's (mean distance / box height) and of its facing with
   the keypoints' left/right order where they say it clearly.
3. Fine-tuning (``adapt_batches`` of ``lrpose.training.adapt_data``): the basic loss on every view,
   directional self-supervision and the contrastive loss across views, synthetic people mixed in.
   ``last.pt`` in the run folder is resumable (``RunFolder``: periodic, Ctrl-C and final saves).
4. Held-out score after; the adapted network is written (atomically, with its provenance in
   ``meta["adapt"]``) only when it is not worse; else ``AdaptRefused`` and nothing is written.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from lrpose import assets
from lrpose.body import BodyModel
from lrpose.config import BodyConfig, check_minimums
from lrpose.errors import InputError
from lrpose.facing import body_faces_camera, keypoint_facing
from lrpose.geometry import axis_angle_to_rotmat, weak_perspective_project
from lrpose.io import FrameSource
from lrpose.models.backbone_file import freeze_pretrained
from lrpose.models.checkpoint import save
from lrpose.models.rscnet import RSCNet
from lrpose.models.temporal import TemporalModule
from lrpose.models.temporal_choice import temporal_entry
from lrpose.pipeline import Pipeline
from lrpose.resolution import select_range
from lrpose.training.adapt_data import AdaptBatches, network_outputs
from lrpose.training.losses import FeatureQueue, basic_loss_parts, feature_loss, self_supervision_loss
from lrpose.training.plumbing import RunFolder, config_json, resume_state
from lrpose.training.pseudo import (
    LabelFilter,
    LabelSet,
    Sampling,
    check_enough,
    collect_video,
    load_collected,
    save_collected,
    settings_of,
    strided,
)
from lrpose.types import FrameResult

TRACKS_PER_VIDEO = 1_000_000
"""Track ids of video k of a run are offset by k times this (``LabelSet.track``)."""
LOG_FIELDS = ("step", "loss", "basic", "synthetic", "ss", "cl", "labels", "seconds")


class AdaptRefused(InputError):
    """The adapted network scored worse on the held-out part than the base: it is not written."""


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of one adaptation run (stored in its run checkpoint; a resume must match)."""

    sources: tuple[str, ...]
    out: str
    base_id: str
    """Checkpoint id (``name:digest``) of the base RSC-Net."""
    steps: int = 300
    val_fraction: float = 0.2
    batch_size: int = 8
    """Pseudo-labelled crops per step (each seen in 3 views)."""
    synth_batch: int = 4
    """Synthetic crops per step (0: none)."""
    lr: float = 2e-5
    lambda_s: float = 0.1
    lambda_f: float = 0.1
    synth_weight: float = 1.0
    queue_size: int = 1024
    tau: float = 0.1
    frame_stride: int = 0
    """Read one window of ``window`` frames in every k; 0: the smallest k that keeps at most ``max_frames`` of a video."""
    window: int = 24
    """Consecutive frames read together (1: single frames every k-th): tracks and temporal chunks see the real frame rate."""
    max_frames: int = 600
    """Frames read per video (with ``frame_stride`` 0). 600: a 10-minute clip adapts in about 22 min on 2 busy
    cores with the default steps (``benchmarks/bench_adapt.py``; 30 min allows about 900)."""
    label_stride: int = 1
    max_labels: int = 6000
    min_labels: int = 64
    min_heldout: int = 20
    ckpt_every: int = 50
    seed: int = 0
    tolerance: float = 0.01
    """Refuse when the held-out keypoint error grows by more than this fraction, or facing agreement
    drops by more than this (absolute)."""
    train_backbone: bool = False
    """Also fine-tune a pretrained backbone's own layers (yolopose, mobilenetv2; a ResNet backbone always learns).
    Off: they stay as in the base, and only the alphas, the readout and the regressor learn (faster, and the
    real-image features the backbone was pretrained for survive a few thousand pseudo-labels)."""
    filter: LabelFilter = field(default_factory=LabelFilter)
    weights: dict[str, float] = field(default_factory=lambda: {"pose": 1.0, "betas": 0.001, "kp3d": 5.0, "kp2d": 5.0})

    def __post_init__(self) -> None:
        check_minimums(self, steps=1, batch_size=2, synth_batch=0, frame_stride=0, window=1, max_frames=1, label_stride=1, max_labels=1,
                       min_labels=1, min_heldout=1, ckpt_every=1, queue_size=1)  # fmt: skip
        if not 0.05 <= self.val_fraction <= 0.5:
            raise InputError(f"--val-fraction must be between 0.05 and 0.5, got {self.val_fraction}")
        if not self.lr > 0:
            raise InputError(f"--lr must be positive, got {self.lr}")


def heldout_score(model: RSCNet, body: BodyModel, held: LabelSet, min_conf: float = 0.3, facing_clear: float = 0.04,
                  batch: int = 64) -> dict[str, float]:  # fmt: skip
    """The network alone (no refinement, per frame) against the detector on held-out person-frames:
    ``kp_error`` mean distance of its projected COCO-17 keypoints to the confident detector keypoints,
    in units of the person box height (lower is better); ``facing`` share of the frames whose
    keypoints say clearly which way the person faces (|evidence| >= ``facing_clear``) where the body
    faces the same way; ``n`` / ``facing_n`` the frames counted."""
    rows = np.arange(len(held))
    _, rotmats, betas, cam = network_outputs(model, held, rows, batch)
    return bodies_score(body, model.config.input_size, held, rows, rotmats, betas, cam, min_conf, facing_clear, batch)


@torch.no_grad()
def bodies_score(body: BodyModel, size: int, held: LabelSet, rows: np.ndarray, rotmats: torch.Tensor, betas: torch.Tensor,
                 cam: torch.Tensor, min_conf: float = 0.3, facing_clear: float = 0.04, batch: int = 64) -> dict[str, float]:  # fmt: skip
    """``heldout_score`` of bodies already estimated: (R, 24, 3, 3) ``rotmats``, (R, 10) ``betas``, (R, 3) crop
    ``cam`` for the held-out ``rows`` (R,) of ``held`` (crops of ``size`` px), posed ``batch`` at a time."""
    sums = np.zeros(4)
    for start in range(0, len(rows), batch):
        sl = slice(start, start + batch)
        sums += _agreement(body, size, held, rows[sl], rotmats[sl], betas[sl], cam[sl], min_conf, facing_clear)
    kp_error, facing = float(sums[0] / max(sums[1], 1)), float(sums[2] / max(sums[3], 1))
    return {"kp_error": kp_error, "facing": facing, "n": len(rows), "facing_n": int(sums[3])}


def _agreement(body: BodyModel, size: int, held: LabelSet, rows: np.ndarray, rotmats: torch.Tensor, betas: torch.Tensor,
               cam: torch.Tensor, min_conf: float, facing_clear: float) -> np.ndarray:  # fmt: skip
    """(4,) sums for one batch: keypoint error (of the box height) over the confident keypoints, their
    count, facing agreements, and frames whose keypoints say the facing clearly."""
    posed = body(rotmats[:, 1:], rotmats[:, 0], betas)
    uv = (weak_perspective_project(torch.einsum("jv,bvi->bji", body.coco_regressor(), posed.vertices), cam) + 1.0) * size / 2.0 - 0.5
    kp = torch.from_numpy(held.keypoints[rows]).float()
    h = torch.from_numpy(held.height[rows] * size / held.native[rows]).float()  # box height in crop pixels
    ok = kp[..., 2] >= min_conf
    dist = (uv - kp[..., :2]).norm(dim=-1) / h[:, None]
    said = keypoint_facing(kp[..., :2], torch.where(ok, kp[..., 2], 0.0), h)
    clear = said.abs() >= facing_clear
    agree = (body_faces_camera(rotmats[:, 0]) == (said > 0))[clear]
    return np.array([float(dist[ok].sum()), int(ok.sum()), int(agree.sum()), int(clear.sum())], np.float64)


def worse(before: dict[str, float], after: dict[str, float], tolerance: float) -> str | None:
    """Why ``after`` is worse than ``before`` (held-out scores), None when it is not: the keypoint error
    grew by more than ``tolerance`` (relative), or the facing agreement fell by more than ``tolerance``
    plus one of the ``facing_n`` frames."""
    why = []
    if after["kp_error"] > before["kp_error"] * (1.0 + tolerance):
        why.append(f"keypoint error {before['kp_error']:.4f} -> {after['kp_error']:.4f}")
    slack = tolerance + 1.0 / max(int(after.get("facing_n", 0)), 1)  # one frame turning round is noise, not worse
    if after["facing"] < before["facing"] - slack:
        why.append(f"facing agreement {before['facing']:.3f} -> {after['facing']:.3f}")
    return "; ".join(why) or None


def step_loss(model: RSCNet, body: BodyModel, batch: dict[str, torch.Tensor], queue: FeatureQueue,
              cfg: AdaptConfig) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:  # fmt: skip
    """Loss of one batch (all views); returns (loss, parts, highest-view embeddings for the queue).
    Pseudo-labels and synthetic people each get the basic loss (the synthetic part times ``synth_weight``)."""
    ranges = batch["ranges"].tolist()
    outs = [model(batch["images"][:, k], p) for k, p in enumerate(ranges)]
    gt_rot = axis_angle_to_rotmat(batch["pose"].view(-1, 24, 3))
    synth = batch["synthetic"]
    sums = {"basic": outs[0].cam.sum() * 0.0, "synthetic": outs[0].cam.sum() * 0.0}
    for out in outs:
        for name, mask in (("basic", ~synth), ("synthetic", synth)):
            if not bool(mask.any()):
                continue
            terms = basic_loss_parts(body, out.rotmats[mask], out.betas[mask], out.cam[mask], gt_rot[mask], batch["betas"][mask],
                                     batch["S"][mask], batch["part"][mask], batch["has_smpl"][mask], batch["has_3d"][mask])  # fmt: skip
            sums[name] = sums[name] + sum(cfg.weights[k] * v for k, v in terms.items()) / len(outs)
    basic, synthetic = sums["basic"], cfg.synth_weight * sums["synthetic"]
    ls = self_supervision_loss([torch.cat([o.rotmats.flatten(1), o.betas, o.cam], 1) for o in outs], "directional")
    lf = feature_loss([o.embedding for o in outs], [o.features for o in outs], batch["id"], queue, "contrastive", cfg.tau)
    loss = basic + synthetic + cfg.lambda_s * ls + cfg.lambda_f * lf
    parts = {"loss": float(loss.detach()), "basic": float(basic.detach()), "synthetic": float(synthetic.detach()), "ss": float(ls.detach()),
             "cl": float(lf.detach())}  # fmt: skip
    return loss, parts, outs[0].embedding.detach()


def _output_check(out: Path) -> None:
    """InputError before any work when ``out`` cannot receive the adapted checkpoint."""
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name such as {out / 'adapted.pt'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"--out {out}: its folder {parent} does not exist")
    import os

    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise InputError(f"cannot write {out}: permission denied")


@dataclass
class Adaptation:
    """What ``fine_tune`` needs: the base network, the labels, the body and where things go."""

    model: RSCNet
    body: BodyModel
    body_cfg: BodyConfig
    labels: LabelSet
    heldout: LabelSet
    run_dir: Path
    provenance: dict = field(default_factory=dict)
    """Base checkpoint, source videos' digests, pseudo-label counts (completed by ``fine_tune``)."""


def fine_tune(cfg: AdaptConfig, job: Adaptation, progress: Callable[[int, int, dict], None] | None = None,
              device: torch.device | None = None, write: bool = True) -> dict:  # fmt: skip
    """Fine-tune ``job.model`` (resuming ``run_dir/last.pt`` when it exists), score the held-out part
    before and after, and write ``cfg.out`` unless the result is worse (``AdaptRefused``). Returns the
    provenance stored in the checkpoint's ``meta["adapt"]``; ``job.model`` is the adapted network
    (CPU, eval mode). ``write`` False: not written yet (a temporal stage follows, ``write_adapted``)."""
    device = device or torch.device("cpu")
    _output_check(Path(cfg.out))
    model, body = job.model, job.body
    torch.manual_seed(cfg.seed)
    resume = job.run_dir / "last.pt"
    state = resume_state(resume, cfg) if resume.is_file() else None
    if state is not None:
        from lrpose.models.checkpoint import load_rscnet

        model, _ = load_rscnet(resume)
        before = state["before"]
    else:
        before = heldout_score(model, body, job.heldout)
    queue = FeatureQueue(cfg.queue_size, model.config.embed_dim)
    if model.config.backbone != "resnet" and not cfg.train_backbone:
        freeze_pretrained(model.backbone)
    model = model.to(device).train()
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    start = 0
    if state is not None:
        start = int(state["step"])
        optim.load_state_dict(state["optimizer"])
        queue.load_state_dict(state["queue"])
        torch.set_rng_state(state["torch_rng"])
    batches = AdaptBatches(job.labels, body, job.body_cfg, model.config.input_size, cfg.batch_size, cfg.synth_batch, cfg.seed)

    def save_run(path: Path, step: int) -> None:
        train_state = {"step": step, "optimizer": optim.state_dict(), "queue": queue.state_dict(), "torch_rng": torch.get_rng_state(),
                       "config": config_json(cfg), "before": before}  # fmt: skip
        save(path, model, body.body_id, trained=True, meta={"steps": step, "adapt_run": True}, train_state=train_state)

    folder = RunFolder(job.run_dir, LOG_FIELDS, cfg.steps, cfg.ckpt_every, save_run, start, progress)
    t0 = time.time()
    loss_body = copy.deepcopy(body).to(device)  # the batches pose their labels with ``body`` on the CPU
    with folder:
        for step in range(start, cfg.steps):
            batch = {k: v.to(device) for k, v in batches[step].items()}
            loss, parts, emb = step_loss(model, loss_body, batch, queue, cfg)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            queue.enqueue(emb, batch["id"])
            parts["labels"] = len(job.labels)
            folder.step_done(step + 1, {**parts, "step": step + 1, "seconds": f"{time.time() - t0:.1f}"}, parts)
        folder.finish()
    model = model.cpu().eval()
    after = heldout_score(model, body, job.heldout)
    provenance = {**job.provenance, "steps": cfg.steps, "settings": asdict(cfg), "heldout": {"before": before, "after": after},
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
    why = worse(before, after, cfg.tolerance)
    if why is not None:
        scores = (f"keypoint error {before['kp_error']:.4f} -> {after['kp_error']:.4f}, facing {before['facing']:.3f} -> "
                  f"{after['facing']:.3f} on {after['n']} person-frames")  # fmt: skip
        raise AdaptRefused(
            f"the adapted network is worse on the held-out part ({why}; {scores}): {cfg.out} not written (run kept in {job.run_dir})"
        )
    job.model = model
    if write:
        write_adapted(Path(cfg.out), model, body.body_id, provenance)
    return provenance


def write_adapted(out: Path, model: RSCNet, body_id: str, provenance: dict, temporal: TemporalModule | None = None,
                  temporal_provenance: dict | None = None) -> None:  # fmt: skip
    """Write the adapted RSC-Net (atomically) with its provenance in ``meta["adapt"]`` and, when given, its
    own adapted temporal module inside the same file (``temporal_choice.temporal_entry``; provenance
    also under ``meta["adapt"]["temporal"]``)."""
    _output_check(out)
    prov = {**provenance, "temporal": temporal_provenance} if temporal is not None else provenance
    extra = temporal_entry(temporal, model, body_id, {"adapt_temporal": temporal_provenance or {}}) if temporal is not None else None
    save(out, model, body_id, trained=True, meta={"adapt": prov, "steps": provenance["steps"]}, extra=extra)


def gather(sources: list[Path], pipeline: Pipeline, cfg: AdaptConfig, run_dir: Path,
           progress: Callable[[str, int, int], None] | None = None) -> tuple[LabelSet, LabelSet, dict]:  # fmt: skip
    """Pseudo-labels and held-out person-frames of every video (cached per video in ``run_dir``, so a
    rerun does not label again), thinned to ``cfg.max_labels``; and the provenance of the sources.
    ``progress(name, frames_done, frames_total)``. InputError (one line) for unusable footage."""
    size = pipeline.model.config.input_size
    trains, helds, videos, total = [], [], [], Counter()
    for src in sources:
        if not src.is_file():
            raise InputError(f"{src} is not a video file" if src.exists() else f"{src} does not exist")
        source = FrameSource(src)
        digest = assets.file_digest(src)
        stride = frame_stride_for(source.frame_count, cfg)
        sampling = Sampling(stride, cfg.window)
        settings = settings_of(cfg.filter, frame_stride=stride, window=cfg.window, label_stride=cfg.label_stride,
                               val_fraction=cfg.val_fraction,
                               base=cfg.base_id, size=size, refiner=repr(pipeline.refiner and pipeline.refiner.config))  # fmt: skip
        cache = run_dir / f"labels_{digest}.npz"
        found = load_collected(cache, settings)
        if found is None:
            if not source.frame_count:
                raise InputError(f"{src}: the container does not say how long the video is; re-encode it (e.g. ffmpeg -i in out.mp4)")
            found = collect_video(_runner(pipeline, source, sampling, src.name, progress), source.frame_count, sampling,
                                  cfg.val_fraction, size, source.width, source.height, cfg.filter, cfg.label_stride,
                                  gap=_gap(source, sampling, cfg.val_fraction))  # fmt: skip
            if source.error:
                raise InputError(f"{src}: {source.error}")
            save_collected(cache, found, settings)
        offset = np.int32(len(videos) * TRACKS_PER_VIDEO)  # track ids of different videos never meet
        trains.append(replace(found.train, track=found.train.track + offset))
        helds.append(replace(found.heldout, track=found.heldout.track + offset))
        total.update(found.counts)
        videos.append({"name": src.name, "sha256_10": digest, "frames": source.frame_count, "fps": source.fps,
                       "frame_stride": stride, "window": cfg.window, **found.counts})  # fmt: skip
    check_enough(dict(total), cfg.min_labels, cfg.min_heldout)
    labels = LabelSet.concat(trains, size)
    if len(labels) > cfg.max_labels:  # evenly over time, not at random: neighbouring frames look alike
        labels = labels.take(np.linspace(0, len(labels) - 1, cfg.max_labels).round().astype(np.int64))
    return labels, LabelSet.concat(helds, size), {"videos": videos, **label_stats(labels), "heldout_frames": int(total["heldout"])}


def frame_stride_for(frame_count: int, cfg: AdaptConfig) -> int:
    """Every k-th frame of a video of ``frame_count`` frames is read: ``cfg.frame_stride``, or (0) the
    smallest k that reads at most ``cfg.max_frames``."""
    return cfg.frame_stride or max(1, -(-frame_count // cfg.max_frames))


def _gap(source: FrameSource, sampling: Sampling, val_fraction: float) -> int:
    """Read frames just before the held-out part used for neither part: those of its last second, at most a fifth of the training part."""
    split_source = int(np.floor((1.0 - val_fraction) * source.frame_count))
    split = sampling.kept_before(split_source)
    return int(min(split - sampling.kept_before(max(split_source - round(source.fps), 0)), split // 5))


def _runner(pipeline: Pipeline, source: FrameSource, sampling: Sampling, name: str,
            progress: Callable[[str, int, int], None] | None):  # noqa: ANN202  # fmt: skip
    """``run_frames()`` for ``collect_video``: the pipeline over the frames ``sampling`` keeps, reporting progress."""

    def run() -> Iterator[FrameResult]:
        total = max(sampling.kept_before(source.frame_count), 1)
        for k, result in enumerate(pipeline.run(strided(iter(source), sampling), sampling.fps(source.fps))):
            if progress is not None:
                progress(name, k + 1, total)
            yield result

    return run


def label_stats(labels: LabelSet) -> dict[str, object]:
    """Counts of pseudo-labels per resolution range and their height range (for the provenance)."""
    ranges = np.bincount([select_range(int(n)) for n in labels.native], minlength=5).tolist() if len(labels) else [0] * 5
    heights = [float(labels.height.min()), float(labels.height.max())] if len(labels) else []
    return {"labels": len(labels), "labels_per_range": ranges, "height_px": heights}
