"""The shipped network weights: present, trained, loadable weights-only, and consistent with each other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lrpose import assets
from lrpose.cli import main
from lrpose.models.checkpoint import load_rscnet, load_temporal, load_texture

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
EXAMPLE = WEIGHTS.parent / "examples" / "person_64px.png"


def test_shipped_files_are_small_trained_and_found_by_default():
    for name in ("lrpose_rscnet.pt", "lrpose_temporal.pt", "lrpose_texture.pt"):
        assert (WEIGHTS / name).stat().st_size < 30 * 2**20, name
    assert assets.locate("rscnet").path == WEIGHTS / "lrpose_rscnet.pt"
    model, info = load_rscnet(WEIGHTS / "lrpose_rscnet.pt")
    assert info.trained and info.body_id.startswith("standin-anny:")
    assert model.config.backbone == "yolopose" and model.config.input_size == 128 and model.feature_dim == 1984
    net, tex = load_texture(WEIGHTS / "lrpose_texture.pt")
    assert tex.trained and tex.kind == "texture" and tex.body_id == info.body_id


def test_shipped_temporal_module_reads_the_shipped_rscnet():
    _, rscnet = load_rscnet(WEIGHTS / "lrpose_rscnet.pt")
    module, info = load_temporal(WEIGHTS / "lrpose_temporal.pt")
    assert info.trained and info.parent_id.split(":")[-1] == rscnet.checkpoint_id.split(":")[-1]
    assert module.config.feat_dim == 1984 and module.config.hidden == 512 and module.config.layers == 2


def test_default_image_run_uses_the_shipped_model(tmp_path, capsys):
    assert main(["image", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    assert "untrained" not in capsys.readouterr().err.lower()
    z = np.load(tmp_path / "person_64px.npz")
    assert not bool(z["untrained"]) and str(z["checkpoint"]).startswith("lrpose_rscnet.pt:")
    # the shipped model sees a standing person: upright body (head above the pelvis in the image)
    assert z["joints2d"][15, 1] < z["joints2d"][0, 1]
    assert torch.isfinite(torch.from_numpy(z["pose"])).all()
