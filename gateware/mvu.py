"""Multiplier-free matrix-vector unit for binary weights."""

import numpy as np
from amaranth.hdl import Cat, Module, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .popcount import popcount

__all__ = [
    "INPUT_KINDS", "sum_bound", "check_pe", "weight_bits", "signed_shape", "MatrixVectorUnit",
]

#: ``bipolar``: 1-bit inputs meaning -1/+1; ``unsigned``: ``input_bits``-bit integers.
INPUT_KINDS = ("bipolar", "unsigned")


def _check_input(input_kind, input_bits):
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"Input kind must be one of {INPUT_KINDS!r}, not {input_kind!r}")
    if not isinstance(input_bits, int) or isinstance(input_bits, bool):
        raise TypeError(f"Input bits must be an integer, not {input_bits!r}")
    if input_kind == "bipolar" and input_bits != 1:
        raise ValueError(f"Bipolar inputs must have 1 input bit, not {input_bits!r}")
    if not 1 <= input_bits <= 8:
        raise ValueError(f"Input bits must be between 1 and 8, not {input_bits!r}")


def sum_bound(n_inputs: int, input_kind: str, input_bits: int) -> int:
    """Bound ``S`` on the magnitude of a neuron's sum: ``|s| <= S``.

    Parameters
    ----------
    n_inputs : int
        Number of inputs ``N``.
    input_kind : str
        ``"bipolar"`` or ``"unsigned"``.
    input_bits : int
        Bits per input ``k`` (1 for bipolar inputs).

    Returns
    -------
    int
        ``N`` for bipolar inputs, ``N * (2**k - 1)`` for unsigned ones.
    """
    if not isinstance(n_inputs, int) or n_inputs <= 0:
        raise TypeError(f"Number of inputs must be a positive integer, not {n_inputs!r}")
    _check_input(input_kind, input_bits)
    return n_inputs * ((1 << input_bits) - 1)


def check_pe(count: int, pe: int) -> int:
    """Check that ``pe`` lanes evenly divide ``count`` neurons; returns ``count // pe``."""
    if not isinstance(pe, int) or pe <= 0:
        raise TypeError(f"PE count must be a positive integer, not {pe!r}")
    if count % pe:
        divisors = [d for d in range(1, count + 1) if count % d == 0]
        raise ValueError(f"PE count must divide the number of neurons M={count}, not pe={pe}; "
                         f"valid values are {divisors}")
    return count // pe


def weight_bits(weights) -> np.ndarray:
    """Check that ``weights`` is a non-empty ``(M, N)`` array of bits; returns it as an array."""
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.size == 0:
        raise ValueError(f"Weights must be a non-empty (M, N) array, not of shape "
                         f"{weights.shape!r}")
    if not np.isin(weights, (0, 1)).all():
        raise ValueError("Weights must only contain the bits 0 and 1")
    return weights


def signed_shape(lo: int, hi: int) -> Shape:
    """Narrowest signed shape holding every integer of ``[lo, hi]``."""
    return signed(max((x if x >= 0 else ~x).bit_length() + 1 for x in (lo, hi)))


