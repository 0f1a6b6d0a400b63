"""Offline replay: a bag's messages in log-time order through the live path, then figures.

For each bag: estimates.csv, metrics.json (counts and latency always; the error figures where the
bag's ground truth covers the estimates, else ``no_error_figures`` with the reason, see
metrics.error_figures), a PNG of the paths, and on request a copy of the bag with the estimates
added as topics. The output directory is checked before the bag is processed; every file is written
atomically (io.atomic), so a failure (a full disk) leaves an OutputError naming the file and no
half-written file, and an earlier replay's file stays as it was.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tactile_estimator import metrics
from tactile_estimator.config import EstimatorConfig
from tactile_estimator.estimator import Estimator
from tactile_estimator.factors import ObjectModel
from tactile_estimator.graph import FactorGraph
from tactile_estimator.io import atomic, bags, messages
from tactile_estimator.io.bags import object_shape
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import Shape
from tactile_estimator.playback import bag_config, feed_bag, required_topics
from tactile_estimator.plotting import plot_replay
from tactile_estimator.records import Estimate
from tactile_estimator.router import StreamRouter

log = logging.getLogger(__name__)

OUTPUT_NAMESPACE = "/tactile_estimator"
ESTIMATES, METRICS, PLOT = "estimates.csv", "metrics.json", "paths.png"
OUTPUT_FILES = (ESTIMATES, METRICS, PLOT)


@dataclass
class ReplayResult:
    bag: Path
    out_dir: Path
    shape: Shape
    estimates: list[Estimate]
    smoothed_stamps: np.ndarray
    smoothed_poses: np.ndarray
    metrics: dict[str, Any]
    plot: Path
    written_bag: Path | None = None
    truth: tuple[np.ndarray, np.ndarray] | None = None
    graph: FactorGraph | None = None
    warnings: list[str] = field(default_factory=list)


def replay_bag(
    bag: str | os.PathLike[str],
    config: EstimatorConfig,
    model: TactileModel,
    out_dir: str | os.PathLike[str],
    write_bag: bool = False,
) -> ReplayResult:
    bag = bags.resolve_bag(bag)
    info, config = bag_config(bag, config)
    bags.require_topics(bag, required_topics(config))
    shape = object_shape(bag, config)
    out = _output_directory(out_dir)
    estimator = Estimator(config, model, ObjectModel.for_shape(shape))
    truth_topic = config.topics.ground_truth
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        log.warning(text)

    played = feed_bag(bag, StreamRouter(estimator), [truth_topic], warn=warn, label=f"replay {bag.name}", info=info)
    estimates = played.estimates
    stamps, smoothed = estimator.trajectory(converge=config.final_iterations)

    truth_arrays = played.poses(truth_topic)
    online = (np.array([e.stamp_ns for e in estimates]), np.array([e.pose for e in estimates]).reshape(-1, 3))
    figures = _figures(estimator, estimates, online, stamps, smoothed, truth_arrays, truth_topic)
    errors, truth_plot = None, None
    if truth_arrays is not None and "no_error_figures" not in figures and len(estimates):
        errors = metrics.pose_errors(online[1], metrics.interpolate_poses(*truth_arrays, online[0])[0])
        truth_plot = (stamps, metrics.interpolate_poses(*truth_arrays, stamps)[0])
    plot = io.BytesIO()
    plot_replay(
        plot, f"{bag.name} ({shape.kind})", shape, truth_plot, online, (stamps, smoothed),
        np.array(estimator.camera_poses()).reshape(-1, 3),
        np.array([e.in_contact for e in estimates], dtype=bool), errors,
        backend=config.backend, disabled=config.disabled_factors,
    )
    plot_path = out / PLOT
    atomic.atomic_write_text(out / ESTIMATES, _csv_text(estimates))
    atomic.atomic_write_text(out / METRICS, json.dumps(figures, indent=2) + "\n")
    atomic.atomic_write_bytes(plot_path, plot.getvalue())
    written = None
    if write_bag:
        written = out / f"{bag.name}_with_estimates"
        try:
            bags.copy_bag_with(bag, written, _estimate_messages(estimates, stamps, smoothed, config), overwrite=True)
        except OSError as error:  # BagWriter removes its partial bag; an earlier copy at ``written`` is kept
            raise atomic.OutputError(f"cannot write bag {written}: {error.strerror or error}; {ESTIMATES}, {METRICS} "
                                     f"and {PLOT} were written", written, error.errno) from error
    return ReplayResult(bag, out, shape, estimates, stamps, smoothed, figures, plot_path, written, truth_arrays,
                        estimator.graph, warnings)


def _output_directory(out_dir: str | os.PathLike[str]) -> Path:
    """The bag's output directory, checked before the bag is processed, without what an earlier
    replay that was killed while writing left there."""
    out = atomic.writable_directory(out_dir, "output directory")
    for stale in atomic.remove_stale_temps(out, OUTPUT_FILES):
        log.warning("removed %s, left by a replay that was killed while writing it", stale)
    return out


def _figures(
    estimator: Estimator,
    estimates: list[Estimate],
    online: tuple[np.ndarray, np.ndarray],
    stamps: np.ndarray,
    smoothed: np.ndarray,
    truth: tuple[np.ndarray, np.ndarray] | None,
    truth_topic: str,
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "steps": len(estimator.steps),
        "estimates": len(estimates),
        "update_latency_ms": metrics.latency_summary(np.array([e.update_ms for e in estimates])),
        "dropped_inputs": dict(sorted(estimator.dropped.items())),
        "events": dict(sorted(estimator.events.items())),
        "skipped_frames": estimator.skipped_frames,
        "normal_at_corner": estimator.normal_at_corner,  # contact frames read as a corner: the corner σ, or no factor
        "contact_fraction": float(np.mean([e.in_contact for e in estimates])) if estimates else 0.0,
    }
    empty = (np.zeros(0, dtype=np.int64), np.zeros((0, 3)))
    figures.update(metrics.error_figures(truth or empty, online, (stamps, smoothed), truth_topic))
    return figures


def _csv_text(estimates: list[Estimate]) -> str:
    handle = io.StringIO(newline="")
    writer = csv.writer(handle)
    writer.writerow(["stamp_ns", "step", "x", "y", "theta", "var_x", "var_y", "var_theta", "in_contact"])
    for e in estimates:
        var = np.diag(e.covariance)
        writer.writerow([e.stamp_ns, e.step, *(f"{v:.6f}" for v in e.pose), *(f"{v:.3e}" for v in var),
                         int(e.in_contact)])
    return handle.getvalue()


def _estimate_messages(
    estimates: list[Estimate], stamps: np.ndarray, smoothed: np.ndarray, config: EstimatorConfig
) -> list[tuple[str, str, int, Any]]:
    world, frame = config.frames.world, config.frames.object
    out: list[tuple[str, str, int, Any]] = []
    for e in estimates:
        out.append((f"{OUTPUT_NAMESPACE}/object_pose", messages.POSE_WITH_COVARIANCE_STAMPED, e.stamp_ns,
                    messages.pose_with_covariance_msg(e.stamp_ns, e.pose, e.covariance, world)))
        out.append((messages.TF_OUT, messages.TF_MESSAGE, e.stamp_ns,
                    messages.tf_msg(e.stamp_ns, world, frame, e.pose)))
    if len(stamps):
        out.append((f"{OUTPUT_NAMESPACE}/object_path", messages.PATH, int(stamps[-1]),
                    messages.path_msg(int(stamps[-1]), list(zip(stamps.tolist(), smoothed, strict=True)), world)))
    return out


def summary_table(results: list[ReplayResult]) -> str:
    header = ("bag", "object", "steps", "rmse mm", "rmse deg", "final mm", "final deg", "p99 ms", "dropped")
    rows = [header]
    for r in results:
        m = r.metrics
        errors = ["-"] * 4
        if "rmse_translation_m" in m:
            errors = [f"{m['rmse_translation_m'] * 1e3:.2f}", f"{np.degrees(m['rmse_rotation_rad']):.2f}",
                      f"{m['final_rmse_translation_m'] * 1e3:.2f}", f"{np.degrees(m['final_rmse_rotation_rad']):.2f}"]
        latency = f"{m['update_latency_ms']['p99']:.2f}"
        rows.append((r.bag.name, r.shape.kind, str(m["steps"]), *errors, latency,
                     str(sum(m["dropped_inputs"].values()))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
