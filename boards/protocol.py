"""The serial host-link protocol, shared by the gateware, the host driver and the testbench.

Frames, bytes least significant first (8N1 on the wire):

* host to board, one image: ``0xA5`` then ``in_bytes`` bytes holding the
  input vector packed as the network's input stream holds it (element ``j``
  in bits ``[j*input_bits, (j+1)*input_bits)``, zero-padded to whole bytes);
  a convolutional network's image is its pixels in row-major order, a pixel's
  channels adjacent (the golden model's flattened ``(H, W, C)`` order), which
  the board passes on in ``input_beats`` transfers of ``input_count / input_beats``
  elements, element 0 first;
* board to host, one result per image, in order: ``0x5A`` then ``out_bytes``
  bytes holding the network's result payload (the label at ``label_offset``,
  ``classes`` two's-complement scores of ``score_bits`` each from
  ``scores_offset``).

Benchmark mode (a board built with ``fewmul build --bench-images N``, ``bench_images`` in
``link.json``; the images are the data set's first ``N`` test images, stored in block RAM
with their labels):

* host to board, :data:`BENCH_COMMAND` (``0xB5``), one byte between frames with no image
  unanswered: the board streams its ``N`` images through the network back to back, as many
  bytes a cycle into the image register as keep up with the network (image frames are
  ignored meanwhile);
* board to host, :data:`BENCH_REPORT` (``0x6B``) then :data:`BENCH_REPORT_BYTES` bytes:
  ``cycles`` (32 bits, from the cycle the network takes the first image to the cycle it gives
  the last result), ``correct`` (16 bits, results whose label equals the stored label) and
  ``checksum`` (32 bits) of the result payloads in order, :func:`result_checksum`: each
  payload, zero-padded to whole 32-bit words, is folded into 32 bits by XOR of its words, and
  ``checksum = rotl(checksum, 1) ^ fold`` from 0 (a changed bit of any result changes it).

Weights loaded at start-up (a board whose weight memories a bitstream cannot initialize, the
iCE40UP5K's SPRAM; ``weights`` in ``link.json`` lists them, :class:`WeightMemory`):

* host to board, :data:`WEIGHT_SYNC` (``0xC5``) between frames, then ``layer`` (8 bits, the
  network layer whose memory is written), ``address`` (16 bits, of the first word), ``last``
  (16 bits, the frame's words less one) and the words, each ``word_bytes`` bytes of the
  memory's ``word_bits`` (the layer's packed weight rows as
  :func:`fewmul.gateware.mvu.pack_rows` lays them out), written at ``address``,
  ``address + 1``, ...: :meth:`WeightMemory.frames`;
* board to host, after the frame's last byte: :data:`WEIGHT_ACK` (``0x5C``) then the XOR of
  every byte of the frame after its sync byte (:func:`weight_frame_check`).

A host loads the weights before it sends images (a weight written while an image is computed
changes that image's result) and waits for each acknowledgement.

A frame is dropped when the line stays idle for more than
:data:`IDLE_TIMEOUT_BITS` bit times inside it, so a host can always
resynchronize by pausing. The board buffers one image while it computes the
previous one; a host keeps at most ``window`` images unanswered (``link.json``):
:data:`WINDOW` in general, :data:`STREAM_WINDOW` when the board keeps up with
the line (:meth:`LinkFormat.keeps_up`: it takes each image before the next
frame's sync byte ends and its result frames are no longer than its image
frames, so frames sent back to back are never refused), which lets a host cover
the latency of its USB round trips and keep the line busy. (A board passes a
buffered image to a convolutional network pixel by pixel, as fast as the
network takes them; the next image frame waits in a FIFO of one frame
meanwhile.)
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path

from fewmul.nn.artifacts import ArtifactError, read_versioned_json

__all__ = ["WEIGHT_SYNC", "WEIGHT_ACK", "WEIGHT_HEADER_BYTES", "WEIGHT_FRAME_WORDS",
           "weight_frame_check", "WeightMemory", "IMAGE_SYNC", "RESULT_SYNC", "IDLE_TIMEOUT_BITS", "WINDOW", "STREAM_WINDOW",
           "BENCH_COMMAND", "BENCH_REPORT", "BENCH_REPORT_BYTES", "BENCH_CYCLE_BITS",
           "BENCH_COUNT_BITS", "CHECKSUM_BITS", "result_checksum", "BenchReport", "LinkFormat",
           "ProtocolError", "LINK_FORMAT"]

IMAGE_SYNC = 0xA5
RESULT_SYNC = 0x5A
#: Bit times of silence after which a half-received image frame is dropped.
IDLE_TIMEOUT_BITS = 64
#: Images a host may have in flight (one computing, one buffered).
WINDOW = 2
#: Images a host may have in flight to a board that keeps up with the line: enough to cover a
#: USB round trip (an FTDI bridge's latency timer, 1-16 ms) at 3 Mbaud for small images, few
#: enough that the answers fit the bridge's buffers (512 bytes on the FT231X).
STREAM_WINDOW = 16
#: Host to board: run the benchmark (one byte, between frames).
BENCH_COMMAND = 0xB5
#: Board to host: the benchmark report's sync byte.
BENCH_REPORT = 0x6B
#: Widths of the report's fields: cycles, correct labels, checksum.
BENCH_CYCLE_BITS, BENCH_COUNT_BITS, CHECKSUM_BITS = 32, 16, 32
#: Bytes of the report after its sync byte.
BENCH_REPORT_BYTES = (BENCH_CYCLE_BITS + BENCH_COUNT_BITS + CHECKSUM_BITS) // 8

#: Host to board: weight words for a memory written at run time.
WEIGHT_SYNC = 0xC5
#: Board to host: a weight frame was written.
WEIGHT_ACK = 0x5C
#: Bytes of a weight frame's header after its sync byte: layer, address, last.
WEIGHT_HEADER_BYTES = 5
#: Most words in one weight frame (``last`` is 16 bits).
WEIGHT_FRAME_WORDS = 1 << 16

#: Version of ``link.json``; one without a version is of format 1.
LINK_FORMAT = 2


class ProtocolError(ValueError):
    """A result frame that does not follow the protocol."""


def weight_frame_check(frame: bytes) -> int:
    """The byte a board acknowledges a weight frame with: the XOR of its bytes after the sync
    byte."""
    check = 0
    for byte in frame[1:]:
        check ^= byte
    return check


@dataclass(frozen=True)
class WeightMemory:
    """A layer's weight memory that the host writes at start-up (an entry of ``weights`` in
    ``link.json``).

    Attributes
    ----------
    layer : int
        The network layer (its index, input layer first).
    word_bits : int
        Bits of a word: the layer's ``pe * simd`` weights (two masks each if ternary).
    words : int
        Words of the memory.
    file : str
        The words, one hexadecimal word a line, relative to the board folder.
    """
    layer: int
    word_bits: int
    words: int
    file: str = ""

    def __post_init__(self):
        for name in ("layer", "word_bits", "words"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0 \
                    or (value == 0 and name != "layer"):
                raise ValueError(f"Weight memory {name} must be a "
                                 f"{'non-negative' if name == 'layer' else 'positive'} "
                                 f"integer, not {value!r}")
        if self.layer > 255 or self.words > 1 << 16:
            raise ValueError(f"A weight frame addresses layers 0-255 and 65536 words, not layer "
                             f"{self.layer} of {self.words} words")

    @property
    def word_bytes(self) -> int:
        return (self.word_bits + 7) // 8

    def frames(self, rows, max_words: int = WEIGHT_FRAME_WORDS) -> list[bytes]:
        """The weight frames that write ``rows`` (all the memory's words, from address 0), at
        most ``max_words`` words each."""
        rows = [int(r) for r in rows]
        if len(rows) != self.words:
            raise ValueError(f"Layer {self.layer}'s memory has {self.words} words, not "
                             f"{len(rows)}")
        if any(not 0 <= r < 1 << self.word_bits for r in rows):
            raise ValueError(f"Layer {self.layer}'s words must be of {self.word_bits} bits")
        if not 1 <= max_words <= WEIGHT_FRAME_WORDS:
            raise ValueError(f"Words per frame must be between 1 and {WEIGHT_FRAME_WORDS}, "
                             f"not {max_words}")
        frames = []
        for start in range(0, len(rows), max_words):
            chunk = rows[start:start + max_words]
            header = bytes([WEIGHT_SYNC, self.layer]) + start.to_bytes(2, "little") \
                + (len(chunk) - 1).to_bytes(2, "little")
            frames.append(header + b"".join(r.to_bytes(self.word_bytes, "little")
                                            for r in chunk))
        return frames

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, entry: dict) -> "WeightMemory":
        try:
            return cls(int(entry["layer"]), int(entry["word_bits"]), int(entry["words"]),
                       str(entry.get("file", "")))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Not a weight memory entry: {entry!r} ({exc})") from None


def result_checksum(payloads, result_bits: int) -> int:
    """The benchmark's checksum of result payloads (integers of ``result_bits`` bits), in
    order: each folded to :data:`CHECKSUM_BITS` bits by XOR of its words, then
    ``c = rotl(c, 1) ^ fold`` from 0."""
    mask = (1 << CHECKSUM_BITS) - 1
    c = 0
    for p in payloads:
        p = int(p)
        if not 0 <= p < 1 << result_bits:
            raise ValueError(f"Result payload must be of {result_bits} bits, not {p}")
        fold = 0
        while p:
            fold ^= p & mask
            p >>= CHECKSUM_BITS
        c = (((c << 1) | (c >> (CHECKSUM_BITS - 1))) & mask) ^ fold
    return c


@dataclass(frozen=True)
class BenchReport:
    """A benchmark run's report frame: ``cycles`` from the first image in to the last result
    out, ``correct`` labels, ``checksum`` of the results."""
    cycles: int
    correct: int
    checksum: int

    @classmethod
    def decode(cls, frame: bytes) -> "BenchReport":
        """From the report frame, sync byte included."""
        if len(frame) != 1 + BENCH_REPORT_BYTES or frame[0] != BENCH_REPORT:
            raise ProtocolError(f"Bench report must be 0x{BENCH_REPORT:02X} and "
                                f"{BENCH_REPORT_BYTES} bytes, not {frame.hex()}")
        word = int.from_bytes(frame[1:], "little")
        cycles = word & ((1 << BENCH_CYCLE_BITS) - 1)
        word >>= BENCH_CYCLE_BITS
        correct = word & ((1 << BENCH_COUNT_BITS) - 1)
        return cls(cycles, correct, word >> BENCH_COUNT_BITS)


@dataclass(frozen=True)
class LinkFormat:
    """Frame sizes and payload layout of one network's host link.

    ``input_count`` is the elements of a whole image, which the board passes to the network in
    ``input_beats`` transfers (its pixels for a convolutional network, the beats of a first
    layer's input memory, else 1). ``window`` is
    the images a host may have unanswered (:data:`WINDOW`, or :data:`STREAM_WINDOW` for a board
    that keeps up with the line).
    """
    input_count: int
    input_bits: int
    classes: int
    label_offset: int
    label_bits: int
    scores_offset: int
    score_bits: int
    result_bits: int
    input_beats: int = 1
    window: int = WINDOW

    def __post_init__(self):
        if self.input_beats < 1 or self.input_count % self.input_beats:
            raise ValueError(f"Input beats must be a positive divisor of the {self.input_count} "
                             f"inputs, not {self.input_beats}")
        if self.window < 1:
            raise ValueError(f"Window must be at least 1 image, not {self.window}")

    def keeps_up(self, divisor, cycles_per_inference: int) -> bool:
        """Whether a board with this layout, ``divisor`` clocks per bit and a network taking an
        image every ``cycles_per_inference`` cycles takes frames sent back to back: one image
        per transfer, the network ready for the next image within an image frame less a byte
        after taking one, result frames no longer than image frames."""
        return (self.input_beats == 1 and self.out_bytes <= self.in_bytes
                and cycles_per_inference <= 10 * divisor * self.in_bytes)

    @property
    def in_bytes(self) -> int:
        return (self.input_count * self.input_bits + 7) // 8

    @property
    def out_bytes(self) -> int:
        return (self.result_bits + 7) // 8

    @property
    def frame_bytes(self) -> tuple[int, int]:
        """Bytes on the wire per image: (host to board, board to host), sync bytes included."""
        return 1 + self.in_bytes, 1 + self.out_bytes

    def encode_image(self, values) -> bytes:
        """The frame that sends one image: its ``input_count`` values, flattened as the golden
        model takes them (a convolutional network's pixels in row-major order, channels
        adjacent)."""
        values = [int(v) for v in values]
        if len(values) != self.input_count:
            raise ValueError(f"Image must have {self.input_count} inputs, not {len(values)}")
        top = (1 << self.input_bits) - 1
        word = 0
        for j, v in enumerate(values):
            if not 0 <= v <= top:
                raise ValueError(f"Input {j} must be between 0 and {top}, not {v}")
            word |= v << (j * self.input_bits)
        return bytes([IMAGE_SYNC]) + word.to_bytes(self.in_bytes, "little")

    def encode_result(self, label: int, scores) -> int:
        """The result payload (an integer of ``result_bits``) of ``label`` and ``scores``, as
        the network's result stream holds it."""
        word = (int(label) & ((1 << self.label_bits) - 1)) << self.label_offset
        for c, s in enumerate(scores):
            word |= (int(s) & ((1 << self.score_bits) - 1)) << (self.scores_offset
                                                                 + c * self.score_bits)
        return word

    def decode_result(self, frame: bytes) -> tuple[int, list[int]]:
        """``(label, scores)`` from one result frame (sync byte included)."""
        if len(frame) != 1 + self.out_bytes:
            raise ProtocolError(f"Result frame must be {1 + self.out_bytes} bytes, not {len(frame)}")
        if frame[0] != RESULT_SYNC:
            raise ProtocolError(f"Result frame must start with 0x{RESULT_SYNC:02X}, "
                                f"not 0x{frame[0]:02X}")
        word = int.from_bytes(frame[1:], "little")
        label = (word >> self.label_offset) & ((1 << self.label_bits) - 1)
        scores = []
        for c in range(self.classes):
            v = (word >> (self.scores_offset + c * self.score_bits)) & ((1 << self.score_bits) - 1)
            scores.append(v - (1 << self.score_bits) if v >> (self.score_bits - 1) else v)
        return label, scores

    def to_json(self, **extra) -> str:
        """``link.json``: the fields, the frame sizes and sync bytes, and ``extra`` entries
        (``fewmul build`` adds the serial rate ``baud``, which ``fewmul run`` opens the port
        at)."""
        return json.dumps({"format": LINK_FORMAT, **asdict(self), "in_bytes": self.in_bytes,
                           "out_bytes": self.out_bytes, "image_sync": IMAGE_SYNC,
                           "result_sync": RESULT_SYNC, **extra}, indent=2)

    @classmethod
    def load(cls, path: Path) -> "LinkFormat":
        """Read ``link.json`` written by ``fewmul build`` (extra keys are informative; one
        without ``input_beats`` is of a network that takes an image in one transfer)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run 'fewmul build' first")
        fields = read_versioned_json(path, "link description", LINK_FORMAT,
                                     "it was written by a newer fewmul; build the board again "
                                     "with this one")
        try:
            return cls(**{k: int(fields[k]) for k, f in cls.__dataclass_fields__.items()
                          if k in fields or f.default is MISSING})
        except KeyError as exc:
            raise ArtifactError(f"{path}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}: not a link description ({exc})") from None
