"""Shared helpers of the gateware tests: stream drivers and monitors, NumPy references."""

import numpy as np
from amaranth.lib import data
from amaranth.sim import Simulator


# --- NumPy references --------------------------------------------------------------------------

def ref_sums(weights, x, input_kind, weight_kind="binary"):
    """Sums ``s`` of a layer: ``x`` (..., N) of inputs, ``weights`` (M, N) of bits (or -1/0/+1
    if ternary)."""
    signs = np.asarray(weights, dtype=np.int64)
    if weight_kind == "binary":
        signs = 2 * signs - 1
    x = np.asarray(x, dtype=np.int64)
    return (2 * x - 1 if input_kind == "bipolar" else x) @ signs.T


def ref_threshold(sums, thresholds):
    """One threshold per neuron (bits out), or several (the count of thresholds reached)."""
    thresholds = np.asarray(thresholds, dtype=np.int64)
    if thresholds.ndim == 2:
        return (np.asarray(sums)[..., None] >= thresholds).sum(-1).astype(np.int64)
    return (np.asarray(sums) >= thresholds).astype(np.int64)


def ref_scores(sums, shifts, offsets):
    return (np.left_shift(np.asarray(sums, dtype=np.int64), np.asarray(shifts, dtype=np.int64))
            + np.asarray(offsets, dtype=np.int64))


def ref_network(layers, x):
    """Per-layer activations (list of arrays), then the label and scores of input ``x``."""
    outputs = []
    for layer in layers:
        sums = ref_sums(layer.weights, x, layer.input_kind, layer.weight_kind)
        if layer.thresholds is not None:
            x = ref_threshold(sums, layer.thresholds)
        else:
            x = ref_scores(sums, layer.shifts, layer.offsets)
        outputs.append(x)
    return outputs, int(np.argmax(x)), x


def ref_windows(images, kernel, stride=1, padding=0, pad_value=0):
    """Windows of ``images`` (n, H, W, C) padded by ``padding`` pixels of ``pad_value``:
    (n, out_height, out_width, kernel * kernel * C), element ``(kh * kernel + kw) * C + c``
    being ``padded[oh * stride + kh, ow * stride + kw, c]``."""
    images = np.asarray(images, dtype=np.int64)
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)),
                    constant_values=pad_value)
    n, height, width, channels = padded.shape
    out_height = (height - kernel) // stride + 1
    out_width = (width - kernel) // stride + 1
    windows = np.empty((n, out_height, out_width, kernel, kernel, channels), dtype=np.int64)
    for oh in range(out_height):
        for ow in range(out_width):
            windows[:, oh, ow] = padded[:, oh * stride:oh * stride + kernel,
                                        ow * stride:ow * stride + kernel]
    return windows.reshape(n, out_height, out_width, kernel * kernel * channels)


def ref_maxpool(images, size, minimum=None):
    """Maxima of ``images`` (n, H, W, C) over ``size`` x ``size`` blocks: (n, H/size, W/size,
    C); minima on the channels flagged in ``minimum``."""
    images = np.asarray(images, dtype=np.int64)
    n, height, width, channels = images.shape
    blocks = images.reshape(n, height // size, size, width // size, size, channels)
    if minimum is None:
        return blocks.max(axis=(2, 4))
    return np.where(minimum, blocks.min(axis=(2, 4)), blocks.max(axis=(2, 4)))


def random_inputs(rng, count, n, input_bits):
    """``count`` random input vectors, the first all ones (the largest sums), the second zeros."""
    x = rng.integers(0, 1 << input_bits, size=(count, n))
    x[0], x[1:2] = (1 << input_bits) - 1, 0
    return x


def random_elements(rng, shape, size):
    """Random values of the Amaranth ``shape`` (signed or unsigned), as an array of ``size``."""
    lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else \
             (0, 1 << shape.width)
    return rng.integers(lo, hi, size=size)


# --- Streams -----------------------------------------------------------------------------------

def to_py(value):
    """A simulator value as plain Python: lists for arrays, dicts for structs, ints otherwise."""
    if isinstance(value, data.Const):
        layout = data.Layout.cast(value.shape())
        if isinstance(layout, data.ArrayLayout):
            return [to_py(value[index]) for index in range(layout.length)]
        return {name: to_py(value[name]) for name, _ in layout}
    return int(value)


def _stalled(rng, p_stall):
    return rng is not None and rng.random() < p_stall


async def stream_put(ctx, stream, payloads, *, rng=None, p_stall=0.0):
    """Send ``payloads``, idling a random cycle with probability ``p_stall`` before each."""
    for payload in payloads:
        while _stalled(rng, p_stall):
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.payload, payload)
        ctx.set(stream.valid, 1)
        while not (await ctx.tick().sample(stream.ready))[2]:  # `.until()` warns, see below
            pass
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, count, *, rng=None, p_stall=0.0):
    """Receive ``count`` payloads, holding ``ready`` low with probability ``p_stall`` each cycle.

    A payload offered but not taken must be offered again, unchanged, in the next cycle.
    """
    payloads, held = [], None
    while len(payloads) < count:
        ready = not _stalled(rng, p_stall)
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if held is not None:
            assert valid and payload.as_bits() == held, "payload dropped or changed while stalled"
        held = payload.as_bits() if valid and not ready else None
        if valid and ready:
            payloads.append(to_py(payload))
    ctx.set(stream.ready, 0)
    return payloads


