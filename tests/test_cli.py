"""CLI: version, doctor, one-line errors with exit 1, usage errors exit 2."""

from __future__ import annotations

import subprocess
import sys

from lrpose import __version__
from lrpose.cli import main
from tests.fake_smpl import write_fake_smpl


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lrpose {__version__}"


def test_doctor_shows_standin(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "stand-in body model" in out and "found" in out
    assert "body in use: standin-anny:" in out and "13718 vertices" in out
    assert "mismatch 0.01 mm: ok" in out


def test_doctor_uses_smpl_from_env(tmp_path, monkeypatch, capsys):
    write_fake_smpl(tmp_path / "SMPL_NEUTRAL.pkl")
    monkeypatch.setenv("LRPOSE_SMPL_DIR", str(tmp_path))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "body in use: smpl-neutral:" in out and "6890 vertices" in out
    assert "WARNING: not symmetric" in out  # the fake body is random points


def test_missing_smpl_dir_is_one_red_line_exit_1(monkeypatch, capsys):
    monkeypatch.setenv("LRPOSE_SMPL_DIR", "/nonexistent/smpl")
    assert main(["doctor"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: SMPL body model (neutral)")
    assert "Traceback" not in "\n".join(err)


def test_missing_required_options_exit_2(capsys):
    assert main(["video"]) == 2
    assert main(["train", "rscnet"]) == 2
    assert main(["train", "temporal"]) == 2


def test_usage_error_exit_2():
    assert main(["no-such-command"]) == 2


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "lrpose", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"lrpose {__version__}"
