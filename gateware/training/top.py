"""The on-chip trainer: a network of ``L`` binary or ternary layers that trains itself."""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fewmul.arith.onchip import LFSR_TAPS, LFSR_WIDTH, OnChipConfig

from ..widths import signed_shape
from .batch import BatchApply
from .delta import DeltaBackprop, HingeError
from .fixed import clip, round_shift_magnitude, weight_masks
from .forward import RowDot
from .lfsr import Lfsr
from .qbp import QbpRounder
from .sweep import RowSweep
from .update import WeightUpdate

__all__ = ["OnChipTrainer", "step_cycles"]


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


#: Pipeline stages of a row, in cycles after its address (:class:`RowSweep` ``rows[s]``):
#: the weight memory's output, the row registered (its masks and the layer's inputs enter the
#: popcounts), the popcounts after :data:`COUNT_STAGES` registers, the sum registered (the
#: hidden bit, the gate and the argmax are taken from it), the error registered (and
#: back-propagated), its magnitude shifted and registered (inside :class:`WeightUpdate`), each
#: lane's step registered, the row plus its steps registered, and the new row (clipped)
#: registered and written.
READ, ROW, COUNT_STAGES = 1, 2, 2
SUM = ROW + COUNT_STAGES + 1
ERROR, SHIFTED, STEP, TOTAL, NEW = SUM + 1, SUM + 2, SUM + 3, SUM + 4, SUM + 5
#: A forward sweep starts this many cycles after the last row of the layer before was
#: addressed (its hidden bits are all in when the new sweep's first row meets them, at ROW);
#: a backward sweep this many after the last row of the layer above (its errors are all
#: accumulated when the first row takes its own, at SUM).
FORWARD_GAP, BACKWARD_GAP = SUM + 1 - ROW, ERROR + 1 - SUM


def step_cycles(sizes) -> tuple[int, int, int]:
    """``(latency, cycles_per_step, inference_latency)`` of a trainer of ``sizes``.

    Every sweep issues one row per cycle. With ``F = M_1 + ... + M_L`` (the forward rows,
    output layer included), ``H = M_1 + ... + M_{L-1}`` (the hidden layers' backward rows),
    ``L`` layers and ``N`` inputs: the forward sweeps follow each other
    :data:`FORWARD_GAP` cycles after the last row of the one before, the backward sweeps
    :data:`BACKWARD_GAP` cycles after; layer 1's backward sweep also waits for the ``N`` QBP
    exponents (drawn one per cycle from the cycle after the sample's acceptance, through one
    register), and the result follows its last row's write. Every sweep issues its first
    address the cycle after its start is decided (:class:`RowSweep` registers it): the first
    sweep one cycle after the acceptance, layer 1's backward sweep one after the last exponent.
    So ``latency = max(F + H - M_1 + (L - 1)(FORWARD_GAP - 1) + (L - 2)(BACKWARD_GAP - 1)
    + BACKWARD_GAP, N + 2) + M_1 + NEW`` cycles from a training sample's acceptance to its
    result, ``cycles_per_step = latency + 1`` (the result is taken, then the next sample), and
    ``F + (L - 1)(FORWARD_GAP - 1) + SUM + 1`` for an inference request.
    """
    sizes = tuple(int(v) for v in sizes)
    layers = len(sizes) - 1
    forward, hidden = sum(sizes[1:]), sum(sizes[1:-1])
    # The output layer's last row is addressed this many cycles after the acceptance.
    output_last = forward + (layers - 1) * (FORWARD_GAP - 1)
    below_last = output_last + (hidden - sizes[1]) + (layers - 2) * (BACKWARD_GAP - 1)
    first_backward = max(below_last + BACKWARD_GAP, sizes[0] + 2)
    latency = first_backward + sizes[1] + NEW
    return latency, latency + 1, output_last + SUM + 1


@dataclass
class _LayerPorts:
    """What the trainer's ports take from a layer's datapath."""
    write: Value          # a row is written in this cycle
    row: Value            # which
    new: Value            # its new weights
    read: Value           # the weight memory's output, registered (the read-out port's row)


