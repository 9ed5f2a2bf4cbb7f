"""Plain configuration records for the NumPy model and trainer.

These dataclasses are what :mod:`fewmul.nn` needs to build and train a
network. They know nothing of YAML or hardware: the compiler's spec loader
validates a YAML file and fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "WEIGHT_MODES", "QUANTIZE_MODES", "ACTIVATIONS", "LOSSES", "OPTIMIZERS", "DATA_SETS", "BN_KINDS",
    "DataConfig", "LayerConfig", "OptimizerConfig", "TrainConfig",
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
DATA_SETS = ("digits", "fashion-mnist", "mnist")


@dataclass
class DataConfig:
    """Which data set, and how many bits each input pixel is quantized to."""
    set: str = "digits"
    input_bits: int = 4
    dir: str | None = None


@dataclass
class LayerConfig:
    """One fully-connected layer: ``x W`` -> optional batch norm -> activation."""
    units: int
    weights: str = "binary"
    act: str = "sign"
    act_bits: int = 1
    bn: bool = True


@dataclass
class OptimizerConfig:
    """Optimizer and its geometric learning-rate schedule (``lr`` -> ``lr_final``)."""
    name: str = "adam"
    lr: float = 0.01
    lr_final: float = 0.0003
    batch: int = 100
    lr_pow2: bool = False


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
    #: QBP exponent range: layer inputs in the weight gradient become 0 or +-2^e,
    #: e in [qbp_exp_min, qbp_exp_max] (the paper's code: [-4, 3], 3-bit exponents).
    qbp_exp_min: int = -4
    qbp_exp_max: int = 3
    #: ``standard`` or ``shift`` (AP2) batch norm.
    bn_kind: str = "standard"
