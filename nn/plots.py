"""Training curves as a PNG."""

from __future__ import annotations

import io
from pathlib import Path

from .artifacts import write_atomic

__all__ = ["plot_curves"]


def plot_curves(history: list, path: Path, title: str = "") -> None:
    """Loss and deployed/full-resolution accuracies per epoch (``history`` of EpochMetrics)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [m.epoch + 1 for m in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(ep, [m.loss for m in history], color="tab:red")
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss")
    for key, label, style in [("train_acc", "train (deployed)", "-"), ("val_acc", "val (deployed)", "-"),
                              ("test_acc", "test (deployed)", "-"),
                              ("test_acc_float", "test (float weights)", "--")]:
        ax_acc.plot(ep, [100 * getattr(m, key) for m in history], style, label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy %", title="accuracy")
    ax_acc.legend(loc="lower right")
    ax_acc.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=100)
    write_atomic(path, image.getvalue())     # never half an image
    plt.close(fig)
