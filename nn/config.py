"""Plain configuration records for the NumPy model and trainer.

These dataclasses are what :mod:`fewmul.nn` needs to build and train a
network. They know nothing of YAML or hardware: the compiler's spec loader
validates a YAML file and fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "WEIGHT_MODES", "QUANTIZE_MODES", "ACTIVATIONS", "LOSSES", "OPTIMIZERS", "DATA_SETS", "BN_KINDS",
    "LAYER_KINDS", "PADDINGS", "POOL_INPUTS",
    "DataConfig", "LayerConfig", "OptimizerConfig", "OnChipTrainConfig", "TrainConfig",
]

#: Weight quantizers: ``float`` keeps full precision, ``binary`` is BinaryConnect,
#: ``ternary`` is TernaryConnect.
WEIGHT_MODES = ("float", "binary", "ternary")
#: How hidden weights are quantized in the forward pass during training.
QUANTIZE_MODES = ("deterministic", "stochastic")
#: ``sign``: binary activation with gated straight-through estimator (BNN);
#: ``quant``: ``act_bits``-bit uniform activation on [0, 1] (QNN);
#: ``relu``: rectifier (few-multiplications paper); ``none``: linear output scores.
ACTIVATIONS = ("sign", "quant", "relu", "none")
LOSSES = ("squared_hinge", "cross_entropy")
OPTIMIZERS = ("sgd", "adam", "adamax_shift")
#: ``standard`` batch norm, or ``shift``: scale and normalization rounded to powers of two (AP2).
BN_KINDS = ("standard", "shift")
DATA_SETS = ("digits", "fashion-mnist", "mnist", "cifar10", "svhn")
#: ``dense``: fully connected (a ``(C, H, W)`` input is flattened first, channels innermost);
#: ``conv``: a 2-D convolution with ``units`` filters; ``maxpool``: the maximum of each
#: ``size x size`` block of what the conv layer before it gives (no parameters).
LAYER_KINDS = ("dense", "conv", "maxpool")
#: ``valid``: no padding; ``same``: ``(kernel - 1) / 2`` on each side (odd kernels, stride 1
#: keeps the size). The padding value is what the hardware streams for "nothing": 0 for
#: unsigned inputs (pixels, k-bit levels), -1 for binary (sign) activations.
PADDINGS = ("valid", "same")
#: What a max-pool takes the maximum of: ``sums``, the convolution's sums before its batch
#: norm and activation (BinaryNet's order, conv -> pool -> BN -> act), or ``activations``,
#: the convolution's activations (FINN's CNV order, conv -> BN -> act -> pool). The two
#: differ where batch norm's scale is negative: there the largest sum gives the smallest
#: activation.
POOL_INPUTS = ("sums", "activations")


@dataclass
class DataConfig:
    """Which data set, and how many bits each input pixel is quantized to."""
    set: str = "digits"
    input_bits: int = 4
    dir: str | None = None


@dataclass
class LayerConfig:
    """One layer: ``x W`` (dense) or a convolution (conv) -> optional batch norm ->
    activation; or a max-pool of the conv layer before it (its sums or its activations).

    Tensors between layers are ``(n, H, W, C)`` (channels innermost); flattened, a pixel's
    channels are adjacent. A convolution's weights are ``(kernel * kernel * C, units)`` with
    rows in ``(kh, kw, c)`` order, so a window flattened the same way times the weights is
    the output pixel.
    """
    units: int = 0
    weights: str = "binary"
    act: str = "sign"
    act_bits: int = 1
    bn: bool = True
    #: See :data:`LAYER_KINDS`.
    kind: str = "dense"
    #: conv: kernel size (square), stride and padding (see :data:`PADDINGS`).
    kernel: int = 3
    stride: int = 1
    padding: str = "valid"
    #: maxpool: block size (and stride), and what it pools (see :data:`POOL_INPUTS`).
    size: int = 2
    pools: str = "sums"


@dataclass
class OptimizerConfig:
    """Optimizer and its geometric learning-rate schedule (``lr`` -> ``lr_final``)."""
    name: str = "adam"
    lr: float = 0.01
    lr_final: float = 0.0003
    batch: int = 100
    lr_pow2: bool = False


@dataclass
class OnChipTrainConfig:
    """Fixed-point scales of on-chip training (``fewmul compile --train``), as the spec gives them.

    Shifts are powers of two: a shift ``s`` is a factor ``2**-s`` (learning rates, the
    back-propagated error) or a scale ``2**s`` (the margin, the gate). A per-layer key is an
    int for every layer it applies to, a list with one entry per such layer, or ``None``
    (the default): chosen from the net's sizes (:mod:`fewmul.compiler.onchip_config`).
    """
    #: Right shift of the error in each layer's weight update (one per layer with weights).
    lr_shift: int | list[int] | None = None
    #: Every learning-rate shift grows by one after this many training samples (0: never) ...
    lr_decay_steps: int = 300
    #: ... at most this many times.
    lr_decay_max: int = 2
    #: The squared hinge's margin is ``2**margin_shift`` in units of the output sums.
    margin_shift: int = 4
    #: Straight-through gate of hidden layer ``l``: open where ``|s_l| < 2**gate_shift``.
    gate_shift: int | list[int] | None = None
    #: Right shift of the error back-propagated into each hidden layer.
    backprop_shift: int | list[int] | None = None
    #: Hidden weights are clipped to ``[-2**clip_bits, 2**clip_bits]``.
    clip_bits: int = 6
    #: Samples per mini-batch (a power of two): their updates are summed, then averaged.
    batch: int = 1


@dataclass
class TrainConfig:
    """Everything the trainer needs besides the architecture."""
    epochs: int = 60
    seed: int = 0
    quantize: str = "deterministic"
    qbp: bool = False
    loss: str = "squared_hinge"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    bn_momentum: float = 0.1
    bn_eps: float = 1e-4
    #: Training images over which batch norm's statistics are recomputed with the deployed
    #: weights after every epoch (0: keep the running averages of the training batches).
    bn_recompute: int = 0
    #: QBP exponent range: layer inputs in the weight gradient become 0 or +-2^e,
    #: e in [qbp_exp_min, qbp_exp_max] (the paper's code: [-4, 3], 3-bit exponents).
    qbp_exp_min: int = -4
    qbp_exp_max: int = 3
    #: ``standard`` or ``shift`` (AP2) batch norm.
    bn_kind: str = "standard"
    #: Scales of on-chip training (``fewmul compile --train``); the float trainer ignores them.
    onchip: OnChipTrainConfig = field(default_factory=OnChipTrainConfig)
