"""Weight-update unit: a row of hidden weights plus the shifted error, clipped."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..widths import signed_shape
from .shifter import BarrelShifter

__all__ = ["WeightUpdate"]


class WeightUpdate(wiring.Component):
    """The update of one row of hidden weights: ``step_k = s_k * round(|delta| / 2**amount_k)``.

    ``s_k`` is ``sign(delta)``, negated where ``negate_k`` is set (the input was negative) and
    zero where ``skip_k`` is set (the input was zero). Each lane has its own
    :class:`BarrelShifter` (submodules ``shift_{k}``), or, with ``shared``, all lanes use one
    shift amount and one shifter (submodule ``shift``: inputs of ±1 have the same exponent).
    The magnitude is rounded to nearest, ties away from zero. ``result`` is ``w_k + step_k``
    clipped to ``[-2**weight_bits, 2**weight_bits]`` (without ``clip``, only ``step`` is
    given: a mini-batch adds it into an accumulator instead). Combinational.

    Parameters
    ----------
    lanes : int
        Weights per row.
    weight_bits : int
        Hidden weights lie in ``[-W0, W0]``, ``W0 = 2**weight_bits``.
    delta_bound : int
        ``|delta| <= delta_bound``.
    max_shift : int
        Largest shift amount.
    min_shift : int
        Smallest shift amount the user gives (sizes ``step``; default 0).
    shared : bool
        One shift amount for all lanes (``amount`` is a single value).
    clip : bool
        Give ``result`` (the clipped new weights).

    Attributes
    ----------
    step_bound : int
        ``|step_k| <= step_bound``: ``delta_bound`` shifted by ``min_shift``, rounded.

    Members
    -------
    weights : ``In(ArrayLayout(signed(weight_bits + 2), lanes))``
    delta : ``In(signed)``
    amount : ``In(ArrayLayout(range(max_shift + 1), lanes))``, or ``In(range(max_shift + 1))``
    negate, skip : ``In(lanes)``
    step : ``Out(ArrayLayout(step_shape, lanes))``
    result : ``Out(ArrayLayout(signed(weight_bits + 2), lanes))`` (with ``clip``)
    """

    def __init__(self, lanes: int, *, weight_bits: int, delta_bound: int, max_shift: int,
                 min_shift: int = 0, shared: bool = False, clip: bool = True):
        for name, value in (("Lanes", lanes), ("Weight bits", weight_bits),
                            ("Delta bound", delta_bound)):
            if not isinstance(value, int) or value <= 0:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        self.lanes, self.weight_bits, self.max_shift = lanes, weight_bits, max_shift
        self.w0 = 1 << weight_bits
        self.weight_shape = signed(weight_bits + 2)
        self.delta_shape = signed_shape(-delta_bound, delta_bound)
        self.mag_width = delta_bound.bit_length()
        if not isinstance(min_shift, int) or not 0 <= min_shift <= max_shift:
            raise TypeError(f"Minimum shift must be an integer in 0..{max_shift}, not "
                            f"{min_shift!r}")
        self.step_bound = ((delta_bound << 1 >> min_shift) + 1) >> 1
        self.step_shape = signed_shape(-self.step_bound, self.step_bound)
        self.shared, self.clip = shared, clip
        self.shifters = [BarrelShifter(self.mag_width, max_shift)
                         for _ in range(1 if shared else lanes)]
        amount = range(max_shift + 1) if shared else data.ArrayLayout(range(max_shift + 1), lanes)
        members = {
            "weights": In(data.ArrayLayout(self.weight_shape, lanes)),
            "delta": In(self.delta_shape),
            "amount": In(amount),
            "negate": In(lanes),
            "skip": In(lanes),
            "step": Out(data.ArrayLayout(self.step_shape, lanes)),
        }
        if clip:
            members["result"] = Out(data.ArrayLayout(self.weight_shape, lanes))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        negative = self.delta < 0
        mag = Signal(self.mag_width)
        m.d.comb += mag.eq(Mux(negative, -self.delta, self.delta))
        sum_shape = signed_shape(-self.w0 - self.step_bound, self.w0 + self.step_bound)
        if self.shared:
            m.submodules.shift = shifter = self.shifters[0]
            m.d.comb += [shifter.value.eq(mag), shifter.amount.eq(self.amount)]
        else:
            for k, shifter in enumerate(self.shifters):
                m.submodules[f"shift_{k}"] = shifter
                m.d.comb += [shifter.value.eq(mag), shifter.amount.eq(self.amount[k])]
        for k in range(self.lanes):
            shifted = self.shifters[0 if self.shared else k].result
            step = Mux(self.skip[k], 0, shifted)
            m.d.comb += self.step[k].eq(Mux(negative ^ self.negate[k], -step, step))
            if not self.clip:
                continue
            total = Signal(sum_shape, name=f"total_{k}")
            m.d.comb += total.eq(Mux(negative ^ self.negate[k],
                                     self.weights[k] - step, self.weights[k] + step))
            m.d.comb += self.result[k].eq(Mux(total > self.w0, self.w0,
                                              Mux(total < -self.w0, -self.w0, total)))
        return m