class StreamMonitor:
    """Background testbench recording the transfers ``(cycle, payload)`` of a stream.

    Cycles count clock edges since the start of the simulation. Like :func:`stream_get`, it
    checks that a payload offered but not taken stays valid and unchanged.
    """

    def __init__(self, stream):
        self.stream = stream
        self.transfers = []

    @property
    def cycles(self):
        return [cycle for cycle, _ in self.transfers]

    @property
    def payloads(self):
        return [payload for _, payload in self.transfers]

    async def testbench(self, ctx):
        stream, cycle, held = self.stream, 0, None
        while True:  # not `async for`: an async generator left suspended warns when collected
            _, _, valid, ready, payload = await ctx.tick().sample(
                stream.valid, stream.ready, stream.payload)
            if held is not None:
                assert valid and payload.as_bits() == held, \
                    f"payload dropped or changed while stalled at cycle {cycle}"
            held = payload.as_bits() if valid and not ready else None
            if valid and ready:
                self.transfers.append((cycle, to_py(payload)))
            cycle += 1


def simulate(dut, payloads, count, *, seed=None, p_stall=0.0, monitors=(), linger=8,
             max_cycles=20_000):
    """Stream ``payloads`` into ``dut.i`` and take ``count`` payloads out of ``dut.o``.

    With a ``seed``, both sides stall at random with probability ``p_stall``. After the last
    output, ``linger`` more cycles with ``o.ready`` high must show no further output.

    Returns
    -------
    (StreamMonitor, StreamMonitor)
        Transfers on ``dut.i`` and on ``dut.o``; the other ``monitors`` are run alongside.
    """
    rng = None if seed is None else np.random.default_rng(seed)
    in_mon, out_mon = StreamMonitor(dut.i), StreamMonitor(dut.o)
    received = []

    async def source(ctx):
        await stream_put(ctx, dut.i, payloads, rng=rng, p_stall=p_stall)

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, count, rng=rng, p_stall=p_stall))
        ctx.set(dut.o.ready, 1)
        for _ in range(linger):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            assert not valid, "more outputs than expected"

    async def watchdog(ctx):
        await ctx.delay(max_cycles * 1e-6)
        raise AssertionError(f"simulation did not finish in {max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for mon in (in_mon, out_mon, *monitors):
        sim.add_testbench(mon.testbench, background=True)
    sim.add_testbench(watchdog, background=True)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert in_mon.payloads == [to_py(dut.i.payload.shape().const(p)) for p in payloads]
    assert out_mon.payloads == received
    return in_mon, out_mon


#: The spec of the small digits network of :func:`tiny_board_build`.
TINY_SPEC = """\
name: tiny
data: {set: digits, input_bits: 4}
layers:
  - {units: 8, weights: binary, act: sign, bn: true}
  - {units: 10, weights: binary, act: none, bn: true}
"""


def tiny_board_build(build):
    """A build folder as 'fewmul compile' leaves it, for a small random network (64-8-10) on
    the digits data, folded pe 2, 1; returns ``(build, net)``."""
    import json

    from fewmul.boards.nets import random_net
    from fewmul.compiler.folders import BuildFolder
    build.mkdir()
    net = random_net([64, 8, 10], input_bits=4, seed=5)
    BuildFolder(build).save_net(net)
    (build / "spec.yaml").write_text(TINY_SPEC)
    (build / "report.json").write_text(json.dumps({"layers": [{"pe": 2}, {"pe": 1}]}))
    return build, net
