"""``fewmul export RUN/ -o MODEL.onnx``"""

from pathlib import Path

from .common import positive_int


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run's network as a QONNX model",
                       description="Write the integer network of RUN/ (trained or imported) as "
                                   "QONNX (BipolarQuant/Quant weights, MultiThreshold "
                                   "activations), check it with onnx's checker and qonnx, and "
                                   "print how often qonnx's execution of it agrees with the "
                                   "golden model on the test images. The model's input is the "
                                   "pixels scaled to [0, 1].")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder (fewmul train or import)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL.onnx",
                   help="QONNX file to write")
    p.add_argument("--images", type=positive_int, default=None, metavar="N",
                   help="compare on the first N test images (default: all)")
    p.set_defaults(func=run)


def run(args) -> int:
    from fractions import Fraction

    from fewmul.compiler.folders import RunFolder
    from fewmul.interop.check import agreement, sample_images
    from fewmul.interop.export import export_run
    net, model = export_run(args.run, args.output)
    spec = RunFolder(args.run).spec()
    q, labels, source = sample_images(spec.data.set, spec.data.input_bits, args.images)
    shape = model.get_tensor_shape(model.graph.input[0].name)
    agree = agreement(net, model, q, spec.data.set, shape, Fraction(1), labels, source)
    print(f"exported {args.run} to {args.output} ({len(model.graph.node)} nodes; checked by "
          f"onnx and qonnx)")
    print(agree.text())
    return 0 if agree.labels == 1.0 and agree.scores == 1.0 else 1
