"""Brevitas -> QONNX -> fewmul: a TFC-like binary MLP (784-64-64-64-10, 1-bit weights and
activations) trained one epoch on Fashion-MNIST with Brevitas, exported by Brevitas' own QONNX
exporter, imported, compiled and simulated bit-exact against the QONNX execution.

Slow, and it needs the ``interop`` extra (``pip install -e '.[interop]'``: Brevitas and
PyTorch) and Fashion-MNIST (``make data``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")


def _tfc():
    import brevitas.nn as qnn
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    class SignedBinaryWeightUnitScale(SignedBinaryWeightPerTensorConst):
        """+-1 weights: a power-of-two scale keeps the graph's float32 arithmetic exact, so
        even exact ties of the scores break as in the golden model."""
        scaling_const = 1.0
    layers = []
    width = 784
    for units in (64, 64, 64):
        layers += [qnn.QuantLinear(width, units, bias=False,
                                   weight_quant=SignedBinaryWeightUnitScale),
                   torch.nn.BatchNorm1d(units),
                   qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)]
        width = units
    # the output: +-1 weights of scale 1, no bias: scores exact in fixed point
    layers.append(qnn.QuantLinear(width, 10, bias=False,
                                  weight_quant=SignedBinaryWeightUnitScale))
    return torch.nn.Sequential(*layers)


def test_brevitas_tfc_imports_compiles_and_simulates_bit_exact(tmp_path, capsys):
    from brevitas.export import export_qonnx

    from fewmul.cli import main
    from fewmul.nn.config import DataConfig
    from fewmul.nn.data import load_dataset
    try:
        data = load_dataset(DataConfig(set="fashion-mnist", input_bits=8))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    torch.manual_seed(0)
    model = _tfc()
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    x = torch.from_numpy(data.train.x.astype(np.float32) / 255)
    y = torch.from_numpy(data.train.y)
    model.train()
    for start in range(0, len(x), 100):                  # one epoch
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[start:start + 100]),
                                                 y[start:start + 100])
        loss.backward()
        opt.step()
    model.eval()
    path = tmp_path / "tfc.onnx"
    export_qonnx(model, input_t=torch.zeros(1, 784), export_path=str(path))

    assert main(["import", str(path), "-o", str(tmp_path / "run"), "--data", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    print(out)
    agreement = json.loads((tmp_path / "run" / "metrics.json").read_text())["summary"]["agreement"]
    assert agreement["images"] == 10000 and agreement["labels"] == 1.0
    assert agreement["scores"] == 1.0
    assert agreement["accuracy_golden"] > 0.6          # one epoch; about 73 %
    assert main(["compile", str(tmp_path / "run"), "-o", str(tmp_path / "build"),
                 "--target-cycles", "512"]) == 0
    assert main(["sim", str(tmp_path / "build"), "--images", "200"]) == 0
    sim = json.loads((tmp_path / "build" / "sim.json").read_text())
    assert sim["images"] == 200 and sim["mismatches"] == 0
