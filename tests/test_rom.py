"""Weight ROMs in the emitted Verilog, and the Yosys multiplier check on it."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from fewmul.compiler.verilog import convert_with_rom_files
from fewmul.compiler.yosys import yosys_stat
from fewmul.gateware.rom import ROM_FOLDER, RomFiles, WeightRom


def random_words(width, depth, seed=0):
    rng = np.random.default_rng(seed)
    return [int.from_bytes(rng.bytes(-(-width // 8)), "little") & ((1 << width) - 1)
            for _ in range(depth)]


def test_amaranth_simulator_reads_the_memory():
    words = random_words(70, 13)
    dut = WeightRom(70, 13, words)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    got = []

    async def bench(ctx):
        for addr in [3, 0, 12, 7]:
            ctx.set(dut.addr, addr)
            ctx.set(dut.en, 1)
            await ctx.tick()
            got.append(ctx.get(dut.data))
        ctx.set(dut.addr, 5)
        ctx.set(dut.en, 0)          # disabled: the word is kept
        await ctx.tick()
        got.append(ctx.get(dut.data))

    sim.add_testbench(bench)
    sim.run()
    assert got == [words[3], words[0], words[12], words[7], words[7]]


def test_rom_files_hold_the_words_and_the_verilog_loads_them(tmp_path):
    words = random_words(37, 9, seed=1)
    text = convert_with_rom_files(WeightRom(37, 9, words), tmp_path, name="top")
    files = sorted((tmp_path / ROM_FOLDER).glob("top_rom*.hex"))
    assert [f.name for f in files] == ["top_rom0.hex"]
    assert [int(line, 16) for line in files[0].read_text().split()] == words
    assert f'$readmemh("{ROM_FOLDER}/top_rom0.hex", mem);' in text
    assert "module top_rom0(" in text
    # No initial word is written into the Verilog itself.
    assert f"{words[1]:x}" not in text
    # A second conversion into the same folder replaces the files.
    convert_with_rom_files(WeightRom(5, 2, [1, 2]), tmp_path, name="top")
    assert (tmp_path / ROM_FOLDER / "top_rom0.hex").read_text().split() == ["01", "02"]


def test_rom_files_reject_bad_words(tmp_path):
    roms = RomFiles(tmp_path)
    with pytest.raises(ValueError, match="fit in 4 bits"):
        roms.add(4, 2, [3, 16])
    with pytest.raises(ValueError, match="more than its depth"):
        roms.add(4, 1, [1, 2])
    with pytest.raises(ValueError, match="Verilog identifier"):
        RomFiles(tmp_path, prefix="a-b")


def test_yosys_generic_check_counts_a_multiplier_and_reads_rom_files(tmp_path):
    """The zero-multiplier check can fail; the ROM's file is found with the build folder as
    Yosys' working directory."""
    (tmp_path / "mul.v").write_text(
        "module top(input [3:0] a, input [3:0] b, output [7:0] y);\n"
        "  assign y = a * b;\nendmodule\n")
    assert yosys_stat(tmp_path, "mul.v")["multipliers"] == 1
    (tmp_path / "rom.v").write_text(convert_with_rom_files(WeightRom(8, 4, [1, 2, 3, 4]),
                                                           tmp_path, name="top"))
    stat = yosys_stat(tmp_path, "rom.v")
    assert stat["multipliers"] == 0 and stat["cells"].get("$meminit_v2", 0) >= 1


def test_simulator_folder_links_to_the_rom_files(tmp_path):
    """cocotb runs in BUILD/sim_build: a link there points at BUILD/rom, also after the build
    folder was copied (the link then became a directory)."""
    from fewmul.sim.runner import _link_rom_files

    (tmp_path / ROM_FOLDER).mkdir()
    (tmp_path / ROM_FOLDER / "top_rom0.hex").write_text("01\n")
    stale = tmp_path / "sim_build" / ROM_FOLDER
    stale.mkdir(parents=True)
    (stale / "top_rom0.hex").write_text("02\n")
    for _ in range(2):
        _link_rom_files(tmp_path, tmp_path / "sim_build")
        assert stale.is_symlink() and (stale / "top_rom0.hex").read_text() == "01\n"


def test_equal_popcount_trees_become_one_module(tmp_path):
    """A design's Verilog holds one module per distinct popcount tree, instanced per unit;
    the Amaranth simulator's elaboration (no platform) keeps the trees inline."""
    from amaranth.hdl import Cat, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from fewmul.gateware.popcount import Popcount

    class Trees(wiring.Component):
        i: In(12)
        o: Out(20)

        def elaborate(self, platform):
            m = Module()
            units = [Popcount(12, stages=1, style="compressor") for _ in range(3)]
            units += [Popcount(12, stages=0, style="compressor"), Popcount(7, stages=1)]
            for index, unit in enumerate(units):
                m.submodules[f"pc{index}"] = unit
                m.d.comb += [unit.i.eq(self.i), unit.en.eq(1)]
            m.d.comb += self.o.eq(Cat(*(unit.o for unit in units)))
            return m

    text = convert_with_rom_files(Trees(), tmp_path, name="top")
    modules = [line.split()[1].split("(")[0] for line in text.splitlines()
               if line.startswith("module ")]
    trees = [name for name in modules if name.startswith("top_popcount")]
    assert sorted(trees) == sorted(["top_popcount12_compressor_s1",
                                    "top_popcount12_compressor_s0", "top_popcount7_adder_s1"])
    assert text.count("top_popcount12_compressor_s1 ") == 3     # instances, not definitions
    with pytest.raises(ValueError, match="Verilog identifier"):
        RomFiles(tmp_path).shared("a-b", Popcount(2).verilog)
    with pytest.raises(TypeError, match="positive integer"):
        Popcount(0)


def test_shared_popcount_in_a_reset_less_domain(tmp_path):
    """Boards such as the ULX3S clock the design from a domain without reset: the shared
    tree's reset input is then tied low."""
    from amaranth.hdl import ClockDomain, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from fewmul.gateware.popcount import Popcount

    class Tree(wiring.Component):
        i: In(9)
        o: Out(4)

        def elaborate(self, platform):
            m = Module()
            m.domains.sync = ClockDomain(reset_less=True)
            m.submodules.pc = unit = Popcount(9, stages=2)
            m.d.comb += [unit.i.eq(self.i), unit.en.eq(1), self.o.eq(unit.o)]
            return m

    text = convert_with_rom_files(Tree(), tmp_path, name="top")
    assert "top_popcount9_adder_s2" in text
