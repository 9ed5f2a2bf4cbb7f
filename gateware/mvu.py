"""Folded, multiplier-free matrix-vector unit for binary and ternary weights."""

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from fewmul.arith.ranges import divisors

from .popcount import POPCOUNT_STYLES, Popcount, popcount_levels, spread_registers
from .queue import CreditQueue
from .registered_rom import RegisteredRom
from .rom import WeightRom
from .vector_memory import VectorMemory, check_vector_memory
from .widths import INPUT_KINDS, WEIGHT_KINDS, Widths, signed_shape, sum_bound

__all__ = [
    "INPUT_KINDS", "WEIGHT_KINDS", "sum_bound", "check_pe", "weight_bits", "weight_values",
    "signed_shape", "pack_rows", "STALL_FREE_STAGES", "stage_allocation", "MatrixVectorUnit",
]

#: Pipeline stages from which a :class:`MatrixVectorUnit` is stall-free unless told otherwise.
STALL_FREE_STAGES = 5
#: Bits of an input plane's slice whose fold multiplexers share a copy of the fold counter.
SELECT_GROUP = 32
#: The most folds whose slices are chosen in one stage when there are two (an 8-way
#: multiplexer is one level of the ECP5's wide multiplexers); more are chosen in two.
ONE_STAGE_FOLDS = 8


def check_pe(count: int, pe: int) -> int:
    """Check that ``pe`` lanes evenly divide ``count`` neurons; returns ``count // pe``."""
    if not isinstance(pe, int) or pe <= 0:
        raise TypeError(f"PE count must be a positive integer, not {pe!r}")
    if count % pe:
        raise ValueError(f"PE count must divide the number of neurons M={count}, not pe={pe}; "
                         f"valid values are {divisors(count)}")
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


