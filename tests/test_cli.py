"""The command line as a new user meets it: help, errors, and the train step."""

import json

import pytest

from fewmul.cli import build_parser, main


@pytest.mark.parametrize("command", ["train", "count", "data", "compile", "sim", "build", "run", "demo"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: fewmul {command}" in out
    assert len(out.splitlines()) > 5


def test_bad_spec_is_rejected_with_its_location(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text("layers:\n  - {units: 16}\n  - {units: abc, act: none}\n")
    assert main(["train", str(spec), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert 'bad.yaml:3:13: layers[1].units: expected a positive integer, got "abc"' in err
    assert not (tmp_path / "run").exists()       # rejected before any work


def test_missing_inputs_are_clear_errors(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "r")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert main(["compile", str(tmp_path), "-o", str(tmp_path / "b")]) == 2
    assert "spec.yaml is missing" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "x", "--images", "0"])


def test_train_writes_the_run_folder(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("layers:\n  - {units: 32}\n  - {units: 10, act: none}\ntrain: {epochs: 3}\n")
    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "deployed (binary weights) test accuracy" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 3
    assert {"loss", "train_acc", "val_acc", "test_acc", "seconds"} <= set(metrics["epochs"][0])
    assert metrics["summary"]["test_acc_deployed"] > 0.5
    resolved = (run / "spec.yaml").read_text()
    assert "bn_momentum" in resolved and "input_bits: 4" in resolved
    assert (run / "curves.png").stat().st_size > 1000


@pytest.mark.parametrize("error", ["yosys", "simulation", "build"])
def test_tool_failures_are_one_line_errors(monkeypatch, capsys, error):
    """A failing external tool ends in one line naming its log, exit code 1, no traceback."""
    from fewmul.boards.flow import BuildError
    from fewmul.cli import count
    from fewmul.compiler.yosys import YosysError
    from fewmul.sim.runner import SimulationError
    exc = {"yosys": YosysError, "simulation": SimulationError, "build": BuildError}[error]

    def fail(args):
        raise exc("tool failed; see build/tool.log")

    monkeypatch.setattr(count, "run", fail)
    assert main(["count", "spec.yaml"]) == 1
    err = capsys.readouterr().err
    assert err == "fewmul count: tool failed; see build/tool.log\n"
