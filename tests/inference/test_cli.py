"""``mecllm`` commands on edge-inference instances, as a user runs them, and their refusals of
bad input (one line on stderr, exit status 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mecllm.cli import app
from test_bad_input import one_line_error

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inference")
    instance = folder / "instance.json"
    result = runner.invoke(
        app, ["generate", "--system", "edge-inference", "--preset", "small", "-o", str(instance)]
    )
    assert result.exit_code == 0, result.output
    out = {"dir": folder, "instance": instance}
    for name in ("infer-planner", "infer-planner-r2", "infer-monolithic"):
        plan = folder / f"{name}.json"
        result = runner.invoke(app, ["solve", str(instance), "-a", name, "-o", str(plan)])
        assert result.exit_code == 0, result.output
        out[name] = plan
    return out


def test_algorithms_lists_every_inference_method() -> None:
    result = runner.invoke(app, ["algorithms"])
    assert result.exit_code == 0
    for name in (
        "infer-planner",
        "infer-planner-r2",
        "infer-monolithic",
        "infer-exo",
        "infer-petals",
        "infer-edgeshard",
        "infer-random",
    ):
        assert name in result.output


def test_evaluate_json_has_the_promised_keys(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["evaluate", str(files["instance"]), str(files["infer-planner"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("on_time_ratio", "p95_latency_s", "late", "rejected", "lost", "requests"):
        assert key in report
    assert report["lost"] == 0
    assert report["requests"] == report["on_time"] + report["late"] + report["rejected"]
    assert report["requests"] > 0


def test_a_failure_with_replicas_loses_nothing(files: dict[str, Path]) -> None:
    plan = json.loads(files["infer-planner-r2"].read_text())
    node = plan["servers"][plan["chains"][0][0]]["node"]
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(files["instance"]),
            str(files["infer-planner-r2"]),
            "--json",
            "--fail",
            f"{node}@30",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["lost"] == 0
    assert report["requests"] == report["on_time"] + report["late"] + report["rejected"]


def test_a_trace_replays_exactly_its_requests(files: dict[str, Path]) -> None:
    trace = files["dir"] / "trace.csv"
    trace.write_text(
        "arrival_s,user,task,prompt_tokens,output_tokens,deadline_s\n"
        "0.0,0,0,32,8,5.0\n0.5,1,0,16,4,5.0\n1.0,2,0,64,16,0.001\n"
    )
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(files["instance"]),
            str(files["infer-planner"]),
            "--json",
            "--trace",
            str(trace),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["requests"] == 3
    assert report["on_time"] == 2
    assert report["rejected"] == 1  # a 1 ms deadline cannot be met
    assert report["rejected_by_reason"] == {"deadline unreachable at admission": 1}


def test_compare_prints_one_row_per_method(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["compare", str(files["instance"]), "--algorithms", "infer-planner,infer-exo"]
    )
    assert result.exit_code == 0, result.output
    assert "infer-planner" in result.stdout and "infer-exo" in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fail", "x@3"], "--fail must look like NODE@SECONDS"),
        (["--fail", "99@3"], "--fail node must be in 0..2"),
        (["--fail", "0@-1"], "--fail time must be a finite number"),
        (["--fail", "0@nan"], "--fail time must be a finite number"),
        (["--seed", "1", "--trace", "TRACE"], "use one of them"),
        (["--trace", "MISSING"], "does not exist"),
    ],
)
def test_bad_evaluate_options(files: dict[str, Path], extra: list[str], message: str) -> None:
    trace = files["dir"] / "t.csv"
    trace.write_text("arrival_s,user,task,prompt_tokens,output_tokens,deadline_s\n0,0,0,8,8,1\n")
    extra = [
        str(trace) if e == "TRACE" else str(files["dir"] / "nope.csv") if e == "MISSING" else e
        for e in extra
    ]
    base = ["evaluate", str(files["instance"]), str(files["infer-planner"]), "--json"]
    assert message in one_line_error(runner.invoke(app, [*base, *extra]))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("arrival_s,user\n0,0\n", "must have the columns"),
        (
            "arrival_s,user,task,prompt_tokens,output_tokens,deadline_s\n-1,0,0,8,8,1\n",
            "trace[0].arrival_s must be in",
        ),
        (
            "arrival_s,user,task,prompt_tokens,output_tokens,deadline_s\n0,77,0,8,8,1\n",
            "trace[0].user must be in 0..5",
        ),
        (
            "arrival_s,user,task,prompt_tokens,output_tokens,deadline_s\n0,0,0,8.5,8,1\n",
            "trace[0].prompt_tokens",
        ),
        ('[{"arrival_s": 0}]', "trace[0] must have exactly"),
        ("[1, 2", "is not valid JSON"),
    ],
)
def test_bad_traces(files: dict[str, Path], body: str, message: str) -> None:
    trace = files["dir"] / "bad-trace.txt"
    trace.write_text(body)
    args = ["evaluate", str(files["instance"]), str(files["infer-planner"]), "--trace", str(trace)]
    assert message in one_line_error(runner.invoke(app, args))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["nodes"].__setitem__("memory_bytes", [-1.0] * 3), "memory_bytes"),
        (lambda d: d["model"].__setitem__("blocks", 0), "model.blocks"),
        (lambda d: d.__setitem__("max_batch", 2.5), "max_batch"),
        (lambda d: d.__setitem__("colour", "blue"), "colour"),
        (lambda d: d.__setitem__("kind", "edge-llm"), ""),
    ],
)
def test_bad_instances(files: dict[str, Path], change: object, message: str) -> None:
    data = json.loads(files["instance"].read_text())
    change(data)  # type: ignore[operator]
    bad = files["dir"] / "bad-instance.json"
    bad.write_text(json.dumps(data))
    out = files["dir"] / "never.json"
    line = one_line_error(
        runner.invoke(app, ["solve", str(bad), "-a", "infer-planner", "-o", str(out)])
    )
    assert message in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("n_medium=-1", "n_medium"),
        ("prompt_min=500", "prompt_min must not exceed prompt_max"),
        ("total_rate_per_s=nan", "total_rate_per_s"),
        ("nonsense=1", "'nonsense' does not exist"),
    ],
)
def test_bad_inference_settings(tmp_path: Path, setting: str, message: str) -> None:
    out = tmp_path / "i.json"
    args = ["generate", "--system", "edge-inference", "--preset", "small", "--set", setting]
    assert message in one_line_error(runner.invoke(app, [*args, "-o", str(out)]))
    assert not out.exists()


def test_a_plan_that_does_not_fit_is_infeasible_with_status_1(files: dict[str, Path]) -> None:
    data = json.loads(files["instance"].read_text())
    blocks = data["model"]["blocks"]
    weak = min(range(3), key=lambda v: data["nodes"]["memory_bytes"][v])
    plan = {
        "servers": [{"node": weak, "start": 0, "end": blocks}] * 1,
        "chains": [[0]],
        "fractions": [1.0],
        "routing": "chains",
    }
    data["nodes"]["memory_bytes"][weak] = 1.0
    tight = files["dir"] / "tight.json"
    tight.write_text(json.dumps(data))
    path = files["dir"] / "too-big.json"
    path.write_text(json.dumps(plan))
    result = runner.invoke(app, ["evaluate", str(tight), str(path), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["violations"]
