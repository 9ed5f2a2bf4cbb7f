"""cocotb testbench: the host link's serial pins against the golden model.

Started by :func:`fewmul.boards.uart_sim.simulate_link`, which passes the
vector file in ``FEWMUL_LINK_VECTORS`` and the result path in
``FEWMUL_LINK_RESULT``. The testbench plays the host: it drives ``rx`` with
8N1 frames bit by bit (``divisor`` clock cycles per bit), keeps at most
:data:`~fewmul.boards.protocol.WINDOW` images unanswered as the host driver
does, decodes every frame on ``tx`` by sampling the middle of each bit, and
compares labels and scores with the golden model. Before the images it sends
a stray byte and a frame cut short, which the link must drop.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, FallingEdge, ReadOnly, RisingEdge

from fewmul.boards.protocol import IDLE_TIMEOUT_BITS, WINDOW, LinkFormat


async def send_byte(dut, byte: int, divisor: int) -> None:
    for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
        dut.rx.value = bit
        await ClockCycles(dut.clk, divisor)


async def recv_byte(dut, divisor: int) -> int:
    """Wait for a start bit on ``tx`` and sample the frame in the middle of each bit."""
    if int(dut.tx.value):
        await FallingEdge(dut.tx)
    await ClockCycles(dut.clk, divisor // 2)
    await ReadOnly()
    assert int(dut.tx.value) == 0, "start bit shorter than half a bit"
    byte = 0
    for i in range(8):
        await ClockCycles(dut.clk, divisor)
        await ReadOnly()
        byte |= int(dut.tx.value) << i
    await ClockCycles(dut.clk, divisor)
    await ReadOnly()
    assert int(dut.tx.value) == 1, "stop bit missing"
    await RisingEdge(dut.clk)
    return byte


@cocotb.test()
async def uart_link_matches_golden_model(dut):
    vec = json.loads(Path(os.environ["FEWMUL_LINK_VECTORS"]).read_text())
    result_path = Path(os.environ["FEWMUL_LINK_RESULT"])
    fmt = LinkFormat(**vec["format"])
    divisor = int(vec["divisor"])
    images, labels, scores = vec["inputs"], vec["labels"], vec["scores"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    answers: list[tuple[int, list[int]]] = []
    answered = Event()
    t0 = time.perf_counter()

    async def listen():
        while True:
            frame = bytes([await recv_byte(dut, divisor) for _ in range(1 + fmt.out_bytes)])
            answers.append(fmt.decode_result(frame))
            answered.set()

    async def host():
        await send_byte(dut, 0x00, divisor)                       # a stray byte: ignored
        for byte in fmt.encode_image(images[0])[:2]:              # a frame cut short: dropped
            await send_byte(dut, byte, divisor)
        await ClockCycles(dut.clk, (IDLE_TIMEOUT_BITS + 10) * divisor)
        for sent, image in enumerate(images):
            while sent - len(answers) >= WINDOW:
                answered.clear()
                await answered.wait()
            for byte in fmt.encode_image(image):
                await send_byte(dut, byte, divisor)

    cocotb.start_soon(listen())
    cocotb.start_soon(host())
    per_image = (sum(fmt.frame_bytes) * 10 * divisor) + 4 * vec["latency_cycles"]
    budget = (len(images) + 4) * per_image + 200 * divisor
    waited = 0
    while len(answers) < len(images) and waited < budget:
        await ClockCycles(dut.clk, 64)
        waited += 64
    await ClockCycles(dut.clk, 20 * divisor)                     # no extra frame may follow
    bad = {}
    for i, (label, got) in enumerate(answers[:len(images)]):
        if got != scores[i]:
            diff = [j for j, (a, b) in enumerate(zip(got, scores[i])) if a != b]
            bad[i] = (f"image {i}: score {diff[0]} is {got[diff[0]]}, golden model says "
                      f"{scores[i][diff[0]]}")
        elif label != labels[i]:
            bad[i] = f"image {i}: label {label}, golden model says {labels[i]}"
    result = {"images": len(images), "answers": len(answers), "mismatches": len(bad),
              "first_mismatch": bad[min(bad)] if bad else None, "cycles": waited,
              "wall_s": time.perf_counter() - t0,
              "error": None if len(answers) == len(images) else
              f"{len(answers)} answers to {len(images)} images after {waited} cycles"}
    result_path.write_text(json.dumps(result, indent=2))
    assert result["error"] is None, result["error"]
    assert not bad, f"{len(bad)} images differ from the golden model; first: {bad[min(bad)]}"
