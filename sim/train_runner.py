"""Running an emitted on-chip training design under cocotb + Verilator.

A training build (``fewmul compile --train``) holds ``top.v``, ``train.json``
(the trainer's configuration, the data set and the stream layouts) and
``init.npz`` (the initial hidden weights). :class:`TrainingBuild` reads them;
:func:`simulate_training` runs :mod:`fewmul.sim.train_testbench` for a number
of steps; :func:`check_training` also runs the float twin, writes
``BUILD/sim.json`` and the accuracy-curve plot ``BUILD/train_curve.png``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fewmul.arith.onchip import OnChipConfig
from fewmul.compiler.folders import BuildFolder
from fewmul.nn.artifacts import write_atomic
from fewmul.nn.config import DataConfig
from fewmul.nn.data import Dataset, load_dataset
from fewmul.nn.onchip import FloatTwin, Lfsr, OnChipNet, train_order

from .runner import SimulationError, verilator_env

__all__ = ["TrainingBuild", "simulate_training", "check_training", "float_twin_curve", "format_result"]

TESTBENCH = "fewmul.sim.train_testbench"


@dataclass
class TrainingBuild:
    """What a training build folder describes."""
    path: Path
    cfg: OnChipConfig
    data: dict
    order_seed: int
    layout: dict
    latency: int
    cycles_per_step: int
    weights: list[np.ndarray]

    @classmethod
    def load(cls, build_dir: Path) -> "TrainingBuild":
        folder = BuildFolder(build_dir)
        build_dir, meta_path = folder.path, folder.train_meta_path
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} is missing: run 'fewmul compile --train' first")
        meta = json.loads(meta_path.read_text())
        cfg = OnChipConfig(**meta["config"])
        with np.load(folder.train_init_path) as f:
            missing = [f"w{index + 1}" for index in range(cfg.layers) if f"w{index + 1}" not in f]
            if missing:
                raise ValueError(f"{folder.train_init_path} lacks {', '.join(missing)}: expected "
                                 f"w1 .. w{cfg.layers} for sizes {cfg.sizes!r}")
            weights = [f[f"w{index + 1}"].astype(np.int64) for index in range(cfg.layers)]
        return cls(build_dir, cfg, meta["data"], meta["order_seed"], meta["layout"],
                   meta["latency"], meta["cycles_per_step"], weights)

    def dataset(self) -> Dataset:
        return load_dataset(DataConfig(**self.data))

    def order(self, steps: int) -> np.ndarray:
        """Training-set indices of the samples of steps ``1 .. steps``."""
        return train_order(len(self.dataset().train), steps, self.order_seed)

    def initial_net(self) -> OnChipNet:
        return OnChipNet(self.cfg, [w.copy() for w in self.weights], Lfsr(self.cfg.lfsr_seed))

    def net_with(self, weights: list[np.ndarray]) -> OnChipNet:
        """A golden model holding ``weights`` (to evaluate weights read from the design)."""
        return OnChipNet(self.cfg, [np.asarray(w, np.int64).copy() for w in weights],
                         Lfsr(self.cfg.lfsr_seed))


def simulate_training(build_dir: Path, steps: int, *, eval_every: int = 50,
                      log_file: Path | None = None) -> dict:
    """Train the design of ``build_dir`` for ``steps`` steps under cocotb + Verilator.

    Returns the testbench's result: ``steps_done``, ``weight_mismatch_steps``,
    ``prediction_mismatch_steps``, ``first_mismatch``, ``curve`` (test accuracy of the
    on-chip weights every ``eval_every`` steps), ``latency_cycles``, ``error``, ``wall_s``.
    """
    from cocotb_tools.runner import get_runner

    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"Step count must be a positive integer, not {steps!r}")
    folder = BuildFolder(Path(build_dir).resolve())
    build_dir, top_v = folder.path, folder.top_v
    TrainingBuild.load(build_dir)            # a clear error before the simulator starts
    if not top_v.exists():
        raise SimulationError(f"{top_v} is missing: run 'fewmul compile --train' first")
    sim_dir = folder.sim_build_dir
    log_file = Path(log_file) if log_file else folder.sim_log
    runner = get_runner("verilator")
    env = verilator_env()
    # The model is small per cycle and the testbench dominates the run time, so the C++ is
    # compiled without optimization: a third of the compile time of -Os.
    env["MAKEFLAGS"] += " OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        runner.build(sources=[top_v], hdl_toplevel="top", build_dir=sim_dir,
                     build_args=["-Wno-fatal"], log_file=log_file)
    except SystemExit as exc:
        raise SimulationError(f"Verilator build failed; see {log_file}") from exc
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    os.environ.update(verilator_env())       # what the simulator itself needs
    with tempfile.TemporaryDirectory(prefix="fewmul-train-") as tmp:
        job, res = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"steps": steps, "eval_every": eval_every}))
        env = {"FEWMUL_BUILD": str(build_dir), "FEWMUL_TRAIN_JOB": str(job),
               "FEWMUL_RESULT": str(res)}
        try:
            runner.test(test_module=TESTBENCH, hdl_toplevel="top", build_dir=sim_dir,
                        test_dir=sim_dir, extra_env=env, log_file=log_file)
        except SystemExit:
            pass    # a failed cocotb test exits; the result file tells why
        if not res.exists():
            raise SimulationError(f"The testbench wrote no result; see {log_file}")
        return json.loads(res.read_text())


def float_twin_curve(build: TrainingBuild, steps: int, eval_every: int) -> dict:
    """The golden model and its floating-point twin trained side by side (no hardware).

    Returns per evaluation point the test accuracy of both, the share of binary weights on
    which they agree and the relative RMS difference of their hidden weights.
    """
    data = build.dataset()
    net = build.initial_net()
    twin = FloatTwin(net)
    points = []
    for step, index in enumerate(build.order(steps), 1):
        net.step(data.train.x[index], data.train.y[index])
        twin.step(data.train.x[index], data.train.y[index])
        if step % eval_every == 0 or step == steps:
            w_int = np.concatenate([w.ravel() for w in net.weights]).astype(np.float64)
            w_flt = np.concatenate([np.ravel(w) for w in twin.weights])
            points.append({
                "step": step,
                "golden_test_acc": net.accuracy(data.test.x, data.test.y),
                "float_test_acc": twin.accuracy(data.test.x, data.test.y),
                "sign_agreement": float(np.mean((w_int >= 0) == (w_flt >= 0))),
                "relative_rms": float(np.sqrt(np.mean((w_int - w_flt) ** 2)
                                              / np.mean(w_flt ** 2))),
            })
    return {"curve": points}


def _plot(path: Path, sim: dict, twin: dict, data_set: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["step"] for p in sim["curve"]], [p["test_acc"] for p in sim["curve"]],
            "o-", label="on-chip weights (Verilator)")
    online = [p for p in sim["curve"] if p["online_acc"] is not None]
    ax.plot([p["step"] for p in online], [p["online_acc"] for p in online], ":",
            label="on-chip predictions before each update (running mean)")
    ax.plot([p["step"] for p in twin["curve"]], [p["float_test_acc"] for p in twin["curve"]],
            "--", label="float twin (same draws, no rounding)")
    ax.axhline(0.1, color="grey", lw=0.8, label="chance")
    ax.set_xlabel("training step (one sample)")
    ax.set_ylabel(f"{data_set} test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=120)
    write_atomic(path, image.getvalue())     # never half an image
    plt.close(fig)


def check_training(build_dir: Path, steps: int, *, eval_every: int | None = None,
                   simulate: Callable[..., dict] | None = None) -> dict:
    """Simulate ``steps`` training steps; write ``BUILD/sim.json`` and ``BUILD/train_curve.png``.

    ``simulate(build_dir, steps, eval_every=...)`` runs the simulator and returns
    :func:`simulate_training`'s keys; by default it is :func:`simulate_training` (the cocotb
    testbench).
    """
    build_dir = Path(build_dir)
    build = TrainingBuild.load(build_dir)
    eval_every = eval_every or max(1, steps // 20)
    t0 = time.perf_counter()
    sim = (simulate or simulate_training)(build_dir, steps, eval_every=eval_every)
    twin = float_twin_curve(build, steps, eval_every)
    result = {
        "mode": "train", "steps": steps, "steps_done": sim["steps_done"],
        "bit_exact": (sim["steps_done"] == steps and sim["weight_mismatch_steps"] == 0
                      and sim["prediction_mismatch_steps"] == 0 and not sim["error"]),
        "weight_mismatch_steps": sim["weight_mismatch_steps"],
        "prediction_mismatch_steps": sim["prediction_mismatch_steps"],
        "first_mismatch": sim["first_mismatch"], "error": sim["error"],
        "final_test_acc": sim["final_test_acc"], "online_acc": sim["online_acc"],
        "latency_cycles": sim["latency_cycles"],
        "predicted_latency_cycles": build.latency,
        "cycles_per_step": build.cycles_per_step,
        "curve": sim["curve"],
        "float_twin": twin["curve"],
        "testbench_s": sim["wall_s"], "wall_s": time.perf_counter() - t0,
        "plot": "train_curve.png",
    }
    _plot(build_dir / "train_curve.png", sim, twin, DataConfig(**build.data).set)
    BuildFolder(build_dir).write_json("sim.json", result)
    return result


def format_result(result: dict) -> str:
    """Human-readable summary of :func:`check_training`'s result."""
    status = "OK" if result["bit_exact"] else "FAIL"
    twin = result["float_twin"][-1] if result["float_twin"] else {}
    lines = [
        f"train sim {status}: {result['steps_done']}/{result['steps']} steps, weights bit-exact "
        f"with the golden model at {result['steps_done'] - result['weight_mismatch_steps']} "
        f"steps, {result['prediction_mismatch_steps']} prediction mismatches; "
        f"{result['latency_cycles']} cycles/step latency (predicted "
        f"{result['predicted_latency_cycles']}); {result['testbench_s']:.1f} s",
        f"test accuracy of the on-chip weights: {100 * result['curve'][0]['test_acc']:.1f} % -> "
        f"{100 * result['final_test_acc']:.1f} % (online {100 * result['online_acc']:.1f} %)",
    ]
    if twin:
        lines.append(f"float twin: {100 * twin['float_test_acc']:.1f} % test accuracy, "
                     f"{100 * twin['sign_agreement']:.1f} % of binary weights agree, "
                     f"relative RMS difference {twin['relative_rms']:.3f}")
    for key in ("first_mismatch", "error"):
        if result.get(key):
            lines.append(f"{key.replace('_', ' ')}: {result[key]}")
    return "\n".join(lines)
