"""Config precedence: flag > file > default, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrpose.config import BodyConfig, load_config
from lrpose.errors import ConfigError


def test_defaults():
    assert load_config().body == BodyConfig()


def test_file_then_flag_precedence(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[body]\nsmpl = "~/smpl"\ngender = "male"\n')
    cfg = load_config(f)
    assert cfg.body.gender == "male" and cfg.body.smpl == Path("~/smpl").expanduser()
    cfg = load_config(f, body={"gender": "female", "smpl": None})
    assert cfg.body.gender == "female" and cfg.body.smpl == Path("~/smpl").expanduser()


@pytest.mark.parametrize(
    ("text", "match"),
    [("[body]\ncolour = 1\n", "unknown key"), ("[nope]\n", "unknown section"), ("[body\n", "not valid TOML")],
)
def test_bad_files(tmp_path, text, match):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(f)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")
