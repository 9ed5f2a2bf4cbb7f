"""The op of the network IR and its hardware binding.

An :class:`Op` is a typed node of the folded integer network: it knows its input and output
:class:`~fewmul.ir.types.TensorType`, computes its exact NumPy forward (running the ops in
order *is* the golden model) and stores its parameters as arrays. Its :class:`Binding` answers
what the hardware needs to know of it for a given :class:`Folding`: cycles per image, latency,
an area estimate, the Amaranth component, and the layout of its output stream. This is the
shape of FINN's ``HWCustomOp``, split in two so that the arithmetic of an op does not depend on
how it is built.

A new op kind is one module in :mod:`fewmul.ir.ops` with an :class:`Op` subclass, its
:class:`Binding` and a ``register`` line; the planner, the lowering, the manifest, the
testbench and the area model walk the graph through these interfaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .types import TensorType

__all__ = ["Folding", "Estimate", "StreamLayout", "Op", "Binding", "OP_KINDS", "register",
           "block_rams"]


@dataclass(frozen=True)
class Folding:
    """How a layer is folded onto hardware (one per layer, shared by its ops).

    Parameters
    ----------
    pe : int
        Output elements computed per cycle.
    simd : int, optional
        Inputs per output element per cycle (default: all).
    pipeline : int
        Register stages between the weight memory and the accumulators.
    popcount_style : str
        ``"adder"`` or ``"compressor"``.
    input_beat : int or None
        ``None``: the head takes whole input vectors, latched in registers. An integer ``b``:
        it takes them ``b`` elements a transfer, as the layer before produces them, into a
        block RAM (see :meth:`Binding.beat_allowed`); no collector sits before it then.
    """
    pe: int = 1
    simd: int | None = None
    pipeline: int = 0
    popcount_style: str = "adder"
    input_beat: int | None = None


@dataclass(frozen=True)
class Estimate:
    """Area estimate: 4-input LUT equivalents (not rounded), flip-flops, 18 Kbit block RAMs.

    ``memories`` lists the ``(depth, width)`` of the memories counted in ``brams``, so that
    devices with other block sizes can count their own (:func:`block_rams`).
    """
    luts: float = 0.0
    ffs: int = 0
    brams: int = 0
    memories: tuple[tuple[int, int], ...] = ()

    def __add__(self, other: "Estimate") -> "Estimate":
        return Estimate(self.luts + other.luts, self.ffs + other.ffs, self.brams + other.brams,
                        self.memories + other.memories)


def block_rams(depth: int, width: int, geometries: tuple[tuple[int, int], ...]) -> int:
    """Blocks of the cheapest of ``geometries`` (``(depth, width)`` of one block) that hold a
    ``depth x width`` memory."""
    return min(-(-width // w) * -(-depth // d) for d, w in geometries)


@dataclass(frozen=True)
class StreamLayout:
    """An op's output stream in hardware.

    Attributes
    ----------
    beats : int
        Transfers per image.
    elements : int
        Elements per transfer.
    element_bits : int
        Bits per element.
    signed : bool
        Whether elements are two's complement.
    """
    beats: int
    elements: int
    element_bits: int
    signed: bool


class Binding:
    """The hardware side of one op (see the module docstring).

    Attributes
    ----------
    role : str
        Name of its unit in the design, after the layer's prefix (e.g. ``layer0_mvu``).
    starts_layer : bool
        Whether the op has a folding of its own: it starts a layer, and the ops after it up to
        the next such op share its :class:`Folding`.
    takes_vector : bool
        Whether each input transfer is a whole vector of ``in_type.channels`` elements (one
        pixel; a fully-connected layer's input is one pixel of ``N`` channels), else the beats
        of its predecessor.
    feeds_layer : bool
        Whether the op belongs to the layer of the op after it (e.g. the sliding window that
        feeds a convolution's matrix-vector unit), taking its folding.
    buffered_input : bool
        Whether the lowering puts a skid buffer before its unit.
    """
    role: ClassVar[str] = "unit"
    starts_layer: ClassVar[bool] = False
    takes_vector: ClassVar[bool] = False
    feeds_layer: ClassVar[bool] = False
    #: Whether its input passes through a skid buffer (``layer{L}_{role}_skid``): for a unit
    #: whose ``i.ready`` depends on its own state, so that it does not reach back into the
    #: unit before it.
    buffered_input: ClassVar[bool] = False

    def __init__(self, op: "Op"):
        self.op = op

    def foldings(self, folding: Folding) -> list[Folding]:
        """The foldings the planner may choose from for a layer this op starts, each like
        ``folding`` but for what the op folds (only ``folding`` itself by default)."""
        return [folding]

    def beat_allowed(self, folding: Folding, beat: int) -> bool:
        """Whether its unit, folded by ``folding``, can hold its input vector in block RAM,
        taking it ``beat`` elements a transfer (:attr:`Folding.input_beat`; never by
        default)."""
        return False

    def cycles(self, folding: Folding | None) -> int:
        """Cycles between two images in the steady state (0: keeps up with anything)."""
        return 0

    def input_queue(self) -> int:
        """Input transfers to queue ahead of the op, so that the layer before need not wait
        while it works in bursts (0: none)."""
        return 0

    def paced_cycles(self, folding: Folding | None, beat_cycles: int) -> int:
        """Cycles per image when the op after it takes an output beat at most every
        ``beat_cycles`` cycles (an op that feeds a layer, paced by the layer's head)."""
        return max(self.cycles(folding), self.stream(folding).beats * beat_cycles)

    def latency(self, folding: Folding | None) -> int:
        """Cycles from an image's input to its last output beat."""
        return 0

    def estimate(self, folding: Folding | None) -> Estimate:
        return Estimate()

    def stream(self, folding: Folding | None) -> StreamLayout:
        raise NotImplementedError

    def build(self, folding: Folding | None):
        """The Amaranth component (``i`` and ``o`` streams)."""
        raise NotImplementedError

    def report(self, folding: Folding | None, unit) -> dict:
        """Entries of the layer's record in ``report.json``, from the built ``unit``."""
        return {}


#: Op kinds by name, for loading saved graphs.
OP_KINDS: dict[str, type["Op"]] = {}


def register(cls: type["Op"]) -> type["Op"]:
    """Class decorator: make an op kind loadable by its :attr:`Op.kind`."""
    OP_KINDS[cls.kind] = cls
    return cls


class Op:
    """A node of the network IR.

    Subclasses set :attr:`kind` and :attr:`binding_class`, and implement :attr:`out_type`,
    :meth:`forward`, :meth:`arrays` and :meth:`from_arrays`.

    Attributes
    ----------
    name : str
        Unique within its graph.
    in_type : TensorType
        What it takes.
    """
    kind: ClassVar[str] = "op"
    binding_class: ClassVar[type[Binding]] = Binding

    def __init__(self, name: str, in_type: TensorType):
        if not isinstance(name, str) or not name:
            raise ValueError(f"Op name must be a non-empty string, not {name!r}")
        if not isinstance(in_type, TensorType):
            raise TypeError(f"Input type must be a TensorType, not {in_type!r}")
        self.name, self.in_type = name, in_type

    @property
    def out_type(self) -> TensorType:
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Exact outputs for a batch ``x`` of shape ``(n, in_type.size)``; ``(n, out_size)``."""
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """Parameters to save."""
        return {}

    @classmethod
    def from_arrays(cls, name: str, in_type: TensorType, arrays: dict) -> "Op":
        return cls(name, in_type)

    @property
    def binding(self) -> Binding:
        return self.binding_class(self)

    def describe(self) -> str:
        return f"{self.kind} {self.in_type} -> {self.out_type}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.describe()}>"
