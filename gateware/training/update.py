"""Weight-update unit: a row's steps, the error's magnitude shifted by barrel shifters."""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .shifter import BarrelShifter

__all__ = ["WeightUpdate"]


class WeightUpdate(wiring.Component):
    """The update of one row: ``step_k = s_k * round(|delta| / 2**(amount - exponent_k))``.

    The error ``delta`` is given as its ``magnitude`` and its sign (``negative``). ``s_k`` is
    ``sign(delta)``, negated where ``negate_k`` is set (the input was negative) and zero where
    ``skip_k`` is set (the input was zero); rounding is to nearest, ties away from zero.

    Two stages. First the magnitude is shifted by each amount a lane can ask for,
    ``amount - e`` for ``e = 0 .. exponents``, by one :class:`BarrelShifter` each
    (submodules ``shift_{e}``), and registered with the sign: a handful of shifters for the
    whole row, not one per lane (layer 1's lanes differ only by their pixel's QBP exponent
    ``e``; a hidden layer's lanes all use ``e = 0``). Then each lane picks its exponent's
    value and gives its step as a sign and a magnitude (``step_negative``, ``step_magnitude``),
    combinationally from the registers and from ``exponent``,
    ``negate`` and ``skip`` as they are in that cycle (the trainer holds them for a sample).
    The trainer adds the step to the weights and clips (:func:`~.fixed.clip`), or adds it
    into a mini-batch's accumulators.

    Parameters
    ----------
    lanes : int
        Weights per row.
    delta_bound : int
        ``|delta| <= delta_bound``.
    max_shift : int
        Largest shift amount, ``amount - 0``.
    min_shift : int
        Smallest shift amount, ``amount - exponents`` at its least (sizes ``step``; default 0).
    exponents : int
        Largest ``exponent_k`` (0: every lane uses ``amount``; no ``exponent`` member).

    Attributes
    ----------
    step_bound : int
        ``|step_k| <= step_bound``: ``delta_bound`` shifted by ``min_shift``, rounded.

    Members
    -------
    magnitude : ``In(range(delta_bound + 1))``
    negative : ``In(1)``
    amount : ``In(range(max_shift + 1))``
    exponent : ``In(ArrayLayout(range(exponents + 1), lanes))`` (with ``exponents > 0``)
    negate, skip : ``In(lanes)``
    step_magnitude : ``Out(ArrayLayout(unsigned, lanes))``
    step_negative : ``Out(lanes)``
    """

    def __init__(self, lanes: int, *, delta_bound: int, max_shift: int, min_shift: int = 0,
                 exponents: int = 0):
        for name, value in (("Lanes", lanes), ("Delta bound", delta_bound)):
            if not isinstance(value, int) or value <= 0:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(min_shift, int) or not 0 <= min_shift <= max_shift:
            raise TypeError(f"Minimum shift must be an integer in 0..{max_shift}, not "
                            f"{min_shift!r}")
        if not isinstance(exponents, int) or not 0 <= exponents <= max_shift - min_shift:
            raise TypeError(f"Exponents must be an integer in 0..{max_shift - min_shift}, not "
                            f"{exponents!r}")
        self.lanes, self.max_shift, self.exponents = lanes, max_shift, exponents
        self.mag_width = delta_bound.bit_length()
        self.step_bound = ((delta_bound << 1 >> min_shift) + 1) >> 1
        self.shifters = [BarrelShifter(self.mag_width, max_shift) for _ in range(exponents + 1)]
        members = {
            "magnitude": In(range(delta_bound + 1)),
            "negative": In(1),
            "amount": In(range(max_shift + 1)),
            "negate": In(lanes),
            "skip": In(lanes),
            "step_magnitude": Out(data.ArrayLayout(range(self.step_bound + 1), lanes)),
            "step_negative": Out(lanes),
        }
        if exponents:
            members["exponent"] = In(data.ArrayLayout(range(exponents + 1), lanes))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        shifted = []                              # registered: the magnitude >> (amount - e)
        for e, shifter in enumerate(self.shifters):
            m.submodules[f"shift_{e}"] = shifter
            m.d.comb += [shifter.value.eq(self.magnitude), shifter.amount.eq(self.amount - e)]
            value = Signal(range(self.step_bound + 1), name=f"shifted_{e}")
            m.d.sync += value.eq(shifter.result)
            shifted.append(value)
        negative = Signal()
        m.d.sync += negative.eq(self.negative)
        choices = Array(shifted)
        for k in range(self.lanes):
            pick = choices[self.exponent[k]] if self.exponents else shifted[0]
            magnitude = Mux(self.skip[k], 0, pick)
            sign = negative ^ self.negate[k]
            m.d.comb += [self.step_magnitude[k].eq(magnitude), self.step_negative[k].eq(sign)]
        return m
