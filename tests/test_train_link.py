# amaranth: UnusedElaboratable=no
"""The training link: its frames, the link in the Amaranth simulator through the serial pins
against the golden model, the host driver against a stand-in board, and the board build's
wrapper."""

import json
from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator

from fewmul.arith.onchip import OnChipConfig
from fewmul.boards.protocol import RESULT_SYNC, ProtocolError, STREAM_WINDOW, WINDOW
from fewmul.boards.train_link import FrameSender, TrainLink
from fewmul.boards.train_protocol import (INFER_SYNC, READ_SYNC, READ_WINDOW, ROW_SYNC,
                                          TRAIN_SYNC, TrainLinkFormat)
from fewmul.gateware.training import OnChipTrainer
from fewmul.nn.onchip import Lfsr, OnChipNet

from link_helpers import recv_frame, run_link, send_frame


def small_config(sizes=(12, 8, 6, 3), **overrides) -> OnChipConfig:
    """A small two-hidden-layer trainer whose every path is busy in a few steps."""
    layers = len(sizes) - 1
    settings = dict(sizes=sizes, input_bits=4, weight_bits=4, score_shift=2,
                    gate_shifts=(5,) * (layers - 1), backprop_shifts=(1,) * (layers - 1),
                    lr_shifts=(5,) + (1,) * (layers - 1), lr_decay_steps=4, lr_decay_max=2,
                    weights="ternary")
    settings.update(overrides)
    return OnChipConfig(**settings)


def initial_weights(cfg, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.integers(-cfg.w0, cfg.w0 + 1, size=shape).astype(np.int64)
            for shape in cfg.shapes]


def golden(cfg, weights):
    return OnChipNet(cfg, [w.copy() for w in weights], Lfsr(cfg.lfsr_seed))


def test_frame_layout():
    cfg = small_config()
    trainer = OnChipTrainer(cfg, initial_weights(cfg))
    fmt = TrainLinkFormat.of(trainer)
    assert (fmt.in_bytes, fmt.row_weights, fmt.weight_bits, fmt.row_bytes) == (6, 12, 6, 9)
    assert fmt.rows == (8, 6, 3) and fmt.inputs == (12, 8, 6) and fmt.window == WINDOW
    pixels = list(range(12))
    frame = fmt.encode_sample(pixels, 2)
    # sync, label, then pixel j in bits [4j, 4j + 4)
    assert frame == bytes([TRAIN_SYNC, 2, 0x10, 0x32, 0x54, 0x76, 0x98, 0xBA])
    assert fmt.encode_infer(pixels) == bytes([INFER_SYNC]) + frame[2:]
    assert fmt.encode_read(1, 5) == bytes([READ_SYNC, 1, 5, 0])
    row = [-16, 15, 0, -1, 3, 7, -8, 1]
    answer = fmt.encode_row(row)
    assert answer[0] == ROW_SYNC and len(answer) == 2 + fmt.row_bytes
    assert answer[1] == 0b11110000                          # -16 is 0b110000, 15 from bit 6
    assert fmt.decode_row(answer, 1) == row
    damaged = answer[:3] + bytes([answer[3] ^ 4]) + answer[4:]
    with pytest.raises(ProtocolError, match="check byte"):
        fmt.decode_row(damaged, 1)
    assert fmt.decode_prediction(bytes([RESULT_SYNC, 2])) == 2
    with pytest.raises(ProtocolError, match="not one of the 3 classes"):
        fmt.decode_prediction(bytes([RESULT_SYNC, 3]))
    with pytest.raises(ValueError, match="Label must be between 0 and 2, not 3"):
        fmt.encode_sample(pixels, 3)
    with pytest.raises(ValueError, match="Pixel 1 must be between 0 and 15, not 16"):
        fmt.encode_infer([0, 16] + [0] * 10)
    with pytest.raises(ValueError, match="Layer 3 row 0 is not in"):
        fmt.encode_read(3, 0)
    # a trainer that keeps up with the line gets the streaming window
    assert TrainLinkFormat.of(trainer, 4).window == STREAM_WINDOW
    assert fmt.keeps_up(4) and not replace(fmt, cycles_per_step=10 * 4 * 6 + 1).keeps_up(4)


