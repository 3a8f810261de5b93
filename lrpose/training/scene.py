"""Scenes for synthetic data: people (shape, clothes), cameras, posing in the camera frame and
rendering several textured, lit people at once (one z-buffer, so they occlude each other).

Frames: world is Y up with the ground at y = 0; the camera frame is x right, y down, z forward
(SPIN). ``R_cw`` maps world directions to camera directions; a level camera looking along
world -Z has ``R_cw = diag(1, -1, -1)`` (the 180 degree flip about x), pitched down by theta it is
``R_x(theta) @ diag(1, -1, -1)``.

Ground truth follows SPIN: ``pose`` (72) has the root orientation in the camera frame and
``trans`` (3) is such that ``vertices_cam = body(pose, betas) + trans`` (the body's root rotates
about its pelvis joint, as in smplx).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle
from lrpose.render import Fragments, interpolate, lambert, pixel_normals, project_to_screen, rasterize, sample_texture
from lrpose.training.appearance import Lighting, Outfit, background, paint_texture, sample_outfit, uv_region_map, vertex_regions


def rot_x(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


FLIP = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera over a ground plane."""

    kind: str
    """'cctv', 'broadcast' or 'eye'."""
    pitch: float
    """Downward tilt in radians."""
    height_m: float
    """Height above the ground (video scenes)."""
    focal_px: float
    width: int
    height: int

    @property
    def r_cw(self) -> np.ndarray:
        return rot_x(self.pitch) @ FLIP

    @property
    def center_px(self) -> np.ndarray:
        return np.array([self.width / 2 - 0.5, self.height / 2 - 0.5])


def sample_camera(rng: np.random.Generator, width: int, height: int, kind: str | None = None) -> CameraSpec:
    """CCTV (elevated 3-8 m, looking down 10-45 deg), broadcast (high, long lens) or eye level."""
    kind = kind or str(rng.choice(["cctv", "broadcast", "eye"], p=[0.6, 0.2, 0.2]))
    if kind == "cctv":
        pitch, h, fov = rng.uniform(10, 45), rng.uniform(3, 8), rng.uniform(50, 80)
    elif kind == "broadcast":
        pitch, h, fov = rng.uniform(8, 25), rng.uniform(6, 15), rng.uniform(20, 40)
    else:
        pitch, h, fov = rng.uniform(-3, 8), rng.uniform(1.4, 1.9), rng.uniform(45, 70)
    focal = width / 2 / math.tan(math.radians(fov) / 2)
    return CameraSpec(kind, math.radians(pitch), float(h), float(focal), width, height)


class BodyContext:
    """The body model with what synthesis needs precomputed (regions, UV region map, faces)."""

    def __init__(self, body: BodyModel, tex_size: int) -> None:
        self.body = body
        self.tex_size = tex_size
        self.regions = vertex_regions(body)
        self.region_map = uv_region_map(body, tex_size) if body.uv is not None else None
        self.faces = body.faces


@dataclass(frozen=True)
class Person:
    """Identity of one synthetic person."""

    betas: np.ndarray
    """(10,)"""
    outfit: Outfit
    texture: np.ndarray | None
    """(T, T, 3) uint8 ground-truth UV texture, None without UVs."""


def sample_person(ctx: BodyContext, rng: np.random.Generator) -> Person:
    betas = np.clip(rng.normal(0.0, 1.0, 10), -2.5, 2.5)
    outfit = sample_outfit(rng)
    tex = paint_texture(ctx.region_map, outfit, rng) if ctx.region_map is not None else None
    return Person(betas.astype(np.float32), outfit, tex)


@dataclass(frozen=True)
class Posed:
    """People posed in the camera frame (N people)."""

    vertices: torch.Tensor
    """(N, V, 3) camera frame, metres."""
    joints: torch.Tensor
    """(N, 24, 3) SMPL joints, camera frame."""
    j24: torch.Tensor
    """(N, 24, 3) SPIN's 24 keypoints, camera frame."""
    pose: np.ndarray
    """(N, 72) axis-angle, root in the camera frame."""
    trans: np.ndarray
    """(N, 3) with vertices = body(pose, betas) + trans."""


@torch.no_grad()
def pose_in_camera(ctx: BodyContext, betas: np.ndarray, body_pose: np.ndarray, root_cw: np.ndarray, offset_cam: np.ndarray) -> Posed:
    """Pose N bodies: ``body_pose`` (N, 24, 3) (root ignored), ``root_cw`` (N, 3, 3) root rotation
    in the camera frame, ``offset_cam`` (N, 3) translation added in the camera frame."""
    rot = axis_angle_to_rotmat(torch.as_tensor(body_pose, dtype=torch.float32))
    root = torch.as_tensor(root_cw, dtype=torch.float32)
    b = torch.as_tensor(betas, dtype=torch.float32)
    t = torch.as_tensor(offset_cam, dtype=torch.float32)
    out = ctx.body(rot[:, 1:], root, b, t)
    pose = torch.cat([rotmat_to_axis_angle(root)[:, None], rotmat_to_axis_angle(rot[:, 1:])], 1).reshape(-1, 72)
    return Posed(out.vertices, out.joints, ctx.body.spin_j24(out), pose.numpy(), offset_cam.astype(np.float32))


