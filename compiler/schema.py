"""A tiny declarative schema engine for YAML node trees.

The network-spec loader (:mod:`fewmul.compiler.spec`) describes its format as
a table of fields -- name, type, default, range or choices, nested mapping or
list -- and this module checks a node tree from :func:`yaml.compose` against
it. Checking works on nodes rather than on constructed Python values, so every
problem can be reported with the file, 1-based line and column of the node
that caused it. Checking never stops at the first problem: all problems are
collected in a :class:`Checker` and reported together.

Types
-----
:class:`Int`, :class:`Float`, :class:`Bool`, :class:`Str`, :class:`Enum`,
:class:`Nullable`, :class:`OneOf`, :class:`List`, :class:`Map` and
:class:`Tagged`. A :class:`Map` is a dictionary of :class:`Field` objects;
adding a key to a format means adding one line to that dictionary. A
:class:`Tagged` mapping picks one of several :class:`Map` formats by the value
of one of its keys (``kind: conv``), so each variant has only its own keys.

Results
-------
:meth:`Type.check` returns plain Python values (``dict`` for a mapping, with
every omitted key filled with its default). A value that failed checking is
replaced by the :data:`INVALID` sentinel so later cross-field checks can skip
it instead of reporting follow-on errors.

Examples
--------
>>> import yaml
>>> layer = Map({"units": Field(Int(min=1)), "bn": Field(Bool(), default=True)})
>>> checker = Checker("x.yaml")
>>> layer.check(yaml.compose("{units: -3}", Loader=yaml.SafeLoader), (), checker)
{'units': INVALID, 'bn': True}
>>> print(checker.errors[0])
x.yaml:1:9: units: expected a positive integer, got -3
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "INVALID", "REQUIRED", "SpecIssue", "SpecError", "Checker", "Path",
    "format_path", "format_value", "describe_node", "short_tag", "Type", "Int", "Float", "Bool", "Str",
    "Enum", "Nullable", "OneOf", "List", "Map", "Tagged", "Field", "check_document",
]

#: A key path inside the document: strings are mapping keys, ints list indices.
Path = tuple  # tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_INT, _FLOAT, _BOOL, _STR, _NULL = (_TAG + t for t in ("int", "float", "bool", "str", "null"))
_MERGE = _TAG + "merge"
#: Tags the safe loader builds without custom code (anything else is rejected).
_SCALAR_TAGS = frozenset(_TAG + t for t in ("int", "float", "bool", "str", "null", "timestamp", "binary"))
_SEQ_TAGS = frozenset([_TAG + "seq"])
_MAP_TAGS = frozenset([_TAG + "map"])


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:  # keep identity through copy/pickle
        return self._name


#: Placeholder for a value that failed checking (an error was already reported).
INVALID: Any = _Sentinel("INVALID")
#: Default marker of a :class:`Field` that must be given.
REQUIRED: Any = _Sentinel("REQUIRED")


# --------------------------------------------------------------------------- issues

@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a spec file.

    Attributes
    ----------
    file : str
        File name as given to the loader (``"<spec>"`` for in-memory text).
    line, col : int or None
        1-based position of the offending node; ``None`` when the problem has
        no position (for instance an unreadable file).
    path : str
        Key path such as ``layers[1].units``; empty for the whole document.
    message : str
        What was found and what was expected.
    """
    file: str
    line: int | None
    col: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(ValueError):
    """A spec file is invalid; :attr:`errors` lists every problem found.

    Parameters
    ----------
    errors : sequence of SpecIssue
        The problems, in document order. ``str(error)`` is one problem per line.
    """

    def __init__(self, errors: Sequence[SpecIssue]) -> None:
        self.errors: list[SpecIssue] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def format_path(path: Path) -> str:
    """``("layers", 1, "units")`` -> ``"layers[1].units"``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_value(value: Any) -> str:
    """Render a Python value yaml-ish: ``"abc"``, ``-3``, ``true``, ``null``, ``a list``."""
    if isinstance(value, (list, tuple)):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > 60:
            value = value[:57] + "..."
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
    return str(value)


_constructor = yaml.constructor.SafeConstructor()


def _scalar_value(node: ScalarNode) -> Any:
    """The Python value of a scalar node, as yaml.safe_load would build it."""
    return _constructor.construct_object(node, deep=True)


def describe_node(node: Node | None) -> str:
    """A short yaml-ish rendering of what a node holds, for "got ..." texts.

    Strings are double-quoted (``"abc"``), other scalars are written as YAML
    would (``-3``, ``true``, ``null``), collections are named (``a list``).
    """
    if node is None:
        return "an empty document"
    if isinstance(node, SequenceNode):
        return "a list" if node.value else "an empty list"
    if isinstance(node, MappingNode):
        return "a mapping" if node.value else "an empty mapping"
    try:
        return format_value(_scalar_value(node))
    except yaml.YAMLError:
        return f"{short_tag(node.tag)} {format_value(node.value)}"


def short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:int`` -> ``!!int``."""
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


