"""Time one Fashion-MNIST training epoch of 784-1024x3-10 in fewmul and in PyTorch.

Both train the same net -- ``x W`` -> batch norm -> ReLU, three 1024-unit
hidden layers, a 10-unit output with batch norm, squared hinge loss, SGD,
batch 200 -- on the same float32 data in the same process, one after the
other, and the script prints the time ratio fewmul / PyTorch (below 1.0:
fewmul is faster). Weights: ``float`` (full precision), ``binary``
(deterministic BinaryConnect, straight-through, hidden weights clipped) and
``ternary-qbp`` (stochastic TernaryConnect + quantized back-propagation, the
PyTorch side written as a custom autograd function doing the same rounding).

PyTorch is not a dependency of fewmul: ``pip install torch==2.13.0`` into the
virtualenv to run this benchmark.

    python bench/trainer_vs_torch.py [--images 50000] [--threads N] [--methods float binary ternary-qbp]

``--threads N`` gives both libraries N BLAS threads (on a machine shared with
other jobs, 1 thread is often faster than 2).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if "--threads" in sys.argv[:-1]:      # must be set before NumPy loads its BLAS
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import numpy as np

from fewmul.nn.config import DataConfig, LayerConfig, OptimizerConfig, TrainConfig
from fewmul.nn.data import load_dataset
from fewmul.nn.model import Model
from fewmul.nn.optim import Optimizer
from fewmul.nn.quantize import glorot_scale
from fewmul.nn.train import train_epoch

HIDDEN = (1024, 1024, 1024)
BATCH = 200
LR = 0.01


def fewmul_epoch(x: np.ndarray, y: np.ndarray, method: str, seed: int) -> float:
    weights = {"float": "float", "binary": "binary", "ternary-qbp": "ternary"}[method]
    layers = [LayerConfig(u, weights, "relu") for u in HIDDEN] + [LayerConfig(10, weights, "none")]
    tcfg = TrainConfig(epochs=1, seed=seed, quantize="stochastic" if method == "ternary-qbp" else
                       "deterministic", qbp=method == "ternary-qbp", loss="squared_hinge",
                       optimizer=OptimizerConfig("sgd", LR, LR, BATCH))
    model = Model.init(x.shape[1], layers, seed)
    opt = Optimizer(model, tcfg.optimizer)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    train_epoch(model, opt, x, y, tcfg, rng, LR)
    return time.perf_counter() - t0


def torch_epoch(x: np.ndarray, y: np.ndarray, method: str, seed: int) -> float:
    import torch
    torch.manual_seed(seed)
    sizes = (x.shape[1],) + HIDDEN + (10,)
    binary, tqbp = method == "binary", method == "ternary-qbp"

    def qbp_round(x):   # the same unbiased power-of-two rounding as fewmul.nn.quantize.qbp_round
        lo, hi = 2.0 ** -4, 2.0 ** 3
        ax = x.abs()
        e = (torch.frexp(ax.clamp(min=lo)).exponent - 1).clamp(-4, 3)
        low = torch.ldexp(torch.ones_like(ax), e)
        below = ax < lo
        base = torch.where(below, torch.zeros_like(ax), low)
        step = torch.where(below, torch.full_like(ax, lo), low)
        up = torch.rand_like(ax) < (ax - base) / step
        return torch.sign(x) * torch.where(up, base + step, base).clamp(max=hi)

    class QbpMatmul(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h, wq):
            ctx.save_for_backward(h, wq)
            return h @ wq

        @staticmethod
        def backward(ctx, g):
            h, wq = ctx.saved_tensors
            return g @ wq.T, qbp_round(h).T @ g

    class Dense(torch.nn.Module):
        def __init__(self, n: int, m: int):
            super().__init__()
            self.w0 = glorot_scale(n, m)
            self.weight = torch.nn.Parameter(torch.empty(n, m).uniform_(-self.w0, self.w0))
            self.bn = torch.nn.BatchNorm1d(m, eps=1e-4, momentum=0.1)

        def forward(self, h):
            w = self.weight
            if binary:   # sign(w) * w0 forward, identity backward (straight through)
                w = w + (torch.where(w >= 0, self.w0, -self.w0) - w).detach()
            if tqbp:     # stochastic ternary forward, straight through, QBP weight gradient
                keep = torch.rand_like(w) * self.w0 < w.abs()
                w = w + (keep * torch.copysign(torch.tensor(self.w0), w) - w).detach()
                return self.bn(QbpMatmul.apply(h, w))
            return self.bn(h @ w)

    layers = torch.nn.ModuleList(Dense(n, m) for n, m in zip(sizes[:-1], sizes[1:]))
    opt = torch.optim.SGD(layers.parameters(), lr=LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    targets = -torch.ones(len(yt), 10)
    targets[torch.arange(len(yt)), yt] = 1
    t0 = time.perf_counter()
    order = torch.randperm(len(yt))
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        h = xt[idx]
        for i, layer in enumerate(layers):
            h = layer(h)
            if i < len(layers) - 1:
                h = torch.relu(h)
        loss = torch.clamp(1 - targets[idx] * h, min=0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if binary or tqbp:
            with torch.no_grad():
                for layer in layers:
                    layer.weight.clamp_(-layer.w0, layer.w0)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=50000, help="training images (default: the epoch, 50000)")
    p.add_argument("--methods", nargs="+", default=["float", "binary", "ternary-qbp"],
                   choices=["float", "binary", "ternary-qbp"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="BLAS threads for both (default: each library's own)")
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        raise SystemExit("PyTorch is needed for this benchmark only: pip install torch==2.13.0")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(DataConfig("fashion-mnist", 8))
    x = data.scale(data.train.x[:args.images])
    y = data.train.y[:args.images]
    print(f"one epoch of {len(y)} Fashion-MNIST images, 784-1024x3-10, batch {BATCH}; "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, numpy {np.__version__} "
          f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})")
    for method in args.methods:
        t_torch = torch_epoch(x, y, method, args.seed)
        t_fewmul = fewmul_epoch(x, y, method, args.seed)
        print(f"{method:>12}: fewmul {t_fewmul:7.2f} s, PyTorch {t_torch:7.2f} s, "
              f"ratio fewmul/PyTorch {t_fewmul / t_torch:.2f}", flush=True)


if __name__ == "__main__":
    main()
