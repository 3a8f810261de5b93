"""``lrpose adapt``: pseudo-label filter, resolution views, held-out check and refusal, provenance,
resume, bad input. Tiny parts: a 32 px ResNet-18, a 160x120 video, the stand-in body."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpose.body import load_body
from lrpose.cli import main
from lrpose.config import BodyConfig
from lrpose.crops import SquareCrop
from lrpose.errors import InputError
from lrpose.models.checkpoint import checkpoint_meta, load_rscnet, weights_digest
from lrpose.training.adapt import Adaptation, AdaptConfig, AdaptRefused, fine_tune, heldout_score, worse
from lrpose.training.adapt_data import AdaptBatches, labels_from_params, pseudo_views, view_ranges
from lrpose.training.data import J24_FLIP_PERM
from lrpose.training.pseudo import Collector, LabelFilter, LabelSet, check_enough, rejection
from lrpose.types import Frame, FrameResult, PoseEstimate

W, H = 320, 240


@pytest.fixture(scope="module")
def body():
    return load_body()


def estimate(track: int = 0, frame: int = 0, box=(100.0, 40.0, 150.0, 200.0), n_kp: int = 17, residual: float = 2.0,
             refined: bool = True, observed: bool = True) -> PoseEstimate:  # fmt: skip
    """A person-frame as the pipeline gives it (160 px tall box; ``n_kp`` confident keypoints)."""
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0], kp[:, 1], kp[:n_kp, 2] = np.linspace(box[0], box[2], 17), np.linspace(box[1], box[3], 17), 0.9
    z = np.zeros
    return PoseEstimate(
        track_id=track, frame_index=frame, box_xyxy=np.array(box, np.float32), observed=observed, crop=SquareCrop(85, 24, 192),
        range_index=1, pose=z(72, np.float32), rotmats=np.tile(np.eye(3, dtype=np.float32), (24, 1, 1)), betas=z(10, np.float32),
        pred_cam=np.array([0.9, 0.0, 0.0], np.float32), orig_cam=z(4, np.float32), trans=z(3, np.float32),
        joints3d=z((24, 3), np.float32), joints2d=z((24, 2), np.float32), vertices=z((1, 3), np.float32), features=z(8, np.float32),
        keypoints2d=kp, refined=refined, kp_residual=np.array([9.0, residual], np.float32),
    )  # fmt: skip


def test_label_filter_keeps_and_drops_known_cases():
    flt = LabelFilter()  # 10 confident keypoints, residual <= 0.06 x height, >= 40 px, 2 px from the border
    assert rejection(estimate(), W, H, flt) is None
    assert rejection(estimate(refined=False), W, H, flt) == "not fitted"
    assert rejection(estimate(observed=False), W, H, flt) == "not fitted"
    assert rejection(estimate(n_kp=9), W, H, flt) == "few keypoints"
    assert rejection(estimate(n_kp=10), W, H, flt) is None
    assert rejection(estimate(residual=9.7), W, H, flt) == "high residual"  # 160 px tall: at most 9.6 px
    assert rejection(estimate(residual=9.5), W, H, flt) is None
    assert rejection(estimate(residual=float("nan")), W, H, flt) == "high residual"
    assert rejection(estimate(box=(100.0, 40.0, 120.0, 75.0), residual=1.0), W, H, flt) == "too small"
    assert rejection(estimate(box=(100.0, 40.0, 120.0, 75.0), refined=False), W, H, flt) == "too small"  # not "not fitted"
    assert rejection(estimate(box=(1.0, 40.0, 60.0, 200.0)), W, H, flt) == "truncated"
    assert rejection(estimate(box=(100.0, 40.0, 150.0, 238.0)), W, H, flt) == "truncated"


def feed(collector: Collector, frames: int, tracks: dict[int, range], **kw) -> None:
    image = np.zeros((H, W, 3), np.uint8)
    for f in range(frames):
        people = [estimate(track=t, frame=f, **kw) for t, alive in tracks.items() if f in alive]
        collector.feed(FrameResult(Frame(f, image, f / 10), people, True))


def test_collector_drops_short_tracks_thins_and_splits_in_time():
    c = Collector(split=30, size=32, width=W, height=H, flt=LabelFilter(min_track=8), label_stride=3, gap=5)
    feed(c, 40, {0: range(0, 40), 1: range(10, 15)})  # track 1: 5 frames, too short
    out = c.finish()
    # track 0: training frames 0..24 (25..29 are the gap), every 3rd -> 0, 3, ..., 24
    assert out.train.frame.tolist() == list(range(0, 25, 3))
    assert out.counts["short track"] == 5 and out.counts["labels"] == 9
    assert out.heldout.frame.tolist() == list(range(30, 40))  # the held-out part, never a label
    assert out.train.crops.shape == (9, 32, 32, 3) and out.train.native.tolist() == [192] * 9
    # keypoints are moved into the 32 px crop: image x = 100 -> (100 - 85 + 0.5) * 32 / 192 - 0.5
    assert out.train.keypoints[0, 0, 0] == pytest.approx((100 - 85 + 0.5) * 32 / 192 - 0.5, abs=1e-4)


def test_not_enough_footage_is_one_clear_error():
    good = {"person_frames": 100, "below_min_size": 0, "labels": 70, "heldout": 30, "train_frames": 80}
    check_enough(good, 64, 20)
    with pytest.raises(InputError, match="too few usable people: 10 .*few keypoints 60"):
        check_enough({**good, "labels": 10, "few keypoints": 60}, 64, 20)
    with pytest.raises(InputError, match="below 24 px"):
        check_enough({**good, "below_min_size": 100}, 64, 20)
    with pytest.raises(InputError, match="held-out part"):
        check_enough({**good, "heldout": 3}, 64, 20)
    with pytest.raises(InputError, match="no people"):
        check_enough({"person_frames": 0}, 64, 20)


def label_set(n: int, size: int, seed: int = 0, native: int = 100) -> LabelSet:
    rng = np.random.default_rng(seed)
    pose = (rng.normal(0, 0.2, (n, 72))).astype(np.float32)
    pose[:, :3] = [np.pi, 0, 0]  # upright, facing the camera
    return LabelSet(
        crops=rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8), native=np.full(n, native, np.int32), pose=pose,
        betas=np.zeros((n, 10), np.float32), cam=np.tile(np.array([0.9, 0.05, -0.02], np.float32), (n, 1)),
        keypoints=np.zeros((n, 17, 3), np.float32), height=np.full(n, native / 1.2, np.float32), frame=np.arange(n, dtype=np.int32),
        track=np.zeros(n, np.int32),
    )  # fmt: skip


def test_views_are_degraded_copies_with_the_same_labels(body):
    labels = label_set(2, 64, native=100)  # range 2, stored at the 64 px network input
    ranges = view_ranges(2)
    assert ranges == [2, 3, 4]
    views, pose, betas, cam = pseudo_views(labels, 0, ranges, np.random.default_rng(0), 64, flip=False)
    assert views.shape == (3, 3, 64, 64)
    assert np.array_equal(pose, labels.pose[0]) and np.array_equal(cam, labels.cam[0])
    # lower views lose detail: further from the native view the lower the range
    d = [float((views[k] - views[0]).abs().mean()) for k in range(3)]
    assert d[0] == 0.0 and 0.0 < d[1] <= d[2]
    # a flip mirrors the labels: pose, camera and the keypoints made from them
    _, fpose, _, fcam = pseudo_views(labels, 0, ranges, np.random.default_rng(0), 64, flip=True)
    assert fcam[1] == pytest.approx(-cam[1]) and fcam[2] == pytest.approx(cam[2])
    s3, part = labels_from_params(body, torch.tensor(np.stack([pose, fpose])), torch.zeros(2, 10), torch.tensor(np.stack([cam, fcam])))
    mirrored = part[1, J24_FLIP_PERM, :2] * torch.tensor([-1.0, 1.0])  # mirrored back; the stand-in's face points are
    assert torch.allclose(mirrored[:14], part[0, :14, :2], atol=5e-3)  # only nearly symmetric, its 14 LSP joints are
    assert torch.allclose(mirrored, part[0, :, :2], atol=0.02)
    assert torch.all(s3[..., 3] == 1) and torch.all(part[..., 2] == 1)


def test_batches_share_view_ranges_mix_synthetic_people_and_repeat(body):
    labels = LabelSet.concat([label_set(6, 32, native=100), label_set(4, 32, seed=1, native=50)], 32)
    batches = AdaptBatches(labels, body, BodyConfig(), 32, batch=4, synth_batch=1, seed=3)
    b = batches[5]
    assert b["images"].shape == (5, 3, 3, 32, 32) and b["synthetic"].tolist() == [False] * 4 + [True]
    natives = labels.native[b["id"][:4].numpy()]
    r0 = int(b["ranges"][0])
    assert b["ranges"].tolist() == view_ranges(r0) and set(natives.tolist()) == {100 if r0 == 2 else 50}
    again = batches[5]
    assert all(torch.equal(b[k], again[k]) for k in b)  # a function of (seed, step): resumable


def own_heldout(model, body, n: int = 12) -> LabelSet:
    """Held-out person-frames whose 'detector keypoints' are the model's own projection: it scores 0."""
    held = label_set(n, model.config.input_size, seed=5)
    model.eval()
    with torch.no_grad():
        from lrpose.crops import normalize
        from lrpose.geometry import weak_perspective_project

        out = model(torch.stack([normalize(c) for c in held.crops]), 2)
        posed = body(out.rotmats[:, 1:], out.rotmats[:, 0], out.betas)
        proj = weak_perspective_project(torch.einsum("jv,bvi->bji", body.coco_regressor(), posed.vertices), out.cam)
        uv = (proj + 1.0) * model.config.input_size / 2.0 - 0.5
    held.keypoints[..., :2], held.keypoints[..., 2] = uv.numpy(), 1.0
    return held


