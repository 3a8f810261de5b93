"""Training: deterministic batches, consistent augmentation, exact resume, DDP on CPU, CLI."""

from __future__ import annotations

import csv
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as tmp

from lrpose.body import load_body
from lrpose.cli import main
from lrpose.config import BodyConfig
from lrpose.models.checkpoint import load_rscnet, load_train_state
from lrpose.training.data import HR, AugmentConfig, StepBatches, SyntheticCrops, augment, flip_pose, progressive_ranges
from lrpose.training.loop import TrainConfig, train_rscnet
from lrpose.training.synth import SynthConfig, generate
from tests import ddp_worker

CROP = 64


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    generate(SynthConfig(kind="crops", n=8, shard_size=8, crop_size=CROP, tex_size=16, seed=1), BodyConfig(), out)
    return out


def tiny_cfg(data, out, **kw) -> TrainConfig:
    base = dict(data=(str(data),), out=str(out), depth=18, input_size=32, batch_size=4, steps=6, lr=1e-3, queue_size=16, ckpt_every=100)
    base.update(kw)
    return TrainConfig(**base)


def test_step_batches_are_a_function_of_step(tiny_data):
    sb = StepBatches(SyntheticCrops(tiny_data), 4, 0, 32, lambda t: [0, 1, 2])
    a, b, c = sb[5], sb[5], sb[6]
    assert torch.equal(a["images"], b["images"]) and a["images"].shape == (4, 3, 3, 32, 32)
    assert not torch.equal(a["images"], c["images"])
    half = StepBatches(SyntheticCrops(tiny_data), 4, 0, 32, lambda t: [0], rank=1, world=2)[5]
    assert torch.equal(half["id"], a["id"][1::2])


def test_progressive_stages():
    assert [progressive_ranges(t, 10, 5, True) for t in (0, 1, 2, 5, 9)] == [[0], [0], [0, 1], [0, 1, 2], [0, 1, 2, 3, 4]]
    assert progressive_ranges(0, 10, 5, False) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("flip", "tol_m"), [(0.0, 1e-4), (1.0, 0.025)])
def test_augmentation_keeps_image_2d_and_3d_consistent(tiny_data, flip, tol_m):
    """Synthetic labels satisfy part = f' S/z + c; flips and rotations must preserve that, and the
    augmented pose must still produce the augmented 3D keypoints (up to translation). Flips are
    exact only for a perfectly symmetric body: the stand-in's left/right joint regressors and face
    keypoint vertices are fitted independently, which leaves up to ~2 cm after a flip."""
    data = SyntheticCrops(tiny_data)
    body = load_body()
    f = 5000.0 * HR / CROP
    c = (HR - 1) / 2
    for i in range(4):
        s = augment(data[i], np.random.default_rng(i), AugmentConfig(flip=flip, rotation_prob=1.0, rotation_deg=30.0))
        proj = f * s.S[:, :2] / s.S[:, 2:3] + c
        np.testing.assert_allclose(proj, s.part[:, :2], atol=0.05)
        with torch.no_grad():
            out = body.forward_axis_angle(torch.from_numpy(s.pose)[None], torch.from_numpy(s.betas)[None])
        j = body.spin_j24(out)[0].numpy()
        np.testing.assert_allclose(j - j[14], s.S[:, :3] - s.S[14, :3], atol=tol_m)


def test_flip_pose_is_an_involution():
    pose = np.random.default_rng(0).normal(size=72)
    np.testing.assert_allclose(flip_pose(flip_pose(pose)), pose)


def test_training_writes_checkpoint_log_and_plot(tiny_data, tmp_path):
    final = train_rscnet(tiny_cfg(tiny_data, tmp_path), load_body())
    assert final == tmp_path / "last.pt" and (tmp_path / "loss.png").exists()
    rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["ranges"] == "0" and rows[-1]["ranges"] == "01234"  # progressive
    model, info = load_rscnet(final)
    assert info.trained and info.source == "lrpose" and model.config.depth == 18 and model.config.input_size == 32
    assert load_train_state(final)["step"] == 6


