"""Head-only training from cached backbone outputs (``--cached-passes``): the cached path gives the full
network's outputs, the run trains only the head, resumes exactly and reuses its cache."""

from __future__ import annotations

import csv

import pytest
import torch

from lrpose import assets
from lrpose.body import load_body
from lrpose.config import BodyConfig
from lrpose.errors import InputError
from lrpose.models.backbone_file import load_backbone
from lrpose.models.checkpoint import load_rscnet
from lrpose.training.data import StepBatches, SyntheticCrops
from lrpose.training.head import cached_outputs
from lrpose.training.loop import train_rscnet
from tests.test_training import tiny_cfg, tiny_data  # noqa: F401  (fixture)


def _cfg(data, out, **kw):
    base = dict(backbone="yolopose", input_size=128, freeze_backbone=True, cached_passes=1, progressive=False)
    return tiny_cfg(data, out, **{**base, **kw})


def test_cached_outputs_equal_the_network_on_the_same_views(tiny_data):  # noqa: F811
    from lrpose.models.checkpoint import default_mean_params
    from lrpose.models.rscnet import RSCNet, RSCNetConfig

    torch.manual_seed(0)
    model = RSCNet(RSCNetConfig(backbone="yolopose", input_size=128), default_mean_params(load_body())).eval()
    batch = StepBatches(SyntheticCrops(tiny_data), 2, 0, 128, lambda t: [0, 1, 2])[0]
    ranges = batch["ranges"].tolist()
    with torch.no_grad():
        grids = torch.stack(
            [torch.cat([g.flatten(1) for g in model.backbone.grids(batch["images"][:, k], p)], 1) for k, p in enumerate(ranges)], 1
        )
        cached = cached_outputs(model, grids, ranges)
        for k, p in enumerate(ranges):
            full = model(batch["images"][:, k], p)
            assert torch.allclose(cached[k].pose6d, full.pose6d, atol=1e-5)
            assert torch.allclose(cached[k].features, full.features, atol=1e-5)


def test_cached_run_trains_the_head_only_and_resumes_exactly(tiny_data, tmp_path):  # noqa: F811
    body = load_body(BodyConfig())
    with pytest.raises(InputError, match="--freeze-backbone"):
        _cfg(tiny_data, tmp_path / "x", freeze_backbone=False)
    whole = train_rscnet(_cfg(tiny_data, tmp_path / "whole", steps=4), body)
    assert (tmp_path / "whole" / "grids.pt").exists()

    def stop_at_2(step, total, parts):
        if step == 2:
            raise KeyboardInterrupt

    cfg = _cfg(tiny_data, tmp_path / "half", steps=4)
    with pytest.raises(KeyboardInterrupt):
        train_rscnet(cfg, body, progress=stop_at_2)
    cache = (tmp_path / "half" / "grids.pt").stat().st_mtime_ns
    resumed = train_rscnet(cfg, body, resume=tmp_path / "half" / "last.pt")
    assert (tmp_path / "half" / "grids.pt").stat().st_mtime_ns == cache  # reused, not recomputed
    a, b = load_rscnet(whole)[0].state_dict(), load_rscnet(resumed)[0].state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # the detector's layers are the shipped pretrained ones and the alphas stayed at 1; the head moved
    pretrained, _ = load_backbone(assets.resolve("backbone_yolopose"), "yolopose")
    assert all(torch.equal(a[f"backbone.{k}"], v) for k, v in pretrained.items())
    assert all(float(v.min()) == 1.0 == float(v.max()) for k, v in a.items() if ".alphas." in k)
    with (tmp_path / "whole" / "train_log.csv").open() as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3", "4"]


def test_a_cached_pass_covers_every_mixed_folder(tiny_data):  # noqa: F811
    from lrpose.training.data import MixedDataset
    from lrpose.training.head import samples_per_pass

    one = SyntheticCrops(tiny_data)
    assert samples_per_pass(one) == len(one)
    mixed = MixedDataset([one, one, one], [1.0, 1.0, 1.0])
    assert len(mixed) == len(one) and samples_per_pass(mixed) == 3 * len(one)
