"""Design-space sweeps: many variants of one network spec, run as independent points.

A sweep file (:mod:`fewmul.sweep.spec`) names a base network spec, the axes to vary and the
stages to run per point. :mod:`fewmul.sweep.points` runs one point into its own folder (train,
compile, simulate, build; a failure is recorded, not raised); :mod:`fewmul.sweep.run` runs
the points that are missing as tasks on Dask distributed (a local cluster or an existing
one), or serially in one process; :mod:`fewmul.sweep.results` gathers the points into
``results.csv`` and plots.

This package sits above ``compiler``, ``sim`` and ``boards`` (it drives them) and below
``cli``.
"""

from .points import Point, PointOutcome, Stages, run_point
from .results import collect, plot_results, write_csv, write_results
from .run import SweepRun, run_points
from .spec import SweepSpec, load_sweep, parse_sweep

__all__ = ["Point", "PointOutcome", "Stages", "run_point", "collect", "plot_results",
           "write_csv", "write_results", "SweepRun", "run_points", "SweepSpec", "load_sweep", "parse_sweep"]
