"""The resolver's documented search order and its errors."""

from __future__ import annotations

import pytest

from lrpose import assets
from lrpose.errors import AssetNotFoundError


def _put(folder, name="lrpose_rscnet.pt"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"x")
    return folder / name


def test_search_order_explicit_env_home_cwd(tmp_path, monkeypatch, isolated_assets):
    cwd_file = _put(isolated_assets / "weights")
    assert assets.resolve("rscnet") == cwd_file
    home_file = _put(tmp_path / "home")
    monkeypatch.setenv("LRPOSE_HOME", str(tmp_path / "home"))
    assert assets.resolve("rscnet") == home_file
    env_file = _put(tmp_path / "w", "RSC-Net.pt")
    monkeypatch.setenv("LRPOSE_WEIGHTS", str(tmp_path / "w"))
    assert assets.resolve("rscnet") == env_file
    explicit = _put(tmp_path / "x", "mine.pt")
    assert assets.resolve("rscnet", explicit) == explicit
    assert assets.locate("rscnet", explicit).source == "explicit path"


def test_filenames_match_case_insensitively_in_preference_order(tmp_path):
    _put(tmp_path, "model_checkpoint.pt")
    _put(tmp_path, "rsc-net.PT")
    assert assets.resolve("rscnet", tmp_path).name == "rsc-net.PT"


def test_explicit_path_that_is_missing_is_an_error_not_a_fallback(tmp_path, isolated_assets):
    _put(isolated_assets / "weights")
    with pytest.raises(AssetNotFoundError, match="explicit path .*nope \\(does not exist\\)"):
        assets.resolve("rscnet", tmp_path / "nope")


def test_missing_asset_error_names_file_places_and_remedy(without_shipped_networks):
    with pytest.raises(AssetNotFoundError) as e:
        assets.resolve("rscnet")
    msg = str(e.value)
    assert msg.startswith("RSC-Net checkpoint (lrpose_rscnet.pt or RSC-Net.pt or model_checkpoint.pt) not found. Searched: ./weights ")
    assert "lrpose train rscnet" in msg


def test_standin_is_shipped():
    found = assets.locate("standin_body")
    assert found.path is not None and found.source == "shipped"


def test_strictness():
    assert not assets.is_strict("smpl_neutral")
    assert assets.is_strict("smpl_neutral", "/some/where")
