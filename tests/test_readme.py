"""The README's two set-up commands are exactly what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- setup -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README.md must have a ```bash block after <!-- setup -->"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_two_setup_commands_are_what_ci_runs():
    cmds = setup_commands()
    assert len(cmds) == 2
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert cmds[0] in ci and cmds[1] in ci
    assert ci.index(cmds[0]) < ci.index(cmds[1])
    assert "pytest" in cmds[1] and "constraints-cpu.txt" in cmds[0]
