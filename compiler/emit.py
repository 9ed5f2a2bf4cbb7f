"""``fewmul compile``: a run folder in, a build folder out.

``BUILD/`` holds ``top.v``, ``rom/`` (the weight memories' contents, which
``top.v`` loads with ``$readmemh``: tools must run with ``BUILD/`` as their
working directory), ``net.npz`` (the folded integer network: the golden
model), ``weights/`` (packed weights and thresholds as the memories hold
them), ``manifest.json`` (stream layouts for the testbench), ``spec.yaml`` and
``report.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from fewmul.nn.integer import IntegerNet, fold

from .artifacts import write_atomic
from .verilog import convert_and_check
from .lower import LayerPlan, lower, plan_folding
from .spec import dump_spec
from .training import load_run

__all__ = ["compile_run", "emit_build", "synthesize"]


def _write_weights(build_dir: Path, net: IntegerNet, top) -> None:
    """Packed weight words (hex, one memory word per line, as the gateware stores them)."""
    wdir = build_dir / "weights"
    wdir.mkdir(exist_ok=True)
    for index, (layer, mvu) in enumerate(zip(net.layers, top.mvus)):
        digits = (mvu.word_bits + 3) // 4
        write_atomic(wdir / f"layer{index}_weights.hex",
                     "".join(f"{word:0{digits}x}\n" for word in mvu.rows))
        params = ({"shifts": layer.shifts.tolist(), "offsets": layer.offsets.tolist()}
                  if layer.is_output else {"thresholds": layer.thresholds.tolist()})
        write_atomic(wdir / f"layer{index}_params.json", json.dumps(params))


def _choose(spec, pe, simd, target_cycles, max_luts, pipeline) -> dict:
    """Folding options: the command line's, else the spec's."""
    if pe is None:
        pe = "auto" if (target_cycles or max_luts) else spec.hardware.pe
    if max_luts is None and pe == "auto":
        target_cycles = target_cycles or spec.hardware.target_cycles
    return dict(pe=pe, simd="auto" if simd is None else simd, target_cycles=target_cycles,
                max_luts=max_luts, pipeline=pipeline or 0)


def emit_build(net: IntegerNet, plans: list[LayerPlan], build_dir: Path) -> tuple[object, dict]:
    """Lower ``net`` with ``plans`` and write ``top.v``, ``net.npz``, ``weights/`` and
    ``manifest.json`` into ``build_dir``.

    Returns
    -------
    (Network, dict)
        The gateware and the report (``layers``, ``cycles_per_inference``,
        ``latency_cycles``) without Yosys figures.
    """
    from fewmul.sim.vectors import Manifest

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    top = lower(net, plans)
    t0 = time.perf_counter()
    verilog, generic = convert_and_check(top, build_dir)
    generic["seconds"] = time.perf_counter() - t0
    write_atomic(build_dir / "top.v", verilog)
    net.save(build_dir / "net.npz")
    _write_weights(build_dir, net, top)

    layers = []
    for index, (layer, plan, mvu, act) in enumerate(zip(net.layers, plans, top.mvus, top.activations)):
        estimate = plan.estimate()
        layers.append({
            "index": index, "inputs": plan.inputs, "units": plan.units,
            "weights": layer.weight_kind, "input_kind": layer.input_kind,
            "input_bits": layer.input_bits,
            "output": "scores" if layer.is_output else
                      ("sign" if layer.output_bits == 1 else f"{layer.output_bits}-bit levels"),
            "pe": plan.pe, "simd": plan.simd, "folds": mvu.folds, "pipeline": plan.pipeline,
            "cycles": mvu.cycles_per_vector,
            "sum_bound": mvu.sum_bound, "accumulator_bits": mvu.sum_shape.width,
            "partial_bits": mvu.widths.partial_shape.width,
            "output_bits": act.score_shape.width if layer.is_output else act.out_shape.width,
            "estimated": {"lut": estimate.luts, "ff": estimate.ffs, "bram": estimate.brams},
            "synthesized": {},
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
    return top, {"layers": layers, "cycles_per_inference": top.cycles_per_inference,
                 "latency_cycles": top.latency_cycles, "yosys": {"generic": generic}}


def synthesize(build_dir: Path, report: dict, synth: tuple[str, ...], top=None) -> dict:
    """Yosys figures of ``build_dir/top.v`` per target.

    ``ecp5`` and ``xilinx`` also synthesize every layer of ``top`` (the
    :class:`~fewmul.gateware.Network`) alone and fill in its ``synthesized`` entry of
    ``report``.
    """
    from .area import SYNTH, synth_layers
    from .yosys import yosys_stat

    yosys = dict(report.get("yosys", {}))    # emit_build's generic statistics
    for target in synth:
        if target in yosys:
            continue
        t1 = time.perf_counter()
        if target in SYNTH and top is not None:
            per_layer = synth_layers(build_dir, top.layers, target)
            for entry, counts in zip(report["layers"], per_layer["layers"]):
                entry["synthesized"][target] = counts
            yosys[target] = {"target": target, "classes": per_layer["total"],
                             "cells": per_layer["cells"],
                             "num_cells": sum(per_layer["cells"].values()),
                             "multipliers": per_layer["total"]["dsp"]}
        else:
            yosys[target] = yosys_stat(build_dir, target=target)
        yosys[target]["seconds"] = time.perf_counter() - t1
    return yosys


def compile_run(run_dir: Path, build_dir: Path, *, pe=None, target_cycles: int | None = None,
                synth: tuple[str, ...] = ("generic",), simd=None, max_luts: int | None = None,
                pipeline: int | None = None) -> dict:
    """Fold, plan, lower and emit the network of ``run_dir`` into ``build_dir``; return the report."""
    t0 = time.perf_counter()
    spec, model = load_run(run_dir)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    net = fold(model, spec.data.input_bits, spec.train)
    folding = _choose(spec, pe, simd, target_cycles, max_luts, pipeline)
    plans = plan_folding(net, folding.pop("pe"), folding.pop("target_cycles"), **folding)
    top, report = emit_build(net, plans, build_dir)
    write_atomic(build_dir / "spec.yaml", dump_spec(spec))
    compile_s = time.perf_counter() - t0
    report = {"name": spec.name, **report, "compile_seconds": compile_s}
    report["yosys"] = synthesize(build_dir, report, synth, top)
    write_atomic(build_dir / "report.json", json.dumps(report, indent=2))
    return report
