"""The steps behind ``fewmul train`` and ``fewmul compile``, on run folders.

``RUN/`` holds what training produced: ``spec.yaml`` (the resolved spec),
``model.npz`` (hidden weights and batch-norm statistics), ``metrics.json`` and
``curves.png``. ``BUILD/`` holds what compiling produced: ``top.v``,
``net.npz`` (the folded integer network, i.e. the golden model),
``weights/`` (packed weights and thresholds), ``manifest.json`` (stream layouts
for the testbench) and ``report.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from fewmul.nn.data import load_dataset
from fewmul.nn.integer import IntegerNet, fold
from fewmul.nn.model import Model
from fewmul.nn.plots import plot_curves
from fewmul.nn.train import train

from .lower import LayerPlan, lower, plan_folding
from .spec import NetworkSpec, dump_spec, load_spec

__all__ = ["write_atomic", "train_run", "load_run", "compile_run"]


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def _save_npz(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def train_run(spec_path: Path, run_dir: Path, *, epochs: int | None = None,
              progress: bool = True) -> dict:
    """Train the network of ``spec_path`` into ``run_dir``; return the summary."""
    spec = load_spec(spec_path)
    if epochs is not None:
        spec.train.epochs = epochs
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "spec.yaml", dump_spec(spec))
    data = load_dataset(spec.data)

    def save_metrics(result) -> None:
        rows = [dataclasses.asdict(m) for m in result.history]
        write_atomic(run_dir / "metrics.json", json.dumps({"epochs": rows}, indent=2))

    t0 = time.perf_counter()
    result = train(data, spec.layers, spec.train, progress=progress, on_epoch=save_metrics)
    best = result.history[result.best_epoch]
    _save_npz(run_dir / "model.npz", result.model.state())
    net = fold(result.model, data.input_bits, spec.train)
    int_pred = net.predict(data.test.x)
    float_pred = result.model.predict(data.scale(data.test.x), spec.train)
    summary = {
        "best_epoch": best.epoch,
        "test_acc_deployed": best.test_acc,
        "test_acc_float_weights": best.test_acc_float,
        "val_acc_deployed": best.val_acc,
        "test_acc_integer": float((int_pred == data.test.y).mean()),
        "integer_vs_float_agreement": float((int_pred == float_pred).mean()),
        "train_seconds": time.perf_counter() - t0,
    }
    rows = [dataclasses.asdict(m) for m in result.history]
    write_atomic(run_dir / "metrics.json", json.dumps({"summary": summary, "epochs": rows}, indent=2))
    plot_curves(result.history, run_dir / "curves.png", title=spec.name)
    return summary


def load_run(run_dir: Path) -> tuple[NetworkSpec, Model]:
    """The resolved spec and the trained model of a run folder."""
    run_dir = Path(run_dir)
    for name in ("spec.yaml", "model.npz"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir / name} is missing: is {run_dir} a 'fewmul train' output?")
    spec = load_spec(run_dir / "spec.yaml")
    data_inputs = load_dataset(spec.data).inputs
    model = Model.init(data_inputs, spec.layers, spec.train.seed)
    with np.load(run_dir / "model.npz") as f:
        model.load_state(dict(f))
    return spec, model


def _write_weights(build_dir: Path, net: IntegerNet, plans: list[LayerPlan]) -> None:
    """Packed weight rows (hex, one memory word per line, as the gateware stores them)."""
    wdir = build_dir / "weights"
    wdir.mkdir(exist_ok=True)
    for index, (layer, plan) in enumerate(zip(net.layers, plans)):
        lines = []
        for g in range(plan.units // plan.pe):
            word = 0
            for p in range(plan.pe):
                row = layer.weights[g * plan.pe + p]
                word |= int("".join(str(int(b)) for b in row[::-1]), 2) << (p * plan.inputs)
            lines.append(f"{word:0{(plan.pe * plan.inputs + 3) // 4}x}")
        write_atomic(wdir / f"layer{index}_weights.hex", "\n".join(lines) + "\n")
        params = ({"shifts": layer.shifts.tolist(), "offsets": layer.offsets.tolist()}
                  if layer.is_output else {"thresholds": layer.thresholds.tolist()})
        write_atomic(wdir / f"layer{index}_params.json", json.dumps(params))


def compile_run(run_dir: Path, build_dir: Path, *, pe=None, target_cycles: int | None = None,
                synth: tuple[str, ...] = ("generic",)) -> dict:
    """Fold, plan, lower and emit the network of ``run_dir`` into ``build_dir``; return the report."""
    from amaranth.back import verilog

    from fewmul.sim.vectors import Manifest
    from .yosys import yosys_stat

    t0 = time.perf_counter()
    spec, model = load_run(run_dir)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    net = fold(model, spec.data.input_bits, spec.train)
    plans = plan_folding(net, spec.hardware.pe if pe is None else pe,
                         target_cycles or spec.hardware.target_cycles)
    top = lower(net, plans)
    write_atomic(build_dir / "top.v", verilog.convert(top, name="top"))
    net.save(build_dir / "net.npz")
    write_atomic(build_dir / "spec.yaml", dump_spec(spec))
    _write_weights(build_dir, net, plans)

    layers = []
    for index, (layer, plan, mvu, act) in enumerate(zip(net.layers, plans, top.mvus, top.activations)):
        layers.append({
            "index": index, "inputs": plan.inputs, "units": plan.units,
            "weights": "binary", "input_kind": layer.input_kind, "input_bits": layer.input_bits,
            "output": "scores" if layer.is_output else "sign",
            "pe": plan.pe, "cycles": mvu.cycles_per_vector,
            "sum_bound": mvu.sum_bound, "accumulator_bits": mvu.sum_shape.width,
            "output_bits": act.score_shape.width if layer.is_output else 1,
            "probe": f"layer{index}_collect",
        })
    out_layout = top.o.payload.shape()
    manifest = Manifest(
        top="top", input_count=plans[0].inputs, input_bits=net.layers[0].input_bits,
        layers=[{"name": f"layer{l['index']}", "units": l["units"], "element_bits": l["output_bits"],
                 "signed": l["output"] == "scores", "probe": l["probe"]} for l in layers],
        label_offset=out_layout["label"].offset, label_bits=out_layout["label"].width,
        scores_offset=out_layout["scores"].offset,
        cycles_per_inference=top.cycles_per_inference, latency_cycles=top.latency_cycles)
    write_atomic(build_dir / "manifest.json", manifest.to_json())
    compile_s = time.perf_counter() - t0
    yosys = {}
    for target in synth:
        t1 = time.perf_counter()
        yosys[target] = yosys_stat(build_dir, target=target)
        yosys[target]["seconds"] = time.perf_counter() - t1
    report = {
        "name": spec.name, "layers": layers,
        "cycles_per_inference": top.cycles_per_inference,
        "latency_cycles": top.latency_cycles,
        "compile_seconds": compile_s, "yosys": yosys,
    }
    write_atomic(build_dir / "report.json", json.dumps(report, indent=2))
    return report