def centre_heldout() -> LabelSet:
    """Held-out person-frames whose keypoints all sit at the crop centre: a score above 0, so a tolerance applies."""
    held = label_set(12, 32, seed=5)
    held.keypoints[:] = [16.0, 16.0, 1.0]
    return held


def job(tiny, body, tmp_path, held=None) -> tuple[AdaptConfig, Adaptation]:
    model, info = load_rscnet(tiny)
    cfg = AdaptConfig(sources=("a.mp4",), out=str(tmp_path / "adapted.pt"), base_id=info.checkpoint_id, steps=2, batch_size=2,
                      synth_batch=0, lr=1e-3, ckpt_every=100, queue_size=16, tolerance=0.01)  # fmt: skip
    provenance = {"base_checkpoint": info.checkpoint_id, "videos": [{"name": "a.mp4", "sha256_10": "0123456789"}], "labels": 8}
    held = held if held is not None else own_heldout(model, body)
    return cfg, Adaptation(model, body, BodyConfig(), label_set(8, 32), held, tmp_path / "run", provenance)


def test_frame_stride_reads_at_most_max_frames():
    from lrpose.training.adapt import frame_stride_for

    cfg = AdaptConfig(sources=(), out="a.pt", base_id="x")  # at most 600 frames
    assert [frame_stride_for(n, cfg) for n in (90, 600, 601, 15000)] == [1, 1, 2, 25]  # 10 min at 25 fps: one window in 25
    assert frame_stride_for(15000, replace(cfg, frame_stride=3)) == 3


