"""Camera messages to camera detections: what replay, ``run`` and the node share, without ROS.

A :class:`CameraInput` takes the camera's messages as the router hands them over: images (raw or
compressed) with their ``CameraInfo``, or apriltag_ros-style tag frames on ``/tf``, and the
camera's extrinsics from ``/tf_static`` (``world -> <camera frame>``) or the configuration. Each
image becomes, in two steps, an :class:`Outcome`:

- :meth:`CameraInput.prepare` (cheap, on the caller's thread): the image is paired with the latest
  CameraInfo and the extrinsics, or dropped at once (no CameraInfo yet, no extrinsics);
- :func:`run_job` (the decoding and detection, a few ms, thread-safe): a detection, a counted drop
  (``camera_bad_image``, ``camera_size_mismatch``, ``camera_bad_info``) or a frame without a pose
  (no tag, the arm over it...: an event ``camera_<reason>``, which is how a camera normally behaves).

Live transports run jobs on a thread of their own (:class:`DetectionWorker`) so detection stays off
the tactile update; replay runs them in place.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tactile_estimator.camera.apriltag import AprilTagDetector, DetectorOptions, TagMount
from tactile_estimator.camera.model import CameraInfo
from tactile_estimator.config import EstimatorConfig
from tactile_estimator.io import messages
from tactile_estimator.records import CameraDetection
from tactile_estimator.tf_buffer import StampedTransform, TfBuffer, Transform, TransformUnavailable

log = logging.getLogger(__name__)

IMAGE_DROPS = {"bad_image": "camera_bad_image", "size_mismatch": "camera_size_mismatch",
               "bad_intrinsics": "camera_bad_info"}  # detector reasons that are bad input, not a missed tag


def image_topics(config: EstimatorConfig) -> list[str]:
    """The camera image topic and its image_transport ``/compressed`` sibling."""
    topic = config.topics.camera_image
    return [topic, topic.rstrip("/") + "/compressed"]


def matrix(translation: np.ndarray, q: np.ndarray) -> np.ndarray:
    """4x4 of a translation and a unit quaternion (x, y, z, w)."""
    return Transform(np.asarray(translation, dtype=float), np.asarray(q, dtype=float)).matrix()


def mount(config: EstimatorConfig) -> TagMount:
    c = config.camera
    values = np.asarray(c.object_T_tag, dtype=float)
    return TagMount(int(c.tag_id), float(c.tag_size_m), matrix(values[:3], values[3:] / np.linalg.norm(values[3:])))


def detector_options(config: EstimatorConfig) -> DetectorOptions:
    c = config.camera
    return DetectorOptions(min_side_px=c.min_side_px, floor_translation_m=c.floor_translation_m,
                           floor_rotation_rad=c.floor_rotation_rad, max_reprojection_px=c.max_reprojection_px)


@dataclass(frozen=True)
class Outcome:
    """One camera message's result: a detection, a drop (``drop`` set) or a frame without a pose (``event``)."""

    stamp_ns: int
    detection: CameraDetection | None = None
    drop: str | None = None  # a reason of messages.REASONS
    event: str | None = None  # camera_<detector reason>: no tag, under the arm...
    message: str = ""


@dataclass(frozen=True)
class Job:
    """An image with what it needs to be detected: its CameraInfo and the detector for its extrinsics."""

    msg: object
    msgtype: str
    topic: str
    info: CameraInfo
    detector: AprilTagDetector


def run_job(job: Job) -> Outcome:
    """Decode and detect (thread-safe: a detector is only ever used by one job at a time)."""
    try:
        stamp_ns, _, grey = messages.camera_image(job.msg, job.msgtype, job.topic)
    except messages.InputRejected as rejected:
        return Outcome(rejected.stamp_ns or 0, drop=rejected.reason, message=str(rejected))
    result = job.detector.detect(grey, job.info, stamp_ns)
    if result.detection is not None:
        return Outcome(stamp_ns, detection=result.detection)
    reason = result.reason or "no_tag"
    if reason in IMAGE_DROPS:
        return Outcome(stamp_ns, drop=IMAGE_DROPS[reason], message=f"{job.topic} at {stamp_ns}: {result.message}")
    return Outcome(stamp_ns, event=f"camera_{reason}", message=result.message)


