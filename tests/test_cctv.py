"""CCTV degradations keep 2D labels on the pixels (known-geometry images), are deterministic per seed,
and the on-the-fly generator gives the same crop for the same index, different crops otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrpose.training import cctv
from lrpose.training.data import HR, AugmentConfig, StepBatches, SynthStream, open_dataset
from lrpose.training.poses import ACTIONS, sample_action_pose

S = 64


def blobs(points: np.ndarray, size: int, sigma: float, background: float = 90.0) -> np.ndarray:
    """(size, size, 3) uint8: bright grey Gaussian blobs at ``points`` (N, 2) pixel centres on a flat background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.full((size, size), background, np.float32)
    for x, y in points:
        img += 150.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.repeat(img.clip(0, 255)[..., None], 3, 2).astype(np.uint8)


def centroid(img: np.ndarray, near: np.ndarray, radius: float) -> np.ndarray:
    """Brightness-weighted centre (x, y) of the blob near ``near``: pixels within ``radius`` above the image median."""
    g = img.astype(np.float32).mean(2)
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]].astype(np.float32)
    w = np.clip(g - np.median(g), 0, None) * (((xx - near[0]) ** 2 + (yy - near[1]) ** 2) <= radius**2)
    return np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()


POINTS = np.array([[20.3, 18.7], [44.6, 21.2], [31.9, 45.4]])

CAMERA_OPS = {
    "gaussian blur": lambda img, rng: cctv.gaussian_blur(img, 1.2),
    "motion blur": lambda img, rng: cctv.motion_blur(img, 5.0, float(rng.uniform(0, math.pi))),
    "interlacing": lambda img, rng: cctv.interlace(img, 3.0),
    "sensor noise": lambda img, rng: cctv.sensor_noise(img, rng, 0.6),
    "jpeg": lambda img, rng: cctv.jpeg(img, 20),
    "h264": lambda img, rng: cctv.h264(img, 38),
    "light and cast": cctv.light_and_cast,
    "occluders": lambda img, rng: cctv.occluders(img, rng)[0],
}


@pytest.mark.parametrize("name", list(CAMERA_OPS))
def test_each_degradation_keeps_labels_on_the_pixels(name):
    """Every blob centre stays where its label says (occluders: the blobs they do not cover)."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        img = blobs(POINTS, S, 3.0)
        out = CAMERA_OPS[name](img, rng)
        assert out.shape == img.shape and out.dtype == np.uint8
        if name == "occluders":
            mask = cctv.occluders(img, np.random.default_rng(seed))[1]
            assert np.array_equal(out[~mask], img[~mask])  # nothing outside the drawn objects moves
            continue
        for p in POINTS:
            assert np.linalg.norm(centroid(out, p, 7) - p) < 0.45, (name, seed, p)


def test_motion_kernel_is_centred():
    for length, angle in ((1.5, 0.0), (3.3, 0.7), (5.0, 2.0)):
        k = cctv.motion_kernel(length, angle)
        c = (k.shape[0] - 1) / 2
        yy, xx = np.mgrid[0 : k.shape[0], 0 : k.shape[1]]
        assert abs(k.sum() - 1) < 1e-6 and abs((k * xx).sum() - c) < 1e-6 and abs((k * yy).sum() - c) < 1e-6


def test_truncation_moves_labels_with_the_image():
    part = np.concatenate([POINTS * 224 / S, np.ones((3, 1))], 1).astype(np.float32)
    for seed in range(6):
        img = blobs(part[:, :2], 224, 8.0)
        out, moved = cctv.truncate(img, part, np.random.default_rng(seed))
        m = cctv.truncation_affine(224, np.random.default_rng(seed))
        np.testing.assert_allclose(moved[:, :2], part[:, :2] @ m[:, :2].T + m[:, 2], atol=1e-4)
        for (x, y), vis in zip(moved[:, :2], moved[:, 2], strict=True):
            inside = 12 < x < 211 and 12 < y < 211
            if inside:
                assert vis == 1 and np.linalg.norm(centroid(out, np.array([x, y]), 16) - [x, y]) < 0.6
            elif not (-0.5 <= x <= 223.5 and -0.5 <= y <= 223.5):
                assert vis == 0


def test_full_view_chain_keeps_labels_and_is_deterministic():
    """Scene and camera degradations at every probability 1, shrunk to 40 px and enlarged to 64: blobs stay on their labels."""
    cfg = cctv.CCTVConfig(light=1.0, occluder=0.0, truncation=1.0, blur=1.0, motion=1.0, interlace=1.0, noise=1.0, compression=1.0)
    part = np.concatenate([POINTS * 224 / S, np.ones((3, 1))], 1).astype(np.float32)
    img = blobs(part[:, :2], 224, 14.0)
    errors = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        hr, moved = cctv.scene(img, part, rng, cfg)
        small = cctv.view(hr, 40, S, rng, cfg)
        again = cctv.view(*cctv.scene(img, part, np.random.default_rng(seed), cfg)[:1], 40, S, _advance(seed, img, part, cfg), cfg)
        assert np.array_equal(small, again)
        for (x, y), vis in zip(moved[:, :2], moved[:, 2], strict=True):
            p = (np.array([x, y]) + 0.5) * S / 224 - 0.5
            if vis and 8 < p[0] < S - 8 and 8 < p[1] < S - 8:
                errors.append(np.linalg.norm(centroid(small, p, 6) - p))
    assert errors and max(errors) < 1.0 and np.mean(errors) < 0.5


def _advance(seed, img, part, cfg) -> np.random.Generator:
    rng = np.random.default_rng(seed)
    cctv.scene(img, part, rng, cfg)
    return rng


def test_action_poses_are_finite_and_distinct():
    rng = np.random.default_rng(0)
    poses = {kind: sample_action_pose(rng, kind) for kind in ACTIONS}
    assert all(p.shape == (24, 3) and np.isfinite(p).all() for p in poses.values())
    assert poses["sit"][1, 0] < -1.0 and poses["sit"][4, 0] > 1.0  # hips flexed, knees bent
    assert poses["bend"][3, 0] > 0.1  # spine forward


@pytest.fixture(scope="module")
def stream():
    return SynthStream(seed=7, crop_size=48, tex_size=16)


def test_generator_is_deterministic_per_seed_and_index(stream):
    a, b, c = stream[3], stream[3], stream[4]
    assert a.image.shape == (HR, HR, 3) and np.array_equal(a.image, b.image) and np.array_equal(a.pose, b.pose)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.pose, c.pose)
    other = SynthStream(seed=8, crop_size=48, tex_size=16)[3]
    assert not np.array_equal(a.pose, other.pose)
    assert isinstance(open_dataset("synth:7"), SynthStream)


def test_stream_batches_never_repeat_a_crop_and_degrade(stream):
    aug = AugmentConfig(cctv=cctv.CCTVConfig())
    sb = StepBatches(stream, 2, 0, 32, lambda t: [0, 3], aug)
    b0, b1, again = sb[0], sb[1], sb[0]
    assert b0["id"].tolist() == [0, 1] and b1["id"].tolist() == [2, 3]
    assert torch.equal(b0["images"], again["images"]) and b0["images"].shape == (2, 2, 3, 32, 32)


def test_bad_stream_spec_is_one_line():
    from lrpose.errors import InputError

    with pytest.raises(InputError, match="synth:SEED"):
        open_dataset("synth:abc")
