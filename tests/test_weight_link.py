# amaranth: UnusedElaboratable=no
"""Weights loaded over the host link into SPRAM weight memories: the frame, the loader in the
Amaranth simulator, the host driver against a stand-in port."""

import numpy as np
import pytest

from fewmul.boards.link import HostLink
from fewmul.boards.nets import build_network, random_net
from fewmul.boards.protocol import (IMAGE_SYNC, WEIGHT_ACK, WEIGHT_SYNC, WeightMemory,
                                    weight_frame_check)
from fewmul.boards.weights import (attach_spram, layer_units, read_weight_file,
                                   write_weight_files)

from link_helpers import recv_frame, recv_result, run_link, send_cut_frame, send_frame


def test_weight_frame_layout():
    mem = WeightMemory(2, 12, 5)
    frames = mem.frames([1, 0x234, 0xfff, 0, 7], max_words=2)
    assert len(frames) == 3
    # sync, layer, address (16 bits), words less one (16 bits), then 2-byte words
    assert frames[0] == bytes([WEIGHT_SYNC, 2, 0, 0, 1, 0, 0x01, 0, 0x34, 0x02])
    assert frames[1][:6] == bytes([WEIGHT_SYNC, 2, 2, 0, 1, 0])
    assert frames[2] == bytes([WEIGHT_SYNC, 2, 4, 0, 0, 0, 7, 0])
    assert weight_frame_check(frames[2]) == 2 ^ 4 ^ 7
    with pytest.raises(ValueError, match="has 5 words, not 4"):
        mem.frames([0] * 4)
    with pytest.raises(ValueError, match="words must be of 12 bits"):
        mem.frames([1 << 12] * 5)
    with pytest.raises(ValueError, match="word_bits must be a positive integer"):
        WeightMemory(0, 0, 5)
    with pytest.raises(ValueError, match="65536 words"):
        WeightMemory(0, 8, (1 << 16) + 1)
    assert WeightMemory.from_json(mem.to_json()) == mem


def spram_link(seed=3, layers=(0, 1), input_memory=None):
    net = random_net([12, 8, 4], input_bits=3, seed=seed)
    network, _ = build_network(net, pe=[2, 4], simd=[6, 8], input_memory=input_memory)
    memories = attach_spram(network, layers)
    return net, network, memories, HostLink(network, 4, weights=memories)


def test_spram_layers_get_their_memory_and_files(tmp_path):
    _, network, memories, _ = spram_link()
    units = layer_units(network)
    assert [u.weight_memory is memories.get(i) for i, u in enumerate(units)] == [True, True]
    assert memories[0].width == 12 and memories[0].depth == 4 * 2   # pe 2 x simd 6, 2 folds
    entries = write_weight_files(tmp_path, network, memories)
    assert [e.layer for e in entries] == [0, 1]
    for entry in entries:
        assert read_weight_file(tmp_path, entry) == units[entry.layer].rows
    with pytest.raises(ValueError, match="already has a weight memory"):
        attach_spram(network, [1])
    with pytest.raises(ValueError, match="layers of the network, 0 to 1, not 2"):
        attach_spram(network, [2])


@pytest.mark.parametrize("input_memory", ["none", "all"])
def test_weights_loaded_over_the_link_give_golden_answers(input_memory):
    """Weight frames (one cut short and timed out, one for a layer without a memory, which
    writes nothing) then image frames: each frame is acknowledged with its check byte, and the
    answers equal the golden model's; also for a network that takes an image in beats (input
    memories: 2 transfers of 6 inputs into the first layer)."""
    net, network, memories, link = spram_link(input_memory=input_memory)
    assert network.input_beats == (2 if input_memory == "all" else 1)
    units = layer_units(network)
    frames = []
    for layer, mem in memories.items():
        entry = WeightMemory(layer, mem.width, mem.depth)
        frames += entry.frames(units[layer].rows, max_words=5)
    stray = WeightMemory(7, 8, 3).frames([0xA5, IMAGE_SYNC, 0])[0]   # no such memory
    images = np.random.default_rng(0).integers(0, 8, size=(3, 12))
    golden = net.forward(images)[-1]
    fmt, divisor = link.format, 4
    acks, results = [], []

    async def host(ctx):
        await ctx.tick().repeat(4)
        await send_cut_frame(ctx, link.rx, frames[0], 9, divisor)
        for frame in [stray, *frames]:
            await send_frame(ctx, link.rx, frame, divisor)
            await ctx.tick().repeat(30 * divisor)  # the acknowledgement
        for x in images:
            await send_frame(ctx, link.rx, fmt.encode_image(x), divisor)

    async def listen(ctx):
        for _ in range(1 + len(frames)):
            acks.append(await recv_frame(ctx, link.tx, 2, divisor, 50_000))
        for _ in images:
            results.append(await recv_result(ctx, link, divisor))

    run_link(link, host, listen)
    assert acks == [bytes([WEIGHT_ACK, weight_frame_check(f)]) for f in [stray, *frames]]
    assert [r[1] for r in results] == golden.tolist()
    assert [r[0] for r in results] == golden.argmax(1).tolist()


