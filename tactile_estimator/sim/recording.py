"""A simulated run written as a real rosbag2 recording, with the topics a robot cell would publish."""

from __future__ import annotations

import os
from pathlib import Path

from tactile_estimator.config import EstimatorConfig
from tactile_estimator.io import atomic, bags, messages
from tactile_estimator.sim.pushing import SimulatedRun

EE_GROUND_TRUTH_TOPIC = "/ee_ground_truth"


def write_run_bag(run: SimulatedRun, path: str | os.PathLike[str], storage: str = "mcap",
                  topics: EstimatorConfig | None = None, jpeg_quality: int = 90) -> None:
    """Tactile frames as CompressedImage (JPEG keeps a 300-step run near 6 MB), poses as PoseStamped,
    detections as PoseWithCovarianceStamped, the object's shape as a JSON String.

    The bag appears at ``path`` only when it was written whole (bags.BagWriter); a write that fails
    (a full disk) leaves nothing there and raises an OutputError naming the bag."""
    t = (topics or EstimatorConfig()).topics
    frames = (topics or EstimatorConfig()).frames
    first = min(f.stamp_ns for f in run.tactile)
    info = messages.string_msg(messages.object_info_to_text(run.object_info))
    records = [(t.object_info, messages.STRING, first - 1, info)]
    records += [(t.tactile.rstrip("/") + "/compressed", messages.COMPRESSED_IMAGE, f.stamp_ns,
                 messages.compressed_image_msg(f, quality=jpeg_quality)) for f in run.tactile]
    records += [(t.ee_pose, messages.POSE_STAMPED, s.stamp_ns,
                 messages.pose_stamped_msg(s.stamp_ns, s.pose, frames.world)) for s in run.ee_poses]
    records += [(t.camera, messages.POSE_WITH_COVARIANCE_STAMPED, d.stamp_ns,
                 messages.pose_with_covariance_msg(d.stamp_ns, d.pose, d.covariance, frames.world)) for d in run.camera]
    records += [(t.ground_truth, messages.POSE_STAMPED, s.stamp_ns,
                 messages.pose_stamped_msg(s.stamp_ns, s.pose, frames.world)) for s in run.ground_truth]
    records += [(EE_GROUND_TRUTH_TOPIC, messages.POSE_STAMPED, s.stamp_ns,
                 messages.pose_stamped_msg(s.stamp_ns, s.pose, frames.world)) for s in run.ee_ground_truth]
    records.sort(key=lambda r: r[2])
    try:
        with bags.BagWriter(path, storage) as writer:
            for topic, msgtype, stamp, msg in records:
                writer.write(topic, msgtype, stamp, msg)
    except OSError as error:
        raise atomic.OutputError(f"cannot write bag {path}: {error.strerror or error}; no bag was left there",
                                 Path(path), error.errno) from error
