"""``fewmul import MODEL.onnx -o RUN/``"""

from pathlib import Path

from .common import positive_int


def register(sub) -> None:
    p = sub.add_parser("import", help="import a QONNX model (Brevitas, FINN, QKeras) as a run",
                       description="Map a QONNX model onto fewmul's network exactly and write "
                                   "RUN/ (net.npz: the exact network, model.npz, spec.yaml, "
                                   "metrics.json) for 'fewmul compile'. The model's input is "
                                   "the pixels scaled to [0, 1]. Prints how often the golden "
                                   "model agrees with qonnx's execution of the model. A model "
                                   "that is not exactly representable is refused (exit 2).")
    p.add_argument("model", type=Path, metavar="MODEL.onnx",
                   help="QONNX model (its external data file, if any, beside it)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="RUN",
                   help="run folder to write")
    p.add_argument("--data", metavar="SET", default=None,
                   help="data set of its inputs (default: the one whose image shape fits)")
    p.add_argument("--input-bits", type=positive_int, default=None, metavar="K",
                   help="bits per input pixel (default: the data set's)")
    p.add_argument("--name", default=None, help="network name (default: the file's stem)")
    p.add_argument("--images", type=positive_int, default=None, metavar="N",
                   help="compare on the first N test images (default: all; 1000 random inputs "
                        "without the data set)")
    p.set_defaults(func=run)


def run(args) -> int:
    from fewmul.interop.check import agreement, sample_images
    from fewmul.interop.qonnx_import import import_qonnx, write_run
    imported = import_qonnx(args.model, data_set=args.data, input_bits=args.input_bits,
                            name=args.name)
    spec = imported.spec
    q, labels, source = sample_images(spec.data.set, spec.data.input_bits, args.images)
    shape = imported.model.get_tensor_shape(imported.model.graph.input[0].name)
    agree = agreement(imported.net, imported.model, q, spec.data.set, shape,
                      imported.output_scale, labels, source)
    write_run(imported, args.output, agree.to_dict())
    layers = " -> ".join(str(layer.units) for layer in imported.net.layers)
    print(f"imported {args.model} ({spec.data.set}, {spec.data.input_bits}-bit input): "
          f"{len(imported.net.layers)} layers, {layers}; output scale {imported.output_scale}")
    print(agree.text())
    print(f"run written to {args.output}/ (net.npz, model.npz, spec.yaml, metrics.json)")
    return 0
