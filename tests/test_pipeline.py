"""``Pipeline`` as a unit: detector stride, bridged frames, the image path through the same estimation step."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lrpose.body import load_body
from lrpose.crops import square_from_box
from lrpose.errors import InputError
from lrpose.models.checkpoint import load_rscnet
from lrpose.pipeline import Pipeline, PipelineConfig, auto_stride
from lrpose.resolution import select_range
from lrpose.types import Detections, Frame, TrackedBox

W, H = 160, 120


class CountingDetector:
    """One person walking right by 3 px per frame; records every frame it is asked about."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, image: np.ndarray, index: int) -> Detections:
        self.calls.append(index)
        x = 30.0 + 3 * index
        return Detections(np.array([[x, 20.0, x + 24.0, 100.0]], np.float32), np.array([0.9], np.float32))


def frames(n: int):
    for i in range(n):
        img = np.full((H, W, 3), 40, np.uint8)
        x = 30 + 3 * i
        img[20:100, x : x + 24] = 200
        yield Frame(i, img, i / 10)


@pytest.fixture(scope="module")
def parts(tiny):
    model, _ = load_rscnet(tiny)
    return model, load_body()


@pytest.mark.parametrize("stride", [1, 3])
def test_detector_runs_every_stride_frames_and_the_tracker_bridges_the_rest(parts, stride):
    model, body = parts
    det = CountingDetector()
    pipe = Pipeline(model, body, det, None, PipelineConfig(det_stride=stride, max_gap=max(stride, 1), batch_frames=4))
    results = list(pipe.run(frames(10), fps=10.0))
    assert det.calls == list(range(0, 10, stride))
    assert [r.detected for r in results] == [i % stride == 0 for i in range(10)]
    assert [r.frame.index for r in results] == list(range(10))  # in order, none lost across batches
    people = [p for r in results for p in r.people]
    assert len(people) == 10 and {p.track_id for p in people} == {0}
    assert all(p.observed for p in people)  # frames the detector skipped are not misses
    assert all(np.isfinite(p.pose).all() and p.vertices.shape == (body.num_vertices, 3) for p in people)
    assert set(pipe.timer.seconds) >= {"decode", "detect", "track", "crop", "network", "body"}


def test_config_checks_itself():
    with pytest.raises(InputError, match="--det-stride"):
        PipelineConfig(det_stride=-1)
    with pytest.raises(InputError, match="--max-gap"):
        PipelineConfig(det_stride=3, max_gap=2)
    assert PipelineConfig(det_stride=1, max_gap=0).max_gap == 0


def test_automatic_stride_detects_about_7_5_times_a_second_and_never_ends_a_track(parts):
    assert [auto_stride(fps, 10) for fps in (5.0, 10.0, 15.0, 25.0, 30.0, 60.0, 240.0)] == [1, 1, 2, 3, 4, 8, 10]
    assert auto_stride(60.0, 0) == 1  # no gap may be bridged: every frame
    model, body = parts
    det = CountingDetector()
    list(Pipeline(model, body, det, None, PipelineConfig(max_gap=10, batch_frames=4)).run(frames(10), fps=30.0))
    assert det.calls == [0, 4, 8]


