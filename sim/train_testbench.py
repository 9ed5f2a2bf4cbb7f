"""cocotb testbench of the on-chip trainer: train for N steps, bit-exact at every step.

Started by :func:`fewmul.sim.train_runner.simulate_training`, which passes the
build folder and a job file in environment variables. The testbench streams
the training samples into the design one step at a time (the output always
ready), follows every weight row the design writes on its ``wb`` debug port
into a copy of the on-chip weights, and after every step compares that copy
and the design's prediction with the integer golden model
(:class:`fewmul.nn.onchip.OnChipNet`), which it runs in lock-step. Every
``eval_every`` steps it records the test accuracy of the on-chip weights.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from fewmul.sim.cocotb_common import start_clock_and_reset
from fewmul.sim.train_runner import TrainingBuild
from fewmul.sim.vectors import pack


class StepTimeout(Exception):
    pass


#: Clock period of :func:`start_clock_and_reset`, in ns.
PERIOD_NS = 10


def _signed_row(word: int, bits: int, count: int) -> np.ndarray:
    """``count`` two's-complement fields of ``bits`` bits of ``word``, field 0 lowest
    (:func:`fewmul.sim.vectors.unpack`, vectorized)."""
    word &= (1 << (count * bits)) - 1
    raw = np.frombuffer(word.to_bytes((count * bits + 7) // 8, "little"), np.uint8)
    fields = np.unpackbits(raw, bitorder="little")[:count * bits].reshape(count, bits)
    values = fields.astype(np.int64) @ (np.int64(1) << np.arange(bits, dtype=np.int64))
    return np.where(values >> (bits - 1) > 0, values - (1 << bits), values)


async def _one_step(dut, build: TrainingBuild, q, label: int, hw: list[np.ndarray],
                    max_cycles: int) -> tuple[int, int]:
    """Stream one training sample; apply every written row to ``hw``; return
    (prediction, latency in cycles).

    Called, and returns, just after a rising edge (signals may be driven). The design is
    read in every cycle in which it writes a weight row (``wb.valid``); between those runs of
    writes the testbench waits for ``wb.valid`` or ``o.valid`` to rise, so the cycles of the
    forward pass cost no Python.
    """
    lay = build.layout
    dut.i__payload.value = (pack(q, build.cfg.input_bits) | (int(label) << lay["label_offset"])
                            | (1 << lay["train_offset"]))
    dut.i__valid.value = 1
    start = get_sim_time("ns")
    await ReadOnly()
    while not int(dut.i__ready.value):
        if get_sim_time("ns") - start > max_cycles * PERIOD_NS:
            raise StepTimeout(f"sample not accepted within {max_cycles} cycles")
        await RisingEdge(dut.clk)
        await ReadOnly()
    accepted = get_sim_time("ns")            # the transfer happens at the coming edge
    await RisingEdge(dut.clk)
    dut.i__valid.value = 0
    layer_mask = (1 << lay["wb_layer_bits"]) - 1
    row_mask = (1 << lay["wb_row_bits"]) - 1
    while True:
        await ReadOnly()
        now = get_sim_time("ns")
        if int(dut.o__valid.value):
            prediction = (int(dut.o__payload.value) >> lay["prediction_offset"]) & \
                ((1 << lay["prediction_bits"]) - 1)
            await RisingEdge(dut.clk)       # o.ready is high: the result is taken here
            return prediction, round((now - accepted) / PERIOD_NS)
        if now - accepted > max_cycles * PERIOD_NS:
            raise StepTimeout(f"no result within {max_cycles} cycles")
        if int(dut.wb__valid.value):
            word = int(dut.wb__payload.value)
            layer = (word >> lay["wb_layer_offset"]) & layer_mask
            row = (word >> lay["wb_row_offset"]) & row_mask
            if layer >= len(hw) or row >= hw[layer].shape[0]:
                raise StepTimeout(f"the design wrote row {row} of layer {layer}, which does "
                                  f"not exist")
            target = hw[layer]
            target[row] = _signed_row(word >> lay["wb_weights_offset"], lay["weight_bits"],
                                      target.shape[1])
            await RisingEdge(dut.clk)
        else:
            await First(RisingEdge(dut.wb__valid), RisingEdge(dut.o__valid),
                        Timer(max_cycles * PERIOD_NS, unit="ns"))


@cocotb.test()
async def trainer_matches_golden_model(dut):
    build = TrainingBuild.load(Path(os.environ["FEWMUL_BUILD"]))
    job = json.loads(Path(os.environ["FEWMUL_TRAIN_JOB"]).read_text())
    result_path = Path(os.environ["FEWMUL_RESULT"])
    steps, eval_every = int(job["steps"]), int(job["eval_every"])
    data = build.dataset()
    order = build.order(steps)
    golden = build.initial_net()
    hw = [w.copy() for w in golden.weights]

    await start_clock_and_reset(dut, out_ready=1)
    dut.rd_req__valid.value = 0
    dut.rd__ready.value = 0

    def test_accuracy() -> float:
        return build.net_with(hw).accuracy(data.test.x, data.test.y)

    result = {"steps": steps, "steps_done": 0, "weight_mismatch_steps": 0,
              "prediction_mismatch_steps": 0, "first_mismatch": None, "error": None,
              "curve": [{"step": 0, "test_acc": test_accuracy(), "online_acc": None}]}
    t0 = time.perf_counter()
    correct = 0
    cycles = []
    try:
        for step, index in enumerate(order, 1):
            q, label = data.train.x[index], int(data.train.y[index])
            prediction, latency = await _one_step(dut, build, q, label, hw,
                                                  max_cycles=4 * build.latency + 100)
            cycles.append(latency)
            trace = golden.step(q, label)
            correct += prediction == label
            bad = []
            if prediction != trace.prediction:
                result["prediction_mismatch_steps"] += 1
                bad.append(f"prediction {prediction}, golden model says {trace.prediction}")
            for layer, (mine, want) in enumerate(zip(hw, golden.weights)):
                name = f"w{layer + 1}"
                if not np.array_equal(mine, want):
                    rows, cols = np.nonzero(mine != want)
                    bad.append(f"{name} differs at {len(rows)} weights, first [{rows[0]}, "
                               f"{cols[0]}]: got {mine[rows[0], cols[0]]}, expected "
                               f"{want[rows[0], cols[0]]}")
            if bad:
                result["weight_mismatch_steps"] += any(b.startswith("w") for b in bad)
                if result["first_mismatch"] is None:
                    result["first_mismatch"] = f"step {step}: " + "; ".join(bad)
                    hw = [w.copy() for w in golden.weights]   # resynchronise, keep counting
            result["steps_done"] = step
            if step % eval_every == 0 or step == steps:
                result["curve"].append({"step": step, "test_acc": test_accuracy(),
                                        "online_acc": correct / step})
    except StepTimeout as exc:
        result["error"] = f"step {result['steps_done'] + 1}: {exc}"
    finally:
        result["wall_s"] = time.perf_counter() - t0
        result["latency_cycles"] = max(cycles) if cycles else None
        result["online_acc"] = correct / max(result["steps_done"], 1)
        result["final_test_acc"] = result["curve"][-1]["test_acc"]
        result_path.write_text(json.dumps(result, indent=2))
    assert result["error"] is None, result["error"]
    assert result["first_mismatch"] is None, result["first_mismatch"]
