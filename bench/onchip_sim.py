"""Training steps per second of the on-chip trainer in simulation: compiled harness vs cocotb.

Compiles the on-chip training spec (``examples/digits-onchip.yaml`` unless told
otherwise; no Yosys statistics), then in the same run:

* the compiled harness (:mod:`fewmul.sim.train_fast`) trains ``--steps`` steps,
  every step checked against the golden model (digest mode, and detail mode
  with every written row compared); printed: steps/s end to end, the
  simulator's own steps/s and the replay's (golden model and checks);
* the cocotb testbench (:mod:`fewmul.sim.train_testbench`) trains
  ``--testbench-steps`` steps (its testbench time, the Verilator build excluded);
* the golden model alone steps the same ``--steps`` samples.

The goal is at least 500 checked steps/s and 50 times the cocotb testbench.

    .venv/bin/python bench/onchip_sim.py [--spec examples/digits-onchip.yaml] [--steps 3000]
        [--testbench-steps 100] [--build DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from fewmul.compiler.emit_train import compile_training
from fewmul.sim.train_fast import (DEFAULT_OPT, build_train_fast, golden_steps_per_second,
                                   simulate_training_fast)
from fewmul.sim.train_runner import simulate_training

GOAL_STEPS_PER_S = 500.0
GOAL_RATIO = 50.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=Path("examples/digits-onchip.yaml"))
    parser.add_argument("--steps", type=int, default=3000,
                        help="steps of the compiled harness and of the golden model alone")
    parser.add_argument("--testbench-steps", type=int, default=100,
                        help="steps of the cocotb testbench (0: skip it)")
    parser.add_argument("--build", type=Path, help="build folder (default: a temporary one)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="fewmul-onchip-sim-") as tmp:
        build = args.build or Path(tmp) / "build"
        t0 = time.perf_counter()
        report = compile_training(args.spec, build, synth=(), units=False)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_train_fast(build, opt=DEFAULT_OPT)
        harness_build_s = time.perf_counter() - t0
        print(f"{args.spec}: {report['net']}, {report['cycles_per_step']} cycles/step; compile "
              f"{compile_s:.1f} s, harness build (Verilator + C++) {harness_build_s:.0f} s")

        runs = {mode: simulate_training_fast(build, args.steps, mode=mode, opt=DEFAULT_OPT,
                                             eval_every=max(1, args.steps // 20))
                for mode in ("digest", "detail")}
        golden, golden_cpu = golden_steps_per_second(build, args.steps)
        testbench = None
        if args.testbench_steps > 0:
            tb = simulate_training(build, args.testbench_steps,
                                   eval_every=max(1, args.testbench_steps // 5))
            testbench = tb["steps_done"] / tb["wall_s"]

    ok = True
    for mode, r in runs.items():
        exact = (r["steps_done"] == args.steps and not r["weight_mismatch_steps"]
                 and not r["prediction_mismatch_steps"] and not r["error"])
        ok &= exact
        check = ("bit-exact at every step" if exact else
                 f"NOT bit-exact: {r['first_mismatch'] or r['error']}")
        print(f"fast harness, {mode} mode, {r['steps_done']} steps ({check}, "
              f"{r['inference_requests']} inference requests): "
              f"{r['steps_per_s']:.0f} steps/s checked end to end; Verilator alone "
              f"{r['simulator_steps_per_s']:.0f} steps/s, {r['simulator_cpu_steps_per_s']:.0f} "
              f"per CPU second ({r['cycles'] / r['simulator_cpu_s'] / 1e6:.2f} M cycles per CPU "
              f"second); golden model + checks {r['replay_steps_per_s']:.0f} steps/s, "
              f"{r['replay_cpu_steps_per_s']:.0f} per CPU second; final test accuracy "
              f"{100 * r['final_test_acc']:.1f} %")
    print(f"golden model alone: {golden:.0f} steps/s, {golden_cpu:.0f} per CPU second")
    best = runs["digest"]["steps_per_s"]
    print(f"ratio checked fast harness (digest) / golden model alone: {best / golden:.2f}")
    if testbench:
        print(f"cocotb testbench, {args.testbench_steps} steps: {testbench:.1f} steps/s")
        print(f"ratio fast harness / cocotb testbench: {best / testbench:.0f}x "
              f"(goal {GOAL_RATIO:.0f}x)")
    print(f"fast harness vs goal {GOAL_STEPS_PER_S:.0f} steps/s: {best / GOAL_STEPS_PER_S:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