@dataclass
class _Sample:
    """The trainer's registers that hold for a sample (or longer)."""
    pixels: Value
    label: Value
    train: Value
    hidden: list          # per hidden layer: its sign bits (h = 1 for +1), shifted in by row
    gate: list            # per hidden layer: its straight-through gates, in and out by row
    exponents: Value      # each pixel's QBP exponent (its update's shift is the rate's minus it)
    extra: Value          # learning-rate decay: the extra shift
    decay_count: Value
    batch_count: Value
    apply: Value          # the batch's last sample
    qbp_busy: Value
    qbp_index: Value
    config: OnChipConfig

    @classmethod
    def create(cls, m, trainer) -> "_Sample":
        c = trainer.config
        hidden_sizes = c.sizes[1:-1]
        sample = cls(
            pixels=Signal(data.ArrayLayout(unsigned(c.input_bits), c.sizes[0])),
            label=Signal(range(c.sizes[-1])),
            train=Signal(),
            hidden=[Signal(size, name=f"h{i + 1}") for i, size in enumerate(hidden_sizes)],
            gate=[Signal(size, name=f"gate{i + 1}") for i, size in enumerate(hidden_sizes)],
            exponents=Signal(data.ArrayLayout(range(c.max_exponent + 1), c.sizes[0])),
            extra=Signal(range(trainer.max_extra + 1)),
            decay_count=Signal(range(max(c.lr_decay_steps, 1))),
            batch_count=Signal(range(c.batch)),
            apply=Signal(),
            qbp_busy=Signal(),
            qbp_index=Signal(range(c.sizes[0])),
            config=c,
        )
        m.d.comb += sample.apply.eq(sample.batch_count == c.batch - 1)
        return sample

    def follow(self, m, payload) -> None:
        """Take a request's pixels, label and ``train`` bit, in every cycle this is used
        (the trainer is idle): they hold from the cycle after the request is accepted."""
        m.d.sync += [self.pixels.eq(payload.pixels), self.label.eq(payload.label),
                     self.train.eq(payload.train)]

    def accept(self, m, payload) -> None:
        """A request is accepted: a training sample draws its QBP exponents."""
        m.d.sync += [self.qbp_busy.eq(payload.train), self.qbp_index.eq(0)]

    def count(self, m) -> None:
        """A training sample is done: the batch and the learning-rate decay count it."""
        c = self.config
        if c.batch > 1:
            m.d.sync += self.batch_count.eq(Mux(self.apply, 0, self.batch_count + 1))
        if c.max_lr_extra:
            m.d.sync += self.decay_count.eq(self.decay_count + 1)
            with m.If(self.decay_count == c.lr_decay_steps - 1):
                m.d.sync += self.decay_count.eq(0)
                with m.If(self.extra != c.max_lr_extra):
                    m.d.sync += self.extra.eq(self.extra + 1)


