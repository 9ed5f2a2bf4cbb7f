"""Per-epoch training checkpoints, written atomically (temporary file + rename).

A checkpoint holds everything the next epoch depends on -- hidden weights,
batch-norm statistics, optimizer moments and step count, the random
generator's state, the best-validation snapshot and the metrics so far -- so a
resumed run is bit for bit the run that was interrupted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import ArtifactError, check_format, save_npz

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

#: Version of the checkpoint's layout, in its ``meta``; a checkpoint without one is of format 1.
CHECKPOINT_FORMAT = 2


@dataclass
class Checkpoint:
    """State after ``epoch`` (0-based) has completed."""
    epoch: int
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    rng_state: dict
    best_model: dict[str, np.ndarray] | None
    best_val: float
    best_epoch: int
    history: list[dict]


def save_checkpoint(path: Path, ck: Checkpoint) -> None:
    """Write ``ck`` to ``path`` through ``path.tmp.npz`` and a rename (never half a file)."""
    path = Path(path)
    arrays = {f"model/{k}": v for k, v in ck.model.items()}
    arrays.update({f"opt/{k}": v for k, v in ck.optimizer.items()})
    if ck.best_model is not None:
        arrays.update({f"best/{k}": v for k, v in ck.best_model.items()})
    meta = {"format": CHECKPOINT_FORMAT, "epoch": ck.epoch, "rng_state": ck.rng_state, "best_val": ck.best_val,
            "best_epoch": ck.best_epoch, "history": ck.history}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    save_npz(path, arrays, compressed=False)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    ValueError
        When the file is not a readable checkpoint (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here (nothing to resume)")
    try:
        with np.load(path) as f:
            data = {k: f[k] for k in f.files}
        meta = json.loads(bytes(data.pop("meta")).decode())
    except Exception as exc:  # zip, pickle or JSON problems all mean the same to the user
        raise ArtifactError(f"{path}: not a readable checkpoint, truncated or corrupt "
                            f"({type(exc).__name__}: {exc})") from None
    check_format(path, meta.get("format"), CHECKPOINT_FORMAT,
                 "it was written by a newer fewmul; train again without --resume")

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}

    best = group("best/")
    try:
        return Checkpoint(epoch=int(meta["epoch"]), model=group("model/"),
                          optimizer=group("opt/"), rng_state=meta["rng_state"],
                          best_model=best or None, best_val=float(meta["best_val"]),
                          best_epoch=int(meta["best_epoch"]),
                          history=meta["history"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a checkpoint of this fewmul (no {exc})") from None
