"""``Pipeline`` as a unit: detector stride, bridged frames, the image path through the same estimation step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrpose.body import load_body
from lrpose.crops import square_from_box
from lrpose.errors import InputError
from lrpose.models.checkpoint import load_rscnet
from lrpose.pipeline import Pipeline, PipelineConfig
from lrpose.resolution import select_range
from lrpose.types import Detections, Frame

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
        PipelineConfig(det_stride=0)
    with pytest.raises(InputError, match="--max-gap"):
        PipelineConfig(det_stride=3, max_gap=2)
    assert PipelineConfig(det_stride=1, max_gap=0).max_gap == 0


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
