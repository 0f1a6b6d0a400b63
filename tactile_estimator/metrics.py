"""Error figures against ground truth, and latency statistics."""

from __future__ import annotations

from typing import Any

import numpy as np

from tactile_estimator import geometry as se2


def interpolate_poses(stamps: np.ndarray, poses: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poses at the query stamps by geodesic interpolation; the mask says which queries were covered.

    A query is covered when it lies within the span of ``stamps``. With a single pose that span is
    its one instant: the pose is returned for every query, and only a query at exactly its stamp is
    covered (one sample says nothing about where the object was at any other time). With no pose,
    every returned pose is NaN and nothing is covered.
    """
    stamps, poses, query = np.asarray(stamps), np.asarray(poses, dtype=float).reshape(-1, 3), np.asarray(query)
    if len(stamps) == 0:
        return np.full((len(query), 3), np.nan), np.zeros(len(query), bool)
    order = np.argsort(stamps, kind="stable")
    stamps, poses = stamps[order], poses[order]
    inside = (query >= stamps[0]) & (query <= stamps[-1])
    if len(stamps) == 1:
        return np.repeat(poses, len(query), axis=0), inside
    idx = np.clip(np.searchsorted(stamps, query, side="right"), 1, len(stamps) - 1)
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


def error_figures(truth: tuple[np.ndarray, np.ndarray], online: tuple[np.ndarray, np.ndarray],
                  smoothed: tuple[np.ndarray, np.ndarray], topic: str = "the ground truth") -> dict[str, Any]:
    """A replay's error figures against ground truth, or the reason there are none.

    Each argument is (stamps (N,), poses (N, 3)). The ground truth is interpolated at the online and
    the smoothed estimates' stamps that it covers (interpolate_poses), and the figures are the RMSE
    of the online estimates (``rmse_*``), of the final smoothed trajectory (``final_rmse_*``) and
    the smoothed trajectory's last covered translation error. ``ground_truth_poses`` is always there.

    Ground truth of fewer than two poses spans no time to interpolate over, and ground truth whose
    span misses every estimate covers nothing: then the figures are absent (never zero or a made-up
    number; one motion-capture sample is not an RMSE over a run), and ``no_error_figures`` says why.
    """
    t_stamps, t_poses = np.asarray(truth[0]), np.asarray(truth[1], dtype=float).reshape(-1, 3)
    figures: dict[str, Any] = {"ground_truth_poses": int(len(t_stamps))}
    if len(t_stamps) == 0:
        figures["no_error_figures"] = f"no usable pose on {topic}"
        return figures
    if len(t_stamps) < 2:
        figures["no_error_figures"] = (f"{topic} has 1 usable pose; the errors need at least 2 to interpolate "
                                       "the ground truth at the estimates' stamps")
        return figures
    at, inside = interpolate_poses(t_stamps, t_poses, online[0])
    at_s, inside_s = interpolate_poses(t_stamps, t_poses, smoothed[0])
    if not inside.any() and not inside_s.any():
        span = (int(t_stamps.min()), int(t_stamps.max()))
        figures["no_error_figures"] = (f"{topic}'s {len(t_stamps)} poses, from {span[0]} to {span[1]} ns, "
                                       "cover no estimate's stamp")
        return figures
    trans, rot = pose_errors(np.asarray(online[1], dtype=float).reshape(-1, 3)[inside], at[inside])
    f_trans, f_rot = pose_errors(np.asarray(smoothed[1], dtype=float).reshape(-1, 3)[inside_s], at_s[inside_s])
    figures.update(
        rmse_translation_m=rmse(trans),
        rmse_rotation_rad=rmse(rot),
        final_rmse_translation_m=rmse(f_trans),
        final_rmse_rotation_rad=rmse(f_rot),
        final_translation_error_m=float(f_trans[-1]) if len(f_trans) else float("nan"),
    )
    return figures


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
