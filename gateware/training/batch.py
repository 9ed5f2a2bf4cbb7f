"""Mini-batch unit: a row of update accumulators, and the batch's mean update applied."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..widths import signed_shape
from .fixed import clip, round_shift

__all__ = ["BatchApply"]


class BatchApply(wiring.Component):
    """One row of a mini-batch: ``A_k + step_k`` kept, or applied to the weights and cleared.

    Every sample of a batch of ``B = 2**batch_shift`` adds its update ``step`` into the row's
    accumulators ``A``: ``acc_next = A + step``. With ``apply`` (the batch's last sample),
    ``result = clip(w + round(acc / 2**batch_shift))`` (rounded to nearest, ties away from
    zero, a shift by a constant) and ``acc_next = 0``. Combinational; the accumulators live in
    a memory beside the weights.

    Parameters
    ----------
    lanes : int
        Weights per row.
    weight_bits : int
        Hidden weights lie in ``[-W0, W0]``, ``W0 = 2**weight_bits``.
    step_bound : int
        ``|step_k| <= step_bound``.
    batch_shift : int
        ``B = 2**batch_shift`` samples per batch (at least 1).

    Attributes
    ----------
    acc_bound : int
        ``|A + step| <= acc_bound = B * step_bound``.

    Members
    -------
    weights : ``In(ArrayLayout(signed(weight_bits + 2), lanes))``
    acc : ``In(ArrayLayout(acc_shape, lanes))``
    step : ``In(ArrayLayout(step_shape, lanes))``
    apply : ``In(1)``
    acc_next : ``Out(ArrayLayout(acc_shape, lanes))``
    result : ``Out(ArrayLayout(signed(weight_bits + 2), lanes))``
    """

    def __init__(self, lanes: int, *, weight_bits: int, step_bound: int, batch_shift: int):
        for name, value in (("Lanes", lanes), ("Weight bits", weight_bits),
                            ("Step bound", step_bound), ("Batch shift", batch_shift)):
            if not isinstance(value, int) or value <= 0:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        self.lanes, self.weight_bits, self.batch_shift = lanes, weight_bits, batch_shift
        self.w0 = 1 << weight_bits
        self.weight_shape = signed(weight_bits + 2)
        self.step_shape = signed_shape(-step_bound, step_bound)
        self.acc_bound = step_bound << batch_shift
        self.acc_shape = signed_shape(-self.acc_bound, self.acc_bound)
        super().__init__({
            "weights": In(data.ArrayLayout(self.weight_shape, lanes)),
            "acc": In(data.ArrayLayout(self.acc_shape, lanes)),
            "step": In(data.ArrayLayout(self.step_shape, lanes)),
            "apply": In(1),
            "acc_next": Out(data.ArrayLayout(self.acc_shape, lanes)),
            "result": Out(data.ArrayLayout(self.weight_shape, lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        mean_bound = (self.acc_bound >> self.batch_shift) + 1
        sum_shape = signed_shape(-self.w0 - mean_bound, self.w0 + mean_bound)
        for k in range(self.lanes):
            total = Signal(self.acc_shape, name=f"acc_{k}")
            mean = Signal(signed_shape(-mean_bound, mean_bound), name=f"mean_{k}")
            new = Signal(sum_shape, name=f"new_{k}")
            m.d.comb += [
                total.eq(self.acc[k] + self.step[k]),
                mean.eq(round_shift(total, self.batch_shift)),
                new.eq(self.weights[k] + mean),
                self.acc_next[k].eq(Mux(self.apply, 0, total)),
                self.result[k].eq(clip(new, self.w0)),
            ]
        return m
