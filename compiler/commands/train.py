"""``fewmul train SPEC.yaml -o RUN/``"""

from pathlib import Path

from .common import positive_int, print_train


def register(sub) -> None:
    t = sub.add_parser("train", help="train a network spec with the NumPy model",
                       description="Train the network of SPEC and write RUN/model.npz, "
                                   "RUN/spec.yaml (every default filled in), RUN/metrics.json "
                                   "and RUN/curves.png.")
    t.add_argument("spec", type=Path, metavar="SPEC.yaml", help="network spec (see examples/)")
    t.add_argument("-o", "--output", type=Path, required=True, metavar="RUN", help="run folder to write")
    t.add_argument("--epochs", type=positive_int, help="override train.epochs of the spec")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=run)


def run(args) -> int:
    from ..training import train_run
    summary = train_run(args.spec, args.output, epochs=args.epochs, progress=not args.quiet)
    print_train(summary)
    print(f"run written to {args.output}/ (model.npz, spec.yaml, metrics.json, curves.png)")
    return 0