# --------------------------------------------------------------------------- checker

@dataclass
class Checker:
    """Collects problems and remembers which node sits at which key path.

    Parameters
    ----------
    filename : str
        Used in every :class:`SpecIssue`.
    """
    filename: str
    errors: list[SpecIssue] = field(default_factory=list)
    #: Node found at each checked path (absent for defaulted keys).
    nodes: dict = field(default_factory=dict)

    def error(self, node: Node | None, path: Path, message: str) -> None:
        """Record a problem at ``node`` (or at the nearest ancestor of ``path`` seen)."""
        if node is None:
            node = self.node_at(path)
        line = col = None
        if node is not None:
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
        self.errors.append(SpecIssue(self.filename, line, col, format_path(path), message))

    def mismatch(self, node: Node | None, path: Path, expected: str, got: str | None = None,
                 value: Any = INVALID) -> None:
        """Record the standard ``expected X, got Y`` problem.

        ``got`` defaults to a rendering of ``node``; with ``node=None`` (a
        cross-field rule) it is the node written at ``path`` or, if the key was
        omitted, ``value`` marked as the default.
        """
        if got is None:
            if node is None and tuple(path) not in self.nodes and value is not INVALID:
                got = f"{format_value(value)} (the default)"
            else:
                got = describe_node(node if node is not None else self.nodes.get(tuple(path)))
        self.error(node, path, f"expected {expected}, got {got}")

    def node_at(self, path: Path) -> Node | None:
        """The node at ``path``, or at its nearest checked ancestor."""
        path = tuple(path)
        while path not in self.nodes and path:
            path = path[:-1]
        return self.nodes.get(path)

    def given(self, path: Path) -> bool:
        """Whether ``path`` was written in the document (not defaulted)."""
        return tuple(path) in self.nodes

    def sorted_errors(self) -> list[SpecIssue]:
        """Errors in document order (position-less ones first)."""
        return sorted(self.errors, key=lambda e: (e.line or 0, e.col or 0))


# --------------------------------------------------------------------------- types

class Type:
    """Base class of schema types.

    Subclasses implement :meth:`_check` (node -> value or :data:`INVALID`,
    reporting problems to the checker) and set :attr:`expected`, the phrase
    used in "expected ..." messages.
    """
    expected: str = "a value"

    def check(self, node: Node, path: Path, checker: Checker) -> Any:
        """Check ``node`` found at ``path``; return its value or :data:`INVALID`."""
        checker.nodes[tuple(path)] = node
        allowed = (_SCALAR_TAGS if isinstance(node, ScalarNode)
                   else _SEQ_TAGS if isinstance(node, SequenceNode) else _MAP_TAGS)
        if node.tag not in allowed:
            checker.error(node, path, f"unsupported YAML tag {short_tag(node.tag)}; expected {self.expected}")
            return INVALID
        return self._check(node, path, checker)

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:  # pragma: no cover
        raise NotImplementedError

    def matches_shape(self, node: Node) -> bool:
        """Whether ``node`` has the right kind (scalar type / list / mapping) for this type."""
        return True

    def default_value(self) -> Any:
        """Value used when a field of this type is omitted with no explicit default."""
        return REQUIRED


