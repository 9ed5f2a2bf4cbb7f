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

from fewmul.ir import Graph
from fewmul.nn.artifacts import write_atomic

from .folders import BUILD_FORMAT, BuildFolder, Manifest
from .input_memory import memory_layers, with_input_memory
from .lower import LayerPlan, lower, plan_folding, probes, unit_name
from .spec import dump_spec
from .training import run_network
from .verilog import convert_and_check

__all__ = ["compile_run", "emit_build", "synthesize"]


def _write_weights(build: BuildFolder, plans: list[LayerPlan], top) -> None:
    """Packed weight words (hex, one memory word per line, as the gateware stores them) and
    each layer's activation constants."""
    build.weights_dir.mkdir(exist_ok=True)
    for plan in plans:
        layer = plan.layer
        mvu = top.stages[unit_name(layer, layer.head.binding.role)]
        digits = (mvu.word_bits + 3) // 4
        write_atomic(build.weights_dir / f"{layer.name}_weights.hex",
                     "".join(f"{word:0{digits}x}\n" for word in mvu.rows))
        params = {key: value.tolist() for op in layer.ops[1:]
                  for key, value in op.arrays().items()}
        write_atomic(build.weights_dir / f"{layer.name}_params.json", json.dumps(params))


def _choose(spec, pe, simd, target_cycles, max_luts, pipeline) -> dict:
    """Folding options: the command line's, else the spec's."""
    if pe is None:
        pe = "auto" if (target_cycles or max_luts) else spec.hardware.pe
    if max_luts is None and pe == "auto":
        target_cycles = target_cycles or spec.hardware.target_cycles
    return dict(pe=pe, simd="auto" if simd is None else simd, target_cycles=target_cycles,
                max_luts=max_luts, pipeline=pipeline or 0)


def _layer_report(plan: LayerPlan, top, probe) -> dict:
    """A layer's record in ``report.json``: what each op's binding reports, then the area
    estimate and the probe."""
    entry = {"index": plan.layer.index, "in_shape": list(plan.layer.in_type.shape),
             "out_shape": list(plan.layer.out_type.shape)}
    for op in plan.layer.ops:
        unit = top.stages[unit_name(plan.layer, op.binding.role)]
        entry.update(op.binding.report(plan.folding, unit))
    entry["cycles"] = plan.cycles       # per image (the matrix-vector unit's are per vector)
    estimate = plan.estimate()
    entry["estimated"] = {"lut": estimate.luts, "ff": estimate.ffs, "bram": estimate.brams}
    entry["synthesized"] = {}
    entry["probe"] = probe.path
    return entry


def emit_build(net: Graph, plans: list[LayerPlan], build_dir: Path) -> tuple[object, dict]:
    """Lower ``net`` with ``plans`` and write ``top.v``, ``net.npz``, ``weights/`` and
    ``manifest.json`` into ``build_dir``.

    Returns
    -------
    (Network, dict)
        The gateware and the report (``layers``, ``cycles_per_inference``,
        ``latency_cycles``) without Yosys figures.
    """
    build = BuildFolder(build_dir).create()
    # the manifest (written last) and the report mark a complete build: an interrupted one has
    # neither, rather than those of the build it replaces
    for path in (build.manifest_path, build.report_path, build.sim_path):
        path.unlink(missing_ok=True)
    top = lower(net, plans)
    t0 = time.perf_counter()
    verilog, generic = convert_and_check(top, build.path)
    generic["seconds"] = time.perf_counter() - t0
    write_atomic(build.top_v, verilog)
    build.save_net(net)
    _write_weights(build, plans, top)

    layer_probes = probes(net, plans)
    layers = [_layer_report(plan, top, probe) for plan, probe in zip(plans, layer_probes)]
    out_layout = top.o.payload.shape()
    build.save_manifest(Manifest(
        top="top", input_count=net.in_type.size // top.input_beats, input_bits=net.input_bits,
        input_beats=top.input_beats,
        layers=[{"name": p.name, "units": p.units, "element_bits": p.element_bits,
                 "signed": p.signed, "probe": p.path, "vectors": p.vectors}
                for p in layer_probes],
        label_offset=out_layout["label"].offset, label_bits=out_layout["label"].width,
        scores_offset=out_layout["scores"].offset,
        cycles_per_inference=top.cycles_per_inference, latency_cycles=top.latency_cycles,
        format=BUILD_FORMAT))
    return top, {"layers": layers, "cycles_per_inference": top.cycles_per_inference,
                 "latency_cycles": top.latency_cycles, "yosys": {"generic": generic}}


def synthesize(build_dir: Path, report: dict, synth: tuple[str, ...], top=None,
               plans: list[LayerPlan] | None = None) -> dict:
    """Yosys figures of ``build_dir/top.v`` per target.

    ``ecp5`` and ``xilinx`` also synthesize every layer of ``plans`` alone (given ``top``, the
    :class:`~fewmul.gateware.Network`) and fill in its ``synthesized`` entry of ``report``.
    """
    from .area import SYNTH, synth_layers
    from .yosys import yosys_stat

    yosys = dict(report.get("yosys", {}))    # emit_build's generic statistics
    for target in synth:
        if target in yosys:
            continue
        t1 = time.perf_counter()
        if target in SYNTH and top is not None and plans is not None:
            per_layer = synth_layers(build_dir, plans, target)
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
                pipeline: int | None = None, input_memory="none") -> dict:
    """Fold, plan, lower and emit the network of ``run_dir`` into ``build_dir``; return the
    report. ``input_memory`` chooses the layers that take their input into block RAM (see
    :func:`~fewmul.compiler.input_memory.memory_layers`)."""
    t0 = time.perf_counter()
    spec, net = run_network(run_dir)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    folding = _choose(spec, pe, simd, target_cycles, max_luts, pipeline)
    plans = plan_folding(net, folding.pop("pe"), folding.pop("target_cycles"), **folding)
    plans = with_input_memory(plans, memory_layers(plans, input_memory))
    top, report = emit_build(net, plans, build_dir)
    write_atomic(BuildFolder(build_dir).spec_path, dump_spec(spec))
    compile_s = time.perf_counter() - t0
    report = {"name": spec.name, **report, "compile_seconds": compile_s}
    report["yosys"] = synthesize(build_dir, report, synth, top, plans)
    BuildFolder(build_dir).write_json("report.json", report)
    return report
