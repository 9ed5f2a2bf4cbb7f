# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import Const, Fragment, Instance
from amaranth.sim import Simulator

from fewmul.gateware.registered_rom import (Dp16kdLayout, RegisteredRom, dp16kd_initvals,
                                            dp16kd_layout)


class Ecp5:
    family = "ecp5"


@pytest.mark.parametrize("bank_stage", [False, True])
def test_reads_take_two_clock_edges(bank_stage):
    words = np.random.default_rng(0).integers(0, 1 << 40, size=11).tolist()
    dut = RegisteredRom(40, 13, words, bank_stage=bank_stage)   # the last two words are 0
    assert dut.latency == (3 if bank_stage else 2)
    addrs = [3, 7, 0, 12, 12, 5, 10, 1]

    async def testbench(ctx):
        seen = []
        for addr in addrs + [0, 0]:
            ctx.set(dut.addr, addr)
            await ctx.tick()
            seen.append(ctx.get(dut.data))
        # after edge k (from 0), data is the word addressed before edge k - latency + 1
        assert seen[dut.latency - 1:][:len(addrs)] == [(words + [0, 0])[a] for a in addrs]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_initvals_layout():
    # word w is entries 2w (low 18 bits) and 2w + 1; 16 entries of 20 bits per parameter
    params = dp16kd_initvals([1, 1 << 18, 0, 0, 0, 0, 0, 0, (1 << 36) - 1])
    assert len(params) == 64 and all(len(c) == 320 for c in params.values())
    assert params["INITVAL_00"].value == 1 | (1 << 60)   # entries 0 and 3
    assert params["INITVAL_01"].value == ((1 << 18) - 1) | (((1 << 18) - 1) << 20)
    assert all(params[f"INITVAL_{k:02X}"].value == 0 for k in range(2, 64))
    with pytest.raises(ValueError):
        dp16kd_initvals([1 << 36])
    with pytest.raises(ValueError):
        dp16kd_initvals([0] * 513)
    # 9-bit words: two an 18-bit entry, low one first
    params = dp16kd_initvals([0x1FF, 0x001, 0x100], 9)
    assert params["INITVAL_00"].value == (0x1FF | (0x001 << 9)) | (0x100 << 20)
    assert dp16kd_initvals([5] * 1024, 18)["INITVAL_3F"].value == sum(5 << (20 * i)
                                                                       for i in range(16))
    with pytest.raises(ValueError, match="at most 2048 words of 9 bits"):
        dp16kd_initvals([1 << 9], 9)
    with pytest.raises(ValueError, match="must be one of"):
        dp16kd_initvals([1], 4)


def _instances(fragment):
    found = []
    for sub, *_ in fragment.subfragments:
        found += [sub] if isinstance(sub, Instance) else _instances(sub)
    return found


def test_ecp5_uses_block_ram_output_registers():
    words = list(range(1, 65))
    dut = RegisteredRom(70, 64, words)
    bram = _instances(Fragment.get(dut, Ecp5()))
    assert len(bram) == 2 and {i.type for i in bram} == {"DP16KD"}
    for inst in bram:
        assert inst.parameters["REGMODE_B"] == "OUTREG"
        assert inst.parameters["DATA_WIDTH_B"] == 36
    assert _instances(Fragment.get(RegisteredRom(8, 6, []), None)) == []


def test_ecp5_modes_and_banks():
    # the mode with the fewest blocks, then the fewest banks
    assert dp16kd_layout(70, 64) == Dp16kdLayout(512, 36, 2, 1)
    assert dp16kd_layout(392, 2048) == Dp16kdLayout(2048, 9, 44, 1)   # not 11 x 4 banks
    assert dp16kd_layout(512, 2048).blocks == 57                       # 36-bit: 15 x 4 = 60
    assert dp16kd_layout(30, 1024) == Dp16kdLayout(1024, 18, 2, 1)
    assert dp16kd_layout(8, 5000) == Dp16kdLayout(2048, 9, 1, 3)
    deep = RegisteredRom(8, 600, list(range(256)) * 2)
    bram = _instances(Fragment.get(deep, Ecp5()))
    assert len(bram) == 1
    (inst,) = bram
    assert inst.parameters["DATA_WIDTH_B"] == 18 and inst.parameters["REGMODE_B"] == "OUTREG"
    assert inst.parameters["INITVAL_00"].value == \
        dp16kd_initvals(range(16), 18)["INITVAL_00"].value
    # the word address sits above 4 pins of zeros in the 18-bit mode; the data is DOB
    assert all(repr(inst.ports[f"ADB{b}"][0]) == "(const 1'd0)" for b in range(4))
    assert "DOB0" in inst.ports and "DOA0" not in inst.ports
    banked = RegisteredRom(8, 5000, [(7 * a) & 0xFF for a in range(5000)])
    bram = _instances(Fragment.get(banked, Ecp5()))
    assert len(bram) == 3 and {i.parameters["DATA_WIDTH_B"] for i in bram} == {9}
    staged = RegisteredRom(8, 20000, [0] * 20000, bank_stage=True)      # 10 banks: 3 runs
    assert len(_instances(Fragment.get(staged, Ecp5()))) == 10
    from amaranth.back import rtlil
    text = rtlil.convert(staged, platform=Ecp5())
    assert all(f"run_{r}" in text for r in range(3)) and "run_3 " not in text
    assert bram[1].parameters["INITVAL_00"].value == \
        dp16kd_initvals([(7 * a) & 0xFF for a in range(2048, 2048 + 32)], 9)["INITVAL_00"].value


