"""Per-neuron activations applied to streams of ``pe``-wide groups of sums."""

import operator

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, ShapeLike, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .compare import greater
from .mvu import check_pe, signed_shape
from .popcount import popcount
from .registered_rom import RegisteredRom

__all__ = ["ThresholdUnit", "ScoreUnit", "TABLE_GROUPS"]

#: Groups of neurons above which an activation's constants come from a block-RAM table read
#: through registers (see :meth:`_GroupwiseUnit._table`); up to this many, from a multiplexer of
#: constants into a register.
TABLE_GROUPS = 32


def _check_bound_and_pe(count, sum_bound, pe):
    if not isinstance(sum_bound, int) or sum_bound <= 0:
        raise TypeError(f"Sum bound must be a positive integer, not {sum_bound!r}")
    if count == 0:
        raise ValueError("At least one neuron is needed")
    return check_pe(count, pe)


def _int_list(name, values):
    try:
        return [operator.index(value) for value in values]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of integers, not {values!r}") from None


class _GroupwiseUnit(wiring.Component):
    """Common structure of the activation units.

    Lane ``p`` of beat ``g`` carries the sum of neuron ``g * pe + p``. A beat counter tracks
    ``g`` so that each lane can select its neuron's constants (held in registers, loaded one beat
    ahead; with more than :data:`TABLE_GROUPS` groups, a register after a table in block RAM
    read three beats ahead); the stream itself passes through combinationally
    (``o.valid = i.valid``, ``i.ready = o.ready``, except in the three cycles after reset in
    which a table reads its first words).

    Subclasses implement :meth:`lane`.
    """

    def __init__(self, count: int, *, sum_bound: int, pe: int, out_shape: ShapeLike):
        self.groups = _check_bound_and_pe(count, sum_bound, pe)
        self.n_neurons = count
        self.pe = pe
        self.sum_bound = sum_bound
        self.sum_shape = signed_shape(-sum_bound, sum_bound)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(self.sum_shape, pe))),
            "o": Out(stream.Signature(data.ArrayLayout(out_shape, pe))),
        })

    def lane(self, total: Value, select) -> Value:
        """Activation of one lane.

        Parameters
        ----------
        total : Value
            Sum of the lane's current neuron.
        select : callable
            ``select(f)`` evaluates ``f(neuron_index)`` (a value-like) for every group at
            elaboration time and returns the one of the current group.
        """
        raise NotImplementedError  # :nocov:

    def elaborate(self, platform):
        m = Module()
        # The current group, and the next one (`(group + 1) % groups`) in a register of its
        # own, so that the look-ahead of the constants starts from a register.
        group = Signal(range(self.groups))
        next_group = Signal(range(self.groups), init=1 % self.groups)
        table = self.groups > TABLE_GROUPS
        primed = Signal(init=not table)       # the constants' table has its first three words
        step = self.i.valid & self.i.ready
        m.d.comb += [
            self.o.valid.eq(self.i.valid & primed),
            self.i.ready.eq(self.o.ready & primed),
        ]
        with m.If(step):
            m.d.sync += [
                group.eq(next_group),
                next_group.eq(Mux(next_group == self.groups - 1, 0, next_group + 1)),
            ]
        slots = []    # (register, per-group values) of the constants from the table
        for p in range(self.pe):
            def select(f, p=p):
                values = [Value.cast(f(g * self.pe + p)) for g in range(self.groups)]
                chosen = Array(values)[group]
                if self.groups == 1 or not all(isinstance(v, Const) for v in values):
                    return chosen
                shape = Value.cast(chosen).shape()
                if table:
                    slot = Signal(shape, name=f"constant_{p}_{len(slots)}")
                    slots.append((slot, [v.value for v in values]))
                    return slot
                # Constants are looked up one beat ahead, into a register: the lane's logic
                # then starts from a register rather than from a multiplexer of the groups.
                ahead = Signal(shape, init=values[0].value, name=f"constant_{p}")
                with m.If(step):
                    m.d.sync += ahead.eq(Array(values)[next_group])
                return ahead
            m.d.comb += self.o.payload[p].eq(self.lane(self.i.payload[p], select))
        if slots:
            self._table(m, step, primed, slots)
        return m

    def _table(self, m, step, primed, slots):
        """The constants of many groups, from a table read three beats ahead.

        Yosys turns a large multiplexer of constants followed by a register into a block-RAM
        ROM without its output register (on the ECP5 5.6 ns from clock to data, then the
        comparisons: the critical path of a large network). So the constants of every lane
        are one word per group of a :class:`~.registered_rom.RegisteredRom` (the block RAM's
        output register on the ECP5), then a register of the fabric: that register holds the
        current group's constants, the table's output the next group's, its first register the
        group after, its address the one after that; all four move on each beat. After reset
        the table reads its first three words, and until then the unit takes and offers
        nothing.
        """
        widths = [len(slot) for slot, _ in slots]
        words = []
        for g in range(self.groups):
            word, lo = 0, 0
            for (_, values), width in zip(slots, widths):
                word |= (values[g] & ((1 << width) - 1)) << lo
                lo += width
            words.append(word)
        m.submodules.constants = rom = RegisteredRom(sum(widths), self.groups, words)
        address = Signal(range(self.groups))
        # `address == groups - 1` as a flag kept with it: the address's wrap is then one gate
        # from `en` (the compare after the handshake was the LFC's 132.8 MHz ULX3S path)
        address_last = Signal(init=self.groups == 1)
        # the table's output goes through a register of the fabric, which the placer puts next
        # to the lanes' comparisons (from the block RAM's output register, across the chip,
        # straight into a comparison was the LFC's 121.6 MHz critical path on the ULX3S)
        near = Signal(sum(widths))
        filled = Signal(2)    # words in the table's registers, until it is primed
        en = step | ~primed
        m.d.comb += [rom.addr.eq(address), rom.en.eq(en)]
        with m.If(en):
            m.d.sync += [address.eq(Mux(address_last, 0, address + 1)),
                         address_last.eq(Mux(address_last, self.groups == 1,
                                             address == self.groups - 2)),
                         near.eq(rom.data)]
        with m.If(~primed):
            m.d.sync += [filled.eq(Cat(1, filled[0])), primed.eq(filled[1])]
        lo = 0
        for (slot, _), width in zip(slots, widths):
            m.d.comb += slot.eq(near[lo:lo + width])
            lo += width


