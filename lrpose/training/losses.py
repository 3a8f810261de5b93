"""RSC-Net training losses (paper section 3.2-3.4), each a small pure function.

Resolution index i = 0 is the highest resolution; lists of per-range outputs are ordered from
high to low resolution. Pair weights follow Eq. 10: ``w_ij = (j - i)`` for i < j, else 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lrpose.geometry import weak_perspective_project

SPIN_HIPS = (2, 3)  # right/left hip in SPIN's 24 keypoints


def pair_weights(n: int, variant: str = "directional") -> list[tuple[int, int, float]]:
    """(i, j, w) pairs of the self-supervision / feature losses for ``n`` resolutions.

    'directional' (Eq. 10): every i < j, w = j - i, target i detached;
    'highest': only i = 0, w = j; 'undirected' (Eq. 9): every i < j, w = 1, no detach; 'none': [].
    """
    if variant == "none":
        return []
    if variant == "highest":
        return [(0, j, float(j)) for j in range(1, n)]
    if variant == "directional":
        return [(i, j, float(j - i)) for i in range(n) for j in range(i + 1, n)]
    if variant == "undirected":
        return [(i, j, 1.0) for i in range(n) for j in range(i + 1, n)]
    raise ValueError(f"unknown variant {variant}")


def keypoint_2d_loss(pred_j24: torch.Tensor, cam: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MSE of weak-perspective projected (B, 24, 3) keypoints vs gt (B, 24, 3) ``[u, v, conf]`` in [-1, 1]."""
    proj = weak_perspective_project(pred_j24, cam)
    conf = gt[..., 2:]
    return (conf * (proj - gt[..., :2]) ** 2).mean()


def keypoint_3d_loss(pred_j24: torch.Tensor, gt: torch.Tensor, has_3d: torch.Tensor) -> torch.Tensor:
    """Pelvis-aligned MSE of (B, 24, 3) keypoints vs gt (B, 24, 4) ``[x, y, z, conf]`` for samples with 3D."""
    keep = has_3d > 0
    if not bool(keep.any()):
        return pred_j24.sum() * 0.0
    p, g = pred_j24[keep], gt[keep]
    p = p - p[:, list(SPIN_HIPS)].mean(1, keepdim=True)
    g3 = g[..., :3] - g[:, list(SPIN_HIPS), :3].mean(1, keepdim=True)
    return (g[..., 3:] * (p - g3) ** 2).mean()


def smpl_param_loss(rotmats: torch.Tensor, betas: torch.Tensor, gt_rotmats: torch.Tensor, gt_betas: torch.Tensor, has_smpl: torch.Tensor):
    """(pose MSE on rotation matrices, betas MSE) over samples with SMPL ground truth."""
    keep = has_smpl > 0
    if not bool(keep.any()):
        zero = rotmats.sum() * 0.0
        return zero, zero
    return F.mse_loss(rotmats[keep], gt_rotmats[keep]), F.mse_loss(betas[keep], gt_betas[keep])


