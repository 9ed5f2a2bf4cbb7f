"""cocotb testbench: stream images through an emitted network and compare
every layer's output, the scores and the label with the integer golden model.

It is started by :func:`fewmul.sim.runner.simulate`, which passes the build
folder and the vector file in environment variables. One coroutine does
everything in lock-step with the clock: it drives the input stream (with
random idle cycles), the output ``ready`` (with random back-pressure), watches
every layer's output handshake through the hierarchy, and checks the stream
protocol (payload stable while ``valid`` and not ``ready``).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from fewmul.compiler.folders import BuildFolder
from fewmul.sim.cocotb_common import start_clock_and_reset
from fewmul.sim.vectors import pack, unpack


class Mismatch(Exception):
    pass


def _probe(dut, path: str):
    obj = dut
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


async def _run_pass(dut, man, inputs, expected, bad: dict[int, str], *, stall: float,
                    rng: random.Random, max_cycles: int) -> dict:
    """Stream all ``inputs``; return the measured cycle counts.

    A value that differs from the golden model is recorded in ``bad`` (image ->
    first message) and the run goes on; a protocol violation or a timeout raises.
    """
    n = len(inputs)
    count, beats = man.input_count, man.input_beats
    words = [pack(x[b * count:(b + 1) * count], man.input_bits) for x in inputs
             for b in range(beats)]
    probes = [(L, _probe(dut, p["probe"])) for L, p in enumerate(man.layers)]
    seen = [0] * len(man.layers)       # output vectors observed per layer
    sent = received = 0
    held = {}                          # protocol check: payload while valid & ~ready
    in_times, out_times = [], []
    drive_valid = False
    for cycle in range(max_cycles):
        await RisingEdge(dut.clk)
        if not drive_valid and sent < len(words) and rng.random() >= stall:
            drive_valid = True
            dut.i__payload.value = words[sent]
        dut.i__valid.value = int(drive_valid)
        dut.o__ready.value = int(rng.random() >= stall)
        await ReadOnly()
        for L, p in probes:
            valid = int(p.o__valid.value)
            if not valid:     # payloads (wide) are only read when offered
                if L in held:
                    raise Mismatch(f"layer {L}: valid dropped while not ready at cycle {cycle}")
                continue
            ready = int(p.o__ready.value)
            payload = int(p.o__payload.value)
            if L in held and held[L] != payload:
                raise Mismatch(f"layer {L}: payload changed while valid and not ready at cycle {cycle}")
            held.pop(L, None)
            if not ready:
                held[L] = payload
            if valid and ready:
                spec = man.layers[L]
                units, vectors = spec["units"], spec.get("vectors", 1)
                got = unpack(payload, spec["element_bits"], units, spec["signed"])
                i, v = divmod(seen[L], vectors)
                if i >= n:
                    raise Mismatch(f"layer {L}: more outputs than images at cycle {cycle}")
                want = expected[i][L][v * units:(v + 1) * units]
                if got != want:
                    diff = [j for j, (a, b) in enumerate(zip(got, want)) if a != b]
                    where = f"vector {v}, " if vectors > 1 else ""
                    bad.setdefault(i, f"image {i}: layer {L} differs from the golden model at "
                                      f"{len(diff)} outputs, first {where}element {diff[0]}: "
                                      f"got {got[diff[0]]}, expected {want[diff[0]]}")
                seen[L] += 1
        if drive_valid and int(dut.i__ready.value):
            in_times.append(cycle)
            sent += 1
            drive_valid = False
        if int(dut.o__valid.value) and int(dut.o__ready.value):
            word = int(dut.o__payload.value)
            label = (word >> man.label_offset) & ((1 << man.label_bits) - 1)
            want = int(np.argmax(expected[received][-1]))
            if label != want:
                bad.setdefault(received, f"image {received}: label {label}, golden model says {want}")
            out_times.append(cycle)
            received += 1
            if received == n:
                break
    else:
        raise Mismatch(f"timeout: {received} of {n} results after {max_cycles} cycles "
                       f"(layer outputs seen: {seen})")
    steady = (out_times[-1] - out_times[0]) / (n - 1) if n > 1 else float("nan")
    return {"latency": out_times[0] - in_times[0], "interval": steady, "cycles": cycle + 1}


@cocotb.test()
async def network_matches_golden_model(dut):
    build = Path(os.environ["FEWMUL_BUILD"])
    vec = json.loads(Path(os.environ["FEWMUL_VECTORS"]).read_text())
    result_path = Path(os.environ["FEWMUL_RESULT"])
    man = BuildFolder(build).manifest()
    inputs, expected = vec["inputs"], vec["expected"]
    stall = float(vec.get("stall", 0.0))
    rng = random.Random(int(vec.get("seed", 0)))
    await start_clock_and_reset(dut, out_ready=0)
    t0 = time.perf_counter()
    budget = (man.latency_cycles + len(inputs) * man.cycles_per_inference) * 4 + 1000
    result = {"images": len(inputs), "mismatches": 0, "first_mismatch": None, "error": None}
    bad: dict[int, str] = {}
    try:
        # Pass 1: no stalls, to measure the throughput and latency.
        clean = await _run_pass(dut, man, inputs, expected, bad, stall=0.0, rng=rng,
                                max_cycles=budget)
        result.update(cycles_per_inference=clean["interval"], latency_cycles=clean["latency"])
        if stall > 0:
            # Pass 2: the same images (or the first `stall_images`) with random idle cycles and
            # back-pressure.
            count = int(vec.get("stall_images") or len(inputs))
            stalled = await _run_pass(dut, man, inputs[:count], expected[:count], bad,
                                      stall=stall, rng=rng, max_cycles=budget * 4)
            result["stalled_cycles"] = stalled["cycles"]
    except Mismatch as exc:
        result["error"] = str(exc)
        raise AssertionError(str(exc)) from None
    finally:
        result["wall_s"] = time.perf_counter() - t0
        result["mismatches"] = len(bad)
        result["first_mismatch"] = bad[min(bad)] if bad else None
        result["mismatched_images"] = sorted(bad)
        result_path.write_text(json.dumps(result, indent=2))
    assert not bad, f"{len(bad)} images differ from the golden model; first: {bad[min(bad)]}"
