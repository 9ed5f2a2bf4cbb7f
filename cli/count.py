"""``fewmul count SPEC.yaml``: multiplications, additions and shifts of training and inference."""

from pathlib import Path

from .common import positive_int


def register(sub) -> None:
    c = sub.add_parser("count", help="count the multiplications of a training step and an inference",
                       description="Print the multiplications (and additions, shifts) of one "
                                   "training step and of one inference, per layer and in total, "
                                   "for full-precision weights and for the spec's method (its "
                                   "weight quantizers and train.qbp). The counting rule is the "
                                   "one that reproduces the few-multiplications slides (see "
                                   "fewmul.nn.count).")
    c.add_argument("spec", type=Path, metavar="SPEC.yaml", help="network spec")
    c.add_argument("--batch", type=positive_int, default=None,
                   help="samples per training step (default: train.optimizer.batch)")
    c.add_argument("--bn", choices=["spec", "on", "off"], default="spec",
                   help="count batch norm as the spec has it (default), in every layer, or nowhere")
    c.set_defaults(func=run)


def _fmt(v: int) -> str:
    return f"{v:.4e}" if v else "0"


def _describe(cfg) -> str:
    """A layer in a few characters: ``1024``, ``conv3x3:32``, ``conv3x3:32/s2same``, ``pool2``."""
    if cfg.kind == "maxpool":
        return f"pool{cfg.size}"
    if cfg.kind == "conv":
        extra = (f"s{cfg.stride}" if cfg.stride != 1 else "") + (cfg.padding if cfg.padding != "valid" else "")
        return f"conv{cfg.kernel}x{cfg.kernel}:{cfg.units}" + (f"/{extra}" if extra else "")
    return str(cfg.units)


def architecture(shape: tuple[int, int, int], layers) -> str:
    """``784-1024-10`` for a fully-connected net, ``28x28x1-conv3x3:32-pool2-10`` otherwise."""
    c, h, w = shape
    dense = all(cfg.kind == "dense" for cfg in layers)
    return "-".join([str(c * h * w) if dense else f"{h}x{w}x{c}"] + [_describe(cfg) for cfg in layers])


def run(args) -> int:
    from fewmul.compiler.spec import load_spec
    from fewmul.nn.count import count_network, total
    from fewmul.nn.data import SHAPES
    spec = load_spec(args.spec)
    inputs = SHAPES[spec.data.set]
    batch = args.batch or spec.train.optimizer.batch
    bn = {"spec": None, "on": True, "off": False}[args.bn]
    method = "+".join(sorted({l.weights for l in spec.layers if l.kind != "maxpool"})) + \
        ("+QBP" if spec.train.qbp else "")
    kinds = {"float": count_network(inputs, spec.layers, batch, qbp=False, bn=bn,
                                    bn_kind=spec.train.bn_kind, weights="float"),
             method: count_network(inputs, spec.layers, batch, qbp=spec.train.qbp, bn=bn,
                                   bn_kind=spec.train.bn_kind)}
    print(f"{spec.name}: {architecture(inputs, spec.layers)}, batch {batch}, batch norm {args.bn}")
    for which, title in (("train", f"one training step ({batch} samples)"), ("infer", "one inference")):
        print(f"\n{title}")
        print(f"{'#':>8} {'layer':>16}  " + "  ".join(
            f"{k + ' mul':>14} {'add':>11} {'shift':>11}" for k in kinds))
        rows = list(zip(*kinds.values()))
        for i, layer_ops in enumerate(rows):
            cells = "  ".join(f"{_fmt(getattr(o, which).mul):>14} {_fmt(getattr(o, which).add):>11} "
                              f"{_fmt(getattr(o, which).shift):>11}" for o in layer_ops)
            print(f"{i:>8} {_describe(spec.layers[i]):>16}  {cells}")
        tot = [total(v, which) for v in kinds.values()]
        cells = "  ".join(f"{_fmt(t.mul):>14} {_fmt(t.add):>11} {_fmt(t.shift):>11}" for t in tot)
        print(f"{'total':>8} {'':>16}  {cells}")
        ratio = tot[1].mul / tot[0].mul if tot[0].mul else float("nan")
        print(f"multiplications: float {tot[0].mul:.4e}, {method} {tot[1].mul:.4e}, ratio {ratio:.6f}")
    return 0
