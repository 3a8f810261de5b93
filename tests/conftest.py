"""Test set-up: one torch thread (no contention), and an isolated asset environment."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory):
    """One cache of YOLO runtime exports (``lrpose.yolo_runtime``) for the whole session, outside the user's home."""
    return tmp_path_factory.mktemp("lrpose-cache")


@pytest.fixture(autouse=True)
def isolated_assets(monkeypatch: pytest.MonkeyPatch, tmp_path, export_cache):
    """No LRPOSE_* variables (but a session-wide export cache) and an empty working directory: only shipped files resolve."""
    for var in [v for v in os.environ if v.startswith("LRPOSE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LRPOSE_CACHE_DIR", str(export_cache))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work


@pytest.fixture
def without_shipped_networks(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """Only the shipped body files resolve: no shipped RSC-Net, temporal or texture checkpoint."""
    from pathlib import Path

    from lrpose import assets

    shipped = Path(__file__).resolve().parent.parent / "weights"
    only_body = tmp_path / "shipped_body_only"
    only_body.mkdir()
    for name in ("standin_body.npz", "standin_mean_params.npz"):
        (only_body / name).symlink_to(shipped / name)
    monkeypatch.setattr(assets, "shipped_dirs", lambda: [only_body])
    return only_body


def _tiny_checkpoint(tmp_path_factory, input_size: int):
    """A trained-flagged ResNet-18 RSC-Net at ``input_size`` px with seeded random weights."""
    from lrpose.models.checkpoint import save
    from lrpose.models.rscnet import RSCNet, RSCNetConfig
    from tests.test_models import mean_params

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save(path, RSCNet(RSCNetConfig(depth=18, input_size=input_size), mean_params()), "standin-anny:test", trained=True)
    return path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny trained-flagged RSC-Net checkpoint (ResNet-18 at 32 px, seeded random weights)."""
    return _tiny_checkpoint(tmp_path_factory, 32)


@pytest.fixture(scope="session")
def tiny64(tmp_path_factory):
    """The same at 64 px (the shipped model's input size)."""
    return _tiny_checkpoint(tmp_path_factory, 64)
