"""The serial protocol of a training link (:class:`~fewmul.boards.train_link.TrainLink`).

A board built from a training build (``fewmul compile --train``, then ``fewmul build``) runs
the :class:`~fewmul.gateware.training.OnChipTrainer` behind the same UART (8N1, bytes least
significant first) as an inference board, with these frames:

* host to board, a training sample: :data:`TRAIN_SYNC` (``0xA6``), ``label`` (one byte),
  then ``in_bytes`` bytes of the pixels packed as the trainer's input takes them (pixel ``j``
  in bits ``[j*input_bits, (j+1)*input_bits)``, zero-padded to whole bytes, as an inference
  link's image frame): one training step, in the order the host sends them;
* host to board, an inference request: :data:`INFER_SYNC` (``0xA7``) then the ``in_bytes``
  bytes of the pixels: a forward pass with the current weights, nothing changes;
* board to host, one answer per sample or request, in order: :data:`~fewmul.boards.protocol.
  RESULT_SYNC` (``0x5A``) then one byte, the prediction (the class of the highest score; for a
  training sample, of the weights before its update);
* host to board, a weight-row read: :data:`READ_SYNC` (``0xC6``), ``layer`` (one byte, 0 for
  the input layer's ``w1``) and ``row`` (16 bits);
* board to host, its answer: :data:`ROW_SYNC` (``0x6C``), ``row_bytes`` bytes holding the
  row's ``row_weights`` two's-complement weights of ``weight_bits`` each (weight ``j`` in bits
  ``[j*weight_bits, (j+1)*weight_bits)``; a layer with fewer inputs than the widest has its
  row zero-padded), then a check byte: the XOR of the row's bytes
  (:func:`~fewmul.boards.protocol.weight_frame_check` of the frame without its check byte).

The board takes one frame at a time: a frame's sync byte is ignored while the previous
frame's request waits for the trainer, which takes a sample every ``cycles_per_step`` cycles.
A host keeps at most ``window`` samples or inference requests unanswered
(:data:`~fewmul.boards.protocol.STREAM_WINDOW` when the trainer keeps up with the line,
:meth:`TrainLinkFormat.keeps_up`, else :data:`~fewmul.boards.protocol.WINDOW`) and at most
:data:`READ_WINDOW` weight-row reads (a row's answer is longer than its request). As on the
inference link, a frame is dropped after :data:`~fewmul.boards.protocol.IDLE_TIMEOUT_BITS`
bit times of silence inside it. ``link.json`` of such a board has ``kind``
:data:`TRAIN_LINK_KIND` and the fields of :class:`TrainLinkFormat`.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path

from fewmul.nn.artifacts import ArtifactError, read_json, read_versioned_json

from .protocol import (LINK_FORMAT, RESULT_SYNC, STREAM_WINDOW, WINDOW, ProtocolError,
                       weight_frame_check)

__all__ = ["TRAIN_SYNC", "INFER_SYNC", "READ_SYNC", "ROW_SYNC", "READ_WINDOW",
           "TRAIN_LINK_KIND", "TrainLinkFormat", "link_kind"]

#: Host to board: a training sample.
TRAIN_SYNC = 0xA6
#: Host to board: an inference request.
INFER_SYNC = 0xA7
#: Host to board: read a weight row.
READ_SYNC = 0xC6
#: Board to host: a weight row.
ROW_SYNC = 0x6C
#: Weight-row reads a host may have unanswered: one answered on the line, one waiting for the
#: line in the trainer, one waiting for the trainer in the link.
READ_WINDOW = 2
#: ``kind`` of a training link's ``link.json``.
TRAIN_LINK_KIND = "onchip-training"


def link_kind(path: Path) -> str:
    """``kind`` of a ``link.json``: :data:`TRAIN_LINK_KIND` or ``"inference"`` (a file without
    one)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run 'fewmul build' first")
    fields = read_json(path)       # a damaged file is named as every other reader names it
    return str(fields.get("kind", "inference")) if isinstance(fields, dict) else "inference"


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


