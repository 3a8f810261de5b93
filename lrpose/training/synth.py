"""``lrpose synth``: synthetic people with full ground truth, as SPIN-style crops or CCTV-like clips.

Crops (``--kind crops``): shards ``crops_00000.npz`` of ``shard_size`` samples with
``images`` (N, S, S, 3) uint8, ``mask`` (N, S, S) bool, ``pose`` (N, 72), ``betas`` (N, 10),
``S`` (N, 24, 4) SPIN's 24 keypoints in 3D (camera frame, metres, + confidence),
``part`` (N, 24, 3) the same in crop pixels (+ visibility), ``cam`` (N, 3) weak-perspective crop
camera, ``trans`` (N, 3), ``has_smpl`` (N,), ``texture`` (N, T, T, 3) uint8 ground-truth UV maps
(bodies with UVs). Video (``--kind video``): ``clip_00000.mp4`` plus ``clip_00000.npz`` with
per-frame, per-person boxes, track ids, SMPL parameters, 3D joints and 2D keypoints.

Every shard/clip draws from its own generator seeded by (seed, index), so output is identical
for any number of worker processes and reruns skip files that already exist (resumable).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from lrpose.body import SPIN_J24_NAMES
from lrpose.config import BodyConfig, check_choice, check_minimums
from lrpose.errors import InputError
from lrpose.files import atomic_write_bytes, save_npz
from lrpose.geometry import SPIN_FOCAL_PX
from lrpose.io import VideoWriter
from lrpose.training.appearance import background, list_backgrounds, sample_lighting
from lrpose.training.poses import load_pose_file, motion_pose, sample_action_pose, sample_motion, sample_static_pose
from lrpose.training.scene import (
    FLIP,
    BodyContext,
    CameraSpec,
    Posed,
    ground_backdrop,
    pose_in_camera,
    project_points,
    render_people,
    rot_x,
    rot_y,
    sample_camera,
    sample_person,
)

MAX_N = {"crops": 10_000_000, "video": 100_000}
"""Largest ``--n`` per kind (about 1 TB of 224 px crops, of 4 s 640x480 clips): a larger count is a typo."""


@dataclass(frozen=True)
class SynthConfig:
    """What to generate."""

    kind: str = "crops"
    """'crops' or 'video'."""
    n: int = 512
    """Number of crops, or of clips."""
    seed: int = 0
    crop_size: int = 224
    tex_size: int = 128
    shard_size: int = 64
    workers: int = 1
    poses: str | None = None
    """Optional .npz of (N, 72) poses to sample body poses from."""
    backgrounds: str | None = None
    """Optional folder of background images."""
    width: int = 640
    height: int = 480
    fps: int = 15
    seconds: float = 4.0
    max_people: int = 6
    scene_seed: int | None = None
    """Video: one fixed scene for every clip (camera, background, lighting drawn from this seed), like one
    CCTV camera; None: each clip its own scene."""
    pitch_deg: tuple[float, float] | None = None
    """Video: the camera's downward tilt drawn from this range (degrees) instead of its kind's."""
    light: float = 1.0
    """Video: scale of the ambient and directional light (below 1: a darker scene)."""

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, ("crops", "video"))
        check_minimums(self, n=1, workers=1, crop_size=1, tex_size=1, shard_size=1, fps=1, max_people=1)
        if self.n > MAX_N[self.kind]:
            raise InputError(f"--n must be at most {MAX_N[self.kind]:,} for --kind {self.kind}, got {self.n:,}")
        if self.seconds <= 0:
            raise InputError(f"--seconds must be positive, got {self.seconds}")
        if self.pitch_deg is not None and not (-30.0 <= self.pitch_deg[0] <= self.pitch_deg[1] <= 80.0):
            raise InputError(f"--pitch must be LO,HI degrees with -30 <= LO <= HI <= 80, got {self.pitch_deg}")
        if not 0.05 <= self.light <= 3.0:
            raise InputError(f"--light must be between 0.05 and 3, got {self.light}")


_CTX: dict[str, object] = {}


def _context(cfg: SynthConfig, body_cfg: BodyConfig) -> tuple[BodyContext, list[Path], np.ndarray | None]:
    """Per-process cache of the body context, background list and user poses."""
    key = f"{body_cfg}|{cfg.tex_size}|{cfg.backgrounds}|{cfg.poses}"
    if _CTX.get("key") != key:
        from lrpose.body import load_body

        torch.set_num_threads(1)
        _CTX.update(
            key=key,
            ctx=BodyContext(load_body(body_cfg), cfg.tex_size),
            bgs=list_backgrounds(Path(cfg.backgrounds)) if cfg.backgrounds else [],
            poses=load_pose_file(cfg.poses) if cfg.poses else None,
        )
    return _CTX["ctx"], _CTX["bgs"], _CTX["poses"]  # type: ignore[return-value]


def _body_pose(rng: np.random.Generator, user: np.ndarray | None) -> np.ndarray:
    if user is not None:
        p = user[int(rng.integers(len(user)))].reshape(24, 3).copy()
        p[0] = 0.0
        return p
    u = rng.random()
    if u < 0.35:
        return sample_static_pose(rng)
    if u < 0.6:
        return motion_pose(sample_motion(rng), float(rng.uniform(0, 3)))
    return sample_action_pose(rng)  # sitting, squatting, bending, reaching, kicking, running, turning


def _crop_root(rng: np.random.Generator) -> np.ndarray:
    """Root rotation in the camera frame: any facing direction, a camera 5-40 degrees above (CCTV) 70 % of
    the time, else one of ``sample_camera``'s kinds, and a little roll."""
    cam = sample_camera(rng, 2, 2)
    if rng.random() < 0.7:
        cam = CameraSpec("cctv", math.radians(rng.uniform(5, 40)), cam.height_m, cam.focal_px, 2, 2)
    roll = np.array([[math.cos(r := rng.normal(0, 0.05)), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return roll @ rot_x(cam.pitch) @ FLIP @ rot_y(rng.uniform(0, 2 * math.pi))


def make_crops_shard(cfg: SynthConfig, body_cfg: BodyConfig, shard: int) -> dict[str, np.ndarray]:
    """Arrays of one crops shard (see module doc)."""
    ctx, bgs, user = _context(cfg, body_cfg)
    rng = np.random.default_rng([cfg.seed, shard, 0])
    count = min(cfg.shard_size, cfg.n - shard * cfg.shard_size)
    people = [sample_person(ctx, rng) for _ in range(count)]
    body_pose = np.stack([_body_pose(rng, user) for _ in range(count)])
    roots = np.stack([_crop_root(rng) for _ in range(count)])
    posed0 = pose_in_camera(ctx, np.stack([p.betas for p in people]), body_pose, roots, np.zeros((count, 3)))
    # another person in 30 % of the crops, beside and behind (or in front of) the labelled one
    extra = [k for k in range(count) if rng.random() < 0.3]
    others = [sample_person(ctx, rng) for _ in extra]
    posed_o = pose_in_camera(ctx, np.stack([p.betas for p in others]), np.stack([_body_pose(rng, user) for _ in extra]),
                             np.stack([_crop_root(rng) for _ in extra]), np.zeros((len(extra), 3))) if extra else None  # fmt: skip
    offsets = {k: (rng.choice([-1.0, 1.0]) * rng.uniform(0.35, 0.9), rng.uniform(-0.1, 0.1), rng.uniform(0.85, 1.8)) for k in extra}
    s, f = cfg.crop_size, SPIN_FOCAL_PX
    center = np.array([s / 2 - 0.5, s / 2 - 0.5])
    out: dict[str, list] = {k: [] for k in ("images", "mask", "S", "part", "cam", "trans")}
    for i in range(count):
        v = posed0.vertices[i]
        lo, hi = v[:, :2].min(0).values.numpy(), v[:, :2].max(0).values.numpy()
        extent = float(max(hi - lo)) * rng.uniform(1.1, 1.35)  # SPIN-like 1.2x box with detector jitter
        tz = f * extent / s
        shift = rng.normal(0, 0.04, 2) * extent
        trans = np.array([-(lo[0] + hi[0]) / 2 + shift[0], -(lo[1] + hi[1]) / 2 + shift[1], tz], np.float32)
        t = torch.from_numpy(trans)
        posed = Posed(
            posed0.vertices[i : i + 1] + t, posed0.joints[i : i + 1] + t, posed0.j24[i : i + 1] + t, posed0.pose[i : i + 1], trans[None]
        )
        crowd = [people[i]]
        if i in offsets:  # the other person: x offset in crop widths, y jitter, depth relative to this one
            k = extra.index(i)
            dx, dy, dz = offsets[i]
            centre = torch.tensor([dx * extent * dz + shift[0], dy * extent * dz + shift[1], tz * dz], dtype=torch.float32)
            t2 = centre - posed_o.joints[k, 0]  # its pelvis there (the labelled body's box centre is at ``shift``)
            posed = Posed(torch.cat([posed.vertices, posed_o.vertices[k : k + 1] + t2]), posed.joints, posed.j24, posed.pose, posed.trans)
            crowd.append(others[k])
        r = render_people(ctx, posed, crowd, sample_lighting(rng), f, center, background(rng, s, s, bgs))
        uv = project_points(posed.j24[0], f, center)
        vis = ((uv >= 0) & (uv <= s - 1)).all(1).astype(np.float32)
        out["images"].append(r.rgb)
        out["mask"].append(r.person_index == 0)
        out["S"].append(np.concatenate([posed.j24[0].numpy(), np.ones((24, 1), np.float32)], 1))
        out["part"].append(np.concatenate([uv, vis[:, None]], 1).astype(np.float32))
        out["cam"].append(np.array([2 * f / (s * tz), trans[0], trans[1]], np.float32))
        out["trans"].append(trans)
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays.update(pose=posed0.pose.astype(np.float32), betas=np.stack([p.betas for p in people]), has_smpl=np.ones(count, np.float32))
    if people and people[0].texture is not None:
        arrays["texture"] = np.stack([p.texture for p in people])
    return arrays


def _place_on_ground(rng: np.random.Generator, cam: CameraSpec) -> np.ndarray | None:
    """World ground point (3,) where a person appears 24-200 px tall inside the frame, or None."""
    r_wc = cam.r_cw.T
    for _ in range(50):
        h_px = math.exp(rng.uniform(math.log(28), math.log(200)))
        z = cam.focal_px * 1.7 / h_px
        x = (rng.uniform(0.1, 0.9) * cam.width - cam.center_px[0]) * z / cam.focal_px
        y = -(cam.height_m + r_wc[1, 0] * x + r_wc[1, 2] * z) / r_wc[1, 1]
        v = cam.focal_px * y / z + cam.center_px[1]
        if 0.35 * cam.height < v < cam.height and z > 1.0:
            return np.array([0.0, cam.height_m, 0.0]) + r_wc @ np.array([x, y, z])
    return None


def _walks(motions: list, starts: list[np.ndarray], yaw0: np.ndarray, frames: int, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame and person: ground position (T, N, 3) metres (world), heading (T, N) rad, body pose (T, N, 24, 3)."""
    n, dt = len(motions), 1.0 / fps
    pos, yaw, body_pose = np.zeros((frames, n, 3)), np.zeros((frames, n)), np.zeros((frames, n, 24, 3))
    for i in range(n):
        p, psi = starts[i].copy(), yaw0[i]
        for t in range(frames):
            pos[t, i], yaw[t, i] = p, psi
            body_pose[t, i] = motion_pose(motions[i], t * dt)
            p = p + motions[i].speed_mps * dt * np.array([math.sin(psi), 0.0, math.cos(psi)])
            psi += motions[i].turn_rate * dt
    return pos, yaw, body_pose


def _place_clip(ctx: BodyContext, cam, betas: np.ndarray, pos: np.ndarray, yaw: np.ndarray, body_pose: np.ndarray) -> Posed:
    """Pose every person of every frame in the camera frame, feet on the ground and pelvis over its
    walking position; fields shaped (T, N, ...)."""
    frames, n = yaw.shape
    r_cw = cam.r_cw
    roots = np.einsum("ij,tnjk->tnik", r_cw, np.stack([[rot_y(a) for a in row] for row in yaw])) if n else np.zeros((frames, 0, 3, 3))
    flat = pose_in_camera(
        ctx,
        np.repeat(betas[None], frames, 0).reshape(-1, 10),
        body_pose.reshape(-1, 24, 3),
        roots.reshape(-1, 3, 3),
        np.zeros((frames * n, 3)),
    )
    c = np.array([0.0, cam.height_m, 0.0])
    v_w = torch.einsum("ij,bvj->bvi", torch.tensor(r_cw.T, dtype=torch.float32), flat.vertices)
    j0_w = (r_cw.T @ flat.joints[:, 0].numpy().T).T
    target = pos.reshape(-1, 3)
    off_w = np.stack([target[:, 0] - j0_w[:, 0], -v_w[..., 1].min(1).values.numpy(), target[:, 2] - j0_w[:, 2]], 1)
    off_c = torch.tensor(((off_w - c) @ r_cw.T), dtype=torch.float32)
    return Posed(
        (flat.vertices + off_c[:, None]).reshape(frames, n, -1, 3),
        (flat.joints + off_c[:, None]).reshape(frames, n, 24, 3),
        (flat.j24 + off_c[:, None]).reshape(frames, n, 24, 3),
        flat.pose.reshape(frames, n, 72),
        off_c.numpy().reshape(frames, n, 3),
    )


def _render_clip(ctx: BodyContext, cam, posed: Posed, people: list, light, backdrop, path: Path, fps: int) -> dict[str, np.ndarray]:
    """Render the frames into ``path`` (H.264); per frame and person: boxes, 2D joints, SPIN keypoints, visible pixels."""
    frames, n = posed.pose.shape[:2]
    gt = {
        k: np.zeros(s, np.float32) for k, s in (("boxes", (frames, n, 4)), ("joints2d", (frames, n, 24, 2)), ("part", (frames, n, 24, 3)))
    }
    pixels = np.zeros((frames, n), np.int32)
    verts, joints, j24 = posed.vertices, posed.joints, posed.j24
    with VideoWriter(path, fps, cam.width, cam.height) as writer:
        for t in range(frames):
            front = verts[t, :, :, 2].min(1).values > 0.3 if n else torch.zeros(0, dtype=torch.bool)
            idx = [i for i in range(n) if bool(front[i])]
            posed_t = Posed(verts[t, idx], joints[t, idx], j24[t, idx], posed.pose[t, idx], posed.trans[t, idx])
            r = render_people(ctx, posed_t, [people[i] for i in idx], light, cam.focal_px, cam.center_px, backdrop)
            writer.write(r.rgb)
            for k, i in enumerate(idx):
                uv = project_points(verts[t, i], cam.focal_px, cam.center_px)
                lo, hi = uv.min(0), uv.max(0)
                gt["boxes"][t, i] = [max(lo[0], 0), max(lo[1], 0), min(hi[0], cam.width - 1), min(hi[1], cam.height - 1)]
                gt["joints2d"][t, i] = project_points(joints[t, i], cam.focal_px, cam.center_px)
                puv = project_points(j24[t, i], cam.focal_px, cam.center_px)
                inside = ((puv >= 0) & (puv <= [cam.width - 1, cam.height - 1])).all(1)
                gt["part"][t, i] = np.concatenate([puv, inside[:, None]], 1)
                pixels[t, i] = int((r.person_index == k).sum())
    return {**gt, "pixels": pixels, "present": pixels > 0}


CLIP_ATTEMPTS = 20
"""Sub-seeds a clip tries before giving up when its draws leave nobody visible (see ``make_clip``)."""


def make_clip(cfg: SynthConfig, body_cfg: BodyConfig, index: int, out_dir: Path) -> dict[str, np.ndarray]:
    """Render one clip to ``out_dir/clip_XXXXX.mp4``; return its ground truth arrays.

    A draw can leave nobody visible (no ground point where a person fits in the frame, or every
    person behind the camera or out of the picture): the clip is then drawn again from the next
    sub-seed (``[seed, index, 1, k]``, k = 1 .. ``CLIP_ATTEMPTS`` - 1; the first draw uses
    ``[seed, index, 1]``), and after ``CLIP_ATTEMPTS`` empty draws it is an InputError."""
    for attempt in range(CLIP_ATTEMPTS):
        sub = [cfg.seed, index, 1] if attempt == 0 else [cfg.seed, index, 1, attempt]
        gt = _draw_clip(cfg, body_cfg, np.random.default_rng(sub), index, out_dir)
        if gt is not None:
            return gt
    (out_dir / f"clip_{index:05d}.mp4").unlink(missing_ok=True)  # the last empty draw's video: nothing half-written
    raise InputError(
        f"synthetic clip {index}: no person was visible in {CLIP_ATTEMPTS} draws (seed {cfg.seed}); "
        f"try another --seed, a larger --width/--height or another --pitch"
    )


def _draw_clip(cfg: SynthConfig, body_cfg: BodyConfig, rng: np.random.Generator, index: int, out_dir: Path) -> dict[str, np.ndarray] | None:
    """One draw of clip ``index`` from ``rng``: its ground truth (video written), None when nobody is visible in any frame."""
    ctx, bgs, user = _context(cfg, body_cfg)
    scene = rng if cfg.scene_seed is None else np.random.default_rng([cfg.scene_seed, 0, 2])  # one camera for every clip
    cam = sample_camera(scene, cfg.width, cfg.height)
    if cfg.pitch_deg is not None:
        cam = replace(cam, pitch=math.radians(float(scene.uniform(*cfg.pitch_deg))))
    frames = max(1, int(round(cfg.seconds * cfg.fps)))
    starts = [p for p in (_place_on_ground(rng, cam) for _ in range(int(rng.integers(1, cfg.max_people + 1)))) if p is not None]
    n = len(starts)
    if n == 0:
        return None
    people = [sample_person(ctx, rng) for _ in range(n)]
    motions = [sample_motion(rng) for _ in range(n)]
    yaw0 = rng.uniform(0, 2 * math.pi, n)
    pos, yaw, body_pose = _walks(motions, starts, yaw0, frames, cfg.fps)
    betas = np.stack([p.betas for p in people]) if n else np.zeros((0, 10), np.float32)
    posed = _place_clip(ctx, cam, betas, pos, yaw, body_pose)
    light = sample_lighting(scene)
    if cfg.light != 1.0:
        light = replace(light, ambient=light.ambient * cfg.light, intensity=light.intensity * cfg.light)
    backdrop = ground_backdrop(scene, cam, bgs)
    gt = _render_clip(ctx, cam, posed, people, light, backdrop, out_dir / f"clip_{index:05d}.mp4", cfg.fps)
    if not gt["present"].any():
        return None
    result = {
        **gt,
        "track_ids": np.arange(n, dtype=np.int32),
        "betas": betas.astype(np.float32),
        "pose": posed.pose.astype(np.float32),
        "trans": posed.trans.astype(np.float32),
        "joints3d": posed.joints.numpy().astype(np.float32),
        "S": np.concatenate([posed.j24.numpy(), np.ones((frames, n, 24, 1), np.float32)], -1),
        "frame_ids": np.arange(frames, dtype=np.int32),
        "fps": np.float32(cfg.fps),
        "focal_px": np.float32(cam.focal_px),
        "center_px": cam.center_px.astype(np.float32),
        "r_cw": cam.r_cw.astype(np.float32),
        "camera_height_m": np.float32(cam.height_m),
        "camera_kind": np.array(cam.kind),
        "motion": np.array([m.kind for m in motions]),
    }
    if people and people[0].texture is not None:
        result["texture"] = np.stack([p.texture for p in people])
    return result


def _job(args: tuple[SynthConfig, BodyConfig, int, str]) -> str:
    cfg, body_cfg, index, out = args
    out_dir = Path(out)
    if cfg.kind == "crops":
        path = out_dir / f"crops_{index:05d}.npz"
        if not path.exists():
            save_npz(path, make_crops_shard(cfg, body_cfg, index))
    else:
        path = out_dir / f"clip_{index:05d}.npz"
        if not path.exists():  # the .npz is written after the .mp4: its presence marks a finished clip
            save_npz(path, make_clip(cfg, body_cfg, index, out_dir))
    return path.name


def generate(cfg: SynthConfig, body_cfg: BodyConfig, out: Path, progress=None) -> list[Path]:
    """Generate the dataset into ``out`` (resumable); ``progress(done, total)`` is called per file.
    Jobs are made lazily and handed to the workers a few at a time: memory does not grow with ``cfg.n``."""
    if cfg.backgrounds and not Path(cfg.backgrounds).is_dir():
        raise InputError(f"--backgrounds {cfg.backgrounds} is not a folder")
    if cfg.poses:
        load_pose_file(cfg.poses)  # fail early on a bad file
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out {out}: cannot create the folder ({'a file is in the way' if out.is_file() else e.strerror})") from None
    jobs = -(-cfg.n // cfg.shard_size) if cfg.kind == "crops" else cfg.n
    window = 4 * cfg.workers if cfg.workers > 1 and jobs > 1 else 1  # Pool.imap alone would queue every job at once
    names: list[str] = []
    with mp.get_context("spawn").Pool(min(cfg.workers, jobs)) if window > 1 else nullcontext() as pool:
        for start in range(0, jobs, window):
            batch = ((cfg, body_cfg, i, str(out)) for i in range(start, min(start + window, jobs)))
            for name in pool.imap(_job, batch) if pool is not None else map(_job, batch):
                names.append(name)
                if progress:
                    progress(len(names), jobs)
    meta = {"kind": cfg.kind, "config": asdict(cfg), "files": names, "spin_j24_names": list(SPIN_J24_NAMES), "format_version": 1}
    atomic_write_bytes(out / "meta.json", json.dumps(meta, indent=1).encode())
    return [out / n for n in names]
