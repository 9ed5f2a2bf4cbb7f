"""The on-chip trainer: a one-hidden-layer binary network that trains itself, one sample per step."""

import numpy as np
from amaranth.hdl import Array, Cat, Module, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fewmul.arith.onchip import LFSR_TAPS, LFSR_WIDTH, OnChipConfig

from ..widths import signed_shape
from .delta import DeltaBackprop, HingeError
from .forward import RowDot
from .lfsr import Lfsr
from .qbp import QbpRounder
from .sweep import RowSweep
from .update import WeightUpdate

__all__ = ["OnChipTrainer"]


def _check_weights(name, w, shape, w0):
    w = np.asarray(w)
    if w.ndim != 2 or w.size == 0 or not np.issubdtype(w.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 2-D integer array, not {w.dtype} of shape "
                         f"{w.shape!r}")
    if w.shape != shape:
        raise ValueError(f"{name} must have shape {shape!r}, not {w.shape!r}")
    if np.abs(w).max() > w0:
        raise ValueError(f"{name} must lie in [-{w0}, {w0}], found {int(np.abs(w).max())}")
    return w


class OnChipTrainer(wiring.Component):
    """Trains ``N`` k-bit pixels -> ``M`` sign units -> ``C`` scores on one sample per step.

    Hidden weights live in two :class:`~amaranth.lib.memory.Memory` s, ``w1`` (``M`` rows of
    ``N``) and ``w2`` (``C`` rows of ``M``), as signed integers in ``[-W0, W0]``; the forward
    pass uses their signs. A step, with every phase one memory row per cycle:

    1. accept a sample; the QBP exponents of its pixels are drawn, one pixel per cycle, from
       the :class:`Lfsr` through the :class:`QbpRounder`, in parallel with
    2. ``FWD1``: ``s1_j`` by :class:`RowDot`; the hidden bit ``h_j = s1_j >= 0`` and the
       gate ``|s1_j| < 2**gate_shift`` are kept;
    3. ``OUT2``: per class ``i``, ``s2_i`` by :class:`RowDot`, the error ``d2_i`` by
       :class:`HingeError`, accumulated into ``W2^T d2`` by :class:`DeltaBackprop`, and row
       ``i`` of ``w2`` rewritten by :class:`WeightUpdate` (shift ``lr_shift2``, input sign
       ``h``); the running argmax of ``s2`` is the prediction;
    4. ``BWD1``: per hidden unit ``j``, ``d1_j = gate_j * (W2^T d2)_j`` and row ``j`` of
       ``w1`` rewritten (shift ``lr_shift1 - e_k``, pixels equal to 0 skipped);
    5. the prediction (made before the update) is offered on ``o``.

    Every rewritten row also appears on ``wb`` (a debug port) in the cycle it is written.
    The result is valid :attr:`latency` ``= 2 M + C + 2 + max(0, N - M - C)`` cycles after the
    sample is accepted; with ``o`` always ready a new sample is accepted every
    :attr:`cycles_per_step` ``= latency + 1`` cycles.
    No multiplier: popcounts, additions, comparisons, multiplexers and shifts only.

    Parameters
    ----------
    config : OnChipConfig
        Sizes ``N``, ``M``, ``C``, fixed-point scales and LFSR seed, as the integer golden
        model reads them; the registers are sized from its bounds and the LFSR is
        :data:`~fewmul.arith.onchip.LFSR_WIDTH` bits wide with taps
        :data:`~fewmul.arith.onchip.LFSR_TAPS`. Its ``seed`` is not used: the initial
        weights are given.
    w1, w2 : numpy.ndarray
        Initial hidden weights, ``(M, N)`` and ``(C, M)``, in ``[-W0, W0]``.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"pixels": ArrayLayout(unsigned(k), N), "label": range(C)})))``
    o : ``Out(stream.Signature(StructLayout({"prediction": range(C)})))``
    wb : ``Out(Signature({"valid": Out(1), "payload": Out(StructLayout({"layer": 1, "row": ..., "weights": ...}))}))``
        ``layer`` 0 for ``w1``, 1 for ``w2``; ``weights`` is the new row (zero-padded).
    """

    def __init__(self, config: OnChipConfig, w1, w2):
        if not isinstance(config, OnChipConfig):
            raise TypeError(f"Configuration must be an OnChipConfig, not {config!r}")
        self.config = c = config
        self.w1_init = _check_weights("w1", w1, (c.hidden, c.inputs), c.w0)
        self.w2_init = _check_weights("w2", w2, (c.classes, c.hidden), c.w0)
        n_inputs, m_hidden, n_classes = c.inputs, c.hidden, c.classes
        self.n_inputs, self.n_hidden, self.n_classes = n_inputs, m_hidden, n_classes
        self.weight_shape = signed_shape(-c.w0, c.w0)
        self.latency = 2 * m_hidden + n_classes + 2 + max(0, n_inputs - m_hidden - n_classes)
        self.cycles_per_step = self.latency + 1

        self.fwd1 = RowDot(n_inputs, input_kind="unsigned", input_bits=c.input_bits)
        self.fwd2 = RowDot(m_hidden, input_kind="bipolar", input_bits=1)
        self.hinge = HingeError(c.s2_bound, c.score_shift)
        self.backprop = DeltaBackprop(m_hidden, delta_bound=c.d2_bound, rows=n_classes)
        self.max_extra = c.max_lr_extra
        self.update1 = WeightUpdate(n_inputs, weight_bits=c.weight_bits, delta_bound=c.d1_bound,
                                    max_shift=c.lr_shift1 + self.max_extra)
        self.update2 = WeightUpdate(m_hidden, weight_bits=c.weight_bits, delta_bound=c.d2_bound,
                                    max_shift=c.lr_shift2 + self.max_extra, shared=True)
        self.qbp = QbpRounder(c.input_bits)
        self.lfsr = Lfsr(width=LFSR_WIDTH, taps=LFSR_TAPS, seed=c.lfsr_seed,
                         bits=max(c.random_bits, 1))
        self.sweep1 = RowSweep(m_hidden)
        self.sweep2 = RowSweep(n_classes)

        sample = data.StructLayout({
            "pixels": data.ArrayLayout(unsigned(c.input_bits), n_inputs),
            "label": range(n_classes),
        })
        wb = data.StructLayout({
            "layer": 1,
            "row": range(max(m_hidden, n_classes)),
            "weights": data.ArrayLayout(self.weight_shape, max(n_inputs, m_hidden)),
        })
        super().__init__({
            "i": In(stream.Signature(sample)),
            "o": Out(stream.Signature(data.StructLayout({"prediction": range(n_classes)}))),
            "wb": Out(wiring.Signature({"valid": Out(1), "payload": Out(wb)})),
        })

    @staticmethod
    def _rows(w):
        return [[int(v) for v in row] for row in w]

    def elaborate(self, platform):
        m = Module()
        c = self.config
        n, hid = self.n_inputs, self.n_hidden
        for name in ("fwd1", "fwd2", "hinge", "backprop", "update1", "update2", "qbp", "lfsr",
                     "sweep1", "sweep2"):
            m.submodules[name] = getattr(self, name)
        fwd1, fwd2, hinge, backprop = self.fwd1, self.fwd2, self.hinge, self.backprop
        update1, update2, qbp, lfsr = self.update1, self.update2, self.qbp, self.lfsr
        sweep1, sweep2 = self.sweep1, self.sweep2

        m.submodules.w1 = w1 = Memory(shape=data.ArrayLayout(self.weight_shape, n),
                                      depth=hid, init=self._rows(self.w1_init))
        m.submodules.w2 = w2 = Memory(shape=data.ArrayLayout(self.weight_shape, hid),
                                      depth=self.n_classes, init=self._rows(self.w2_init))
        rd1, wr1 = w1.read_port(), w1.write_port()
        rd2, wr2 = w2.read_port(), w2.write_port()

        pixels = Signal(data.ArrayLayout(unsigned(c.input_bits), n))
        label = Signal(range(self.n_classes))
        hidden = Signal(hid)        # h_j = 1 for +1
        gate = Signal(hid)
        amount_shape = Shape.cast(range(c.lr_shift1 + self.max_extra + 1))
        amounts = Signal(data.ArrayLayout(amount_shape, n))   # shift of each pixel's update
        extra = Signal(range(self.max_extra + 1))          # learning-rate decay: extra shift
        decay_count = Signal(range(max(c.lr_decay_steps, 1)))
        qbp_busy = Signal()
        qbp_index = Signal(range(n))
        best = Signal(fwd2.sum_shape)
        prediction = Signal(range(self.n_classes))

        def signs(row, width):
            """Sign bits of a row of hidden weights: 1 where the weight is >= 0."""
            return Cat(~row[k][-1] for k in range(width))

        m.d.comb += [
            rd1.addr.eq(sweep1.addr),
            rd2.addr.eq(sweep2.addr),
            wr1.addr.eq(sweep1.index),
            wr2.addr.eq(sweep2.index),
        ]

        # QBP exponents, one pixel per cycle, shifted in from the top of `amounts`.
        # Variable indices go through `Array` multiplexers: a view's variable index would scale it
        # by the element width with a (constant) multiplication.
        m.d.comb += [qbp.q.eq(Array(pixels[k] for k in range(n))[qbp_index]),
                     qbp.random.eq(lfsr.bits)]
        with m.If(qbp_busy):
            if c.input_bits > 1:
                m.d.comb += lfsr.advance.eq(1)
            m.d.sync += amounts.eq(Cat(amounts.as_value()[amount_shape.width:],
                                       (c.lr_shift1 + extra - qbp.exponent)[:amount_shape.width]))
            m.d.sync += qbp_index.eq(qbp_index + 1)
            with m.If(qbp_index == n - 1):
                m.d.sync += [qbp_busy.eq(0), qbp_index.eq(0)]

        # Layer 1 forward: h and gate shifted in from the top.
        s1 = fwd1.sum
        m.d.comb += [fwd1.signs.eq(signs(rd1.data, n)), fwd1.x.eq(pixels)]
        gate_limit = 1 << c.gate_shift

        # Layer 2: forward, error, back-propagation and update of the row just read.
        row2_signs = Signal(hid)
        m.d.comb += [
            row2_signs.eq(signs(rd2.data, hid)),
            fwd2.signs.eq(row2_signs), fwd2.x.eq(hidden),
            hinge.score.eq(fwd2.sum), hinge.target.eq(label == sweep2.index),
            backprop.signs.eq(row2_signs), backprop.delta.eq(hinge.delta),
            update2.weights.eq(rd2.data), update2.delta.eq(hinge.delta),
            update2.negate.eq(~hidden), update2.skip.eq(0),
            wr2.data.eq(update2.result),
        ]
        m.d.comb += update2.amount.eq(c.lr_shift2 + extra)

        # Layer 1 update.
        d1 = Signal(backprop.acc_shape)
        m.d.comb += [
            update1.weights.eq(rd1.data), update1.amount.eq(amounts), update1.negate.eq(0),
            update1.skip.eq(Cat(pixels[k] == 0 for k in range(n))),
            wr1.data.eq(update1.result),
        ]
        with m.If(gate.bit_select(sweep1.index, 1)):
            m.d.comb += d1.eq(Array(backprop.acc[j] for j in range(hid))[sweep1.index])
        m.d.comb += update1.delta.eq(d1)

        # Debug port: every row written.
        m.d.comb += [
            self.wb.valid.eq(wr1.en | wr2.en),
            self.wb.payload.layer.eq(wr2.en),
        ]
        with m.If(wr2.en):
            m.d.comb += [self.wb.payload.row.eq(sweep2.index),
                         self.wb.payload.weights.eq(update2.result.as_value())]
        with m.Else():
            m.d.comb += [self.wb.payload.row.eq(sweep1.index),
                         self.wb.payload.weights.eq(update1.result.as_value())]

        m.d.comb += self.o.payload.prediction.eq(prediction)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [pixels.eq(self.i.payload.pixels), label.eq(self.i.payload.label),
                                 qbp_busy.eq(1), qbp_index.eq(0)]
                    m.d.comb += [sweep1.start.eq(1), backprop.clear.eq(1)]
                    m.next = "FWD1"
            with m.State("FWD1"):
                with m.If(sweep1.valid):
                    m.d.sync += [hidden.eq(Cat(hidden[1:], s1 >= 0)),
                                 gate.eq(Cat(gate[1:], (s1 < gate_limit) & (s1 > -gate_limit)))]
                with m.If(sweep1.last):
                    m.d.comb += sweep2.start.eq(1)
                    m.next = "OUT2"
            with m.State("OUT2"):
                with m.If(sweep2.valid):
                    m.d.comb += [backprop.en.eq(1), wr2.en.eq(1)]
                    with m.If((sweep2.index == 0) | (fwd2.sum > best)):
                        m.d.sync += [best.eq(fwd2.sum), prediction.eq(sweep2.index)]
                with m.If(sweep2.last):
                    m.next = "WAIT_QBP"
            with m.State("WAIT_QBP"):
                with m.If(~qbp_busy):
                    m.d.comb += sweep1.start.eq(1)
                    m.next = "BWD1"
            with m.State("BWD1"):
                with m.If(sweep1.valid):
                    m.d.comb += wr1.en.eq(1)
                with m.If(sweep1.last):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.next = "IDLE"
                    if self.max_extra:
                        m.d.sync += decay_count.eq(decay_count + 1)
                        with m.If(decay_count == c.lr_decay_steps - 1):
                            m.d.sync += decay_count.eq(0)
                            with m.If(extra != self.max_extra):
                                m.d.sync += extra.eq(extra + 1)
        return m
