"""The figures: replay's paths with object footprints and errors over time, and training's curves."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from tactile_estimator import geometry as se2  # noqa: E402
from tactile_estimator.metrics import pose_errors  # noqa: E402
from tactile_estimator.objects import Shape  # noqa: E402

TRUTH_FOOTPRINT, SMOOTHED_FOOTPRINT = "0.6", "tab:red"


def _footprints(ax: plt.Axes, shape: Shape, poses: np.ndarray, every: int, **style: object) -> None:
    outline = shape.footprint()
    for pose in poses[::every]:
        pts = se2.transform_point(pose, outline)
        ax.plot(pts[:, 0], pts[:, 1], **style)


def replay_title(title: str, backend: str | None = None, disabled: Sequence[str] = ()) -> str:
    """The bag and object, then the backend and the factor families switched off (the ablation)."""
    if backend is None and not disabled:
        return title
    parts = [f"backend {backend}"] if backend else []
    parts.append(f"factors off: {', '.join(disabled)}" if disabled else "all factors")
    return f"{title}\n{', '.join(parts)}"


def plot_replay(path: Path | IO[bytes], *args: Any, **kwargs: Any) -> None:
    """Write :func:`replay_figure` as a PNG to ``path`` (a file name or a binary buffer)."""
    fig = replay_figure(*args, **kwargs)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def replay_figure(
    title: str,
    shape: Shape,
    truth: tuple[np.ndarray, np.ndarray] | None,
    online: tuple[np.ndarray, np.ndarray],
    smoothed: tuple[np.ndarray, np.ndarray],
    camera: np.ndarray,
    contact: np.ndarray,
    errors: tuple[np.ndarray, np.ndarray] | None,
    *,
    backend: str | None = None,
    disabled: Sequence[str] = (),
) -> plt.Figure:
    """Top, paths (x, y) with footprints; below, the online and smoothed errors over time when truth
    exists (``truth`` holds the true poses at the smoothed trajectory's stamps)."""
    rows = 3 if errors is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(7, 10.5 if rows == 3 else 6),
                             height_ratios=[3, 1, 1][:rows], squeeze=False)
    axes = axes[:, 0]
    ax = axes[0]
    every = max(1, len(smoothed[1]) // 12)
    handles: list[Any] = []
    if truth is not None:
        _footprints(ax, shape, truth[1], every, color=TRUTH_FOOTPRINT, lw=0.8, zorder=1)
        handles.append(Line2D([], [], color=TRUTH_FOOTPRINT, lw=0.8, label="ground-truth footprints"))
        handles += ax.plot(truth[1][:, 0], truth[1][:, 1], color="k", lw=1.5, label="ground truth", zorder=2)
    _footprints(ax, shape, smoothed[1], every, color=SMOOTHED_FOOTPRINT, lw=0.6, alpha=0.7, zorder=1)
    handles.append(Line2D([], [], color=SMOOTHED_FOOTPRINT, lw=0.6, alpha=0.7, label="smoothed footprints"))
    if contact.any():
        # a wide pale band under the path, so that the path stays visible where the sensor touches
        pts = np.where(contact[:, None], online[1][:, :2], np.nan)
        handles += ax.plot(pts[:, 0], pts[:, 1], color="tab:orange", lw=6, alpha=0.35, solid_capstyle="round",
                           label="in contact", zorder=2)
    handles += ax.plot(online[1][:, 0], online[1][:, 1], color="tab:blue", lw=1.0, label="online estimate",
                       zorder=4)
    handles += ax.plot(smoothed[1][:, 0], smoothed[1][:, 1], color="tab:red", lw=1.2, label="smoothed (final)",
                       zorder=5)
    if len(camera):
        handles.append(ax.scatter(camera[:, 0], camera[:, 1], s=10, color="tab:green", label="camera detections",
                                  zorder=6))
    ax.set_aspect("equal", adjustable="datalim")
    for axis in (ax.xaxis, ax.yaxis):  # a disc's narrow extent otherwise crowds its tick labels together
        axis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(replay_title(title, backend, disabled), fontsize=10)
    ax.legend(handles=handles, fontsize=7, loc="best")
    if errors is not None:
        t = (online[0] - online[0][0]) * 1e-9
        ax_t, ax_r = axes[1], axes[2]
        ax_t.plot(t, errors[0] * 1e3, color="tab:blue", lw=0.9, label="online")
        ax_r.plot(t, np.degrees(errors[1]), color="tab:blue", lw=0.9, label="online")
        if truth is not None and len(smoothed[0]) == len(truth[1]) and len(smoothed[0]):
            smoothed_t, smoothed_r = pose_errors(smoothed[1], truth[1])
            ts = (smoothed[0] - online[0][0]) * 1e-9
            ax_t.plot(ts, smoothed_t * 1e3, color="tab:red", lw=1.1, label="smoothed (final)")
            ax_r.plot(ts, np.degrees(smoothed_r), color="tab:red", lw=1.1, label="smoothed (final)")
        ax_t.set_ylabel("translation error (mm)")
        ax_r.set_ylabel("rotation error (deg)")
        ax_r.set_xlabel("time (s)")
        for a in (ax_t, ax_r):
            a.grid(alpha=0.3)
            a.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------ training

SCORE_LABEL = {
    "blackbox": "validation score (RMSE / start, summed)",
}


def _sigma_columns(history: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({k for row in history for k in row if k.startswith("sigma_")})


def plot_learning_curves(history: Sequence[dict[str, Any]], path: Path | IO[bytes], method: str,
                         kept_epoch: int | None = None) -> None:
    """Write :func:`learning_curves_figure` as a PNG to ``path``."""
    fig = learning_curves_figure(history, method, kept_epoch)
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)


def learning_curves_figure(history: Sequence[dict[str, Any]], method: str, kept_epoch: int | None = None) -> plt.Figure:
    """``learning_curves.png``: validation RMSE (translation, rotation), the training loss, or for
    blackbox the score it minimises, and the learned σ of each family, each against the epoch (blackbox:
    the generation); ``kept_epoch``, the epoch whose model was written, is marked in every panel."""
    epochs = [row["epoch"] for row in history]
    sigmas = _sigma_columns(history)
    panels = 4 if sigmas else 3
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 3.4), squeeze=False)
    axes = axes[0]

    def column(name: str, scale: float = 1.0) -> list[float]:
        return [float(row.get(name, math.nan)) * scale for row in history]

    axes[0].plot(epochs, column("val_rmse_translation_m", 1e3), "o-")
    axes[0].set_ylabel("validation RMSE translation (mm)")
    axes[1].plot(epochs, column("val_rmse_rotation_rad", 180.0 / math.pi), "o-")
    axes[1].set_ylabel("validation RMSE rotation (deg)")
    loss = column("loss")
    if method != "blackbox" and history and history[0].get("epoch") == 0:
        loss[0] = math.nan  # the start has a validation but no training loss
    axes[2].plot(epochs, loss, "o-")
    axes[2].set_ylabel(SCORE_LABEL.get(method, "training loss"))
    if sigmas:
        for name in sigmas:
            axes[3].plot(epochs, column(name), "o-", ms=3, label=name.removeprefix("sigma_"))
        axes[3].set_yscale("log")
        axes[3].set_ylabel("learned σ")
        axes[3].legend(fontsize=6, loc="best")
    for ax in axes:
        ax.set_xlabel("generation" if method == "blackbox" else "epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if kept_epoch is not None:
            ax.axvline(kept_epoch, color="tab:green", ls="--", lw=1.0, label=f"kept: {kept_epoch}")
    if kept_epoch is not None:
        axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"training ({method})" + (f", model written: epoch {kept_epoch}" if kept_epoch is not None else ""))
    fig.tight_layout()
    return fig


def learning_curves_png(history: Sequence[dict[str, Any]], method: str, kept_epoch: int | None = None) -> bytes:
    """:func:`plot_learning_curves` as PNG bytes, for an atomic write."""
    buffer = io.BytesIO()
    plot_learning_curves(history, buffer, method, kept_epoch)
    return buffer.getvalue()
