"""Test accuracy of on-chip training: the integer golden model and its float twin.

Trains the integer golden model of the on-chip trainer (:class:`fewmul.nn.onchip.OnChipNet`,
bit-exact with the gateware) on a spec's data, one sample per step in the order the
testbench feeds them, with the :class:`~fewmul.nn.onchip.FloatTwin` beside it (the same
algorithm and random draws in floating point, no rounding), and prints the test accuracy of
both, the share of effective weights on which they agree and the golden model's steps/s.

Runs (``--runs``):

``digits-1``
    ``examples/digits-onchip.yaml``: 64 -> 64 -> 10, binary, 1000 steps (the one-layer
    trainer's figure, 88.6 %).
``digits-binary``, ``digits-ternary``
    ``examples/digits-onchip-deep.yaml``: 64 -> 128 -> 128 -> 10, binary or ternary
    weights, 2 epochs (goal >= 92 %).
``fashion``, ``fashion-ternary``
    ``examples/fashion-onchip.yaml``: 784 -> 256 -> 256 -> 10, 8-bit pixels, binary or
    ternary weights, 1 epoch of the 50,000 training images (goal >= 80 %).

    python bench/onchip_accuracy.py [--runs digits-binary digits-ternary fashion]
                                    [--seeds 0 1 2] [--epochs E] [--steps N] [--no-twin]
                                    [--set lr_shifts=6,3,2 --set batch_shift=1 ...]
                                    [--eval-every N] [--markdown FILE] [--split val]

``--seeds`` trains once per seed (the initial weights and the sample order; the LFSR seed
stays the spec's) and prints each and the mean. ``--set FIELD=VALUE`` replaces a field of
the :class:`~fewmul.arith.onchip.OnChipConfig` the spec gives (comma-separated for the
per-layer tuples), to try other scales without editing the spec. ``--markdown FILE`` writes
the table and the accuracy curves.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from fewmul.arith.onchip import OnChipConfig
from fewmul.compiler.onchip_config import onchip_config
from fewmul.compiler.spec import load_spec
from fewmul.nn.data import load_dataset
from fewmul.nn.onchip import FloatTwin, OnChipNet, effective_weights, train_order

ROOT = Path(__file__).resolve().parent.parent

#: name -> (spec, OnChipConfig overrides, epochs or None, steps or None)
RUNS = {
    "digits-1": ("examples/digits-onchip.yaml", {}, None, 1000),
    "digits-binary": ("examples/digits-onchip-deep.yaml", {"weights": "binary"}, 2, None),
    "digits-ternary": ("examples/digits-onchip-deep.yaml", {"weights": "ternary"}, 2, None),
    "fashion": ("examples/fashion-onchip.yaml", {"weights": "binary"}, 1, None),
    "fashion-ternary": ("examples/fashion-onchip.yaml", {"weights": "ternary"}, 1, None),
}


def _parse_set(items: list[str]) -> dict:
    """``["lr_shifts=6,3,2", "batch_shift=1", "weights=ternary"]`` -> config overrides."""
    kinds = {f.name: f.type for f in dataclasses.fields(OnChipConfig)}
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in kinds:
            raise SystemExit(f"--set takes FIELD=VALUE with FIELD one of {', '.join(kinds)}, "
                             f"not {item!r}")
        if "tuple" in str(kinds[name]):
            out[name] = tuple(int(v) for v in value.split(","))
        elif name == "weights":
            out[name] = value
        else:
            out[name] = int(value, 0)
    return out


def agreement(net: OnChipNet, twin: FloatTwin) -> float:
    """Share of effective weights (signs, or ternary values) the two nets agree on."""
    cfg = net.cfg
    same = [effective_weights(w, cfg) == effective_weights(f, cfg)
            for w, f in zip(net.weights, twin.weights)]
    return float(np.mean(np.concatenate([s.ravel() for s in same])))


def train(cfg: OnChipConfig, data, steps: int, order_seed: int, *, twin: bool = True,
          eval_every: int | None = None) -> dict:
    """Train ``steps`` samples; the result's accuracies, agreement, curve and speed."""
    net = OnChipNet.init(cfg)
    flt = FloatTwin(net) if twin else None
    order = train_order(len(data.train), steps, order_seed)
    x, y = data.train.x, data.train.y
    curve = []
    golden_s = twin_s = 0.0
    eval_every = eval_every or max(1, steps // 10)
    for start in range(0, steps, eval_every):
        chunk = order[start:start + eval_every]
        t0 = time.perf_counter()
        for i in chunk:
            net.step(x[i], y[i])
        golden_s += time.perf_counter() - t0
        if flt is not None:
            t0 = time.perf_counter()
            for i in chunk:
                flt.step(x[i], y[i])
            twin_s += time.perf_counter() - t0
        point = {"step": start + len(chunk),
                 "test_acc": net.accuracy(data.test.x, data.test.y)}
        if flt is not None:
            point["twin_test_acc"] = flt.accuracy(data.test.x, data.test.y)
        curve.append(point)
    result = {"steps": steps, "test_acc": curve[-1]["test_acc"], "curve": curve,
              "golden_steps_per_s": steps / golden_s, "golden_s": golden_s}
    if flt is not None:
        result.update(twin_test_acc=curve[-1]["twin_test_acc"], agreement=agreement(net, flt),
                      twin_s=twin_s)
    return result


def _net(cfg: OnChipConfig) -> str:
    return " -> ".join(map(str, cfg.sizes))


def _scales(cfg: OnChipConfig) -> str:
    return (f"lr {list(cfg.lr_shifts)}, gate {list(cfg.gate_shifts)}, backprop "
            f"{list(cfg.backprop_shifts)}, margin 2^{cfg.score_shift}, batch {cfg.batch}, "
            f"clip 2^{cfg.weight_bits}, decay every {cfg.lr_decay_steps} x{cfg.lr_decay_max}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", default=["digits-binary", "digits-ternary"],
                        choices=list(RUNS))
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="initial-weight and order seeds (default: the spec's)")
    parser.add_argument("--epochs", type=float, default=None, help="override every run's length")
    parser.add_argument("--steps", type=int, default=None, help="override every run's length")
    parser.add_argument("--no-twin", action="store_true", help="skip the float twin")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="score on the test images (default) or on the validation images, "
                             "to choose settings without looking at the test set")
    args = parser.parse_args(argv)
    if args.split == "val":
        print("accuracies below are on the validation images, not the test images")
    overrides = _parse_set(args.set)

    rows, lines = [], []
    datasets = {}
    for name in args.runs:
        path, run_overrides, epochs, steps = RUNS[name]
        spec = load_spec(ROOT / path)
        cfg = onchip_config(spec, path, **{**run_overrides, **overrides})
        key = (spec.data.set, spec.data.input_bits)
        if key not in datasets:
            datasets[key] = load_dataset(spec.data)
            if args.split == "val":
                datasets[key] = dataclasses.replace(datasets[key], test=datasets[key].val)
        data = datasets[key]
        if args.steps or args.epochs:
            epochs, steps = args.epochs, args.steps
        steps = steps or round(epochs * len(data.train))
        seeds = args.seeds if args.seeds is not None else [spec.train.seed]
        results = []
        for seed in seeds:
            run_cfg = dataclasses.replace(cfg, seed=seed)
            result = train(run_cfg, data, steps, seed, twin=not args.no_twin,
                           eval_every=args.eval_every)
            results.append(result)
            twin = (f", float twin {100 * result['twin_test_acc']:.1f} %, "
                    f"{100 * result['agreement']:.1f} % of weights agree"
                    if "twin_test_acc" in result else "")
            print(f"{name} seed {seed}: {_net(cfg)} {cfg.weights}, {steps} steps: test "
                  f"{100 * result['test_acc']:.1f} %{twin}; golden model "
                  f"{result['golden_steps_per_s']:.0f} steps/s", flush=True)
        mean = float(np.mean([r["test_acc"] for r in results]))
        twin_mean = (float(np.mean([r["twin_test_acc"] for r in results]))
                     if "twin_test_acc" in results[0] else None)
        rows.append((name, cfg, steps, seeds, results, mean, twin_mean))
        print(f"{name}: mean test accuracy {100 * mean:.2f} % over seeds {seeds}"
              + (f" (float twin {100 * twin_mean:.2f} %)" if twin_mean is not None else "")
              + f"; {_scales(cfg)}", flush=True)

    lines += ["| run | net | weights | steps | seeds | test accuracy (golden) | float twin "
              "| weights agree | golden steps/s |", "|---|---|---|---|---|---|---|---|---|"]
    for name, cfg, steps, seeds, results, mean, twin_mean in rows:
        each = ", ".join(f"{100 * r['test_acc']:.1f}" for r in results)
        twin = f"{100 * twin_mean:.1f} %" if twin_mean is not None else "-"
        agree = (f"{100 * np.mean([r['agreement'] for r in results]):.1f} %"
                 if twin_mean is not None else "-")
        speed = np.mean([r["golden_steps_per_s"] for r in results])
        lines.append(f"| {name} | {_net(cfg)} | {cfg.weights} | {steps} | {seeds} | "
                     f"**{100 * mean:.1f} %** ({each}) | {twin} | {agree} | {speed:.0f} |")
    print("\n".join(lines))
    if args.markdown:
        text = ["# On-chip training accuracy (golden model and float twin)", "",
                f"`python bench/onchip_accuracy.py {' '.join(argv or sys.argv[1:])}`", "",
                *lines, ""]
        for name, cfg, steps, seeds, results, mean, twin_mean in rows:
            text += [f"## {name}", "", f"{_net(cfg)}, {cfg.weights}; {_scales(cfg)}", "",
                     "| step | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                     "|---|" + "---|" * len(seeds)]
            for i, point in enumerate(results[0]["curve"]):
                cells = []
                for r in results:
                    p = r["curve"][i]
                    twin = f" / {100 * p['twin_test_acc']:.1f}" if "twin_test_acc" in p else ""
                    cells.append(f"{100 * p['test_acc']:.1f}{twin}")
                text.append(f"| {point['step']} | " + " | ".join(cells) + " |")
            text.append("")
        args.markdown.write_text("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
