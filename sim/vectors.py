"""Packing of stream payloads and the golden vectors a simulation checks.

The compiler writes ``manifest.json`` beside ``top.v``
(:class:`fewmul.compiler.folders.Manifest`): the bit layout of the input stream,
of every layer's output stream and of the result stream. This module turns
integer arrays into payload integers and back with that layout; it is shared by
the cocotb testbench and the tests.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack", "unpack", "expected_outputs"]


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


def expected_outputs(layers_out: list[np.ndarray]) -> list[list[list[int]]]:
    """Per image, per layer: the integer outputs as plain lists (JSON-friendly)."""
    return [[out[i].astype(int).tolist() for out in layers_out] for i in range(len(layers_out[0]))]