def test_heldout_score_and_worse():
    before = {"kp_error": 0.10, "facing": 0.90, "facing_n": 200}
    assert worse(before, {"kp_error": 0.1009, "facing": 0.895, "facing_n": 200}, 0.01) is None
    assert "keypoint error" in worse(before, {"kp_error": 0.102, "facing": 0.95, "facing_n": 200}, 0.01)
    assert "facing" in worse(before, {"kp_error": 0.05, "facing": 0.88, "facing_n": 200}, 0.01)  # 4 more frames of 200 turned
    small = {"kp_error": 0.10, "facing": 53 / 54, "facing_n": 54}  # one frame of 54 turning round is not "worse"
    assert worse(small, {**small, "facing": 52 / 54}, 0.01) is None
    assert "facing" in worse(small, {**small, "facing": 51 / 54}, 0.01)


def test_refuses_to_write_a_model_that_got_worse(tiny, body, tmp_path):
    cfg, adaptation = job(tiny, body, tmp_path)
    assert heldout_score(adaptation.model, body, adaptation.heldout)["kp_error"] < 1e-4  # its own keypoints
    with pytest.raises(AdaptRefused, match="worse on the held-out part .*keypoint error"):
        fine_tune(cfg, adaptation)
    assert not (tmp_path / "adapted.pt").exists()
    assert (tmp_path / "run" / "last.pt").is_file()  # the run is kept for inspection