def _is_scalar(node: Node, *tags: str) -> bool:
    return isinstance(node, ScalarNode) and node.tag in tags


def _range_text(lo: Any, hi: Any, noun: str, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        if lo_open:
            return f"a {noun} in ({lo}, {hi}]"
        return f"an {noun} in {lo}..{hi}" if noun == "integer" else f"a {noun} in [{lo}, {hi}]"
    if lo == 0:
        return f"a positive {noun}" if lo_open else f"a non-negative {noun}"
    if lo == 1 and noun == "integer":
        return "a positive integer"
    article = "an" if noun == "integer" else "a"
    if lo is not None:
        return f"{article} {noun} {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f"{article} {noun} <= {hi}"
    return f"{article} {noun}"


@dataclass
class Int(Type):
    """An integer (YAML ``true``/``false`` and floats are rejected), optionally in ``[min, max]``."""
    min: int | None = None
    max: int | None = None

    @property
    def expected(self) -> str:  # type: ignore[override]
        return _range_text(self.min, self.max, "integer")

    def matches_shape(self, node: Node) -> bool:
        return _is_scalar(node, _INT)

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        if not _is_scalar(node, _INT):
            checker.mismatch(node, path, self.expected)
            return INVALID
        value = _scalar_value(node)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            checker.mismatch(node, path, self.expected)
            return INVALID
        return value


@dataclass
class Float(Type):
    """A finite number; integers are accepted and converted.

    Plain (unquoted) scalars such as ``1e-4``, which YAML 1.1 reads as strings
    because they lack a dot, are accepted as numbers too.
    """
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False

    @property
    def expected(self) -> str:  # type: ignore[override]
        return _range_text(self.min, self.max, "number", lo_open=self.min_exclusive)

    @staticmethod
    def _number(node: Node) -> float | None:
        if _is_scalar(node, _INT, _FLOAT):
            return float(_scalar_value(node))
        if _is_scalar(node, _STR) and node.style is None:
            try:
                return float(node.value)
            except ValueError:
                return None
        return None

    def matches_shape(self, node: Node) -> bool:
        return self._number(node) is not None

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        value = self._number(node)
        bad = value is None or not math.isfinite(value)
        if not bad and self.min is not None:
            bad = value <= self.min if self.min_exclusive else value < self.min
        if not bad and self.max is not None:
            bad = value > self.max
        if bad:
            checker.mismatch(node, path, self.expected)
            return INVALID
        return value


class Bool(Type):
    """``true`` or ``false``."""
    expected = "true or false"

    def matches_shape(self, node: Node) -> bool:
        return _is_scalar(node, _BOOL)

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        if not _is_scalar(node, _BOOL):
            checker.mismatch(node, path, self.expected)
            return INVALID
        return _scalar_value(node)


@dataclass
class Str(Type):
    """A string (numbers, booleans and null are rejected); non-empty unless ``allow_empty``."""
    allow_empty: bool = False

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "a string" if self.allow_empty else "a non-empty string"

    def matches_shape(self, node: Node) -> bool:
        return _is_scalar(node, _STR)

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        if not _is_scalar(node, _STR) or (not node.value and not self.allow_empty):
            checker.mismatch(node, path, self.expected)
            return INVALID
        return node.value


class Enum(Type):
    """One of a fixed set of strings; close misspellings get a suggestion."""

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)

    def __repr__(self) -> str:
        return f"Enum({self.choices!r})"

    @property
    def expected(self) -> str:  # type: ignore[override]
        quoted = [json.dumps(c) for c in self.choices]
        return quoted[0] if len(quoted) == 1 else "one of " + ", ".join(quoted)

    def matches_shape(self, node: Node) -> bool:
        return _is_scalar(node, _STR)

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        if _is_scalar(node, _STR) and node.value in self.choices:
            return node.value
        hint = ""
        if _is_scalar(node, _STR):
            close = difflib.get_close_matches(node.value.lower(), self.choices, n=1)
            if close:
                hint = f" (did you mean {json.dumps(close[0])}?)"
        checker.mismatch(node, path, self.expected, describe_node(node) + hint)
        return INVALID