def test_spram_weights_loaded_over_the_serial_pins_bit_exact_in_verilator(tmp_path):
    """The link top's Verilog with SB_SPRAM256KA instances (the Yosys cell model): weight frames
    on the rx pin, each acknowledged, then images whose answers equal the golden model's."""
    from fewmul.boards.uart_sim import simulate_link

    net = random_net([40, 24, 10], input_bits=2, seed=5)
    images = np.random.default_rng(2).integers(0, 4, size=(6, 40))
    result = simulate_link(net, images, tmp_path, pe=[2, 2], simd=[8, 24], divisor=4,
                           spram=[0, 1])
    assert "SB_SPRAM256KA" in (tmp_path / "link_top.v").read_text()
    assert result["error"] is None
    # layer 0: 12 groups x 5 folds of 16-bit words; layer 1: 5 x 1 of 48 bits, one frame each
    assert result["weight_frames"] == 2
    assert (result["images"], result["answers"], result["mismatches"]) == (6, 6, 0)


def test_input_memories_and_spram_weights_bit_exact_in_verilator(tmp_path):
    """The SFC's iCEBreaker form in small: weights in SPRAM and every layer taking its input
    into block RAM (the image in beats of 8 pixels, the hidden layers' single sign bits as they
    come), loaded and answered over the serial pins in Verilator."""
    from fewmul.boards.uart_sim import simulate_link

    net = random_net([48, 16, 16, 10], input_bits=1, seed=6)
    images = np.random.default_rng(3).integers(0, 2, size=(6, 48))
    result = simulate_link(net, images, tmp_path, pe=[1, 1, 1], simd=[8, 4, 4], divisor=4,
                           spram=[0, 1], input_memory="all")
    top = (tmp_path / "link_top.v").read_text()
    assert "SB_SPRAM256KA" in top and "layer0_collect" not in top
    assert "layer2_mvu.vector" in top and "layer1_collect" not in top
    assert result["error"] is None
    assert result["weight_frames"] == 2
    assert (result["images"], result["answers"], result["mismatches"]) == (6, 6, 0)


class WeightBoard:
    """A serial port with the board's side of the weight frames: it writes the words into a
    dict per layer and acknowledges each frame (with a wrong check byte for frame ``damage``)."""

    def __init__(self, memories, damage=None):
        self.memories = {m.layer: m for m in memories}
        self.words = {m.layer: {} for m in memories}
        self.rx, self.tx, self.frames, self.damage = b"", bytearray(), 0, damage

    def write(self, data: bytes):
        self.rx += data
        assert self.rx[0] == WEIGHT_SYNC
        layer, addr = self.rx[1], int.from_bytes(self.rx[2:4], "little")
        count = int.from_bytes(self.rx[4:6], "little") + 1
        size = self.memories[layer].word_bytes
        end = 6 + count * size
        if len(self.rx) < end:
            return
        frame, self.rx = self.rx[:end], self.rx[end:]
        for i in range(count):
            self.words[layer][addr + i] = int.from_bytes(frame[6 + i * size:6 + (i + 1) * size],
                                                         "little")
        check = weight_frame_check(frame) ^ (1 if self.frames == self.damage else 0)
        self.tx += bytes([0x00, WEIGHT_ACK, check])        # a stray byte, then the ack
        self.frames += 1

    def read(self, n: int) -> bytes:
        out, self.tx = bytes(self.tx[:1]), self.tx[1:]
        return out


def test_host_loads_the_weights_listed_in_link_json(tmp_path):
    import json

    from fewmul.boards.host import HostLinkError, load_weights

    _, network, memories, _ = spram_link()
    entries = write_weight_files(tmp_path, network, memories)
    (tmp_path / "link.json").write_text(json.dumps(
        {"baud": 3_000_000, "weights": [e.to_json() for e in entries]}))
    board = WeightBoard(entries)
    loaded = load_weights(board, tmp_path, timeout=0.2)
    assert loaded["layers"] == [0, 1] and loaded["frames"] == board.frames == 2
    units = layer_units(network)
    for entry in entries:
        assert [board.words[entry.layer][a] for a in range(entry.words)] == \
            units[entry.layer].rows
    with pytest.raises(HostLinkError, match="weight frame 1 was received damaged"):
        load_weights(WeightBoard(entries, damage=1), tmp_path, timeout=0.2)

    class Silent:
        def write(self, data):
            pass

        def read(self, n):
            return b""

    with pytest.raises(HostLinkError, match="did not acknowledge weight frame 0"):
        load_weights(Silent(), tmp_path, timeout=0.05)
    # a build without SPRAM weights sends nothing
    (tmp_path / "link.json").write_text(json.dumps({"baud": 3_000_000}))
    assert load_weights(Silent(), tmp_path)["frames"] == 0


@pytest.mark.slow
def test_the_sfc_with_spram_weights_and_input_memories_bit_exact_in_verilator(tmp_path):
    """FINN's SFC as the iCEBreaker build has it (layers 0 and 1 in SPRAM, every layer's input
    in block RAM), loaded and answered over the serial pins in Verilator."""
    from fewmul.boards.uart_sim import simulate_link

    net = random_net([784, 256, 256, 256, 10], input_bits=1, seed=0)
    images = np.random.default_rng(1).integers(0, 2, size=(20, 784))
    result = simulate_link(net, images, tmp_path, pe=[1] * 4, simd=[48, 16, 16, 16],
                           divisor=4, spram=[0, 1], input_memory="all")
    assert result["error"] is None and result["weight_frames"] == 2
    assert (result["images"], result["answers"], result["mismatches"]) == (20, 20, 0)
