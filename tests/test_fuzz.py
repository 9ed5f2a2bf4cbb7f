"""Random networks against the golden model (``fewmul.sim.fuzz``).

The default run checks that the generator covers what the compiler accepts, runs sixteen
small random networks in the Amaranth simulator (every layer, random stalls, protocol
monitors) and three in one batched Verilator model; ``make fuzz`` runs a thousand in
Verilator. A seed that fails there becomes a regression test here.
"""

# amaranth: UnusedElaboratable=no

import numpy as np
import pytest

from fewmul.cli import main
from fewmul.compiler.lower import lower, probes
from fewmul.ir.synthetic import LayerSpec, random_graph
from fewmul.sim.fuzz import random_case, random_images, run_fuzz

from gateware_helpers import StreamMonitor, simulate

SEEDS = range(200)


@pytest.fixture(scope="module")
def cases():
    return [random_case(seed) for seed in SEEDS]


def test_the_same_seed_gives_the_same_network():
    a, b = random_case(17), random_case(17)
    assert a.description == b.description
    arrays_a, arrays_b = a.net.arrays(), b.net.arrays()
    assert arrays_a.keys() == arrays_b.keys()
    assert all(np.array_equal(arrays_a[k], arrays_b[k]) for k in arrays_a)
    assert [(p.pe, p.simd, p.folding.pipeline) for p in a.plans] == \
        [(p.pe, p.simd, p.folding.pipeline) for p in b.plans]


def test_the_generator_covers_what_the_compiler_accepts(cases):
    """Over 200 seeds: every layer kind, weight kind, activation, input width, threshold mode,
    folding mode and awkward width occurs."""
    text = " ".join(case.description for case in cases)
    for feature in ("conv", "pool", "(min)", "dense:1 ", "dense:13", "dense:17", "binary",
                    "ternary", " 1b ", " 2b ", " 3b ", "bipolar 1-bit", "unsigned 1-bit",
                    "unsigned 8-bit", "calibrated", "wide", "low", "high", "mixed", "ties",
                    "--target-cycles", "--max-luts", "--pe ", "compressor", "pipeline 6"):
        assert feature in text, feature
    plans = [plan for case in cases for plan in case.plans]
    assert any(plan.inputs % plan.simd for plan in plans)       # SIMD not dividing the inputs
    assert any(plan.simd == 1 for plan in plans) and any(plan.pe > 1 for plan in plans)
    strides = {op.stride for case in cases for op in case.net.ops if op.kind == "window"}
    assert strides == {1, 2}


def test_extreme_thresholds_and_ties_do_what_they_say():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 16, (20, 12))
    for mode, level in (("low", 3), ("high", 0)):
        net = random_graph((12, 1, 1), [LayerSpec("dense", 5, act_bits=2, thresholds=mode),
                                        LayerSpec("dense", 4)], 4, seed=1)
        assert (net.forward(x)[0] == level).all()
    net = random_graph((12, 1, 1), [LayerSpec("dense", 5), LayerSpec("dense", 6, ties=True)],
                       4, seed=2)
    scores = net.forward(x)[-1]
    tied = [j for j in range(6) if (scores[:, j] == scores.max(1)).all()]
    assert len(set(map(tuple, scores.T))) < 6      # at least two classes always equal
    assert (net.predict(x) == np.argmax(scores, 1)).all()   # the first of the largest
    del tied


def _small(case, images: int, limit: int = 2500) -> bool:
    return case.plans and (images + 2) * max(p.cycles for p in case.plans) <= limit


