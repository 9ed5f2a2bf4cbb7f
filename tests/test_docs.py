"""The documentation site builds with warnings as errors.

`make docs` runs Sphinx with ``-W``: a docstring that Sphinx cannot render (a
bad numpydoc section, broken reST, a module that fails to import) fails the
build, and so this test. The pages (and the README, which the index page includes)
are copied to a temporary folder first, so the API pages that docs/conf.py
writes never land in the working tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_docs_build_without_warnings(tmp_path):
    src = tmp_path / "docs"  # the name the README's links (docs/...) expect
    out = tmp_path / "html"
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns("api", "_build"))
    shutil.copy(ROOT / "README.md", tmp_path)  # the index page includes ../README.md
    # One process (-j 1), no intersphinx, so no network: about half a minute.
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-j", "1", "-q",
         "-b", "html", str(src), str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"sphinx-build failed:\n{proc.stderr}\n{proc.stdout}"

    for page in ["index", "architecture", "onchip-training", "boards", "history", "api/index"]:
        assert (out / f"{page}.html").is_file(), page
    # The API reference walks the packages by itself: packages, modules of
    # subpackages, the command line.
    api = out / "api"
    for module in ["fewmul.nn", "fewmul.compiler.spec", "fewmul.gateware.popcount",
                   "fewmul.gateware.training.lfsr", "fewmul.cli"]:
        assert (api / f"{module}.html").is_file(), module
    # Testbenches (cocotb, run inside the simulator) are not API.
    assert not (api / "fewmul.sim.testbench.html").exists()
    # The custom numpydoc section of Amaranth components renders as a field list.
    popcount = (api / "fewmul.gateware.popcount.html").read_text(encoding="utf-8")
    assert "Members" in popcount