class Nullable(Type):
    """``null`` (-> ``None``) or a value of the wrapped type."""

    def __init__(self, inner: Type) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"Nullable({self.inner!r})"

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"{self.inner.expected} or null"

    def matches_shape(self, node: Node) -> bool:
        return _is_scalar(node, _NULL) or self.inner.matches_shape(node)

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        if _is_scalar(node, _NULL):
            return None
        if self.inner.matches_shape(node):
            return self.inner.check(node, path, checker)
        checker.mismatch(node, path, self.expected)
        return INVALID


class OneOf(Type):
    """The first alternative whose shape fits the node decides.

    Parameters
    ----------
    *alternatives : Type
        Tried in order with :meth:`Type.matches_shape`; the matching one checks
        the node (so errors inside a list alternative point at the list item).
    expected : str
        Phrase for the "expected ..." message when no alternative fits.
    """

    def __init__(self, *alternatives: Type, expected: str) -> None:
        self.alternatives = alternatives
        self._expected = expected

    def __repr__(self) -> str:
        return f"OneOf{self.alternatives!r}"

    @property
    def expected(self) -> str:  # type: ignore[override]
        return self._expected

    def matches_shape(self, node: Node) -> bool:
        return any(a.matches_shape(node) for a in self.alternatives)

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        for alt in self.alternatives:
            if alt.matches_shape(node):
                if isinstance(alt, (List, Map, Tagged)):
                    return alt.check(node, path, checker)
                trial = Checker(checker.filename)
                value = alt.check(node, path, trial)
                if not trial.errors:
                    checker.nodes.update(trial.nodes)
                    return value
        checker.mismatch(node, path, self.expected)
        return INVALID


class List(Type):
    """A YAML sequence whose items all have type ``item``.

    Parameters
    ----------
    item : Type
    min_len : int
        Minimum number of items (``1`` for "non-empty").
    noun : str, optional
        Plural name of the items used in messages (``"layers"``).
    """

    def __init__(self, item: Type, min_len: int = 0, noun: str | None = None) -> None:
        self.item, self.min_len, self.noun = item, min_len, noun

    def __repr__(self) -> str:
        return f"List({self.item!r}, min_len={self.min_len})"

    @property
    def expected(self) -> str:  # type: ignore[override]
        what = self.noun or _plural(self.item.expected)
        return f"a non-empty list of {what}" if self.min_len == 1 else f"a list of {what}"

    def matches_shape(self, node: Node) -> bool:
        return isinstance(node, SequenceNode)

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        if not isinstance(node, SequenceNode):
            checker.mismatch(node, path, self.expected)
            return INVALID
        if len(node.value) < self.min_len:
            checker.mismatch(node, path, self.expected)
            return INVALID
        return [self.item.check(n, (*path, i), checker) for i, n in enumerate(node.value)]


def _plural(expected: str) -> str:
    """``"a positive integer"`` -> ``"positive integers"`` (good enough for messages)."""
    for article in ("an ", "a "):
        if expected.startswith(article):
            expected = expected[len(article):]
            break
    words = expected.split(" ")
    if words[0] == "mapping" or words[-1] in ("integer", "number", "string", "mapping"):
        idx = 0 if words[0] == "mapping" else len(words) - 1
        words[idx] += "s"
    return " ".join(words)


