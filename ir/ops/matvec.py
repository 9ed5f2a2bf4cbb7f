"""``MatVec``: a matrix of binary or ternary weights times a vector, by popcounts."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from fewmul.arith import DotProduct
from fewmul.arith.ranges import divisors, signed_width
from fewmul.gateware.mvu import MatrixVectorUnit, weight_values
from fewmul.gateware.popcount import register_levels
from fewmul.gateware.vector_memory import (VectorMemory, check_vector_memory,
                                           vector_memory_shape)
from fewmul.gateware.widths import Widths

from ..op import Binding, Estimate, Folding, Op, StreamLayout, block_rams, register
from ..types import TensorType

__all__ = ["MatVec", "MatVecBinding", "memory_estimate", "LUT_PER_POPCOUNT_BIT", "LUT_PER_ACC_BIT",
           "LUT_PER_MUX_BIT", "LUT_CONTROL", "BRAM_GEOMETRIES", "BRAM_MIN_BITS"]

#: Area model constants, in 4-input-LUT equivalents per bit (LUT4s, the two LUT4s of each CCU2C
#: carry cell included), fitted to Yosys synth_ecp5 runs of a 1024x1024 binary layer at five
#: foldings and of its pieces alone (bench/area.py, bench/results/area.md; within 4 %).
#: Popcount of one XNOR/AND bit, by popcount style: on 4-input LUTs the adder tree is the
#: cheaper (the compressor's full adders take 6 inputs; on 6-input LUTs it is the other way).
LUT_PER_POPCOUNT_BIT = {"adder": 2.5, "compressor": 2.7}
#: Accumulator and output register, per bit of each lane.
LUT_PER_ACC_BIT = 0.55
#: Fold-selection multiplexer, per latched input bit, times ``1 - 1 / folds``.
LUT_PER_MUX_BIT = 0.7
LUT_CONTROL = 40
#: Block RAM geometries (depth, width) of one 18 Kbit block (ECP5 DP16KD, Xilinx RAMB18; the
#: boards count their own, see :attr:`fewmul.boards.targets.Board.bram_geometries`).
BRAM_GEOMETRIES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
#: Memories smaller than this many bits are left to LUT RAM or registers.
BRAM_MIN_BITS = 2048


def memory_estimate(depth: int, width: int, *, registers: bool = True) -> Estimate:
    """Block RAMs of a ``depth x width`` memory, or, below :data:`BRAM_MIN_BITS`, nothing (the
    tools use LUT RAM or, with ``registers``, count it as flip-flops)."""
    if depth <= 0 or width <= 0:
        return Estimate()
    if width * depth < BRAM_MIN_BITS:
        return Estimate(0, width * depth if registers else 0, 0)
    return Estimate(0, 0, block_rams(depth, width, BRAM_GEOMETRIES), ((depth, width),))


@register
class MatVec(Op):
    """``s = W x`` for ``M x N`` binary or ternary weights ``W`` and bipolar or unsigned inputs,
    at every pixel: a ``(N, H, W)`` input gives a ``(M, H, W)`` output (a convolution's windows
    come from a :class:`~.window.SlidingWindow`; a fully-connected layer's input is one pixel).

    Parameters
    ----------
    name : str
        Op name.
    in_type : TensorType
        ``bipolar`` bits or ``unsigned`` levels, ``N`` channels.
    weights : numpy.ndarray
        ``(M, N)``: bits (1 for +1) if binary, -1/0/+1 if ternary.
    weight_kind : str
        ``"binary"`` or ``"ternary"``.

    Attributes
    ----------
    dot : DotProduct
        The popcount arithmetic of its sums.
    """
    kind = "matvec"

    def __init__(self, name: str, in_type: TensorType, weights, weight_kind: str = "binary"):
        super().__init__(name, in_type)
        self.weights = weight_values(weights, weight_kind)
        self.weight_kind = weight_kind
        if in_type.kind not in ("bipolar", "unsigned"):
            raise ValueError(f"{name}: inputs must be bipolar or unsigned, not {in_type.kind!r}")
        self.dot = DotProduct(in_type.kind, in_type.bits, weight_kind)
        if self.weights.shape[1] != in_type.channels:
            raise ValueError(f"{name}: weights have {self.weights.shape[1]} columns but the "
                             f"input has {in_type.channels} channels")

    @property
    def units(self) -> int:
        return self.weights.shape[0]

    @property
    def inputs(self) -> int:
        return self.weights.shape[1]

    @property
    def sum_bound(self) -> int:
        return self.dot.sum_bound(self.inputs)

    @property
    def out_type(self) -> TensorType:
        bound = self.sum_bound
        _, h, w = self.in_type.shape
        return TensorType((self.units, h, w), "signed", signed_width(-bound, bound), bound)

    @property
    def pixels(self) -> int:
        return self.in_type.pixels

    def forward(self, x):
        x = np.asarray(x)
        n = len(x)
        sums = self.dot.sums(x.reshape(n * self.pixels, self.inputs), self.weights)
        return sums.reshape(n, -1)

    def arrays(self):
        return {"weights": self.weights, "weight_kind": np.array(self.weight_kind)}

    @classmethod
    def from_arrays(cls, name, in_type, arrays):
        return cls(name, in_type, arrays["weights"], str(arrays["weight_kind"]))

    def describe(self) -> str:
        at = f" at {self.in_type.shape[1]}x{self.in_type.shape[2]} pixels" if self.pixels > 1 else ""
        return f"{self.weight_kind} {self.units}x{self.inputs}{at}, {self.in_type} inputs"


class MatVecBinding(Binding):
    """A :class:`~fewmul.gateware.MatrixVectorUnit`: ``pe`` neurons over ``simd`` inputs per
    cycle, ``M / pe`` beats of ``pe`` sums per pixel (one input vector per pixel)."""
    role = "mvu"
    starts_layer = True
    takes_vector = True

    def _simd(self, folding: Folding) -> int:
        return folding.simd or self.op.inputs

    def widths(self, folding: Folding) -> Widths:
        op = self.op
        return Widths(op.inputs, self._simd(folding), op.in_type.kind, op.in_type.bits,
                      op.weight_kind)

    def groups(self, folding: Folding) -> int:
        return self.op.units // folding.pe

    def folds(self, folding: Folding) -> int:
        return -(-self.op.inputs // self._simd(folding))

    def foldings(self, folding):
        """``pe`` over the divisors of ``M`` and, for each fold count, the narrowest ``simd``
        that gives it."""
        n, by_folds = self.op.inputs, {}
        for simd in range(1, n + 1):
            by_folds.setdefault(-(-n // simd), simd)
        return [replace(folding, pe=pe, simd=simd) for pe in divisors(self.op.units)
                for simd in sorted(by_folds.values())]

    def beat_allowed(self, folding, beat):
        """One pixel (a fully-connected layer) and a beat that the vector memory takes
        (:func:`~fewmul.gateware.vector_memory.check_vector_memory`: it divides ``N`` and
        ``simd``)."""
        if self.op.pixels != 1:
            return False
        try:
            check_vector_memory(self.op.inputs, self.op.in_type.bits, beat, self._simd(folding))
        except (TypeError, ValueError):
            return False
        return True

    def cycles(self, folding):
        # an input memory takes a beat a cycle at most
        beats = self.op.inputs // folding.input_beat if folding.input_beat else 0
        return max(self.op.pixels * self.groups(folding) * self.folds(folding), beats)

    def latency(self, folding):
        # to the first beat (see MatrixVectorUnit), then a beat every `folds` cycles; the
        # pixels of an image follow one another at full rate
        # with an input memory, from the vector's last transfer: its words are read from
        # VectorMemory.latency cycles after it
        folds = self.folds(folding)
        memory = VectorMemory.latency if folding.input_beat else 0
        return (folds + 2 + memory + folding.pipeline
                + (self.op.pixels * self.groups(folding) - 1) * folds)

    def estimate(self, folding):
        op, simd, pe = self.op, self._simd(folding), folding.pe
        k, folds, dot = op.in_type.bits, self.folds(folding), op.dot
        acc = op.out_type.bits
        count_bits = (pe * dot.lane_counts + dot.shared_counts) * simd
        # a latched vector: its registers and the fold multiplexers; an input memory: two
        # vectors of `folds` words in block RAM
        latched = op.inputs * k if folding.input_beat is None else 0
        luts = (LUT_PER_POPCOUNT_BIT[folding.popcount_style] * count_bits
                + LUT_PER_ACC_BIT * pe * acc * (2 if folds > 1 else 1)
                + LUT_PER_MUX_BIT * latched * (1 - 1 / folds)
                + LUT_CONTROL)
        # the first pipeline register holds the memory word and the input slices, the others
        # sit in the popcount trees
        width, depth = pe * simd * dot.masks, self.groups(folding) * folds
        pipe = sum(math.ceil(simd / 2 ** level) * (min(level, 12) + 1)
                   for level in register_levels(simd, max(0, folding.pipeline - 1), "adder"))
        word = width + simd * k if folding.pipeline else 0
        ffs = (latched + simd * k + word + pipe * (count_bits // max(simd, 1))
               + pe * acc * (2 if folds > 1 else 1) + 32)
        # (synchronous reads: a block RAM whatever its size)
        memory = vector_memory_shape(op.inputs, k, simd)
        inputs = (Estimate() if folding.input_beat is None
                  else Estimate(0, 0, block_rams(*memory, BRAM_GEOMETRIES), (memory,)))
        return Estimate(luts, ffs, 0) + memory_estimate(depth, width, registers=False) + inputs

    def stream(self, folding):
        return StreamLayout(self.op.pixels * self.groups(folding), folding.pe,
                            self.op.out_type.bits, True)

    def build(self, folding):
        op = self.op
        return MatrixVectorUnit(op.weights, input_kind=op.in_type.kind,
                                input_bits=op.in_type.bits, pe=folding.pe, simd=folding.simd,
                                weight_kind=op.weight_kind, pipeline=folding.pipeline,
                                popcount_style=folding.popcount_style,
                                input_beat=folding.input_beat)

    def report(self, folding, unit):
        op = self.op
        return {"inputs": op.inputs, "units": op.units, "weights": op.weight_kind,
                "input_kind": op.in_type.kind, "input_bits": op.in_type.bits,
                "pe": folding.pe, "simd": self._simd(folding), "folds": unit.folds,
                "pipeline": folding.pipeline, "input_beat": folding.input_beat,
                "cycles_per_vector": unit.cycles_per_vector,
                "sum_bound": unit.sum_bound, "accumulator_bits": unit.sum_shape.width,
                "partial_bits": unit.widths.partial_shape.width}


MatVec.binding_class = MatVecBinding
