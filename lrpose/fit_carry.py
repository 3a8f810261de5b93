"""Keypoint fits carried to the frames between detector runs (``--det-stride``).

A frame without detector keypoints cannot be fitted; left as the network's estimate, a track would
alternate between fitted and unfitted bodies (measured: acceleration error 12 -> 164 mm/frame^2 on the
example clip with every 2nd frame detected). Instead each fit's change to the network's estimate is
applied to the network's estimates of the track's frames without keypoints: per joint
``R_fit = R_net @ D`` (``D`` the change in the joint's own frame) and, for the crop camera
``[s, tx, ty]``, the scale ratio and the shift. Between two fits of the same batch the joint
rotations are interpolated between the two fits themselves (each joint along the shortest turn from
one to the other, linear in the frame index; the network's own frame-to-frame noise does not enter)
and the camera change between theirs (log scale and shift); after a batch's last fit its change is
held until the next.
"""

from __future__ import annotations

import torch

from lrpose.geometry import axis_angle_to_rotmat, rotmat_to_axis_angle

Change = tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]
"""(frame index, (24, 3) axis-angle of the joint changes ``D``, (3,) camera change ``[log s ratio, dtx, dty]``,
(24, 3, 3) the fitted joint rotations)."""


class FitCarry:
    """Per-track changes of the last keypoint fit; ``run`` handles one batch of rows in frame order."""

    def __init__(self) -> None:
        self.corrections: dict[int, Change] = {}
        """track id -> its latest fit's change."""

    def run(
        self,
        track_ids: list[int],
        frames: list[int],
        fitted: torch.Tensor,
        no_keypoints: torch.Tensor,
        net_rot: torch.Tensor,
        rot: torch.Tensor,
        net_cam: torch.Tensor,
        cam: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows (``track_ids``, ``frames``: frame indices, in frame order): a ``fitted`` (B,) row's change
        from the network (``net_rot`` (B, 24, 3, 3), ``net_cam`` (B, 3)) to its fit (``rot``, ``cam``) is
        recorded; a row with ``no_keypoints`` (B,) gets its track's change (interpolated between the fits
        around it, else the latest) applied to the network's estimate. Returns the rotations, cameras
        and which rows were changed (B,) bool. Tracks absent from the batch are forgotten."""
        rot, cam = rot.clone(), cam.clone()
        changes: dict[int, list[Change]] = {}
        for k in torch.nonzero(fitted).squeeze(1).tolist():
            aa = rotmat_to_axis_angle(net_rot[k].transpose(-1, -2) @ rot[k])
            shift = torch.stack([(cam[k, 0] / net_cam[k, 0].clamp_min(1e-6)).clamp_min(1e-6).log(), *(cam[k, 1:] - net_cam[k, 1:])])
            changes.setdefault(track_ids[k], []).append((frames[k], aa, shift, rot[k]))
        carried = torch.zeros(len(track_ids), dtype=torch.bool)
        for k, track in enumerate(track_ids):
            if not bool(no_keypoints[k]) or bool(fitted[k]):
                continue
            before = [c for c in changes.get(track, []) if c[0] < frames[k]]
            after = [c for c in changes.get(track, []) if c[0] > frames[k]]
            prev = before[-1] if before else self.corrections.get(track)
            if prev is None:
                continue
            shift = prev[2]
            if after:  # between two fits: the fits' rotations and camera changes interpolated
                nxt = after[0]
                t = (frames[k] - prev[0]) / max(nxt[0] - prev[0], 1)
                rot[k] = prev[3] @ axis_angle_to_rotmat(t * rotmat_to_axis_angle(prev[3].transpose(-1, -2) @ nxt[3]))
                shift = (1 - t) * shift + t * nxt[2]
            else:
                rot[k] = net_rot[k] @ axis_angle_to_rotmat(prev[1])
            cam[k] = torch.stack([net_cam[k, 0] * shift[0].exp(), net_cam[k, 1] + shift[1], net_cam[k, 2] + shift[2]])
            carried[k] = True
        live = set(track_ids)
        self.corrections = {i: c for i, c in self.corrections.items() if i in live}
        self.corrections.update({i: c[-1] for i, c in changes.items()})
        return rot, cam, carried
