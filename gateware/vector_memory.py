"""An input vector in block RAM: beats in, one fold's slice of every bit-plane out."""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["vector_memory_shape", "check_vector_memory", "VectorMemory"]


def check_vector_memory(count: int, element_bits: int, beat: int, simd: int) -> None:
    """Check the parameters of a :class:`VectorMemory`.

    Raises
    ------
    TypeError
        If one is not a positive integer.
    ValueError
        If ``beat`` does not divide ``count`` and ``simd``.
    """
    for name, value in (("Count", count), ("Element bits", element_bits), ("Beat", beat),
                        ("SIMD width", simd)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if count % beat:
        raise ValueError(f"Beat must divide the count {count}, not {beat}")
    if simd % beat:
        raise ValueError(f"Beat must divide the SIMD width {simd}, not {beat}")


def vector_memory_shape(count: int, element_bits: int, simd: int) -> tuple[int, int]:
    """``(depth, width)`` of a :class:`VectorMemory`'s memory: two banks of a power of two of
    words (at least 2) of ``simd * element_bits`` bits."""
    folds = -(-count // simd)
    return 2 << max(1, (folds - 1).bit_length()), simd * element_bits


class VectorMemory(wiring.Component):
    """Holds a matrix-vector unit's input vectors in a two-bank memory instead of registers.

    A :class:`~.mvu.MatrixVectorUnit` that latches its vector holds ``N * k`` bits in
    flip-flops, and the collector before it as many again; on a small device such as the
    iCE40UP5K (5280 logic cells) those registers, not the arithmetic, decide whether a network
    fits. This unit takes the vector as the layer before it produces it, ``beat`` elements at a
    time, assembles them into words of ``simd`` elements, each stored as its ``k`` bit-planes
    (bit ``i * simd + j`` of word ``f`` is bit ``i`` of element ``f * simd + j``; the last
    word's elements past ``N`` are 0, as in the latched planes), and writes each word into a
    memory of two banks of ``folds`` words: the next vector fills one bank while the unit
    reads the other.

    The reader (the matrix-vector unit) sees a vector as ready (``ready``), takes it (``take``),
    reads its words by fold in any order and as often as it needs (``rd_fold``, ``rd_en``:
    ``rd_data`` holds the word read at the last enabled clock edge, as a
    :class:`~.rom.WeightRom` does), and releases its bank with ``release`` in the cycle of its
    last read (it may take the next vector in the same cycle).

    Timing: a vector is ready :attr:`latency` ``= 2`` cycles after its last beat is transferred
    (the last word is written from a register).

    Parameters
    ----------
    count : int
        Elements per vector, ``N``.
    element_bits : int
        Bits per element, ``k``.
    beat : int
        Elements per input transfer; must divide both ``count`` and ``simd``.
    simd : int
        Elements per word (a fold of the reader).

    Attributes
    ----------
    folds : int
        Words per vector, ``ceil(N / simd)``.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(unsigned(element_bits), beat)))``
        The vector's elements, ``beat`` at a time, in order.
    ready : ``Out(1)``
        A whole vector is in the memory and not yet taken.
    take : ``In(1)``
        The reader takes the ready vector (ignored unless ``ready``).
    release : ``In(1)``
        The reader is done with the vector it took before (its last read is in this cycle).
    rd_fold : ``In(range(folds))``
        The word to read, of the vector taken.
    rd_en : ``In(1)``
        Read enable.
    rd_data : ``Out(simd * element_bits)``
        The word read: ``element_bits`` slices of ``simd`` bits, plane 0 first.
    """

    #: Cycles from a vector's last beat to its being ready.
    latency = 2

    def __init__(self, count: int, element_bits: int, beat: int, simd: int):
        check_vector_memory(count, element_bits, beat, simd)
        self.count, self.element_bits, self.beat, self.simd = count, element_bits, beat, simd
        self.folds = -(-count // simd)
        self.slots = simd // beat              # beats per word
        self.beats = count // beat             # beats per vector
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(unsigned(element_bits), beat))),
            "ready": Out(1),
            "take": In(1),
            "release": In(1),
            "rd_fold": In(range(self.folds)),
            "rd_en": In(1),
            "rd_data": Out(simd * element_bits),
        })

    def elaborate(self, platform):
        m = Module()
        k, simd, beat, folds = self.element_bits, self.simd, self.beat, self.folds
        fold_bits = max(1, (folds - 1).bit_length())
        # Two banks at the addresses {bank, fold}: no adder in either address.
        depth, width = vector_memory_shape(self.count, k, simd)
        m.submodules.memory = memory = Memory(shape=unsigned(width), depth=depth, init=[])
        wr = memory.write_port()
        rd = memory.read_port(transparent_for=())

        filled = Signal(2)             # a bank holds a whole vector (being read or not)
        w_bank = Signal()              # the bank being written
        r_bank = Signal()              # the bank of the next vector to take
        cur = Signal()                 # the bank of the vector taken
        slot = Signal(range(self.slots))
        word_index = Signal(range(folds))
        beat_index = Signal(range(self.beats))
        word = Signal(simd * k)        # the word being assembled, plane by plane
        pending = Signal()             # `word` is complete: written in this cycle
        pending_last = Signal()        # ... and it is the vector's last
        pending_addr = Signal(range(folds))

        put = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~filled.bit_select(w_bank, 1))

        # Each beat goes into its slot of the word; a word written in this cycle is cleared
        # (the last word's elements past the count stay 0).
        base = Signal.like(word)
        m.d.comb += base.eq(word)
        with m.If(pending):
            m.d.comb += base.eq(0)
        m.d.sync += word.eq(base)
        with m.If(put):
            for s in range(self.slots):
                with m.If(slot == s):
                    for e in range(beat):
                        j = s * beat + e
                        m.d.sync += [word[i * simd + j].eq(self.i.payload[e][i])
                                     for i in range(k)]
            last_beat = beat_index == self.beats - 1
            word_done = (slot == self.slots - 1) | last_beat
            m.d.sync += [
                slot.eq(0),
                pending.eq(word_done),
                pending_last.eq(last_beat),
                pending_addr.eq(word_index),
                beat_index.eq(beat_index + 1),
            ]
            with m.If(~word_done):
                m.d.sync += slot.eq(slot + 1)
            with m.If(word_done):
                m.d.sync += word_index.eq(word_index + 1)
            with m.If(last_beat):
                m.d.sync += [beat_index.eq(0), word_index.eq(0), w_bank.eq(~w_bank)]
        with m.Else():
            m.d.sync += [pending.eq(0), pending_last.eq(0)]

        # The bank of a word is the one being written when its last beat came: `w_bank`
        # unless that beat ended the vector and toggled it.
        pending_bank = Signal()
        m.d.comb += [
            pending_bank.eq(w_bank ^ pending_last),
            wr.addr.eq(Cat(pending_addr, pending_bank)),
            wr.data.eq(word),
            wr.en.eq(pending),
        ]
        fill = Signal(2)
        with m.If(pending & pending_last):
            m.d.comb += fill.eq(1 << pending_bank)
        drain = Signal(2)
        with m.If(self.release):
            m.d.comb += drain.eq(1 << cur)
        m.d.sync += filled.eq((filled & ~drain) | fill)

        taking = self.take & self.ready
        # After a take, `r_bank` is the other bank than the one being read: a filled `r_bank`
        # holds the next vector.
        m.d.comb += self.ready.eq(filled.bit_select(r_bank, 1))
        with m.If(taking):
            m.d.sync += [cur.eq(r_bank), r_bank.eq(~r_bank)]

        m.d.comb += [
            rd.addr.eq(Cat(self.rd_fold, cur)),
            rd.en.eq(self.rd_en),
            self.rd_data.eq(rd.data),
        ]
        return m
