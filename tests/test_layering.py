"""The package graph points one way: arith at the bottom, the command line on top.

Every module of every fewmul package is parsed (not imported), so an import
inside a function counts as much as one at the top of the file, and a
relative import counts as the absolute one it resolves to.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The packages each fewmul package may import besides itself. The folder
#: ``<name>/`` is the package ``fewmul.<name>`` (pyproject's package-dir).
ALLOWED: dict[str, set[str]] = {
    "arith": set(),
    "nn": {"arith"},
    "gateware": {"arith"},
    "ir": {"arith", "nn", "gateware"},
    "compiler": {"arith", "nn", "gateware", "ir"},
    "sim": {"arith", "nn", "gateware", "ir", "compiler"},
    "boards": {"arith", "nn", "gateware", "ir", "compiler", "sim"},
    "interop": {"arith", "nn", "gateware", "ir", "compiler"},
    "sweep": {"arith", "nn", "gateware", "ir", "compiler", "sim", "boards", "examples"},
    "cli": {"arith", "nn", "gateware", "ir", "compiler", "sim", "boards", "interop", "sweep",
            "examples"},
    "examples": set(),
}

#: Imports against the rules that are still being removed, as exact
#: (module, imported package) pairs. A pair that no longer occurs fails the
#: test too, so this list only shrinks; the goal is an empty list.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

#: Fewer modules than this means the walk went wrong, not that all is well.
MIN_MODULES = 60


@dataclass(frozen=True)
class Import:
    module: str     # importing module, e.g. fewmul.compiler.emit
    path: str       # its file relative to the project, e.g. compiler/emit.py
    line: int
    target: str     # the absolute module imported, e.g. fewmul.sim.vectors
    text: str       # the import statement as written

    @property
    def package(self) -> str:
        """The fewmul package imported (fewmul.sim), or '' for a non-fewmul module."""
        parts = self.target.split(".")
        return ".".join(parts[:2]) if parts[0] == "fewmul" and len(parts) > 1 else ""


def _module_name(path: Path, root: Path) -> tuple[str, str]:
    """(module, package for relative imports) of a file under root."""
    parts = ["fewmul", *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _resolve(package: str, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = package.split(".")
    if level - 1 >= len(base):
        raise ValueError(f"relative import beyond the top level (level {level} in {package})")
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(path: Path, root: Path = ROOT) -> list[Import]:
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    module, package = _module_name(path, root)
    rel = path.relative_to(root).as_posix()
    found = []

    def add(node, target):
        text = (ast.get_source_segment(source, node) or "").split("\n")[0]
        found.append(Import(module, rel, node.lineno, target, text))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(package, node.level, node.module)
            if base == "fewmul":          # from fewmul import sim / from .. import sim
                for alias in node.names:
                    add(node, f"fewmul.{alias.name}")
            else:
                add(node, base)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and not node.args[0].value.startswith(".")
              and (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
                   or isinstance(node.func, ast.Name) and node.func.id in ("import_module",
                                                                           "__import__"))):
            add(node, node.args[0].value)     # importlib.import_module("fewmul.x")
    return found


def _modules(root: Path = ROOT) -> list[Path]:
    return sorted(p for name in ALLOWED for p in (root / name).rglob("*.py")
                  if "__pycache__" not in p.parts)


def _check(imports: list[Import], known: set[tuple[str, str]]) -> tuple[list[str], set]:
    """(one message per import against the rules and not in known, the known pairs seen)."""
    bad, seen = [], set()
    for imp in imports:
        own = imp.module.split(".")[1]
        if not imp.package or imp.package == f"fewmul.{own}":
            continue
        other = imp.package.split(".")[1]
        if other not in ALLOWED:
            bad.append(f"{imp.path}:{imp.line}: imports {imp.target}, which is no fewmul "
                       f"package: {imp.text}")
        elif other not in ALLOWED[own]:
            pair = (imp.module, imp.package)
            if pair in known:
                seen.add(pair)
                continue
            may = ", ".join(f"fewmul.{p}" for p in sorted(ALLOWED[own])) or "no other package"
            bad.append(f"{imp.path}:{imp.line}: fewmul.{own} may not import {imp.package} "
                       f"(it may import {may}): {imp.text}")
    return bad, seen


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return [imp for path in _modules() for imp in _imports(path)]


def test_every_package_is_walked():
    modules = _modules()
    assert len(modules) >= MIN_MODULES, f"only {len(modules)} modules found under {ROOT}"
    for name in ALLOWED:
        assert (ROOT / name / "__init__.py").is_file(), f"{name}/__init__.py is missing"


def test_the_rules_cover_every_package_of_pyproject():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {name.split(".")[1] for name in config["package-dir"]}
    assert mapped == set(ALLOWED), "a package without layering rules, or rules for no package"
    for name, folder in config["package-dir"].items():
        assert folder == name.split(".")[1], f"{name} lives in {folder}/, not where the test looks"


def test_imports_are_seen(imports):
    """The walk finds imports of each kind, so an empty violation list means something."""
    edges = {(imp.module, imp.package) for imp in imports if imp.package}
    assert len(edges) >= 50
    assert any(imp.text.startswith("from .") for imp in imports)          # relative
    assert ("fewmul.cli.demo", "fewmul.sim") in edges                    # inside a function


def test_the_check_sees_hidden_imports(tmp_path):
    """Imports inside functions, relative ones and import_module calls are all caught."""
    (tmp_path / "nn" / "sub").mkdir(parents=True)
    (tmp_path / "nn" / "sub" / "__init__.py").write_text("from ... import compiler\n")
    (tmp_path / "nn" / "deep.py").write_text(
        "import numpy\nfrom . import data\nfrom ..arith import dot\n\n"
        "def f():\n    from ..sim.vectors import pack\n\n"
        "def g():\n    import importlib\n    return importlib.import_module('fewmul.boards.flow')\n")
    (tmp_path / "arith").mkdir()
    (tmp_path / "arith" / "__init__.py").write_text("from .dot import x\nfrom ..nn import y\n")
    found = [imp for path in _modules(tmp_path) for imp in _imports(path, tmp_path)]
    bad, seen = _check(found, {("fewmul.nn.deep", "fewmul.sim"), ("fewmul.gateware.x", "fewmul.ir")})
    assert bad == [
        "arith/__init__.py:2: fewmul.arith may not import fewmul.nn (it may import no other "
        "package): from ..nn import y",
        "nn/deep.py:10: fewmul.nn may not import fewmul.boards (it may import fewmul.arith): "
        "importlib.import_module('fewmul.boards.flow')",
        "nn/sub/__init__.py:1: fewmul.nn may not import fewmul.compiler (it may import "
        "fewmul.arith): from ... import compiler",
    ]
    assert seen == {("fewmul.nn.deep", "fewmul.sim")}


def test_no_package_imports_one_above_it(imports):
    bad, seen = _check(imports, KNOWN_VIOLATIONS)
    assert not bad, "imports against the layering:\n" + "\n".join(bad)
    gone = KNOWN_VIOLATIONS - seen
    assert not gone, ("no longer imported, remove from KNOWN_VIOLATIONS in tests/test_layering.py: "
                      + ", ".join(f"{m} -> {p}" for m, p in sorted(gone)))


def test_every_fewmul_import_names_a_module(imports):
    """An import of a module that was moved or removed fails here, even where it never runs
    (under ``TYPE_CHECKING``, in a rarely taken branch)."""
    missing = []
    for imp in imports:
        if not imp.package:
            continue
        folder = ROOT.joinpath(*imp.target.split(".")[1:])   # fewmul.x.y -> ROOT/x/y
        if not (folder.with_suffix(".py").is_file() or (folder / "__init__.py").is_file()):
            missing.append(f"{imp.path}:{imp.line}: {imp.target} is no module: {imp.text}")
    assert not missing, "imports of missing modules:\n" + "\n".join(missing)
