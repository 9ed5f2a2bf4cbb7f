"""The fit check's SPRAM accounting: which layers go to the iCE40UP5K's SPRAM, the block RAM
they leave, and the SPRAM blocks counted as a resource of their own."""

import pytest

from fewmul.boards.families import ICE40Flow
from fewmul.boards.fit import (FitError, check_estimate, check_fit, estimated_brams,
                               estimated_sprams, pnr_utilisation_from_log, spram_layers,
                               weight_memory)
from fewmul.boards.nets import random_net
from fewmul.boards.targets import get_board
from fewmul.compiler.planner import plan_folding

#: FINN's SFC topology with 1-bit inputs.
SFC = [784, 256, 256, 256, 10]


@pytest.fixture(scope="module")
def sfc():
    net = random_net(SFC, input_bits=1, seed=0)
    return net, plan_folding(net, [1, 1, 1, 1], simd=[48, 16, 16, 16])


def test_weight_memories_of_the_sfc_layers(sfc):
    _, plans = sfc
    # 256 neurons x 17 folds of 48 inputs (784 padded to 816), then 256 x 16 folds of 16 ...
    assert [weight_memory(p) for p in plans] == [(4352, 48), (4096, 16), (4096, 16), (160, 16)]
    assert estimated_sprams(plans, [0]) == 3 and estimated_sprams(plans, [0, 1, 2]) == 5


def test_auto_puts_the_largest_weights_in_spram_until_the_rest_fits_the_block_ram(sfc):
    net, plans = sfc
    board = get_board("icebreaker")
    assert board.spram_blocks == 4
    assert estimated_brams(board, plans) > board.capacity["bram"]
    chosen = spram_layers(board, plans)
    # layer 0 (3 blocks), then layer 1 (1 block); layer 2 would need a fifth
    assert chosen == [0, 1]
    left = estimated_brams(board, plans, chosen)
    # layers 2 and 3 in 256 x 16 EBR: 16 + 1 blocks
    assert left == 17 <= board.capacity["bram"]
    check_estimate(board, net, plans, chosen)
    assert spram_layers(board, plans, "none") == []
    assert spram_layers(board, plans, "all") == [0, 1, 2, 3]
    assert spram_layers(board, plans, [2, 0, 2]) == [0, 2]
    with pytest.raises(ValueError, match="between 0 and 3, not \\[4\\]"):
        spram_layers(board, plans, [4])
    with pytest.raises(ValueError, match="SPRAM choice must be one of auto, none, all"):
        spram_layers(board, plans, "some")


def test_a_net_that_fits_the_block_ram_stays_there():
    net = random_net([64, 32, 10], input_bits=4, seed=0)
    plans = plan_folding(net, 1)
    board = get_board("icebreaker")
    assert spram_layers(board, plans) == []
    assert spram_layers(get_board("ulx3s"), plans) == []


def test_spram_is_a_resource_of_its_own(sfc):
    net, plans = sfc
    icebreaker, ulx3s = get_board("icebreaker"), get_board("ulx3s")
    with pytest.raises(FitError, match="needs 5 SPRAM blocks .* but the device has 4") as info:
        check_estimate(icebreaker, net, plans, [0, 1, 2])
    assert info.value.resource == "spram" and "layer 0: 48-bit words, 3 blocks" in str(info.value)
    with pytest.raises(FitError, match="needs 84 block RAMs") as info:
        check_estimate(icebreaker, net, plans, [])
    assert "the largest weights in the SPRAM" in str(info.value)
    assert ulx3s.spram_blocks == 0 and spram_layers(ulx3s, plans) == []
    with pytest.raises(FitError, match="has no SPRAM"):
        check_fit(ulx3s, {"spram": 3}, net, plans, stage="yosys", spram=[0])
    check_fit(icebreaker, {"spram": 4, "bram": 17}, net, plans, stage="nextpnr", spram=[0, 1])


def test_synthesized_and_placed_spram_are_counted(tmp_path):
    board = get_board("icebreaker")
    flow = ICE40Flow(board, tmp_path)
    counts = flow.count_cells({"SB_SPRAM256KA": 4, "SB_LUT4": 100, "SB_RAM40_4K": 17})
    assert (counts["spram"], counts["bram"], counts["lut"]) == (4, 17, 100)
    log = tmp_path / "top.tim"
    log.write_text("Info: Device utilisation:\n"
                   "Info: \t         ICESTORM_LC:  4800/ 5280    90%\n"
                   "Info: \t     ICESTORM_SPRAM:     4/    4   100%\n")
    assert pnr_utilisation_from_log(board, log) == {"lut": 4800, "spram": 4}


def test_ice40_cell_classes_count_spram():
    from fewmul.compiler.area import classify
    counts = classify({"SB_SPRAM256KA": 3, "SB_LUT4": 5, "SB_DFFE": 2, "SB_DFFNESR": 1,
                       "SB_RAM40_4K": 7, "SB_CARRY": 4}, "ice40")
    assert (counts["spram"], counts["lut"], counts["ff"], counts["bram"], counts["carry"]) == \
        (3, 5, 3, 7, 4)


def test_a_full_device_is_told_of_input_memories(sfc):
    """Over the logic cells at a folding whose layers latch their inputs, the advice names the
    input memories (the SFC's registers and collectors did not fit the iCE40UP5K)."""
    net, plans = sfc
    board = get_board("icebreaker")
    with pytest.raises(FitError, match=r"needs 6970 LUTs .* or, at this folding, the input "
                                       r"vectors of layers 0, 1, 2, 3 in block RAM instead of "
                                       r"registers \(--input-memory all, a block RAM each\)"):
        check_fit(board, {"lut": 6970}, net, plans, stage="synthesis")
    from fewmul.compiler.input_memory import with_input_memory
    with pytest.raises(FitError) as info:
        check_fit(board, {"lut": 6970}, net, with_input_memory(plans, [0, 1, 2, 3]),
                  stage="synthesis")
    assert "--input-memory" not in str(info.value)


@pytest.mark.slow
def test_the_sfc_fits_the_icebreaker_with_spram_weights_and_input_memories(tmp_path):
    """784-256-256-256-10 with 1-bit inputs (FINN's SFC, 334 kbit of weights) on the
    iCEBreaker: the two largest layers' weights in the four SPRAM blocks, the others in EBR,
    every layer's input in block RAM (without, its registers need 6970 logic cells of the
    5280); it places and routes, and link.json lists the weights the host sends."""
    import json

    from fewmul.boards.flow import build_design

    net = random_net(SFC, input_bits=1, seed=0)
    result = build_design(net, "icebreaker", tmp_path, pe=[1] * 4, simd=[48, 16, 16, 16],
                          pipeline="auto", progress=False, input_memory="all")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["spram_layers"] == [0, 1]
    assert report["synth_cells"]["SB_SPRAM256KA"] == 4 and report["used"]["spram"] == 4
    assert report["used"]["bram"] <= 30 and report["used"]["lut"] <= 5280
    assert report["multipliers"] == 0 and report["fmax_mhz"] > 0
    assert report["cycles_per_inference"] == 4352
    assert [layer["input_beat"] for layer in report["layers"]] == [16, 1, 1, 1]
    link = json.loads((tmp_path / "link.json").read_text())
    assert [(w["layer"], w["word_bits"], w["words"]) for w in link["weights"]] == \
        [(0, 48, 4352), (1, 16, 4096)]
    assert link["input_beats"] == 49
    assert result.bitstream_path.stat().st_size > 100_000
