"""Time training epochs of fewmul and of PyTorch on the same nets, data and batches.

Both train the same net -- ``x W`` or a convolution -> batch norm -> ReLU (max-pooling
after some convolutions), a 10-unit output with batch norm, squared hinge loss,
SGD -- on the same float32 data in the same process, one after the other, and
the script prints the time ratio fewmul / PyTorch (below 1.0: fewmul is faster).
A max-pool pools the convolution's sums before batch norm (``--pools sums``, fewmul's
default, BinaryNet's order) or its activations (``--pools activations``, FINN's order);
both libraries pool the same thing.

Nets (``--nets``):

``mlp``
    784-1024x3-10 on Fashion-MNIST, batch 200 (the few-multiplications MNIST net).
``cnv``
    A CNV-like net (FINN's CNV shape) on random 32x32x3 images, batch 100:
    conv3x3 64, 64, pool 2, conv3x3 128, 128, pool 2, conv3x3 256, 256 (all
    ``valid``), dense 512, 512, 10.
``fashion-conv``
    A small conv net on Fashion-MNIST, batch 100: conv3x3 32 (``same``), pool 2,
    conv3x3 64 (``same``), pool 2, dense 512, 10.

Weights (``--methods``): ``float`` (full precision), ``binary`` (deterministic
BinaryConnect, straight-through, hidden weights clipped) and ``ternary-qbp``
(stochastic TernaryConnect + quantized back-propagation, the PyTorch side written
as custom autograd functions doing the same rounding: of the layer input for a
dense layer, of every window element for a convolution, as fewmul does).

PyTorch is not a dependency of fewmul: ``pip install torch`` into the
virtualenv to run this benchmark.

    python bench/trainer_vs_torch.py [--nets mlp cnv fashion-conv] [--images N] [--threads N]
                                     [--methods float binary ternary-qbp] [--repeat R]
                                     [--pools sums|activations]

``--images`` overrides every net's default image count (mlp: the epoch, 50000;
cnv: 1000; fashion-conv: 10000), so that the whole run takes minutes.
``--threads N`` gives both libraries N BLAS threads (on a machine shared with
other jobs, 1 thread is often faster than 2). ``--repeat R`` times every epoch R
times, the two libraries taking turns, and reports the fastest of each (other
jobs on the machine only ever slow a run down).

The header names the kernels each library runs. PyTorch picks its own for the
processor; NumPy's OpenBLAS picks its own too, unless ``OPENBLAS_CORETYPE`` tells
it otherwise (some machines set it, for older OpenBLAS builds that fail on their
processor): an AVX2 kernel on an AVX-512 processor makes every product slower than
PyTorch's. To compare like with like there, unset it for that command alone::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/trainer_vs_torch.py ...
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

LR = 0.01
METHODS = ("float", "binary", "ternary-qbp")

# A net: its data, batch, default image count and layers as ("dense", units),
# ("conv", filters, padding) or ("pool", size); the last layer is the 10-unit output.
NETS = {
    "mlp": ("fashion-mnist", 200, 50000,
            [("dense", 1024), ("dense", 1024), ("dense", 1024), ("dense", 10)]),
    "cnv": ("random-32x32x3", 100, 1000,
            [("conv", 64, "valid"), ("conv", 64, "valid"), ("pool", 2),
             ("conv", 128, "valid"), ("conv", 128, "valid"), ("pool", 2),
             ("conv", 256, "valid"), ("conv", 256, "valid"),
             ("dense", 512), ("dense", 512), ("dense", 10)]),
    "fashion-conv": ("fashion-mnist", 100, 10000,
                     [("conv", 32, "same"), ("pool", 2), ("conv", 64, "same"), ("pool", 2),
                      ("dense", 512), ("dense", 10)]),
}


def describe(layers) -> str:
    return "-".join(f"conv3x3:{l[1]}" if l[0] == "conv" else f"pool{l[1]}" if l[0] == "pool"
                    else str(l[1]) for l in layers)


def fewmul_epoch(x: np.ndarray, y: np.ndarray, shape: tuple[int, int, int], net, batch: int,
                 method: str, seed: int, pools: str) -> float:
    weights = {"float": "float", "binary": "binary", "ternary-qbp": "ternary"}[method]
    layers = []
    for i, spec in enumerate(net):
        act = "none" if i == len(net) - 1 else "relu"
        if spec[0] == "dense":
            layers.append(LayerConfig(spec[1], weights, act))
        elif spec[0] == "conv":
            layers.append(LayerConfig(spec[1], weights, act, kind="conv", kernel=3, padding=spec[2]))
        else:
            layers.append(LayerConfig(kind="maxpool", size=spec[1], pools=pools))
    tcfg = TrainConfig(epochs=1, seed=seed, quantize="stochastic" if method == "ternary-qbp" else
                       "deterministic", qbp=method == "ternary-qbp", loss="squared_hinge",
                       optimizer=OptimizerConfig("sgd", LR, LR, batch))
    model = Model.init(shape, layers, seed)
    opt = Optimizer(model, tcfg.optimizer)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    train_epoch(model, opt, x, y, tcfg, rng, LR)
    return time.perf_counter() - t0


def torch_epoch(x: np.ndarray, y: np.ndarray, shape: tuple[int, int, int], net, batch: int,
                method: str, seed: int, pools: str) -> float:
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
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

    class QbpConv(torch.autograd.Function):
        """conv2d whose weight gradient uses the windows rounded element by element."""
        @staticmethod
        def forward(ctx, h, wq, padding):
            ctx.save_for_backward(h, wq)
            ctx.padding = padding
            return F.conv2d(h, wq, padding=padding)

        @staticmethod
        def backward(ctx, g):
            h, wq = ctx.saved_tensors
            gh = torch.nn.grad.conv2d_input(h.shape, wq, g, padding=ctx.padding)
            cols = qbp_round(F.unfold(h, wq.shape[2:], padding=ctx.padding))   # (n, C k k, L)
            gw = torch.einsum("ncl,nol->oc", cols, g.flatten(2)).reshape(wq.shape)
            return gh, gw, None

    def quantized(w, w0):
        if binary:   # sign(w) * w0 forward, identity backward (straight through)
            return w + (torch.where(w >= 0, w0, -w0) - w).detach()
        if tqbp:     # stochastic ternary forward, straight through
            keep = torch.rand_like(w) * w0 < w.abs()
            return w + (keep * torch.copysign(torch.tensor(w0), w) - w).detach()
        return w

    class Dense(torch.nn.Module):
        def __init__(self, n: int, m: int):
            super().__init__()
            self.w0 = glorot_scale(n, m)
            self.weight = torch.nn.Parameter(torch.empty(n, m).uniform_(-self.w0, self.w0))
            self.bn = torch.nn.BatchNorm1d(m, eps=1e-4, momentum=0.1)

        def forward(self, h):
            h = h.flatten(1)
            w = quantized(self.weight, self.w0)
            return self.bn(QbpMatmul.apply(h, w) if tqbp else h @ w)

    class Conv(torch.nn.Module):
        def __init__(self, c: int, m: int, padding: str):
            super().__init__()
            self.w0 = glorot_scale(9 * c, m)
            self.weight = torch.nn.Parameter(torch.empty(m, c, 3, 3).uniform_(-self.w0, self.w0))
            self.bn = torch.nn.BatchNorm2d(m, eps=1e-4, momentum=0.1)
            self.padding = 1 if padding == "same" else 0
            self.pool = 1                   # a max-pool of the sums, before batch norm

        def forward(self, h):
            w = quantized(self.weight, self.w0)
            z = QbpConv.apply(h, w, self.padding) if tqbp else F.conv2d(h, w, padding=self.padding)
            return self.bn(F.max_pool2d(z, self.pool) if self.pool > 1 else z)

    c, hgt, wid = shape
    layers, acts = torch.nn.ModuleList(), []
    for i, spec in enumerate(net):
        if spec[0] == "dense":
            layers.append(Dense(c * hgt * wid, spec[1]))
            c, hgt, wid = spec[1], 1, 1
        elif spec[0] == "conv":
            layers.append(Conv(c, spec[1], spec[2]))
            if spec[2] == "valid":
                hgt, wid = hgt - 2, wid - 2
            c = spec[1]
        elif pools == "sums":
            layers[-1].pool = spec[1]
            layers.append(torch.nn.Identity())
            hgt, wid = hgt // spec[1], wid // spec[1]
        else:
            layers.append(torch.nn.MaxPool2d(spec[1]))
            hgt, wid = hgt // spec[1], wid // spec[1]
        acts.append(spec[0] != "pool" and i < len(net) - 1)
    params = [p for p in layers.parameters()]
    opt = torch.optim.SGD(params, lr=LR)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if len(net) and net[0][0] != "dense":     # images (n, H, W, C) -> (n, C, H, W)
        xt = xt.reshape(len(xt), shape[1], shape[2], shape[0]).permute(0, 3, 1, 2).contiguous()
    targets = -torch.ones(len(yt), 10)
    targets[torch.arange(len(yt)), yt] = 1
    t0 = time.perf_counter()
    order = torch.randperm(len(yt))
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        h = xt[idx]
        for layer, act in zip(layers, acts):
            h = layer(h)
            if act:
                h = torch.relu(h)
        loss = torch.clamp(1 - targets[idx] * h, min=0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if binary or tqbp:
            with torch.no_grad():
                for layer in layers:
                    if hasattr(layer, "w0"):
                        layer.weight.clamp_(-layer.w0, layer.w0)
    return time.perf_counter() - t0


def load(name: str, images: int, seed: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """``(x, y, (C, H, W))``: float32 rows in ``(H, W, C)`` order, labels."""
    if name == "random-32x32x3":
        rng = np.random.default_rng(seed)
        return (rng.uniform(0, 1, (images, 32 * 32 * 3)).astype(np.float32),
                rng.integers(0, 10, images), (3, 32, 32))
    data = load_dataset(DataConfig(name, 8))
    return data.scale(data.train.x[:images]), data.train.y[:images], data.shape


def blas_kernel() -> str:
    """The kernels NumPy's OpenBLAS runs (its core name), or "unknown"."""
    import ctypes
    import glob
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs",
                                  "*openblas*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            get = getattr(lib, name, None)
            if get is not None:
                get.restype = ctypes.c_char_p
                return get().decode()
    return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    p.add_argument("--images", type=int, default=None,
                   help="training images of every net (default: mlp 50000, cnv 1000, fashion-conv 10000)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="BLAS threads for both (default: each library's own)")
    p.add_argument("--repeat", type=int, default=1, help="time each epoch this many times, keep the fastest")
    p.add_argument("--pools", choices=("sums", "activations"), default="sums",
                   help="what a max-pool pools: the conv's sums before batch norm, or its activations")
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        raise SystemExit("PyTorch is needed for this benchmark only: pip install torch")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} with {torch.get_num_threads()} threads "
          f"({torch.backends.cpu.get_cpu_capability()} kernels), numpy {np.__version__} "
          f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"OpenBLAS {blas_kernel()} kernels)")
    if os.environ.get("OPENBLAS_CORETYPE"):
        print(f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} chooses NumPy's kernels, not "
              f"the processor; PyTorch still chooses its own. To compare like with like: "
              f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python {sys.argv[0]} ...")
    for name in args.nets:
        data, batch, default_images, net = NETS[name]
        x, y, shape = load(data, args.images or default_images, args.seed)
        print(f"\n{name}: one epoch of {len(y)} {data} images, {describe(net)}, batch {batch}, "
              f"pools {args.pools}", flush=True)
        for method in args.methods:
            t_torch = t_fewmul = float("inf")
            for _ in range(args.repeat):
                t_torch = min(t_torch, torch_epoch(x, y, shape, net, batch, method, args.seed,
                                                   args.pools))
                t_fewmul = min(t_fewmul, fewmul_epoch(x, y, shape, net, batch, method, args.seed,
                                                      args.pools))
            print(f"{method:>12}: fewmul {t_fewmul:7.2f} s, PyTorch {t_torch:7.2f} s, "
                  f"ratio fewmul/PyTorch {t_fewmul / t_torch:.2f}", flush=True)


if __name__ == "__main__":
    main()
