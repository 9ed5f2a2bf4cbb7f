"""Weight-update unit: a row's steps, the error's magnitude shifted by barrel shifters."""

from amaranth.hdl import Module, Mux
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..widths import signed_shape
from .shifter import BarrelShifter

__all__ = ["WeightUpdate"]


class WeightUpdate(wiring.Component):
    """The update of one row of hidden weights: ``step_k = s_k * round(|delta| / 2**amount_k)``.

    The error ``delta`` is given as its ``magnitude`` and its sign (``negative``). ``s_k`` is
    ``sign(delta)``, negated where ``negate_k`` is set (the input was negative) and zero where
    ``skip_k`` is set (the input was zero). Each lane has its own :class:`BarrelShifter`
    (submodules ``shift_{k}``), or, with ``shared``, all lanes use one shift amount and one
    shifter (submodule ``shift``: inputs of ±1 have the same exponent). The magnitude is
    rounded to nearest, ties away from zero. The step is added to the weights and clipped by
    the trainer (:func:`~.fixed.clip`), or into a mini-batch's accumulators. Combinational.

    Parameters
    ----------
    lanes : int
        Weights per row.
    delta_bound : int
        ``|delta| <= delta_bound``.
    max_shift : int
        Largest shift amount.
    min_shift : int
        Smallest shift amount the user gives (sizes ``step``; default 0).
    shared : bool
        One shift amount for all lanes (``amount`` is a single value).

    Attributes
    ----------
    step_bound : int
        ``|step_k| <= step_bound``: ``delta_bound`` shifted by ``min_shift``, rounded.

    Members
    -------
    magnitude : ``In(range(delta_bound + 1))``
    negative : ``In(1)``
    amount : ``In(ArrayLayout(range(max_shift + 1), lanes))``, or ``In(range(max_shift + 1))``
    negate, skip : ``In(lanes)``
    step : ``Out(ArrayLayout(step_shape, lanes))``
    """

    def __init__(self, lanes: int, *, delta_bound: int, max_shift: int, min_shift: int = 0,
                 shared: bool = False):
        for name, value in (("Lanes", lanes), ("Delta bound", delta_bound)):
            if not isinstance(value, int) or value <= 0:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(min_shift, int) or not 0 <= min_shift <= max_shift:
            raise TypeError(f"Minimum shift must be an integer in 0..{max_shift}, not "
                            f"{min_shift!r}")
        self.lanes, self.max_shift, self.shared = lanes, max_shift, shared
        self.mag_width = delta_bound.bit_length()
        self.step_bound = ((delta_bound << 1 >> min_shift) + 1) >> 1
        self.step_shape = signed_shape(-self.step_bound, self.step_bound)
        self.shifters = [BarrelShifter(self.mag_width, max_shift)
                         for _ in range(1 if shared else lanes)]
        amount = range(max_shift + 1) if shared else data.ArrayLayout(range(max_shift + 1), lanes)
        super().__init__({
            "magnitude": In(range(delta_bound + 1)),
            "negative": In(1),
            "amount": In(amount),
            "negate": In(lanes),
            "skip": In(lanes),
            "step": Out(data.ArrayLayout(self.step_shape, lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        if self.shared:
            m.submodules.shift = shifter = self.shifters[0]
            m.d.comb += [shifter.value.eq(self.magnitude), shifter.amount.eq(self.amount)]
        else:
            for k, shifter in enumerate(self.shifters):
                m.submodules[f"shift_{k}"] = shifter
                m.d.comb += [shifter.value.eq(self.magnitude), shifter.amount.eq(self.amount[k])]
        for k in range(self.lanes):
            shifted = self.shifters[0 if self.shared else k].result
            step = Mux(self.skip[k], 0, shifted)
            m.d.comb += self.step[k].eq(Mux(self.negative ^ self.negate[k], -step, step))
        return m
