"""A sweep's results: ``results.csv`` (one row per point) and the plots.

Columns: ``id``, ``status`` (done / failed / missing), every axis (as written in the sweep
file), then every figure any point has (:data:`FIGURES` first, in that order), then for a failed
point the ``error_stage``, ``error_kind`` and ``error`` message. Plots (PNG, matplotlib's Agg
backend):

* ``pareto.png``: test accuracy against LUTs, one colour per board, the Pareto front of each
  (the points no other point beats on both) joined by a line;
* ``speed.png``: inferences/s against LUTs, per board;
* ``epochs.png``: test accuracy after every training epoch, one line per point.

LUTs are the placed design's when the point was built, else the compiler's estimate
(``est_lut``, the board named "estimate"); inferences/s are at Fmax when built, else at
:data:`NOMINAL_HZ`.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from fewmul.nn.artifacts import ArtifactError, read_json, write_atomic

from .points import Point

__all__ = ["collect", "write_csv", "write_results", "plot_results", "pareto_front", "FIGURES", "NOMINAL_HZ"]

#: Figures in the order the CSV shows them (any other comes after).
FIGURES = ("name", "test_acc", "test_acc_float", "test_acc_integer", "best_epoch", "epochs",
           "pe", "cycles_per_inference", "latency_cycles", "est_lut", "est_ff", "est_bram",
           "yosys_cells", "multipliers", "sim_images", "sim_mismatches",
           "sim_cycles_per_inference", "sim_test_acc", "lut", "ff", "bram", "dsp",
           "lut_percent", "fmax_mhz", "clock_mhz", "inferences_per_s", "train_s", "compile_s",
           "sim_s", "build_s", "seconds")
#: Clock at which a point without a board build is rated (inferences/s in the plots).
NOMINAL_HZ = 100e6


def _record(folder: Path, name: str, fingerprint: str) -> dict | None:
    try:
        record = read_json(folder / name)
    except (FileNotFoundError, ArtifactError):
        return None
    return record if isinstance(record, dict) and record.get("inputs") == fingerprint else None


def collect(points: list[Point], out: str | Path) -> list[dict[str, Any]]:
    """One row per point: id, status, axis values, figures (and the error of a failed one).

    The per-epoch accuracies (``curve``) stay in the row for :func:`plot_results`; the CSV
    leaves them out.
    """
    rows = []
    for p in points:
        folder = Path(out) / "points" / p.id
        fingerprint = p.fingerprint()
        row: dict[str, Any] = {"id": p.id, "status": "missing", **p.values}
        done = _record(folder, "result.json", fingerprint)
        failed = None if done else _record(folder, "error.json", fingerprint)
        if done:
            row.update(status="done", **done.get("figures", {}), seconds=done.get("seconds"))
        elif failed:
            row.update(status="failed", **failed.get("figures", {}),
                       seconds=failed.get("seconds"), error_stage=failed.get("stage"),
                       error_kind=failed.get("kind"), error=failed.get("message"))
        rows.append(row)
    return rows


def _columns(rows: list[dict], axes: list[str]) -> list[str]:
    seen = {k for r in rows for k in r} - {"curve"}
    head = ["id", "status", *axes]
    figures = [k for k in FIGURES if k in seen and k not in head]
    errors = [k for k in ("error_stage", "error_kind", "error") if k in seen]
    rest = sorted(seen - set(head) - set(figures) - set(errors))
    return head + figures + rest + errors


def _cell(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value.splitlines()[0] if value else value
    return value


def write_csv(rows: list[dict], axes: list[str], path: str | Path) -> Path:
    """Write ``rows`` to ``path`` (atomically): the columns of the module text."""
    columns = _columns(rows, axes)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    write_atomic(Path(path), buffer.getvalue())
    return Path(path)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points of ``(cost, value)`` no other point beats (no higher cost for no lower
    value, one of them strictly), by increasing cost.

    Examples
    --------
    >>> pareto_front([(1, 0.5), (2, 0.4), (3, 0.9), (3, 0.8)])
    [(1, 0.5), (3, 0.9)]
    """
    front, best = [], float("-inf")
    for cost, value in sorted(points, key=lambda p: (p[0], -p[1])):
        if value > best:
            front.append((cost, value))
            best = value
    return front