def test_link_json_round_trip_and_kind(tmp_path):
    from fewmul.boards.train_protocol import link_kind
    from fewmul.nn.artifacts import ArtifactError
    cfg = small_config()
    fmt = TrainLinkFormat.of(OnChipTrainer(cfg, initial_weights(cfg)), 4)
    path = tmp_path / "link.json"
    path.write_text(fmt.to_json(baud=115200))
    assert link_kind(path) == "onchip-training"
    assert TrainLinkFormat.load(path) == fmt
    assert json.loads(path.read_text())["frame_bytes"]["read"] == [4, 11]
    path.write_text(json.dumps({"format": 2, "input_count": 3}))
    assert link_kind(path) == "inference"
    with pytest.raises(ArtifactError, match="describes an inference board"):
        TrainLinkFormat.load(path)


def test_frame_sender_sends_frames_with_and_without_check_byte():
    dut = FrameSender(4)
    sent = []

    async def source(ctx):
        for data, length, check in [(0x44332211, 4, 1), (0x5A07, 2, 0)]:
            ctx.set(dut.load.payload, {"data": data, "length": length, "check": check})
            ctx.set(dut.load.valid, 1)
            await ctx.tick().until(dut.load.ready)
            ctx.set(dut.load.valid, 0)

    async def sink(ctx):
        ctx.set(dut.tx.ready, 1)
        for _ in range(40):
            _, _, valid, payload = await ctx.tick().sample(dut.tx.valid, dut.tx.payload)
            if valid:
                sent.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert sent == [0x11, 0x22, 0x33, 0x44, 0x22 ^ 0x33 ^ 0x44, 0x07, 0x5A]


def talk(link, frames, answers, divisor=4, gap=0):
    """Send ``frames`` on the link's ``rx`` and collect ``answers`` frames, each as many bytes
    as ``answers`` gives, from its ``tx``. A frame is ``(bytes, n)``: sent once ``n`` answers
    have come (a host's window), or ``None``: a pause of ``gap`` bit times."""
    got = []

    async def host(ctx):
        await ctx.tick().repeat(4)
        for frame in frames:
            if frame is None:
                await ctx.tick().repeat(gap * divisor)
                continue
            frame, after = frame
            while len(got) < after:
                await ctx.tick()
            await send_frame(ctx, link.rx, frame, divisor)

    async def listen(ctx):
        for size in answers:
            got.append(await recv_frame(ctx, link.tx, size, divisor, 20_000))

    run_link(link, host, listen)
    return got


def test_train_link_trains_infers_and_reads_weights_bit_exact():
    """Over the serial pins: a stray byte and a sample cut short (dropped), training samples
    sent back to back, an inference request, then every weight row read back: the predictions
    and the rows equal the golden model's after the same steps, and the inference changes
    nothing."""
    cfg = small_config(batch_shift=1)
    weights = initial_weights(cfg)
    link = TrainLink(OnChipTrainer(cfg, weights), 4)
    fmt = link.format
    rng = np.random.default_rng(5)
    x = rng.integers(0, 16, size=(5, 12))
    y = rng.integers(0, 3, size=5)
    net = golden(cfg, weights)
    predictions = [net.step(q, int(label)).prediction for q, label in zip(x[:4], y[:4])]
    inferred = net.infer(x[4])
    frames = [(bytes([0x00]), 0), (fmt.encode_sample(x[0], y[0])[:3], 0), None]
    frames += [(fmt.encode_sample(q, label), 0) for q, label in zip(x[:4], y[:4])]
    frames.append((fmt.encode_infer(x[4]), 0))
    rows = [(layer, row) for layer in range(fmt.layers) for row in range(fmt.rows[layer])]
    # the reads after the answers, at most READ_WINDOW unanswered
    frames += [(fmt.encode_read(layer, row), 5 + max(0, i + 1 - READ_WINDOW))
               for i, (layer, row) in enumerate(rows)]
    answers = [2] * 5 + [2 + fmt.row_bytes] * len(rows)
    got = talk(link, frames, answers, gap=80)
    assert [fmt.decode_prediction(f) for f in got[:4]] == predictions
    assert fmt.decode_prediction(got[4]) == inferred
    read = [np.zeros(shape, np.int64) for shape in cfg.shapes]
    for (layer, row), frame in zip(rows, got[5:]):
        read[layer][row] = fmt.decode_row(frame, layer)
    for layer, (ours, theirs) in enumerate(zip(read, net.weights)):
        assert ours.tolist() == theirs.tolist(), f"layer {layer + 1}"
    assert any((a != b).any() for a, b in zip(read, weights)), "no weight changed"


