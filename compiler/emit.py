"""``fewmul compile``: a run folder in, a build folder out.

``BUILD/`` holds ``top.v``, ``net.npz`` (the folded integer network: the
golden model), ``weights/`` (packed weights and thresholds as the memories
hold them), ``manifest.json`` (stream layouts for the testbench),
``spec.yaml`` and ``report.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fewmul.nn.integer import IntegerNet, fold

from .artifacts import write_atomic
from .lower import LayerPlan, lower, plan_folding
from .spec import dump_spec
from .training import load_run

__all__ = ["compile_run"]


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
