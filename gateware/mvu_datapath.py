"""The datapath of a matrix-vector unit: popcounts, combining adders and accumulators."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .popcount import POPCOUNT_STYLES, Popcount, popcount_levels, spread_registers
from .widths import Widths

__all__ = ["stage_allocation", "FoldDatapath"]


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


class FoldDatapath(wiring.Component):
    """The partial sums of ``pe`` neurons over one fold of ``simd`` inputs, accumulated over
    the folds.

    Each word that enters on ``i`` selects the fold's slice of every bit-plane of ``planes``;
    one cycle later the matching weight word arrives on ``word`` (``pe`` lanes, each with its
    ``dot.masks`` masks of ``simd`` bits, see :func:`~.mvu.pack_rows`). Per lane and plane the
    operands of :attr:`Widths.dot <.widths.Widths.dot>` (:class:`~fewmul.arith.DotProduct`)
    are built from the slice and the lane's masks and counted by :class:`~.popcount.Popcount`
    units (a term that reads no weight is counted once for all lanes); the positive count,
    shifted by ``positive_shift``, minus the negative count, of every plane, are combined by a
    tree of adders into the lane's partial sum. The partial sums are accumulated over the
    folds; after a group's last fold, its sums are offered on ``o``.

    Stalling datapath: every register moves with ``o.ready``, and ``i.valid`` may only be high
    while ``o.ready`` is. Stall-free datapath (``stall_free``): no register has an enable
    (``o`` is always ready); the memory's output register is the first pipeline stage, and
    the second holds the word again.

    Timing: the sums of a group are on ``o`` ``latency = pipeline + 1`` advancing cycles after
    its last word enters on ``i``.

    Parameters
    ----------
    widths : Widths
        Sizes, widths and the dot product of the unit.
    pe : int
        Lanes (neurons per group).
    pipeline : int
        Register stages between the memory and the accumulators, see :func:`stage_allocation`.
    stall_free : bool
        Whether the registers have no enable.
    popcount_style : str
        See :data:`~.popcount.POPCOUNT_STYLES`.

    Attributes
    ----------
    word_bits : int
        ``pe * dot.masks * simd``.
    word_stage, combine_levels, combine_stages, tree_stages : int
        See :func:`stage_allocation`.
    latency : int

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"fold": range(folds), "last": 1}), always_ready=True))``
        Words entering the datapath: their fold, and whether it is the last of its group.
    planes : ``In(ArrayLayout(unsigned(folds * simd), input_bits))``
        The input vector's bit-planes.
    word : ``In(word_bits)``
        The memory word of the word that entered one cycle earlier (stall-free: two cycles,
        through the memory's output register).
    o : ``Out(stream.Signature(ArrayLayout(acc_shape, pe), always_ready=stall_free))``
        The sums of each group.
    """

    def __init__(self, widths: Widths, *, pe: int, pipeline: int, stall_free: bool,
                 popcount_style: str = "adder"):
        if not isinstance(widths, Widths):
            raise TypeError(f"Widths must be a Widths object, not {widths!r}")
        if not isinstance(pe, int) or isinstance(pe, bool) or pe <= 0:
            raise TypeError(f"PE count must be a positive integer, not {pe!r}")
        if not isinstance(pipeline, int) or isinstance(pipeline, bool) or pipeline < 0:
            raise TypeError(f"Pipeline stages must be a non-negative integer, not {pipeline!r}")
        if popcount_style not in POPCOUNT_STYLES:
            raise ValueError(f"Popcount style must be one of {POPCOUNT_STYLES!r}, not "
                             f"{popcount_style!r}")
        self.widths, self.dot = widths, widths.dot
        self.pe, self.pipeline, self.stall_free = pe, pipeline, bool(stall_free)
        self.popcount_style = popcount_style
        self.word_bits = pe * self.dot.masks * widths.simd
        self.combine_levels = widths.combine_levels
        self.word_stage, self.combine_stages, self.tree_stages = stage_allocation(
            pipeline, stall_free=self.stall_free, combine_levels=self.combine_levels,
            tree_levels=popcount_levels(widths.simd, popcount_style))
        self.latency = pipeline + 1
        word = data.StructLayout({"fold": range(widths.folds), "last": 1})
        super().__init__({
            "i": In(stream.Signature(word, always_ready=True)),
            "planes": In(data.ArrayLayout(unsigned(widths.folds * widths.simd),
                                          self.dot.planes)),
            "word": In(self.word_bits),
            "o": Out(stream.Signature(data.ArrayLayout(widths.acc_shape, pe),
                                      always_ready=self.stall_free)),
        })

    def elaborate(self, platform):
        m = Module()
        dot, simd, folds = self.dot, self.widths.simd, self.widths.folds
        advance = self.o.ready   # stall-free: Const(1), the registers have no enable

        def stage(value, name):  # a register of the datapath, moving with `advance`
            reg = Signal(Value.cast(value).shape(), name=name)
            with m.If(advance):
                m.d.sync += reg.eq(value)
            return reg

        # --- Stage 1: the matching slice of every input bit-plane, and the control ------------
        slices = []
        for i in range(dot.planes):
            plane = self.planes[i]
            # A case over the folds, not `word_select`: its variable offset would be a multiply.
            chosen = Array(plane[f * simd:(f + 1) * simd] for f in range(folds))[
                self.i.payload.fold] if folds > 1 else plane
            slices.append(stage(chosen, f"slice_{i}"))
        valid, first, last = (stage(v, name) for v, name in
                              [(self.i.valid, "valid_1"), (self.i.payload.fold == 0, "first_1"),
                               (self.i.payload.last, "last_1")])
        for index in range(self.pipeline):  # the control follows the datapath's registers
            valid, first, last = (stage(v, f"{name}_{index + 2}") for v, name in
                                  [(valid, "valid"), (first, "first"), (last, "last")])

        # --- The word: the first register holds the memory's word (the block RAM's slow
        # clock-to-output then has a cycle of its own); stall-free, that is the memory's own
        # output register, and the second register holds the word again ----------------------
        word = self.word
        if self.pipeline:
            if not self.stall_free:
                word = stage(word, "word_2")
            slices = [stage(q, f"slice_{i}_2") for i, q in enumerate(slices)]
        if self.word_stage:   # the memory's outputs get a cycle of routing of their own
            word = stage(word, "word_3")
            slices = [stage(q, f"slice_{i}_3") for i, q in enumerate(slices)]

        # --- Popcounts and partial sums --------------------------------------------------------
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

        terms = [t for t in (dot.positive, dot.negative) if t is not None]
        # A term that reads no weight is the same for every lane: one popcount per plane.
        shared = {term.name: [count(term.bits(q, []), f"{term.name}_{i}")
                              for i, q in enumerate(slices)]
                  for term in terms if not term.uses_weights}

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

        # --- Accumulate over the folds; a group's total leaves after its last fold -------------
        init = Const(self.widths.acc_init, self.widths.acc_shape)
        m.d.comb += self.o.valid.eq(valid & last)
        for p, partial in enumerate(partials):
            part = Signal(self.widths.partial_shape, name=f"partial_{p}")
            total = Signal(self.widths.acc_shape, name=f"total_{p}")
            m.d.comb += part.eq(partial)   # exact: Widths.prove() bounds every value
            if folds > 1:
                acc = Signal(self.widths.acc_shape, name=f"acc_{p}")
                m.d.comb += total.eq(Mux(first, init, acc) + part)
                with m.If(advance & valid):
                    m.d.sync += acc.eq(total)
            else:
                m.d.comb += total.eq(init + part)
            m.d.comb += self.o.payload[p].eq(total)
        return m