def _area(row: dict) -> tuple[float | None, str]:
    if row.get("lut") not in (None, ""):
        return float(row["lut"]), str(row.get("board") or "built")
    if row.get("est_lut") not in (None, ""):
        return float(row["est_lut"]), "estimate"
    return None, ""


def _rate(row: dict) -> float | None:
    if row.get("inferences_per_s"):
        return float(row["inferences_per_s"])
    cycles = row.get("cycles_per_inference")
    return NOMINAL_HZ / float(cycles) if cycles else None


def plot_results(rows: list[dict], out: str | Path, title: str = "sweep") -> list[Path]:
    """Write ``pareto.png``, ``speed.png`` and ``epochs.png`` into ``out``; return the paths
    written (a plot with nothing to show is not written)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    written = []
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("status") != "done":
            continue
        lut, board = _area(row)
        if lut is not None:
            groups.setdefault(board, []).append({**row, "_lut": lut})

    def save(fig, name: str) -> None:
        fig.tight_layout()
        path = out / name
        tmp = path.with_name(path.stem + ".tmp.png")
        fig.savefig(tmp, dpi=110)
        tmp.replace(path)
        plt.close(fig)
        written.append(path)

    acc = {b: [(r["_lut"], 100 * float(r["test_acc"])) for r in rs
               if r.get("test_acc") not in (None, "")] for b, rs in groups.items()}
    if any(acc.values()):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, (board, pts) in enumerate(sorted(acc.items())):
            if not pts:
                continue
            colour = f"C{i}"
            ax.scatter(*zip(*pts), color=colour, alpha=0.45, s=22)
            front = pareto_front(pts)
            ax.plot(*zip(*front), color=colour, marker="o", drawstyle="steps-post",
                    label=f"{board}: Pareto front")
        lut_kind = "LUTs (placed, or estimated)" if "estimate" in acc else "LUTs (placed)"
        ax.set(xlabel=lut_kind, ylabel="test accuracy %", title=f"{title}: accuracy vs area")
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "pareto.png")

    rate = {b: [(r["_lut"], _rate(r)) for r in rs if _rate(r)] for b, rs in groups.items()}
    if any(rate.values()):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, (board, pts) in enumerate(sorted(rate.items())):
            if pts:
                what = (f"{board} (at {NOMINAL_HZ / 1e6:g} MHz)" if board == "estimate"
                        else f"{board} (at Fmax)")
                ax.scatter(*zip(*pts), color=f"C{i}", label=what, s=22)
        ax.set(xlabel="LUTs", ylabel="inferences/s", title=f"{title}: speed vs area")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "speed.png")

    curves = [(r["id"], r["curve"]) for r in rows
              if r.get("status") == "done" and r.get("curve")]
    if curves:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for pid, curve in curves:
            ax.plot(range(1, len(curve) + 1), [100 * a for a in curve], marker=".",
                    label=pid if len(curves) <= 12 else None, alpha=0.8)
        ax.set(xlabel="epoch", ylabel="test accuracy % (deployed weights)",
               title=f"{title}: accuracy per epoch")
        ax.grid(True, alpha=0.3)
        if len(curves) <= 12:
            ax.legend(fontsize=6)
        save(fig, "epochs.png")
    return written


def write_results(points: list[Point], axes: list[str], out: str | Path,
                  title: str = "sweep") -> tuple[Path, list[Path], list[dict]]:
    """Collect the points of ``out`` and write ``out/results.csv`` and the plots.

    Returns
    -------
    (Path, list of Path, list of dict)
        The CSV, the plots written and the rows.
    """
    rows = collect(points, out)
    csv_path = write_csv(rows, axes, Path(out) / "results.csv")
    return csv_path, plot_results(rows, out, title), rows