def test_interrupted_run_resumes_exactly(tiny_data, tmp_path):
    straight = train_rscnet(tiny_cfg(tiny_data, tmp_path / "a"), load_body())

    def stop_at_3(step, total, parts):
        if step == 3:
            raise KeyboardInterrupt

    cfg = tiny_cfg(tiny_data, tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        train_rscnet(cfg, load_body(), progress=stop_at_3)
    assert load_train_state(tmp_path / "b" / "last.pt")["step"] == 3
    resumed = train_rscnet(cfg, load_body(), resume=tmp_path / "b" / "last.pt")
    assert _log_steps(tmp_path / "b") == [1, 2, 3, 4, 5, 6]
    a, b = load_rscnet(straight)[0].state_dict(), load_rscnet(resumed)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_other_settings_is_refused(tiny_data, tmp_path):
    final = train_rscnet(tiny_cfg(tiny_data, tmp_path, steps=2), load_body())
    from lrpose.errors import InputError

    with pytest.raises(InputError, match="different settings"):
        train_rscnet(tiny_cfg(tiny_data, tmp_path, steps=4, lr=1e-2), load_body(), resume=final)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_on_cpu(tiny_data, tmp_path):
    kw = dict(data=(str(tiny_data),), out=str(tmp_path), depth=18, input_size=32, batch_size=4, steps=20, lr=1e-3,
              queue_size=16, ckpt_every=100, progressive=False)  # fmt: skip
    tmp.spawn(ddp_worker.run, args=(2, _free_port(), kw), nprocs=2, join=True)
    rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    assert len(rows) == 20
    basic = [float(r["basic"]) for r in rows]
    assert np.mean(basic[-4:]) < np.mean(basic[:4])
    assert [p.name for p in tmp_path.glob("*.pt")] == ["last.pt"]
    assert load_train_state(tmp_path / "last.pt")["queue"]["filled"] == 16  # 20 steps x 4 gathered embeddings, capped


def test_cli_train_then_eval(tiny_data, tmp_path, capsys):
    args = ["train", "rscnet", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--depth", "18", "--input-size", "32",
            "--batch-size", "4", "--steps", "2", "--queue-size", "8"]  # fmt: skip
    assert main(args) == 0
    ckpt = tmp_path / "run" / "last.pt"
    assert (
        main(["eval", "--data", str(tiny_data), "--weights", str(ckpt), "--resolutions", "224,32", "--json", str(tmp_path / "e.json")]) == 0
    )
    out = capsys.readouterr().out
    assert "224 px" in out and "32 px" in out
    import json

    records = json.loads((tmp_path / "e.json").read_text())
    assert [r["resolution"] for r in records] == [224, 32] and all(r["samples"] == 8 and r["mpjpe"] > 0 for r in records)
    assert main(["eval", "--data", str(tmp_path / "nothing")]) == 1
    assert main(["train", "rscnet", "--data", str(tiny_data), "--out", str(tmp_path / "x"), "--ss", "bogus"]) == 1


def test_spin_format_dataset_recovers_the_crop(tmp_path):
    """A 224 px synthetic crop pasted into a larger image at a known offset, described in SPIN's
    layout (center, scale = side / 200, part in image pixels), comes back as the same crop and keypoints."""
    import cv2

    from lrpose.training.data import SpinDataset

    generate(SynthConfig(kind="crops", n=2, shard_size=2, crop_size=224, tex_size=16, seed=4), BodyConfig(), tmp_path / "syn")
    z = np.load(tmp_path / "syn" / "crops_00000.npz")
    (tmp_path / "img").mkdir()
    names, centers, parts = [], [], []
    for i, (ox, oy) in enumerate([(50, 30), (10, 60)]):
        canvas = np.full((320, 400, 3), 90, np.uint8)
        canvas[oy : oy + 224, ox : ox + 224] = z["images"][i]
        cv2.imwrite(str(tmp_path / "img" / f"f{i}.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        names.append(f"f{i}.png")
        centers.append([ox + 112.0, oy + 112.0])
        p = z["part"][i].copy()
        p[:, :2] += [ox, oy]
        parts.append(p)
    np.savez(tmp_path / "ann.npz", imgname=np.array(names), center=np.array(centers), scale=np.full(2, 224 / 200), part=np.stack(parts),
             S=z["S"], pose=z["pose"], shape=z["betas"], has_smpl=np.ones(2))  # fmt: skip
    data = SpinDataset(tmp_path / "ann.npz", tmp_path / "img")
    for i in range(2):
        s = data[i]
        assert np.array_equal(s.image, z["images"][i])
        np.testing.assert_allclose(s.part, z["part"][i], atol=1e-4)
        assert s.has_smpl == 1.0 and s.has_3d == 1.0
    from lrpose.errors import InputError

    np.savez(tmp_path / "bad.npz", imgname=np.array(names))
    with pytest.raises(InputError, match="lacks SPIN keys"):
        SpinDataset(tmp_path / "bad.npz", tmp_path / "img")


def _log_steps(folder) -> list[int]:
    return [int(r["step"]) for r in csv.DictReader((folder / "train_log.csv").open())]


def test_run_folder_log_saves_and_interrupts(tmp_path):
    """The plumbing alone: header once, periodic saves (not at the last step), save on Ctrl-C then
    re-raise, a resumed log drops the steps after the checkpoint, other DDP ranks write nothing."""
    from lrpose.training.plumbing import RunFolder

    saved: list[int] = []

    def folder(start: int = 0, main: bool = True) -> RunFolder:
        return RunFolder(tmp_path / "run", ["step", "loss"], 6, 2, lambda path, step: saved.append(step), start, main=main)

    with pytest.raises(KeyboardInterrupt), folder() as run:
        for step in range(5):
            run.step_done(step + 1, {"step": step + 1, "loss": 1.0 / (step + 1)}, {})
        raise KeyboardInterrupt
    assert saved == [2, 4, 5] and _log_steps(tmp_path / "run") == [1, 2, 3, 4, 5]
    assert (tmp_path / "run" / "train_log.csv").read_text().splitlines()[:3] == ["step,loss", "1,1", "2,0.5"]
    with folder(start=4) as run:  # as if the process had died after the save at step 4
        assert _log_steps(tmp_path / "run") == [1, 2, 3, 4]
        for step in range(4, 6):
            run.step_done(step + 1, {"step": step + 1, "loss": 0.1}, {})
    assert run.finish() == tmp_path / "run" / "last.pt" and saved == [2, 4, 5, 6]
    assert _log_steps(tmp_path / "run") == [1, 2, 3, 4, 5, 6] and (tmp_path / "run" / "loss.png").exists()
    with pytest.raises(KeyboardInterrupt), folder(start=6, main=False) as run:
        run.step_done(7, {"step": 7, "loss": 0.1}, {})
        raise KeyboardInterrupt
    assert saved == [2, 4, 5, 6] and _log_steps(tmp_path / "run") == [1, 2, 3, 4, 5, 6]
    folder()  # a fresh run starts its log anew
    assert _log_steps(tmp_path / "run") == []


def test_resume_check_names_the_changed_settings(tmp_path):
    from lrpose.errors import InputError
    from lrpose.models.checkpoint import save
    from lrpose.models.texture import TexGlo, TexGloConfig
    from lrpose.training.plumbing import config_json, resume_state
    from lrpose.training.texture import TextureTrainConfig

    cfg = TextureTrainConfig(data="d", out="o", steps=4)
    net = TexGlo(TexGloConfig(input_size=32, tex_size=16, width=4))
    save(tmp_path / "r.pt", net, "standin-anny:test", train_state={"step": 2, "config": config_json(cfg)})
    assert resume_state(tmp_path / "r.pt", cfg)["step"] == 2
    with pytest.raises(InputError, match=r"different settings \(lr 0.0002 -> 0.001; steps 4 -> 8\)"):
        resume_state(tmp_path / "r.pt", TextureTrainConfig(data="d", out="o", steps=8, lr=1e-3))


def test_mobilenet_run_starts_from_the_pretrained_backbone_and_says_so(tiny_data, tmp_path):
    from lrpose import assets
    from lrpose.models.backbone_file import load_backbone
    from lrpose.training.loop import _setup

    cfg = tiny_cfg(tiny_data, tmp_path, backbone="mobilenetv2", steps=2)
    run = _setup(cfg, load_body(), None)
    shipped, origin = load_backbone(assets.resolve("backbone_mobilenetv2"), "mobilenetv2")
    now = run.model.backbone.state_dict()
    assert all(torch.equal(now[k], v) for k, v in shipped.items()) and run.backbone_origin["licence"] == origin["licence"]
    final = train_rscnet(cfg, load_body())
    model, _ = load_rscnet(final)
    raw = torch.load(final, weights_only=True)
    assert model.config.backbone == "mobilenetv2" and raw["meta"]["backbone_init"]["backbone_file"] == "backbone_mobilenetv2_imagenet.pt"
    scratch = _setup(tiny_cfg(tiny_data, tmp_path / "s", backbone="mobilenetv2", backbone_init="none"), load_body(), None)
    assert scratch.backbone_origin is None and not torch.equal(scratch.model.backbone.features[0][0].weight, shipped["features.0.0.weight"])
    from lrpose.errors import InputError

    with pytest.raises(InputError, match="no pretrained ResNet"):
        tiny_cfg(tiny_data, tmp_path, backbone_init="x.pt")
