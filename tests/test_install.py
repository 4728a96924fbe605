"""The pinned install: the README's commands and CI install from the constraints file, and the
file pins every package the project asks for (docs/development.md)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_every_dependency_and_extra_is_pinned_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    asked = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        asked |= {_name(r) for r in extra if not r.startswith("mecllm")}
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[0-9][0-9A-Za-z.]*", version), line
            pins[_name(name)] = version
    assert asked <= set(pins), sorted(asked - set(pins))
    assert pins["torch"] == "2.13.0"  # the CPU build on this kind of machine, never a CUDA one


def test_the_readme_and_ci_install_from_the_constraints_file() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2
    assert all("-c requirements/constraints.txt" in command for command in commands)
    assert "-c requirements/constraints.txt" in (ROOT / ".ci" / "run").read_text()


def test_the_installed_torch_is_the_cpu_build() -> None:
    # Sionna (the [air] extra) asks for torch too: the constraints file must keep pip on the
    # CPU build this kind of machine has, never a multi-GB CUDA one (docs/air.md section 3).
    import pytest

    torch = pytest.importorskip("torch")
    assert torch.version.cuda is None, torch.__version__
