# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import Const, Fragment, Instance
from amaranth.sim import Simulator

from fewmul.gateware.registered_rom import RegisteredRom, dp16kd_initvals


class Ecp5:
    family = "ecp5"


def test_reads_take_two_clock_edges():
    words = np.random.default_rng(0).integers(0, 1 << 40, size=11).tolist()
    dut = RegisteredRom(40, 13, words)   # the last two words are 0
    addrs = [3, 7, 0, 12, 12, 5, 10, 1]

    async def testbench(ctx):
        seen = []
        for addr in addrs + [0]:
            ctx.set(dut.addr, addr)
            await ctx.tick()
            seen.append(ctx.get(dut.data))
        # after edge k (from 0), data is the word addressed before edge k - 1
        assert seen[1:] == [(words + [0, 0])[a] for a in addrs]

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
    # deeper than one block in 36-bit mode: inferred memory and a register instead
    assert _instances(Fragment.get(RegisteredRom(8, 600, []), Ecp5())) == []
    assert _instances(Fragment.get(RegisteredRom(8, 6, []), None)) == []


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
