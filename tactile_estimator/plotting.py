"""The replay figure: paths with object footprints, and errors over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tactile_estimator import geometry as se2  # noqa: E402
from tactile_estimator.objects import Shape  # noqa: E402


def _footprints(ax: plt.Axes, shape: Shape, poses: np.ndarray, every: int, **style: object) -> None:
    outline = shape.footprint()
    for pose in poses[::every]:
        pts = se2.transform_point(pose, outline)
        ax.plot(pts[:, 0], pts[:, 1], **style)


def plot_replay(
    path: Path,
    title: str,
    shape: Shape,
    truth: tuple[np.ndarray, np.ndarray] | None,
    online: tuple[np.ndarray, np.ndarray],
    smoothed: tuple[np.ndarray, np.ndarray],
    camera: np.ndarray,
    contact: np.ndarray,
    errors: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Write a PNG: top, paths (x, y) with footprints; bottom, errors over time when truth exists."""
    rows = 2 if errors is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(7, 9 if rows == 2 else 6), height_ratios=[3, 1][:rows])
    axes = np.atleast_1d(axes)
    ax = axes[0]
    every = max(1, len(smoothed[1]) // 12)
    if truth is not None:
        _footprints(ax, shape, truth[1], every, color="0.6", lw=0.8)
        ax.plot(truth[1][:, 0], truth[1][:, 1], color="k", lw=1.5, label="ground truth")
    _footprints(ax, shape, smoothed[1], every, color="tab:red", lw=0.6, alpha=0.7)
    ax.plot(online[1][:, 0], online[1][:, 1], color="tab:blue", lw=1.0, alpha=0.8, label="online estimate")
    ax.plot(smoothed[1][:, 0], smoothed[1][:, 1], color="tab:red", lw=1.2, label="smoothed (final)")
    if len(camera):
        ax.scatter(camera[:, 0], camera[:, 1], s=8, color="tab:green", label="camera detections", zorder=3)
    if contact.any():
        pts = online[1][contact]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, color="tab:orange", label="in contact", zorder=2)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    if errors is not None:
        t = (online[0] - online[0][0]) * 1e-9
        ax2 = axes[1]
        ax2.plot(t, errors[0] * 1e3, color="tab:blue", label="translation (mm)")
        ax2.set_xlabel("time (s)")
        ax2.set_ylabel("online error (mm)")
        ax3 = ax2.twinx()
        ax3.plot(t, np.degrees(errors[1]), color="tab:purple", lw=0.8, label="rotation (deg)")
        ax3.set_ylabel("rotation error (deg)")
        ax2.legend(loc="upper left", fontsize=8)
        ax3.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
