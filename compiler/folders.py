"""The build folder and the run folder: the contracts between the commands.

``fewmul train`` writes a *run folder*, ``fewmul compile`` reads it and writes a *build
folder*, which ``fewmul sim``, ``fewmul build`` and ``fewmul run`` read. :class:`RunFolder`
and :class:`BuildFolder` are the only way the other packages find and read the files in them;
every JSON and NPZ file is written atomically (:mod:`fewmul.nn.artifacts`).

A build folder holds:

=================  ==============================================================
``top.v``          the design; it loads ``rom/*.hex`` with ``$readmemh``, so tools
                   must run with the build folder as their working directory
``rom/``           the weight memories' contents
``net.npz``        the network IR (:class:`fewmul.ir.Graph`): the golden model
``manifest.json``  the stream layouts and probes the testbench needs
                   (:class:`Manifest`), with the folder's format version
``weights/``       packed weights and thresholds as the memories hold them
``spec.yaml``      the resolved spec of the run it was compiled from
``report.json``    folding, timing and area of every layer
``sim.json``       the last ``fewmul sim`` result
``sim_build/``     the Verilator build of ``fewmul sim`` (log: ``sim.log``)
``fast/``          the compiled harness of :mod:`fewmul.sim.fast`
=================  ==============================================================

An on-chip training design (``fewmul compile --train``) has ``top.v``, ``rom/``, ``spec.yaml``
and ``sim.json`` too, and instead of the network and its manifest ``train.json`` (the
trainer's configuration, data set and stream layout) and ``init.npz`` (the initial weights).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fewmul.gateware.rom import ROM_FOLDER
from fewmul.ir import Graph
from fewmul.nn.artifacts import (ArtifactError, check_format, load_npz, read_json,
                                  read_versioned_json, save_npz, write_atomic)

from .spec import NetworkSpec, load_spec

__all__ = ["BUILD_FORMAT", "RUN_FORMAT", "Manifest", "BuildFolder", "RunFolder", "MissingArtifact",
           "ArtifactError", "load_graph"]

#: Version of the build folder's layout, written in ``manifest.json``.
BUILD_FORMAT = 2
#: Version of the run folder's layout, written in ``model.npz`` (``format``); a run without one
#: is of format 1.
RUN_FORMAT = 2


class MissingArtifact(FileNotFoundError):
    """A file a command needs is not in the folder; the message says which command makes it."""


@dataclass
class Manifest:
    """What a testbench needs to know about an emitted design.

    Attributes
    ----------
    top : str
        Top module name.
    input_count, input_bits : int
        Elements of each input transfer (a pixel's channels; a fully-connected network's whole
        input vector) and bits per element.
    input_beats : int
        Input transfers per image (its pixels, in ``(H, W)`` order; 1 for a fully-connected
        network).
    layers : list of dict
        Per layer: ``name``, ``units``, ``element_bits``, ``signed``, ``probe`` (the path of
        the unit whose ``o`` stream carries the layer's output vectors) and ``vectors`` (per
        image, of ``units`` elements each; the layer's output in ``(H, W, C)`` order).
    label_offset, label_bits, scores_offset : int
        Bit positions in the result payload.
    cycles_per_inference, latency_cycles : int
        Predicted timing.
    format : int
        :data:`BUILD_FORMAT` of the folder it describes (1 for folders written before the
        network IR).
    """
    top: str
    input_count: int
    input_bits: int
    layers: list[dict]
    label_offset: int
    label_bits: int
    scores_offset: int
    cycles_per_inference: int
    latency_cycles: int
    format: int = 1
    input_beats: int = 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def load_graph(path: Path) -> Graph:
    """The network IR saved in ``path`` (``net.npz``).

    Raises
    ------
    ArtifactError
        When the file is truncated, corrupt, of a newer format or not a network.
    """
    arrays = load_npz(path)
    try:
        return Graph.from_arrays(arrays, str(path))
    except ArtifactError:
        raise
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        message = str(exc)
        raise ArtifactError(message if message.startswith(str(path)) else
                            f"{path}: not a network IR ({type(exc).__name__}: {exc})") from None


def _need(path: Path, maker: str) -> Path:
    if not path.exists():
        raise MissingArtifact(f"{path} is missing: {maker}")
    return path


@dataclass(frozen=True)
class BuildFolder:
    """A ``fewmul compile`` output folder (see the module docstring).

    Parameters
    ----------
    path : Path
        The folder.
    """
    path: Path
    _compile_hint: str = field(default="run 'fewmul compile RUN/ -o BUILD/' first", repr=False)

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    # --- paths -----------------------------------------------------------------------------
    @property
    def top_v(self) -> Path:
        return self.path / "top.v"

    @property
    def rom_dir(self) -> Path:
        return self.path / ROM_FOLDER

    @property
    def net_path(self) -> Path:
        return self.path / "net.npz"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def report_path(self) -> Path:
        return self.path / "report.json"

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def sim_path(self) -> Path:
        return self.path / "sim.json"

    @property
    def weights_dir(self) -> Path:
        return self.path / "weights"

    @property
    def sim_build_dir(self) -> Path:
        return self.path / "sim_build"

    @property
    def sim_log(self) -> Path:
        return self.path / "sim.log"

    @property
    def fast_dir(self) -> Path:
        return self.path / "fast"

    @property
    def train_meta_path(self) -> Path:
        """``train.json`` of an on-chip training design."""
        return self.path / "train.json"

    @property
    def train_init_path(self) -> Path:
        """``init.npz`` of an on-chip training design."""
        return self.path / "init.npz"

    @property
    def trains_on_chip(self) -> bool:
        """Whether the folder holds an on-chip training design."""
        return self.train_meta_path.exists()

    def board_dir(self, board: str) -> Path:
        """Where ``fewmul build --board BOARD`` writes."""
        return self.path / board

    # --- reading ---------------------------------------------------------------------------
    def net(self) -> Graph:
        """The network IR, the golden model of the design."""
        return load_graph(_need(self.net_path, self._compile_hint))

    def manifest(self) -> Manifest:
        """The stream layouts; the folder's format is checked (:data:`BUILD_FORMAT`)."""
        path = _need(self.manifest_path, self._compile_hint)
        fields = read_versioned_json(path, "manifest", BUILD_FORMAT,
                                     "it was written by a newer fewmul; compile the run again "
                                     "with this one")
        try:
            return Manifest(**fields)
        except TypeError as exc:
            raise ArtifactError(f"{path}: not a manifest of this fewmul ({exc}); compile the "
                                f"run again") from None

    def report(self) -> dict:
        path = _need(self.report_path, self._compile_hint)
        report = read_json(path)
        if not isinstance(report, dict) or not isinstance(report.get("layers"), list):
            raise ArtifactError(f"{path}: not a compile report (no list of layers)")
        return report

    def spec(self) -> NetworkSpec:
        return load_spec(_need(self.spec_path, self._compile_hint))

    def folding(self) -> dict | None:
        """The folding ``fewmul compile`` chose (``{"pe": [...], "simd": [...], "pipeline":
        [...]}``, per layer, and ``"input_memory"``, the layers with one, if any), or None
        without a report."""
        if not self.report_path.exists():
            return None
        layers = self.report()["layers"]
        try:
            folding = {"pe": [int(layer["pe"]) for layer in layers]}
            if layers and all("simd" in layer for layer in layers):
                folding["simd"] = [int(layer["simd"]) for layer in layers]
            if layers and "pipeline" in layers[0]:
                folding["pipeline"] = [int(layer["pipeline"]) for layer in layers]
            if any(layer.get("input_beat") for layer in layers):
                folding["input_memory"] = [index for index, layer in enumerate(layers)
                                           if layer.get("input_beat")]
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{self.report_path}: a layer without a valid folding "
                                f"({type(exc).__name__}: {exc})") from None
        return folding

    # --- writing ---------------------------------------------------------------------------
    def create(self) -> "BuildFolder":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def write_json(self, name: str, value) -> Path:
        """Write ``value`` as ``name`` in the folder, atomically."""
        path = self.path / name
        write_atomic(path, json.dumps(value, indent=2))
        return path

    def save_net(self, net: Graph) -> None:
        save_npz(self.net_path, net.arrays())

    def save_manifest(self, manifest: Manifest) -> None:
        write_atomic(self.manifest_path, manifest.to_json())


