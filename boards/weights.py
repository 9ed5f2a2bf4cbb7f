"""Weight memories written at start-up over the host link (the iCE40UP5K's SPRAM).

A bitstream cannot initialize the iCE40UP5K's SPRAM, so a layer whose weights live there gets
a :class:`~fewmul.gateware.spram.SpramMemory` in place of its ROM
(:attr:`MatrixVectorUnit.weight_memory <fewmul.gateware.mvu.MatrixVectorUnit.weight_memory>`),
the host link a :class:`~fewmul.boards.link.WeightLoader`, and the board folder the words the
host sends (``spram/layer{L}.hex``, listed under ``weights`` in ``link.json``, see
:class:`~fewmul.boards.protocol.WeightMemory`). Which layers go there is
:func:`fewmul.boards.fit.spram_layers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from fewmul.gateware import MatrixVectorUnit, Network
from fewmul.gateware.spram import SpramMemory
from fewmul.nn.artifacts import write_atomic

from .protocol import WeightMemory

__all__ = ["layer_units", "attach_spram", "weight_memories", "write_weight_files",
           "read_weight_file", "WEIGHT_FOLDER"]

#: Folder of the weight files, in the board folder.
WEIGHT_FOLDER = "spram"


def layer_units(network: Network) -> list[MatrixVectorUnit]:
    """The matrix-vector units of ``network``, one per layer, input layer first."""
    return [unit for unit in network.stages.values() if isinstance(unit, MatrixVectorUnit)]


def attach_spram(network: Network, layers: Sequence[int], *,
                 cells: bool | None = None) -> dict[int, SpramMemory]:
    """Give the matrix-vector units of ``layers`` an SPRAM weight memory in place of their ROM.

    The memory reads as the ROM would (registered in the stall-free datapath). ``cells`` as for
    :class:`~fewmul.gateware.spram.SpramMemory` (True for Verilator: the ``SB_SPRAM256KA``
    instances and their cell model). Returns the memories by layer, for
    :class:`~fewmul.boards.link.HostLink`.
    """
    units = layer_units(network)
    memories = {}
    for layer in sorted(set(layers)):
        if not isinstance(layer, int) or not 0 <= layer < len(units):
            raise ValueError(f"SPRAM layers must be layers of the network, 0 to "
                             f"{len(units) - 1}, not {layer!r}")
        unit = units[layer]
        if unit.weight_memory is not None:
            raise ValueError(f"Layer {layer} already has a weight memory")
        unit.weight_memory = memories[layer] = SpramMemory(
            unit.word_bits, unit.groups * unit.folds, registered=unit.stall_free, cells=cells)
    return memories


def weight_memories(memories: dict[int, SpramMemory]) -> list[WeightMemory]:
    """The ``link.json`` entries of ``memories`` (with their files' names)."""
    return [WeightMemory(layer, mem.width, mem.depth, f"{WEIGHT_FOLDER}/layer{layer}.hex")
            for layer, mem in sorted(memories.items())]


def write_weight_files(board_dir: Path, network: Network,
                       memories: dict[int, SpramMemory]) -> list[WeightMemory]:
    """Write each memory's words (its unit's packed rows) to ``board_dir/spram/``; returns the
    ``link.json`` entries."""
    board_dir = Path(board_dir)
    units = layer_units(network)
    entries = weight_memories(memories)
    for entry in entries:
        rows = units[entry.layer].rows
        digits = (entry.word_bits + 3) // 4
        path = board_dir / entry.file
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, "".join(f"{row:0{digits}x}\n" for row in rows))
    return entries


def read_weight_file(board_dir: Path, entry: WeightMemory) -> list[int]:
    """The words of ``entry``'s file, checked against its size."""
    path = Path(board_dir) / entry.file
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: build the board again")
    words = [int(line, 16) for line in path.read_text().split()]
    if len(words) != entry.words or any(w >> entry.word_bits for w in words):
        raise ValueError(f"{path}: expected {entry.words} words of {entry.word_bits} bits")
    return words
