"""``fewmul sim``: the emitted design against the integer golden model on test images.

Two simulators share the work. The compiled Verilator harness (:mod:`fewmul.sim.fast`, no
Python per cycle) streams all the images and its labels and scores are compared with the
golden model; the cocotb testbench (:mod:`fewmul.sim.testbench`) takes the first few, at full
speed and again with random stalls, and compares every layer's output too. With no more images
than the testbench takes, the testbench alone runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from fewmul.compiler.folders import BuildFolder
from fewmul.nn.data import load_dataset

from .fast import build_fast, run_fast
from .runner import simulate

__all__ = ["check_build", "check_images", "DEFAULT_TESTBENCH_IMAGES", "load_images",
           "harness_mismatches"]

#: Images the cocotb testbench checks layer by layer, with and without stalls, by default.
DEFAULT_TESTBENCH_IMAGES = 100
#: Up to this many simulated cycles (images x cycles per inference) the harness is compiled
#: without optimization: on the digits demo that build took 16 s against 41 s at -O3, and
#: simulated 2,300 against 30,000 images/s, so it is quicker in all up to about 10,000 images.
QUICK_BUILD_CYCLES = 2_000_000


def load_images(build: BuildFolder, images: int, *, random_images: bool = False,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """The first ``images`` test images of the build's data set and their labels, or random
    pixels and None.

    Raises
    ------
    ValueError
        When the test split holds fewer than ``images``.
    """
    if images < 1:
        raise ValueError(f"Image count must be a positive integer, not {images!r}")
    net = build.net()
    if random_images:
        rng = np.random.default_rng(seed)
        return rng.integers(0, 1 << net.input_bits, (images, net.in_type.size)), None
    spec = build.spec()
    data = load_dataset(spec.data)
    if len(data.test.x) < images:
        raise ValueError(f"the test split of {spec.data.set} holds {len(data.test.x)} images, "
                         f"not {images}: ask for fewer, or use --random-images")
    return data.test.x[:images], data.test.y[:images]


def harness_mismatches(result: dict, scores: np.ndarray) -> list[str]:
    """Per image that differs, a message: the harness's label and scores (``run_fast``'s
    ``result``) against the golden model's ``scores``; images it did not return count too."""
    bad = []
    for i, want in enumerate(np.asarray(scores)):
        if i >= len(result["labels"]):
            bad.append(f"image {i}: no result from the design")
            continue
        got, label = result["scores"][i], int(result["labels"][i])
        if label != int(np.argmax(want)) or not np.array_equal(got, want):
            diff = np.flatnonzero(got != want)
            where = (f"score {diff[0]}: got {got[diff[0]]}, expected {want[diff[0]]}" if len(diff)
                     else f"label {label}, golden model says {int(np.argmax(want))}")
            bad.append(f"image {i}: {where}")
    return bad


def _run_harness(build: BuildFolder, x: np.ndarray, scores: np.ndarray,
                 cycles_per_inference: int) -> tuple[dict, set]:
    """The compiled harness on all of ``x``: its summary and the images that differ."""
    t0 = time.perf_counter()
    quick = len(x) * cycles_per_inference <= QUICK_BUILD_CYCLES
    exe = build_fast(build.path, opt="-O0", obj="obj-O0") if quick else build_fast(build.path)
    build_s = time.perf_counter() - t0
    result = run_fast(build.path, x, exe=exe)
    bad = harness_mismatches(result, scores)
    summary = {"images": len(x), "mismatches": len(bad),
               "first_mismatch": bad[0] if bad else None, "checks": "labels and scores",
               "build_s": build_s, "optimized": not quick, "seconds": result["wall_s"],
               "images_per_second": len(x) / result["wall_s"] if result["wall_s"] else None,
               "cycles_per_inference": result["cycles_per_inference"],
               "latency_cycles": result["latency_cycles"]}
    return summary, {_image(message) for message in bad}