class FakeTrainBoard:
    """A serial port with a training board's side of the protocol, computed by the golden
    model; it answers in chunks of 3 bytes, may damage one weight of a row it reads out and
    may go silent after some answers."""

    def __init__(self, net, fmt: TrainLinkFormat, *, damage_row=None, silent_after=None):
        self.net, self.fmt = net, fmt
        self.damage_row, self.silent_after = damage_row, silent_after
        self.rx, self.tx, self.answers = b"", bytearray(b"\x00"), 0

    def _pixels(self, body: bytes) -> np.ndarray:
        word = int.from_bytes(body, "little")
        bits = self.fmt.input_bits
        return np.array([(word >> (j * bits)) & ((1 << bits) - 1)
                         for j in range(self.fmt.input_count)])

    def write(self, data: bytes):
        self.rx += data
        fmt = self.fmt
        sizes = {TRAIN_SYNC: 2 + fmt.in_bytes, INFER_SYNC: 1 + fmt.in_bytes, READ_SYNC: 4}
        while self.rx and len(self.rx) >= sizes[self.rx[0]]:
            frame, self.rx = self.rx[:sizes[self.rx[0]]], self.rx[sizes[self.rx[0]]:]
            if self.silent_after is not None and self.answers >= self.silent_after:
                continue
            if frame[0] == TRAIN_SYNC:
                answer = bytes([RESULT_SYNC, self.net.step(self._pixels(frame[2:]),
                                                           frame[1]).prediction])
            elif frame[0] == INFER_SYNC:
                answer = bytes([RESULT_SYNC, self.net.infer(self._pixels(frame[1:]))])
            else:
                layer, row = frame[1], int.from_bytes(frame[2:], "little")
                weights = self.net.weights[layer][row].copy()
                if (layer, row) == self.damage_row:
                    weights[0] = -weights[0] - 1
                answer = fmt.encode_row(weights)
            self.tx += answer
            self.answers += 1

    def read(self, n: int) -> bytes:
        n = min(n, 3)
        out, self.tx = bytes(self.tx[:n]), self.tx[n:]
        return out


def write_train_build(path, sizes):
    """A training build folder of a small trainer of ``sizes``, as 'fewmul compile --train'
    writes it."""
    from dataclasses import asdict
    from fewmul.gateware.training.top import step_cycles
    from fewmul.sim.train_runner import TrainingBuild
    cfg = small_config(sizes)
    weights = initial_weights(cfg)
    latency, cycles, inference = step_cycles(cfg.sizes)
    (path / "train.json").write_text(json.dumps({
        "kind": "onchip-training", "name": "tiny", "config": asdict(cfg),
        "data": {"set": "digits", "input_bits": 4, "dir": None}, "order_seed": 0,
        "layout": {}, "latency": latency, "cycles_per_step": cycles,
        "inference_latency": inference}, default=list))
    np.savez(path / "init.npz", **{f"w{i + 1}": w for i, w in enumerate(weights)})
    return TrainingBuild.load(path)


@pytest.fixture
def train_build(tmp_path):
    """A training build folder of a small digits trainer (64 -> 8 -> 6 -> 10) and its board
    folder's link.json, written as 'fewmul compile --train' and 'fewmul build' write them."""
    build = write_train_build(tmp_path, (64, 8, 6, 10))
    fmt = TrainLinkFormat.of(OnChipTrainer(build.cfg, build.weights), 25)
    (tmp_path / "ulx3s").mkdir()
    (tmp_path / "ulx3s" / "link.json").write_text(fmt.to_json(baud=3_000_000))
    return tmp_path, build, fmt


def test_host_trains_the_board_and_checks_weights_and_inference(train_build):
    from fewmul.boards.train_host import format_training_run, run_training
    path, build, fmt = train_build
    assert fmt.window == STREAM_WINDOW
    result = run_training(FakeTrainBoard(build.initial_net(), fmt), path, steps=40,
                          test_images=30, progress=False)
    assert result["complete"] and result["steps_done"] == 40
    assert result["prediction_mismatches"] == 0 and result["weights_equal"]
    assert result["inference_mismatches"] == 0 and result["test_images"] == 30
    reference = build.initial_net()
    for index in build.order(40):
        reference.step(build.dataset().train.x[index], build.dataset().train.y[index])
    test = build.dataset().test
    assert result["test_accuracy"] == reference.accuracy(test.x[:30], test.y[:30])
    assert json.loads((path / "ulx3s" / "train_run.json").read_text())["weights_equal"]
    assert "board training OK" in format_training_run(result, 3_000_000)