class MatrixVectorUnit(wiring.Component):
    """Binary-weight matrix-vector product, ``pe`` neurons per cycle.

    One input vector is accepted and latched, then the ``M / pe`` groups of ``pe`` neurons are
    streamed out in order. The weights live in a :class:`~amaranth.lib.memory.Memory` of
    ``M / pe`` rows of ``pe * N`` bits (row ``g``, bits ``p * N + j``: weight of input ``j`` in
    neuron ``g * pe + p``) read through a synchronous port, so they map to block RAM.

    Sums use no multiplier. For bipolar inputs ``a`` (bit 1 means +1),
    ``s_m = 2 * popcount(XNOR(a, w_m)) - N``. For unsigned inputs with bit-planes ``q^(i)``,
    ``s_m = 2 * P_m - Q`` with ``P_m = sum_i popcount(q^(i) & w_m) << i`` and
    ``Q = sum_i popcount(q^(i)) << i`` (shared by all neurons); this equals
    ``sum_i 2^i * (2 * popcount(q^(i) & w_m) - popcount(q^(i)))``. The sums are computed
    combinationally from the memory output and the latched vector.

    Timing: with the input always valid and the output always ready, an input is accepted every
    :attr:`cycles_per_vector` ``= M / pe + 1`` cycles. Beat ``g`` is valid ``latency + g`` cycles
    after the input transfer (``latency = 1``). The next input is accepted the cycle after the
    last beat is transferred.

    Parameters
    ----------
    weights : numpy.ndarray
        Weight bits, shape ``(M, N)``, values 0 (for -1) or 1 (for +1).
    input_kind : str
        ``"bipolar"`` or ``"unsigned"``.
    input_bits : int
        Bits per input ``k``; must be 1 for bipolar inputs.
    pe : int
        Neurons computed per output beat; must divide ``M``.

    Attributes
    ----------
    n_inputs, n_neurons, groups : int
        ``N``, ``M`` and ``M / pe``.
    sum_bound : int
        Bound ``S`` with ``|s_m| <= S``.
    sum_shape : Shape
        Signed shape of each sum.
    cycles_per_vector : int
        Initiation interval without stalls, ``M / pe + 1``.
    latency : int
        Cycles from an input transfer to its first output beat being valid, 1.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(input_bits), N)))``
        Input vectors; element ``j`` is input ``j``.
    o : ``Out(stream.Signature(ArrayLayout(sum_shape, pe)))``
        Sums; element ``p`` of beat ``g`` is neuron ``g * pe + p``.
    """

    def __init__(self, weights, *, input_kind: str, input_bits: int, pe: int):
        weights = weight_bits(weights)
        n_neurons, n_inputs = weights.shape
        self.groups = check_pe(n_neurons, pe)
        self.n_inputs = n_inputs
        self.n_neurons = n_neurons
        self.pe = pe
        self.input_kind = input_kind
        self.input_bits = input_bits
        self.sum_bound = sum_bound(n_inputs, input_kind, input_bits)
        self.sum_shape = signed_shape(-self.sum_bound, self.sum_bound)
        self.cycles_per_vector = self.groups + 1
        self.latency = 1
        self._rows = [
            sum(int(weights[g * pe + p, j]) << (p * n_inputs + j)
                for p in range(pe) for j in range(n_inputs))
            for g in range(self.groups)
        ]
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(input_bits), n_inputs))),
            "o": Out(stream.Signature(data.ArrayLayout(self.sum_shape, pe))),
        })

    def elaborate(self, platform):
        m = Module()
        n, k, last_group = self.n_inputs, self.input_bits, self.groups - 1

        m.submodules.weights = weights = Memory(
            shape=unsigned(self.pe * n), depth=self.groups, init=self._rows)
        rd = weights.read_port()

        vector = Signal.like(self.i.payload)
        busy   = Signal()   # a vector is latched and its beats are not all transferred
        issue  = Signal()   # reads of the latched vector's rows remain to be issued
        addr   = Signal(range(self.groups))
        last   = Signal()   # the beat on the output is the vector's last

        # The read port only advances when the output beat is taken (or absent), so the
        # memory output, and with it the payload, holds during a stall.
        advance = ~self.o.valid | self.o.ready
        accept  = self.i.valid & self.i.ready
        m.d.comb += [
            self.i.ready.eq(~busy),
            rd.en.eq(advance),
            rd.addr.eq(addr),
        ]
        with m.If(accept):
            m.d.sync += [vector.eq(self.i.payload), busy.eq(1)]
        with m.If(self.o.valid & self.o.ready & last):
            m.d.sync += busy.eq(0)
        # While idle, `addr` is 0, so the read of row 0 happens in the accepting cycle.
        with m.If(advance):
            m.d.sync += self.o.valid.eq(0)
            with m.If(issue | accept):
                m.d.sync += [self.o.valid.eq(1), last.eq(addr == last_group)]
                with m.If(addr == last_group):
                    m.d.sync += [addr.eq(0), issue.eq(0)]
                with m.Else():
                    m.d.sync += [addr.eq(addr + 1), issue.eq(1)]

        # Operands of the popcounts are driven onto signals first: a popcount tree slices its
        # operand once per bit, and slicing a signal keeps the netlist linear in its width.
        def wire(value, name):
            sig = Signal(len(value), name=name)
            m.d.comb += sig.eq(value)
            return sig

        # The differences below are wider than `sum_shape` and wrap modulo their width; as every
        # sum lies in [-S, S], truncating them to `sum_shape` gives the exact signed value.
        if self.input_kind == "bipolar":
            bits = vector.as_value()
            for p in range(self.pe):
                w = rd.data[p * n:(p + 1) * n]
                match = wire(~(bits ^ w), f"match_{p}")
                m.d.comb += self.o.payload[p].eq((popcount(match) << 1) - n)
        else:
            planes = [wire(Cat(vector[j][i] for j in range(n)), f"plane_{i}") for i in range(k)]
            shared = sum(popcount(plane) << i for i, plane in enumerate(planes))
            for p in range(self.pe):
                w = rd.data[p * n:(p + 1) * n]
                agree = sum(popcount(wire(plane & w, f"and_{p}_{i}")) << i
                            for i, plane in enumerate(planes))
                m.d.comb += self.o.payload[p].eq((agree << 1) - shared)

        return m
