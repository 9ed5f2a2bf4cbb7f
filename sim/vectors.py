"""Packing of stream payloads and the golden vectors a simulation checks.

The compiler writes ``manifest.json`` beside ``top.v``: the bit layout of the
input stream, of every layer's output stream and of the result stream. This
module turns integer arrays into payload integers and back with that layout;
it is shared by the cocotb testbench and the tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Manifest", "pack", "unpack", "load_manifest"]


def pack(values, bits: int) -> int:
    """Concatenate ``values`` (element 0 in the low bits) into one integer."""
    mask, out = (1 << bits) - 1, 0
    for j, v in enumerate(values):
        out |= (int(v) & mask) << (j * bits)
    return out


def unpack(word: int, bits: int, count: int, signed: bool = False) -> list[int]:
    """Split ``word`` into ``count`` elements of ``bits`` bits (two's complement if ``signed``)."""
    mask, out = (1 << bits) - 1, []
    for j in range(count):
        v = (word >> (j * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out


@dataclass
class Manifest:
    """What a testbench needs to know about an emitted design."""
    top: str
    input_count: int
    input_bits: int
    layers: list[dict]          # per layer: name, units, element_bits, signed, probe
    label_offset: int
    label_bits: int
    scores_offset: int
    cycles_per_inference: int
    latency_cycles: int

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def load_manifest(build_dir: Path) -> Manifest:
    path = Path(build_dir) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run 'fewmul compile' first")
    return Manifest(**json.loads(path.read_text()))


def expected_outputs(layers_out: list[np.ndarray]) -> list[list[list[int]]]:
    """Per image, per layer: the integer outputs as plain lists (JSON-friendly)."""
    return [[out[i].astype(int).tolist() for out in layers_out] for i in range(len(layers_out[0]))]
