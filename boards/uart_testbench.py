"""cocotb testbench: the host link's serial pins against the golden model.

Started by :func:`fewmul.boards.uart_sim.simulate_link`, which passes the
vector file in ``FEWMUL_LINK_VECTORS`` and the result path in
``FEWMUL_LINK_RESULT``. The testbench plays the host: it drives ``rx`` with
8N1 frames bit by bit (``divisor`` clock cycles per bit), keeps at most the
link's ``window`` images unanswered as the host driver does (sending the frames
back to back), decodes every frame on ``tx`` by sampling the middle of each bit, and
compares labels and scores with the golden model. It first loads the weight memories
written at run time (``weight_frames`` in the vectors), waiting for each frame's
acknowledgement and checking its check byte. Before the images it sends
a stray byte and a frame cut short, which the link must drop. With a bench
(``"bench": true`` in the vectors) it then sends the bench command and decodes
the report frame into ``bench``. It records the
cycle each answer ended, from which the images per second the link carries
follow (``link_cycles_per_image``, between the first and the last answer).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, FallingEdge, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from fewmul.boards.protocol import (BENCH_COMMAND, BENCH_REPORT_BYTES, IDLE_TIMEOUT_BITS,
                                   WEIGHT_ACK, BenchReport, LinkFormat, weight_frame_check)

PERIOD_NS = 10


def cycle() -> int:
    return int(get_sim_time(unit="ns")) // PERIOD_NS


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


async def recv_two(dut, divisor: int) -> list[int]:
    return [await recv_byte(dut, divisor) for _ in range(2)]


@cocotb.test()
async def uart_link_matches_golden_model(dut):
    vec = json.loads(Path(os.environ["FEWMUL_LINK_VECTORS"]).read_text())
    result_path = Path(os.environ["FEWMUL_LINK_RESULT"])
    fmt = LinkFormat(**vec["format"])
    divisor = int(vec["divisor"])
    images, labels, scores = vec["inputs"], vec["labels"], vec["scores"]
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    acks = []
    for frame in vec.get("weight_frames", []):     # the weights first, each acknowledged
        ack = cocotb.start_soon(recv_two(dut, divisor))
        for byte in frame:
            await send_byte(dut, byte, divisor)
        acks.append(await ack)
        assert acks[-1] == [WEIGHT_ACK, weight_frame_check(bytes(frame))], \
            f"weight frame {len(acks) - 1} acknowledged with {bytes(acks[-1]).hex()}"

    answers: list[tuple[int, list[int]]] = []
    answer_cycles: list[int] = []
    first_sent = []
    answered = Event()
    t0 = time.perf_counter()

    report = []

    async def listen():
        while len(answers) < len(images):
            frame = bytes([await recv_byte(dut, divisor) for _ in range(1 + fmt.out_bytes)])
            answers.append(fmt.decode_result(frame))
            answer_cycles.append(cycle())
            answered.set()
        if vec.get("bench"):
            frame = bytes([await recv_byte(dut, divisor) for _ in range(1 + BENCH_REPORT_BYTES)])
            report.append(BenchReport.decode(frame))
        while True:                                   # nothing more may come
            frame = bytes([await recv_byte(dut, divisor)])
            answers.append((-1, [frame[0]]))

    async def host():
        await send_byte(dut, 0x00, divisor)                       # a stray byte: ignored
        for byte in fmt.encode_image(images[0])[:2]:              # a frame cut short: dropped
            await send_byte(dut, byte, divisor)
        await ClockCycles(dut.clk, (IDLE_TIMEOUT_BITS + 10) * divisor)
        first_sent.append(cycle())
        for sent, image in enumerate(images):
            while sent - len(answers) >= fmt.window:
                answered.clear()
                await answered.wait()
            for byte in fmt.encode_image(image):
                await send_byte(dut, byte, divisor)
        if vec.get("bench"):
            while len(answers) < len(images):
                answered.clear()
                await answered.wait()
            await send_byte(dut, BENCH_COMMAND, divisor)

    cocotb.start_soon(listen())
    cocotb.start_soon(host())
    per_image = (sum(fmt.frame_bytes) * 10 * divisor) + 4 * vec["latency_cycles"]
    budget = (len(images) + 4) * per_image + 200 * divisor
    if vec.get("bench"):
        budget += 2 * len(vec["inputs"]) * (fmt.in_bytes + 2 + vec["latency_cycles"]) \
            + 30 * divisor * (BENCH_REPORT_BYTES + 1)
    waited = 0
    while (len(answers) < len(images) or (vec.get("bench") and not report)) and waited < budget:
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
    n = len(answer_cycles)
    result = {"images": len(images), "answers": len(answers), "mismatches": len(bad),
              "first_mismatch": bad[min(bad)] if bad else None, "cycles": waited,
              "window": fmt.window,
              "first_sent_cycle": first_sent[0] if first_sent else None,
              "answer_cycles": answer_cycles,
              "link_cycles_per_image": (answer_cycles[-1] - answer_cycles[0]) / (n - 1)
              if n > 1 else None,
              "line_cycles_per_image": 10 * divisor * max(fmt.frame_bytes),
              "bench": report[0].__dict__ if report else None,
              "weight_frames": len(acks),
              "wall_s": time.perf_counter() - t0,
              "error": None if len(answers) == len(images) and (report or not vec.get("bench"))
              else f"{len(answers)} answers to {len(images)} images"
              + (", no bench report" if vec.get("bench") and not report else "")
              + f" after {waited} cycles"}
    result_path.write_text(json.dumps(result, indent=2))
    assert result["error"] is None, result["error"]
    assert not bad, f"{len(bad)} images differ from the golden model; first: {bad[min(bad)]}"