class OnChipTrainer(wiring.Component):
    """Trains ``N`` k-bit pixels -> ``M_1`` -> ... -> ``M_{L-1}`` sign units -> ``C`` scores.

    The network, its arithmetic and its step are those of the integer golden model
    :class:`fewmul.nn.onchip.OnChipNet` for the same :class:`OnChipConfig` ``cfg``. Layer ``l``
    (index ``l - 1`` below) keeps its hidden weights in a :class:`~amaranth.lib.memory.Memory`
    ``w{l}`` of ``M_l`` rows of ``M_{l-1}`` signed integers in ``[-W0, W0]``; the forward pass
    uses their effective weights ``T(w)`` (sign, or ternarization), as masks. Every phase
    handles one memory row per cycle, each row going down a pipeline of registered stages
    (:data:`READ` to :data:`NEW`, followed by the layer's :class:`RowSweep`), and every
    layer's units are the same code:

    1. accept a sample; with ``train`` set, the QBP exponents of its pixels are drawn, one
       pixel per cycle, from the :class:`Lfsr` through the :class:`QbpRounder`, in parallel
       with
    2. forward, hidden layer ``l``: ``s_l`` by :class:`RowDot` ``fwd{l}`` (bit-plane popcounts
       of the pixels, XNOR or the two ternary masks against the ``±1`` bits of the layer
       before); the bit ``h = s_l >= 0`` and the gate ``|s_l| < 2**gate_shifts[l-1]`` are
       shifted into per-layer registers;
    3. output layer ``L``, row ``i``: ``s_L`` by ``fwd{L}`` and the running argmax (the
       prediction); when training, also the error ``d_L`` by :class:`HingeError`, its
       back-propagation ``T(W_L)^T d_L`` accumulated by :class:`DeltaBackprop`
       ``backprop{L-1}``, and the row's update by :class:`WeightUpdate` ``update{L}``;
    4. when training, backward, hidden layer ``l`` from ``L - 1`` down to 1, row ``j``:
       ``d_l = gate * round(e_l / 2**backprop_shifts[l-1])`` with ``e_l`` shifted out of
       ``backprop{l}``, accumulated into ``backprop{l-1}`` (``l > 1``) and used for the row's
       update (layer 1: shifts ``lr_shifts[0] + x - e_k``, pixels 0 skipped; the others:
       ``lr_shifts[l-1] + x``, negated where ``h_{l-1}`` is -1);
    5. the prediction is offered on ``o``.

    A row's update is written back when the row leaves the pipeline (stage :data:`NEW`),
    after its old weights served the forward or backward pass. With ``batch_shift = 0`` it is applied at once; with
    mini-batches it is added into an accumulator memory ``acc{l}`` beside the weights
    (:class:`BatchApply` ``batch{l}``), and the batch's last sample writes
    ``clip(w + round(A / 2**batch_shift))`` and clears ``A``. Every weight row written appears
    on ``wb`` in that cycle. Between samples, ``rd_req`` reads a row of any layer out on
    ``rd``. A request with ``train`` clear runs steps 1 to 3 without the update (no LFSR draw,
    not counted as a sample).

    Cycles (:func:`step_cycles`): a training result is valid :attr:`latency` cycles after the
    sample is accepted, a new sample is accepted every :attr:`cycles_per_step` cycles with
    ``o`` always ready; an inference result after :attr:`inference_latency`.
    No multiplier: popcounts, additions, comparisons, multiplexers and shifts only.

    Parameters
    ----------
    config : OnChipConfig
        Sizes, weight kind, fixed-point scales and LFSR seed, as the integer golden model reads
        them; the registers are sized from its bounds (``s_bounds``, ``d_bounds``,
        ``e_bounds``, ``update_bounds``, ``acc_bounds``) and the LFSR is
        :data:`~fewmul.arith.onchip.LFSR_WIDTH` bits wide with taps
        :data:`~fewmul.arith.onchip.LFSR_TAPS`. Its ``seed`` is not used: the initial weights
        are given.
    weights : list of numpy.ndarray
        Initial hidden weights, input layer first, ``(M_l, M_{l-1})`` each, in ``[-W0, W0]``.

    Attributes
    ----------
    units : dict
        ``{name: (unit, role)}`` of the datapath's units, role ``forward``, ``backward`` or
        ``control``, for the area report.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"pixels": ArrayLayout(unsigned(k), N), "label": range(C), "train": 1})))``
    o : ``Out(stream.Signature(StructLayout({"prediction": range(C)})))``
    wb : ``Out(Signature({"valid": Out(1), "payload": Out(StructLayout({"layer": range(L), "row": ..., "weights": ...}))}))``
        ``layer`` 0 for ``w1``; ``weights`` is the new row (zero-padded to the widest row).
    rd_req : ``In(stream.Signature(StructLayout({"layer": range(L), "row": ...})))``
    rd : ``Out(stream.Signature(StructLayout({"weights": ...})))``
        The row asked for, as ``wb`` gives rows.
    """

    def __init__(self, config: OnChipConfig, weights):
        if not isinstance(config, OnChipConfig):
            raise TypeError(f"Configuration must be an OnChipConfig, not {config!r}")
        self.config = c = config
        n_layers = c.layers
        weights = list(weights)
        if len(weights) != n_layers:
            raise ValueError(f"Weights must be a list of {n_layers} arrays (one per layer, "
                             f"sizes {c.sizes!r}), not {len(weights)}")
        self.weights_init = [_check_weights(f"w{index + 1}", w, shape, c.w0)
                             for index, (w, shape) in enumerate(zip(weights, c.shapes))]
        self.sizes = c.sizes
        self.n_layers = n_layers
        self.weight_shape = signed_shape(-c.w0, c.w0)
        self.latency, self.cycles_per_step, self.inference_latency = step_cycles(c.sizes)
        self.max_extra = c.max_lr_extra
        batched = c.batch_shift > 0
        k = c.input_bits

        self.fwd = [RowDot(c.sizes[index], input_kind="unsigned" if index == 0 else "bipolar",
                           input_bits=k if index == 0 else 1, weight_kind=c.weights,
                           stages=COUNT_STAGES)
                    for index in range(n_layers)]
        self.hinge = HingeError(c.s_bounds[-1], c.score_shift)
        # backprop[i] accumulates e of hidden layer i + 1 from the rows of layer i + 2.
        self.backprop = [DeltaBackprop(c.sizes[index + 1], delta_bound=c.d_bounds[index + 1],
                                       rows=c.sizes[index + 2], weight_kind=c.weights)
                         for index in range(n_layers - 1)]
        self.update = []
        for index, ((low, high), d_bound) in enumerate(zip(c.update_shift_ranges, c.d_bounds)):
            self.update.append(WeightUpdate(c.sizes[index], delta_bound=d_bound, max_shift=high,
                                            min_shift=low,
                                            exponents=0 if index else c.max_exponent))
        self.batch = [BatchApply(c.sizes[index], weight_bits=c.weight_bits,
                                 step_bound=self.update[index].step_bound,
                                 batch_shift=c.batch_shift)
                      for index in range(n_layers)] if batched else []
        self.qbp = QbpRounder(k)
        self.lfsr = Lfsr(width=LFSR_WIDTH, taps=LFSR_TAPS, seed=c.lfsr_seed,
                         bits=max(c.random_bits, 1))
        self.sweep = [RowSweep(c.sizes[index + 1], stages=NEW) for index in range(n_layers)]

        self.units = {"hinge": (self.hinge, "backward"), "qbp": (self.qbp, "backward"),
                      "lfsr": (self.lfsr, "backward")}
        for index in range(n_layers):
            self.units[f"fwd{index + 1}"] = (self.fwd[index], "forward")
            self.units[f"update{index + 1}"] = (self.update[index], "backward")
            self.units[f"sweep{index + 1}"] = (self.sweep[index], "control")
            if batched:
                self.units[f"batch{index + 1}"] = (self.batch[index], "backward")
            if index < n_layers - 1:
                self.units[f"backprop{index + 1}"] = (self.backprop[index], "backward")

        rows = max(c.sizes[1:])
        row_weights = data.ArrayLayout(self.weight_shape, max(c.sizes[:-1]))
        sample = data.StructLayout({
            "pixels": data.ArrayLayout(unsigned(k), c.sizes[0]),
            "label": range(c.sizes[-1]),
            "train": 1,
        })
        where = {"layer": range(n_layers), "row": range(rows)}
        super().__init__({
            "i": In(stream.Signature(sample)),
            "o": Out(stream.Signature(data.StructLayout({"prediction": range(c.sizes[-1])}))),
            "wb": Out(wiring.Signature({
                "valid": Out(1),
                "payload": Out(data.StructLayout({**where, "weights": row_weights}))})),
            "rd_req": In(stream.Signature(data.StructLayout(where))),
            "rd": Out(stream.Signature(data.StructLayout({"weights": row_weights}))),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        for name, (unit, _) in self.units.items():
            m.submodules[name] = unit
        sample = _Sample.create(m, self)
        qbp_done = self._qbp(m, sample)
        rd_layer = Signal(range(self.n_layers))
        # The ports' valid bits are registers (set as their state is entered): a decode of the
        # state would reach a link's wide frame registers across the chip.
        o_valid, rd_valid = Signal(), Signal()
        m.d.comb += [self.o.valid.eq(o_valid), self.rd.valid.eq(rd_valid)]
        rd_row = Signal(self.rd_req.payload.row.shape())
        reading = Signal()                                    # the read-out port owns the address
        layers = [self._layer(m, index, sample, Mux(reading, rd_row, self.sweep[index].addr))
                  for index in range(self.n_layers)]

        # -- debug port: every row written (one layer at a time) ---------------------------
        m.d.comb += self.wb.valid.eq(Cat(layer.write for layer in layers).any())
        for index, layer in enumerate(layers):
            with m.If(layer.write):
                m.d.comb += [self.wb.payload.layer.eq(index), self.wb.payload.row.eq(layer.row),
                             self.wb.payload.weights.eq(layer.new.as_value())]

        # -- read-out port -------------------------------------------------------------------
        for index, layer in enumerate(layers):
            with m.If(rd_layer == index):
                m.d.comb += self.rd.payload.weights.eq(layer.read.as_value())

        # -- the argmax of the output scores, at SUM ----------------------------------------
        best = Signal(self.fwd[-1].sum_shape)
        prediction = Signal(range(c.sizes[-1]))
        output, score = self.sweep[-1].rows[SUM], self.hinge.score
        with m.If(output.valid & ((output.index == 0) | (score > best))):
            m.d.sync += [best.eq(score), prediction.eq(output.index)]
        m.d.comb += self.o.payload.prediction.eq(prediction)

        # -- control: when each sweep starts --------------------------------------------------
        sweeps, last = self.sweep, self.n_layers - 1
        # The ports' ready bits come from a register of their own, set as IDLE is entered: a
        # decode of the state, shared by the synthesis with the sweeps' starts, would take
        # those across the chip to the link's frame logic and back.
        idle = Signal(init=1)
        m.d.comb += [self.rd_req.ready.eq(idle), self.i.ready.eq(idle & ~self.rd_req.valid)]
        # Likewise the sample's registers load while the trainer is idle (enabled by that
        # register alone, not by the acceptance), and the back-propagation accumulators are
        # cleared the cycle after it (long before the output layer's errors reach them).
        with m.If(idle):
            sample.follow(m, self.i.payload)
        clear = Signal()
        m.d.sync += clear.eq(0)
        for acc in self.backprop:
            m.d.comb += acc.clear.eq(clear)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.rd_req.valid):
                    m.d.sync += [rd_layer.eq(self.rd_req.payload.layer),
                                 rd_row.eq(self.rd_req.payload.row), idle.eq(0)]
                    m.next = "READ"
                with m.Elif(self.i.valid):
                    m.d.sync += idle.eq(0)
                    sample.accept(m, self.i.payload)
                    m.d.comb += sweeps[0].start.eq(1)
                    m.d.sync += clear.eq(1)
                    m.next = "FORWARD_1"
            with m.State("READ"):                  # the address goes out
                m.d.comb += reading.eq(1)
                m.next = "READ_ROW"
            with m.State("READ_ROW"):              # the row comes out of the memory
                m.d.comb += reading.eq(1)
                m.d.sync += rd_valid.eq(1)
                m.next = "READ_OUT"
            with m.State("READ_OUT"):              # and is offered from its register
                m.d.comb += reading.eq(1)
                with m.If(self.rd.ready):
                    m.d.sync += [rd_valid.eq(0), idle.eq(1)]
                    m.next = "IDLE"
            for index in range(last):
                with m.State(f"FORWARD_{index + 1}"):
                    with m.If(sweeps[index].rows[FORWARD_GAP - 1].last):
                        m.d.comb += sweeps[index + 1].start.eq(1)
                        if index + 1 == last:
                            m.d.comb += sweeps[index + 1].write.eq(sample.train)
                        m.next = f"FORWARD_{index + 2}"
            with m.State(f"FORWARD_{last + 1}"):
                # The output layer: scores, argmax, and when training its error and update.
                with m.If(sample.train):
                    with m.If(sweeps[last].rows[BACKWARD_GAP - 1].last):
                        self._backward_from(m, last, qbp_done)
                with m.Elif(sweeps[last].rows[SUM].last):
                    m.d.sync += o_valid.eq(1)
                    m.next = "DONE"
            for index in range(last - 1, -1, -1):
                # The layer's forward sweep may still be in the pipeline's last stages: its
                # rows are not written, the backward sweep's are.
                rows = sweeps[index].rows
                with m.State(f"BACKWARD_{index + 1}"):
                    if index:
                        with m.If(rows[BACKWARD_GAP - 1].last & rows[BACKWARD_GAP - 1].write):
                            self._backward_from(m, index, qbp_done)
                    else:
                        with m.If(rows[NEW].last & rows[NEW].write):
                            # The sample is counted as its last row is written (that row
                            # still sees the old counts), not when the link takes the result.
                            sample.count(m)
                            m.d.sync += o_valid.eq(1)
                            m.next = "DONE"
            with m.State("WAIT_QBP"):
                with m.If(qbp_done):
                    m.d.comb += [sweeps[0].start.eq(1), sweeps[0].write.eq(1)]
                    m.next = "BACKWARD_1"
            with m.State("DONE"):
                with m.If(self.o.ready):
                    m.d.sync += [o_valid.eq(0), idle.eq(1)]
                    m.next = "IDLE"
        return m

    def _qbp(self, m, sample: "_Sample"):
        """QBP exponents, one pixel per cycle, shifted in from the top of ``sample.exponents``.

        The pixel is picked (an ``Array`` multiplexer: a view's variable index would scale it
        by the element width with a constant multiplication) and registered, then rounded.
        Returns ``qbp_done``: the exponents are all in ``exponents`` at the next edge.
        """
        c, qbp, lfsr = self.config, self.qbp, self.lfsr
        n, pixels = c.sizes[0], sample.pixels
        busy, index = sample.qbp_busy, sample.qbp_index       # picking pixel `index`
        q = Signal(c.input_bits)                              # the pixel picked the cycle before
        valid, last = Signal(), Signal()
        m.d.sync += [valid.eq(busy), last.eq(busy & (index == n - 1))]
        with m.If(busy):
            m.d.sync += [q.eq(Array(pixels[j] for j in range(n))[index]), index.eq(index + 1)]
            with m.If(index == n - 1):
                m.d.sync += [busy.eq(0), index.eq(0)]
        m.d.comb += [qbp.q.eq(q), qbp.random.eq(lfsr.bits)]
        exponents = sample.exponents
        width = Shape.cast(exponents.shape().elem_shape).width
        with m.If(valid):
            if c.input_bits > 1:
                m.d.comb += lfsr.advance.eq(1)
            m.d.sync += exponents.eq(Cat(exponents.as_value()[width:], qbp.exponent[:width]))
        done = Signal()
        m.d.comb += done.eq(~busy & (~valid | last))
        return done

    def _layer(self, m, index: int, sample: "_Sample", addr) -> "_LayerPorts":
        """Layer ``index + 1``'s datapath: its weight memory, read at ``addr``, and the row
        pipeline (the same code for every layer). Returns what the ports need of it."""
        c, last = self.config, self.n_layers - 1
        lanes, depth = c.sizes[index], c.sizes[index + 1]
        fwd, upd, rows = self.fwd[index], self.update[index], self.sweep[index].rows
        init = [[int(v) for v in row] for row in self.weights_init[index]]
        mem = Memory(shape=data.ArrayLayout(self.weight_shape, lanes), depth=depth, init=init)
        m.submodules[f"w{index + 1}"] = mem
        rd, wr = mem.read_port(), mem.write_port()
        m.d.comb += rd.addr.eq(addr)

        def masks(row):
            return Cat(*weight_masks(row, lanes, c.weights, c.weight_bits))

        # The row, registered at ROW and carried along to STEP (the update adds to it).
        row_at = {READ: rd.data}
        for stage in range(ROW, STEP + 1):
            row_at[stage] = Signal.like(rd.data, name=f"w{index + 1}_s{stage}")
            m.d.sync += row_at[stage].eq(row_at[stage - 1])
        x = sample.pixels if index == 0 else sample.hidden[index - 1]
        m.d.comb += [fwd.masks.eq(masks(row_at[ROW])), fwd.x.eq(x)]
        s = Signal(fwd.sum_shape, name=f"s{index + 1}")
        m.d.sync += s.eq(fwd.sum)

        # The row's error at SUM, registered at ERROR as a value and as sign and magnitude.
        delta = Signal(signed_shape(-c.d_bounds[index], c.d_bounds[index]), name=f"d{index + 1}")
        negative = Signal(name=f"d{index + 1}_negative")
        magnitude = Signal(range(c.d_bounds[index] + 1), name=f"d{index + 1}_magnitude")
        if index == last:
            hinge = self.hinge
            m.d.comb += [hinge.score.eq(s), hinge.target.eq(sample.label == rows[SUM].index)]
            m.d.sync += [delta.eq(hinge.delta), negative.eq(hinge.negative),
                         magnitude.eq(hinge.magnitude)]
        else:
            hidden, gate = sample.hidden[index], sample.gate[index]
            # Forward: h and gate shifted in from the top.
            limit = 1 << c.gate_shifts[index]
            with m.If(rows[SUM].valid & ~rows[SUM].write):
                m.d.sync += [hidden.eq(Cat(hidden[1:], s >= 0)),
                             gate.eq(Cat(gate[1:], (s < limit) & (s > -limit)))]
            # Backward: e_l shifted out of its accumulators, in row order, as is the gate.
            acc = self.backprop[index]
            head_negative, head_magnitude = round_shift_magnitude(acc.head,
                                                                  c.backprop_shifts[index])
            m.d.sync += [delta.eq(0), negative.eq(head_negative), magnitude.eq(0)]
            with m.If(gate[0]):
                m.d.sync += [delta.eq(Mux(head_negative, -head_magnitude, head_magnitude)),
                             magnitude.eq(head_magnitude)]
            with m.If(rows[SUM].valid & rows[SUM].write):
                m.d.comb += acc.shift.eq(1)
                m.d.sync += gate.eq(gate[1:])
        if index > 0:
            below = self.backprop[index - 1]
            m.d.comb += [below.masks.eq(masks(row_at[ERROR])), below.delta.eq(delta),
                         below.en.eq(rows[ERROR].valid & rows[ERROR].write)]

        # The row's update: the magnitude shifted at ERROR (registered in the unit at
        # SHIFTED), each lane's step registered at STEP, the new row at NEW.
        m.d.comb += [upd.magnitude.eq(magnitude), upd.negative.eq(negative),
                     upd.amount.eq(c.lr_shifts[index] + sample.extra)]
        if index == 0:
            pixels = sample.pixels
            m.d.comb += [upd.exponent.eq(sample.exponents), upd.negate.eq(0),
                         upd.skip.eq(Cat(pixels[j] == 0 for j in range(lanes)))]
        else:
            m.d.comb += [upd.negate.eq(~sample.hidden[index - 1]), upd.skip.eq(0)]
        step_magnitude = Signal.like(upd.step_magnitude, name=f"step{index + 1}_magnitude")
        step_negative = Signal.like(upd.step_negative, name=f"step{index + 1}_negative")
        m.d.sync += [step_magnitude.eq(upd.step_magnitude),
                     step_negative.eq(upd.step_negative)]
        new = Signal.like(rd.data, name=f"new{index + 1}")
        leaving = rows[NEW].valid & rows[NEW].write
        write = Signal(name=f"write{index + 1}")
        m.d.comb += [wr.addr.eq(rows[NEW].index), wr.data.eq(new), wr.en.eq(write)]
        if self.batch:
            unit = self.batch[index]
            accs = Memory(shape=data.ArrayLayout(unit.acc_shape, lanes), depth=depth, init=[])
            m.submodules[f"acc{index + 1}"] = accs
            acc_rd, acc_wr = accs.read_port(), accs.write_port()
            acc_next = Signal.like(acc_wr.data, name=f"acc{index + 1}_next")
            total = Signal.like(rd.data, name=f"total{index + 1}")
            for k in range(lanes):
                m.d.comb += unit.step[k].eq(Mux(step_negative[k], -step_magnitude[k],
                                                step_magnitude[k]))
            m.d.comb += [
                acc_rd.addr.eq(rows[STEP - 1].index),
                unit.weights.eq(row_at[STEP]), unit.acc.eq(acc_rd.data),
                unit.apply.eq(sample.apply),
                acc_wr.addr.eq(rows[TOTAL].index), acc_wr.data.eq(acc_next),
                acc_wr.en.eq(rows[TOTAL].valid & rows[TOTAL].write),
                write.eq(leaving & sample.apply),
            ]
            # BatchApply clips: the new row is its result, a cycle later.
            m.d.sync += [total.eq(unit.result), acc_next.eq(unit.acc_next), new.eq(total)]
        else:
            # w + step at TOTAL, wide enough for the sum; clipped at NEW.
            for k in range(lanes):
                w, mag = row_at[STEP][k], step_magnitude[k]
                lane_total = Signal(signed_shape(-c.w0 - upd.step_bound, c.w0 + upd.step_bound),
                                    name=f"total{index + 1}_{k}")
                m.d.sync += [lane_total.eq(Mux(step_negative[k], w - mag, w + mag)),
                             new[k].eq(clip(lane_total, c.w0))]
            m.d.comb += write.eq(leaving)
        return _LayerPorts(write=write, row=rows[NEW].index, new=new, read=row_at[ROW])

    def _backward_from(self, m, index, qbp_done):
        """:data:`BACKWARD_GAP` cycles after the last row of layer ``index + 1``: start layer
        ``index``'s backward sweep (layer 1's once its QBP exponents are all drawn)."""
        sweep = self.sweep[index - 1]
        if index - 1 > 0:
            m.d.comb += [sweep.start.eq(1), sweep.write.eq(1)]
            m.next = f"BACKWARD_{index}"
            return
        with m.If(qbp_done):
            m.d.comb += [sweep.start.eq(1), sweep.write.eq(1)]
            m.next = "BACKWARD_1"
        with m.Else():
            m.next = "WAIT_QBP"