def test_host_reports_a_damaged_weight_and_a_silent_board(train_build):
    from fewmul.boards.host import HostLinkError
    from fewmul.boards.train_host import run_training
    path, build, fmt = train_build
    result = run_training(FakeTrainBoard(build.initial_net(), fmt, damage_row=(1, 4)), path,
                          steps=10, test_images=5, progress=False)
    assert not result["weights_equal"] and result["first_weight_mismatch"] == "w2[4]"
    assert result["weight_mismatch_rows"] == 1
    with pytest.raises(HostLinkError, match=r"training, 7 of 10 samples answered: no answer "
                                            r"from the board to training sample 7 .*last "
                                            r"received: the answer to training sample 6"):
        run_training(FakeTrainBoard(build.initial_net(), fmt, silent_after=7), path, steps=10,
                     timeout=0.2, progress=False)
    partial = json.loads((path / "ulx3s" / "train_run.json").read_text())
    assert partial["steps_done"] == 7 and partial["prediction_mismatches"] == 0
    assert not partial["complete"]


def test_fewmul_build_wraps_a_training_build_in_the_training_link(train_build, monkeypatch):
    """``build_board`` of a training build elaborates the trainer behind the training link on
    the board's platform and writes link.json and the training report (the tools stood in
    for: the real flow is the slow test below)."""
    from fewmul.boards import train_build as module
    from fewmul.boards.families import FlowResult
    from fewmul.boards.flow import build_board
    path, build, _ = train_build
    seen = {}

    class Flow:
        steps = 1

        def __init__(self, board, out, *, seed=None):
            self.out = out
            seen["seed"] = seed

        def run(self, platform, top, *, check, progress):
            plan = platform.prepare(top, name="top")
            seen["rtlil"] = plan.files["top.il"]
            check({"lut": 10, "ff": 10, "bram": 0, "dsp": 0}, "yosys")
            return FlowResult(synth_cells={"LUT4": 10}, synth={"lut": 10, "ff": 10,
                                                                "bram": 0, "dsp": 0})

    monkeypatch.setattr(module, "flow_for", lambda board: Flow)
    report = build_board(path, "ulx3s", progress=False, seed=5)
    assert seen["seed"] == 5                     # the placement seed reaches the flow
    assert report["kind"] == "onchip-training" and report["net"] == [64, 8, 6, 10]
    assert report["cycles_per_step"] == build.cycles_per_step
    assert report["training_steps_per_s"]["compute_at_board_clock"] == \
        25e6 / build.cycles_per_step
    assert "uart_rx" in seen["rtlil"] and "trainer" in seen["rtlil"]
    fmt = TrainLinkFormat.load(path / "ulx3s" / "link.json")
    assert fmt.rows == (8, 6, 10) and fmt.window == STREAM_WINDOW
    assert json.loads((path / "ulx3s" / "report.json").read_text())["multipliers"] == 0
    from fewmul.boards.fit import FitError
    with pytest.raises(FitError, match="the trainer does not fit the .*: it needs 100000 LUTs"):
        module._check_fit(module.get_board("icebreaker"), {"lut": 100000}, "yosys")


@pytest.mark.slow
def test_fewmul_build_of_a_small_trainer_for_the_icebreaker(tmp_path, capsys):
    """The real flow: Yosys, nextpnr-ice40 and icepack, a bitstream and its timing (a trainer
    small enough for the UP5K's 5280 cells: 64 -> 8 -> 6 -> 10 needs about 10,000 LUTs)."""
    from fewmul.cli import main
    path = tmp_path
    write_train_build(path, (16, 6, 4))
    assert main(["build", str(path), "--board", "icebreaker", "-q"]) == 0
    report = json.loads((path / "icebreaker" / "report.json").read_text())
    assert report["kind"] == "onchip-training" and report["fmax_mhz"] > 0
    assert report["multipliers"] == 0 and report["used"]["lut"] > 0
    assert (path / "icebreaker" / report["bitstream"]).exists()
    assert "steps/s at" in capsys.readouterr().out


def test_fewmul_run_train_errors_a_user_can_act_on(train_build, tmp_path_factory, capsys):
    from fewmul.cli import main
    path, _, _ = train_build
    assert main(["run", str(path), "--port", "/dev/null-no-such-port"]) == 2
    assert "is a training board: give --train" in capsys.readouterr().err
    assert main(["run", str(path), "--port", "/dev/null-no-such-port", "--train",
                 "--steps", "5"]) == 2
    assert "cannot use /dev/null-no-such-port" in capsys.readouterr().err
    other = tmp_path_factory.mktemp("inference") / "ulx3s"
    other.mkdir()
    (other / "link.json").write_text(json.dumps({"format": 2, "input_count": 4}))
    assert main(["run", str(other.parent), "--port", "/dev/null-no-such-port", "--train"]) == 2
    assert "an inference board: --train takes a board built from 'fewmul compile --train'" \
        in capsys.readouterr().err
