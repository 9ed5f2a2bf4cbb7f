"""On-chip training at full Verilator speed, checked against the golden model after every step.

The cocotb testbench (:mod:`fewmul.sim.train_testbench`) runs Python every clock
cycle. This module generates a C++ harness for a training build instead
(``top.v``, ``train.json``, ``init.npz``): it streams the sample payloads into
the design's ``i`` port whenever it is ready, keeps ``o`` ready, follows every
row the design writes on its ``wb`` debug port into its own copy of the
on-chip weights, and sends its records to Python through a pipe while it runs:

* ``"digest"`` mode (the default): one record per sample, with the prediction,
  the latency, the number of rows written and a 64-bit digest of the whole
  on-chip weight state, ``sum(w * R) mod 2**64`` with fixed random odd
  coefficients ``R`` per weight (linear, so the harness updates it with each
  written row; a wrong weight changes it unless its error is a multiple of
  ``2**64``). The output stays a few words per step however large the net.
* ``"detail"`` mode: every written row (sample, layer, row, weights) as well;
  Python applies the rows to its own copy and compares it weight by weight, so a
  mismatch is located (step, layer, row, columns). A run in digest mode that
  finds a mismatch is run again in detail mode to locate it.

The replay (:func:`simulate_training_fast`) steps the golden model
(:class:`~fewmul.nn.onchip.OnChipNet`, from :meth:`TrainingBuild.initial_net`)
on the same samples as the records arrive, so the simulator and the golden model
run side by side on two cores. After every step it compares the prediction and
the on-chip weights with the golden model's. When the build's layout has a
``train`` bit, a few inference requests (test images, ``train = 0``) are mixed
in: their predictions are compared with the golden model's and they must write
no weight. At every ``eval_every`` steps the harness also writes the whole
on-chip weight state to a snapshot file, whose test accuracy gives the curve.

The parts live beside this module: :mod:`fewmul.sim.train_harness` (the C++
source and its Verilator build), :mod:`fewmul.sim.train_requests` (the samples
streamed in), :mod:`fewmul.sim.train_records` (the records, the pipe and the
digest) and :mod:`fewmul.sim.train_replay` (the golden model's replay and the
checks). This module holds the entry points and re-exports what they use.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from fewmul.compiler.folders import BuildFolder

from .train_harness import (DEFAULT_OPT, QUICK_BUILD_CYCLES, QUICK_OPT, TrainHarness,
                            build_train_fast, is_built)
from .train_records import MODES
from .train_replay import replay_run
from .train_requests import Requests, plan_requests
from .train_runner import TrainingBuild, check_training

__all__ = ["MODES", "DEFAULT_OPT", "QUICK_OPT", "QUICK_BUILD_CYCLES", "TrainHarness", "Requests",
           "build_train_fast", "plan_requests",
           "simulate_training_fast", "check_training_fast", "format_fast",
           "golden_steps_per_second"]


def _positive(name: str, value) -> int:
    """``value`` as an int; a ValueError naming ``name`` unless it is a positive integer."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _load(build_dir: Path) -> tuple[BuildFolder, TrainingBuild]:
    """The build folder and what it describes; a clear error when a file is missing."""
    folder = BuildFolder(Path(build_dir).resolve())
    for path in (folder.train_meta_path, folder.train_init_path, folder.top_v):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run 'fewmul compile --train' first")
    return folder, TrainingBuild.load(folder.path)