@dataclass(frozen=True)
class TrainLinkFormat:
    """Frame sizes of one trainer's link.

    Attributes
    ----------
    input_count, input_bits : int
        Pixels of a sample and their width.
    classes : int
        Output classes (the label and the prediction are one byte each).
    rows : tuple of int
        Rows of each layer's weight memory, input layer first (``M_1 .. M_L``).
    inputs : tuple of int
        Weights of each layer's rows (``M_0 .. M_{L-1}``).
    weight_bits : int
        Bits of a stored weight (two's complement).
    cycles_per_step : int
        The trainer's cycles per training sample.
    window : int
        Samples a host may have unanswered.
    """
    input_count: int
    input_bits: int
    classes: int
    rows: tuple
    inputs: tuple
    weight_bits: int
    cycles_per_step: int
    window: int = WINDOW

    def __post_init__(self):
        object.__setattr__(self, "rows", tuple(int(r) for r in self.rows))
        object.__setattr__(self, "inputs", tuple(int(r) for r in self.inputs))
        for name in ("input_count", "input_bits", "classes", "weight_bits", "cycles_per_step",
                     "window"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Training link {name} must be a positive integer, not "
                                 f"{value!r}")
        if self.classes > 256:
            raise ValueError(f"A training link carries labels of one byte: at most 256 classes, "
                             f"not {self.classes}")
        if not self.rows or len(self.rows) != len(self.inputs) or min(self.rows) < 1 \
                or min(self.inputs) < 1 or len(self.rows) > 256 or max(self.rows) > 1 << 16:
            raise ValueError(f"Training link rows and inputs must be 1 to 256 layers of 1 to "
                             f"65536 rows, one entry each, not {self.rows!r} and "
                             f"{self.inputs!r}")

    @classmethod
    def of(cls, trainer, divisor=None) -> "TrainLinkFormat":
        """The format of ``trainer`` (an :class:`~fewmul.gateware.training.OnChipTrainer`);
        with the link's ``divisor`` the window is :data:`STREAM_WINDOW` where the trainer keeps
        up with the line."""
        sizes = trainer.sizes
        fmt = cls(input_count=sizes[0], input_bits=trainer.config.input_bits,
                  classes=sizes[-1], rows=tuple(sizes[1:]), inputs=tuple(sizes[:-1]),
                  weight_bits=trainer.weight_shape.width,
                  cycles_per_step=trainer.cycles_per_step)
        if divisor is not None and fmt.keeps_up(divisor):
            fmt = cls(**{**asdict(fmt), "window": STREAM_WINDOW})
        return fmt

    def keeps_up(self, divisor) -> bool:
        """Whether the trainer takes every sample and inference request sent back to back
        before the next frame's sync byte ends (a step within the shortest such frame)."""
        return self.cycles_per_step <= 10 * divisor * self.in_bytes

    @property
    def layers(self) -> int:
        return len(self.rows)

    @property
    def in_bytes(self) -> int:
        return (self.input_count * self.input_bits + 7) // 8

    @property
    def row_weights(self) -> int:
        """Weights in a row frame: the widest layer's."""
        return max(self.inputs)

    @property
    def row_bytes(self) -> int:
        return (self.row_weights * self.weight_bits + 7) // 8

    @property
    def frame_bytes(self) -> dict[str, tuple[int, int]]:
        """Bytes on the wire, sync bytes included: ``{kind: (host to board, board to
        host)}`` for ``train``, ``infer`` and ``read``."""
        return {"train": (2 + self.in_bytes, 2), "infer": (1 + self.in_bytes, 2),
                "read": (4, 2 + self.row_bytes)}

    def samples_per_s(self, baud: float) -> float:
        """Training samples per second the line carries (the longer of a sample's frames)."""
        return baud / (10 * max(self.frame_bytes["train"]))

    def _pixels(self, values) -> bytes:
        values = [int(v) for v in values]
        if len(values) != self.input_count:
            raise ValueError(f"A sample must have {self.input_count} pixels, not {len(values)}")
        top = (1 << self.input_bits) - 1
        word = 0
        for j, v in enumerate(values):
            if not 0 <= v <= top:
                raise ValueError(f"Pixel {j} must be between 0 and {top}, not {v}")
            word |= v << (j * self.input_bits)
        return word.to_bytes(self.in_bytes, "little")

    def encode_sample(self, pixels, label: int) -> bytes:
        """The frame of one training sample."""
        label = int(label)
        if not 0 <= label < self.classes:
            raise ValueError(f"Label must be between 0 and {self.classes - 1}, not {label}")
        return bytes([TRAIN_SYNC, label]) + self._pixels(pixels)

    def encode_infer(self, pixels) -> bytes:
        """The frame of one inference request."""
        return bytes([INFER_SYNC]) + self._pixels(pixels)

    def encode_read(self, layer: int, row: int) -> bytes:
        """The frame that reads row ``row`` of layer ``layer`` (0: ``w1``)."""
        if not 0 <= layer < self.layers or not 0 <= row < self.rows[layer]:
            raise ValueError(f"Layer {layer} row {row} is not in the trainer's "
                             f"{self.layers} layers of {list(self.rows)} rows")
        return bytes([READ_SYNC, layer]) + row.to_bytes(2, "little")

    def decode_prediction(self, frame: bytes) -> int:
        """The prediction of one answer frame (sync byte included)."""
        if len(frame) != 2 or frame[0] != RESULT_SYNC:
            raise ProtocolError(f"A prediction frame is 0x{RESULT_SYNC:02X} and one byte, not "
                                f"{frame.hex()}")
        if frame[1] >= self.classes:
            raise ProtocolError(f"Prediction {frame[1]} is not one of the {self.classes} classes")
        return frame[1]

    def encode_row(self, weights) -> bytes:
        """The answer frame of a weight row (as a board sends it; for tests and stand-ins)."""
        weights = [int(w) for w in weights]
        if len(weights) > self.row_weights:
            raise ValueError(f"A row has at most {self.row_weights} weights, not {len(weights)}")
        mask = (1 << self.weight_bits) - 1
        word = 0
        for j, w in enumerate(weights):
            word |= (w & mask) << (j * self.weight_bits)
        frame = bytes([ROW_SYNC]) + word.to_bytes(self.row_bytes, "little")
        return frame + bytes([weight_frame_check(frame)])

    def decode_row(self, frame: bytes, layer: int) -> list[int]:
        """Layer ``layer``'s ``inputs[layer]`` weights of one row frame (sync and check bytes
        included), its check byte checked."""
        if len(frame) != 2 + self.row_bytes or frame[0] != ROW_SYNC:
            raise ProtocolError(f"A row frame is 0x{ROW_SYNC:02X}, {self.row_bytes} bytes and a "
                                f"check byte, not {len(frame)} bytes starting "
                                f"0x{frame[:1].hex() or '--'}")
        if weight_frame_check(frame[:-1]) != frame[-1]:
            raise ProtocolError(f"A row frame's check byte is 0x{frame[-1]:02X}, its bytes give "
                                f"0x{weight_frame_check(frame[:-1]):02X}")
        word = int.from_bytes(frame[1:-1], "little")
        mask = (1 << self.weight_bits) - 1
        return [_signed((word >> (j * self.weight_bits)) & mask, self.weight_bits)
                for j in range(self.inputs[layer])]

    def to_json(self, **extra) -> str:
        """``link.json`` of a training board: ``kind``, the fields, frame sizes and sync
        bytes, and ``extra`` (``fewmul build`` adds ``baud``, ``clock_hz``, ...)."""
        return json.dumps({"format": LINK_FORMAT, "kind": TRAIN_LINK_KIND, **asdict(self),
                           "rows": list(self.rows), "inputs": list(self.inputs),
                           "in_bytes": self.in_bytes, "row_bytes": self.row_bytes,
                           "frame_bytes": self.frame_bytes,
                           "syncs": {"train": TRAIN_SYNC, "infer": INFER_SYNC,
                                     "read": READ_SYNC, "prediction": RESULT_SYNC,
                                     "row": ROW_SYNC},
                           "read_window": READ_WINDOW, **extra}, indent=2)

    @classmethod
    def load(cls, path: Path) -> "TrainLinkFormat":
        """Read a training board's ``link.json``."""
        path = Path(path)
        if link_kind(path) != TRAIN_LINK_KIND:
            raise ArtifactError(f"{path} describes an inference board, not a training one: "
                                f"build the board from a 'fewmul compile --train' folder")
        fields = read_versioned_json(path, "link description", LINK_FORMAT,
                                     "it was written by a newer fewmul; build the board again "
                                     "with this one")
        try:
            return cls(**{k: (tuple(fields[k]) if k in ("rows", "inputs") else int(fields[k]))
                          for k, f in cls.__dataclass_fields__.items()
                          if k in fields or f.default is MISSING})
        except KeyError as exc:
            raise ArtifactError(f"{path}: missing key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{path}: not a training link description ({exc})") from None