def check_build(build_dir: Path, images: int = 200, *, stall: float = 0.25, seed: int = 0,
                random_images: bool = False,
                testbench_images: int | None = DEFAULT_TESTBENCH_IMAGES) -> dict:
    """Simulate ``images`` test images; write and return ``BUILD/sim.json``.

    Parameters
    ----------
    build_dir : Path
        A ``fewmul compile`` folder; its golden model is ``net.npz``.
    images : int
        The first ``images`` of the spec's test split (or random pixels: ``random_images``;
        no accuracy then).
    stall : float
        Probability of idle and back-pressure cycles in the testbench's second pass.
    testbench_images : int or None
        Images the cocotb testbench checks layer by layer (the first ones); the compiled harness
        checks the labels and scores of all ``images`` when there are more. None: the
        testbench takes them all.

    Returns
    -------
    dict
        ``images``, ``mismatches`` (images that differ in either simulator),
        ``first_mismatch``, ``error``, the measured ``cycles_per_inference`` and
        ``latency_cycles``, ``predicted_*``, ``test_acc``, ``wall_s``, and per simulator
        ``testbench`` and ``harness`` (None when it did not run): ``images``, ``mismatches``,
        ``seconds``, ``images_per_second``.
    """
    build = BuildFolder(build_dir)
    x, y = load_images(build, images, random_images=random_images, seed=seed)
    return check_images(build.path, x, y, stall=stall, seed=seed,
                        testbench_images=testbench_images)


def check_images(build_dir: Path, x: np.ndarray, y: np.ndarray | None = None, *,
                 stall: float = 0.25, seed: int = 0,
                 testbench_images: int | None = DEFAULT_TESTBENCH_IMAGES) -> dict:
    """:func:`check_build` on the images ``x`` (quantized, one row each) with labels ``y``
    (None: no accuracy)."""
    build = BuildFolder(build_dir)
    if testbench_images is not None and testbench_images < 0:
        raise ValueError(f"Testbench image count must be a non-negative integer, not "
                         f"{testbench_images!r}")
    images = len(x)
    if images < 1:
        raise ValueError("No images to simulate")
    net = build.net()
    manifest = build.manifest()
    build.sim_path.unlink(missing_ok=True)      # an interrupted run leaves no result
    t0 = time.perf_counter()
    scores = net.scores(x)                  # a chunk of images at a time
    bench = images if testbench_images is None else min(images, testbench_images)
    harness, bad = (_run_harness(build, x, scores, manifest.cycles_per_inference)
                    if bench < images else (None, set()))
    result: dict = {"images": images, "mismatches": 0, "first_mismatch": None, "error": None}
    testbench, first = None, {}
    if bench:
        tb = simulate(build.path, x[:bench], net.forward(x[:bench]), stall=stall, seed=seed)
        passes = 2 if stall > 0 else 1
        testbench = {"images": bench, "mismatches": tb["mismatches"],
                     "first_mismatch": tb["first_mismatch"], "checks": "every layer",
                     "passes": passes, "seconds": tb["wall_s"],
                     "images_per_second": bench * passes / tb["wall_s"] if tb["wall_s"] else None}
        result.update({k: v for k, v in tb.items()
                       if k not in ("images", "wall_s", "mismatched_images")})
        result["testbench_s"] = tb["wall_s"]
        bad |= set(tb.get("mismatched_images", []))
        if tb["first_mismatch"]:
            first[_image(tb["first_mismatch"])] = tb["first_mismatch"]
    elif harness is not None:
        result.update(cycles_per_inference=harness["cycles_per_inference"],
                      latency_cycles=harness["latency_cycles"])
    if harness is not None and harness["first_mismatch"]:
        first.setdefault(_image(harness["first_mismatch"]), harness["first_mismatch"])
    result["mismatches"] = max(len(bad), testbench["mismatches"] if testbench else 0)
    result["first_mismatch"] = first[min(first)] if first else None
    result["wall_s"] = time.perf_counter() - t0
    result["testbench"], result["harness"] = testbench, harness
    result["predicted_cycles_per_inference"] = manifest.cycles_per_inference
    result["predicted_latency_cycles"] = manifest.latency_cycles
    result["test_acc"] = None if y is None else float((np.argmax(scores, 1) == y).mean())
    result["stall_probability"] = stall
    build.write_json(build.sim_path.name, result)
    return result


def _image(message: str) -> int:
    """The image index of a mismatch message (``"image 12: ..."``)."""
    try:
        return int(message.split(":")[0].split()[1])
    except (IndexError, ValueError):
        return 1 << 62
