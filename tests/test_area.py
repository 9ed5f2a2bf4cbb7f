"""Synthesized area (compiler/area.py): both targets' scripts run end to end and are counted."""

import numpy as np
import pytest
from amaranth.back import verilog

from fewmul.compiler.area import classify, synth_cells
from fewmul.gateware import MatrixVectorUnit


def small_mvu(style):
    weights = np.random.default_rng(0).integers(0, 2, size=(8, 48))
    return MatrixVectorUnit(weights, input_kind="bipolar", input_bits=1, pe=2, simd=16,
                            popcount_style=style)


@pytest.mark.parametrize("target", ["ecp5", "xilinx"])
def test_synthesis_maps_a_folded_unit_to_luts_without_multipliers(tmp_path, target):
    cells = {}
    for style in ("adder", "compressor"):
        (tmp_path / f"{style}.v").write_text(verilog.convert(small_mvu(style), name="top"))
        cells[style] = classify(synth_cells(tmp_path, f"{style}.v", target), target)
    for counts in cells.values():
        # two 16-bit popcounts, the fold multiplexer and two accumulators need LUTs; the
        # flip-flops hold at least the latched 48-bit vector and the 16-bit slice
        assert counts["lut_total"] >= 2 * 16 // 3 and counts["ff"] >= 48 + 16
        assert counts["dsp"] == 0
    # the styles are different netlists, and the counts are the mapped cells of each
    assert cells["adder"]["lut"] != cells["compressor"]["lut"]


def test_classify_adds_lut_ram_and_rejects_unknown_targets(tmp_path):
    counts = classify({"LUT4": 10, "TRELLIS_DPR16X4": 3, "CCU2C": 2, "TRELLIS_FF": 5}, "ecp5")
    assert counts == {"lut": 10, "ff": 5, "bram": 0, "lutram": 3, "carry": 2, "dsp": 0,
                      "lut_total": 16}
    with pytest.raises(ValueError, match="Synthesis target must be one of"):
        synth_cells(tmp_path, "top.v", "ice41")
