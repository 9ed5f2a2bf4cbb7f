"""Sweep files: a base network spec, the axes to vary, the stages to run per point.

::

    name: digits-widths                  # default: the file's stem
    base: ../examples/digits-bnn.yaml    # the network every point starts from (relative to
                                         # this file; or a bundled example: digits-bnn.yaml)
    axes:                                # every combination of these values is a point
      layers.0.units: [32, 64]           # any spec key, by dotted path (layers[0].units too)
      layers.0.weights: [binary, ternary]
      train.epochs: {from: 1, to: 5, step: 2}    # a range: 1, 3, 5 (to is included)
      target_cycles: [16, 64]            # compile and build options: target_cycles, max_luts,
      board: [icebreaker, ulx3s]         # pe, pipeline, board, target_mhz
    stages:
      train: true                        # false: the untrained initial weights, no data read
      compile: true
      sim: 0                             # test images simulated in Verilator (0: none)
      testbench_images: 0                # of those, checked layer by layer by cocotb
      build: false                       # place and route on the point's board

The file is checked like a network spec, with every problem at once as a
:class:`~fewmul.compiler.schema.SpecError` of ``file:line:col`` issues: unknown keys, an axis
naming no key of the base spec, values of the wrong type for the key they set (each value is
checked against the spec schema with the base spec around it), duplicate values, a build
stage without a board. Problems that only some combinations of values have (a ``pe`` that
does not divide one of the widths) are the failure of those points, recorded in their
``error.json``.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fewmul.compiler.schema import (
    INVALID, Bool, Checker, Enum, Field, Float, Int, Map, Nullable, OneOf, SpecError,
    SpecIssue, Str, Type, check_document, format_path,
)
from fewmul.compiler.spec import HARDWARE_SCHEMA, NetworkSpec, load_spec, parse_spec, read_spec_text

from .points import OPTION_KEYS, Point, Stages, point_id

__all__ = ["Axis", "SweepSpec", "SWEEP_SCHEMA", "OPTION_TYPES", "MAX_POINTS", "parse_sweep",
           "load_sweep", "axis_path"]

#: More points than this is a mistake in the axes, not a sweep.
MAX_POINTS = 100_000
#: Boards a point can be built for.
BUILD_BOARDS = ("icebreaker", "ulx3s", "arty")

#: The compile and build options an axis may set, and their types.
OPTION_TYPES: dict[str, Type] = {
    "pe": HARDWARE_SCHEMA.fields["pe"].type,
    "target_cycles": Int(min=1),
    "max_luts": Int(min=1),
    "pipeline": OneOf(Enum(["auto"]), Int(min=0), expected='"auto" or a non-negative integer'),
    "board": Enum(BUILD_BOARDS),
    "target_mhz": Float(min=0, min_exclusive=True),
}
assert set(OPTION_TYPES) == set(OPTION_KEYS)

_STAGES_SCHEMA = Map({
    "train": Field(Bool(), True, "train (false: untrained initial weights)"),
    "compile": Field(Bool(), True, "lower to Verilog"),
    "sim": Field(Int(min=0), 0, "test images simulated in Verilator"),
    "testbench_images": Field(Int(min=0), 0, "images checked layer by layer by cocotb"),
    "build": Field(Bool(), False, "place and route on the point's board"),
}, expected="a mapping of stages (train, compile, sim, testbench_images, build)")

_RANGE_SCHEMA = Map({
    "from": Field(Float(), doc="first value"),
    "to": Field(Float(), doc="last value (included when the steps reach it)"),
    "step": Field(Float(min=0, min_exclusive=True), 1, "step"),
}, expected="a range {from: A, to: B, step: S}")

_AXES_EXPECTED = ("a mapping of axes: a spec key (layers.0.units, train.epochs, ...) or an option "
                  f"({', '.join(OPTION_KEYS)}) to a list of values or a range "
                  "{from: A, to: B, step: S}")


@dataclass
class _RawAxis:
    key: str
    key_node: Node
    values: list[tuple[Any, Node]]


class _Axes(Type):
    """``axes:``: a mapping of free keys to lists or ranges (keys checked later, against the
    base spec)."""
    expected = _AXES_EXPECTED

    def matches_shape(self, node: Node) -> bool:
        return isinstance(node, MappingNode)

    def _check(self, node: Node, path, checker: Checker) -> Any:
        if not isinstance(node, MappingNode) or not node.value:
            checker.mismatch(node, path, self.expected)
            return INVALID
        axes, seen = [], {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, ScalarNode) and isinstance(key_node.value, str)
                    and key_node.tag.endswith(":str")):
                checker.mismatch(key_node, path, "an axis name (a string)")
                continue
            key = key_node.value
            if key in seen:
                checker.error(key_node, (*path, key),
                              f"duplicate axis (first given at line {seen[key] + 1})")
                continue
            seen[key] = key_node.start_mark.line
            values = self._values(value_node, (*path, key), checker)
            if values is not None:
                axes.append(_RawAxis(key, key_node, values))
        return axes

    @staticmethod
    def _values(node: Node, path, checker: Checker) -> list[tuple[Any, Node]] | None:
        checker.nodes[tuple(path)] = node
        if isinstance(node, SequenceNode):
            if not node.value:
                checker.mismatch(node, path, "a non-empty list of values")
                return None
            out = []
            for i, item in enumerate(node.value):
                checker.nodes[(*path, i)] = item
                try:
                    value = yaml.constructor.SafeConstructor().construct_object(item, deep=True)
                except yaml.YAMLError as exc:
                    checker.error(item, (*path, i), f"cannot read this value ({exc})")
                    continue
                if any(value == v and type(value) is type(v) for v, _ in out):
                    checker.error(item, (*path, i), f"duplicate value {item.value!r}"
                                  if isinstance(item, ScalarNode) else "duplicate value")
                    continue
                out.append((value, item))
            return out
        if isinstance(node, MappingNode):
            r = _RANGE_SCHEMA.check(node, path, checker)
            if r is INVALID or INVALID in r.values():
                return None
            lo, hi, step = r["from"], r["to"], r["step"]
            if hi < lo:
                checker.error(node, path, f"expected a range with from <= to, got from {lo:g} "
                                          f"and to {hi:g}")
                return None
            count = math.floor((hi - lo) / step + 1e-9) + 1
            if count > MAX_POINTS:
                checker.error(node, path, f"a range of {count} values; expected at most "
                                          f"{MAX_POINTS}")
                return None
            integral = all(float(v).is_integer() for v in (lo, hi, step))
            values = [lo + i * step for i in range(count)]
            return [(int(round(v)) if integral else round(v, 12), node) for v in values]
        checker.mismatch(node, path, "a list of values or a range {from: A, to: B, step: S} "
                                     "(one value: a list of one)")
        return None


#: The whole sweep file.
SWEEP_SCHEMA = Map({
    "name": Field(Nullable(Str()), None, "sweep name; default: the file's stem"),
    "base": Field(Str(), doc="the base network spec, relative to the sweep file"),
    "axes": Field(_Axes(), doc="the axes: key -> values"),
    "stages": Field(_STAGES_SCHEMA, doc="the stages run per point"),
}, expected="a mapping (the sweep: name, base, axes, stages)")


@dataclass
class Axis:
    """One axis of a sweep.

    Attributes
    ----------
    key : str
        As written in the sweep file (the CSV column).
    values : list
    path : tuple or None
        The spec key path it sets (``("layers", 0, "units")``); None for an option.
    """
    key: str
    values: list[Any]
    path: tuple | None = None

    @property
    def is_option(self) -> bool:
        return self.path is None


@dataclass
class SweepSpec:
    """A validated sweep file.

    Attributes
    ----------
    name : str
    file : str
        The sweep file as given (for messages).
    base_path : Path
        The base network spec.
    base : NetworkSpec
    axes : list of Axis
        In file order; the points are their product, the last axis varying fastest.
    stages : Stages
    """
    name: str
    file: str
    base_path: Path
    base: NetworkSpec
    axes: list[Axis]
    stages: Stages = field(default_factory=Stages)

    def points(self) -> list[Point]:
        """Every combination of the axis values, as :class:`Point` records."""
        tree = self.base.to_dict()
        out = []
        for combo in itertools.product(*(axis.values for axis in self.axes)):
            values = {axis.key: value for axis, value in zip(self.axes, combo)}
            spec = copy.deepcopy(tree)
            options = {}
            for axis, value in zip(self.axes, combo):
                if axis.is_option:
                    options[axis.key] = value
                else:
                    _set(spec, axis.path, copy.deepcopy(value))
            text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
            out.append(Point(point_id(values), values, text, options, self.stages))
        return out


def axis_path(key: str) -> tuple:
    """``"layers.1.units"`` or ``"layers[1].units"`` -> ``("layers", 1, "units")``."""
    parts = key.replace("[", ".").replace("]", "").split(".")
    return tuple(int(p) if p.isdigit() else p for p in parts if p != "")


def _get(tree: Any, path: tuple) -> Any:
    for part in path:
        if isinstance(part, int) and isinstance(tree, list) and part < len(tree):
            tree = tree[part]
        elif isinstance(part, str) and isinstance(tree, dict) and part in tree:
            tree = tree[part]
        else:
            raise KeyError(part)
    return tree


def _set(tree: Any, path: tuple, value: Any) -> None:
    _get(tree, path[:-1])[path[-1]] = value


def _leaf_keys(tree: Any, prefix: tuple = ()) -> list[str]:
    """Every key path of a spec dict, dotted (``layers.0.units``), subtrees too."""
    keys = [".".join(map(str, prefix))] if prefix else []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) \
        if isinstance(tree, list) else ()
    for k, v in items:
        keys += _leaf_keys(v, (*prefix, k))
    return keys


def _marked(value: Any, mark_node: Node) -> Node:
    """A node of ``value`` carrying the position of ``mark_node`` (a range's values)."""
    node = yaml.compose(yaml.safe_dump(value), Loader=yaml.SafeLoader)
    node.start_mark, node.end_mark = mark_node.start_mark, mark_node.end_mark
    return node


def _check_axes(raw: list[_RawAxis], base: NetworkSpec, base_name: str,
                chk: Checker) -> list[Axis]:
    tree = base.to_dict()
    known = _leaf_keys(tree)
    axes = []
    for r in raw:
        where = ("axes", r.key)
        if r.key in OPTION_TYPES:
            typ, ok = OPTION_TYPES[r.key], []
            for i, (value, node) in enumerate(r.values):
                checked = typ.check(node if isinstance(node, ScalarNode) or not
                                    isinstance(value, (int, float)) else _marked(value, node),
                                    (*where, i), chk)
                if checked is not INVALID:
                    ok.append(checked)
            axes.append(Axis(r.key, ok))
            continue
        path = axis_path(r.key)
        try:
            _get(tree, path)
        except KeyError:
            close = difflib.get_close_matches(".".join(map(str, path)), known, n=1, cutoff=0.6)
            hint = (f"did you mean '{close[0]}'?" if close else
                    f"expected a key of the base spec {base_name} (layers.0.units, "
                    f"train.epochs, ...) or an option ({', '.join(OPTION_KEYS)})")
            chk.error(r.key_node, where, f"no such key in the base spec; {hint}")
            continue
        name = format_path(path)
        ok = []
        for i, (value, node) in enumerate(r.values):
            spec = copy.deepcopy(tree)
            _set(spec, path, copy.deepcopy(value))
            try:
                parse_spec(yaml.safe_dump(spec, sort_keys=False), base_name)
            except SpecError as exc:
                own = [e for e in exc.errors if e.path == name or e.path.startswith(name + ".")
                       or e.path.startswith(name + "[")]
                if own:
                    for e in own:
                        sub = e.path[len(name):]
                        chk.error(node, (*where, i), f"{name}{sub}: {e.message}")
                    continue
            ok.append(value)
        axes.append(Axis(r.key, ok, path))
    return axes


def _resolve_base(base: str, base_dir: Path) -> Path | None:
    path = Path(base) if Path(base).is_absolute() else base_dir / base
    if path.is_file():
        return path
    bundled = Path(str(resources.files("fewmul.examples").joinpath(Path(base).name)))
    return bundled if bundled.is_file() and not Path(base).parent.parts else None


def parse_sweep(text: str, filename: str = "<sweep>", base_dir: Path | None = None) -> SweepSpec:
    """Validate sweep YAML text.

    Parameters
    ----------
    text : str
    filename : str
        Name used in error messages; its stem is the default sweep name.
    base_dir : Path, optional
        Folder the ``base`` path is relative to (default: the current one).

    Raises
    ------
    SpecError
        Every problem of the sweep file (or of its base spec, with that file's positions).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError([SpecIssue(filename, mark and mark.line + 1, mark and mark.column + 1,
                                   "", f"YAML syntax error: {exc.problem or exc.context}")]) \
            from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(filename, None, None, "", f"YAML syntax error: {exc}")]) \
            from None
    chk = Checker(filename)
    doc = check_document(SWEEP_SCHEMA, root, chk)
    if doc is INVALID:
        raise SpecError(chk.sorted_errors())
    base_path = base = None
    if doc["base"] is not INVALID:
        base_path = _resolve_base(doc["base"], Path(base_dir or "."))
        if base_path is None:
            chk.error(None, ("base",), f"base spec {doc['base']!r} not found (relative to "
                                       f"{Path(base_dir or '.').resolve()}, nor a bundled example)")
        else:
            base = load_spec(base_path)        # its own errors name its own file
    axes: list[Axis] = []
    if base is not None and doc["axes"] is not INVALID:
        axes = _check_axes(doc["axes"], base, str(base_path), chk)
    stages = doc["stages"]
    if stages is not INVALID and INVALID not in stages.values():
        stages = Stages(**stages)
        if stages.build and doc["axes"] is not INVALID \
                and not any(r.key == "board" for r in doc["axes"]):
            chk.error(None, ("stages", "build"),
                      f"a build needs a board: add an axis 'board: [{', '.join(BUILD_BOARDS)}]' "
                      "(or a list of one)")
        if stages.testbench_images > stages.sim and chk.given(("stages", "testbench_images")):
            chk.mismatch(None, ("stages", "testbench_images"),
                         f"at most stages.sim ({stages.sim}) images")
    count = math.prod(len(a.values) for a in axes) if axes else 0
    if count > MAX_POINTS:
        chk.error(None, ("axes",), f"{count} points; expected at most {MAX_POINTS}")
    if chk.errors:
        raise SpecError(chk.sorted_errors())
    name = doc["name"] or Path(filename.strip("<>")).stem or "sweep"
    return SweepSpec(name, filename, base_path, base, axes, stages)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; ``base`` is relative to its folder.

    Raises
    ------
    SpecError
        If the file can't be read or is invalid.
    """
    return parse_sweep(read_spec_text(path, "sweep"), str(path), Path(path).parent)
