"""Shared helpers of the serial link tests: 8N1 bytes and frames on a link's pins in the Amaranth
simulator, and the simulation of a link between a host and a listener."""

from amaranth.sim import Simulator

from fewmul.boards.protocol import IDLE_TIMEOUT_BITS

#: Bit times of silence after a frame cut short: more than the link's timeout, so it drops it.
CUT_GAP_BITS = IDLE_TIMEOUT_BITS + 6


async def send_byte(ctx, line, byte, divisor, *, stop=1):
    """Drive an 8N1 frame on ``line`` (bits LSB first)."""
    for bit in [0, *((byte >> i) & 1 for i in range(8)), stop]:
        ctx.set(line, bit)
        await ctx.tick().repeat(divisor)
    ctx.set(line, 1)


async def send_frame(ctx, line, frame, divisor):
    """Drive the bytes of ``frame`` on ``line``, back to back."""
    for byte in frame:
        await send_byte(ctx, line, byte, divisor)


async def send_cut_frame(ctx, line, frame, cut, divisor):
    """Drive the first ``cut`` bytes of ``frame``, then stay idle for :data:`CUT_GAP_BITS` bit
    times: the link drops the frame."""
    await send_frame(ctx, line, frame[:cut], divisor)
    await ctx.tick().repeat(CUT_GAP_BITS * divisor)


async def recv_byte(ctx, line, divisor, timeout):
    """Wait for a start bit on ``line`` and sample the frame in the middle of each bit."""
    for _ in range(timeout):
        _, _, value = await ctx.tick().sample(line)
        if not value:
            break
    else:
        raise AssertionError("no start bit")
    await ctx.tick().repeat(divisor // 2)
    assert ctx.get(line) == 0, "start bit too short"
    byte = 0
    for i in range(8):
        await ctx.tick().repeat(divisor)
        byte |= ctx.get(line) << i
    await ctx.tick().repeat(divisor)
    assert ctx.get(line) == 1, "stop bit missing"
    return byte


async def recv_frame(ctx, line, size, divisor, timeout):
    """The next ``size`` bytes on ``line``, each awaited at most ``timeout`` cycles."""
    return bytes([await recv_byte(ctx, line, divisor, timeout) for _ in range(size)])


async def send_images(ctx, link, images, divisor, *, cut=3):
    """Drive the image frames of ``images`` on ``link.rx`` after line noise the link drops: a
    stray byte, then the first image's frame cut after ``cut`` bytes and timed out."""
    fmt = link.format
    await ctx.tick().repeat(4)
    await send_byte(ctx, link.rx, 0x00, divisor)
    await send_cut_frame(ctx, link.rx, fmt.encode_image(images[0]), cut, divisor)
    for x in images:
        await send_frame(ctx, link.rx, fmt.encode_image(x), divisor)


async def recv_result(ctx, link, divisor, timeout=50_000):
    """The next result frame on ``link.tx``, decoded: ``(label, scores)``."""
    fmt = link.format
    return fmt.decode_result(await recv_frame(ctx, link.tx, 1 + fmt.out_bytes, divisor, timeout))


def run_link(link, host, listen):
    """Simulate ``link`` with the testbenches ``host`` (driving its ``rx``, in the background)
    and ``listen`` (reading its ``tx``, or the ports of a stand-in network): the simulation
    ends when ``listen`` returns."""
    sim = Simulator(link)
    sim.add_clock(1e-6)
    sim.add_testbench(host, background=True)
    sim.add_testbench(listen)
    sim.run()


def serial_answers(link, images, divisor):
    """Send ``images`` as frames on the link's ``rx`` after line noise (:func:`send_images`)
    and decode the result frames on its ``tx``: a ``(label, scores)`` for each image."""
    results = []

    async def host(ctx):
        await send_images(ctx, link, images, divisor)

    async def listen(ctx):
        for _ in images:
            results.append(await recv_result(ctx, link, divisor))

    run_link(link, host, listen)
    return results
