"""The live estimator shared by the ROS 2 node and the Cyclone DDS runner; no middleware here.

A transport hands in deserialised messages (rosbags type-store objects, which both the DDS
transport and the rclpy node produce from the CDR they receive) and publishes what comes back:
``(topic, msgtype, message)`` triples. Everything that is not plumbing lives here, so both
transports behave the same and this is what the tests exercise:

- inputs go through :class:`StreamRouter` to the :class:`Estimator` (one path with replay);
- every estimate becomes ``~/object_pose`` (PoseWithCovarianceStamped), a ``/tf`` transform
  ``world -> object_estimate`` and, optionally, a footprint marker; the smoothed trajectory goes
  to ``~/object_path`` at most every ``live.path_period_s``;
- ``/diagnostics`` every ``live.diagnostics_period_s``: input rates, update latency, graph size,
  dropped inputs by reason (cumulative) and stale sensors (:class:`Diagnostics`);
- with ``freeze_gc``, each batch of estimates moves the graph's new objects out of Python's cyclic
  collector (:func:`retire_from_collector`): a process-wide setting, so the live process's, not the
  Estimator's;
- a stale estimate is held, not dropped: while no new estimate comes for ``live.stale_after_s``,
  the last one is republished at the diagnostics rate, its stamp advanced by the wall time
  elapsed and its covariance grown as a random walk, ``Σ(t) = Σ_last + diag(q²)·t`` with
  ``q = live.hold_random_walk`` (m, m, rad per √s). The object is quasi-static but may be pushed
  while the sensors are silent; a random walk is the least committal model of that, it keeps the
  mean where the evidence left it, and consumers that gate on covariance stop trusting it
  gradually instead of seeing the estimate vanish.
- the object's shape comes from ``object.shape``/``object.size`` or, with ``shape: from_bag``,
  from the ``/object_info`` topic (latched). Inputs before a shape is known are dropped as
  ``no_object_info``; a different shape on ``/object_info`` later starts a new graph.
- the end-effector comes from ``topics.ee_pose`` or, with ``ee_source: tf``, from ``/tf`` and
  ``/tf_static`` (one transform buffer for the node's life, so the static mounting, sent once,
  outlives a new graph). The node's own ``world -> object_estimate`` on ``/tf`` is ignored.
- a new graph starts on ``~/reset`` (std_msgs/Empty, for transports without services: ``run``)
  or the node's ``~/reset`` service, when a stream's clock goes back (``clock_restart_s``,
  confirmed by the next message: a bag played again, ``--loop``, a restarted publisher; told once
  and counted as ``clock_restarted``), and on ``~/set_pose`` (PoseWithCovarianceStamped, as
  robot_localization's ``set_pose``): that graph's first pose is the message's, with the x, y
  and yaw standard deviations of its covariance (all zeros: ``noise.first_pose``). A later reset
  or restart starts from the configuration again (``initial_object_pose`` or the camera).
- the camera prior follows ``camera.source`` (router.py, docs/camera.md). Camera images are
  detected off the tactile path: with ``camera.threaded`` on a thread of their own
  (camera.stream.DetectionWorker: the newest image waits, an older one waiting is skipped and
  counted as ``camera_busy_skipped``), their detections applied on the next message or tick; at
  most ``camera.rate_hz`` frames a second where that is set.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tactile_estimator.camera.stream import DetectionWorker, Job, image_topics
from tactile_estimator.config import ConfigError, EstimatorConfig, load_estimator_config, load_trainer_config
from tactile_estimator.estimator import Estimator
from tactile_estimator.factors import ObjectModel
from tactile_estimator.io import messages
from tactile_estimator.io.messages import (  # noqa: F401 - tf_msg and the type names: where callers find them
    DIAGNOSTIC_ARRAY,
    ERROR,
    MARKER_ARRAY,
    OK,
    TF_MESSAGE,
    TF_OUT,
    WARN,
    diagnostic_array_msg,
    diagnostic_status,
    footprint_marker_msg,
    tf_msg,
)
from tactile_estimator.networks.tactile import ModelError, TactileModel
from tactile_estimator.objects import Shape
from tactile_estimator.records import CameraDetection, Estimate
from tactile_estimator.router import StreamRouter, camera_input, ee_from_tf, tactile_topics

if TYPE_CHECKING:
    from tactile_estimator.learning.watch import ModelWatch

log = logging.getLogger(__name__)

POSE_OUT = "~/object_pose"
PATH_OUT = "~/object_path"
MARKER_OUT = "~/object_marker"
MODEL_UPDATED = "~/model_updated"  # the trainer node's output: a new model directory (std_msgs/String)
SET_POSE_IN = "~/set_pose"  # geometry_msgs/PoseWithCovarianceStamped: a new graph from this pose
RESET_IN = "~/reset"  # std_msgs/Empty: a new graph (the rclpy node also serves ~/reset, std_srvs/Trigger)
DIAGNOSTICS_OUT = "/diagnostics"


@dataclass(frozen=True)
class Input:
    """A subscription a transport makes: topic, accepted types, QoS kind and what it feeds."""

    topic: str
    msgtypes: tuple[str, ...]
    qos: str  # "sensor" (best effort), "reliable", "latched" (reliable, transient local), "tf" or "tf_static"
    feeds: str  # tactile | ee_pose | camera | camera_info | camera_tf | object_info | model_updated | set_pose | reset


@dataclass(frozen=True)
class Output:
    topic: str  # "~/..." is private to the node: the transport puts the node's name in front
    msgtype: str
    qos: str  # "reliable" or "tf"


def inputs(config: EstimatorConfig) -> list[Input]:
    t = config.topics
    raw, compressed = tactile_topics(config)
    if config.ee_source == "tf":
        ee = [Input(t.tf, (TF_MESSAGE,), "tf", "ee_pose"), Input(t.tf_static, (TF_MESSAGE,), "tf_static", "ee_pose")]
    else:
        ee = [Input(t.ee_pose, (f"geometry_msgs/msg/{t.ee_pose_type}",), "reliable", "ee_pose")]
    source = config.camera.source
    camera = ([Input(t.camera, (f"geometry_msgs/msg/{t.camera_type}",), "reliable", "camera")]
              if source in ("detection", "auto") else [])
    if source in ("image", "auto"):
        image, image_compressed = image_topics(config)
        camera += [Input(image, (messages.IMAGE,), "sensor", "camera"),
                   Input(image_compressed, (messages.COMPRESSED_IMAGE,), "sensor", "camera"),
                   Input(t.camera_info, (messages.CAMERA_INFO,), "sensor", "camera_info")]
    needs_tf = source == "tf" or (source in ("image", "auto") and not config.camera.world_T_camera)
    if needs_tf and config.ee_source != "tf":
        feeds = "camera" if source == "tf" else "camera_tf"
        camera += [Input(t.tf, (TF_MESSAGE,), "tf", feeds), Input(t.tf_static, (TF_MESSAGE,), "tf_static", "camera_tf")]
    return [
        Input(raw, (messages.IMAGE,), "sensor", "tactile"),
        Input(compressed, (messages.COMPRESSED_IMAGE,), "sensor", "tactile"),
        *ee,
        *camera,
        Input(t.object_info, (messages.STRING,), "latched", "object_info"),
        Input(t.model_updated, (messages.STRING,), "reliable", "model_updated"),
        Input(SET_POSE_IN, (messages.POSE_WITH_COVARIANCE_STAMPED,), "reliable", "set_pose"),
        Input(RESET_IN, (messages.EMPTY,), "reliable", "reset"),
    ]


def outputs(config: EstimatorConfig) -> list[Output]:
    out = [
        Output(POSE_OUT, messages.POSE_WITH_COVARIANCE_STAMPED, "reliable"),
        Output(PATH_OUT, messages.PATH, "reliable"),
        Output(TF_OUT, TF_MESSAGE, "tf"),
        Output(DIAGNOSTICS_OUT, DIAGNOSTIC_ARRAY, "reliable"),
    ]
    if config.live.publish_marker:
        out.append(Output(MARKER_OUT, MARKER_ARRAY, "reliable"))
    return out


ROS_ONLY_PARAMETERS = ("use_sim_time", "qos_overrides", "start_type_description_service")


def config_from_parameters(values: dict[str, Any]) -> EstimatorConfig:
    """A node's parameters (dotted names, as ROS flattens them) -> a validated EstimatorConfig.

    ``config_file`` (a parameter file) is read first; the other parameters override its keys;
    parameters that belong to ROS itself (``use_sim_time``, ``qos_overrides.*``) are left out.
    """
    ours = {k: v for k, v in values.items() if not k.startswith(ROS_ONLY_PARAMETERS)}
    config_file = ours.pop("config_file", "") or None
    return load_estimator_config(config_file, ours)


def parameters_in_force(config: EstimatorConfig) -> dict[str, Any]:
    """The config as ROS parameters (dotted names -> values), for a node to declare what is in force.

    Keys that no ROS parameter type holds (an empty list, a list of mixed kinds) are left out;
    a list of ints and floats becomes floats.
    """
    out: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value, name = getattr(obj, f.name), prefix + f.name
            if dataclasses.is_dataclass(value):
                walk(value, name + ".")
            elif isinstance(value, (bool, int, float, str)):
                out[name] = value
            elif isinstance(value, (list, tuple)) and value:
                kinds = {bool if isinstance(v, bool) else type(v) for v in value}
                if kinds <= {int, float} and float in kinds:
                    out[name] = [float(v) for v in value]
                elif len(kinds) == 1 and kinds <= {bool, int, float, str}:
                    out[name] = list(value)

    walk(config, "")
    return out


def runtime_set_refusal(name: str, node_name: str, read_at: str = "at start") -> str:
    """Why ``ros2 param set`` of a config key is refused: it would change nothing the node does."""
    restart = ("deactivate and clean up the node, set it, then configure again" if read_at == "at configure"
               else f"set it in config_file or with -p {name}:=VALUE and restart the node")
    return f"{node_name}: parameter {name!r} is read {read_at} and cannot change while it runs; {restart}"


LIFECYCLE_FLAG = "--lifecycle"  # estimator_node's argument for the managed (lifecycle) node


def estimator_setup(values: dict[str, Any], default_model: str | Path | None = None) -> tuple[EstimatorConfig,
                                                                                             TactileModel]:
    """What a node's start (the plain node) or its configure transition (the managed one) does: the
    parameters become the config, and the model is loaded (``model``, else ``default_model``, else the
    shipped one). A bad parameter or model raises ConfigError or ModelError, one line each."""
    config = config_from_parameters(values)
    return config, TactileModel.load(config.model or default_model)


TRAINER_NODE_PARAMETERS = ("bag_dir", "out_dir", "init", "val_dir", "estimator_config", "config_file")


def watch_from_parameters(values: dict[str, Any], progress: Callable[[str], None] | None = None) -> ModelWatch:
    """The trainer node's parameters -> its :class:`~tactile_estimator.learning.watch.ModelWatch`.

    ``bag_dir`` (a directory, a comma list, or a string array) is watched and ``out_dir`` receives
    the model directories; ``init`` is the first round's starting model (default: the shipped
    one), ``val_dir`` holds validation bags (default: the training bags), ``estimator_config`` is
    the estimator's parameter file (topics, factors) and ``config_file`` the trainer's
    (``config/trainer.yaml``). Every other parameter overrides a trainer key (dotted names, e.g.
    ``epochs`` or ``watch.poll_s``); an unknown one is an error that names it.
    """
    from tactile_estimator.learning.datasets import expand_bag_paths
    from tactile_estimator.learning.watch import ModelWatch

    ours = {k: v for k, v in values.items() if not k.startswith(ROS_ONLY_PARAMETERS)}
    node = {k: ours.pop(k) for k in TRAINER_NODE_PARAMETERS if k in ours}
    raw = node.get("bag_dir") or ""
    dirs = [d.strip() for d in (raw.split(",") if isinstance(raw, str) else raw) if str(d).strip()]
    if not dirs:
        raise ConfigError("bag_dir: the trainer node needs a directory of bags to watch")
    if not node.get("out_dir"):
        raise ConfigError("out_dir: the trainer node needs a directory for its models")
    trainer = load_trainer_config(node.get("config_file") or None, ours)
    estimator = load_estimator_config(node.get("estimator_config") or None)
    val = expand_bag_paths([node["val_dir"]]) if node.get("val_dir") else []
    return ModelWatch(dirs, node["out_dir"], estimator, trainer, init=node.get("init") or None, val_paths=val,
                      progress=progress)


def node_topic(topic: str, node_name: str) -> str:
    """``~/x`` -> ``/<node_name>/x`` (a node's private name, as ROS expands it)."""
    return f"/{node_name.strip('/')}/{topic[2:]}" if topic.startswith("~/") else topic


SENSORS = ("tactile", "ee_pose", "camera")
Outgoing = tuple[str, str, Any]


def retire_from_collector() -> None:
    """Collect this step's young cyclic garbage, then freeze the survivors out of the collector.

    The graph keeps tens of thousands of long-lived objects (factors, closures, records). A full
    collection walks all of them, so its pause grows with the run and lands on whichever update it
    interrupts (``update_ms_max`` on ``/diagnostics`` of a long run with ``freeze_gc: false``). Frozen
    objects are still freed by reference counting; only cycles among them are never collected, and
    the young collection here catches the cycles a step leaves behind. Process-wide, so it belongs
    to the live process (one estimator, running for hours), never to a library class: a trainer
    that builds many estimators would keep every graph's cycles.
    """
    gc.collect(1)
    gc.freeze()


class Diagnostics:
    """The counters behind ``/diagnostics`` and the message they make.

    Cumulative: messages received per input feed, estimates published and held. Per period (between
    two messages): arrivals per sensor and the update latencies. ``message`` reports them, each sensor
    in a status of its own, and starts the next period.
    """

    def __init__(self, node_name: str, started: float) -> None:
        self.node_name = node_name
        self.started = started
        self.received: Counter[str] = Counter()
        self.estimates = 0
        self.held = 0
        self._last_arrival: dict[str, float] = {}
        self._period_arrivals: Counter[str] = Counter()
        self._period_latency: list[float] = []
        self._period_start = started

    def arrived(self, feed: str, now: float) -> None:
        """A message for ``feed`` (an :class:`Input`'s ``feeds``) arrived at ``now``."""
        self.received[feed] += 1
        if feed in SENSORS:
            self._last_arrival[feed] = now
            self._period_arrivals[feed] += 1

    def estimated(self, update_ms: float) -> None:
        self.estimates += 1
        self._period_latency.append(update_ms)

    def silent_for(self, sensor: str, now: float) -> float:
        """Seconds since the sensor's last message (since the start if it never sent one)."""
        return now - self._last_arrival.get(sensor, self.started)

    def estimate_values(self, estimate_age_s: float | None) -> dict[str, str]:
        """The estimates and this period's update latency, as the estimator status shows them."""
        latency = np.array(self._period_latency)
        return {
            "estimates": str(self.estimates),
            "held_estimates": str(self.held),
            "estimate_age_s": f"{estimate_age_s:.3f}" if estimate_age_s is not None else "none",
            "update_ms_p50": f"{np.percentile(latency, 50):.2f}" if latency.size else "none",
            "update_ms_p99": f"{np.percentile(latency, 99):.2f}" if latency.size else "none",
            "update_ms_max": f"{latency.max():.2f}" if latency.size else "none",
        }

    def message(self, now: float, stamp_ns: int, estimator: tuple[int, str, dict[str, str]],
                topics: dict[str, list[str]], stale: list[str]) -> Any:
        """The ``DiagnosticArray``: the estimator's status (level, text, values), then one per sensor
        (its ``topics``, rate this period, messages, age); the next period starts at ``now``."""
        elapsed = max(now - self._period_start, 1e-9)
        level, text, values = estimator
        statuses = [diagnostic_status(level, f"{self.node_name}: estimator", text, values)]
        for sensor in SENSORS:
            age = now - self._last_arrival[sensor] if sensor in self._last_arrival else None
            sensor_values = {
                "topics": ", ".join(topics.get(sensor, [])),
                "rate_hz": f"{self._period_arrivals[sensor] / elapsed:.2f}",
                "messages": str(self.received[sensor]),
                "last_message_age_s": f"{age:.3f}" if age is not None else "never",
                "stale": str(sensor in stale).lower(),
            }
            statuses.append(diagnostic_status(WARN if sensor in stale else OK, f"{self.node_name}: input {sensor}",
                                              "stale" if sensor in stale else "ok", sensor_values))
        self._period_arrivals.clear()
        self._period_latency.clear()
        self._period_start = now
        return diagnostic_array_msg(stamp_ns, statuses)


class LiveEstimator:
    """The estimator as a live node sees it: messages in, messages out, a periodic tick."""

    def __init__(
        self,
        config: EstimatorConfig,
        model: TactileModel,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
        node_name: str = "estimator_node",
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._notify = notify  # one line per model reloaded; None: the log's info level
        # The process serves one estimator: its network threads are the process's. (The Estimator
        # itself leaves them alone, so a trainer that builds estimators keeps its own setting.)
        torch.set_num_threads(config.network_threads)
        self.model = model
        self.node_name = node_name
        self._monotonic = monotonic
        self._wall_ns = wall_ns
        # by topic, private ones both as "~/x" (what rclpy's callbacks name) and expanded (what DDS names)
        self._inputs = {name: i for i in inputs(config) for name in {i.topic, node_topic(i.topic, node_name)}}
        self._ee_tf = ee_from_tf(config) if config.ee_source == "tf" else None
        self._camera = camera_input(config)  # the CameraInfo and the extrinsics outlive a new graph, as /tf does
        self._worker: DetectionWorker | None = None  # started with the first camera image (camera.threaded)
        self._seed: CameraDetection | None = None  # a ~/set_pose that came before the object's shape
        self._diagnostics = Diagnostics(node_name, monotonic())
        self.shape: Shape | None = None
        self.estimator: Estimator | None = None
        self.router: StreamRouter | None = None
        self.dropped: Counter[str] = Counter()  # drops outside the estimator, and those of graphs before a reset
        self.events: Counter[str] = Counter()
        self.unsupported_publishers: dict[str, tuple[str, str]] = {}
        self._last: Estimate | None = None
        self._last_at = 0.0
        self._next_diagnostics = self.started + config.live.diagnostics_period_s
        self._path_at = -math.inf
        self._path_steps = 0
        if config.object.shape != "from_bag":
            try:
                self._start(Shape(config.object.shape, tuple(config.object.size)))
            except ValueError as error:
                raise ConfigError(f"object: {error}") from None

    # ----------------------------------------------------------------------------------- inputs
    def handle(self, topic: str, msgtype: str, msg: Any) -> list[Outgoing]:
        """One received message; returns the messages to publish."""
        spec = self._inputs.get(topic)
        if spec is None:
            return []
        if spec.qos == "tf" and all(t.child_frame_id == self.config.frames.object for t in msg.transforms):
            return []  # our own estimate on /tf, or nothing
        now = self._monotonic()
        self._diagnostics.arrived(spec.feeds, now)
        if spec.feeds == "object_info":
            self._object_info(msg, topic)
            return []
        if spec.feeds == "model_updated":
            self.reload_model(str(msg.data))
            return []
        if spec.feeds == "reset":
            log.info("%s: %s", topic, self.reset())
            return []
        if spec.feeds == "set_pose":
            log.info("%s: %s", topic, self.set_pose(msg, topic))
            return []
        if self.router is None:
            if spec.feeds in ("camera_info", "camera_tf") and self._camera is not None:
                self._camera_state(topic, msgtype, msg)  # kept for when the graph starts
                return []
            self.drop("no_object_info", f"{topic}: no object shape yet; waiting for {self.config.topics.object_info}"
                                        " (or set object.shape and object.size)")
            return []
        try:
            estimates = self._detected() + self.router.handle(topic, msgtype, msg)
        except Exception as error:  # a live node drops what it cannot handle and goes on; the log has the trace
            log.exception("input on %s could not be handled", topic)
            self.drop("internal_error", f"{topic}: {type(error).__name__}: {error}")
            return []
        if self.estimator is not None and self.estimator.clock_restarted:  # a bag played again, a restarted robot
            self.events["clock_restarted"] += 1
            log.warning("%s: the clock went back more than %g s; %s", topic, self.config.clock_restart_s,
                        self._new_graph())
        return self._publish(estimates)

    def _camera_state(self, topic: str, msgtype: str, msg: Any) -> None:
        """A CameraInfo or transform before the graph: the camera's state takes it, nothing is estimated."""
        assert self._camera is not None
        if msgtype == messages.CAMERA_INFO:
            outcome = self._camera.camera_info(msg, topic)
            if outcome is not None and outcome.drop:
                self.drop(outcome.drop, outcome.message)
            return
        transforms, _ = messages.tf_transforms(msg, topic)
        for t in transforms:
            self._camera.transform(t, static=topic == self.config.topics.tf_static)

    def _submit(self, job: Job) -> None:
        """An image's detection, on the worker thread; its outcome comes back through :meth:`_detected`."""
        if self._worker is None:
            self._worker = DetectionWorker()
        self._worker.submit(job)

    def _detected(self) -> list[Estimate]:
        """The detections the worker finished since the last call, applied to the graph."""
        if self._worker is None or self.router is None:
            return []
        estimates: list[Estimate] = []
        for outcome in self._worker.results():
            estimates += self.router.apply(outcome)
        return estimates

    def wait_camera(self, timeout_s: float = 5.0) -> bool:
        """Wait until the worker has no image waiting or in detection (True), or ``timeout_s`` passed."""
        return self._worker is None or self._worker.idle.wait(timeout_s)

    def close(self) -> None:
        """Stop the detection thread (the transports call this when they stop)."""
        if self._worker is not None:
            self._worker.close()

    def drop(self, reason: str, detail: str) -> None:
        """Count a message dropped outside the estimator (no shape yet, undecodable CDR...)."""
        if self.dropped[reason] == 0 or log.isEnabledFor(logging.DEBUG):
            log.warning("dropped input (%s): %s", reason, detail)
        self.dropped[reason] += 1

    def note_publisher(self, key: str, topic: str, msgtype: str) -> None:
        """A publisher was discovered; one on an input topic with a type we do not read is reported.

        Its messages never arrive (DDS does not match different types), so they cannot be counted
        one by one; the publisher is counted under ``unsupported_type`` publishers instead.
        """
        spec = self._inputs.get(topic)
        if spec is None or msgtype in spec.msgtypes or key in self.unsupported_publishers:
            return
        self.unsupported_publishers[key] = (topic, msgtype)
        log.warning("publisher of %s on %s is ignored: the estimator reads %s there",
                    msgtype, topic, " or ".join(spec.msgtypes))

    def _object_info(self, msg: Any, topic: str) -> None:
        try:
            shape = Shape.from_info(messages.object_info_from_text(msg.data, topic))
        except (messages.InputRejected, ValueError) as error:
            self.drop("bad_object_info", str(error))
            return
        if self.config.object.shape != "from_bag":
            if shape != self.shape:
                log.info("%s says %s %s; the configured object.shape is kept", topic, shape.kind, shape.size)
            return
        if shape == self.shape:
            return
        if self.shape is not None:
            self.events["object_changed"] += 1
            log.warning("%s changed the object to %s %s: starting a new graph", topic, shape.kind, shape.size)
        self._start(shape)

    def _start(self, shape: Shape, seed: CameraDetection | None = None) -> None:
        """A new graph. ``seed`` (from ``~/set_pose``) gives its first pose and that pose's sigmas."""
        if self.estimator is not None:
            self._carry(self.estimator)
        seed, self._seed = seed or self._seed, None
        config = self.config
        if seed is not None:
            sigmas = config.noise.first_pose if seed.covariance is None else \
                [float(v) for v in np.sqrt(np.diag(seed.covariance))]
            config = dataclasses.replace(config, initial_object_pose=[float(v) for v in seed.pose],
                                         noise=dataclasses.replace(config.noise, first_pose=sigmas))
        self.shape = shape
        self.estimator = Estimator(config, self.model, ObjectModel.for_shape(shape))
        detect = self._submit if config.camera.threaded else None
        self.router = StreamRouter(self.estimator, self._ee_tf, self._camera, detect)
        self._last = None
        self._path_steps = 0

    def _carry(self, estimator: Estimator) -> None:
        self.dropped.update(estimator.dropped)
        self.events.update(estimator.events)

    # --------------------------------------------------------------------------------- commands
    def reset(self) -> str:
        """Start a new graph (same model and object); counters stay cumulative."""
        self.events["reset"] += 1
        return self._new_graph()

    def _new_graph(self, seed: CameraDetection | None = None) -> str:
        if self.shape is None:
            return "no graph yet: waiting for the object's shape"
        steps = len(self.estimator.steps) if self.estimator is not None else 0
        self._start(self.shape, seed)
        return f"new graph started; the previous one had {steps} steps"

    def set_pose(self, msg: Any, topic: str = SET_POSE_IN) -> str:
        """``~/set_pose``: a new graph whose first pose is the message's (robot_localization's SetPose).

        The message's x, y and yaw variances are the first pose's (their correlations are not kept);
        an all-zero covariance means ``noise.first_pose``. A bad pose or covariance is dropped as
        ``bad_set_pose`` and changes nothing. Before the object's shape is known, the pose waits for it.
        """
        try:
            seed = messages.detection_to_record(msg, messages.POSE_WITH_COVARIANCE_STAMPED, topic,
                                                self.config.max_tilt_rad)
        except messages.InputRejected as rejected:
            self.drop("bad_set_pose", str(rejected))
            return f"pose not set: {rejected}"
        self.events["set_pose"] += 1
        x, y, theta = seed.pose
        told = f"object pose set to ({x:.4f}, {y:.4f}, {math.degrees(theta):.2f} deg)"
        if self.shape is None:
            self._seed = seed
            return f"{told}; the graph starts once the object's shape is known"
        return f"{told}; {self._new_graph(seed)}"

    def reload_model(self, directory: str) -> tuple[bool, str]:
        """Load a new tactile model; the graph is kept. A bad model is reported and the old one kept."""
        try:
            if self.estimator is not None:
                self.estimator.reload_model(directory)
                self.model = self.estimator.model
            else:  # no graph yet (waiting for the object's shape): the model is used when it starts
                self.model = TactileModel.load(directory)
                self.events["model_reloaded"] += 1
        except Exception as error:  # any peer may announce any path: nothing it names may stop the estimator
            self.events["model_reload_failed"] += 1
            reason = str(error) if isinstance(error, (ModelError, OSError, ValueError)) else \
                f"{type(error).__name__}: {error}"
            text = f"model {directory[:200]!r} was not loaded, the previous one is kept: {reason[:500]}"
            log.error("%s", " ".join(text.split()))
            return False, text
        if self._notify is not None:
            self._notify(f"model reloaded from {directory}")
        else:
            log.info("model reloaded from %s", directory)
        return True, f"model loaded from {directory}"

    def finish(self) -> list[Outgoing]:
        """The streams ended: use what the estimator buffered, and publish the final path."""
        out: list[Outgoing] = []
        if self.estimator is not None and self.router is not None:
            self.wait_camera()
            out += self._publish(self._detected())
            out += self._publish(self.router.flush())
            out += self._path(force=True)
        return out

    # ---------------------------------------------------------------------------------- outputs
    def _publish(self, estimates: list[Estimate]) -> list[Outgoing]:
        if estimates and self.config.freeze_gc:
            retire_from_collector()  # the new steps' graph objects, before the next update can meet a full collection
        out: list[Outgoing] = []
        for estimate in estimates:
            self._diagnostics.estimated(estimate.update_ms)
            self._last, self._last_at = estimate, self._monotonic()
            out += self._estimate_messages(estimate.stamp_ns, estimate.pose, estimate.covariance)
        if estimates:
            out += self._path(force=False)
        return out

    def _estimate_messages(self, stamp_ns: int, pose: np.ndarray, covariance: np.ndarray) -> list[Outgoing]:
        world = self.config.frames.world
        out: list[Outgoing] = [
            (POSE_OUT, messages.POSE_WITH_COVARIANCE_STAMPED,
             messages.pose_with_covariance_msg(stamp_ns, pose, covariance, world)),
            (TF_OUT, TF_MESSAGE, tf_msg(stamp_ns, world, self.config.frames.object, pose)),
        ]
        if self.config.live.publish_marker and self.shape is not None:
            out.append((MARKER_OUT, MARKER_ARRAY, footprint_marker_msg(stamp_ns, world, pose, self.shape)))
        return out

    def _path(self, force: bool) -> list[Outgoing]:
        estimator = self.estimator
        now = self._monotonic()
        if estimator is None or len(estimator.steps) == self._path_steps:
            return []
        if not force and now - self._path_at < self.config.live.path_period_s:
            return []
        stamps, poses = estimator.trajectory()
        self._path_at, self._path_steps = now, len(stamps)
        msg = messages.path_msg(int(stamps[-1]), list(zip(stamps.tolist(), poses, strict=True)),
                                self.config.frames.world)
        return [(PATH_OUT, messages.PATH, msg)]

    def held_estimate(self, now: float | None = None) -> tuple[int, np.ndarray, np.ndarray] | None:
        """The last estimate as it stands ``now``: stamp advanced, covariance grown (see module doc)."""
        if self._last is None:
            return None
        now = self._monotonic() if now is None else now
        elapsed = max(now - self._last_at, 0.0)
        q = np.asarray(self.config.live.hold_random_walk, dtype=float)
        covariance = self._last.covariance + np.diag(q * q) * elapsed
        return self._last.stamp_ns + round(elapsed * 1e9), self._last.pose, covariance

    def tick(self) -> list[Outgoing]:
        """Call often (every loop or timer); publishes diagnostics, held estimates and the path when due."""
        out = self._publish(self._detected())
        now = self._monotonic()
        out += self._path(force=False)
        if now < self._next_diagnostics:
            return out
        live = self.config.live
        if self._last is not None and now - self._last_at >= live.stale_after_s:
            stamp, pose, covariance = self.held_estimate(now)
            self._diagnostics.held += 1
            out += self._estimate_messages(stamp, pose, covariance)
        out.append((DIAGNOSTICS_OUT, DIAGNOSTIC_ARRAY, self.diagnostics(now)))
        self._next_diagnostics = max(self._next_diagnostics + live.diagnostics_period_s, now)
        return out

    def stale(self, now: float | None = None) -> list[str]:
        """The sensors silent for longer than their timeout (never heard of counts from the start)."""
        now = self._monotonic() if now is None else now
        live = self.config.live
        stale = []
        for sensor in SENSORS:
            limit = live.camera_stale_after_s if sensor == "camera" else live.stale_after_s
            if self._diagnostics.silent_for(sensor, now) > limit:
                stale.append(sensor)
        return stale

    def all_dropped(self) -> Counter[str]:
        total = Counter(self.dropped)
        if self.estimator is not None:
            total.update(self.estimator.dropped)
        return total

    def all_events(self) -> Counter[str]:
        total = Counter(self.events)
        if self.estimator is not None:
            total.update(self.estimator.events)
        if self._worker is not None and self._worker.skipped:
            total["camera_busy_skipped"] += self._worker.skipped
        return total

    def diagnostics(self, now: float | None = None) -> Any:
        now = self._monotonic() if now is None else now
        stale = self.stale(now)
        dropped = self.all_dropped()
        estimator = self.estimator
        held_age = now - self._last_at if self._last is not None else None
        values = {
            "object": f"{self.shape.kind} {list(self.shape.size)}" if self.shape else "unknown",
            "steps": str(len(estimator.steps)) if estimator else "0",
            "factors": str(len(estimator.graph)) if estimator else "0",
            **self._diagnostics.estimate_values(held_age),
            "dropped_total": str(sum(dropped.values())),
        }
        values.update({f"dropped.{reason}": str(n) for reason, n in sorted(dropped.items())})
        values.update({f"events.{name}": str(n) for name, n in sorted(self.all_events().items())})
        if self.unsupported_publishers:
            values["unsupported_type_publishers"] = str(len(self.unsupported_publishers))
            values.update({f"unsupported_type.{topic}": msgtype
                           for topic, msgtype in sorted(set(self.unsupported_publishers.values()))})
        values["stale"] = ",".join(stale)
        if self.shape is None:
            level, text = WARN, f"waiting for the object's shape on {self.config.topics.object_info}"
        elif stale:
            level = WARN
            text = f"stale: {', '.join(stale)}"
            if self._last is not None and held_age is not None and held_age >= self.config.live.stale_after_s:
                text += f"; holding the last estimate ({held_age:.1f} s old)"
        else:
            level, text = OK, "tracking"
        topics: dict[str, list[str]] = {}
        for spec in self._inputs.values():
            topics.setdefault(spec.feeds, []).append(spec.topic)
        return self._diagnostics.message(now, self._wall_ns(), (level, text, values), topics, stale)

    @property
    def started(self) -> float:
        return self._diagnostics.started

    @property
    def received(self) -> Counter[str]:
        """Messages received by input feed (tactile, ee_pose, camera, object_info, ...), cumulative."""
        return self._diagnostics.received

    @property
    def estimates(self) -> int:
        return self._diagnostics.estimates

    @property
    def held(self) -> int:
        """How often the last estimate was republished while no new one came."""
        return self._diagnostics.held

    def summary(self) -> str:
        dropped = self.all_dropped()
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items()))
        steps = len(self.estimator.steps) if self.estimator else 0
        events = self.all_events()
        reloaded, failed = events["model_reloaded"], events["model_reload_failed"]
        reloads = f", {reloaded} model reloads" + (f" ({failed} refused)" if failed else "") \
            if reloaded or failed else ""
        return (f"{self.received['tactile']} tactile frames, {self.estimates} estimates, {steps} steps, "
                f"{sum(dropped.values())} dropped{f' ({reasons})' if reasons else ''}{reloads}, "
                f"{self._monotonic() - self.started:.1f} s")
