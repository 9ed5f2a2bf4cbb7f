"""Per-epoch checkpoints: a run killed mid-way and resumed ends bit for bit like an uninterrupted one."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fewmul.cli import main
from fewmul.compiler.training import train_run
from fewmul.nn.checkpoint import load_checkpoint

# Stochastic ternary weights, QBP and shift-based batch norm: every random draw and
# every piece of optimizer state must survive the interruption.
SPEC = textwrap.dedent("""\
    name: resume
    data: {set: digits}
    layers:
      - {units: 32, weights: ternary, act: relu}
      - {units: 10, weights: ternary, act: none}
    train:
      epochs: 4
      seed: 3
      quantize: stochastic
      qbp: true
      bn_kind: shift
      bn_recompute: 300
      optimizer: {name: adam, lr: 0.01, lr_final: 0.001, batch: 100}
    """)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run."""
    d = tmp_path_factory.mktemp("resume")
    (d / "spec.yaml").write_text(SPEC)
    train_run(d / "spec.yaml", d / "full", progress=False)
    return d


def assert_same_run(a, b):
    with np.load(a / "model.npz") as fa, np.load(b / "model.npz") as fb:
        assert sorted(fa.files) == sorted(fb.files)
        for k in fa.files:
            np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
    ha, hb = (json.loads((r / "metrics.json").read_text())["epochs"] for r in (a, b))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(ha) == strip(hb) and len(ha) == 4


def test_killed_run_resumes_bit_for_bit(reference, tmp_path):
    run = tmp_path / "run"
    # A real kill (SIGKILL, no clean-up) right after the second epoch's checkpoint.
    code = textwrap.dedent(f"""\
        import os, signal
        from fewmul.compiler.training import train_run
        def kill(result):
            if len(result.history) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        train_run({str(reference / 'spec.yaml')!r}, {str(run)!r}, progress=False, on_epoch=kill)
        """)
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert load_checkpoint(run / "checkpoint.npz").epoch == 1
    assert not (run / "model.npz").exists()
    train_run(None, run, progress=False, resume=True)
    assert_same_run(reference / "full", run)


def test_ctrl_c_keeps_the_checkpoint_and_cli_resumes(reference, tmp_path, capsys):
    run = tmp_path / "run"

    def interrupt(result):
        if len(result.history) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(reference / "spec.yaml", run, progress=False, on_epoch=interrupt)
    ck = load_checkpoint(run / "checkpoint.npz")
    assert ck.epoch == 2 and len(ck.history) == 3
    assert not list(run.glob("*.tmp*"))
    assert main(["train", "--resume", str(run), "-q"]) == 0
    assert_same_run(reference / "full", run)
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "nothing to resume" in capsys.readouterr().err
