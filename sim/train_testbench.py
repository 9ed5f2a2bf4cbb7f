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
from cocotb.triggers import ReadOnly, RisingEdge

from fewmul.sim.cocotb_common import start_clock_and_reset
from fewmul.sim.train_runner import TrainingBuild
from fewmul.sim.vectors import pack, unpack


class StepTimeout(Exception):
    pass


async def _one_step(dut, build: TrainingBuild, q, label: int, hw: list[np.ndarray],
                    max_cycles: int) -> tuple[int, int]:
    """Stream one sample; apply every written row to ``hw``; return (prediction, latency).

    Called, and returns, just after a rising edge (signals may be driven).
    """
    lay = build.layout
    dut.i__payload.value = pack(q, build.cfg.input_bits) | (int(label) << lay["label_offset"])
    dut.i__valid.value = 1
    accepted = None
    for cycle in range(max_cycles):
        await ReadOnly()
        if accepted is None:
            if int(dut.i__ready.value):
                accepted = cycle            # the transfer happens at the coming edge
        else:
            if int(dut.wb__valid.value):
                word = int(dut.wb__payload.value)
                layer = (word >> lay["wb_layer_offset"]) & ((1 << lay["wb_layer_bits"]) - 1)
                row = (word >> lay["wb_row_offset"]) & ((1 << lay["wb_row_bits"]) - 1)
                target = hw[layer]
                target[row] = unpack(word >> lay["wb_weights_offset"], lay["weight_bits"],
                                     target.shape[1], signed=True)
            if int(dut.o__valid.value):
                prediction = (int(dut.o__payload.value) >> lay["prediction_offset"]) & \
                    ((1 << lay["prediction_bits"]) - 1)
                await RisingEdge(dut.clk)   # o.ready is high: the result is taken here
                return prediction, cycle - accepted
        await RisingEdge(dut.clk)
        if accepted is not None:
            dut.i__valid.value = 0
    raise StepTimeout(f"no result within {max_cycles} cycles")


@cocotb.test()
async def trainer_matches_golden_model(dut):
    build = TrainingBuild.load(Path(os.environ["FEWMUL_BUILD"]))
    job = json.loads(Path(os.environ["FEWMUL_TRAIN_JOB"]).read_text())
    result_path = Path(os.environ["FEWMUL_RESULT"])
    steps, eval_every = int(job["steps"]), int(job["eval_every"])
    data = build.dataset()
    order = build.order(steps)
    golden = build.initial_net()
    hw = [golden.w1.copy(), golden.w2.copy()]
    view = build.initial_net()

    await start_clock_and_reset(dut, out_ready=1)

    def test_accuracy() -> float:
        view.w1, view.w2 = hw
        return view.accuracy(data.test.x, data.test.y)

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
            for name, mine, want in (("w1", hw[0], golden.w1), ("w2", hw[1], golden.w2)):
                if not np.array_equal(mine, want):
                    rows, cols = np.nonzero(mine != want)
                    bad.append(f"{name} differs at {len(rows)} weights, first [{rows[0]}, "
                               f"{cols[0]}]: got {mine[rows[0], cols[0]]}, expected "
                               f"{want[rows[0], cols[0]]}")
            if bad:
                result["weight_mismatch_steps"] += any(b.startswith("w") for b in bad)
                if result["first_mismatch"] is None:
                    result["first_mismatch"] = f"step {step}: " + "; ".join(bad)
                    hw = [golden.w1.copy(), golden.w2.copy()]   # resynchronise, keep counting
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