def test_image_estimate_is_the_pipeline_record_for_track_0_frame_0(parts):
    model, body = parts
    image = next(frames(1)).image
    pipe = Pipeline(model, body)
    box = np.array([30.0, 20.0, 54.0, 100.0])
    p = pipe.estimate_image(image, box)
    assert (p.track_id, p.frame_index, p.observed) == (0, 0, True)
    assert p.crop == square_from_box(box) and p.native_size == 96 and p.range_index == select_range(96) == 2
    whole = pipe.estimate_image(image)
    assert whole.crop.side == W and (whole.crop.x0, whole.crop.y0) == (0, (H - W) // 2)  # the whole image, unpadded
    # the same crop through the video loop's estimation step gives the same numbers
    det = CountingDetector()
    video = Pipeline(model, body, det, None, PipelineConfig(batch_frames=1))
    first = next(video.run(frames(1), fps=10.0)).people[0]
    np.testing.assert_allclose(first.pose, p.pose, atol=1e-6)
    np.testing.assert_allclose(first.trans, p.trans, atol=1e-6)
    torch.testing.assert_close(torch.from_numpy(first.rotmats), torch.from_numpy(p.rotmats))


class FrontalKeypoints:
    """One person facing the camera, standing still, ~150 px tall, with COCO keypoints; in ``swapped``
    frames the detector mixes up left and right (the keypoints then say the person faces away)."""

    def __init__(self, body, swapped: set[int]) -> None:  # noqa: ANN001
        import math

        from lrpose.body import COCO17_FLIP
        from lrpose.geometry import axis_angle_to_rotmat, focal_for
        from lrpose.keypoint_skin import KeypointSkinner, project

        pose = torch.zeros(1, 24, 3)
        pose[:, 0, 0] = math.pi
        pts = KeypointSkinner(body, torch.zeros(1, 10))(axis_angle_to_rotmat(pose), torch.tensor([[0.0, 0.0, 80.0]]))
        uv = project(pts, focal_for(320, 240), torch.tensor([159.5, 119.5]))[0].numpy()
        self.kp = np.concatenate([uv, np.full((17, 1), 0.9)], 1).astype(np.float32)
        self.flipped = self.kp[list(COCO17_FLIP)].copy()  # each label on its mirror's point
        self.box = np.array([uv[:, 0].min() - 15, uv[:, 1].min() - 20, uv[:, 0].max() + 15, uv[:, 1].max() + 10], np.float32)
        self.swapped = swapped

    def __call__(self, image: np.ndarray, index: int) -> Detections:
        kp = self.flipped if index in self.swapped else self.kp
        return Detections(self.box[None], np.array([0.9], np.float32), kp[None])


@pytest.mark.parametrize(
    ("swapped", "expected"),
    [({4}, [True] * 9), (set(range(3, 9)), [True] * 3 + [None] + [False] * 5)],
    ids=["one-glitch", "turned-round"],
)
def test_the_track_faces_the_way_its_keypoints_say(parts, swapped, expected):
    """A single frame whose detector mixed up left and right does not turn the body; a person who
    turns round (from frame 3 the keypoints say "away") is turned round from the next frame on."""
    from pathlib import Path

    from lrpose.facing import body_faces_camera
    from lrpose.refine import Refiner

    _, body = parts
    model, _ = load_rscnet(Path(__file__).resolve().parent.parent / "weights" / "lrpose_rscnet.pt")  # a body near the people to start from
    pipe = Pipeline(model, body, FrontalKeypoints(body, swapped), None, PipelineConfig(batch_frames=4), refiner=Refiner(body))
    frames_ = (Frame(i, np.full((240, 320, 3), 90, np.uint8), i / 10) for i in range(9))
    people = [r.people[0] for r in pipe.run(frames_, fps=10.0)]
    faces = [bool(body_faces_camera(torch.from_numpy(p.rotmats[0]))) for p in people]
    assert [f for f, e in zip(faces, expected, strict=True) if e is not None] == [e for e in expected if e is not None]
    assert all(p.refined for p, e in zip(people, expected, strict=True) if e is not None and p.frame_index != 4)


class AwayModel(torch.nn.Module):
    """Stands in for RSC-Net: every person an upright standing body facing away from the camera."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        super().__init__()
        self.config = SimpleNamespace(input_size=32)

    def forward(self, pixels: torch.Tensor, ranges: torch.Tensor):  # noqa: ANN201
        from types import SimpleNamespace

        n = len(pixels)
        rot = torch.eye(3).repeat(n, 24, 1, 1)
        rot[:, 0] = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))  # y up, forward = +z = away from the camera
        return SimpleNamespace(
            rotmats=rot, betas=torch.zeros(n, 10), cam=torch.tensor([[0.8, 0.0, 0.0]]).repeat(n, 1), features=torch.zeros(n, 8)
        )


def test_a_person_too_small_to_fit_is_turned_the_way_the_track_faced_when_larger(parts):
    """A person walking away shrinks from ~150 px to 50 px (the box shrinks step by step, so the track
    goes on). Frames tall enough (>= 60 px here) are fitted; in the two smaller ones the detector mixes
    up left and right (as it does on tiny people): those labels are ignored, and the network's
    away-facing body of every frame not fitted is turned to face the camera as the track did while
    it was larger."""
    from lrpose.facing import body_faces_camera
    from lrpose.refine import RefineConfig, Refiner

    _, body = parts
    big = FrontalKeypoints(body, swapped=set())
    centre = np.array([(big.box[0] + big.box[2]) / 2, (big.box[1] + big.box[3]) / 2])
    scales = [1.0, 1.0, 1.0, 0.8, 0.6, 0.45, 0.35, 0.3]

    def detect(image: np.ndarray, index: int) -> Detections:
        s = scales[index]
        kp = (big.kp if s > 0.4 else big.flipped).copy()
        kp[:, :2] = centre + (kp[:, :2] - centre) * s
        box = np.concatenate([centre + (big.box[:2] - centre) * s, centre + (big.box[2:] - centre) * s]).astype(np.float32)
        return Detections(box[None], np.array([0.9], np.float32), kp[None])

    refiner = Refiner(body, RefineConfig(min_height=60.0))
    pipe = Pipeline(AwayModel(), body, detect, None, PipelineConfig(batch_frames=4), refiner=refiner)
    people = [r.people[0] for r in pipe.run((Frame(i, np.full((240, 320, 3), 90, np.uint8), i / 10) for i in range(8)), fps=10.0)]
    assert {p.track_id for p in people} == {0}
    heights = [float(p.box_xyxy[3] - p.box_xyxy[1]) for p in people]
    assert [h >= 60 for h in heights] == [True] * 6 + [False] * 2
    refined = [p.refined for p in people]
    assert refined[:5] == [True] * 5 and refined[6:] == [False] * 2  # (frame 5's fit may not beat the start: not used)
    assert [bool(body_faces_camera(torch.from_numpy(p.rotmats[0]))) for p in people] == [True] * 8


def test_frames_between_detections_keep_the_tracks_facing(parts):
    """With --det-stride 8 and batches of 4 frames, frames 4-7 have no keypoints at all: the network's
    away-facing body is still turned the way the track's keypoints said (before, it flipped back)."""
    from lrpose.facing import body_faces_camera
    from lrpose.refine import Refiner

    _, body = parts
    det = FrontalKeypoints(body, swapped=set())
    pipe = Pipeline(AwayModel(), body, det, None, PipelineConfig(det_stride=8, max_gap=8, batch_frames=4), refiner=Refiner(body))
    people = [r.people[0] for r in pipe.run((Frame(i, np.full((240, 320, 3), 90, np.uint8), i / 10) for i in range(12)), fps=10.0)]
    assert [p.refined for p in people] == [True] + [False] * 7 + [True] + [False] * 3
    assert all(bool(body_faces_camera(torch.from_numpy(p.rotmats[0]))) for p in people)


def test_temporal_runs_of_a_batch_in_one_call_equal_frame_by_frame(parts):
    """Tracks entering, leaving and coming back within a batch: ``TemporalModule.sequences`` through
    ``Pipeline._smooth`` gives each frame the same result as feeding the GRU one frame at a time."""
    from lrpose.models.temporal import TemporalConfig, TemporalModule

    model, body = parts
    torch.manual_seed(0)
    temporal = TemporalModule.from_rscnet(model, TemporalConfig(feat_dim=model.feature_dim, hidden=64, n_iter=model.config.n_iter)).eval()
    for p in temporal.gru.parameters():  # a GRU that matters (from_rscnet's starts as the identity)
        p.data.normal_(0, 0.05)
    torch.nn.init.normal_(temporal.linear.weight, 0, 0.05)
    presence = [[0, 1], [0, 1, 2], [0, 2], [1, 2], [1]]  # track ids per frame: 1 leaves and comes back, 2 enters
    pending = [(None, [TrackedBox(i, f, np.zeros(4, np.float32), 1.0) for i in ids], True) for f, ids in enumerate(presence)]
    n = sum(len(ids) for ids in presence)
    feats = torch.randn(n, model.feature_dim)
    out = SimpleNamespace(features=feats, rotmats=torch.zeros(n, 24, 3, 3), betas=torch.zeros(n, 10), cam=torch.zeros(n, 3))
    pipe = Pipeline(model, body, None, temporal)
    start = {0: 0.1 * torch.randn(temporal.config.layers, 1, temporal.config.hidden)}  # track 0 goes on from an earlier batch
    states = dict(start)
    with torch.no_grad():
        rot, betas, cam = pipe._smooth(pending, states, out)
        ref, row, state = [], 0, dict(start)
        for ids in presence:
            state = {i: s for i, s in state.items() if i in ids}
            for i in ids:
                h0 = state.get(i, torch.zeros(temporal.config.layers, 1, temporal.config.hidden))
                t = temporal(feats[row : row + 1, None], h0)
                ref.append((t.rotmats[0, 0], t.betas[0, 0], t.cam[0, 0]))
                state[i] = t.state
                row += 1
    assert torch.allclose(rot, torch.stack([r[0] for r in ref]), atol=1e-5)
    assert torch.allclose(betas, torch.stack([r[1] for r in ref]), atol=1e-5)
    assert torch.allclose(cam, torch.stack([r[2] for r in ref]), atol=1e-5)
    assert set(states) == {1} and torch.allclose(states[1], state[1], atol=1e-5)  # only the track in the last frame carries on


def _every_stage(device: torch.device | None = None, default_device: str | None = None) -> dict[str, np.ndarray]:
    """Every per-person number of a run through each stage that has a device: two tracks with keypoints on every
    2nd frame (fits, anchors, carries to the frames between), the GRU, the body; ``default_device``: torch's
    default device during the run."""
    from pathlib import Path

    from lrpose.models.temporal import TemporalConfig, TemporalModule
    from lrpose.refine import Refiner

    torch.manual_seed(0)
    body = load_body()
    model, _ = load_rscnet(Path(__file__).resolve().parent.parent / "weights" / "lrpose_rscnet.pt")
    temporal = TemporalModule.from_rscnet(model, TemporalConfig(feat_dim=model.feature_dim, hidden=64, n_iter=model.config.n_iter))
    for p in temporal.gru.parameters():
        p.data.normal_(0, 0.05)
    one = FrontalKeypoints(body, {3, 4})

    def two(image: np.ndarray, index: int) -> Detections:
        d, shift = one(image, index), np.array([90.0 + index, 10.0], np.float32)
        kp = d.keypoints[0].copy()
        kp[:, :2] += shift
        return Detections(np.stack([d.boxes_xyxy[0], d.boxes_xyxy[0] + np.tile(shift, 2)]), np.array([0.9, 0.8], np.float32),
                          np.stack([d.keypoints[0], kp]))  # fmt: skip

    cfg = PipelineConfig(det_stride=2, max_gap=4, batch_frames=4, detect_ahead=False)
    pipe = Pipeline(model, body, two, temporal.eval(), cfg, refiner=Refiner(body), device=device)
    rng = np.random.default_rng(0)
    frames_ = [Frame(i, rng.integers(0, 255, (240, 400, 3), dtype=np.uint8), i / 10) for i in range(9)]
    with torch.device(default_device or "cpu"):
        people = [p for r in pipe.run(iter(frames_), fps=10.0) for p in r.people]
    names = ("pose", "rotmats", "betas", "pred_cam", "orig_cam", "trans", "joints3d", "joints2d", "vertices", "features", "kp_residual")
    out = {f"{p.frame_index}/{p.track_id}/{k}": np.asarray(getattr(p, k)) for p in people for k in (*names, "refined")}
    assert len(people) == 18 and 4 <= sum(p.refined for p in people) < 18  # fitted frames and carried ones
    return out


def test_an_explicit_cpu_device_gives_the_default_numbers_and_names_every_tensors_device():
    """``device=cpu`` is the default path, number for number. Run again with torch's default device set to
    ``meta``: a tensor made without naming its device would land there and fail against the CPU ones, so
    every stage (crops, RSC-Net, GRU, keypoint fit, carry, body) puts its tensors on the pipeline's
    device or, for the per-row bookkeeping, on the host by name: what a CUDA device needs, checked on the CPU."""
    default = _every_stage()
    for run in (_every_stage(torch.device("cpu")), _every_stage(torch.device("cpu"), default_device="meta")):
        assert run.keys() == default.keys()
        assert [k for k in default if not np.array_equal(default[k], run[k], equal_nan=True)] == []


def test_networks_and_body_move_to_the_pipeline_device_and_the_callers_body_stays(parts):
    """Every parameter and buffer of RSC-Net, the GRU, the body and the refiner's body is on the pipeline's device
    after construction (``meta`` stands in for a CUDA device); the body given stays on the host for the writers."""
    import copy

    from lrpose.models.temporal import TemporalConfig, TemporalModule
    from lrpose.refine import Refiner

    model, body = parts
    model = copy.deepcopy(model)
    temporal = TemporalModule.from_rscnet(model, TemporalConfig(feat_dim=model.feature_dim, hidden=64, n_iter=model.config.n_iter))
    refiner = Refiner(body)
    here = Pipeline(model, body, None, temporal, refiner=refiner, device=torch.device("cpu"))
    assert here.device_body is body and here.refiner is refiner and here.timer.device is None  # nothing copied on the CPU
    pipe = Pipeline(model, body, None, temporal, refiner=refiner, device=torch.device("meta"))
    moved = {"model": pipe.model, "temporal": pipe.temporal, "body": pipe.device_body, "refiner body": pipe.refiner.body}
    for name, module in moved.items():
        tensors = [*module.parameters(), *module.buffers()]
        assert tensors and {t.device.type for t in tensors} == {"meta"}, name
    assert pipe.refiner.body is pipe.device_body and pipe.refiner.config is refiner.config
    assert pipe.device_body.uv.device.type == "meta" and pipe.device_body.layer.shapedirs.device.type == "meta"
    assert pipe.body is body and {t.device.type for t in body.buffers()} == {"cpu"} and refiner.body is body