def test_enable_holds_the_read():
    words = list(range(100, 120))
    dut = RegisteredRom(8, 20, words)

    async def testbench(ctx):
        # addresses 3, 4, 5 with the enable low for two cycles after the first
        seen = []
        for addr, en in [(3, 1), (4, 0), (4, 0), (4, 1), (5, 1), (6, 0), (6, 0), (6, 1)]:
            ctx.set(dut.addr, addr)
            ctx.set(dut.en, en)
            await ctx.tick()
            seen.append(ctx.get(dut.data))
        # two enabled edges after an address its word is out, and stays while the enable is low
        assert seen[3:] == [words[3], words[4], words[4], words[4], words[5]]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_errors():
    with pytest.raises(TypeError):
        RegisteredRom(0, 4, [])
    with pytest.raises(TypeError):
        RegisteredRom(4, 0, [])
    with pytest.raises(ValueError, match="more than its depth"):
        RegisteredRom(4, 2, [1, 2, 3])


def test_boards_put_small_memories_in_block_ram():
    """On a board other than the ECP5 (here any platform object) the memory is a WeightRom, which
    asks Yosys for block RAM there; without a platform (simulation) it asks nothing."""
    class Board:
        pass

    m = RegisteredRom(8, 6, [1, 2]).elaborate(Board())
    rom = m.submodules.rom
    assert type(rom).__name__ == "WeightRom"
    memory = rom.elaborate(Board()).submodules.memory
    assert dict(memory.attrs) == {"rom_style": "block"}
    assert list(memory.init) == [1, 2, 0, 0, 0, 0]
    assert dict(rom.elaborate(None).submodules.memory.attrs) == {}


def test_initvals_are_the_layout_yosys_writes(tmp_path):
    """The one thing no simulation checks: the contents of the DP16KDs. Yosys maps memories of
    each mode (512 x 36, 1024 x 18, 2048 x 9) to DP16KDs; their INITVALs equal ours."""
    import json
    import random
    import subprocess

    from amaranth.back import rtlil
    from amaranth.hdl import Module, Signal, unsigned
    from amaranth.lib.memory import Memory

    from fewmul.compiler.yosys import yosys_command

    m, ports, contents = Module(), [], {}
    rng = random.Random(0)
    for depth, width in ((512, 36), (1024, 18), (2048, 9)):
        words = [rng.getrandbits(width) for _ in range(depth)]
        mem = Memory(shape=unsigned(width), depth=depth, init=words, attrs={"rom_style": "block"})
        m.submodules[f"mem_{width}"] = mem
        port = mem.read_port()
        addr, data = Signal(range(depth), name=f"addr_{width}"), Signal(width, name=f"data_{width}")
        m.d.comb += [port.addr.eq(addr), data.eq(port.data)]
        ports += [addr, data]
        contents[width] = words
    (tmp_path / "top.il").write_text(rtlil.convert(m, ports=ports))
    subprocess.run([*yosys_command(), "-q", "-p",
                    "read_rtlil top.il; synth_ecp5 -top top; write_json top.json"],
                   cwd=tmp_path, check=True, capture_output=True)
    netlist = json.loads((tmp_path / "top.json").read_text())
    blocks = [c["parameters"] for mod in netlist["modules"].values()
              for c in mod["cells"].values() if c["type"] == "DP16KD"]

    def width(params):   # Yosys reads a 36-bit word on ports A and B, a narrower one on port A
        a, b = int(params["DATA_WIDTH_A"], 2), int(params["DATA_WIDTH_B"], 2)
        return 36 if b == 36 else a

    assert sorted(width(p) for p in blocks) == [9, 18, 36]
    for params in blocks:
        ours = dp16kd_initvals(contents[width(params)], width(params))
        assert all(int(params[name], 2) == value.value for name, value in ours.items())
