"""``lrpose train temporal`` / ``eval --task temporal`` on two tiny synthetic clips and a tiny RSC-Net."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpose.body import load_body
from lrpose.cli import main
from lrpose.config import BodyConfig
from lrpose.errors import InputError
from lrpose.models.checkpoint import load_rscnet, load_temporal, load_train_state
from lrpose.training.sequences import Sequences, extract
from lrpose.training.synth import SynthConfig, generate
from lrpose.training.temporal import MotionDiscriminator, evaluate_temporal, load_motions


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clips")
    generate(
        SynthConfig(kind="video", n=2, width=160, height=120, fps=10, seconds=1.6, max_people=2, tex_size=16, seed=7), BodyConfig(), out
    )
    return out


def test_extracted_sequences_match_the_clips(clips, tiny):
    model, info = load_rscnet(tiny)
    seqs = extract(clips, model, info.checkpoint_id, min_len=8)
    assert len(seqs.length) >= 1 and seqs.length.min() >= 8
    f = int(seqs.length.sum())
    assert seqs.features.shape == (f, 512) and seqs.pose.shape == (f, 72) and seqs.part.shape == (f, 24, 3)
    for s, n in zip(seqs.start, seqs.length, strict=True):  # one resolution per sequence
        assert len(set(seqs.range_index[s : s + n].tolist())) == 1
    visible = seqs.part[..., 2] > 0
    assert np.abs(seqs.part[..., :2][visible]).max() < 1.6  # 2D keypoints land in (or near) the crop
    assert len(seqs.windows(8)) == int((seqs.length - 7).sum())


def test_train_eval_resume_and_adversarial_option(clips, tiny, tmp_path, capsys):
    base = ["train", "temporal", "--data", str(clips), "--weights", str(tiny), "--batch-size", "2", "--seq-len", "8", "--hidden", "32"]
    assert main([*base, "--out", str(tmp_path / "run"), "--steps", "4", "--ckpt-every", "2", "--heldout", str(clips)]) == 0
    assert (tmp_path / "run" / "features_train.npz").exists() and (tmp_path / "run" / "loss.png").exists()
    module, info = load_temporal(tmp_path / "run" / "last.pt")
    assert info.trained and info.parent_id.startswith("tiny.pt:")
    rows = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert set(rows) == {"per-frame", "temporal"} and rows["temporal"]["sequences"] >= 1
    assert (
        main([*base, "--out", str(tmp_path / "run"), "--steps", "6", "--ckpt-every", "2", "--resume", str(tmp_path / "run" / "last.pt")])
        == 1
    )
    assert "different settings" in capsys.readouterr().err  # --steps is part of the run's settings
    # the adversarial loss needs real motion; with it the discriminator trains
    assert main([*base, "--out", str(tmp_path / "adv"), "--steps", "2", "--adv-weight", "0.1"]) == 1
    assert "--motion-data" in capsys.readouterr().err
    np.savez(tmp_path / "motion.npz", pose=np.random.default_rng(0).normal(0, 0.2, (3, 12, 72)).astype(np.float32))
    args = [*base, "--out", str(tmp_path / "adv"), "--steps", "2", "--adv-weight", "0.1", "--motion-data", str(tmp_path / "motion.npz")]
    assert main(args) == 0
    log = list(csv.DictReader((tmp_path / "adv" / "train_log.csv").open()))
    assert len(log) == 2 and float(log[0]["disc"]) > 0 and float(log[0]["adv"]) > 0
    # eval --task temporal on the features file
    out_json = tmp_path / "t.json"
    eval_args = ["eval", "--task", "temporal", "--data", str(tmp_path / "run" / "features_train.npz"), "--weights", str(tiny)]
    assert main([*eval_args, "--temporal-weights", str(tmp_path / "run" / "last.pt"), "--json", str(out_json)]) == 0
    assert set(json.loads(out_json.read_text())) == {"per-frame (RSC-Net)", "temporal (GRU)"}


def test_training_lowers_the_loss_and_identity_equals_per_frame(clips, tiny, tmp_path):
    from lrpose.training.temporal import TemporalTrainConfig, train_temporal

    body = load_body()
    model, info = load_rscnet(tiny)
    seqs = extract(clips, model, info.checkpoint_id, min_len=8)
    cfg = TemporalTrainConfig(out=str(tmp_path), steps=40, batch_size=4, seq_len=8, lr=1e-3, hidden=32, ckpt_every=100)
    final = train_temporal(cfg, body, seqs, tiny, info.checkpoint_id)
    log = [float(r["loss"]) for r in csv.DictReader((tmp_path / "train_log.csv").open())]
    assert np.mean(log[-5:]) < 0.7 * np.mean(log[:5])
    from lrpose.models.temporal import TemporalModule

    identity = TemporalModule.from_rscnet(model)
    a, b = evaluate_temporal(None, model, body, seqs), evaluate_temporal(identity, model, body, seqs)
    assert abs(a["mpjpe"] - b["mpjpe"]) < 1e-3 and abs(a["accel"] - b["accel"]) < 1e-3
    trained, _ = load_temporal(final)
    assert evaluate_temporal(trained, model, body, seqs)["mpjpe"] < a["mpjpe"]


def test_motion_files_and_discriminator(tmp_path):
    amass = np.zeros((120, 156), np.float32)
    amass[:, 3] = np.linspace(0, 1, 120)
    np.savez(tmp_path / "a.npz", poses=amass, mocap_framerate=np.float32(60))
    seqs = load_motions((str(tmp_path),), fps=15)
    assert len(seqs) == 1 and seqs[0].shape == (30, 23, 3) and np.isclose(seqs[0][-1, 0, 0], amass[116, 3])
    d = MotionDiscriminator(hidden=16)
    x = torch.randn(3, 8, 138, requires_grad=True)
    d(x).sum().backward()
    assert d(x).shape == (3,) and x.grad is not None and x.grad.abs().sum() > 0


def test_sequences_round_trip(clips, tiny, tmp_path):
    model, info = load_rscnet(tiny)
    seqs = extract(clips, model, info.checkpoint_id, min_len=8)
    seqs.save(tmp_path / "f.npz")
    back = Sequences.load(tmp_path / "f.npz")
    assert back.rscnet_id == info.checkpoint_id and np.array_equal(back.features, seqs.features)


def _straight_and_cut(clips, tiny, tmp_path, steps: int, stop: int, **extra):
    """A straight temporal run to ``steps`` (its final module) and the same run interrupted after step ``stop``."""
    from lrpose.training.temporal import TemporalTrainConfig, train_temporal

    body = load_body()
    model, info = load_rscnet(tiny)
    seqs = extract(clips, model, info.checkpoint_id, min_len=8)
    cfg = TemporalTrainConfig(out=str(tmp_path / "a"), steps=steps, batch_size=2, seq_len=8, hidden=16, **extra)
    full, _ = load_temporal(train_temporal(cfg, body, seqs, tiny, info.checkpoint_id))

    def interrupt(step, total, parts):
        if step == stop:
            raise KeyboardInterrupt

    cut = TemporalTrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b")})
    with pytest.raises(KeyboardInterrupt):
        train_temporal(cut, body, seqs, tiny, info.checkpoint_id, progress=interrupt)
    return body, seqs, info, full, cut


def test_interrupted_run_resumes_exactly(clips, tiny, tmp_path):
    from lrpose.training.temporal import TemporalTrainConfig, train_temporal

    body, seqs, info, full, cut = _straight_and_cut(clips, tiny, tmp_path, steps=6, stop=3, ckpt_every=100)
    ckpt = tmp_path / "b" / "last.pt"
    raw = torch.load(ckpt, weights_only=True)
    assert raw["train_state"]["step"] == 3 and "optimizer" not in raw["meta"] and raw["rscnet_id"] == info.checkpoint_id
    with pytest.raises(InputError, match="steps 6 -> 8"):
        train_temporal(TemporalTrainConfig(**{**cut.__dict__, "steps": 8}), body, seqs, tiny, info.checkpoint_id, resume=ckpt)
    resumed, rinfo = load_temporal(train_temporal(cut, body, seqs, tiny, info.checkpoint_id, resume=ckpt))
    assert rinfo.parent_id == info.checkpoint_id and rinfo.body_id == body.body_id and load_train_state(ckpt)["step"] == 6
    assert [int(r["step"]) for r in csv.DictReader((tmp_path / "b" / "train_log.csv").open())] == [1, 2, 3, 4, 5, 6]
    for (k, v), w in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_run_of_lrpose_0_1_resumes_from_its_meta(clips, tiny, tmp_path):
    """Temporal runs of lrpose 0.1 kept their resumable state under "meta"; they still resume exactly."""
    from lrpose.files import atomic_torch_save
    from lrpose.training.temporal import train_temporal

    body, seqs, info, full, cut = _straight_and_cut(clips, tiny, tmp_path, steps=2, stop=1)
    obj = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    obj["meta"] = obj.pop("train_state")
    atomic_torch_save(tmp_path / "old.pt", obj)
    resumed, _ = load_temporal(train_temporal(cut, body, seqs, tiny, info.checkpoint_id, resume=tmp_path / "old.pt"))
    assert all(torch.equal(v, w) for v, w in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True))
