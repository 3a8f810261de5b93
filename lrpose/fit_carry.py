"""Keypoint fits carried to the frames between detector runs (``--det-stride``).

A frame without detector keypoints cannot be fitted; left as the network's estimate, a track would
alternate between fitted and unfitted bodies (measured: acceleration error 12 -> 164 mm/frame^2 on the
example clip with every 2nd frame detected). Instead each fit's change to the network's estimate is
applied to the network's estimates of the track's frames without keypoints: per joint
``R_fit = R_net @ D`` (``D`` the change in the joint's own frame) and, for the crop camera
``[s, tx, ty]``, the scale ratio and the shift; a frame with keypoints that was not fitted (a person
too small) ends the carry. Between two fits of the same batch facing the same way the joint
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


def _same_facing(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two (24, 3, 3) poses' roots differ by less than a quarter turn."""
    return bool(rotmat_to_axis_angle(a[0].transpose(-1, -2) @ b[0]).norm() < torch.pi / 2)


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
        and which rows were changed (B,) bool. A row with keypoints that was not fitted ends its track's
        carry until the next fit. Tracks absent from the batch are forgotten."""
        rot, cam = rot.clone(), cam.clone()
        events: dict[int, list[tuple[int, Change | None]]] = {}  # per track, its rows with keypoints: the fit's change or None
        for k, track in enumerate(track_ids):
            if bool(fitted[k]):
                aa = rotmat_to_axis_angle(net_rot[k].transpose(-1, -2) @ rot[k])
                shift = torch.stack([(cam[k, 0] / net_cam[k, 0].clamp_min(1e-6)).clamp_min(1e-6).log(), *(cam[k, 1:] - net_cam[k, 1:])])
                events.setdefault(track, []).append((frames[k], (frames[k], aa, shift, rot[k])))
            elif not bool(no_keypoints[k]):  # keypoints, but not fitted (too small, too few): nothing to carry past it
                events.setdefault(track, []).append((frames[k], None))
        carried = torch.zeros(len(track_ids), dtype=torch.bool, device=rot.device)
        for k, track in enumerate(track_ids):
            if not bool(no_keypoints[k]) or bool(fitted[k]):
                continue
            before = [e for f, e in events.get(track, []) if f < frames[k]]
            after = [e for f, e in events.get(track, []) if f > frames[k]]
            prev = before[-1] if before else self.corrections.get(track)
            if prev is None:
                continue
            nxt = after[0] if after else None
            between = nxt is not None and _same_facing(prev[3], nxt[3])  # never turn a body round through side-on
            shift = prev[2]
            if between:  # between two fits: the fits' rotations and camera changes interpolated
                t = (frames[k] - prev[0]) / max(nxt[0] - prev[0], 1)
                rot[k] = prev[3] @ axis_angle_to_rotmat(t * rotmat_to_axis_angle(prev[3].transpose(-1, -2) @ nxt[3]))
                shift = (1 - t) * shift + t * nxt[2]
            else:
                rot[k] = net_rot[k] @ axis_angle_to_rotmat(prev[1])
            cam[k] = torch.stack([net_cam[k, 0] * shift[0].exp(), net_cam[k, 1] + shift[1], net_cam[k, 2] + shift[2]])
            carried[k] = True
        live = set(track_ids)
        self.corrections = {i: c for i, c in self.corrections.items() if i in live}
        for i, e in events.items():
            if e[-1][1] is None:
                self.corrections.pop(i, None)
            else:
                self.corrections[i] = e[-1][1]
        return rot, cam, carried
