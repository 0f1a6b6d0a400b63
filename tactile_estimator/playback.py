"""A bag through the estimator: the one loop that replay and the trainer's run building share.

:func:`bag_config` says how a bag is read (``camera.source`` auto picks its detections or, where it
has none, its images), :func:`feed_bag` plays its messages in log-time order through a
:class:`~tactile_estimator.router.StreamRouter`, as the live transports deliver them, and keeps the
poses of the topics it is asked to record (ground truth), which the estimator never sees. A
recorded pose that is not clean is dropped and counted as ``bad_ground_truth``; a message that
does not deserialise is counted as ``undecodable``, under the reason the live transports use.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tactile_estimator.camera.stream import image_topics
from tactile_estimator.config import EstimatorConfig
from tactile_estimator.io import bags, messages
from tactile_estimator.progress import progress
from tactile_estimator.records import Estimate
from tactile_estimator.router import StreamRouter, tactile_topics


@dataclass
class Playback:
    """What a bag gave: the estimates in the order they were made, and each recorded topic's poses."""

    estimates: list[Estimate] = field(default_factory=list)
    recorded: dict[str, list[tuple[int, np.ndarray]]] = field(default_factory=dict)

    def poses(self, topic: str) -> tuple[np.ndarray, np.ndarray] | None:
        """A recorded topic's stamps (N,) and poses (N, 3), or None where it had no clean pose."""
        samples = self.recorded.get(topic) or []
        if not samples:
            return None
        return np.array([t for t, _ in samples]), np.array([p for _, p in samples])


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


def bag_config(bag: Path, config: EstimatorConfig) -> tuple[dict[str, bags.TopicSummary], EstimatorConfig]:
    """The bag's topics (from its metadata) and the config it is read with (:func:`with_camera_source`)."""
    info = bags.bag_info(bag)
    return info, with_camera_source(config, {topic for topic, s in info.items() if s.count})


def feed_bag(
    bag: str | os.PathLike[str],
    router: StreamRouter,
    record: Sequence[str] = (),
    *,
    warn: bags.Warn | None = None,
    label: str | None = None,
    info: dict[str, bags.TopicSummary] | None = None,
) -> Playback:
    """Every message the router reads, and the poses of the ``record`` topics, from ``bag`` in log-time
    order; then the router is flushed (the streams ended). ``label``: a progress bar of that name on a
    terminal, its total from ``info`` (the bag's metadata) where given."""
    estimator = router.estimator
    played = Playback(recorded={topic: [] for topic in record})
    read = bags.ReadStats()
    wanted = [*router.topics, *record]
    stream = bags.read_messages(bag, wanted, warn=warn, stats=read)
    if label is not None:
        total = sum(info[topic].count for topic in set(wanted) if topic in info) if info is not None else None
        stream = progress(stream, label, total=total, unit="msg")
    for message in stream:
        if message.topic in played.recorded:
            try:
                sample = messages.pose_to_sample(message.msg, message.msgtype, message.topic, np.pi)
            except messages.InputRejected as rejected:
                estimator.reject("bad_ground_truth", str(rejected))
                continue
            played.recorded[message.topic].append((sample.stamp_ns, sample.pose))
            continue
        played.estimates.extend(router.handle(message.topic, message.msgtype, message.msg))
    if read.undecodable:
        estimator.dropped["undecodable"] += sum(read.undecodable.values())
    played.estimates.extend(router.flush())
    return played
