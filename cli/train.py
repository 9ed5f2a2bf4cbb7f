"""``fewmul train SPEC.yaml -o RUN/`` and ``fewmul train --resume RUN/``"""

import sys
from pathlib import Path

from .common import positive_int, print_train


def register(sub) -> None:
    t = sub.add_parser("train", help="train a network spec with the NumPy model",
                       description="Train the network of SPEC and write RUN/model.npz, "
                                   "RUN/spec.yaml (every default filled in), RUN/metrics.json, "
                                   "RUN/curves.png and RUN/checkpoint.npz (after every epoch). "
                                   "Ctrl-C stops and keeps the last checkpoint; --resume RUN/ "
                                   "continues it with the same result as an uninterrupted run.")
    t.add_argument("spec", type=Path, metavar="SPEC.yaml", nargs="?", help="network spec (see examples/)")
    t.add_argument("-o", "--output", type=Path, metavar="RUN", help="run folder to write")
    t.add_argument("--resume", type=Path, metavar="RUN", help="continue the interrupted run in RUN/")
    t.add_argument("--epochs", type=positive_int, help="override train.epochs of the spec")
    t.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="directory of the IDX files (mnist, fashion-mnist); overrides data.dir")
    t.add_argument("--untrained", action="store_true",
                   help="write RUN/ with the initial, untrained weights and read no data: to "
                        "compile and simulate the hardware of a net whose data set is not here "
                        "(then 'fewmul sim --random-images')")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=run)


def run(args) -> int:
    from fewmul.compiler.training import train_run
    if args.resume is not None:
        if args.spec is not None or args.output is not None:
            raise ValueError("--resume RUN/ takes neither SPEC nor -o (the run folder has both)")
        run_dir, spec = args.resume, None
    else:
        if args.spec is None or args.output is None:
            raise ValueError("give SPEC.yaml and -o RUN/ (or --resume RUN/)")
        run_dir, spec = args.output, args.spec
    if args.untrained:
        from fewmul.compiler.training import init_run
        if args.resume is not None or args.epochs is not None:
            raise ValueError("--untrained takes neither --resume nor --epochs")
        init_run(spec, run_dir, data_dir=args.data_dir)
        print(f"untrained run written to {run_dir}/ (model.npz, spec.yaml)")
        return 0
    try:
        summary = train_run(spec, run_dir, epochs=args.epochs, progress=not args.quiet,
                            resume=args.resume is not None, data_dir=args.data_dir)
    except KeyboardInterrupt:
        print(f"fewmul train: interrupted; the last complete epoch is in {run_dir}/checkpoint.npz, "
              f"continue with: fewmul train --resume {run_dir}", file=sys.stderr)
        return 130
    print_train(summary)
    print(f"run written to {run_dir}/ (model.npz, spec.yaml, metrics.json, curves.png)")
    return 0
