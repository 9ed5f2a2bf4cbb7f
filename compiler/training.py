"""``fewmul train``: a spec in, a run folder out.

``RUN/`` holds ``spec.yaml`` (the resolved spec), ``model.npz`` (hidden
weights and batch-norm statistics), ``metrics.json``, ``curves.png`` and
``checkpoint.npz`` (rewritten atomically after every epoch; ``train_run(...,
resume=True)`` continues from it, from ``RUN/spec.yaml``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path


from fewmul.ir import Graph
from fewmul.ir.fold import fold
from fewmul.nn.artifacts import ArtifactError, write_atomic
from fewmul.nn.data import SHAPES, load_dataset
from fewmul.nn.model import Model
from fewmul.nn.plots import plot_curves
from fewmul.nn.train import train

from .folders import RunFolder
from .spec import NetworkSpec, dump_spec, load_spec

__all__ = ["train_run", "init_run", "load_run", "run_network"]




def train_run(spec_path: Path | None, run_dir: Path, *, epochs: int | None = None,
              progress: bool = True, resume: bool = False, data_dir: Path | None = None,
              on_epoch=None) -> dict:
    """Train the network of ``spec_path`` into ``run_dir``; return the summary.

    With ``resume`` the spec is ``run_dir/spec.yaml`` (``spec_path`` must be
    None) and training continues from ``run_dir/checkpoint.npz``. ``data_dir``
    overrides the spec's ``data.dir``; ``on_epoch`` is passed to the trainer.
    """
    run = RunFolder(run_dir)
    run_dir = run.path
    if resume:
        if spec_path is not None:
            raise ValueError("--resume continues RUN/spec.yaml: give no SPEC")
        for path in (run.spec_path, run.checkpoint_path):
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: nothing to resume in {run_dir}")
        spec = run.spec()
        if epochs is not None and epochs != spec.train.epochs:
            raise ValueError(f"--epochs {epochs} differs from the {spec.train.epochs} epochs of "
                             f"{run_dir / 'spec.yaml'}: a resumed run keeps its spec")
    else:
        if spec_path is None:
            raise ValueError("give a SPEC to train, or --resume RUN/")
        spec = load_spec(spec_path)
        if epochs is not None:
            spec.train.epochs = epochs
        if data_dir is not None:
            spec.data.dir = str(data_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(run.spec_path, dump_spec(spec))
    data = load_dataset(spec.data)

    def save_metrics(result) -> None:
        rows = [dataclasses.asdict(m) for m in result.history]
        write_atomic(run.metrics_path, json.dumps({"epochs": rows}, indent=2))

    def after_epoch(result) -> None:
        save_metrics(result)
        if on_epoch is not None:
            on_epoch(result)

    t0 = time.perf_counter()
    result = train(data, spec.layers, spec.train, progress=progress, on_epoch=after_epoch,
                   checkpoint=run.checkpoint_path, resume=resume)
    best = result.history[result.best_epoch]
    run.save_model(result.model.state())
    summary = {
        "best_epoch": best.epoch,
        "test_acc_deployed": best.test_acc,
        "test_acc_float_weights": best.test_acc_float,
        "val_acc_deployed": best.val_acc,
        "train_seconds": time.perf_counter() - t0,
    }
    try:
        net = fold(result.model, data.input_bits, spec.train)
    except ValueError as exc:      # a network the integer model does not cover (yet)
        summary.update(test_acc_integer=None, integer_vs_float_agreement=None, integer_note=str(exc))
    else:
        int_pred = net.predict(data.test.x)
        float_pred = result.model.predict(data.scale(data.test.x), spec.train)
        summary.update(test_acc_integer=float((int_pred == data.test.y).mean()),
                       integer_vs_float_agreement=float((int_pred == float_pred).mean()))
    rows = [dataclasses.asdict(m) for m in result.history]
    write_atomic(run.metrics_path, json.dumps({"summary": summary, "epochs": rows}, indent=2))
    plot_curves(result.history, run.curves_path, title=spec.name)
    return summary


def init_run(spec_path: Path, run_dir: Path, *, data_dir: Path | None = None) -> dict:
    """Write a run folder with the untrained model of ``spec_path`` (its initial weights,
    batch norm the identity), reading no data: to compile and verify the hardware of a
    network whose data set is not on this machine."""
    run = RunFolder(run_dir)
    spec = load_spec(spec_path)
    if data_dir is not None:
        spec.data.dir = str(data_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    write_atomic(run.spec_path, dump_spec(spec))
    model = Model.init(SHAPES[spec.data.set], spec.layers, spec.train.seed)
    run.save_model(model.state())
    summary = {"best_epoch": None, "untrained": True}
    write_atomic(run.metrics_path, json.dumps({"summary": summary, "epochs": []}, indent=2))
    return summary


def load_run(run_dir: Path) -> tuple[NetworkSpec, Model]:
    """The resolved spec and the trained model of a run folder."""
    run = RunFolder(run_dir)
    spec = run.spec()
    state = run.model_state()
    model = Model.init(SHAPES[spec.data.set], spec.layers, spec.train.seed)
    try:
        model.load_state(state)
    except (ValueError, KeyError) as exc:
        raise ArtifactError(f"{run.model_path}: does not match {run.spec_path} ({exc})") from None
    return spec, model


def run_network(run_dir: Path) -> tuple[NetworkSpec, Graph]:
    """The resolved spec and the network IR of a run folder: its exact ``net.npz`` where the
    run carries one (an imported network), else its trained model folded."""
    run = RunFolder(run_dir)
    if run.net_path.exists():
        return run.spec(), run.net()
    spec, model = load_run(run_dir)
    return spec, fold(model, spec.data.input_bits, spec.train)