def simulate_training_fast(build_dir: Path, steps: int, *, eval_every: int = 50,
                           mode: str = "digest", inference: int | None = None,
                           golden: Callable[[], object] | None = None,
                           opt: str | None = None) -> dict:
    """Train the design of ``build_dir`` for ``steps`` steps in the compiled harness.

    Parameters
    ----------
    build_dir : Path
        A ``fewmul compile --train`` folder.
    steps : int
        Training steps (samples).
    eval_every : int
        The test accuracy of the on-chip weights is measured every ``eval_every`` steps and
        after the last one.
    mode : {"digest", "detail"}
        How the on-chip weights are compared after every step (see the module's description);
        a mismatch found in digest mode is located by a second run in detail mode.
    inference : int, optional
        Inference requests mixed in (default 8 when the design has a ``train`` bit, else 0).
    golden : callable, optional
        Makes the golden model to replay against (default :meth:`TrainingBuild.initial_net`).
    opt : str, optional
        C++ compiler options of the harness; by default :data:`QUICK_OPT` for a run of up to
        :data:`QUICK_BUILD_CYCLES` cycles whose optimized harness is not built yet, else
        :data:`DEFAULT_OPT`.

    Returns
    -------
    dict
        The keys of :func:`fewmul.sim.train_runner.simulate_training`'s result
        (``steps_done``, ``weight_mismatch_steps``, ``prediction_mismatch_steps``,
        ``first_mismatch``, ``curve``, ``latency_cycles``, ``error``, ``wall_s``, ...) and
        ``mismatch`` (the first one's step and, located, its layer, row and columns),
        ``mode``, ``inference_requests``, ``inference_mismatches``, ``cycles``,
        ``simulator_s`` and ``simulator_steps_per_s`` (the harness alone, without the time it
        waited for the replay), ``replay_s`` and ``replay_steps_per_s`` (the golden model and
        the comparisons), the same per CPU second (``simulator_cpu_steps_per_s``,
        ``replay_cpu_steps_per_s``: what a busy machine does not change), ``steps_per_s``
        (end to end), ``harness_build_s`` and ``harness_opt``.
    """
    steps = _positive("Step count", steps)
    eval_every = _positive("eval_every", eval_every)
    if mode not in MODES:
        raise ValueError(f"Mode must be one of {', '.join(MODES)}, not {mode!r}")
    folder, build = _load(build_dir)
    t0 = time.perf_counter()
    if opt is None:
        quick = steps * build.cycles_per_step <= QUICK_BUILD_CYCLES
        opt = QUICK_OPT if quick and not is_built(folder, DEFAULT_OPT) else DEFAULT_OPT
    exe = build_train_fast(folder.path, opt=opt)
    build_s = time.perf_counter() - t0
    spec = TrainHarness.of(build, folder.top_v.read_text())
    data = build.dataset()
    requests = plan_requests(build, steps, eval_every, spec, inference, data)
    result = replay_run(folder, build, data, exe, spec, requests, mode, golden)
    if mode == "digest" and result["first_mismatch"] is not None:
        found = result["first_mismatch"]
        result = replay_run(folder, build, data, exe, spec, requests, "detail", golden)
        result["digest_first_mismatch"] = found
    result["harness_build_s"] = build_s
    result["harness_opt"] = opt
    return result


def check_training_fast(build_dir: Path, steps: int, *, eval_every: int | None = None,
                        mode: str = "digest", inference: int | None = None) -> dict:
    """:func:`fewmul.sim.train_runner.check_training` with the compiled harness as simulator.

    Writes ``BUILD/sim.json`` (with the harness's figures: ``simulator``, ``mode``,
    ``simulator_steps_per_s``, ``replay_steps_per_s``, ``steps_per_s``, the inference requests)
    and ``BUILD/train_curve.png``.
    """
    steps = _positive("Step count", steps)
    _load(build_dir)
    fast: dict = {}

    def simulate(build_dir, steps, *, eval_every=50):
        fast.update(simulate_training_fast(build_dir, steps, eval_every=eval_every, mode=mode,
                                           inference=inference))
        return fast

    result = check_training(build_dir, steps, eval_every=eval_every, simulate=simulate)
    result["simulator"] = "fast harness"
    for key in ("mode", "mismatch", "digest_first_mismatch", "inference_requests",
                "inference_mismatches", "inference_latency_cycles", "cycles",
                "simulator_steps_per_s", "simulator_cpu_steps_per_s", "replay_steps_per_s",
                "replay_cpu_steps_per_s", "steps_per_s", "harness_build_s", "harness_opt"):
        if key in fast:
            result[key] = fast[key]
    BuildFolder(Path(build_dir)).write_json("sim.json", result)
    return result


def format_fast(result: dict) -> str:
    """One line on the harness's speed and checks (beside ``train_runner.format_result``)."""
    def rate(key):
        value = result.get(key)
        return f"{value:.0f}" if value else "-"
    line = (f"fast harness ({result.get('mode')} mode, C++ {result.get('harness_opt')}): "
            f"{rate('steps_per_s')} steps/s checked end to end; Verilator alone "
            f"{rate('simulator_steps_per_s')} steps/s ({rate('simulator_cpu_steps_per_s')} per "
            f"CPU second), golden model and checks {rate('replay_steps_per_s')} steps/s "
            f"({rate('replay_cpu_steps_per_s')} per CPU second)")
    if result.get("inference_requests"):
        line += (f"; {result['inference_requests']} inference requests, "
                 f"{result['inference_mismatches']} wrong")
    return line


def golden_steps_per_second(build_dir: Path, steps: int) -> tuple[float, float]:
    """Training steps per second, and per CPU second, of the golden model alone on the build's
    first ``steps`` samples (what the replay cannot beat)."""
    steps = _positive("Step count", steps)
    _, build = _load(build_dir)
    data = build.dataset()
    order = build.order(steps)
    net = build.initial_net()
    t0, c0 = time.perf_counter(), time.process_time()
    for index in order:
        net.step(data.train.x[index], int(data.train.y[index]))
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)
