"""Configuration that a file can set, and the shared check every stage config runs on itself.

Each stage has its own frozen config next to its code (``PipelineConfig`` in pipeline.py,
``VideoOptions`` in video.py, ``SynthConfig``, ``TrainConfig``, ``TemporalTrainConfig`` and
``TextureTrainConfig`` under training/); each checks its values in ``__post_init__`` with
``check_minimums``. This module holds the ones a TOML file may set (today: ``[body]``).
Precedence: command-line flag > config file (TOML) > default. A config file has one table
per section, e.g.::

    [body]
    smpl = "/data/smpl"
    gender = "neutral"
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrpose.errors import ConfigError, InputError


@dataclass(frozen=True)
class BodyConfig:
    """Which body model to use."""

    smpl: Path | None = None
    """Explicit SMPL file or folder; None: search (see ``lrpose.assets``), else the stand-in."""
    gender: str = "neutral"
    """neutral | male | female (real SMPL only; the stand-in is gender-neutral)."""
    standin: bool = False
    """Use the shipped stand-in even when a real SMPL is found."""


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    body: BodyConfig = field(default_factory=BodyConfig)


_PATH_FIELDS = {"smpl"}


def _section(cls: type, values: dict[str, Any], name: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return cls(**{k: Path(v).expanduser() if k in _PATH_FIELDS and v is not None else v for k, v in values.items()})


def load_config(path: Path | None = None, **overrides: dict[str, Any]) -> Config:
    """Build a Config from an optional TOML file and per-section flag overrides.

    ``overrides`` maps a section name to the flags the user gave (None values are ignored,
    so unset flags never mask the file).
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    unknown = set(data) - set(sections)
    if unknown:
        raise ConfigError(f"unknown section(s) in {path}: {', '.join(sorted(unknown))}")
    built = {}
    for name, cls_field in ((f.name, f) for f in dataclasses.fields(Config)):
        cls = type(cls_field.default_factory())  # type: ignore[misc]
        merged = dict(data.get(name, {}))
        merged.update({k: v for k, v in overrides.get(name, {}).items() if v is not None})
        built[name] = _section(cls, merged, name)
    return Config(**built)


def check_minimums(cfg: Any, **minimums: float) -> None:
    """InputError naming the command-line option when a field of ``cfg`` is below its minimum,
    e.g. ``check_minimums(cfg, steps=1, max_gap=0)`` -> "--max-gap must be at least 0, got -1"."""
    for name, low in minimums.items():
        value = getattr(cfg, name)
        if value < low:
            raise InputError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """InputError when ``value`` of option ``--name`` is not one of ``choices``."""
    if value not in choices:
        raise InputError(f"--{name.replace('_', '-')} must be {' | '.join(choices)}, not '{value}'")
