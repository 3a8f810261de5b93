"""Resolution ranges at every threshold edge; crops, padding and the crop->image affine."""

from __future__ import annotations

import numpy as np
import pytest

from lrpose.crops import IMAGENET_MEAN, IMAGENET_STD, apply_affine, crop_person, cut_square, invert_affine, square_from_box
from lrpose.resolution import EVAL_SIZES, below_minimum, sample_size, select_range


@pytest.mark.parametrize(
    ("size", "expected"),
    [(1000, 0), (224, 0), (223.9, 1), (128, 1), (127, 2), (64, 2), (63.5, 3), (40, 3), (39, 4), (24, 4), (10, 4)],
)
def test_select_range_edges(size, expected):
    assert select_range(size) == expected


def test_eval_sizes_are_range_midpoints_and_flags():
    assert [select_range(s) for s in EVAL_SIZES] == [0, 1, 2, 3, 4]
    assert below_minimum(23) and not below_minimum(24)


def test_sample_size_stays_in_range():
    rng = np.random.default_rng(0)
    for p in range(5):
        sizes = [sample_size(p, rng) for _ in range(200)]
        assert all(select_range(s) == p for s in sizes)


def test_square_from_box_pads_by_1_2():
    sq = square_from_box(np.array([10.0, 20.0, 50.0, 120.0]))
    assert sq.side == 120
    assert (sq.x0 + sq.side / 2, sq.y0 + sq.side / 2) == (30.0, 70.0)
    with pytest.raises(ValueError):
        square_from_box(np.array([5.0, 5.0, 5.0, 9.0]))


def test_crop_leaving_the_image_is_padded_not_shifted():
    img = np.full((100, 80, 3), 200, np.uint8)
    sq = square_from_box(np.array([-20.0, -10.0, 20.0, 30.0]), scale=1.0)
    patch = cut_square(img, sq)
    assert patch.shape == (40, 40, 3)
    assert (patch[:10] == 0).all() and (patch[:, :20] == 0).all()  # outside the image
    assert (patch[10:, 20:] == 200).all()


def test_crop_to_image_affine_round_trip_and_marker():
    img = np.zeros((300, 400, 3), np.uint8)
    img[151, 203] = 255  # a marker pixel
    box = np.array([170.0, 100.0, 230.0, 200.0])
    pixels, sq = crop_person(img, box, out_size=50)
    aff = sq.crop_to_image(50)
    pts = np.array([[0.0, 0.0], [49.0, 49.0], [12.3, 40.1]])
    np.testing.assert_allclose(apply_affine(invert_affine(aff), apply_affine(aff, pts)), pts, atol=1e-9)
    # the brightest crop pixel maps back onto the marker (within one source pixel)
    raw = pixels.numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    v, u = np.unravel_index(raw.sum(-1).argmax(), raw.shape[:2])
    x, y = apply_affine(aff, np.array([u, v], float))
    assert abs(x - 203) <= 1.5 and abs(y - 151) <= 1.5


def test_upscaled_crop_maps_pixel_centres():
    img = np.zeros((10, 10, 3), np.uint8)
    sq = square_from_box(np.array([0.0, 0.0, 10.0, 10.0]), scale=1.0)
    aff = sq.crop_to_image(100)
    # crop pixel centres 0 and 99 sit 0.45 px inside the source edges (-0.5, 9.5)
    np.testing.assert_allclose(apply_affine(aff, np.array([[0.0, 0.0], [99.0, 99.0]])), [[-0.45, -0.45], [9.45, 9.45]])
    pixels, _ = crop_person(img, np.array([0.0, 0.0, 10.0, 10.0]), 100, scale=1.0)
    assert pixels.shape == (3, 100, 100)


def test_square_corner_convention_rounds_and_box_scale_sets_the_side():
    from lrpose.crops import square_from_box

    sq = square_from_box(np.array([10.0, 20.0, 40.0, 80.0]), 1.0)  # 30 x 60 box, centre (25, 50)
    assert (sq.x0, sq.y0, sq.side) == (-5, 20, 60)
    sq = square_from_box(np.array([10.0, 20.0, 40.0, 80.0]), 1.2)
    assert (sq.x0, sq.y0, sq.side) == (-11, 14, 72)
    sq = square_from_box(np.array([32.6, 32.6, 128.6, 128.6]), 1.0)  # SPIN would truncate 32.6 to 32
    assert (sq.x0, sq.y0, sq.side) == (33, 33, 96)


def test_pipeline_box_scale_is_checked():
    from lrpose.errors import InputError
    from lrpose.pipeline import PipelineConfig

    assert PipelineConfig().box_scale == 1.2 and PipelineConfig(box_scale=1.0).box_scale == 1.0
    with pytest.raises(InputError, match="--box-scale must be between 0.5 and 4.0"):
        PipelineConfig(box_scale=0.2)
