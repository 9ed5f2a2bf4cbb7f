"""QONNX import and export: every supported pattern imports bit-exact against qonnx's executor,
every refused one is refused in one line, a trained run survives export -> import unchanged,
and an imported net simulates bit-exact in Verilator."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from fewmul.cli import main
from fewmul.compiler.emit import compile_run
from fewmul.compiler.training import run_network, train_run
from fewmul.interop.check import agreement, sample_images
from fewmul.interop.qonnx_import import import_qonnx, write_run

from qonnx_graphs import QONNX_DOMAIN, GraphBuilder, tfc


def _agree(path, **kw):
    imp = import_qonnx(path, **kw)
    spec = imp.spec
    q, y, source = sample_images(spec.data.set, spec.data.input_bits, None)
    shape = imp.model.get_tensor_shape(imp.model.graph.input[0].name)
    return imp, agreement(imp.net, imp.model, q, spec.data.set, shape, imp.output_scale, y,
                          source)


def _cnv(act="bipolar", weights="bipolar", pads=0, explicit_pad=False, seed=1):
    """conv -> BN -> act -> maxpool -> conv -> BN -> act -> flatten -> Gemm -> Mul."""
    g = GraphBuilder([1, 1, 8, 8], seed)
    g.conv(1, 8, pads=1)                                    # image input: zero padding is exact
    g.batchnorm(8)
    g.bipolar_act()
    g.node("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    if explicit_pad:
        g.node("Pad", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), np.float32(-1),
               mode="constant")
    w = g.quant_weights((8, 8, 3, 3)) if weights == "ternary" else None
    g.conv(8, 8, pads=pads, weights=w)
    g.batchnorm(8)
    if act == "bipolar":
        g.bipolar_act()
    elif act == "quant":
        g.quant_act(bits=2, scale=0.5)
    g.node("Flatten", axis=1)
    n = 8 * (4 if pads or explicit_pad else 2) ** 2
    g.node("Gemm", g.bipolar_weights((10, n), scale=0.5), np.zeros(10, np.float32), transB=1)
    g.node("Mul", np.float32(0.25))
    return g.model([1, 10])


def _mlp_with(act_nodes, seed=2, n_hidden=24):
    """MatMul -> Mul -> Add -> (act_nodes) -> MatMul: one hidden layer."""
    g = GraphBuilder([1, 64], seed)
    g.matmul(64, n_hidden, scale=0.03125)
    g.node("Mul", g.rng.uniform(0.5, 2, n_hidden).astype(np.float32))
    g.node("Add", g.rng.standard_normal(n_hidden).astype(np.float32))
    act_nodes(g, n_hidden)
    g.matmul(n_hidden, 10)
    return g.model([1, 10])


def _multithreshold(g, n):
    t = np.sort(g.rng.standard_normal((n, 3)).astype(np.float32), 1)
    g.node("MultiThreshold", t, domain=QONNX_DOMAIN, out_dtype="UINT2", out_scale=1.0)


def _multithreshold_bipolar(g, n):
    g.node("MultiThreshold", g.rng.standard_normal((n, 1)).astype(np.float32),
           domain=QONNX_DOMAIN, out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)


def _relu_quant(g, n):
    g.node("Relu")
    g.quant_act(bits=3, scale=0.25, rounding="FLOOR")


def _sign(g, n):
    g.node("Sign")


def _signed_quant(g, n):
    g.quant_act(bits=2, scale=0.5, signed=1, narrow=1, rounding="HALF_UP")


ACCEPTED = {
    "tfc-bipolar": lambda: tfc(),
    "tfc-2bit": lambda: tfc(act="quant"),
    "cnv-bipolar": lambda: _cnv(),
    "cnv-ternary-2bit-same": lambda: _cnv(act="quant", weights="ternary", pads=0),
    "cnv-pad-node": lambda: _cnv(explicit_pad=True),
    "multithreshold": lambda: _mlp_with(_multithreshold),
    "multithreshold-bipolar": lambda: _mlp_with(_multithreshold_bipolar),
    "relu-quant": lambda: _mlp_with(_relu_quant),
    "sign": lambda: _mlp_with(_sign),
    "signed-narrow-quant": lambda: _mlp_with(_signed_quant),
}


@pytest.mark.parametrize("pattern", sorted(ACCEPTED))
def test_supported_pattern_imports_bit_exact(pattern, tmp_path):
    path = tmp_path / f"{pattern}.onnx"
    onnx.save(ACCEPTED[pattern](), str(path))
    imp, agree = _agree(path)
    assert agree.source == "test images" and agree.images == 360
    assert agree.labels == 1.0 and agree.scores == 1.0, agree


def test_external_data_file_imports(tmp_path):
    """Brevitas on current PyTorch writes MODEL.onnx + MODEL.onnx.data."""
    path = tmp_path / "ext.onnx"
    onnx.save_model(_cnv(), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 1000
    _, agree = _agree(path)
    assert agree.labels == 1.0 and agree.scores == 1.0


def _zero_point(g, n):
    g.quant_act(bits=2, scale=0.5, zeropt=1.0)


def _per_channel_scale(g, n):
    g.node("BipolarQuant", np.linspace(0.5, 1, n).astype(np.float32).reshape(1, n),
           domain=QONNX_DOMAIN)


def _softmax(g, n):
    g.node("Softmax", axis=1)


def _relu_alone(g, n):
    g.node("Relu")


def _output_scale_not_pow2():
    g = GraphBuilder([1, 64], 3)
    g.matmul(64, 16)
    g.batchnorm(16)
    g.bipolar_act()
    g.matmul(16, 10)
    g.node("Mul", np.float32([1, 3, 1, 1, 1, 1, 1, 1, 1, 1]))
    return g.model([1, 10])


def _output_bias_inexact():
    g = GraphBuilder([1, 64], 3)
    g.matmul(64, 16)
    g.batchnorm(16)
    g.bipolar_act()
    g.matmul(16, 10, scale=0.3)
    g.node("Add", np.float32(np.full(10, 0.1)))
    return g.model([1, 10])


def _wide_weights():
    g = GraphBuilder([1, 64], 3)
    g.node("MatMul", g.quant_weights((64, 10), bits=4, scale=0.25))
    return g.model([1, 10])


def _sign_zero():
    g = GraphBuilder([1, 64], 3)
    g.matmul(64, 16)
    g.node("Sign")                                 # a sum of 0 gives Sign 0
    g.matmul(16, 10)
    return g.model([1, 10])


def _bipolar_zero_padding():
    return _cnv(pads=1)                            # zero-pads +-1 activations


def _pool_before_act():
    g = GraphBuilder([1, 1, 8, 8], 4)
    g.conv(1, 8)
    g.node("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    g.bipolar_act()
    g.node("Flatten", axis=1)
    g.node("MatMul", g.bipolar_weights((72, 10)))
    return g.model([1, 10])


def _input_requantized():
    g = GraphBuilder([1, 64], 3)
    g.node("Mul", np.float32(2))
    g.node("Add", np.float32(-1))
    g.quant_act(bits=8, scale=2 ** -7, signed=1)      # round((2x - 1) * 128): not one to one
    g.matmul(64, 10)
    return g.model([1, 10])


REFUSED = {
    "zero-point": (lambda: _mlp_with(_zero_point), "non-zero zero-point"),
    "per-channel-act-scale": (lambda: _mlp_with(_per_channel_scale), "per-channel scale"),
    "softmax": (lambda: _mlp_with(_softmax), "(Softmax): an op type fewmul does not import"),
    "relu-alone": (lambda: _mlp_with(_relu_alone), "Relu must be followed by a quantizer"),
    "output-scale": (_output_scale_not_pow2, "not powers of two"),
    "output-bias": (_output_bias_inexact, "biases are not multiples"),
    "4-bit-weights": (_wide_weights, "4-bit weights"),
    "sign-zero": (_sign_zero, "Sign(0) = 0"),
    "bipolar-zero-padding": (_bipolar_zero_padding, "zero padding"),
    "pool-before-act": (_pool_before_act, "max-pool of sums"),
    "input-requantized": (_input_requantized, "does not map the input's levels"),
}


@pytest.mark.parametrize("pattern", sorted(REFUSED))
def test_refused_pattern_is_one_line_exit_2(pattern, tmp_path, capsys):
    make, reason = REFUSED[pattern]
    path = tmp_path / f"{pattern}.onnx"
    onnx.save(make(), str(path))
    assert main(["import", str(path), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("fewmul import: error: ") and reason in err, err
    assert not (tmp_path / "run").exists()


def test_import_cli_writes_a_run_that_compiles_and_simulates_bit_exact(tmp_path, capsys):
    """import -> count -> compile -> Verilator (the compiled harness): the hardware's labels
    and scores are the golden model's, whose labels are the QONNX execution's."""
    from fewmul.interop.check import execute_qonnx, qonnx_inputs
    from fewmul.sim.fast import build_fast, run_fast
    path = tmp_path / "tfc.onnx"
    onnx.save(tfc(act="quant"), str(path))
    assert main(["import", str(path), "-o", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "labels 100.00 %, scores 100.00 %" in out
    run = tmp_path / "run"
    summary = json.loads((run / "metrics.json").read_text())["summary"]
    assert summary["imported"] == str(path) and summary["agreement"]["labels"] == 1.0
    assert {p.name for p in run.iterdir()} >= {"net.npz", "model.npz", "spec.yaml",
                                               "metrics.json"}
    assert main(["count", str(run / "spec.yaml")]) == 0
    build = tmp_path / "build"
    report = compile_run(run, build, pe=[8, 8, 2])
    assert [layer["units"] for layer in report["layers"]] == [32, 32, 10]
    assert report["yosys"]["generic"]["multipliers"] == 0
    imp = import_qonnx(path)
    q, _, _ = sample_images("digits", 4, None)
    build_fast(build, opt="-O0")
    result = run_fast(build, q, imp.net.forward(q)[-1])
    assert result["images"] == len(q) and result["mismatches"] == 0
    shape = imp.model.get_tensor_shape(imp.model.graph.input[0].name)
    ref = execute_qonnx(imp.model, qonnx_inputs(q, "digits", 4, shape))
    assert (result["labels"] == ref.argmax(1)).all()


def test_trained_run_round_trips_through_qonnx(tmp_path, capsys):
    """train -> export -> import gives the same golden model, array for array."""
    spec = tmp_path / "net.yaml"
    spec.write_text("data: {set: digits, input_bits: 4}\n"
                    "layers:\n"
                    "  - {kind: conv, filters: 8, kernel: 3, padding: same, act: sign}\n"
                    "  - {kind: maxpool, size: 2}\n"
                    "  - {kind: conv, filters: 8, kernel: 3, padding: same, weights: ternary,"
                    " act: quant, act_bits: 2}\n"
                    "  - {units: 16, act: sign}\n"
                    "  - {units: 10, act: none}\n"
                    "train: {epochs: 1}\n")
    train_run(spec, tmp_path / "run", progress=False)
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "net.onnx")]) == 0
    assert "labels 100.00 %, scores 100.00 %" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "net.onnx"), "-o", str(tmp_path / "back")]) == 0
    _, before = run_network(tmp_path / "run")
    _, after = run_network(tmp_path / "back")
    a, b = before.arrays(), after.arrays()
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_float_model_of_an_imported_sign_net_folds_exactly(tmp_path):
    """model.npz folds into the imported thresholds where fold can express them."""
    from fewmul.compiler.training import load_run
    from fewmul.ir.fold import fold
    g = GraphBuilder([1, 64], 5)
    g.matmul(64, 16)
    g.batchnorm(16)
    g.bipolar_act()
    g.matmul(16, 10)
    g.node("Mul", np.float32(16))
    path = tmp_path / "m.onnx"
    onnx.save(g.model([1, 10]), str(path))
    summary = write_run(import_qonnx(path), tmp_path / "run")
    assert summary["model_npz_folds_exactly"]
    spec, model = load_run(tmp_path / "run")
    _, net = run_network(tmp_path / "run")
    folded = fold(model, spec.data.input_bits, spec.train)
    assert np.array_equal(folded.ops[1].thresholds, net.ops[1].thresholds)