def basic_loss_parts(
    body, rotmats: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor, gt_rotmats: torch.Tensor, gt_betas: torch.Tensor,
    S: torch.Tensor, part: torch.Tensor, has_smpl: torch.Tensor, has_3d: torch.Tensor,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The basic loss's terms for one set of predictions: (B, 24, 3, 3) ``rotmats``, (B, 10) ``betas``,
    (B, 3) ``cam`` against ground-truth rotations/betas, 3D keypoints ``S`` (B, 24, 4) and 2D keypoints
    ``part`` (B, 24, 3, crop coordinates); ``body`` is the ``BodyModel`` that poses the prediction."""
    j24 = body.posed_j24(rotmats[:, 1:], rotmats[:, 0], betas)
    l_pose, l_betas = smpl_param_loss(rotmats, betas, gt_rotmats, gt_betas, has_smpl)
    return {"kp2d": keypoint_2d_loss(j24, cam, part), "kp3d": keypoint_3d_loss(j24, S, has_3d), "pose": l_pose, "betas": l_betas}


def self_supervision_loss(outputs: list[torch.Tensor], variant: str = "directional") -> torch.Tensor:
    """Eq. 10 (and variants) over per-range outputs (each (B, D): rotmats, betas, camera flattened).

    For a pair (i, j) the lower-resolution output j is pulled towards the detached higher one i.
    """
    total = outputs[0].new_zeros(())
    for i, j, w in pair_weights(len(outputs), variant):
        target = outputs[i] if variant == "undirected" else outputs[i].detach()
        total = total + w * F.mse_loss(outputs[j], target)
    return total


class FeatureQueue:
    """FIFO queue of (embedding, image id) pairs: the negatives of the contrastive loss (MoCo style)."""

    def __init__(self, size: int, dim: int) -> None:
        self.size = size
        self.embeddings = torch.zeros(size, dim)
        self.ids = torch.full((size,), -1, dtype=torch.long)
        self.ptr = 0
        self.filled = 0

    def enqueue(self, embeddings: torch.Tensor, ids: torch.Tensor) -> None:
        """Append a batch (oldest entries are overwritten once the queue is full)."""
        emb = F.normalize(embeddings.detach().float(), dim=-1)[-self.size :]
        ids = ids[-self.size :]
        idx = (self.ptr + torch.arange(emb.shape[0])) % self.size
        self.embeddings[idx] = emb.cpu()
        self.ids[idx] = ids.cpu().long()
        self.ptr = int((self.ptr + emb.shape[0]) % self.size)
        self.filled = min(self.size, self.filled + emb.shape[0])

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, D) embeddings and (K,) ids currently in the queue, oldest first."""
        if self.filled < self.size:
            return self.embeddings[: self.filled], self.ids[: self.filled]
        order = (self.ptr + torch.arange(self.size)) % self.size
        return self.embeddings[order], self.ids[order]

    def state_dict(self) -> dict:
        return {"embeddings": self.embeddings.clone(), "ids": self.ids.clone(), "ptr": self.ptr, "filled": self.filled}

    def load_state_dict(self, state: dict) -> None:
        self.embeddings, self.ids = state["embeddings"].clone(), state["ids"].clone()
        self.ptr, self.filled = int(state["ptr"]), int(state["filled"])
        self.size = self.embeddings.shape[0]


def contrastive_term(anchor: torch.Tensor, positive: torch.Tensor, ids: torch.Tensor, queue: FeatureQueue, tau: float) -> torch.Tensor:
    """Eq. 12 averaged over the batch: (B, D) anchors (lower resolution, with gradient) vs their
    detached positives, against the queue's entries (entries of the same image are excluded)."""
    negs, neg_ids = queue.contents()
    a = F.normalize(anchor, dim=-1)
    pos = (a * F.normalize(positive.detach(), dim=-1)).sum(-1, keepdim=True) / tau  # (B, 1)
    if negs.shape[0] == 0:
        return anchor.sum() * 0.0
    neg = a @ negs.to(a).T / tau  # (B, K)
    neg = neg.masked_fill(neg_ids.to(ids.device)[None, :] == ids[:, None], float("-inf"))
    logits = torch.cat([pos, neg], 1)
    return F.cross_entropy(logits, torch.zeros(a.shape[0], dtype=torch.long, device=a.device))


def feature_loss(
    embeddings: list[torch.Tensor],
    features: list[torch.Tensor],
    ids: torch.Tensor,
    queue: FeatureQueue,
    variant: str = "contrastive",
    tau: float = 0.1,
) -> torch.Tensor:
    """Eq. 11 over per-range outputs with g = contrastive (Eq. 12, on projection embeddings),
    'mse' (on features phi), 'cosine' (cosine distance of embeddings) or 'none'."""
    total = embeddings[0].new_zeros(())
    if variant == "none":
        return total
    for i, j, w in pair_weights(len(embeddings), "directional"):
        if variant == "contrastive":
            g = contrastive_term(embeddings[j], embeddings[i], ids, queue, tau)
        elif variant == "mse":
            g = F.mse_loss(features[j], features[i].detach())
        elif variant == "cosine":
            g = (1 - F.cosine_similarity(embeddings[j], embeddings[i].detach(), dim=-1)).mean()
        else:
            raise ValueError(f"unknown feature-loss variant {variant}")
        total = total + w * g
    return total
