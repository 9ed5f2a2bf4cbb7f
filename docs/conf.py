"""Sphinx configuration of the fewmul documentation.

Build with ``make docs`` (into build/docs, warnings as errors). The API
reference is generated on every build from the docstrings (numpydoc style) of
the installed ``fewmul`` packages: the pages under api/ are written by
:func:`write_api_pages` at the start of each build, so new and moved modules
appear without editing anything here.
"""

from __future__ import annotations

import importlib.util
import pkgutil
from pathlib import Path

project = "fewmul"
author = "the fewmul developers"
copyright = "the fewmul developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# MyST: markdown pages; heading anchors for links between them.
myst_heading_anchors = 3

# API reference: one page per module of these packages, found by walking them
# on every build (see write_api_pages), so new and moved modules need no edit.
API_PACKAGES = ["fewmul.arith", "fewmul.nn", "fewmul.gateware", "fewmul.ir", "fewmul.compiler",
                "fewmul.interop",
                "fewmul.sim", "fewmul.boards", "fewmul.sweep", "fewmul.cli"]
# Testbenches run inside the simulator: not API, and never imported here.
API_EXCLUDED = {"fewmul.sim.testbench", "fewmul.sim.train_testbench", "fewmul.sim.cocotb_common",
                "fewmul.boards.uart_testbench"}
autodoc_default_options = {"members": True, "ignore-module-all": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# Should a module import cocotb after all, the build still needs no simulator.
autodoc_mock_imports = ["cocotb"]

# Docstrings are numpydoc. "Members" lists the stream ports of an Amaranth
# component, rendered like parameters; "Types", "Results" and "Errors"
# (module docstrings) are headings.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_custom_sections = [
    ("Members", "params_style"),
    # Attributes as a field list like Parameters: a line may name several
    # attributes ("a, b : int"), which the :ivar: form would misread.
    ("Attributes", "params_style"),
    "Types",
    "Results",
    "Errors",
]

html_theme = "alabaster"
html_title = "fewmul"


# Docstrings refer to their neighbours relative to their own package
# (:class:`~.argmax.Argmax` inside fewmul.gateware). Sphinx resolves a leading
# dot by suffix over every package, so a name that another package also has
# (fewmul.ir.ops.argmax.Argmax) would be ambiguous; the nearest object in the
# package tree is the one meant. Anything still ambiguous warns as before.
from sphinx.domains.python import PythonDomain  # noqa: E402


def _shared_depth(a: str, b: str) -> int:
    depth = 0
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        depth += 1
    return depth


class NearestPythonDomain(PythonDomain):
    """The Python domain, resolving ``.name`` references to the nearest match."""

    def find_obj(self, env, modname, classname, name, type, searchmode=0):
        matches = super().find_obj(env, modname, classname, name, type, searchmode)
        if searchmode == 1 and len(matches) > 1 and modname:
            best = max(_shared_depth(m[0], modname) for m in matches)
            nearest = [m for m in matches if _shared_depth(m[0], modname) == best]
            if len(nearest) == 1:
                return nearest
        return matches


def _api_page(module: str, submodules: list[str]) -> str:
    lines = [module, "=" * len(module), "", f".. automodule:: {module}", ""]
    if submodules:
        lines += [".. rubric:: Modules", "", ".. toctree::", "   :maxdepth: 1", ""]
        lines += [f"   {name}" for name in submodules] + [""]
    return "\n".join(lines)


def _walk(module: str, pages: dict[str, str]) -> None:
    """Add the page of ``module`` and of every public module below it."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise ImportError(f"API package {module} not found")
    submodules = []
    for info in pkgutil.iter_modules(spec.submodule_search_locations or []):
        name = f"{module}.{info.name}"
        # _private modules and __main__ (it would run the command line) are left out.
        if info.name.startswith("_") or name in API_EXCLUDED:
            continue
        submodules.append(name)
        if info.ispkg:
            _walk(name, pages)
        else:
            pages[name] = _api_page(name, [])
    pages[module] = _api_page(module, submodules)


def write_api_pages(app) -> None:
    """Write api/<module>.rst for every module and api/index.rst; remove stale pages.

    A page is rewritten only when its text changes, so incremental builds stay
    incremental. Modules are walked with pkgutil, not autosummary: autosummary
    takes ``fewmul.gateware.popcount`` for the function of that name that the
    package re-exports, not for the module.
    """
    pages: dict[str, str] = {}
    for package in API_PACKAGES:
        _walk(package, pages)
    pages["index"] = "\n".join([
        "API reference", "=============", "",
        "Generated from the docstrings (numpydoc style) on every build: one page per",
        "module. A package's page documents what its ``__init__`` defines and lists",
        "its modules; the testbenches that run inside the simulator are left out.", "",
        ".. toctree::", "   :maxdepth: 2", "",
        *(f"   {package}" for package in API_PACKAGES), ""])
    folder = Path(app.srcdir) / "api"
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("*.rst"):
        if stale.stem not in pages:
            stale.unlink()
    for name, text in pages.items():
        path = folder / f"{name}.rst"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def setup(app):
    app.add_domain(NearestPythonDomain, override=True)
    app.connect("builder-inited", write_api_pages)
