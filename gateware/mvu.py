"""Folded, multiplier-free matrix-vector unit for binary and ternary weights."""

import numpy as np
from amaranth.hdl import Module, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .mvu_datapath import FoldDatapath, stage_allocation
from .mvu_issue import IssueController
from .popcount import POPCOUNT_STYLES, popcount_levels
from .queue import CreditQueue
from .registered_rom import RegisteredRom
from .rom import WeightRom
from .stream_register import StreamRegister
from .widths import INPUT_KINDS, WEIGHT_KINDS, Widths, signed_shape, sum_bound

__all__ = [
    "INPUT_KINDS", "WEIGHT_KINDS", "sum_bound", "check_pe", "weight_bits", "weight_values",
    "signed_shape", "pack_rows", "STALL_FREE_STAGES", "MatrixVectorUnit",
]

#: Pipeline stages from which a :class:`MatrixVectorUnit` is stall-free unless told otherwise.
STALL_FREE_STAGES = 5


def check_pe(count: int, pe: int) -> int:
    """Check that ``pe`` lanes evenly divide ``count`` neurons; returns ``count // pe``."""
    if not isinstance(pe, int) or pe <= 0:
        raise TypeError(f"PE count must be a positive integer, not {pe!r}")
    if count % pe:
        divisors = [d for d in range(1, count + 1) if count % d == 0]
        raise ValueError(f"PE count must divide the number of neurons M={count}, not pe={pe}; "
                         f"valid values are {divisors}")
    return count // pe


def weight_values(weights, weight_kind: str = "binary") -> np.ndarray:
    """Check a non-empty ``(M, N)`` weight array and return it as an array.

    Binary weights are bits (1 for +1, 0 for -1); ternary weights are -1, 0 or +1.
    """
    if weight_kind not in WEIGHT_KINDS:
        raise ValueError(f"Weight kind must be one of {WEIGHT_KINDS!r}, not {weight_kind!r}")
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.size == 0:
        raise ValueError(f"Weights must be a non-empty (M, N) array, not of shape "
                         f"{weights.shape!r}")
    if weight_kind == "binary" and not np.isin(weights, (0, 1)).all():
        raise ValueError("Weights must only contain the bits 0 and 1")
    if weight_kind == "ternary" and not np.isin(weights, (-1, 0, 1)).all():
        raise ValueError("Ternary weights must only contain -1, 0 and 1")
    return weights


def weight_bits(weights) -> np.ndarray:
    """Check that ``weights`` is a non-empty ``(M, N)`` array of bits; returns it as an array."""
    return weight_values(weights, "binary")


def _bits_to_int(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.astype(np.uint8), bitorder="little").tobytes(),
                          "little")


