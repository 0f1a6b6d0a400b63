"""Error figures against ground truth, and latency statistics."""

from __future__ import annotations

import numpy as np

from tactile_estimator import geometry as se2


def interpolate_poses(stamps: np.ndarray, poses: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poses at the query stamps by geodesic interpolation; the mask says which queries were covered."""
    stamps, poses, query = np.asarray(stamps), np.asarray(poses, dtype=float), np.asarray(query)
    order = np.argsort(stamps, kind="stable")
    stamps, poses = stamps[order], poses[order]
    inside = (query >= stamps[0]) & (query <= stamps[-1]) if len(stamps) else np.zeros(len(query), bool)
    idx = np.clip(np.searchsorted(stamps, query, side="right"), 1, max(len(stamps) - 1, 1))
    t0, t1 = stamps[idx - 1], stamps[idx]
    fraction = np.where(t1 > t0, (query - t0) / np.where(t1 > t0, t1 - t0, 1), 0.0)
    return se2.interpolate(poses[idx - 1], poses[idx], np.clip(fraction, 0.0, 1.0)), inside


def pose_errors(estimated: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translation error (m) and absolute rotation error (rad) per pose."""
    estimated, truth = np.asarray(estimated, dtype=float), np.asarray(truth, dtype=float)
    translation = np.linalg.norm(estimated[:, :2] - truth[:, :2], axis=1)
    rotation = np.abs(se2.wrap_angle(estimated[:, 2] - truth[:, 2]))
    return translation, rotation


def rmse(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.sqrt(np.mean(values**2))) if values.size else float("nan")


def axis_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column, the correlation of paired rows of ``a`` and ``b`` (N, d) -> (d,)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).mean(0) / np.sqrt((a**2).mean(0) * (b**2).mean(0) + 1e-300)


def latency_summary(milliseconds: np.ndarray) -> dict[str, float]:
    ms = np.asarray(milliseconds, dtype=float)
    if ms.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max())}
