"""The issue controller of a matrix-vector unit: walks the memory words of a latched vector."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IssueController"]


class IssueController(wiring.Component):
    """Latches an input vector as bit-planes and issues its ``groups * folds`` words.

    An accepted vector is held as ``k`` bit-planes (plane ``i`` holds bit ``i`` of every input,
    padded with zeros to whole folds): the same register as the vector, wired differently.
    While a vector is latched, ``o`` offers its words in order, word ``g * folds + f`` (group
    ``g``, fold ``f``) with its memory address; a word is issued when ``o.ready`` takes it. The
    next vector is accepted in the cycle the last word of its predecessor is issued.

    ``i.ready`` enables the planes (and, upstream, usually a whole vector register), so it is
    one gate from registers: ``fold == folds - 1``, ``group == groups - 1`` and "the next word
    is the last one" are flags kept with the counters. With ``registered_ready``, ``i.ready``
    is a register of its own, loaded with its next value from ``credit_next``, the value
    ``o.ready`` takes at the next clock edge.

    Parameters
    ----------
    n_inputs : int
        Inputs per vector ``N``.
    input_bits : int
        Bits per input ``k``.
    simd : int
        Inputs per word.
    groups : int
        Words per fold position: each vector is issued ``groups`` times over.
    registered_ready : bool
        Whether ``i.ready`` is a register (then ``o.ready`` must be a register too, whose next
        value is ``credit_next``).

    Attributes
    ----------
    folds, words : int
        ``ceil(N / simd)`` and ``groups * folds``.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(input_bits), n_inputs)))``
        Input vectors.
    o : ``Out(stream.Signature(StructLayout({"addr": ..., "fold": ..., "last": 1})))``
        Words: memory address (``range(words)``), fold (``range(folds)``), and whether the fold
        is the last of its group. ``o.valid`` is a register.
    planes : ``Out(ArrayLayout(unsigned(folds * simd), input_bits))``
        The latched vector's bit-planes.
    credit_next : ``In(1)``
        With ``registered_ready`` only: the value ``o.ready`` takes at the next clock edge.
    """

    def __init__(self, *, n_inputs: int, input_bits: int, simd: int, groups: int,
                 registered_ready: bool = False):
        for name, value in [("Number of inputs", n_inputs), ("Input bits", input_bits),
                            ("SIMD width", simd), ("Group count", groups)]:
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        if simd > n_inputs:
            raise ValueError(f"SIMD width must be at most the number of inputs N={n_inputs}, "
                             f"not {simd}")
        self.n_inputs, self.input_bits, self.simd, self.groups = n_inputs, input_bits, simd, groups
        self.folds = -(-n_inputs // simd)
        self.words = groups * self.folds
        self.registered_ready = bool(registered_ready)
        word = data.StructLayout({"addr": range(self.words), "fold": range(self.folds),
                                  "last": 1})
        members = {
            "i": In(stream.Signature(data.ArrayLayout(unsigned(input_bits), n_inputs))),
            "o": Out(stream.Signature(word)),
            "planes": Out(data.ArrayLayout(unsigned(self.folds * simd), input_bits)),
        }
        if self.registered_ready:
            members["credit_next"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n, folds, groups = self.n_inputs, self.folds, self.groups

        planes = [Signal(folds * self.simd, name=f"plane_{i}") for i in range(self.input_bits)]
        busy   = Signal()   # a vector is latched and some of its words are not issued
        fold   = Signal(range(folds))
        group  = Signal(range(groups))
        addr   = Signal(range(self.words))
        fold_last  = Signal(init=folds == 1)
        group_last = Signal(init=groups == 1)
        issue_last = Signal()  # == busy & fold_last & group_last: the next word is the last one
        busy_next, fold_last_next, group_last_next = Signal(), Signal(), Signal()
        credit = self.o.ready
        issue = busy & credit    # a word goes into the datapath
        # The latched vector may be replaced: nothing is latched, or its last word is issued.
        # The control reads this from its own registers; `i.ready` is the same value (with
        # `registered_ready`, a register of its own, see below).
        free = ~busy | (issue_last & credit)
        m.d.comb += [
            self.o.valid.eq(busy),
            self.o.payload.addr.eq(addr),
            self.o.payload.fold.eq(fold),
            self.o.payload.last.eq(fold_last),
            [self.planes[i].eq(plane) for i, plane in enumerate(planes)],
            busy_next.eq(busy),
            fold_last_next.eq(fold_last),
            group_last_next.eq(group_last),
        ]
        with m.If(issue):
            m.d.sync += [
                addr.eq(Mux(fold_last & group_last, 0, addr + 1)),
                fold.eq(Mux(fold_last, 0, fold + 1)),
            ]
            m.d.comb += fold_last_next.eq(Mux(fold_last, folds == 1, fold == folds - 2))
            with m.If(fold_last):
                m.d.sync += group.eq(Mux(group_last, 0, group + 1))
                m.d.comb += group_last_next.eq(Mux(group_last, groups == 1, group == groups - 2))
            with m.If(issue_last):
                m.d.comb += busy_next.eq(0)
        with m.If(self.i.valid & free):
            m.d.comb += busy_next.eq(1)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [plane[:n].eq(Cat(*(self.i.payload[j][i] for j in range(n))))
                         for i, plane in enumerate(planes)]
        m.d.sync += [
            busy.eq(busy_next),
            fold_last.eq(fold_last_next),
            group_last.eq(group_last_next),
            issue_last.eq(busy_next & fold_last_next & group_last_next),
        ]
        if self.registered_ready:
            # `i.ready` is `free` as a register of its own, loaded with its next value: it
            # enables the latched planes and, upstream, the collector's whole vector, so it is
            # the net with the largest fanout and should start at a flip-flop; the control
            # keeps `free`, so that its logic does not wait on that net.
            ready = Signal(init=1)
            m.d.sync += ready.eq(~busy_next |
                                 (fold_last_next & group_last_next & self.credit_next))
            m.d.comb += self.i.ready.eq(ready)
        else:
            m.d.comb += self.i.ready.eq(free)
        return m
