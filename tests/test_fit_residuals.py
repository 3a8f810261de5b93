"""The keypoint fit's problem: the one-chain Jacobian equals probing every parameter."""

from __future__ import annotations

import torch

from lrpose.body import load_body
from lrpose.fit_residuals import FitProblem
from lrpose.geometry import axis_angle_to_rotmat
from lrpose.keypoint_skin import KeypointSkinner


def test_one_chain_jacobian_equals_evaluating_every_probe():
    torch.manual_seed(0)
    body = load_body()
    n = 3
    dt = torch.float64
    skin = KeypointSkinner(body, (0.5 * torch.randn(n, 10)).to(dt))
    rot0 = axis_angle_to_rotmat(0.3 * torch.randn(n, 24, 3, dtype=dt))
    trans0 = torch.tensor([[0.2, -0.1, 6.0]], dtype=dt).repeat(n, 1)
    kp = torch.cat([200 + 40 * torch.rand(n, 17, 2, dtype=dt), torch.ones(n, 17, 1, dtype=dt)], -1)
    anchor = torch.cat([0.3 * torch.randn(n, 17, 3, dtype=dt), torch.full((n, 17, 1), 6.0, dtype=dt)], -1)
    problem = FitProblem(skin, rot0, trans0, kp, torch.full((n,), 100.0, dtype=dt), torch.full((n,), 0.3, dtype=dt), anchor,
                         torch.tensor([True, False, True]), 1500.0, torch.tensor([320.0, 240.0], dtype=dt), 0.1, 2.0, None)  # fmt: skip
    problem.weights = torch.rand(n, 17, dtype=dt)
    x = 0.2 * torch.randn(n, problem.nx, dtype=dt)
    eps = 1e-6
    r0, jac = problem.jacobian(x, eps)
    rows = torch.arange(n)
    assert torch.allclose(r0, problem.residuals(x, rows))
    probes = x[:, None] + eps * torch.eye(problem.nx, dtype=dt)[None]
    brute = (
        problem.residuals(probes.reshape(-1, problem.nx), rows.repeat_interleave(problem.nx)).reshape(n, problem.nx, -1) - r0[:, None]
    ) / eps
    assert jac.shape == (n, 75, r0.shape[1]) and float(brute.abs().max()) > 1.0  # a Jacobian with something in it
    assert torch.allclose(jac, brute, atol=1e-6, rtol=1e-6)