@dataclass
class Field:
    """One key of a :class:`Map`.

    Parameters
    ----------
    type : Type
    default : Any
        Value used when the key is omitted; :data:`REQUIRED` (the default for
        non-mapping types) makes the key mandatory. For a :class:`Map` type
        the default is the nested mapping with all of its own defaults.
        A callable is called to produce a fresh default.
    doc : str
        One-line description, for generated documentation and examples.
    """
    type: Type
    default: Any = REQUIRED
    doc: str = ""

    def make_default(self) -> Any:
        if self.default is REQUIRED and isinstance(self.type, Map):
            return self.type.default_value()
        return self.default() if callable(self.default) else self.default


class Map(Type):
    """A YAML mapping with a fixed set of string keys.

    Unknown keys, duplicate keys, non-string keys and missing required keys
    are reported; omitted optional keys are filled with their defaults.

    Parameters
    ----------
    fields : mapping of str to Field
    expected : str
        Phrase for "expected ..." messages when the node is not a mapping.
    instead : mapping of str to str, optional
        Keys that are not valid here but name a valid one: ``{"units": "filters"}``
        reports ``units`` as "unknown key, did you mean 'filters'?" (and not
        ``filters`` as missing).
    hints : mapping of str to str, optional
        Why a key is not valid here, for keys that belong to another format:
        ``{"act": "a maxpool layer has no activation"}``. With ``instead`` the
        hint follows the suggestion in parentheses.
    """

    def __init__(self, fields: Mapping[str, Field], expected: str = "a mapping",
                 instead: Mapping[str, str] | None = None, hints: Mapping[str, str] | None = None) -> None:
        self.fields = dict(fields)
        self._expected = expected
        self.instead = dict(instead or {})
        self.hints = dict(hints or {})

    def __repr__(self) -> str:
        return f"Map({list(self.fields)!r})"

    @property
    def expected(self) -> str:  # type: ignore[override]
        return self._expected

    def matches_shape(self, node: Node) -> bool:
        return isinstance(node, MappingNode)

    def default_value(self) -> Any:
        """All defaults, or :data:`REQUIRED` if some key has none."""
        out = {}
        for name, f in self.fields.items():
            out[name] = f.make_default()
            if out[name] is REQUIRED:
                return REQUIRED
        return out

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        if not isinstance(node, MappingNode):
            checker.mismatch(node, path, self.expected)
            return INVALID
        pairs = self._merged_pairs(node, path, checker)
        if pairs is None:
            return INVALID
        seen: dict[str, Node] = {}
        suggested: set[str] = set()
        result: dict[str, Any] = {}
        for key_node, value_node, merged in pairs:
            if not _is_scalar(key_node, _STR):
                checker.mismatch(key_node, path, "a key name (a string)", describe_node(key_node))
                continue
            key = key_node.value
            key_path = (*path, key)
            if key in seen:
                if not merged:
                    checker.error(key_node, key_path,
                                  f"duplicate key (first given at line {seen[key].start_mark.line + 1})")
                continue  # keys written out override merged ones
            seen[key] = key_node
            spec = self.fields.get(key)
            if spec is None:
                if key in self.instead:
                    close = [self.instead[key]]
                elif key in self.hints:
                    close = []
                else:
                    close = difflib.get_close_matches(key, self.fields, n=1, cutoff=0.6)
                suggested.update(close)
                checker.error(key_node, key_path, self._unknown_key_message(key, close))
                continue
            result[key] = spec.type.check(value_node, key_path, checker)
        for name, spec in self.fields.items():
            if name in result:
                continue
            value = spec.make_default()
            if value is REQUIRED:
                if name not in suggested:  # a misspelt key already reported it
                    checker.error(node, path, f"missing required key '{name}' ({spec.type.expected})")
                value = INVALID
            result[name] = value
        return {name: result[name] for name in self.fields}

    @staticmethod
    def _merged_pairs(node: MappingNode, path: Path, checker: Checker) -> list | None:
        """``(key, value, merged)`` triples: written keys first, then ``<<`` merged ones.

        Supports YAML merge keys (``<<: *anchor`` or ``<<: [*a, *b]``) the way
        ``yaml.safe_load`` does: written keys win, then earlier merged mappings.
        """
        own = [(k, v, False) for k, v in node.value if k.tag != _MERGE]
        if len(own) == len(node.value):
            return own
        flat = MappingNode(node.tag, list(node.value), node.start_mark, node.end_mark, node.flow_style)
        try:
            _constructor.flatten_mapping(flat)
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark or node.start_mark
            checker.errors.append(SpecIssue(checker.filename, mark.line + 1, mark.column + 1,
                                            format_path(path), f"bad merge key (<<): {exc.problem}"))
            return None
        merged = flat.value[:len(flat.value) - len(own)]
        # flatten_mapping lists earlier merge sources last (later pairs win in
        # safe_load); reverse so that "first seen wins" gives the same result.
        return own + [(k, v, True) for k, v in reversed(merged)]

    def _unknown_key_message(self, key: str, close: list[str]) -> str:
        hint = self.hints.get(key)
        if close:
            message = f"unknown key, did you mean '{close[0]}'?"
            return f"{message} ({hint})" if hint else message
        if hint:
            return hint
        return "unknown key; valid keys are " + ", ".join(f"'{k}'" for k in self.fields)


