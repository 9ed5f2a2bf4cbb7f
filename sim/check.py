"""``fewmul sim``: the emitted design against the integer golden model on test images."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fewmul.compiler.folders import BuildFolder
from fewmul.nn.data import load_dataset

from .runner import simulate

__all__ = ["check_build"]


def check_build(build_dir: Path, images: int = 200, *, stall: float = 0.25, seed: int = 0,
                random_images: bool = False) -> dict:
    """Simulate ``images`` test images; write and return ``BUILD/sim.json``.

    The golden model is the folded network saved by the compiler
    (``net.npz``); the images are the first ``images`` of the spec's test split, or random
    pixels (``random_images``; no accuracy then).
    """
    build = BuildFolder(build_dir)
    if images < 1:
        raise ValueError(f"Image count must be a positive integer, not {images!r}")
    net = build.net()
    if random_images:
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 1 << net.input_bits, (images, net.in_type.size))
        y = None
    else:
        data = load_dataset(build.spec().data)
        x, y = data.test.x[:images], data.test.y[:images]
    expected = net.forward(x)
    t0 = time.perf_counter()
    result = simulate(build.path, x, expected, stall=stall, seed=seed)
    result["testbench_s"] = result.pop("wall_s")
    result["wall_s"] = time.perf_counter() - t0
    manifest = build.manifest()
    result["predicted_cycles_per_inference"] = manifest.cycles_per_inference
    result["predicted_latency_cycles"] = manifest.latency_cycles
    result["test_acc"] = None if y is None else float((net.predict(x) == y).mean())
    result["stall_probability"] = stall
    build.write_json(build.sim_path.name, result)
    return result
