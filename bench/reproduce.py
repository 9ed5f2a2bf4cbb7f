"""Reproduce the few-multiplications table: full precision, BC, BC+QBP, TC+QBP.

Trains each method with several seeds on each data set with the papers'
protocol (``x W`` -> batch norm -> ReLU hidden layers, a linear output with
batch norm, squared hinge loss, SGD with the learning rate decaying
geometrically from 0.3 to 0.01, stochastic BinaryConnect / TernaryConnect,
QBP with exponents -4..3) and writes, into ``--out``:

* ``reproduce.md``: test error (mean ± standard deviation over the seeds) at
  the epoch of best validation error, measured both with the hidden
  full-resolution weights (the papers' protocol) and with the deployed
  quantized weights, beside the paper's MNIST row;
* ``reproduce.png``: validation error curves (mean over the seeds);
* ``points/<id>/``: one sweep point per run (data set, method, seed), trained by
  :func:`fewmul.sweep.points.run_point` like any ``fewmul sweep`` point, on the local Dask
  cluster (``--serial``: one after the other in this process; ``--scheduler ADDRESS``: an
  existing cluster), so an interrupted reproduction picks up where it stopped.

    python bench/reproduce.py --sets digits fashion-mnist --epochs fashion-mnist=2 digits=100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from fewmul.nn.artifacts import read_json
from fewmul.sweep.points import DONE, Point, Stages, point_id
from fewmul.sweep.run import run_points

#: method -> (weights, qbp)
METHODS = {"full precision": ("float", False), "BC": ("binary", False),
           "BC + QBP": ("binary", True), "TC + QBP": ("ternary", True)}
#: The paper's MNIST test errors (%), seed 001.
PAPER_MNIST = {"full precision": 1.33, "BC": 1.23, "BC + QBP": 1.29, "TC + QBP": 1.15}
#: Hidden layers and batch per data set ("same architecture and protocol" as MNIST for the 28x28 sets).
NETS = {"digits": ((256, 256), 100), "fashion-mnist": ((1024, 1024, 1024), 200),
        "mnist": ((1024, 1024, 1024), 200)}


def point(set_name: str, method: str, seed: int, epochs: int) -> Point:
    """The sweep point of one run: the papers' protocol as a network spec, trained only."""
    weights, qbp = METHODS[method]
    hidden, batch = NETS[set_name]
    layers = [{"units": u, "weights": weights, "act": "relu"} for u in hidden]
    spec = {"name": f"{set_name}-{method}", "data": {"set": set_name,
                                                     "input_bits": 4 if set_name == "digits" else 8},
            "layers": layers + [{"units": 10, "weights": weights, "act": "none"}],
            "train": {"epochs": epochs, "seed": seed, "quantize": "stochastic", "qbp": qbp,
                      "loss": "squared_hinge",
                      "optimizer": {"name": "sgd", "lr": 0.3, "lr_final": 0.01, "batch": batch}}}
    values = {"set": set_name, "method": method, "seed": seed, "epochs": epochs}
    return Point(point_id(values), values, yaml.safe_dump(spec, sort_keys=False),
                 stages=Stages(train=True, compile=False))


def run_record(out: Path, p: Point) -> dict:
    """The figures of a finished point: test errors at the epochs of best validation."""
    folder = out / "points" / p.id
    hist = read_json(folder / "run" / "metrics.json")["epochs"]
    best_float = int(np.argmax([h["val_acc_float"] for h in hist]))
    best_dep = int(np.argmax([h["val_acc"] for h in hist]))
    return {**p.values, "seconds": read_json(folder / "result.json")["seconds"],
            "test_err_paper": 100 * (1 - hist[best_float]["test_acc_float"]),
            "test_err_deployed": 100 * (1 - hist[best_dep]["test_acc"]),
            "history": hist}


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def table(runs: list[dict], sets: list[str], seeds: int, epochs: dict[str, int]) -> str:
    head = "| test error % | " + " | ".join(METHODS) + " |\n|---|" + "---|" * len(METHODS) + "\n"
    lines = []
    for s in sets:
        for key, what in (("test_err_paper", "hidden weights"), ("test_err_deployed", "deployed")):
            cells = [_cell([r[key] for r in runs if r["set"] == s and r["method"] == m]) for m in METHODS]
            lines.append(f"| {s}, {what} ({epochs[s]} epochs, {seeds} seeds) | " + " | ".join(cells) + " |")
    lines.append("| MNIST, paper (1000 epochs) | " + " | ".join(f"{PAPER_MNIST[m]:.2f}" for m in METHODS) + " |")
    return head + "\n".join(lines) + "\n"


def plot(runs: list[dict], sets: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 3.6), squeeze=False)
    for ax, s in zip(axes[0], sets):
        for m in METHODS:
            curves = [[100 * (1 - h["val_acc_float"]) for h in r["history"]]
                      for r in runs if r["set"] == s and r["method"] == m]
            if curves:
                n = min(map(len, curves))
                ax.plot(np.arange(1, n + 1), np.mean([c[:n] for c in curves], 0), marker=".", label=m)
        ax.set_title(f"{s}: validation error (hidden weights)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("error %")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", default=["digits", "fashion-mnist"], choices=list(NETS))
    p.add_argument("--epochs", nargs="+", default=["digits=100", "fashion-mnist=2", "mnist=2"],
                   metavar="SET=N", help="epoch budget per data set")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                   help="methods to train (default: all four)")
    p.add_argument("--out", type=Path, default=Path("build/reproduce"))
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler to use")
    p.add_argument("--workers", type=int, help="worker processes of the local cluster")
    p.add_argument("--serial", action="store_true", help="train one run after the other here")
    args = p.parse_args()
    epochs = {k: int(v) for k, v in (e.split("=") for e in args.epochs)}
    points = [point(s, m, seed, epochs[s]) for s in args.sets for seed in range(args.seeds)
              for m in args.methods]
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_points(points, args.out, scheduler=args.scheduler, workers=args.workers,
                        serial=args.serial, desc="reproduce")
    runs = []
    for pt in points:
        outcome = result.outcomes[pt.id]
        if outcome.status != DONE:
            print(f"{pt.values['set']:>14} {pt.values['method']:>15} seed "
                  f"{pt.values['seed']}: {outcome.status}: {outcome.error}")
            continue
        r = run_record(args.out, pt)
        print(f"{r['set']:>14} {r['method']:>15} seed {r['seed']}: test error "
              f"{r['test_err_paper']:.2f} % (hidden weights), {r['test_err_deployed']:.2f} % "
              f"(deployed), {r['seconds']:.0f} s", flush=True)
        runs.append(r)
    sets = [x for x in args.sets if any(r["set"] == x for r in runs)]
    md = table(runs, sets, args.seeds, epochs)
    (args.out / "reproduce.md").write_text(md)
    if sets:
        plot(runs, sets, args.out / "reproduce.png")
    print(md)


if __name__ == "__main__":
    main()
