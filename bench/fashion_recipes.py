"""Compare training recipes of a network spec on a subset of its data (short runs).

Trains ``SPEC`` on the first ``--images`` training images for ``--epochs`` epochs
(the spec's learning-rate schedule compressed into those epochs) and prints the
training and validation accuracy of every epoch (validation on the first
``--val`` validation images) and the best validation accuracy, so that recipes
can be compared before a full run:

    OPENBLAS_NUM_THREADS=1 nice -n 5 python bench/fashion_recipes.py examples/fashion-mnist-cnn.yaml \\
        --images 10000 --epochs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from fewmul.compiler.spec import load_spec
from fewmul.nn.data import Split, load_dataset
from fewmul.nn.train import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec")
    p.add_argument("--images", type=int, default=10000, help="training images (the first ones)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--val", type=int, default=5000, help="validation images (the first ones)")
    args = p.parse_args()
    spec = load_spec(args.spec)
    data = load_dataset(spec.data)
    n, v = args.images, args.val
    data = dataclasses.replace(data, train=Split(data.train.x[:n], data.train.y[:n]),
                               val=Split(data.val.x[:v], data.val.y[:v]),
                               test=Split(data.test.x[:1000], data.test.y[:1000]))
    spec.train.epochs = args.epochs

    def report(result) -> None:
        m = result.history[-1]
        print(f"{args.spec} epoch {m.epoch}: train {m.train_acc:.4f} val {m.val_acc:.4f} "
              f"({m.seconds:.0f} s)", flush=True)

    t0 = time.perf_counter()
    result = train(data, spec.layers, spec.train, progress=False, on_epoch=report)
    print(f"{args.spec}: best validation {max(h.val_acc for h in result.history):.4f}, "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
