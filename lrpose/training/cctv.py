"""CCTV-realistic degradation of training crops, in two places (issue #14):

- the **scene** (once per sample, on the 224 px crop, shared by all resolution views): low light and
  colour casts (sodium, fluorescent, infrared night mode), occluders (poles, railings, boxes, a
  parked-car edge), truncation (the person partly outside the camera frame: the crop shifted and
  zoomed, labels moved with it, keypoints that leave the crop marked invisible);
- the **camera** (per view, at the view's native low resolution, before it is enlarged to the network
  input): optical Gaussian blur, motion blur along a random direction, interlacing (odd and even
  lines from fields half a frame apart), sensor noise (read + shot noise, coarser chroma noise), then
  compression: JPEG or a real H.264 intra frame (libx264 through PyAV) at a random quality.

Every degradation keeps the 2D labels aligned with the pixels: the photometric ones and the occluders
move no pixel; blur kernels are centred and symmetric; interlacing shifts the two fields by opposite
halves; truncation applies the same affine map to the image and to the labels (tests check each with
known-geometry images). All randomness comes from the ``rng`` passed in: same seed, same output.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import cv2
import numpy as np

from lrpose.crops import apply_affine, resize_square


@dataclass(frozen=True)
class CCTVConfig:
    """Probability of each degradation (and its strength range)."""

    light: float = 0.6
    occluder: float = 0.35
    truncation: float = 0.2
    blur: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    """Gaussian sigma in native-resolution pixels."""
    motion: float = 0.3
    motion_px: tuple[float, float] = (1.5, 5.0)
    """Motion-blur length in native pixels."""
    interlace: float = 0.1
    noise: float = 0.7
    compression: float = 0.8
    h264_share: float = 0.5
    """Of compressed views, the share coded as H.264 (the rest JPEG)."""
    jpeg_quality: tuple[int, int] = (10, 70)
    h264_crf: tuple[int, int] = (23, 45)


# ---- scene level (224 px crop) ----------------------------------------------------------------


def light_and_cast(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low light (gain and gamma), a colour cast of the light source, or infrared night mode (grey)."""
    x = img.astype(np.float32) / 255.0
    kind = rng.choice(["dim", "sodium", "fluorescent", "infrared", "warm"])
    gain = rng.uniform(0.25, 1.0)
    x = np.power(x, rng.uniform(0.8, 1.6)) * gain
    if kind == "infrared":
        grey = x @ np.array([0.3, 0.59, 0.11], np.float32)
        x = np.repeat(grey[..., None], 3, 2) * rng.uniform(1.0, 1.8)  # IR illuminator: skin and clothes brighten
    else:
        cast = {"dim": (1.0, 1.0, 1.0), "sodium": (1.3, 0.95, 0.55), "fluorescent": (0.9, 1.1, 0.95), "warm": (1.15, 1.0, 0.8)}[kind]
        x = x * np.asarray(cast, np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
        sat = rng.uniform(0.4, 1.0)  # cheap cameras wash colours out
        grey = x.mean(2, keepdims=True)
        x = grey + sat * (x - grey)
    return (x.clip(0, 1) * 255.0 + 0.5).astype(np.uint8)


def occluders(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """1-2 opaque foreground objects drawn over the crop; returns (image, (S, S) bool mask of drawn pixels)."""
    s = img.shape[0]
    out, mask = img.copy(), np.zeros((s, s), np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        layer = np.zeros((s, s), np.uint8)
        kind = rng.choice(["pole", "railing", "box", "car"])
        if kind == "pole":
            x, w = int(rng.integers(0, s)), int(rng.integers(s // 28 + 1, s // 8 + 2))
            layer[:, max(0, x - w // 2) : x + w // 2 + 1] = 1
        elif kind == "railing":
            y = int(rng.integers(s // 2, s))
            for k in range(int(rng.integers(1, 3))):
                yy = y - k * int(rng.integers(s // 12 + 1, s // 5 + 2))
                layer[max(0, yy) : max(0, yy) + max(2, s // 40)] = 1
        elif kind == "box":
            w, h = int(rng.integers(s // 6, s // 2)), int(rng.integers(s // 6, s // 2))
            x, y = int(rng.integers(-w // 2, s - w // 2)), int(rng.integers(s // 3, s - h // 3))
            layer[max(0, y) : y + h, max(0, x) : x + w] = 1
        else:  # a car's bonnet/roof edge from the bottom
            pts = np.array([[0, s], [0, int(rng.integers(s // 2, s))], [s, int(rng.integers(s // 2, s))], [s, s]], np.int32)
            cv2.fillPoly(layer, [pts], 1)
        ramp = 0.85 + 0.3 * np.linspace(0, 1, s, dtype=np.float32)[:, None, None]  # a little vertical shading
        paint = np.broadcast_to(rng.uniform(10, 230, 3).astype(np.float32) * ramp, (s, s, 3)).clip(0, 255).astype(np.uint8)
        sel = layer.astype(bool)
        out[sel] = paint[sel]
        mask |= layer
    return out, mask.astype(bool)


def truncation_affine(s: int, rng: np.random.Generator) -> np.ndarray:
    """(2, 3) map of crop pixels: zoom in 1-1.35x about the centre and shift 10-35 % of the side, so part
    of the person leaves the crop (a person at the frame edge or a badly placed box)."""
    zoom = rng.uniform(1.0, 1.35)
    angle = rng.uniform(0, 2 * math.pi)
    shift = rng.uniform(0.1, 0.35) * s
    c = (s - 1) / 2
    return np.array([[zoom, 0, c - zoom * c + shift * math.cos(angle)], [0, zoom, c - zoom * c + shift * math.sin(angle)]])


def truncate(img: np.ndarray, part: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image, part) with the truncation map applied to both; pixels from outside are black (the crop
    ran off the frame, as lrpose's crops are zero-padded); keypoints outside the crop lose visibility."""
    s = img.shape[0]
    m = truncation_affine(s, rng)
    out = cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    p = part.copy()
    p[:, :2] = apply_affine(m, part[:, :2])
    inside = ((p[:, :2] >= -0.5) & (p[:, :2] <= s - 0.5)).all(1)
    p[:, 2] = p[:, 2] * inside
    return out, p


def scene(img: np.ndarray, part: np.ndarray, rng: np.random.Generator, cfg: CCTVConfig) -> tuple[np.ndarray, np.ndarray]:
    """Scene-level degradations of one (S, S, 3) uint8 crop with its (24, 3) labels in crop pixels."""
    if rng.random() < cfg.truncation:
        img, part = truncate(img, part, rng)
    if rng.random() < cfg.occluder:
        img, _ = occluders(img, rng)
    if rng.random() < cfg.light:
        img = light_and_cast(img, rng)
    return img, part


# ---- camera level (native resolution) ---------------------------------------------------------


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Centred, point-symmetric line kernel (odd size) of ``length`` px along ``angle`` rad, summing to 1."""
    size = int(math.ceil(length)) | 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    for t in np.linspace(-length / 2, length / 2, 4 * size + 1):
        x, y = c + t * math.cos(angle), c + t * math.sin(angle)
        x0, y0 = math.floor(x), math.floor(y)
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            w = (1 - abs(x - x0 - dx)) * (1 - abs(y - y0 - dy))
            if 0 <= x0 + dx < size and 0 <= y0 + dy < size:
                k[y0 + dy, x0 + dx] += w
    k = k + k[::-1, ::-1]  # exactly point-symmetric: the centroid stays put
    return k / k.sum()


def motion_blur(img: np.ndarray, length: float, angle: float) -> np.ndarray:
    return cv2.filter2D(img, -1, motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT)


def interlace(img: np.ndarray, shift_px: float) -> np.ndarray:
    """Combing: even lines shifted by +shift/2, odd lines by -shift/2 (two fields, the person moving between them)."""
    out = img.copy()
    w = img.shape[1]
    for parity, dx in ((0, shift_px / 2), (1, -shift_px / 2)):
        m = np.array([[1, 0, dx], [0, 1, 0]], np.float32)
        moved = cv2.warpAffine(img, m, (w, img.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out[parity::2] = moved[parity::2]
    return out


def sensor_noise(img: np.ndarray, rng: np.random.Generator, gain: float) -> np.ndarray:
    """Shot noise (variance proportional to the signal), read noise and half-resolution chroma noise; gain 0-1."""
    x = img.astype(np.float32)
    shot = rng.normal(0, 1, x.shape).astype(np.float32) * np.sqrt(np.maximum(x, 0) * gain * 2.0)
    read = rng.normal(0, 1 + 8 * gain, x.shape[:2])[..., None].astype(np.float32)
    h, w = x.shape[:2]
    chroma = rng.normal(0, 4 * gain, ((h + 1) // 2, (w + 1) // 2, 3)).astype(np.float32)
    chroma = cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR)
    return (x + shot + read + chroma).clip(0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) if ok else img


def h264(img: np.ndarray, crf: int) -> np.ndarray:
    """One frame through libx264 (intra, yuv420p, ``crf``) and back: real H.264 blocking and chroma loss.
    Odd sides are padded by edge replication (x264 needs even sides) and cropped back."""
    import av  # PyAV (an lrpose dependency); imported here so the module loads without it

    h, w = img.shape[:2]
    ph, pw = max(16, h + h % 2), max(16, w + w % 2)
    src = np.pad(img, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": "ultrafast", "tune": "zerolatency", "threads": "1"}
        for packet in stream.encode(av.VideoFrame.from_ndarray(src, format="rgb24")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r", format="h264") as inp:
        frame = next(inp.decode(video=0)).to_ndarray(format="rgb24")
    return frame[:h, :w].copy()


def camera(img: np.ndarray, rng: np.random.Generator, cfg: CCTVConfig) -> np.ndarray:
    """Camera-level degradations of one view at its native resolution (H, W, 3) uint8."""
    if rng.random() < cfg.blur:
        img = gaussian_blur(img, rng.uniform(*cfg.blur_sigma))
    if rng.random() < cfg.motion:
        img = motion_blur(img, rng.uniform(*cfg.motion_px), rng.uniform(0, math.pi))
    if rng.random() < cfg.interlace:
        img = interlace(img, rng.uniform(1.0, 3.0) * rng.choice([-1, 1]))
    if rng.random() < cfg.noise:
        img = sensor_noise(img, rng, rng.uniform(0.05, 1.0))
    if rng.random() < cfg.compression:
        if rng.random() < cfg.h264_share:
            img = h264(img, int(rng.integers(cfg.h264_crf[0], cfg.h264_crf[1] + 1)))
        else:
            img = jpeg(img, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return img


def view(img: np.ndarray, side: int, out_size: int, rng: np.random.Generator, cfg: CCTVConfig) -> np.ndarray:
    """A low-resolution CCTV view of a square (S, S, 3) uint8 crop: shrink to ``side`` px (area, as
    ``resolution.degrade``), camera degradations there, enlarge to ``out_size`` (bicubic)."""
    small = resize_square(img, side) if side < img.shape[0] else img
    return resize_square(camera(small, rng, cfg), out_size)
