"""Checkpoints: our format round trip, strict import of official RSC-Net and SPIN layouts, refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lrpose.errors import AssetFormatError
from lrpose.models.checkpoint import load_rscnet, save
from lrpose.models.rscnet import RSCNet, RSCNetConfig
from tests.test_models import mean_params, randomise_bn

FIELDS = ("features", "embedding", "pose6d", "rotmats", "betas", "cam")


def official_state_dict(model: RSCNet) -> dict[str, torch.Tensor]:
    """The model's weights under the official RSC-Net release's names (the inverse of ``from_official_key``)."""

    def official(key: str) -> str:
        for ours, theirs in (("backbone.", ""), ("projection.", "layer4_mlp."), ("regressor.", "")):
            if key.startswith(ours):
                return theirs + key[len(ours) :]
        raise KeyError(key)

    return {official(k): v for k, v in model.state_dict().items()}


def assert_same_outputs(a: RSCNet, b: RSCNet, size: int, ranges=(0, 2, 4)) -> None:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for p in ranges:
            oa, ob = a.eval()(x, p), b.eval()(x, p)
            for f in FIELDS:
                assert torch.equal(getattr(oa, f), getattr(ob, f)), f


@pytest.fixture(scope="module")
def official_model() -> RSCNet:
    torch.manual_seed(3)
    net = RSCNet(RSCNetConfig(depth=50, input_size=224), mean_params())
    randomise_bn(net)
    for stage in net.backbone.stages():
        for p in range(5):
            stage.alphas[str(p)].data.uniform_(0.5, 1.5)
    return net.eval()


def test_own_format_round_trip(tmp_path):
    net = RSCNet(RSCNetConfig(depth=18, input_size=64), mean_params())
    randomise_bn(net)
    path = tmp_path / "ck" / "m.pt"
    save(path, net, body_id="standin-anny:abc", trained=True, meta={"steps": 7})
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp files left
    loaded, info = load_rscnet(path)
    assert info.kind == "rscnet" and info.source == "lrpose" and info.trained and info.body_id == "standin-anny:abc"
    assert loaded.config == net.config and info.checkpoint_id.startswith("m.pt:")
    assert_same_outputs(net, loaded, 64)


@pytest.mark.parametrize("wrapped", [False, True])
def test_official_rscnet_layout_loads_strictly(tmp_path, official_model, wrapped):
    sd = official_state_dict(official_model)
    assert "layer1.hmr_layer.0.conv1.weight" in sd and sd["layer1.alphas.3"].shape == (3, 1, 1, 1, 1)
    assert "layer4_mlp.2.weight" in sd and "decpose.weight" in sd and "init_pose" in sd
    path = tmp_path / "RSC-Net.pt"
    torch.save({"model": sd, "epoch": 3} if wrapped else sd, path)
    loaded, info = load_rscnet(path)
    assert info.source == "official-rscnet" and info.body_id == "smpl"
    assert_same_outputs(official_model, loaded, 224, ranges=(0, 4))


def test_spin_layout_loads_with_unit_alphas(tmp_path, official_model):
    torch.manual_seed(4)
    plain = RSCNet(RSCNetConfig(depth=50, input_size=224, head="spin"), mean_params())  # SPIN's head: no ReLU
    randomise_bn(plain)
    spin = {}
    for k, v in official_state_dict(plain).items():
        if ".alphas." in k or k.startswith("layer4_mlp."):
            continue
        spin[re.sub(r"^(layer\d)\.hmr_layer\.", r"\1.", k)] = v
    assert "layer1.0.conv1.weight" in spin
    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": spin, "optimizer": {"state": {}, "param_groups": []}}, path)
    loaded, info = load_rscnet(path)
    assert info.source == "spin" and loaded.config.head == "spin"
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        for p in (0, 3):  # every range is the plain network
            a, b = plain.eval()(x, 0), loaded(x, p)
            assert torch.equal(a.pose6d, b.pose6d) and torch.equal(a.features, b.features)


def test_renamed_key_is_named_in_the_error(tmp_path, official_model):
    sd = official_state_dict(official_model)
    sd["layer2.hmr_layer.1.conv2.weightX"] = sd.pop("layer2.hmr_layer.1.conv2.weight")
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(AssetFormatError) as e:
        load_rscnet(tmp_path / "bad.pt")
    msg = str(e.value)
    assert "missing 1 key(s): backbone.layer2.hmr_layer.1.conv2.weight" in msg
    assert "unexpected 1 key(s): backbone.layer2.hmr_layer.1.conv2.weightX" in msg


def test_wrong_shape_is_an_error(tmp_path, official_model):
    sd = official_state_dict(official_model)
    sd["decshape.bias"] = torch.zeros(11)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(AssetFormatError, match="shapes do not match.*decshape.bias"):
        load_rscnet(tmp_path / "bad.pt")


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_bearing_checkpoint_is_refused(tmp_path, capsys):
    net = RSCNet(RSCNetConfig(depth=18, input_size=64), mean_params())
    torch.save({"model": net.state_dict(), "evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(AssetFormatError, match="refused: it references print, not only plain tensors"):
        load_rscnet(tmp_path / "evil.pt")
    assert "pwned" not in capsys.readouterr().out


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a zip")
    with pytest.raises(AssetFormatError):
        load_rscnet(tmp_path / "x.pt")
    torch.save({"a": 1}, tmp_path / "y.pt")
    with pytest.raises(AssetFormatError, match="no state dict"):
        load_rscnet(tmp_path / "y.pt")


def test_export_tool_makes_a_float16_checkpoint_that_loads(tiny, tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "lrpose_rscnet.pt"
    r = subprocess.run([sys.executable, str(root / "tools" / "export_weights.py"), "rscnet", str(tiny), str(out), "--note", "test"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    raw = torch.load(out, weights_only=True)
    assert raw["state_dict"]["regressor.fc1.weight"].dtype == torch.float16 and raw["meta"]["note"] == "test"
    a, _ = load_rscnet(tiny)
    b, info = load_rscnet(out)
    assert info.trained and next(b.parameters()).dtype == torch.float32
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (a(x, 2).pose6d - b(x, 2).pose6d).abs().max() < 0.02


def test_own_checkpoint_records_its_head_and_old_files_are_rscnet(tmp_path):
    net = RSCNet(RSCNetConfig(depth=18, input_size=64, head="spin"), mean_params())
    save(tmp_path / "spin_head.pt", net, body_id="smpl")
    loaded, _ = load_rscnet(tmp_path / "spin_head.pt")
    assert loaded.config.head == "spin" and isinstance(loaded.regressor.relu, torch.nn.Identity)
    assert_same_outputs(net, loaded, 64, ranges=(1,))
    raw = torch.load(tmp_path / "spin_head.pt", weights_only=True)
    del raw["config"]["head"]  # a file written before the field existed
    torch.save(raw, tmp_path / "old.pt")
    old, _ = load_rscnet(tmp_path / "old.pt")
    assert old.config.head == "rscnet" and isinstance(old.regressor.relu, torch.nn.ReLU)
    raw["config"]["head"] = "hmr2"
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(AssetFormatError, match="bad model config.*head must be one of rscnet, spin"):
        load_rscnet(tmp_path / "bad.pt")