def test_written_checkpoint_describes_itself_and_loads(tiny, body, tmp_path, capsys):
    cfg, adaptation = job(tiny, body, tmp_path, centre_heldout())
    cfg = replace(cfg, tolerance=1e9)  # accept whatever comes out: this test is about the file
    prov = fine_tune(cfg, adaptation)
    out = tmp_path / "adapted.pt"
    meta = checkpoint_meta(out)["adapt"]
    assert meta["base_checkpoint"] == adaptation.provenance["base_checkpoint"] and meta["steps"] == 2
    assert meta["videos"][0]["sha256_10"] == "0123456789" and meta["labels"] == 8
    assert meta["heldout"] == prov["heldout"] and meta["heldout"]["before"]["n"] == 12
    model, info = load_rscnet(out)
    assert info.trained and info.source == "lrpose"
    assert main(["doctor", "--weights", str(out)]) == 0
    text = capsys.readouterr().out
    assert "adapted by 'lrpose adapt'" in text and "0123456789" in text and "8 pseudo-labels, 2 steps" in text


def test_resume_continues_exactly(tiny, body, tmp_path):
    cfg, adaptation = job(tiny, body, tmp_path / "a", centre_heldout())
    cfg = replace(cfg, tolerance=1e9, out=str(tmp_path / "a.pt"))
    (tmp_path / "a").mkdir()
    fine_tune(cfg, adaptation)
    straight = weights_digest(load_rscnet(tmp_path / "a.pt")[0].state_dict())

    cfg2, adaptation2 = job(tiny, body, tmp_path / "b", held=adaptation.heldout)
    cfg2 = replace(cfg2, tolerance=1e9, out=str(tmp_path / "b.pt"))

    def stop(done: int, total: int, parts: dict) -> None:
        if done == 1:
            raise KeyboardInterrupt  # after step 1 of 2: RunFolder saves it

    with pytest.raises(KeyboardInterrupt):
        fine_tune(cfg2, adaptation2, stop)
    assert not (tmp_path / "b.pt").exists()
    _, adaptation3 = job(tiny, body, tmp_path / "b", held=adaptation.heldout)
    fine_tune(cfg2, adaptation3)
    assert int(torch.load(tmp_path / "b" / "run" / "last.pt", weights_only=True)["train_state"]["step"]) == 2
    assert weights_digest(load_rscnet(tmp_path / "b.pt")[0].state_dict()) == straight


