"""``fewmul compile --train``: the on-chip training design of a spec.

The spec must describe a net the trainer supports (dense layers with binary or
ternary weights, sign hidden layers, a linear output layer, no batch norm,
squared hinge loss; the scales under ``train.onchip``). ``BUILD/`` then holds
``top.v`` (the :class:`~fewmul.gateware.training.OnChipTrainer`), ``init.npz``
(the initial hidden weights ``w1`` .. ``wL``), ``train.json`` (the trainer's
configuration, the data set, the cycles and the stream layouts for the
testbench), ``spec.yaml`` and ``report.json`` with the Yosys cell counts and
the LUT/FF cost of every unit, forward, backward and control.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from fewmul.arith.onchip import OnChipConfig
from fewmul.nn.artifacts import save_npz, write_atomic
from fewmul.nn.data import load_dataset
from fewmul.nn.onchip import OnChipNet

from .folders import BuildFolder
from .onchip_config import onchip_config
from .spec import NetworkSpec, dump_spec, load_spec
from .yosys import DSP_CELLS, ECP5_SCRIPT, cell_counts, run_stat, yosys_stat

__all__ = ["onchip_config", "compile_training", "unit_costs", "format_report"]

#: ECP5 cells reported per unit.
ECP5_CELLS = {"LUT4": "LUT4", "FF": "TRELLIS_FF", "CCU2C": "CCU2C", "LUTRAM": "TRELLIS_DPR16X4",
              "BRAM": "DP16KD", "DSP": "MULT18X18D"}


def _spec_of(source: Path) -> tuple[NetworkSpec, Path]:
    source = Path(source)
    path = source / "spec.yaml" if source.is_dir() else source
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: give a spec file or a run folder")
    return load_spec(path), path


def _layout(top) -> dict:
    """Bit offsets of the stream payloads, for the testbench."""
    sample, out = top.i.payload.shape(), top.o.payload.shape()
    wb = top.wb.payload.shape()
    return {
        "label_offset": sample["label"].offset,
        "train_offset": sample["train"].offset,
        "prediction_offset": out["prediction"].offset,
        "prediction_bits": out["prediction"].width,
        "wb_layer_offset": wb["layer"].offset, "wb_layer_bits": wb["layer"].width,
        "wb_row_offset": wb["row"].offset, "wb_row_bits": wb["row"].width,
        "wb_weights_offset": wb["weights"].offset,
        "weight_bits": top.weight_shape.width,
    }


def _ecp5_cells(build_dir: Path, verilog: str, top: str) -> dict[str, int]:
    """ECP5 cells of ``build_dir/verilog`` (flattened), by type."""
    return cell_counts(run_stat(build_dir, verilog, ECP5_SCRIPT.format(top=top),
                                f"stat_ecp5_{top}", top))


def unit_costs(build_dir: Path, trainer, top: str = "top") -> dict:
    """ECP5 cells of every unit of ``trainer`` (each synthesized alone) and of the whole design.

    Each unit of ``trainer.units`` (its forward, backward and control units) is converted to
    Verilog on its own
    (``BUILD/units/NAME.v``) and run through ``synth_ecp5``; the whole ``top.v`` is run too,
    and what the units do not account for (state machine, registers, weight memories,
    multiplexers between the units) is the unit ``top`` with role ``control``.

    Returns ``{"units": {name: {"role", "LUT4", "FF", ...}}, "roles": {role: totals},
    "total": totals}``.
    """
    from amaranth.back import verilog

    build_dir = Path(build_dir)
    unit_dir = build_dir / "units"
    unit_dir.mkdir(exist_ok=True)

    def summary(cells: dict, role: str | None = None) -> dict:
        row = {"role": role} if role else {}
        row.update({key: int(cells.get(cell, 0)) for key, cell in ECP5_CELLS.items()})
        row["multipliers"] = sum(int(n) for c, n in cells.items() if c in DSP_CELLS)
        return row

    units = {}
    for name, (unit, role) in tqdm(trainer.units.items(), desc="ecp5 per unit", unit="unit",
                                   leave=False):
        write_atomic(unit_dir / f"{name}.v", verilog.convert(unit, name=name))
        units[name] = summary(_ecp5_cells(unit_dir, f"{name}.v", name), role)
    total = summary(_ecp5_cells(build_dir, "top.v", top))
    units["top"] = {"role": "control", **{k: max(0, total[k] - sum(u[k] for u in units.values()))
                                           for k in total}}
    roles: dict[str, dict] = {}
    for row in units.values():
        acc = roles.setdefault(row["role"], {k: 0 for k in row if k != "role"})
        for k in acc:
            acc[k] += row[k]
    return {"units": units, "roles": roles, "total": total}


def compile_training(source: Path, build_dir: Path, *, synth: tuple[str, ...] = ("generic",),
                     units: bool = True, **overrides) -> dict:
    """Emit the on-chip training design of the spec ``source`` (a file or run folder)."""
    from amaranth.back import verilog

    from fewmul.gateware.training import OnChipTrainer

    t0 = time.perf_counter()
    spec, path = _spec_of(source)
    cfg = onchip_config(spec, str(path), **overrides)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    net = OnChipNet.init(cfg)
    top = OnChipTrainer(cfg, net.weights)
    write_atomic(BuildFolder(build_dir).top_v, verilog.convert(top, name="top"))
    save_npz(BuildFolder(build_dir).train_init_path,
             {f"w{index + 1}": w for index, w in enumerate(net.weights)})
    write_atomic(BuildFolder(build_dir).spec_path, dump_spec(spec))
    meta = {
        "kind": "onchip-training", "name": spec.name, "config": cfg.to_dict(),
        "data": {"set": spec.data.set, "input_bits": spec.data.input_bits, "dir": spec.data.dir},
        "order_seed": spec.train.seed, "layout": _layout(top),
        "latency": top.latency, "cycles_per_step": top.cycles_per_step,
        "inference_latency": top.inference_latency,
    }
    BuildFolder(build_dir).write_json("train.json", meta)
    compile_s = time.perf_counter() - t0
    yosys = {}
    for target in synth:
        t1 = time.perf_counter()
        yosys[target] = yosys_stat(build_dir, target=target)
        yosys[target]["seconds"] = time.perf_counter() - t1
    report = {
        "name": spec.name, "mode": "train",
        "net": " -> ".join(str(v) for v in cfg.sizes), "weights": cfg.weights,
        "batch": cfg.batch, "config": cfg.to_dict(),
        "latency_cycles": top.latency, "cycles_per_step": top.cycles_per_step,
        "inference_latency_cycles": top.inference_latency,
        "cycles_formula": "max(F + H, N + M_1) + 2, F = M_1 + ... + M_L (forward rows), "
                          "H = M_1 + ... + M_{L-1} (backward rows of the hidden layers)",
        "compile_seconds": compile_s, "yosys": yosys,
    }
    if units:
        t1 = time.perf_counter()
        report["ecp5_units"] = unit_costs(build_dir, top)
        report["ecp5_units"]["seconds"] = time.perf_counter() - t1
    BuildFolder(build_dir).write_json("report.json", report)
    return report


def format_report(report: dict, build: Path) -> str:
    """Human-readable summary of a training build's report."""
    batch = report.get("batch", 1)
    lines = [f"compiled on-chip trainer {report['net']}, {report.get('weights', 'binary')} "
             f"weights, batch {batch}: {Path(build) / 'top.v'}",
             f"{report['cycles_per_step']} cycles per training step (one sample), latency "
             f"{report['latency_cycles']}; {report['compile_seconds']:.1f} s"]
    for target, stat in report["yosys"].items():
        lines.append(f"yosys {target}: {stat['num_cells']} cells, {stat['multipliers']} multipliers"
                     + (f", {stat['cells'].get('$mul', 0)} $mul" if target == "generic" else ""))
    area = report.get("ecp5_units")
    if area:
        lines.append("ECP5 cost per unit (synth_ecp5):  LUT4    FF  CCU2C")
        for role in ("forward", "backward", "control"):
            for name, row in area["units"].items():
                if row["role"] == role:
                    lines.append(f"  {role:8s} {name:10s}          {row['LUT4']:6d} {row['FF']:5d} "
                                 f"{row['CCU2C']:6d}")
        for role, row in area["roles"].items():
            lines.append(f"  total {role:9s}                {row['LUT4']:6d} {row['FF']:5d} "
                         f"{row['CCU2C']:6d}")
        lines.append(f"  ECP5 multipliers (MULT18X18D/ALU54B): {area['total']['multipliers']}")
    return "\n".join(lines)
