"""Each system brings its own commands and the options it adds to the generic ones; the
generic command line names no system."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mecllm.cli
from mecllm.cli import app
from mecllm.systems.registry import extra_options

runner = CliRunner()
CLI = Path(mecllm.cli.__file__)


def test_the_generic_command_line_names_no_system() -> None:
    text = CLI.read_text()
    # "server(s)" is the generic count of edge servers (--servers), not a system's name.
    named = re.findall(r"(?i)finetune|secure|inference|edge-llm|offsite|serve\b|train", text)
    assert named == []
    assert len(text.splitlines()) < 400


def test_each_systems_commands_and_options_reach_the_command_line() -> None:
    listing = runner.invoke(app, ["--help"], terminal_width=200).output
    for command in ("train", "profile", "solve-regions", "serve"):  # the systems' own
        assert re.search(rf"\b{command}\b", listing), command
    for command in ("generate", "evaluate"):
        text = runner.invoke(app, [command, "--help"], terminal_width=200).output
        for _, option in extra_options(command):
            assert option.flag in text


def test_an_option_of_another_system_is_refused_by_name(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    for args, message in (
        (["--system", "secure-offsite", "--field"], "--field does not apply to secure-offsite"),
        (["--system", "edge-inference", "--count-idle"], "--count-idle does not apply"),
        (["--system", "edge-inference", "--plan-model", "paper"], "it is an option of edge-llm"),
    ):
        result = runner.invoke(app, ["generate", *args, "-o", str(out)])
        assert result.exit_code == 2 and message in result.output, result.output
        assert not out.exists()
    instance, solution = tmp_path / "i.json", tmp_path / "s.json"
    assert runner.invoke(app, ["generate", "--users", "3", "-o", str(instance)]).exit_code == 0
    solved = runner.invoke(app, ["solve", str(instance), "-a", "gucaa", "-o", str(solution)])
    assert solved.exit_code == 0
    result = runner.invoke(app, ["evaluate", str(instance), str(solution), "--fail", "0@1"])
    assert result.exit_code == 2
    assert "--fail does not apply to edge-llm instances (it is an option of edge-inference)" in (
        result.output
    )


@pytest.mark.processes
def test_the_command_line_starts_without_the_numerical_libraries() -> None:
    code = (
        "import sys, mecllm.cli; "
        "print(sorted(m for m in ('numpy', 'scipy', 'cvxpy', 'torch', 'matplotlib', 'numba') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]"