class ThresholdUnit(_GroupwiseUnit):
    """Threshold activation: ``y_m = sum_j (s_m >= T_mj)``.

    With one threshold per neuron this is the binary (sign) activation, ``y_m = 1`` if
    ``s_m >= T_m`` else 0. With ``L = 2^k - 1`` thresholds per neuron (batch norm and a ``k``-bit
    uniform quantizer folded together) the output is the ``k``-bit level, the number of
    thresholds reached (a thermometer code counted by a small popcount).

    Thresholds are clamped to ``[-S, S + 1]`` at elaboration time (``S`` being the sum bound),
    which changes no output and keeps comparators narrow.

    Parameters
    ----------
    thresholds : sequence of int, or sequence of sequences of int
        ``T_m`` for each of the ``M`` neurons, or ``L`` thresholds ``T_mj`` for each.
    sum_bound : int
        Bound ``S`` on the magnitude of the sums.
    pe : int
        Lanes per beat; must divide ``M``.

    Attributes
    ----------
    levels : int
        ``L``, thresholds per neuron.
    out_shape : Shape
        ``unsigned(L.bit_length())``.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(signed_shape(-S, S), pe)))``
        Sums, lane ``p`` of beat ``g`` being neuron ``g * pe + p``.
    o : ``Out(stream.Signature(ArrayLayout(out_shape, pe)))``
        Activations, in the same order.
    """

    def __init__(self, thresholds, *, sum_bound: int, pe: int):
        thresholds = list(thresholds)
        multi = bool(thresholds) and not isinstance(thresholds[0], int) and \
            hasattr(thresholds[0], "__len__")
        rows = [_int_list("Thresholds", row) for row in thresholds] if multi else \
            [[t] for t in _int_list("Thresholds", thresholds)]
        levels = {len(row) for row in rows}
        if len(levels) > 1 or 0 in levels:
            raise ValueError(f"Every neuron must have the same positive number of thresholds, "
                             f"not {sorted(levels)}")
        self.levels = levels.pop() if levels else 1
        self.out_shape = unsigned(self.levels.bit_length())
        super().__init__(len(rows), sum_bound=sum_bound, pe=pe, out_shape=self.out_shape)
        self._rows = [[min(max(t, -sum_bound), sum_bound + 1) for t in row] for row in rows]
        #: Clamped thresholds, in the form given (one int or a list of ints per neuron).
        self.thresholds = self._rows if multi else [row[0] for row in self._rows]
        self._threshold_shape = signed_shape(-sum_bound, sum_bound + 1)

    def lane(self, total, select):
        reached = [greater(total, select(lambda n, j=j: Const(self._rows[n][j],
                                                              self._threshold_shape)),
                           or_equal=True)
                   for j in range(self.levels)]
        return popcount(Cat(*reached))


class ScoreUnit(_GroupwiseUnit):
    """Linear output scores, ``score_m = (s_m << shift_m) + offset_m``.

    Parameters
    ----------
    shifts : sequence of int
        Non-negative left shift of each of the ``M`` neurons.
    offsets : sequence of int
        Offset of each neuron.
    sum_bound : int
        Bound ``S`` on the magnitude of the sums.
    pe : int
        Lanes per beat; must divide ``M``.

    Attributes
    ----------
    score_shape : Shape
        Narrowest signed shape holding every ``(s << shift_m) + offset_m`` for ``|s| <= S``.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(signed_shape(-S, S), pe)))``
        Sums, lane ``p`` of beat ``g`` being neuron ``g * pe + p``.
    o : ``Out(stream.Signature(ArrayLayout(score_shape, pe)))``
        Scores, in the same order.
    """

    def __init__(self, shifts, offsets, *, sum_bound: int, pe: int):
        shifts  = _int_list("Shifts", shifts)
        offsets = _int_list("Offsets", offsets)
        if len(shifts) != len(offsets):
            raise ValueError(f"Shifts and offsets must have the same length, not {len(shifts)} "
                             f"and {len(offsets)}")
        if any(shift < 0 for shift in shifts):
            raise ValueError(f"Shifts must be non-negative, not {shifts!r}")
        _check_bound_and_pe(len(shifts), sum_bound, pe)
        self.shifts, self.offsets = shifts, offsets
        lo = min((-sum_bound << sh) + off for sh, off in zip(shifts, offsets, strict=True))
        hi = max((sum_bound << sh) + off for sh, off in zip(shifts, offsets, strict=True))
        self.score_shape = signed_shape(lo, hi)
        super().__init__(len(shifts), sum_bound=sum_bound, pe=pe, out_shape=self.score_shape)

    def lane(self, total, select):
        # Constant shifts are wiring: only the shifted sums and the offsets are multiplexed.
        return (select(lambda n: total << self.shifts[n]) +
                select(lambda n: Const(self.offsets[n], self.score_shape)))
