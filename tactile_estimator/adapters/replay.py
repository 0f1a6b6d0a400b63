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
import dataclasses
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tactile_estimator import metrics
from tactile_estimator.adapters import live
from tactile_estimator.adapters.router import StreamRouter, tactile_topics
from tactile_estimator.camera.stream import image_topics
from tactile_estimator.config import EstimatorConfig
from tactile_estimator.estimator import Estimator
from tactile_estimator.factors import ObjectModel
from tactile_estimator.graph import FactorGraph
from tactile_estimator.io import atomic, bags, messages
from tactile_estimator.io.bags import object_shape
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import Shape
from tactile_estimator.plotting import plot_replay
from tactile_estimator.progress import progress
from tactile_estimator.records import Estimate

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


def camera_source(config: EstimatorConfig, topics: dict[str, str] | set[str]) -> str:
    """``camera.source`` for a bag with these topics: ``auto`` is the detection topic if the bag has it,
    else the camera images if it has them and a CameraInfo, else the detection topic (to be missed)."""
    source = config.camera.source
    if source != "auto":
        return source
    t = config.topics
    if t.camera not in topics and t.camera_info in topics and any(i in topics for i in image_topics(config)):
        return "image"
    return "detection"


def with_camera_source(config: EstimatorConfig, topics: dict[str, str] | set[str]) -> EstimatorConfig:
    """The config a bag is read with: its camera source chosen, and every camera image detected
    (``camera.rate_hz`` caps live detection only, where the tactile update shares the cores)."""
    source = camera_source(config, topics)
    if source == config.camera.source and config.camera.rate_hz == 0.0:
        return config
    return dataclasses.replace(config, camera=dataclasses.replace(config.camera, source=source, rate_hz=0.0))


def required_topics(config: EstimatorConfig) -> list[list[str]]:
    """What a bag must have, each group a list of alternatives; ``camera.source`` auto reads as detection."""
    ee = [config.topics.tf] if config.ee_source == "tf" else [config.topics.ee_pose]
    required = [tactile_topics(config), ee]
    if not config.initial_object_pose:
        source = config.camera.source
        if source == "image":
            required += [image_topics(config), [config.topics.camera_info]]
            if not config.camera.world_T_camera:
                required.append([config.topics.tf_static])
        elif source == "tf":
            required.append([config.topics.tf])
        else:
            required.append([config.topics.camera])
    return required


def replay_bag(
    bag: str | os.PathLike[str],
    config: EstimatorConfig,
    model: TactileModel,
    out_dir: str | os.PathLike[str],
    write_bag: bool = False,
) -> ReplayResult:
    bag = bags.resolve_bag(bag)
    info = bags.bag_info(bag)
    config = with_camera_source(config, {topic for topic, s in info.items() if s.count})
    bags.require_topics(bag, required_topics(config))
    shape = object_shape(bag, config)
    out = _output_directory(out_dir)
    estimator = Estimator(config, model, ObjectModel.for_shape(shape))
    router = StreamRouter(estimator)
    truth_topic = config.topics.ground_truth
    estimates: list[Estimate] = []
    truth: list[tuple[int, np.ndarray]] = []
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        log.warning(text)

    read = bags.ReadStats()
    wanted = [*router.topics, truth_topic]
    total = sum(info[topic].count for topic in set(wanted) if topic in info)
    for message in progress(bags.read_messages(bag, wanted, warn=warn, stats=read), f"replay {bag.name}",
                            total=total, unit="msg"):
        if message.topic == truth_topic:
            try:
                sample = messages.pose_to_sample(message.msg, message.msgtype, truth_topic, np.pi)
                truth.append((sample.stamp_ns, sample.pose))
            except messages.InputRejected as rejected:
                estimator.reject("bad_ground_truth", str(rejected))
            continue
        estimates.extend(router.handle(message.topic, message.msgtype, message.msg))
    if read.undecodable:  # CDR that does not deserialise: counted under the reason the live transports use
        estimator.dropped["undecodable"] += sum(read.undecodable.values())
    estimates.extend(router.flush())
    stamps, smoothed = estimator.trajectory(converge=config.final_iterations)

    truth_arrays = (np.array([t for t, _ in truth]), np.array([p for _, p in truth])) if truth else None
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
        out.append((live.TF_OUT, messages.TF_MESSAGE, e.stamp_ns, live.tf_msg(e.stamp_ns, world, frame, e.pose)))
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