def stage_allocation(pipeline: int, *, stall_free: bool, tree_levels: int,
                     combine_levels: int) -> tuple[int, int, int]:
    """Where the ``pipeline`` register stages of a datapath go.

    The first stage is on the memory's output. In the stall-free datapath the second holds the
    memory's word again, in the logic next to the popcounts (``word_stage``). The others go
    first to the popcount trees (of ``tree_levels`` levels), up to one per two levels; then one
    after each of the ``combine_levels`` levels of the adders that combine a lane's popcounts
    (wider adders than most of a tree's); any more to the trees again. Adding a stage never
    takes one from the trees.

    Returns
    -------
    tuple of int
        ``(word_stage, combine_stages, tree_stages)``.
    """
    word_stage = int(stall_free)
    tree_and_combine = max(0, pipeline - 1 - word_stage)
    combine_stages = min(combine_levels, max(0, tree_and_combine - -(-tree_levels // 2)))
    return word_stage, combine_stages, tree_and_combine - combine_stages


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

    Three parts make the unit, each built by a method of its own into the unit's module (one
    module, so that the synthesized netlist does not depend on how the code is split): the
    output stage (:meth:`_output_stage`) holds the sums for ``o``; the issue controller
    (:meth:`_issue`) latches the vector as bit-planes and walks its words; the datapath
    (:meth:`_datapath`) computes, per fold, each lane's partial sum by the popcounts of :class:`fewmul.arith.DotProduct` (XNOR-popcount
    for binary weights and bipolar inputs; AND-popcount per bit-plane ``q_i`` of ``k``-bit
    unsigned inputs, shifted by ``i`` and added; a positive and a negative mask for ternary
    weights) and accumulates them. The datapath has
    ``pipeline`` register stages: the first on the memory's output, the others in the popcount
    trees (adder or compressor trees) and the combining adders. All widths are derived from
    ``N``, ``simd`` and ``k`` and proved sufficient by :meth:`~.widths.Widths.prove` at
    construction.

    The stalling datapath advances only when the output register is empty or being taken, so a
    stalled output
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
    input_beat : int or None
        ``None``: ``i`` takes whole vectors, latched in registers. An integer ``b`` (dividing
        ``N`` and ``simd``): ``i`` takes a vector ``b`` inputs at a time, as the layer before
        produces it, into a :class:`~.vector_memory.VectorMemory` (block RAM, two vectors),
        whose read port gives the issued fold's slices in place of the latched planes and
        their multiplexers; no collector is then needed before the unit. A vector's words are
        issued from 2 cycles after its last input.

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
        :func:`stage_allocation`).
    word_bits : int
        Bits of a memory word, ``pe * simd`` per weight mask.
    queue_capacity : int
        Sums the output queue of the stall-free datapath holds,
        ``ceil((pipeline + 2) / folds) + 2``: a group's place is reserved when its last fold is
        issued, its sum written ``pipeline + 1`` cycles later, and one place more makes every
        credit sure a cycle ahead when the output is always taken (the next vector is taken
        with the last word only then, see :meth:`_issue`).

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(input_bits), N)))``
        Input vectors; element ``j`` is input ``j``. With ``input_beat = b``,
        ``ArrayLayout(unsigned(input_bits), b)``: transfer ``t`` of a vector holds inputs
        ``t * b ..``.
    o : ``Out(stream.Signature(ArrayLayout(sum_shape, pe)))``
        Sums; element ``p`` of beat ``g`` is neuron ``g * pe + p``.
    """

    def __init__(self, weights, *, input_kind: str, input_bits: int, pe: int,
                 simd: int | None = None, weight_kind: str = "binary", pipeline: int = 0,
                 popcount_style: str = "adder", stall_free: bool | None = None,
                 input_beat: int | None = None):
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
        # `pipeline + 1` cycles later; the place is free again the cycle after it is taken. One
        # place more: the credit is then sure a cycle ahead (CreditQueue.credit_kept).
        self.queue_capacity = -(-(pipeline + 2) // self.folds) + 2
        self.rows = pack_rows(weights, weight_kind, pe=pe, simd=simd, pad_bit=self.dot.pad_bit)
        self.word_bits = pe * simd * self.dot.masks
        if input_beat is not None:
            check_vector_memory(n_inputs, input_bits, input_beat, simd)
        self.input_beat = input_beat
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(
                unsigned(input_bits), n_inputs if input_beat is None else input_beat))),
            "o": Out(stream.Signature(data.ArrayLayout(self.sum_shape, pe))),
        })

    #: The weight memory instead of the ROM (None): a component with the ROM's read port
    #: (``addr``, ``data`` and, unless :attr:`stall_free`, ``en``) and read timing, of
    #: :attr:`word_bits` x ``groups * folds`` words laid out as :attr:`rows`, whose contents
    #: someone else writes (:class:`~.spram.SpramMemory`).
    weight_memory = None

    def elaborate(self, platform):
        m = Module()
        rd, queue, advance, credit = self._output_stage(m)
        issue, fold, fold_last, planes = self._issue(m, rd, queue, credit)
        self._datapath(m, rd, queue, advance, issue, fold_last, planes)
        return m

    def _output_stage(self, m):
        """The weight memory and where the sums wait for ``o.ready``.

        Returns the memory, the queue (None in the stalling datapath), ``advance`` (the
        datapath's registers move) and ``credit`` (a word may be issued).
        """
        words = self.groups * self.folds
        # A memory written at run time (`weight_memory`, e.g. a SpramMemory set by a board
        # build) replaces the ROM; it reads as the ROM would.
        memory = self.weight_memory
        if self.stall_free:
            # The first pipeline register is the memory's output register (in the block RAM on
            # the ECP5, whose clock-to-output is slow without it).
            m.submodules.weights = rd = (memory if memory is not None else
                                         RegisteredRom(self.word_bits, words, self.rows))
            # The sums wait for `o.ready` in a queue with room for every group in flight, so
            # the datapath never stalls and `o.ready` reaches no enable of it.
            m.submodules.queue = queue = CreditQueue(self.o.payload.shape(),
                                                     self.queue_capacity)
            wiring.connect(m, queue.o, wiring.flipped(self.o))
            return rd, queue, Const(1), queue.credit   # the registers have no enable
        m.submodules.weights = rd = (memory if memory is not None else
                                     WeightRom(self.word_bits, words, self.rows))
        advance = Signal()        # the whole datapath moves: the output register is free
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), rd.en.eq(advance)]
        return rd, None, advance, advance

    def _issue(self, m, rd, queue, credit):
        """Latch the vector and walk its (group, fold) words.

        Returns ``issue`` (a word goes into the datapath), the fold counter, its "last" flag,
        and the latched bit-planes.
        """
        n, k, simd = self.n_inputs, self.input_bits, self.simd
        folds, groups, words = self.folds, self.groups, self.groups * self.folds
        if self.input_beat is None:
            # The vector is latched as bit-planes (plane i holds bit i of every input, padded
            # to whole folds): the same register as the vector, wired differently.
            planes = [Signal(folds * simd, name=f"plane_{i}") for i in range(k)]
            vector_valid = self.i.valid
        else:
            # The vector is in a memory, written beat by beat; `planes` is the memory, whose
            # read port gives a fold's slices.
            m.submodules.vector = planes = VectorMemory(n, k, self.input_beat, simd)
            wiring.connect(m, wiring.flipped(self.i), planes.i)
            vector_valid = planes.ready
        busy   = Signal()   # a vector is latched and some of its words are not issued
        fold   = Signal(range(folds))
        group  = Signal(range(groups))
        addr   = Signal(range(words))
        # `fold == folds - 1` and `group == groups - 1` as flags kept with the counters, and
        # `busy` and both as one more flag (`issue_last`), so that `i.ready` (the enable of the
        # latched planes, and of the previous layer's collector) is one gate from registers.
        # The flags' next values come from flags too (`fold == folds - 2`, `group == groups -
        # 2`), not from compares of the counters: they reach the copies of `i.ready` across
        # the device (a 10-bit group counter's compare was on the LFC's 130 MHz path).
        fold_last  = Signal(init=folds == 1)
        group_last = Signal(init=groups == 1)
        fold_penult  = Signal(init=folds == 2)
        group_penult = Signal(init=groups == 2)
        issue_last = Signal()  # == busy & fold_last & group_last: the next word is the last one
        busy_next, fold_last_next, group_last_next = Signal(), Signal(), Signal()
        issue = busy & credit    # a word goes into the datapath
        # The latched vector may be replaced: nothing is latched, or its last word is issued.
        # The control reads this from its own registers; `i.ready` is the same value (in the
        # stall-free datapath, a register of its own, see below). In the stall-free datapath,
        # the last word's credit must have been sure a cycle before (`sure`, see
        # CreditQueue.credit_kept): a queue that is full but being emptied issues the last
        # word, but takes the next vector a cycle later, and `i.ready` never waits on the
        # output's `ready`.
        sure = credit
        if self.stall_free:
            sure = Signal(init=1)
            m.d.sync += sure.eq(queue.credit_kept)
        free = ~busy | (issue_last & sure)
        m.d.comb += [
            rd.addr.eq(addr),
            busy_next.eq(busy),
            fold_last_next.eq(fold_last),
            group_last_next.eq(group_last),
        ]
        with m.If(issue):
            m.d.sync += [
                addr.eq(Mux(fold_last & group_last, 0, addr + 1)),
                fold.eq(Mux(fold_last, 0, fold + 1)),
            ]
            m.d.sync += fold_penult.eq(Mux(fold_last, folds == 2, fold == folds - 3))
            m.d.comb += fold_last_next.eq(Mux(fold_last, folds == 1, fold_penult))
            with m.If(fold_last):
                m.d.sync += [group.eq(Mux(group_last, 0, group + 1)),
                             group_penult.eq(Mux(group_last, groups == 2, group == groups - 3))]
                m.d.comb += group_last_next.eq(Mux(group_last, groups == 1, group_penult))
            with m.If(issue_last):
                m.d.comb += busy_next.eq(0)
        with m.If(vector_valid & free):
            m.d.comb += busy_next.eq(1)
        m.d.sync += [
            busy.eq(busy_next),
            fold_last.eq(fold_last_next),
            group_last.eq(group_last_next),
            issue_last.eq(busy_next & fold_last_next & group_last_next),
        ]
        if self.stall_free:
            m.d.comb += queue.reserve.eq(issue & fold_last)   # the group's sum needs a place
            # `i.ready` is `free` as a register of its own, loaded with its next value: it
            # enables the latched planes and, upstream, the collector's whole vector, so it is
            # the net with the largest fanout of the datapath and should start at a flip-flop;
            # the control keeps `free`, so that its logic does not wait on that net.
            # `busy_next = (vector_valid & free) | hold`; the next `free` is `~busy_next | done`
            hold, done = Signal(), Signal()  # the vector stays latched; its last word goes next
            m.d.comb += [hold.eq(busy & ~(issue & issue_last)),
                         done.eq(fold_last_next & group_last_next & queue.credit_kept)]
            ready = Signal(init=1)
            m.d.sync += ready.eq(~busy_next | done)
        else:
            ready = free
        if self.input_beat is None:
            m.d.comb += self.i.ready.eq(ready)

            def enable(name):
                """The register enabling a chunk of the latched planes with ``i.valid``.

                Thousands of latched bits (6,272 in an 8-bit 784-input layer) would share the
                one enable `i.valid & i.ready`, a net across the whole device. In the stall-free
                datapath each chunk that a first-stage fold multiplexer reads gets a copy of
                `i.ready` instead, a register next to it. A copy computes `ready`'s next value
                with itself in place of `free` (the same value): its input depends on its own
                output, so Yosys keeps the copies apart."""
                if not self.stall_free:
                    return ready
                copy = Signal(init=1, name=f"ready_{name}")
                m.d.sync += copy.eq(~((self.i.valid & copy) | hold) | done)
                return copy

            for i, plane in enumerate(planes):
                for name, ranges in self._latch_chunks(i):
                    with m.If(self.i.valid & enable(name)):
                        m.d.sync += [plane[lo:hi].eq(Cat(*(self.i.payload[j][i]
                                                           for j in range(lo, hi))))
                                     for lo, hi in ranges]
        else:
            m.d.comb += [
                planes.take.eq(ready),
                planes.release.eq(issue_last & credit),   # the vector's last word is read
                planes.rd_fold.eq(fold),
                planes.rd_en.eq(1 if self.stall_free else rd.en),   # as the weight memory
            ]
        return issue, fold, fold_last, planes

    def _slices(self, m, stage, issue, fold_last, planes):
        """The slice of each bit-plane that the issued fold reads, through registers: one stage
        without pipeline registers, else two (the second is the first pipeline stage)."""
        slices = self._first_slices(m, stage, issue, fold_last, planes)
        if self.pipeline:
            slices = [stage(q, f"slice_{i}_2") for i, q in enumerate(slices)]
        return slices

    def _fold_runs(self) -> tuple[bool, int, int, int]:
        """How the fold multiplexers of the latched planes are split (see
        :meth:`_first_slices`): ``(split, low, run, runs)``, whether there are two stages, the
        fold's select bits of the first, the folds a first-stage multiplexer chooses from, and
        the number of such runs."""
        bits = (self.folds - 1).bit_length()
        split = self.pipeline > 0 and self.folds > ONE_STAGE_FOLDS
        low = -(-bits // 2) if split else bits
        run = 1 << low
        return split, low, run, -(-self.folds // run)

    def _latch_chunks(self, plane: int) -> list[tuple[str, list[tuple[int, int]]]]:
        """The bits of latched plane ``plane`` that one first-stage fold multiplexer reads, as
        ``(name, [(lo, hi), ...])`` per multiplexer: :data:`SELECT_GROUP` bits of the slice in a
        run of folds, below ``N`` (the padding is never written)."""
        n, simd, folds = self.n_inputs, self.simd, self.folds
        _, _, run, runs = self._fold_runs()
        chunks = []
        for index, start in enumerate(range(0, simd, SELECT_GROUP)):
            end = min(simd, start + SELECT_GROUP)
            for r in range(runs):
                ranges = [(f * simd + start, min(n, f * simd + end))
                          for f in range(r * run, min(folds, (r + 1) * run))
                          if f * simd + start < n]
                if ranges:
                    chunks.append((f"{plane}_{index}_{r}", ranges))
        return chunks

    def _first_slices(self, m, stage, issue, fold_last, planes):
        """The first stage of :meth:`_slices`: with ``input_beat`` the vector memory's read
        port, else the latched planes' slices through their fold multiplexers into registers.

        A case over the folds, not ``word_select`` (its variable offset would be a multiply).
        Its select is not the issue controller's fold counter, which would fan out to every
        multiplexer of every plane (thousands of them in an 8-bit input layer), but a copy of
        that counter per :data:`SELECT_GROUP` bits of each plane's slice, each counting by itself
        (Yosys cannot merge counters that feed back on themselves), so that each copy drives a
        few hundred multiplexer inputs near it. With the two stages and more than
        :data:`ONE_STAGE_FOLDS` folds, the multiplexer is split: the first stage chooses by the
        fold's low bits among each run of folds, the second by its high bits (registered with
        the first) among the runs: a level of wide multiplexers a stage.
        """
        simd, folds = self.simd, self.folds
        if self.input_beat is not None:
            # the word at the issued fold, read at the clock edge of its issue
            return [planes.rd_data[i * simd:(i + 1) * simd] for i in range(self.input_bits)]
        if folds == 1:
            return [stage(plane, f"slice_{i}") for i, plane in enumerate(planes)]
        split, low, run, runs = self._fold_runs()
        slices = []
        for i, plane in enumerate(planes):
            groups = []                             # the plane's slice in groups of bits
            for index, start in enumerate(range(0, simd, SELECT_GROUP)):
                end = min(simd, start + SELECT_GROUP)
                name = f"{i}_{index}"
                copy = Signal(range(folds), name=f"fold_copy_{name}")
                with m.If(issue):
                    m.d.sync += copy.eq(Mux(fold_last, 0, copy + 1))
                chunks = [plane[f * simd + start:f * simd + end] for f in range(folds)]
                if not split:
                    groups.append(stage(Array(chunks)[copy], f"slice_{name}"))
                    continue
                partial = [stage(Array(chunks[r * run:(r + 1) * run])[copy[:low]],
                                 f"slice_{name}_run{r}")
                           for r in range(runs)]
                groups.append(Array(partial)[stage(copy[low:], f"fold_high_{name}")])
            slices.append(Cat(*groups))
        return slices

    def _datapath(self, m, rd, queue, advance, issue, fold_last, planes):
        """Slices, pipeline registers, popcounts, combining adders, accumulators, and the
        sums into the output register or the queue."""
        dot, simd, folds = self.dot, self.simd, self.folds

        def stage(value, name):  # a register of the datapath, moving with `advance`
            reg = Signal(Value.cast(value).shape(), name=name)
            with m.If(advance):
                m.d.sync += reg.eq(value)
            return reg

        # --- Stages 1 and 2: the matching slice of every input bit-plane, and the weight word --
        slices = self._slices(m, stage, issue, fold_last, planes)
        valid, last = stage(issue, "valid_1"), stage(fold_last, "last_1")
        for index in range(self.pipeline):  # the control follows the datapath's registers
            valid, last = stage(valid, f"valid_{index + 2}"), stage(last, f"last_{index + 2}")

        # --- Pipeline: the first register holds the memory's word (the block RAM's slow
        # clock-to-output then has a cycle of its own), the others go in the popcount trees ----
        word = rd.data   # stall-free: already through the memory's output register
        if self.pipeline and not self.stall_free:
            word = stage(word, "word_2")
        if self.word_stage:   # the memory's outputs get a cycle of routing of their own
            word = stage(word, "word_3")
            slices = [stage(q, f"slice_{i}_3") for i, q in enumerate(slices)]

        def count(value, name):  # a popcount unit; its input port is the operand's signal
            m.submodules[f"{name}_count"] = unit = Popcount(
                len(value), stages=self.tree_stages, style=self.popcount_style)
            m.d.comb += [unit.i.eq(value), unit.en.eq(advance)]
            return unit.o

        registered = set(spread_registers(self.combine_levels, self.combine_stages))

        def combine(differences, name):
            """``sum_i (a_i - b_i) << i`` over ``differences = [(a_i, b_i), ...]``, as a tree of
            adders with registers after the levels in ``registered``."""
            values, level = [a - b for a, b in differences], 1
            while True:
                if level in registered:
                    values = [stage(v, f"{name}_l{level}_{j}") for j, v in enumerate(values)]
                if len(values) == 1:
                    return values[0]
                shift = 1 << (level - 1)   # the planes each value spans, and its weight's step
                values = [values[j] + (values[j + 1] << shift) if j + 1 < len(values)
                          else values[j] for j in range(0, len(values), 2)]
                level += 1

        def shifted(value, shift):
            return value << shift if shift else value

        # --- Popcounts and partial sums, by the terms of the dot product ----------------------
        # A term that reads no weight is the same for every lane: one popcount per plane.
        shared = {term.name: [count(term.bits(q, []), f"{term.name}_{i}")
                              for i, q in enumerate(slices)]
                  for term in (dot.positive, dot.negative)
                  if term is not None and not term.uses_weights}
        partials = []
        for p in range(self.pe):
            base = p * dot.masks
            masks = [word[(base + j) * simd:(base + j + 1) * simd] for j in range(dot.masks)]

            def lane_count(term, i, q):
                if not term.uses_weights:
                    return shared[term.name][i]
                suffix = f"_{p}" if dot.input_kind == "bipolar" else f"_{p}_{i}"
                return count(term.bits(q, masks), f"{term.name}{suffix}")

            if dot.negative is None:   # a single popcount (of one plane): nothing to combine
                partial = shifted(lane_count(dot.positive, 0, slices[0]), dot.positive_shift)
            else:
                partial = combine([(shifted(lane_count(dot.positive, i, q), dot.positive_shift),
                                    lane_count(dot.negative, i, q))
                                   for i, q in enumerate(slices)], f"partial_{p}")
            partials.append(partial)

        # --- Accumulate over the folds; the last fold's total goes to the output register or
        # the queue --------------------------------------------------------------------------
        init = Const(self.widths.acc_init, self.sum_shape)
        if self.stall_free:
            m.d.comb += queue.i.valid.eq(valid & last)
        else:
            with m.If(advance):
                m.d.sync += self.o.valid.eq(valid & last)
        for p, partial in enumerate(partials):
            part = Signal(self.widths.partial_shape, name=f"partial_{p}")
            total = Signal(self.sum_shape, name=f"total_{p}")
            m.d.comb += part.eq(partial)   # exact: Widths.prove() bounds every value
            if folds > 1:
                # The accumulator holds `init` before a vector's first fold: it is loaded with
                # it after the last one, so no multiplexer driven by one control register of
                # all lanes precedes the adder (it limited conv layers on the ULX3S).
                acc = Signal(self.sum_shape, name=f"acc_{p}", init=self.widths.acc_init)
                m.d.comb += total.eq(acc + part)
                with m.If(advance & valid):
                    m.d.sync += acc.eq(Mux(last, init, total))
            else:
                m.d.comb += total.eq(init + part)
            if self.stall_free:
                m.d.comb += queue.i.payload[p].eq(total)
            else:
                with m.If(advance & valid & last):
                    m.d.sync += self.o.payload[p].eq(total)
