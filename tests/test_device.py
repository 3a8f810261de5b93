"""``--device`` (``lrpose.device``): the one choice of device for video, image and adapt, and its
one-line errors; CPU-only (a machine without CUDA is what CI has; CUDA is reported absent explicitly)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lrpose.cli import main
from lrpose.device import host, pick_device, upload
from lrpose.errors import InputError
from tests.test_bad_inputs import one_error_line


@pytest.fixture
def no_cuda(monkeypatch):
    """torch sees no CUDA device (whatever this machine has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_pick_device_auto_cpu_cuda(monkeypatch, no_cuda):
    assert pick_device("cpu") == torch.device("cpu") and pick_device("auto") == torch.device("cpu")
    with pytest.raises(InputError, match=r"^--device cuda: no CUDA device is available"):
        pick_device("cuda")
    with pytest.raises(InputError, match=r"^--device must be auto \| cpu \| cuda, not 'gpu'$"):
        pick_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # naming the device does not touch it
    assert pick_device("auto") == torch.device("cuda") == pick_device("cuda") and pick_device("cpu") == torch.device("cpu")


def test_moves_on_the_cpu_are_the_tensors_themselves():
    x = torch.arange(6.0).reshape(2, 3)
    assert upload(x, torch.device("cpu")) is x
    (a,) = host(x)
    assert a.shape == (2, 3) and a.dtype == np.float32 and np.shares_memory(a, x.numpy())


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "pic.png"
    cv2.imwrite(str(path), np.full((48, 32, 3), 90, np.uint8))
    return path


@pytest.mark.parametrize("command", ["video", "image"])
def test_device_cuda_without_cuda_is_one_line_before_any_work(command, picture, tmp_path, capsys, no_cuda):
    out = tmp_path / "out"
    assert main([command, str(picture), "--out", str(out), "--device", "cuda"]) == 1
    one_error_line(capsys, "--device cuda: no CUDA device is available")
    assert not out.exists()
    assert main([command, str(picture), "--out", str(out), "--device", "tpu"]) == 1
    one_error_line(capsys, "--device must be auto | cpu | cuda, not 'tpu'")


def test_adapt_device_uses_the_same_choice(tmp_path, capsys, no_cuda):
    assert main(["adapt", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "a.pt"), "--device", "cuda"]) == 1
    one_error_line(capsys, "--device cuda: no CUDA device is available")
