"""Argument types, result printers and tool errors shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["pe_arg", "pipeline_arg", "positive_int", "non_negative_int", "positive_float", "print_train", "print_compile",
           "print_sim", "sim_ok", "tool_errors"]


def pe_arg(text: str):
    if text == "auto":
        return "auto"
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', an integer or a comma-separated list, got {text!r}")
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"PE counts must be positive, got {text!r}")
    return values[0] if len(values) == 1 else values


def pipeline_arg(text: str):
    """``--pipeline``: 'auto' or a non-negative integer."""
    if text == "auto":
        return "auto"
    try:
        return non_negative_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a non-negative integer, got {text!r}") from None


def layer_choice(*choices: str):
    """An argument type: one of ``choices`` or a comma-separated list of layers (indices
    from 0)."""
    def parse(text: str):
        if text in choices:
            return text
        try:
            return [int(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {', '.join(choices)} or layers such as "
                                             f"0,1, not {text!r}") from None
    parse.__name__ = "layers"
    return parse


def _positive(text: str, convert, expected: str):
    try:
        value = convert(text)
    except ValueError:
        value = 0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _positive(text, int, "a positive integer")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    return _positive(text, float, "a positive number")


def print_train(summary: dict) -> None:
    print(f"deployed (binary weights) test accuracy: {100 * summary['test_acc_deployed']:.2f} %  "
          f"(epoch {summary['best_epoch'] + 1}, best validation)")
    print(f"float (hidden weights) test accuracy:    {100 * summary['test_acc_float_weights']:.2f} %")
    if summary.get("test_acc_integer") is None:
        print(f"integer golden model: not built ({summary.get('integer_note', 'unsupported network')})")
        return
    print(f"integer golden model test accuracy:      {100 * summary['test_acc_integer']:.2f} %  "
          f"(agrees with the float model on {100 * summary['integer_vs_float_agreement']:.2f} % of images)")


def _shape_text(shape) -> str:
    c, h, w = shape
    return str(c) if (h, w) == (1, 1) else f"{c}x{h}x{w}"


def print_compile(report: dict, build: Path) -> None:
    def layer_text(l):
        conv = f"conv{l['kernel']}x{l['kernel']}:" if "kernel" in l else ""
        return f"{conv}{_shape_text(l.get('out_shape', (l['units'], 1, 1)))}(pe={l['pe']})"
    first = report["layers"][0]
    source = _shape_text(first["in_shape"]) if "in_shape" in first else first["inputs"]
    layers = " -> ".join(layer_text(l) for l in report["layers"])
    print(f"compiled {source} -> {layers}: {build / 'top.v'}")
    print(f"predicted {report['cycles_per_inference']} cycles/inference, latency "
          f"{report['latency_cycles']} cycles; {report['compile_seconds']:.1f} s")
    for target, stat in report["yosys"].items():
        print(f"yosys {target}: {stat['num_cells']} cells, {stat['multipliers']} multipliers"
              + (f", {stat['cells'].get('$mul', 0)} $mul" if target == "generic" else ""))


def _rate(part: dict) -> str:
    rate = part.get("images_per_second")
    return f"{rate:,.0f} images/s" if rate else "? images/s"


def print_sim(result: dict) -> None:
    status = "OK" if sim_ok(result) else "FAIL"
    print(f"sim {status}: {result['images']} images, {result['mismatches']} mismatches, "
          f"{result.get('cycles_per_inference', float('nan')):.1f} cycles/inference measured "
          f"(predicted {result['predicted_cycles_per_inference']}), latency "
          f"{result.get('latency_cycles', '?')} cycles, {result['wall_s']:.1f} s")
    harness, bench = result.get("harness"), result.get("testbench")
    if harness:
        print(f"  compiled harness: images 0-{harness['images'] - 1}, labels and scores, "
              f"{harness['mismatches']} mismatches, {_rate(harness)} "
              f"(Verilator build {harness['build_s']:.1f} s"
              f"{'' if harness.get('optimized', True) else ', -O0 for few cycles'})")
    if bench:
        passes = "full speed and with random stalls" if bench.get("passes", 1) > 1 \
            else "full speed"
        print(f"  cocotb testbench: images 0-{bench['images'] - 1}, every layer, {passes}, "
              f"{bench['mismatches']} mismatches, {_rate(bench)}")
    if result.get("first_mismatch"):
        print(f"first mismatch: {result['first_mismatch']}")
    if result.get("error"):
        print(f"error: {result['error']}")


def sim_ok(result: dict) -> bool:
    return result["mismatches"] == 0 and not result.get("error")


def tool_errors() -> tuple[type[Exception], ...]:
    """Failures of an external tool (Yosys, nextpnr, Verilator, the serial link): reported in
    one line that names the tool's log, not as a traceback."""
    from fewmul.boards.flow import BuildError
    from fewmul.boards.host import HostLinkError
    from fewmul.compiler.yosys import YosysError
    from fewmul.sim.runner import SimulationError
    return YosysError, SimulationError, BuildError, HostLinkError
