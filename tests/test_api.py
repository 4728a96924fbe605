"""The documented Python API: the worked example of docs/api.md runs as written, and the
functions dispatch to the right system and refuse bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mecllm

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_the_worked_example_of_the_docs_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/api.md holds exactly one worked example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(DOCS), "exec"), {})
    printed = capsys.readouterr().out
    assert "6 users, 2 servers" in printed
    assert "refused: setting n_users must be >= 1, got 0" in printed
    assert (tmp_path / "instance.json").exists() and (tmp_path / "solution.json").exists()


def test_help_shows_the_api() -> None:
    for name in ("generate", "load_instance", "solve", "evaluate", "algorithms"):
        assert name in mecllm.__all__ and callable(getattr(mecllm, name))
    assert "mecllm.solve" in (mecllm.__doc__ or "")


def test_the_api_refuses_bad_input_with_one_sentence() -> None:
    with pytest.raises(mecllm.InvalidInputError, match="kind must be one of"):
        mecllm.generate("no-such-system")
    with pytest.raises(mecllm.InvalidInputError, match="seed must be"):
        mecllm.generate(seed=-1)
    instance = mecllm.generate(n_users=3, n_servers=1)
    with pytest.raises(mecllm.InvalidInputError, match="solve option 'colour'"):
        mecllm.solve(instance, "gucaa", colour="blue")
    with pytest.raises(mecllm.InvalidInputError, match="algorithm must be one of"):
        mecllm.solve(instance, "secure-ao")
    secure = mecllm.generate("secure-offsite", n_users=2)
    with pytest.raises(mecllm.InvalidInputError, match="expected a SecurePlan"):
        mecllm.evaluate(secure, mecllm.solve(instance, "gucaa").plan)
