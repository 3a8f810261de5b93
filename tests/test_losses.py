"""RSC-Net losses on hand-computed tiny inputs."""

from __future__ import annotations

import math

import torch

from lrpose.training.losses import (
    FeatureQueue,
    contrastive_term,
    feature_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    pair_weights,
    self_supervision_loss,
    smpl_param_loss,
)


def test_pair_weights_follow_eq_10():
    assert pair_weights(3) == [(0, 1, 1.0), (0, 2, 2.0), (1, 2, 1.0)]
    assert pair_weights(4, "highest") == [(0, 1, 1.0), (0, 2, 2.0), (0, 3, 3.0)]
    assert all(w == 1.0 for _, _, w in pair_weights(4, "undirected")) and pair_weights(3, "none") == []


def test_directional_self_supervision_value_and_gradients():
    a = torch.tensor([[1.0, 2.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.0]], requires_grad=True)
    c = torch.tensor([[3.0, 0.0]], requires_grad=True)
    loss = self_supervision_loss([a, b, c])
    # w01 * mse(b, a) + w02 * mse(c, a) + w12 * mse(c, b) = 1 * 2.5 + 2 * 4.0 + 1 * 4.5
    assert math.isclose(float(loss.detach()), 15.0)
    loss.backward()
    assert a.grad is None  # the highest resolution is only ever a (detached) target
    torch.testing.assert_close(b.grad, (b - a).detach())  # only from pair (0, 1): d/db mean((b-a)^2) = (b-a)
    torch.testing.assert_close(c.grad, (2 * (c - a) + (c - b)).detach())


def test_undirected_lets_gradients_into_both():
    a = torch.tensor([[1.0]], requires_grad=True)
    b = torch.tensor([[0.0]], requires_grad=True)
    self_supervision_loss([a, b], "undirected").backward()
    assert float(a.grad) == 2.0 and float(b.grad) == -2.0


def test_queue_is_fifo_and_round_trips():
    q = FeatureQueue(4, 2)
    q.enqueue(torch.tensor([[1.0, 0], [0, 1], [1, 1]]), torch.tensor([10, 11, 12]))
    q.enqueue(torch.tensor([[2.0, 0], [0, 3], [5, 0]]), torch.tensor([13, 14, 15]))
    emb, ids = q.contents()
    assert ids.tolist() == [12, 13, 14, 15]  # oldest first, the first two dropped
    torch.testing.assert_close(emb[1], torch.tensor([1.0, 0.0]))  # stored normalised
    q2 = FeatureQueue(1, 1)
    q2.load_state_dict(q.state_dict())
    assert q2.contents()[1].tolist() == [12, 13, 14, 15]


def test_contrastive_term_by_hand_and_same_image_excluded():
    q = FeatureQueue(8, 2)
    q.enqueue(torch.tensor([[0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]]), torch.tensor([1, 2, 7]))
    anchor = torch.tensor([[1.0, 0.0]], requires_grad=True)
    positive = torch.tensor([[1.0, 1.0]], requires_grad=True)
    tau = 0.5
    loss = contrastive_term(anchor, positive, torch.tensor([7]), q, tau)
    s_pos = 1 / math.sqrt(2)
    expected = -math.log(math.exp(s_pos / tau) / (math.exp(s_pos / tau) + math.exp(0.0) + math.exp(-1 / tau)))  # id 7 excluded
    assert math.isclose(float(loss.detach()), expected, rel_tol=1e-5)
    loss.backward()
    assert positive.grad is None and anchor.grad.abs().sum() > 0


def test_feature_loss_weights_and_variants():
    q = FeatureQueue(8, 2)
    q.enqueue(torch.tensor([[0.0, 1.0]]), torch.tensor([5]))
    emb = [torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.2]]), torch.tensor([[0.5, 1.0]])]
    feats = [torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 0.0]])]
    ids = torch.tensor([0])
    manual = sum(w * contrastive_term(emb[j], emb[i], ids, q, 0.1) for i, j, w in pair_weights(3))
    torch.testing.assert_close(feature_loss(emb, feats, ids, q, "contrastive", 0.1), manual)
    # mse on features: 1 * 0.5 + 2 * 2.5 + 1 * 1.0
    assert math.isclose(float(feature_loss(emb, feats, ids, q, "mse")), 6.5)
    assert float(feature_loss(emb, feats, ids, q, "none")) == 0.0
    assert float(feature_loss(emb, feats, ids, FeatureQueue(4, 2), "contrastive")) == 0.0  # empty queue


def test_keypoint_and_param_losses():
    j = torch.zeros(1, 24, 3)
    j[0, :, 0] = torch.linspace(-0.5, 0.5, 24)
    cam = torch.tensor([[2.0, 0.1, 0.0]])
    gt2d = torch.zeros(1, 24, 3)
    gt2d[0, :, 0] = 2.0 * (j[0, :, 0] + 0.1)
    gt2d[0, :, 2] = 1.0
    assert float(keypoint_2d_loss(j, cam, gt2d)) < 1e-12
    gt2d[0, 0, 0] += 1.0
    assert math.isclose(float(keypoint_2d_loss(j, cam, gt2d)), 1.0 / 48, rel_tol=1e-5)
    gt3d = torch.cat([j + torch.tensor([5.0, 0, 0]), torch.ones(1, 24, 1)], -1)  # same up to translation
    assert float(keypoint_3d_loss(j, gt3d, torch.ones(1))) < 1e-10
    assert float(keypoint_3d_loss(j, gt3d * 2, torch.zeros(1))) == 0.0
    rot = torch.eye(3).expand(2, 24, 3, 3)
    lp, lb = smpl_param_loss(rot, torch.zeros(2, 10), rot * 0, torch.ones(2, 10), torch.tensor([0.0, 1.0]))
    assert math.isclose(float(lp), 3 / 9, rel_tol=1e-6) and math.isclose(float(lb), 1.0)