class CameraInput:
    """The camera's state: the latest CameraInfo, the extrinsics (a static tf buffer), the detectors."""

    def __init__(self, config: EstimatorConfig, source: str) -> None:
        self.config = config
        self.source = source  # image | tf
        c = config.camera
        self.world = config.frames.world.lstrip("/")
        self.mount = mount(config)
        self.options = detector_options(config)
        self.tag_frame = (c.tag_frame or f"tag36h11:{c.tag_id}").lstrip("/")
        self.tf = TfBuffer(jump_back_s=config.clock_restart_s)
        self.configured = None
        if c.world_T_camera:
            values = np.asarray(c.world_T_camera, dtype=float)
            self.configured = matrix(values[:3], values[3:] / np.linalg.norm(values[3:]))
        self.info: CameraInfo | None = None
        self.info_frame = ""
        self._detectors: dict[bytes, AprilTagDetector] = {}
        self._told: set[str] = set()
        self._last_accepted: int | None = None
        self.detection_seen = False  # auto, live: a tracker's detection arrived, so images are ignored

    def camera_info(self, msg: object, topic: str) -> Outcome | None:
        try:
            frame, info = messages.camera_info_record(msg, topic)
        except messages.InputRejected as rejected:
            return Outcome(rejected.stamp_ns or 0, drop=rejected.reason, message=str(rejected))
        if self.info is None:
            log.info("%s: camera %dx%d in frame %s", topic, info.width, info.height, frame or "(none)")
        self.info, self.info_frame = info, frame
        return None

    def transform(self, t: StampedTransform, static: bool) -> Outcome | None:
        """A /tf or /tf_static transform: kept for the extrinsics; a tag frame (source tf) is a detection."""
        try:
            self.tf.set_transform(t.parent, t.child, t.stamp_ns, t.translation, t.rotation, static)
        except ValueError:
            return None
        if self.source != "tf" or t.child != self.tag_frame:
            return None
        return self._tag_frame(t)

    def _tag_frame(self, t: StampedTransform) -> Outcome:
        try:
            world_T_parent = self.tf.lookup(self.world, t.parent, t.stamp_ns)
        except TransformUnavailable as error:
            return self._no_extrinsics(t.stamp_ns, f"tag frame {t.child} in {t.parent}: {error}")
        world_T_tag = world_T_parent * Transform(t.translation, t.rotation)
        T = matrix(world_T_tag.translation, world_T_tag.rotation) @ np.linalg.inv(self.mount.object_T_tag)
        tilt = math.degrees(math.acos(min(1.0, max(-1.0, T[2, 2]))))
        if tilt > self.options.max_tilt_deg:
            return Outcome(t.stamp_ns, event="camera_not_upright",
                           message=f"tag frame {t.child} tilts the object {tilt:.0f}° off the table")
        pose = np.array([T[0, 3], T[1, 3], math.atan2(T[1, 0], T[0, 0])])
        sigmas = np.asarray(self.config.camera.tf_sigmas or self.config.noise.camera, dtype=float)
        return Outcome(t.stamp_ns, detection=CameraDetection(t.stamp_ns, pose, np.diag(sigmas ** 2), self.world))

    def _no_extrinsics(self, stamp_ns: int, detail: str) -> Outcome:
        return Outcome(stamp_ns, drop="camera_no_extrinsics",
                       message=f"no {self.world} -> camera transform ({detail}); set camera.world_T_camera or "
                               "publish it on /tf_static")

    def extrinsics(self, frame: str, stamp_ns: int) -> np.ndarray | str:
        """world_T_camera, or why there is none."""
        if self.configured is not None:
            return self.configured
        frame = (self.config.camera.frame or frame).lstrip("/")
        if not frame:
            return "the image and its CameraInfo name no frame, and camera.frame is empty"
        try:
            T = self.tf.lookup(self.world, frame, stamp_ns)
        except TransformUnavailable as error:
            return str(error)
        return matrix(T.translation, T.rotation)

    def prepare(self, msg: object, msgtype: str, topic: str) -> Job | Outcome | None:
        """A job for an image, or its outcome when it cannot be detected; None: skipped by the rate limit."""
        try:
            stamp_ns = messages.stamp_to_ns(msg.header.stamp)
            frame = str(msg.header.frame_id)
        except AttributeError:
            return Outcome(0, drop="camera_bad_image", message=f"{topic}: a {msgtype} without a header")
        rate = self.config.camera.rate_hz
        if rate > 0.0 and self._last_accepted is not None and 0 <= stamp_ns - self._last_accepted < 1e9 / rate:
            return None
        if self.info is None:
            return Outcome(stamp_ns, drop="camera_no_info",
                           message=f"{topic}: no CameraInfo on {self.config.topics.camera_info} yet; camera images "
                                   "are dropped until one comes")
        world_T_camera = self.extrinsics(self.info_frame or frame, stamp_ns)
        if isinstance(world_T_camera, str):
            return self._no_extrinsics(stamp_ns, world_T_camera)
        key = np.round(world_T_camera, 9).tobytes()
        detector = self._detectors.get(key)
        if detector is None:
            try:
                detector = AprilTagDetector(world_T_camera, self.mount, self.options)
            except ValueError as error:
                return self._no_extrinsics(stamp_ns, str(error))
            if len(self._detectors) > 8:
                self._detectors.clear()
            self._detectors[key] = detector
        self._last_accepted = stamp_ns
        return Job(msg, msgtype, topic, self.info, detector)

    def tell_once(self, reason: str) -> bool:
        """True the first time a reason is seen: a missing CameraInfo is said once, not per frame."""
        if reason in self._told:
            return False
        self._told.add(reason)
        return True


class DetectionWorker:
    """Detection on a thread of its own: the newest image waits, an older one waiting is skipped.

    ``submit`` never blocks; ``results`` returns the outcomes finished since the last call (the
    caller applies them on its own thread, since the estimator is not thread-safe). ``idle`` is set
    while nothing is waiting or running, so a caller can wait on it instead of sleeping.
    """

    def __init__(self, run: Callable[[Job], Outcome] = run_job) -> None:
        self._run = run
        self._pending: Job | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.idle = threading.Event()
        self.idle.set()
        self.skipped = 0
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="camera-detection", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._pending is not None:
                self.skipped += 1
            self._pending = job
            self.idle.clear()
            self._wake.notify()

    def results(self) -> list[Outcome]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stop:
                    self.idle.set()
                    self._wake.wait()
                if self._stop:
                    self.idle.set()
                    return
                job, self._pending = self._pending, None
            try:
                outcome = self._run(job)
            except Exception as error:  # a detector bug must not end the thread; counted as a drop
                log.exception("camera detection failed")
                outcome = Outcome(0, drop="internal_error", message=f"camera detection: {type(error).__name__}")
            self._done.put(outcome)
