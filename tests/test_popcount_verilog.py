"""The ``$countones`` Verilog of the adder-tree popcount against Amaranth's own tree, under
Verilator, cycle by cycle: random operands of every density, random clock enables, resets."""

import os
import subprocess

from amaranth.back import verilog

from fewmul.gateware.popcount import Popcount, adder_tree_verilog
from fewmul.sim.runner import verilator_env

#: (bits, register stages): no stages, fewer stages than levels, as many, more.
CASES = [(1, 0), (1, 2), (2, 1), (5, 2), (7, 3), (13, 1), (49, 0), (49, 2), (64, 7),
         (100, 3), (257, 2), (300, 12), (1024, 4)]
CYCLES = 400


_MAIN = """#include "Vtb.h"
#include "verilated.h"
int main(int argc, char** argv) {
    VerilatedContext context;
    context.commandArgs(argc, argv);
    Vtb tb{&context};
    while (!context.gotFinish()) { tb.clk = !tb.clk; tb.eval(); }
    return 0;
}
"""


def _testbench(cases) -> str:
    """Stimulus changes and outputs are compared on the falling clock edge."""
    lines = ["module tb(input clk);", "  reg rst = 1, en = 0;", "  reg [1023:0] x = 0, a, b;",
             "  integer cycle = 0, k, errors = 0;"]
    for index, (bits, stages) in enumerate(cases):
        lines.append(f"  wire [{bits.bit_length() - 1}:0] ref{index}, dut{index};")
        for kind in ("ref", "dut"):
            clock = ".clk(clk), .rst(rst), " if stages else ""
            lines.append(f"  {kind}{index}_tree {kind}{index}_i({clock}.en(en), "
                         f".i(x[{bits - 1}:0]), .o({kind}{index}));")
    checks = [f"    if (ref{index} !== dut{index}) begin errors = errors + 1; "
              f"$display(\"case {index} ({bits} bits, {stages} stages) cycle %0d: %0d != %0d\", "
              f"cycle, dut{index}, ref{index}); end"
              for index, (bits, stages) in enumerate(cases)]
    lines += [
        "  always @(negedge clk) begin",
        *checks,
        f"    if (cycle == {CYCLES}) begin",
        "      if (errors != 0) $display(\"FAIL: %0d mismatches\", errors);",
        "      else $display(\"PASS\");",
        "      $finish;",
        "    end",
        "    for (k = 0; k < 32; k = k + 1) begin",
        "      a[k * 32 +: 32] = $urandom; b[k * 32 +: 32] = $urandom;",
        "    end",
        # densities 0, 1/4, 1/2, 3/4, 1 and 1/8 of ones, switching every few cycles
        "    case ((cycle / 3) % 5)",
        "      0: x = 0; 1: x = a & b; 2: x = a; 3: x = a | b; default: x = ~1024'd0;",
        "    endcase",
        "    if (cycle % 7 == 3) x = a & b & ($urandom % 2 ? a : ~a);",
        "    en = ($urandom % 4) != 0;",
        "    rst = cycle < 2 || ($urandom % 97) == 0;",
        "    cycle = cycle + 1;",
        "  end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def _run(tmp_path, sources, cases) -> str:
    """Build the testbench of ``cases`` over the modules in ``sources``; its output."""
    (tmp_path / "trees.v").write_text("\n".join(sources))
    (tmp_path / "tb.v").write_text(_testbench(cases))
    (tmp_path / "main.cpp").write_text(_MAIN)
    build = subprocess.run(
        ["verilator", "--cc", "--exe", "--build", "-Wno-fatal", "-Wno-lint", "-Wno-style",
         "--top-module", "tb", "-Mdir", "obj", "-o", "tb", "tb.v", "trees.v", "main.cpp"],
        cwd=tmp_path, env={**os.environ, **verilator_env()}, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    run = subprocess.run([str(tmp_path / "obj" / "tb")], cwd=tmp_path, capture_output=True,
                         text=True)
    return run.stdout + run.stderr


def test_countones_adder_tree_matches_the_explicit_tree(tmp_path):
    sources = []
    for index, (bits, stages) in enumerate(CASES):
        sources.append(adder_tree_verilog(f"dut{index}_tree", bits, stages))
        sources.append(verilog.convert(Popcount(bits, stages=stages, style="adder"),
                                       name=f"ref{index}_tree", emit_src=False))
    output = _run(tmp_path, sources, CASES)
    assert "PASS" in output, output[-3000:]


def test_the_testbench_catches_a_wrong_tree(tmp_path):
    """A tree that misses one bit is caught: the comparison above can fail."""
    right = adder_tree_verilog("dut0_tree", 49, 2)
    wrong = right.replace("$countones(i[48:48])", "1'b0")
    assert wrong != right
    sources = [wrong, verilog.convert(Popcount(49, stages=2, style="adder"), name="ref0_tree",
                                      emit_src=False)]
    output = _run(tmp_path, sources, [(49, 2)])
    assert "FAIL" in output and "PASS" not in output, output[-3000:]
