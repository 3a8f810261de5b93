"""``lrpose adapt``'s temporal stage and the pairing of temporal modules with RSC-Net weights: pseudo-label
chunks per track, resumable GRU fine-tuning, the GRU stored in the adapted file (round trip), ``lrpose
video`` picking it up, and the pairing rule. Tiny parts: 32 px ResNet-18, a 16-unit GRU, stand-in body."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from lrpose.body import load_body
from lrpose.cli import main
from lrpose.errors import InputError
from lrpose.models.checkpoint import checkpoint_meta, load_rscnet, save, weights_digest
from lrpose.models.temporal import TemporalConfig, TemporalModule
from lrpose.models.temporal_choice import ENTRY, embedded_temporal, find_temporal, temporal_entry
from lrpose.training.adapt import write_adapted
from lrpose.training.adapt_temporal import TemporalAdaptConfig, chunks_of, fine_tune_temporal, label_sequences, track_runs
from tests.test_adapt import label_set
from tests.test_video import clip  # noqa: F401  (the 20-frame clip fixture)

PROV = {"steps": 2, "base_checkpoint": "base.pt:0123456789", "videos": [], "labels": 8, "heldout": {}}


@pytest.fixture(scope="module")
def body():
    return load_body()


def small_gru(model) -> TemporalModule:
    torch.manual_seed(1)
    return TemporalModule.from_rscnet(model, TemporalConfig(model.feature_dim, hidden=16, layers=1, n_iter=model.config.n_iter))


def tracked(size: int = 32):
    """Two tracks: track 3 on frames 0..29 without frame 10; track 7 on every 2nd frame 0..18 (a frame stride of 2)."""
    frames = [f for f in range(30) if f != 10] + list(range(0, 20, 2))
    labels = label_set(len(frames), size)
    labels.frame[:] = frames
    labels.track[:] = [3] * 29 + [7] * 10
    return labels


def test_runs_and_chunks_follow_each_track_in_time():
    labels = tracked()
    runs = track_runs(labels)
    assert [labels.frame[r].tolist() for r in runs] == [list(range(10)), list(range(11, 30)), list(range(0, 20, 2))]
    chunks = chunks_of(runs, chunk=8, min_chunk=4)
    assert [len(c) for c in chunks] == [8, 8, 8, 8]
    # 10 -> 8 + 2 (dropped), 19 -> 8 + 8 + 3 (dropped), 10 -> 8 + 2 (dropped)
    assert [labels.frame[c][0] for c in chunks] == [0, 11, 19, 0]


def test_sequences_hold_the_adapted_features_and_labels(tiny, body):
    model, _ = load_rscnet(tiny)
    labels = tracked()
    seqs = label_sequences(model, body, labels, TemporalAdaptConfig(chunk=8))
    assert seqs.length.tolist() == [8, 8, 8, 8] and seqs.start.tolist() == [0, 8, 16, 24]
    assert seqs.features.shape == (32, model.feature_dim) and seqs.S.shape == (32, 24, 4) and seqs.part.shape == (32, 24, 3)
    from lrpose.crops import normalize

    with torch.no_grad():  # row 0 is label 0 at its native range (100 px: range 2)
        phi = model(normalize(labels.crops[0])[None], 2).features[0]
    assert torch.allclose(torch.from_numpy(seqs.features[0]), phi, atol=1e-5)
    assert np.array_equal(seqs.pose[8], labels.pose[10])  # chunk 1 starts at frame 11 of track 3 (row 10)


def test_fine_tuning_lowers_the_loss_and_resumes_exactly(tiny, body, tmp_path):
    model, _ = load_rscnet(tiny)
    seqs = label_sequences(model, body, tracked(), TemporalAdaptConfig(chunk=8))
    cfg = TemporalAdaptConfig(steps=4, chunk=8, batch_size=2, lr=1e-3, ckpt_every=100)
    start = small_gru(model)
    before = copy.deepcopy(start.state_dict())
    module, prov = fine_tune_temporal(cfg, start, body, seqs, tmp_path / "a", body.body_id)
    assert all(torch.equal(v, start.state_dict()[k]) for k, v in before.items())  # the start module is left as it was
    assert prov["chunks"] == 4 and prov["frames"] == 32 and prov["steps"] == 4
    assert prov["loss_last"] < prov["loss_first"]

    def stop(done: int, total: int, parts: dict) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fine_tune_temporal(cfg, start, body, seqs, tmp_path / "b", body.body_id, stop)
    resumed, prov_b = fine_tune_temporal(cfg, start, body, seqs, tmp_path / "b", body.body_id)
    assert weights_digest(resumed.state_dict()) == weights_digest(module.state_dict()) and prov_b == prov
    kept, prov_k = fine_tune_temporal(replace(cfg, base_id="base_gru.pt:0123456789"), start, body, seqs, tmp_path / "c", body.body_id)
    assert prov_k["recurrent"] == "kept (the base's)" and prov["recurrent"] == "trained"
    sd = kept.state_dict()
    assert all(torch.equal(v, before[k]) for k, v in sd.items() if k.startswith("gru."))  # the GRU layers kept
    assert not torch.equal(sd["linear.weight"], before["linear.weight"]) and not torch.equal(
        sd["regressor.fc1.weight"], before["regressor.fc1.weight"]
    )
    with pytest.raises(InputError, match="different settings .*rscnet_digest"):  # other features: no silent resume
        fine_tune_temporal(replace(cfg, rscnet_digest="other"), start, body, seqs, tmp_path / "b", body.body_id)


def adapted_file(tiny, body, path, gru=None):
    model, _ = load_rscnet(tiny)
    gru = gru or small_gru(model)
    write_adapted(path, model, body.body_id, PROV, gru, {"steps": 3, "chunks": 4, "chunk": 24, "frames": 32, "start": "identity"})
    return model, gru


def test_stored_gru_round_trips_and_is_chosen_for_its_rscnet(tiny, body, tmp_path):
    _, gru = adapted_file(tiny, body, tmp_path / "adapted.pt")
    model, info = load_rscnet(tmp_path / "adapted.pt")
    choice = find_temporal(None, model, info)
    assert choice.module is not None and choice.note is None and "stored in its file" in choice.line
    assert weights_digest(choice.module.state_dict()) == weights_digest(gru.state_dict())
    assert choice.info.checkpoint_id == f"{info.checkpoint_id}#{ENTRY}" and choice.info.parent_id == info.checkpoint_id
    x = torch.randn(2, 5, model.feature_dim)
    assert torch.equal(choice.module(x).cam, gru.eval()(x).cam)  # the same numbers after the round trip
    assert checkpoint_meta(tmp_path / "adapted.pt")["adapt"]["temporal"]["chunks"] == 4
    assert find_temporal(None, model, info, enabled=False).module is None  # --no-temporal still wins


def test_pairing_rule_never_pairs_other_weights_silently(tiny, body, tmp_path):
    model, gru = adapted_file(tiny, body, tmp_path / "adapted.pt")
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.regressor.fc1.weight.add_(0.01)  # other RSC-Net weights, the same architecture
    # the entry made for ``model`` copied into a file of ``other``
    save(tmp_path / "copied.pt", other, body.body_id, meta={}, extra=temporal_entry(gru, model, body.body_id))
    m2, info2 = load_rscnet(tmp_path / "copied.pt")
    why = embedded_temporal(m2, info2)
    assert isinstance(why, str) and "other RSC-Net weights" in why
    choice = find_temporal(None, m2, info2)
    assert choice.module is None and "other RSC-Net weights" in choice.note  # off, and said (the shipped GRU does not fit either)
    # a temporal file made for another RSC-Net, given explicitly: refused in one line
    save(tmp_path / "gru.pt", gru, body.body_id, parent_id="lrpose_rscnet.pt:0000000000")
    model, info = load_rscnet(tmp_path / "adapted.pt")
    with pytest.raises(InputError, match="--temporal-weights: gru.pt was trained on the features of lrpose_rscnet.pt"):
        find_temporal(tmp_path / "gru.pt", model, info)
    # an explicit file that fits takes precedence over the stored one
    save(tmp_path / "fits.pt", small_gru(model), body.body_id, parent_id=info.checkpoint_id)
    assert find_temporal(tmp_path / "fits.pt", model, info).info.checkpoint_id.startswith("fits.pt:")


def test_video_uses_the_adapted_temporal_module_and_doctor_shows_it(clip, tiny, body, tmp_path, capsys):  # noqa: F811
    adapted_file(tiny, body, tmp_path / "adapted.pt")
    video, boxes = clip
    code = main(["video", str(video), "--out", str(tmp_path / "res"), "--boxes", str(boxes), "--weights", str(tmp_path / "adapted.pt"),
                 "--no-refine", "--min-track", "8"])  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "res" / "walk" / "summary.json").read_text())
    assert summary["temporal"].startswith("GRU adapted.pt:") and "#temporal" in summary["temporal"]
    capsys.readouterr()
    assert main(["doctor", "--weights", str(tmp_path / "adapted.pt")]) == 0
    assert "temporal module: adapted too, stored in this file (used by lrpose video): 3 steps on 4 chunks" in capsys.readouterr().out


def test_sampling_reads_windows_of_consecutive_frames():
    from lrpose.training.pseudo import Sampling

    s = Sampling(stride=3, window=4)  # frames 0-3, 12-15, 24-27, ...
    assert [f for f in range(30) if s.keeps(f)] == [0, 1, 2, 3, 12, 13, 14, 15, 24, 25, 26, 27]
    assert s.source(np.arange(10)).tolist() == [0, 1, 2, 3, 12, 13, 14, 15, 24, 25]
    assert [s.kept_before(f) for f in (0, 3, 4, 12, 13, 30)] == [0, 3, 4, 4, 5, 12]
    assert s.fps(25.0) == 25.0 and Sampling(5, 1).fps(25.0) == 5.0  # the tracker sees real motion inside a window
    single = Sampling(stride=5, window=1)  # every 5th frame, as before windows
    assert single.source(np.arange(4)).tolist() == [0, 5, 10, 15] and [single.kept_before(f) for f in (0, 1, 5, 6)] == [0, 1, 1, 2]


def test_collected_frames_are_source_frames_and_the_split_is_in_time(body):
    from lrpose.training.pseudo import LabelFilter, Sampling, collect_video
    from lrpose.types import Frame, FrameResult
    from tests.test_adapt import H, W, estimate

    sampling = Sampling(stride=2, window=4)  # 48 frames: 0-3, 8-11, ..., 40-43 -> 24 read
    image = np.zeros((H, W, 3), np.uint8)

    def run():
        for k in range(24):
            yield FrameResult(Frame(k, image, k / 10), [estimate(frame=k)], True)

    out = collect_video(run, 48, sampling, 0.25, 32, W, H, LabelFilter(min_track=8), 1)  # held out from source frame 36
    assert out.train.frame.tolist() == [f for f in range(36) if sampling.keeps(f)] and out.train.track.tolist() == [0] * 20
    assert out.heldout.frame.tolist() == [40, 41, 42, 43]
    runs = track_runs(out.train)  # every window is its own run: the frame step jumps between windows
    assert [out.train.frame[r].tolist() for r in runs] == [list(range(a, a + 4)) for a in range(0, 36, 8)]


def test_heldout_score_with_a_temporal_module(tiny, body):
    from lrpose.training.adapt import heldout_score
    from lrpose.training.adapt_temporal import heldout_score_temporal

    model, _ = load_rscnet(tiny)
    held = tracked()
    held.keypoints[..., 0], held.keypoints[..., 1], held.keypoints[..., 2] = 12.0, np.linspace(4, 28, 17), 0.9
    per_frame = heldout_score(model, body, held)
    assert heldout_score_temporal(model, None, body, held) == per_frame  # no GRU: the network per frame
    identity = TemporalModule.from_rscnet(model, TemporalConfig(model.feature_dim, hidden=16, layers=1, n_iter=model.config.n_iter))
    same = heldout_score_temporal(model, identity, body, held)  # from_rscnet starts as the identity: the same bodies
    assert same["n"] == per_frame["n"] == 39 and same["facing_n"] == per_frame["facing_n"]
    assert same["kp_error"] == pytest.approx(per_frame["kp_error"], rel=1e-5) and same["facing"] == per_frame["facing"]
    moved = copy.deepcopy(identity)
    with torch.no_grad():
        moved.linear.weight.normal_(0, 0.5)  # a GRU whose output now matters
    assert heldout_score_temporal(model, moved, body, held)["kp_error"] != pytest.approx(per_frame["kp_error"], rel=1e-3)