@pytest.mark.parametrize("chunk", range(4))
def test_random_networks_in_the_amaranth_simulator(cases, chunk):
    """Every layer's collected output and every label and score, with random stalls, of the
    small cases (a quarter of them per chunk)."""
    images = 3
    picked = [case for case in cases if _small(case, images)][chunk::4][:4]
    assert len(picked) == 4
    for case in picked:
        top = lower(case.net, case.plans)
        x = random_images(case, images)
        beats = x.reshape(images * case.net.in_type.pixels, case.net.in_type.channels)
        layer_probes = probes(case.net, case.plans)
        monitors = [StreamMonitor(top.stages[p.path].o) for p in layer_probes]
        _, out = simulate(top, beats.tolist(), images, seed=case.seed, p_stall=0.3,
                          monitors=monitors, max_cycles=40_000)
        expected = case.net.forward(x)
        # (a strided window may give the last image's result before taking all its pixels:
        # the layers are checked on the images before it)
        for probe, mon, want in zip(layer_probes, monitors, expected):
            checked = (images - 1) * probe.vectors
            got = np.array(mon.payloads[:checked]).reshape(images - 1, -1)
            np.testing.assert_array_equal(got, want[:images - 1],
                                          err_msg=f"seed {case.seed}: {probe.name}")
        assert [o["label"] for o in out.payloads] == np.argmax(expected[-1], 1).tolist(), \
            f"seed {case.seed}"
        assert [o["scores"] for o in out.payloads] == expected[-1].tolist(), f"seed {case.seed}"


def test_a_batch_in_verilator_finds_a_wrong_golden_model(tmp_path):
    """Three networks in one Verilator model with stalls: two agree with their golden models;
    the third is compared with a model whose output offset differs, and is caught."""
    from fewmul.sim.batch import run_batch
    cases = [case for case in map(random_case, range(40)) if _small(case, 6, 1500)][:3]
    assert len(cases) == 3
    inputs = [random_images(case, 6) for case in cases]
    wrong = random_case(cases[-1].seed).net
    wrong.ops[-2].offsets[0] += 1
    results = run_batch([(case.net, case.plans) for case in cases], inputs, tmp_path,
                        stall=0.3, seed=5, golden=[case.net for case in cases[:-1]] + [wrong])
    assert [r.problem for r in results[:-1]] == [None] * 2
    assert [r.checked for r in results[:-1]] == [6] * 2
    assert results[-1].problem.startswith("image 0: score 0: got ")


def test_fuzz_command_reports_counts_and_seeds(monkeypatch, capsys):
    """The command's summary and failure lines (the batch itself faked)."""
    import fewmul.sim.batch
    from fewmul.sim.batch import BatchResult

    def fake(cases, inputs, work_dir, **kwargs):
        return [BatchResult(len(x), "image 2: score 1: got 3, expected 4" if i == 1 else None)
                for i, x in enumerate(inputs)]

    monkeypatch.setattr(fewmul.sim.batch, "run_batch", fake)
    assert main(["fuzz", "--count", "3", "--start", "40", "--images", "4"]) == 1
    out = capsys.readouterr().out
    assert "fuzz: 3 random networks, 12 images, 1 failed" in out
    assert "seed 41: image 2: score 1: got 3, expected 4" in out
    assert "replay: fewmul fuzz --seed 41" in out


def test_run_fuzz_counts_a_case_that_cannot_be_made(monkeypatch, tmp_path):
    import fewmul.sim.fuzz

    def broken(seed):
        raise ValueError(f"no network for {seed}")

    monkeypatch.setattr(fewmul.sim.fuzz, "random_case", broken)
    report = run_fuzz([7], tmp_path)
    assert report.ran == 1 and report.failures == {7: "making the case: ValueError: no network "
                                                       "for 7"}


@pytest.mark.slow
def test_replay_checks_one_seed_layer_by_layer(capsys):
    assert main(["fuzz", "--seed", "3", "--images", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seed 3: ") and "replay OK: 8 images, 0 mismatches" in out


@pytest.mark.slow
def test_a_hundred_random_networks_in_verilator(tmp_path):
    report = run_fuzz(range(100), tmp_path, images=12, batch=25)
    assert report.ran == 100 and report.images == 1200
    assert report.failures == {}, report.summary()


def test_a_batch_that_fails_to_build_fails_its_seeds(monkeypatch, tmp_path):
    import fewmul.sim.batch
    from fewmul.sim.runner import SimulationError

    def failing(*args, **kwargs):
        raise SimulationError("Verilator (fuzz batch) failed (exit 1); see build.log: %Error")

    monkeypatch.setattr(fewmul.sim.batch, "run_batch", failing)
    report = run_fuzz([3, 4], tmp_path, batch=2)
    assert report.ran == 2 and sorted(report.failures) == [3, 4]
    assert report.failures[3].startswith("its batch failed: Verilator (fuzz batch) failed")
