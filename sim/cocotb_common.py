"""Start-up shared by the cocotb testbenches."""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

__all__ = ["start_clock_and_reset"]


async def start_clock_and_reset(dut, *, out_ready: int) -> None:
    """Start a 100 MHz clock on ``dut.clk``, idle the input stream, drive ``o.ready`` to
    ``out_ready`` and hold ``rst`` for two cycles."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i__valid.value = 0
    dut.o__ready.value = out_ready
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