def pack_rows(weights, weight_kind: str, *, pe: int, simd: int, pad_bit: int = 0) -> list[int]:
    """Memory words of a folded weight matrix.

    Word ``g * F + f`` (``F = ceil(N / simd)`` folds) holds, for each lane ``p``, the weights of
    neuron ``g * pe + p`` on inputs ``f * simd .. f * simd + simd - 1``: bit ``p * simd + j``
    for binary weights; the positive mask at ``2 * p * simd + j`` and the negative mask at
    ``(2 * p + 1) * simd + j`` for ternary ones. Inputs past ``N`` are padded with ``pad_bit``
    (binary) or zeros (ternary).
    """
    weights = weight_values(weights, weight_kind)
    m, n = weights.shape
    groups, folds = check_pe(m, pe), -(-n // simd)
    if weight_kind == "binary":
        planes = [np.pad(weights, ((0, 0), (0, folds * simd - n)), constant_values=pad_bit)]
    else:
        planes = [np.pad(weights == sign, ((0, 0), (0, folds * simd - n))) for sign in (1, -1)]
    # (masks, M, F*S) -> (G, F, pe, masks, S) -> one row of bits per word
    w = np.stack(planes).reshape(len(planes), groups, pe, folds, simd)
    w = w.transpose(1, 3, 2, 0, 4).reshape(groups * folds, -1)
    return [_bits_to_int(row) for row in w]


class MatrixVectorUnit(wiring.Component):
    """Folded matrix-vector product with binary or ternary weights and no multiplier.

    ``pe`` neurons are computed in parallel, each over ``simd`` inputs per cycle: an input
    vector takes ``folds = ceil(N / simd)`` cycles per group of ``pe`` neurons, and
    ``M / pe`` groups. ``simd`` need not divide ``N``: the last fold is padded with inputs that
    contribute nothing. Each issued fold reads one word of the weight memory
    (``M / pe * folds`` words, layout in :func:`pack_rows`): a :class:`~.rom.WeightRom`
    (synchronous read port, so it maps to block RAM), or, in the stall-free datapath, a
    :class:`~.registered_rom.RegisteredRom` (the block RAM's output register is the first
    pipeline stage).

    Three parts make the unit: an :class:`~.mvu_issue.IssueController` latches the vector as
    bit-planes and walks its words; a :class:`~.mvu_datapath.FoldDatapath` computes, per fold,
    each lane's partial sum by the popcounts of :class:`fewmul.arith.DotProduct` (XNOR-popcount
    for binary weights and bipolar inputs; AND-popcount per bit-plane ``q_i`` of ``k``-bit
    unsigned inputs, shifted by ``i`` and added; a positive and a negative mask for ternary
    weights) and accumulates them; the output stage holds the sums for ``o``. The datapath has
    ``pipeline`` register stages: the first on the memory's output, the others in the popcount
    trees (adder or compressor trees) and the combining adders. All widths are derived from
    ``N``, ``simd`` and ``k`` and proved sufficient by :meth:`~.widths.Widths.prove` at
    construction.

    The stalling datapath advances only when the output register
    (:class:`~.stream_register.StreamRegister`) is empty or being taken, so a stalled output
    loses nothing. The :attr:`stall_free` datapath (by default from
    :data:`STALL_FREE_STAGES` ``= 5`` stages on) has no enable on its registers, and a valid bit
    travels with each word. The sums then wait for ``o.ready`` in a :class:`~.queue.CreditQueue` of
    :attr:`queue_capacity` places, and a fold is only issued while the queue has a credit, so
    ``o.ready`` drives no enable of the datapath (on a large design that enable is the slowest
    net); the capacity lets the unit run at full rate when the output is always taken. The
    stalling datapath is smaller, which matters on small devices such as the iCE40UP5K. The
    vector is latched; the next one is accepted in the cycle its predecessor's last fold is
    issued.

    Timing, with the input always valid and the output always ready: an input is accepted every
    :attr:`cycles_per_vector` ``= M / pe * folds`` cycles; beat ``g`` is valid
    ``latency + g * folds`` cycles after the input transfer, ``latency = folds + 2 + pipeline``.

    Parameters
    ----------
    weights : numpy.ndarray
        Weights, shape ``(M, N)``: bits (1 for +1, 0 for -1) if binary; -1/0/+1 if ternary.
    input_kind : str
        ``"bipolar"`` or ``"unsigned"``.
    input_bits : int
        Bits per input ``k``; must be 1 for bipolar inputs.
    pe : int
        Neurons computed per output beat; must divide ``M``.
    simd : int or None
        Inputs per neuron per cycle, at most ``N``; ``None`` for all ``N``.
    weight_kind : str
        ``"binary"`` or ``"ternary"``.
    pipeline : int
        Register stages between the weight memory and the accumulators: the first on the
        memory's output, the others spread over each popcount tree, the last on its result.
        Once the trees have a stage per two levels, the next stages go after each level of the
        adders that combine a lane's popcounts (:attr:`combine_stages`, the last on the partial
        sum), any more to the trees again;
        in the stall-free datapath, the second stage holds the memory's word again, in the
        logic next to the popcounts.
    popcount_style : str
        ``"adder"`` (balanced adder tree) or ``"compressor"`` (full adders and 6:3 counters),
        see :data:`~.popcount.POPCOUNT_STYLES`.
    stall_free : bool or None
        Whether the datapath is stall-free (which needs at least 2 pipeline stages); ``None``
        for stall-free from :data:`STALL_FREE_STAGES` stages on.

    Attributes
    ----------
    n_inputs, n_neurons, groups, folds : int
        ``N``, ``M``, ``M / pe`` and ``ceil(N / simd)``.
    widths : Widths
        Derived datapath widths.
    dot : DotProduct
        The popcount form of each neuron's sum (:attr:`Widths.dot <.widths.Widths.dot>`).
    sum_bound : int
        Bound ``S`` with ``|s_m| <= S``.
    sum_shape : Shape
        Signed shape of each sum.
    rows : list of int
        Initial contents of the weight memory.
    cycles_per_vector, latency : int
        See above.
    stall_free : bool
        Whether the datapath has no enable and the sums wait in a queue.
    combine_levels, combine_stages : int
        Adder levels that combine a lane's popcounts into its partial sum, and the pipeline
        registers among them.
    tree_stages : int
        Pipeline registers in each popcount tree.
    word_stage : int
        1 if the second pipeline register holds the memory's word, else 0 (see
        :func:`~.mvu_datapath.stage_allocation`).
    word_bits : int
        Bits of a memory word, ``pe * simd`` per weight mask.
    queue_capacity : int
        Sums the output queue of the stall-free datapath holds,
        ``ceil((pipeline + 2) / folds) + 1``: a group's place is reserved when its last fold is
        issued, its sum written ``pipeline + 1`` cycles later.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(input_bits), N)))``
        Input vectors; element ``j`` is input ``j``.
    o : ``Out(stream.Signature(ArrayLayout(sum_shape, pe)))``
        Sums; element ``p`` of beat ``g`` is neuron ``g * pe + p``.
    """

    def __init__(self, weights, *, input_kind: str, input_bits: int, pe: int,
                 simd: int | None = None, weight_kind: str = "binary", pipeline: int = 0,
                 popcount_style: str = "adder", stall_free: bool | None = None):
        weights = weight_values(weights, weight_kind)
        n_neurons, n_inputs = weights.shape
        self.groups = check_pe(n_neurons, pe)
        simd = n_inputs if simd is None else simd
        if not isinstance(simd, int) or isinstance(simd, bool) or simd <= 0:
            raise TypeError(f"SIMD width must be a positive integer, not {simd!r}")
        if simd > n_inputs:
            raise ValueError(f"SIMD width must be at most the number of inputs N={n_inputs}, "
                             f"not {simd}")
        if not isinstance(pipeline, int) or isinstance(pipeline, bool) or pipeline < 0:
            raise TypeError(f"Pipeline stages must be a non-negative integer, not {pipeline!r}")
        if popcount_style not in POPCOUNT_STYLES:
            raise ValueError(f"Popcount style must be one of {POPCOUNT_STYLES!r}, not "
                             f"{popcount_style!r}")
        if stall_free is None:
            stall_free = pipeline >= STALL_FREE_STAGES
        if not isinstance(stall_free, bool):
            raise TypeError(f"Stall-free must be a bool or None, not {stall_free!r}")
        if stall_free and pipeline < 2:
            raise ValueError(f"A stall-free datapath needs at least 2 pipeline stages, not "
                             f"{pipeline}")
        self.popcount_style = popcount_style
        self.widths = Widths(n_inputs, simd, input_kind, input_bits, weight_kind)
        self.widths.prove()
        self.dot = self.widths.dot
        self.n_inputs, self.n_neurons = n_inputs, n_neurons
        self.pe, self.simd, self.folds = pe, simd, self.widths.folds
        self.input_kind, self.input_bits, self.weight_kind = input_kind, input_bits, weight_kind
        self.pipeline = pipeline
        self.sum_bound = self.widths.sum_bound
        self.sum_shape = self.widths.acc_shape
        self.cycles_per_vector = self.groups * self.folds
        self.latency = self.folds + 2 + pipeline
        self.stall_free = stall_free
        self.combine_levels = self.widths.combine_levels
        self.word_stage, self.combine_stages, self.tree_stages = stage_allocation(
            pipeline, stall_free=stall_free, combine_levels=self.combine_levels,
            tree_levels=popcount_levels(simd, popcount_style))
        # A group's sum is reserved a place when its last fold is issued and written
        # `pipeline + 1` cycles later; the place is free again the cycle after it is taken.
        self.queue_capacity = -(-(pipeline + 2) // self.folds) + 1
        self.rows = pack_rows(weights, weight_kind, pe=pe, simd=simd, pad_bit=self.dot.pad_bit)
        self.word_bits = pe * simd * self.dot.masks
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(input_bits), n_inputs))),
            "o": Out(stream.Signature(data.ArrayLayout(self.sum_shape, pe))),
        })

    def elaborate(self, platform):
        m = Module()
        words = self.groups * self.folds
        m.submodules.issue = issue = IssueController(
            n_inputs=self.n_inputs, input_bits=self.input_bits, simd=self.simd,
            groups=self.groups, registered_ready=self.stall_free)
        m.submodules.datapath = datapath = FoldDatapath(
            self.widths, pe=self.pe, pipeline=self.pipeline, stall_free=self.stall_free,
            popcount_style=self.popcount_style)
        if self.stall_free:
            # The first pipeline register is the memory's output register (in the block RAM on
            # the ECP5, whose clock-to-output is slow without it).
            m.submodules.weights = rd = RegisteredRom(self.word_bits, words, self.rows)
            # The sums wait for `o.ready` in a queue with room for every group in flight, so
            # the datapath never stalls and `o.ready` reaches no enable of it; a group's last
            # word is issued only while the queue has a place for its sum.
            m.submodules.queue = output = CreditQueue(self.o.payload.shape(),
                                                      self.queue_capacity)
            m.d.comb += [
                issue.o.ready.eq(output.credit),
                issue.credit_next.eq(output.credit_next),
                output.reserve.eq(issue.o.valid & issue.o.ready & issue.o.payload.last),
            ]
        else:
            m.submodules.weights = rd = WeightRom(self.word_bits, words, self.rows)
            # The whole datapath moves while the output register is free or being taken.
            m.submodules.output = output = StreamRegister(self.o.payload.shape())
            m.d.comb += [issue.o.ready.eq(output.i.ready), rd.en.eq(output.i.ready)]

        wiring.connect(m, wiring.flipped(self.i), issue.i)
        m.d.comb += [
            rd.addr.eq(issue.o.payload.addr),
            datapath.i.valid.eq(issue.o.valid & issue.o.ready),   # a word is issued
            datapath.i.payload.fold.eq(issue.o.payload.fold),
            datapath.i.payload.last.eq(issue.o.payload.last),
            datapath.planes.eq(issue.planes),
            datapath.word.eq(rd.data),
        ]
        wiring.connect(m, datapath.o, output.i)
        wiring.connect(m, output.o, wiring.flipped(self.o))
        return m
