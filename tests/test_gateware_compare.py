import itertools

import pytest
from amaranth.hdl import Const, Module, signed, unsigned
from amaranth.sim import Simulator

from fewmul.gateware.compare import greater


@pytest.mark.parametrize("a_shape, b_shape", [
    (signed(4), signed(4)), (signed(3), signed(5)), (unsigned(3), signed(4)),
    (signed(4), unsigned(4)), (unsigned(3), unsigned(2)), (signed(1), signed(2)),
])
@pytest.mark.parametrize("or_equal", [False, True])
def test_greater_agrees_with_python_on_every_pair(a_shape, b_shape, or_equal):
    def values(shape):
        lo = -(1 << (shape.width - 1)) if shape.signed else 0
        return range(lo, lo + (1 << shape.width))

    cases = [(a, b, greater(Const(a, a_shape), Const(b, b_shape), or_equal=or_equal))
             for a, b in itertools.product(values(a_shape), values(b_shape))]

    async def testbench(ctx):
        for a, b, value in cases:
            assert ctx.get(value) == (a >= b if or_equal else a > b), (a, b)

    sim = Simulator(Module())   # the expressions are of constants: an empty design
    sim.add_testbench(testbench)
    sim.run()
