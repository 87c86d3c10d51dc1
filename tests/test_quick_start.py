"""The README's quick start is two lines a new user pastes, and CI runs the second verbatim."""

from __future__ import annotations

import re

from tests.conftest import REPO


def _quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [block.strip() for block in blocks[:2]]


def test_the_quick_start_is_two_one_line_commands() -> None:
    install_and_demo, tests = _quick_start_commands()
    for line in (install_and_demo, tests):
        assert "\n" not in line
    assert install_and_demo.startswith("python3 -m venv .venv && ")
    assert install_and_demo.endswith("lumozbatch apply manifests/sketch-portraits.yaml --sandbox")
    assert tests.endswith("python -m pytest")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = _quick_start_commands()
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == tests