class Tagged(Type):
    """A mapping checked by one of several :class:`Map` formats, chosen by one key.

    The value of ``key`` (``default`` when omitted) names the variant; every
    variant declares ``key`` itself among its fields, so the checked value is
    that variant's result (with the tag key filled in).

    Parameters
    ----------
    key : str
        The tag key (``"kind"``).
    variants : mapping of str to Map
        Format of each tag value, in the order the values are listed in messages.
    default : str
        Tag of a mapping that does not give ``key``.
    expected : str
        Phrase for "expected ..." messages when the node is not a mapping.

    Examples
    --------
    >>> import yaml
    >>> kind = Field(Enum(["a", "b"]), "a")
    >>> t = Tagged("kind", {"a": Map({"kind": kind, "x": Field(Int())}),
    ...                     "b": Map({"kind": kind, "y": Field(Int(), 0)})}, default="a")
    >>> t.check(yaml.compose("{kind: b}", Loader=yaml.SafeLoader), (), Checker("x.yaml"))
    {'kind': 'b', 'y': 0}
    """

    def __init__(self, key: str, variants: Mapping[str, Map], default: str,
                 expected: str = "a mapping") -> None:
        self.key, self.variants, self.default = key, dict(variants), default
        self._expected = expected
        self.tag_type = Enum(list(self.variants))
        if default not in self.variants:
            raise ValueError(f"default {default!r} is not one of the variants {list(self.variants)}")
        for name, variant in self.variants.items():
            if key not in variant.fields:
                raise ValueError(f"variant {name!r} does not declare the tag key {key!r}")

    def __repr__(self) -> str:
        return f"Tagged({self.key!r}, {self.variants!r})"

    @property
    def expected(self) -> str:  # type: ignore[override]
        return self._expected

    def matches_shape(self, node: Node) -> bool:
        return isinstance(node, MappingNode)

    def _check(self, node: Node, path: Path, checker: Checker) -> Any:
        if not isinstance(node, MappingNode):
            checker.mismatch(node, path, self.expected)
            return INVALID
        # Problems with the pairs themselves (merge keys) are reported by the variant's check.
        pairs = Map._merged_pairs(node, path, Checker(checker.filename)) or []
        tag = self.default
        for key_node, value_node, _ in pairs:
            if _is_scalar(key_node, _STR) and key_node.value == self.key:
                tag = self.tag_type.check(value_node, (*path, self.key), checker)
                break
        if tag is INVALID:
            return INVALID  # the other keys depend on the variant: nothing more to say
        return self.variants[tag]._check(node, path, checker)


def check_document(schema: Type, node: Node | None, checker: Checker) -> Any:
    """Check a whole composed document (``None`` for an empty one)."""
    if node is None:
        checker.errors.append(SpecIssue(checker.filename, 1, 1, "",
                                        f"expected {schema.expected}, got an empty document"))
        return INVALID
    return schema.check(node, (), checker)