@pytest.mark.parametrize("case", ["not_rscnet", "temporal_as_base", "out_is_folder", "out_folder_missing", "hog"])
def test_bad_input_is_one_line_and_writes_nothing(case, tiny, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not read before the checks")
    out = tmp_path / "adapted.pt"
    args = ["adapt", str(video), "--out", str(out), "--weights", str(tiny)]
    if case == "not_rscnet":
        bad = tmp_path / "temporal.pt"
        bad.write_bytes(b"\x00" * 64)
        args[args.index(str(tiny))] = str(bad)
    elif case == "temporal_as_base":
        args[args.index(str(tiny))] = str(Path(__file__).resolve().parent.parent / "weights" / "lrpose_temporal.pt")
    elif case == "out_is_folder":
        out.mkdir()
    elif case == "out_folder_missing":
        args[3] = str(tmp_path / "nowhere" / "adapted.pt")
    else:
        args += ["--detector", "hog"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "adapted.pt").is_file() and not (tmp_path / "adapted.pt.run").exists()


def test_footage_without_keypoints_is_too_few_usable_people(tiny, tmp_path, capsys):
    from tests.test_video import make_video

    boxes = make_video(tmp_path / "walk.mp4", 20, {0: range(20)})  # boxes, no keypoints: nothing can be fitted
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    code = main(["adapt", str(tmp_path / "walk.mp4"), "--out", str(tmp_path / "a.pt"), "--weights", str(tiny), "--boxes",
                 str(tmp_path / "boxes.json"), "--frame-stride", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "too few usable people: 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a.pt").exists()


def test_synth_scene_seed_is_one_camera(tmp_path):
    from lrpose.training.synth import SynthConfig, make_clip

    cfg = SynthConfig(kind="video", n=2, seed=6, width=160, height=120, fps=5, seconds=0.4, max_people=1, tex_size=16, scene_seed=4,
                      pitch_deg=(50.0, 60.0), light=0.5)  # fmt: skip
    a, b = make_clip(cfg, BodyConfig(), 0, tmp_path), make_clip(cfg, BodyConfig(), 1, tmp_path)
    assert np.array_equal(a["r_cw"], b["r_cw"]) and a["camera_height_m"] == b["camera_height_m"]
    pitch = np.degrees(np.arctan2(a["r_cw"][1, 2], -a["r_cw"][1, 1]))  # r_cw = rot_x(pitch) @ diag(1, -1, -1)
    assert 50.0 <= pitch <= 60.0
    c = make_clip(replace(cfg, scene_seed=None, pitch_deg=None), BodyConfig(), 0, tmp_path)
    assert not np.array_equal(a["r_cw"], c["r_cw"])


@pytest.mark.parametrize("train_backbone", [False, True])
def test_pretrained_backbone_stays_fixed_unless_asked(train_backbone, body, tmp_path):
    from lrpose.models.backbone_file import fresh_names
    from lrpose.models.checkpoint import save
    from lrpose.models.rscnet import RSCNet, RSCNetConfig
    from tests.test_models import mean_params

    torch.manual_seed(0)
    save(tmp_path / "yolo.pt", RSCNet(RSCNetConfig(backbone="yolopose", input_size=64), mean_params()), body.body_id, trained=True)
    model, info = load_rscnet(tmp_path / "yolo.pt")
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    cfg = AdaptConfig(sources=("a.mp4",), out=str(tmp_path / "adapted.pt"), base_id=info.checkpoint_id, steps=2, batch_size=2,
                      synth_batch=0, lr=1e-2, ckpt_every=100, queue_size=16, tolerance=1e9, train_backbone=train_backbone)  # fmt: skip
    provenance = {"base_checkpoint": info.checkpoint_id, "videos": [{"name": "a.mp4", "sha256_10": "0123456789"}], "labels": 8}
    held = label_set(12, 64, seed=5)
    fine_tune(cfg, Adaptation(model, body, BodyConfig(), label_set(8, 64), held, tmp_path / "run", provenance))
    after = load_rscnet(tmp_path / "adapted.pt")[0].backbone.state_dict()
    fresh = fresh_names(model.backbone)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed & {k for k in fresh if k.startswith("readout.")}  # the head side always learns
    pretrained_changed = {k for k in changed if k not in fresh}
    assert bool(pretrained_changed) == train_backbone, sorted(pretrained_changed)[:3]