@dataclass(frozen=True)
class RunFolder:
    """A ``fewmul train`` output folder: ``spec.yaml`` (the resolved spec), ``model.npz``
    (hidden weights and batch-norm statistics), ``metrics.json``, ``curves.png`` and
    ``checkpoint.npz`` (rewritten after every epoch).

    A run written by ``fewmul import`` also holds ``net.npz``, its exact network IR: when it is
    there it *is* the run's network, and ``model.npz`` only its float approximation."""
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def spec_path(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def model_path(self) -> Path:
        return self.path / "model.npz"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def net_path(self) -> Path:
        """``net.npz``: the exact network IR of an imported run (absent in a trained one)."""
        return self.path / "net.npz"

    @property
    def curves_path(self) -> Path:
        return self.path / "curves.png"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.npz"

    def _need(self, path: Path) -> Path:
        return _need(path, f"is {self.path} a 'fewmul train' output?")

    def spec(self) -> NetworkSpec:
        return load_spec(self._need(self.spec_path))

    def model_state(self) -> dict[str, np.ndarray]:
        """The arrays of ``model.npz``; its format is checked (:data:`RUN_FORMAT`)."""
        state = load_npz(self._need(self.model_path))
        check_format(self.model_path, state.pop("format", None), RUN_FORMAT,
                     "it was written by a newer fewmul; train it again with this one")
        return state

    def save_model(self, state: dict[str, np.ndarray]) -> None:
        """Write ``model.npz`` with the folder's format version."""
        save_npz(self.model_path, {**state, "format": np.array(RUN_FORMAT)})

    def net(self) -> Graph:
        """The exact network IR ``net.npz`` of an imported run."""
        return load_graph(self._need(self.net_path))