@dataclass(frozen=True)
class Rendered:
    """A rendered image with its rasterisation."""

    rgb: np.ndarray
    """(H, W, 3) uint8"""
    person_index: np.ndarray
    """(H, W) int16, which person covers each pixel (-1 background)."""
    fragments: Fragments


def render_people(
    ctx: BodyContext,
    posed: Posed,
    people: list[Person],
    lighting: Lighting,
    focal_px: float,
    center_px: np.ndarray,
    backdrop: np.ndarray,
) -> Rendered:
    """Render posed people over ``backdrop`` (H, W, 3) uint8 with textures (or region colours) and lighting."""
    h, w = backdrop.shape[:2]
    n, nv = posed.vertices.shape[:2]
    if n == 0:
        empty = Fragments(torch.full((1, h, w), -1), torch.zeros(1, h, w, 3), torch.full((1, h, w), float("inf")))
        return Rendered(backdrop.copy(), np.full((h, w), -1, np.int16), empty)
    trans = torch.zeros(n, 3)
    center = torch.as_tensor(center_px, dtype=torch.float32)[None].expand(n, 2)
    screen = project_to_screen(posed.vertices, trans, focal_px, center).reshape(1, -1, 3)
    faces = torch.cat([ctx.faces + i * nv for i in range(n)])
    frags = rasterize(screen, faces, h, w)
    cam_verts = posed.vertices.reshape(1, -1, 3)
    if ctx.region_map is not None:
        tex = np.concatenate([p.texture for p in people], axis=1)  # atlas: people side by side
        atlas = torch.from_numpy(tex).permute(2, 0, 1)[None].float() / 255.0
        uv = ctx.body.uv
        nt = uv.shape[0]
        uv_all = torch.cat([torch.stack([(uv[:, 0] + i) / n, uv[:, 1]], -1) for i in range(n)])
        uv_faces = torch.cat([ctx.body.uv_faces + i * nt for i in range(n)])
        albedo = sample_texture(frags, uv_all, uv_faces, atlas)
    else:
        colours = torch.cat([torch.from_numpy(p.outfit.colours[ctx.regions]) for p in people]) / 255.0
        albedo = interpolate(frags, faces, colours[None])
    normals = pixel_normals(frags, cam_verts, faces)
    light = lighting.ambient + lighting.intensity * lambert(normals, tuple(lighting.direction))
    light = light + 0.15 * lambert(normals)  # soft fill from the camera
    shaded = (albedo * light[..., None]).clamp(0, 1)[0].numpy()
    mask = frags.mask[0].numpy()
    rgb = backdrop.astype(np.float32)
    rgb[mask] = shaded[mask] * 255.0
    person = np.where(mask, (frags.face_index[0].numpy() // len(ctx.faces)), -1).astype(np.int16)
    return Rendered(rgb.clip(0, 255).astype(np.uint8), person, frags)


def project_points(points: torch.Tensor, focal_px: float, center_px: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame points -> (..., 2) pixels."""
    p = points.numpy()
    return focal_px * p[..., :2] / np.maximum(p[..., 2:], 1e-6) + center_px


def ground_backdrop(rng: np.random.Generator, cam: CameraSpec, bgs: list[Path]) -> np.ndarray:
    """(H, W, 3) uint8 background (``bgs``: the user's photos, else generated) with a textured ground plane
    seen by ``cam`` in perspective (paving, markings) below the horizon (``lrpose synth --kind video``)."""
    w, h = cam.width, cam.height
    img = background(rng, h, w, bgs).astype(np.float32)
    size, metres = 1024, 60.0
    base = rng.uniform(70, 170)
    ground = base + 12 * cv2.resize(rng.normal(0, 1, (32, 32)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    ground = np.repeat(ground[..., None], 3, 2) * rng.uniform(0.85, 1.15, 3)
    tile = int(rng.integers(20, 60))
    ground[::tile] *= 0.75
    ground[:, ::tile] *= 0.75
    for _ in range(int(rng.integers(0, 4))):
        x = int(rng.integers(0, size))
        ground[:, x : x + 6] = 230.0
    m = metres / size
    a = np.array([[m, 0, -metres / 2], [0, m, -metres - 0.5], [0, 0, 1]])  # texture px -> ground (X, Z), Z < 0 in front
    r = cam.r_cw
    c = np.array([0.0, cam.height_m, 0.0])
    k = np.array([[cam.focal_px, 0, cam.center_px[0]], [0, cam.focal_px, cam.center_px[1]], [0, 0, 1]])
    hom = k @ np.stack([r[:, 0], r[:, 2], -r @ c], 1) @ a
    warped = cv2.warpPerspective(ground.clip(0, 255).astype(np.float32), hom, (w, h), flags=cv2.INTER_AREA)
    inside = cv2.warpPerspective(np.ones((size, size), np.float32), hom, (w, h)) > 0.5
    img[inside] = warped[inside]
    return img.clip(0, 255).astype(np.uint8)
