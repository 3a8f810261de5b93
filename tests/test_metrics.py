"""Metrics: known geometry for MPJPE, PA-MPJPE, acceleration, and the accumulators."""

from __future__ import annotations

import math

import torch

from lrpose.geometry import axis_angle_to_rotmat
from lrpose.metrics import MeanMetric, accel, accel_error, hip_align, mpjpe, pa_mpjpe


def test_pa_mpjpe_of_similar_copy_is_zero_but_mpjpe_is_not():
    gt = torch.randn(3, 14, 3, dtype=torch.float64)
    r = axis_angle_to_rotmat(torch.tensor([[0.3, -0.8, 0.2]], dtype=torch.float64))
    pred = 1.3 * gt @ r.transpose(1, 2) + torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)
    assert pa_mpjpe(pred, gt).max() < 1e-6
    assert mpjpe(pred, gt).min() > 100.0


def test_mpjpe_units_and_hip_alignment():
    gt = torch.zeros(1, 14, 3)
    pred = gt + torch.tensor([0.003, 0.004, 0.0])  # 5 mm everywhere
    assert math.isclose(float(mpjpe(pred, gt)), 5.0, rel_tol=1e-5)
    assert float(mpjpe(hip_align(pred), hip_align(gt))) < 1e-6


def test_acceleration():
    t = torch.arange(10, dtype=torch.float64)[:, None, None]
    const_velocity = torch.cat([0.01 * t, 0.02 * t, 0 * t], -1).expand(10, 5, 3)
    assert accel(const_velocity).abs().max() < 1e-9
    assert accel_error(const_velocity, const_velocity + 0.5).abs().max() < 1e-9
    const_acc = 0.001 * t**2 * torch.tensor([1.0, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(accel(const_acc.expand(10, 5, 3)), torch.full((8,), 2.0, dtype=torch.float64))


def test_accumulator_matches_function():
    a, b = torch.randn(5, 14, 3), torch.randn(5, 14, 3)
    m = MeanMetric(mpjpe)
    m.update(a[:2], b[:2])
    m.update(a[2:], b[2:])
    assert math.isclose(m.compute(), float(mpjpe(a, b).mean()), rel_tol=1e-5)
    assert math.isnan(MeanMetric(mpjpe).compute())
