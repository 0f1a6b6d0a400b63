"""One configuration schema for the CLI and ``ros2 launch`` (docs/design.md, "Conventions").

Files are ROS 2 parameter files: ``<node name>: {ros__parameters: {...}}`` (or ``/**``), with
nested maps that ROS flattens into dotted parameter names. The same file is read here into
dataclasses; an unknown or ill-typed key is an error that names the key.

Every error is one line that names the file and the key, and quotes at most QUOTE_LIMIT characters
of a value (quote()). A file must be UTF-8 and at most MAX_FILE_BYTES; it is read by a YAML safe
loader that refuses a document of more than MAX_YAML_NODES nodes once its aliases are expanded (a
"billion laughs") or nested deeper than MAX_YAML_DEPTH, before anything is built from it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from tactile_estimator.factors import FAMILIES

FACTOR_FAMILIES = tuple(name for name, family in FAMILIES.items() if family.switchable)


MAX_FINAL_ITERATIONS = 100  # the end-of-bag re-solve converges in a few; 1e6 ran for minutes
MAX_TACTILE_OFFSET = 100  # the estimator keeps this many steps' images


class ConfigError(ValueError):
    """A configuration key is unknown, ill-typed or out of range; the message names it."""


QUOTE_LIMIT = 80  # characters of a value an error message repeats
_QUOTE_DEPTH = 8  # nesting that quote() shows before it writes "..."


def positive_number(value: object) -> bool:
    """A finite positive number (not a bool), as a file or a message may hold it; an integer too
    large for a float is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:
        return False


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, or its first ``limit`` characters, "..." and the value's size.

    The repr is built piece by piece and given up once it is long enough, so a value that YAML
    aliases expand to gigabytes, a recursive list or an integer of a million digits costs no more
    than a short one.
    """
    pieces, length = [], 0
    for piece in _repr_pieces(value, 0, limit):
        pieces.append(piece)
        length += len(piece)
        if length > limit:
            return f"{''.join(pieces)[:limit]}... ({_size(value)})"
    return "".join(pieces)


def _repr_pieces(value: Any, depth: int, limit: int) -> Iterator[str]:
    if isinstance(value, (str, bytes)):
        yield repr(value[:limit + 1])
    elif isinstance(value, int) and not isinstance(value, bool):
        yield repr(value) if value.bit_length() < 1000 else hex(value)[:limit + 3]  # decimal has a digit limit
    elif isinstance(value, (list, tuple, set, frozenset, dict)):
        if depth >= _QUOTE_DEPTH:
            yield "..."
            return
        opening, closing = {list: "[]", tuple: "()", dict: "{}"}.get(type(value), "{}")
        yield opening
        for i, item in enumerate(value.items() if isinstance(value, dict) else value):
            if i:
                yield ", "
            if isinstance(value, dict):
                yield from _repr_pieces(item[0], depth + 1, limit)
                yield ": "
                item = item[1]
            yield from _repr_pieces(item, depth + 1, limit)
        yield closing
    else:
        yield repr(value)


def _size(value: Any) -> str:
    if isinstance(value, str):
        return f"{len(value)} characters"
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    if isinstance(value, int):
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return f"{type(value).__name__} of {len(value)} items"
    return type(value).__name__


def _name(key: Any) -> str:
    """A key as an error message names it: as it is if it is a short printable string, else quoted."""
    return key if isinstance(key, str) and len(key) <= QUOTE_LIMIT and key.isprintable() else quote(key)


def one_line(text: str, limit: int = 4 * QUOTE_LIMIT) -> str:
    """A message that is already text, such as YAML's, on one line and at most ``limit`` characters."""
    length = len(text)
    text = " ".join(text[:limit + 1].split())
    return text if len(text) <= limit else f"{text[:limit]}... ({length} characters)"


@dataclass
class TopicsConfig:
    tactile: str = "/digit/image_raw"
    ee_pose: str = "/ee_pose"
    camera: str = "/object_detection"
    ground_truth: str = "/object_ground_truth"
    object_info: str = "/object_info"
    model_updated: str = "/trainer_node/model_updated"  # std_msgs/String: path of a new model to load
    tf: str = "/tf"  # with ee_source: tf, the end-effector is looked up on these (tf2_msgs/TFMessage)
    tf_static: str = "/tf_static"
    camera_image: str = "/camera/image_raw"  # sensor_msgs/Image, or CompressedImage on <topic>/compressed
    camera_info: str = "/camera/camera_info"  # sensor_msgs/CameraInfo of camera_image
    # the one type each pose input is subscribed as live (a topic with two types cannot be recorded);
    # replay reads either from a bag
    ee_pose_type: str = "PoseStamped"  # or PoseWithCovarianceStamped
    camera_type: str = "PoseWithCovarianceStamped"  # or PoseStamped


@dataclass
class FramesConfig:
    world: str = "world"
    ee: str = "ee"  # the end-effector link (ee_source: tf), e.g. tool0 or panda_link8
    sensor: str = ""  # the gel's frame, mounted on ``ee`` (a static transform); empty: ``ee`` is the gel
    object: str = "object_estimate"


@dataclass
class ObjectConfig:
    """The pushed object's footprint. ``shape: from_bag`` takes it from the bag's object_info topic."""

    shape: str = "from_bag"
    size: list[float] = field(default_factory=list)


@dataclass
class KeyframeConfig:
    """A tactile frame becomes a step when every_n frames have passed or the end-effector has moved."""

    every_n_frames: int = 1
    min_translation_m: float = 0.0
    min_rotation_rad: float = 0.0


@dataclass
class ContactConfig:
    """Contact is read from the tactile image: its difference to the gel's background."""

    pixel_threshold: float = 18.0  # grey levels
    min_fraction: float = 0.004  # of pixels above the threshold
    background_frames: int = 3  # first frames of a stream, assumed out of contact


@dataclass
class NoiseConfig:
    """Standard deviations of the factors that are not learned (x, y, theta or scalar)."""

    ee_prior: list[float] = field(default_factory=lambda: [0.0005, 0.0005, 0.002])
    camera: list[float] = field(default_factory=lambda: [0.005, 0.005, 0.0349])
    contact: float = 0.001
    first_pose: list[float] = field(default_factory=lambda: [0.005, 0.005, 0.0349])


@dataclass
class Isam2Config:
    relinearize_threshold: float = 0.05  # measured: 0.01 doubles p99 latency with no accuracy gain
    relinearize_skip: int = 1


@dataclass
class GaussNewtonConfig:
    """The torch backend in live use: a warm-started re-solve of the last ``window`` steps per step."""

    window: int = 50  # steps re-solved per update; older poses are held at their values
    iterations: int = 3  # Gauss-Newton iterations per update at most
    device: str = "cpu"  # cpu, cuda or cuda:N


@dataclass
class LiveConfig:
    """The live estimator (ROS 2 node and DDS runner): diagnostics, stale sensors, held estimates."""

    diagnostics_period_s: float = 1.0  # /diagnostics, and the held estimate while no new one comes
    stale_after_s: float = 0.5  # a tactile or end-effector stream silent this long is stale
    camera_stale_after_s: float = 5.0  # camera detections are intermittent; they get longer
    hold_random_walk: list[float] = field(default_factory=lambda: [0.02, 0.02, 0.1])  # per sqrt(s): m, m, rad
    path_period_s: float = 1.0  # ~/object_path (the whole smoothed trajectory) at most this often
    publish_marker: bool = True  # ~/object_marker: the object's footprint at the estimate
    image_queue_depth: int = 5  # sensor-data QoS history for tactile images
    pose_queue_depth: int = 100  # reliable QoS history for poses: 1 s at 100 Hz, so a slow update loses none


CAMERA_SOURCES = ("auto", "image", "detection", "tf")


@dataclass
class CameraConfig:
    """Where the camera prior comes from, and the AprilTag the object carries (docs/camera.md).

    ``source``: ``detection`` (a tracker's poses on ``topics.camera``), ``image`` (the built-in
    AprilTag detector on ``topics.camera_image`` with ``topics.camera_info``), ``tf`` (an
    apriltag_ros-style tag frame on ``/tf``) or ``auto``: replay takes the detection topic if the bag
    has it, else the images; live reads both until a detection arrives, then the detections alone.
    """

    source: str = "auto"
    tag_id: int = 0
    tag_size_m: float = 0.04  # the tag's black square
    object_T_tag: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.03, 0.0, 0.0, 0.0, 1.0])  # x y z qx qy qz qw
    frame: str = ""  # the camera's optical frame; empty: the CameraInfo's (or the image's) frame_id
    world_T_camera: list[float] = field(default_factory=list)  # x y z qx qy qz qw; empty: from /tf_static
    tag_frame: str = ""  # source tf: the tag's frame; empty: tag36h11:<tag_id>, as apriltag_ros names it
    floor_translation_m: float = 0.0005  # the detector's covariance floor: extrinsics and mount calibration
    floor_rotation_rad: float = 0.005236  # 0.3 degrees
    min_side_px: float = 12.0  # smaller tags are rejected
    max_reprojection_px: float = 3.0
    tf_sigmas: list[float] = field(default_factory=list)  # source tf: x, y, yaw sigmas; empty: noise.camera
    rate_hz: float = 5.0  # live: at most this many frames a second are detected; 0: all it keeps up with
    threaded: bool = True  # live: detect on a thread of its own, off the tactile update


BACKENDS = ("isam2", "gn")
EE_SOURCES = ("topic", "tf")
POSE_INPUT_TYPES = ("PoseStamped", "PoseWithCovarianceStamped")  # geometry_msgs/msg/...


@dataclass
class EstimatorConfig:
    backend: str = "isam2"
    model: str = ""  # model directory; empty: the shipped default
    disabled_factors: list[str] = field(default_factory=list)
    tactile_offsets: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # measured: benchmarks.accuracy --offsets
    image_height: int = 320
    image_width: int = 240
    max_tilt_rad: float = 0.05
    pushing_friction: float = 0.45  # gel-object friction μ of the pushing factor's motion cone; 0: the contact sticks
    ee_max_gap_s: float = 0.1  # interpolation across larger gaps in the pose stream is refused
    ee_hold_s: float = 0.0  # a frame this soon after the newest end-effector pose takes it; 0: wait and interpolate
    max_stamp_jump_s: float = 10.0  # a stream's stamp jumping further needs a second message to confirm it
    clock_restart_s: float = 1.0  # a stream going back further, confirmed, restarted its clock: a new graph
    ee_source: str = "topic"  # topic: topics.ee_pose; tf: frames.world -> frames.ee (-> frames.sensor) on /tf
    camera_max_offset_s: float = 0.05  # a detection further than this from every step is dropped
    initial_object_pose: list[float] = field(default_factory=list)  # empty: the first camera detection
    max_pending_s: float = 5.0
    network_threads: int = 1  # torch threads for the tactile network; one is fastest for one frame at a time
    freeze_gc: bool = True  # live (run, the nodes): each batch of estimates moves the graph out of the cyclic GC
    final_iterations: int = 3  # replay's final trajectory: Gauss-Newton iterations over the whole graph; 0: none
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    object: ObjectConfig = field(default_factory=ObjectConfig)
    keyframe: KeyframeConfig = field(default_factory=KeyframeConfig)
    contact: ContactConfig = field(default_factory=ContactConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    isam2: Isam2Config = field(default_factory=Isam2Config)
    gauss_newton: GaussNewtonConfig = field(default_factory=GaussNewtonConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)

    def validate(self) -> EstimatorConfig:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: {quote(self.backend)} is unknown; expected one of {', '.join(BACKENDS)}")
        for key in ("ee_pose_type", "camera_type"):
            if getattr(self.topics, key) not in POSE_INPUT_TYPES:
                raise ConfigError(f"topics.{key}: {quote(getattr(self.topics, key))} is unknown; "
                                  f"expected one of {', '.join(POSE_INPUT_TYPES)}")
        if self.ee_source not in EE_SOURCES:
            raise ConfigError(f"ee_source: {quote(self.ee_source)} is unknown; expected one of {', '.join(EE_SOURCES)}")
        if self.ee_source == "tf":
            frames = self.frames
            names = [("frames.world", frames.world), ("frames.ee", frames.ee)] + \
                ([("frames.sensor", frames.sensor)] if frames.sensor else [])
            for key, name in names:
                if not name.strip("/"):
                    raise ConfigError(f"{key}: ee_source tf needs a frame name")
            if len({name.strip("/") for _, name in names}) != len(names):
                raise ConfigError(f"frames: ee_source tf needs different frames, got "
                                  f"{', '.join(f'{k} {quote(n)}' for k, n in names)}")
        if self.gauss_newton.window < 2 or self.gauss_newton.iterations < 1:
            raise ConfigError("gauss_newton: window must be at least 2 steps and iterations at least 1")
        for name in self.disabled_factors:
            if name not in FACTOR_FAMILIES:
                known = ", ".join(FACTOR_FAMILIES)
                raise ConfigError(f"disabled_factors: {quote(name)} is unknown; expected one of {known}")
        if not self.tactile_offsets or any(not 1 <= o <= MAX_TACTILE_OFFSET for o in self.tactile_offsets):
            raise ConfigError(f"tactile_offsets: {quote(self.tactile_offsets)} must be step offsets from 1 to "
                              f"{MAX_TACTILE_OFFSET}")
        if self.final_iterations < 0:
            raise ConfigError(f"final_iterations: {quote(self.final_iterations)} must be 0 or more")
        if self.initial_object_pose and len(self.initial_object_pose) != 3:
            raise ConfigError("initial_object_pose must be [x, y, theta] or empty")
        for name in ("ee_prior", "camera", "first_pose"):
            sigmas = getattr(self.noise, name)
            if len(sigmas) != 3 or any(not (s > 0 and math.isfinite(s)) for s in sigmas):
                raise ConfigError(f"noise.{name}: {quote(sigmas)} must be three positive standard deviations")
        live = self.live
        for name in ("diagnostics_period_s", "stale_after_s", "camera_stale_after_s", "path_period_s"):
            value = getattr(live, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"live.{name}: {quote(value)} must be a positive number of seconds")
        walk = live.hold_random_walk
        if len(walk) != 3 or any(not (s >= 0 and math.isfinite(s)) for s in walk):
            raise ConfigError(f"live.hold_random_walk: {quote(walk)} must be three non-negative rates "
                              "(m, m, rad per sqrt(s))")
        self._check_ranges()
        self._check_object()
        self._check_device()
        self._check_camera()
        return self

    def _check_camera(self) -> None:
        camera = self.camera
        if camera.source not in CAMERA_SOURCES:
            raise ConfigError(f"camera.source: {quote(camera.source)} is unknown; expected one of "
                              f"{', '.join(CAMERA_SOURCES)}")
        _check_ranges({
            "camera.tag_id": (camera.tag_id, 0, 586, True),
            "camera.tag_size_m": (camera.tag_size_m, 0.0, 10.0, False),
            "camera.floor_translation_m": (camera.floor_translation_m, 0.0, 1.0, True),
            "camera.floor_rotation_rad": (camera.floor_rotation_rad, 0.0, math.pi, True),
            "camera.min_side_px": (camera.min_side_px, 0.0, 4096.0, True),
            "camera.max_reprojection_px": (camera.max_reprojection_px, 0.0, 4096.0, False),
            "camera.rate_hz": (camera.rate_hz, 0.0, 10_000.0, True),
        })
        for key in ("object_T_tag", "world_T_camera"):
            values = getattr(camera, key)
            if key == "world_T_camera" and not values:
                continue
            norm = math.sqrt(sum(v * v for v in values[3:])) if len(values) == 7 else 0.0
            if len(values) != 7 or not all(math.isfinite(v) for v in values) or abs(norm - 1.0) > 1e-3:
                raise ConfigError(f"camera.{key}: {quote(values)} must be [x, y, z, qx, qy, qz, qw] with a unit "
                                  "quaternion" + ("" if key == "object_T_tag" else ", or empty (from /tf_static)"))
        sigmas = camera.tf_sigmas
        if sigmas and (len(sigmas) != 3 or any(not (s > 0 and math.isfinite(s)) for s in sigmas)):
            raise ConfigError(f"camera.tf_sigmas: {quote(sigmas)} must be three positive standard deviations or empty")

    def _check_ranges(self) -> None:
        """Numbers that would otherwise crash a solver or silently disable every input."""
        ranges = {  # key: (value, lowest, highest, whether the lowest is allowed)
            "image_height": (self.image_height, 1, 4096, True),
            "image_width": (self.image_width, 1, 4096, True),
            "max_tilt_rad": (self.max_tilt_rad, 0.0, math.pi, False),
            "pushing_friction": (self.pushing_friction, 0.0, 10.0, True),
            "ee_max_gap_s": (self.ee_max_gap_s, 0.0, 3600.0, False),
            "ee_hold_s": (self.ee_hold_s, 0.0, 1.0, True),
            "max_stamp_jump_s": (self.max_stamp_jump_s, 0.0, 1e6, False),
            "clock_restart_s": (self.clock_restart_s, 0.0, 1e6, False),
            "camera_max_offset_s": (self.camera_max_offset_s, 0.0, 3600.0, False),
            "max_pending_s": (self.max_pending_s, 0.0, 3600.0, False),
            "network_threads": (self.network_threads, 1, 1024, True),
            "final_iterations": (self.final_iterations, 0, MAX_FINAL_ITERATIONS, True),
            "isam2.relinearize_skip": (self.isam2.relinearize_skip, 1, 1_000_000, True),
            "isam2.relinearize_threshold": (self.isam2.relinearize_threshold, 0.0, 10.0, True),
            "noise.contact": (self.noise.contact, 0.0, 1.0, False),
            "gauss_newton.window": (self.gauss_newton.window, 2, 100_000, True),
            "gauss_newton.iterations": (self.gauss_newton.iterations, 1, 100, True),
            "keyframe.every_n_frames": (self.keyframe.every_n_frames, 1, 100_000, True),
            "keyframe.min_translation_m": (self.keyframe.min_translation_m, 0.0, 10.0, True),
            "keyframe.min_rotation_rad": (self.keyframe.min_rotation_rad, 0.0, math.pi, True),
            "contact.pixel_threshold": (self.contact.pixel_threshold, 0.0, 255.0, True),
            "contact.min_fraction": (self.contact.min_fraction, 0.0, 1.0, True),
            "contact.background_frames": (self.contact.background_frames, 1, 1000, True),  # kept in memory
            "live.image_queue_depth": (self.live.image_queue_depth, 1, 10_000, True),
            "live.pose_queue_depth": (self.live.pose_queue_depth, 1, 100_000, True),
        }
        _check_ranges(ranges)
        if not all(math.isfinite(v) for v in self.initial_object_pose):
            raise ConfigError(f"initial_object_pose: {quote(self.initial_object_pose)} must be finite")

    def _check_object(self) -> None:
        """A configured shape, as objects.Shape checks it, in the words the estimator would use later."""
        from tactile_estimator.objects import DEFAULT_SIZES

        kind, size = self.object.shape, self.object.size
        if kind == "from_bag":
            return
        if kind not in DEFAULT_SIZES:
            raise ConfigError(f"object: object shape {quote(kind)} is unknown; expected from_bag or one of "
                              f"{', '.join(DEFAULT_SIZES)}")
        expected = len(DEFAULT_SIZES[kind])
        if len(size) != expected or not all(0 < s < math.inf for s in size):
            raise ConfigError(f"object: object size {quote(size)} for shape '{kind}' needs {expected} positive "
                              "number(s)")

    def _check_device(self) -> None:
        """gauss_newton.device is a device name, and one this machine has if the gn backend is chosen."""
        device = self.gauss_newton.device
        match = re.fullmatch(r"cpu|cuda(?::(0|[1-9][0-9]{0,3}))?", device)
        if match is None:
            raise ConfigError(f"gauss_newton.device: {quote(device)} is not a device; expected cpu, cuda or cuda:N")
        if device == "cpu" or self.backend != "gn":
            return
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(match.group(1) or 0) >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise ConfigError(f"gauss_newton.device: {device} is not available, this machine has {have}; "
                              "use cpu")

    def enabled(self, family: str) -> bool:
        return family not in self.disabled_factors


def _check_ranges(ranges: dict[str, tuple[Any, Any, Any, bool]]) -> None:
    """key: (value, lowest, highest, whether the lowest is allowed); NaN and infinities are outside too."""
    for key, (value, lowest, highest, closed) in ranges.items():
        above = value >= lowest if closed else value > lowest
        if not (above and value <= highest):  # NaN compares false; an integer of any size compares
            bracket = "[" if closed else "("
            raise ConfigError(f"{key}: {quote(value)} is outside {bracket}{lowest}, {highest}]")


def _coerce(value: Any, kind: Any, key: str) -> Any:
    origin = getattr(kind, "__origin__", None)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a map, got {type(value).__name__}")
        return _build(kind, value, key + ".")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        (item,) = kind.__args__
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {quote(value)}")
        try:
            return float(value)
        except OverflowError:  # an integer beyond float's range
            raise ConfigError(f"{key}: {quote(value)} is too large") from None
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {quote(value)}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {quote(value)}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {quote(value)}")
        return value
    raise ConfigError(f"{key}: unsupported type {kind}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{prefix}{_name(key)}: unknown parameter; known: {', '.join(sorted(known))}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _unflatten(values: dict[str, Any]) -> dict[str, Any]:
    """ROS flattens nested parameters into dotted names; accept both forms, and both at once.

    A later entry wins over an earlier one for the same parameter (so overrides win over the file).
    """
    nested: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise ConfigError(f"{quote(key)}: a parameter name must be a string")
        node = nested
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{_name('.'.join(parts[:i + 1]))}: expected a map, got {type(child).__name__}")
            child = dict(child)
            node[part] = child
            node = child
        _merge(node, parts[-1], value)
    return nested


def _merge(node: dict[str, Any], key: str, value: Any) -> None:
    """node[key] = value, where two maps are merged key by key (copies: neither input changes)."""
    old = node.get(key)
    if isinstance(old, dict) and isinstance(value, dict):
        node[key] = merged = dict(old)
        for inner, item in value.items():
            _merge(merged, inner, item)
    else:
        node[key] = value


MAX_FILE_BYTES = 1 << 20  # a parameter file is a few kB; a larger one is refused, not read
MAX_YAML_NODES = 100_000  # counted with aliases expanded, so an alias bomb is refused while it is read
MAX_YAML_DEPTH = 64  # nesting; the shipped files use 4


class _YamlLimit(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a document nested too deep or too big once its aliases are expanded.

    Each composed node's size (itself and every node below it, an alias counting as the whole node it
    names) is kept, so the count is exact and is checked before anything is constructed.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id of a composed node: its size with aliases expanded
        self._nodes = 0  # the document's size so far
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        alias = self.check_event(yaml.AliasEvent)
        line = self.peek_event().start_mark.line + 1
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _YamlLimit(f"line {line}: nested deeper than {MAX_YAML_DEPTH} levels")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if alias:
            size = self._sizes.get(id(node))
            if size is None:
                raise _YamlLimit(f"line {line}: an alias inside the node it names (a recursive structure)")
            self._nodes += size
        else:
            if isinstance(node, yaml.SequenceNode):
                children = node.value
            elif isinstance(node, yaml.MappingNode):
                children = [child for pair in node.value for child in pair]
            else:
                children = []
            self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
            self._nodes += 1
        if self._nodes > MAX_YAML_NODES:
            raise _YamlLimit(f"line {line}: more than {MAX_YAML_NODES} nodes once its aliases are expanded "
                             "(an alias bomb?)")
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """SafeConstructor's, where a value that its tag cannot hold (``!!bool maybe``, month 13, an
        integer of 5000 digits) is a ConstructorError at the node, as YAML's own errors are."""
        try:
            return super().construct_object(node, deep)
        except _BUILD_ERRORS as error:
            what = quote(node.value) if isinstance(node, yaml.ScalarNode) else "the node"
            reason = f": {error}" if isinstance(error, ValueError) else ""
            problem = f"cannot read {what} as {node.tag.rsplit(':', 1)[-1]}{reason}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


_BUILD_ERRORS = (ValueError, OverflowError, TypeError, KeyError, AttributeError, IndexError)


def read_yaml(path: str | Path) -> Any:
    """A YAML file's document, or a one-line ConfigError that names the file.

    The file must be UTF-8 and at most MAX_FILE_BYTES; YAML's safe subset only, within
    MAX_YAML_NODES and MAX_YAML_DEPTH.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the parameter file: {one_line(str(error))}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes; not a parameter file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                          "a parameter file is UTF-8") from None
    try:
        return safe_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: cannot read the parameter file: {yaml_reason(error)}") from None


def yaml_reason(error: yaml.YAMLError) -> str:
    """What YAML found wrong and where, in one line of at most a few hundred characters."""
    mark = getattr(error, "problem_mark", None)
    if isinstance(error, yaml.MarkedYAMLError) and error.problem and mark is not None:
        context = f" ({error.context})" if error.context else ""
        return f"line {mark.line + 1}, column {mark.column + 1}: {one_line(error.problem + context, 2 * QUOTE_LIMIT)}"
    return one_line(str(error), 2 * QUOTE_LIMIT)


def safe_yaml(text: str) -> Any:
    """yaml.safe_load within MAX_YAML_NODES and MAX_YAML_DEPTH; every failure is a yaml.YAMLError."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader: no Python tags
    except (RecursionError, *_BUILD_ERRORS) as error:  # what construct_object cannot pin to a node
        raise yaml.YAMLError(str(error)) from None


def parameters_from_file(path: str | Path, node_name: str) -> dict[str, Any]:
    """The ros__parameters map for node_name (or the ``/**`` wildcard) of a parameter file."""
    document = read_yaml(path)
    if not isinstance(document, dict):
        got = "an empty file" if document is None else f"a {type(document).__name__}"
        raise ConfigError(f"{path}: expected a map of node names to ros__parameters, got {got}")
    params: dict[str, Any] = {}
    for name in ("/**", node_name, "/" + node_name):
        section = document.get(name)
        if section is None:
            continue
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ConfigError(f"{path}: section '{name}' has no ros__parameters")
        values = section["ros__parameters"]
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: {name}.ros__parameters: expected a map of parameter names to values, "
                              f"got a {type(values).__name__}")
        params.update(values)
    if not params and document:
        names = ", ".join(_name(key) for key in itertools.islice(document, 20))
        raise ConfigError(f"{path}: no section for node '{node_name}'; it has {one_line(names)}")
    return params


def _load(cls: type, node: str, path: str | Path | None, overrides: dict[str, Any] | None) -> Any:
    """Defaults, then the file's ``node`` section, then explicit overrides; errors name the file."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(parameters_from_file(path, node))
    values.update(overrides or {})
    try:
        return _build(cls, _unflatten(values)).validate()
    except ConfigError as error:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{error}") from None


def load_estimator_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> EstimatorConfig:
    """Read the estimator's configuration: defaults, then the file, then explicit overrides."""
    return _load(EstimatorConfig, "estimator_node", path, overrides)


LEARNABLE = ("tactile_head", "tactile_encoder", "tactile", "tactile_normal", "pushing", "contact", "ee_prior", "camera")
SIGMA_AXES = ("tactile", "pushing", "ee_prior", "camera")  # families whose sigma has x, y and θ
TRAIN_METHODS = ("leo", "supervised", "blackbox", "unroll")
SAMPLERS = ("isam2", "gn")


def split_learn(name: str) -> tuple[str, str]:
    """A ``learn`` entry: ``family`` (every axis) or ``family:axes`` (those of x, y, z=θ only)."""
    family, _, axes = name.partition(":")
    return family, axes


@dataclass
class BlackboxConfig:
    """Covariance search without gradients: the validation RMSE is the objective."""

    optimizer: str = "cma"  # cma (CMA-ES, the cma package) or nelder-mead (scipy)
    evaluations: int = 60  # objective evaluations (each solves every validation run once)
    initial_step: float = 0.5  # in log-sigma units


@dataclass
class UnrollConfig:
    """End-to-end through K differentiable Gauss-Newton iterations over a whole run."""

    iterations: int = 3
    translation_scale_m: float = 0.005  # error units of the loss: 5 mm and 0.05 rad weigh alike
    rotation_scale_rad: float = 0.05


@dataclass
class WatchConfig:
    """The trainer node's watch mode (``tactile-estimator train --watch``): when to retrain."""

    poll_s: float = 10.0  # how often the bag directories are looked at
    settle_s: float = 5.0  # a bare .mcap/.db3 file counts once unchanged this long (directories need metadata.yaml)
    min_new_bags: int = 1  # accepted new bags that start a round
    cumulative: bool = True  # a round trains on every accepted bag so far (else on the new ones only)
    accept: str = "improved"  # improved: publish only a model whose validation error went down; always


@dataclass
class TrainerConfig:
    method: str = "leo"
    epochs: int = 10
    sampler: str = "gn"  # posterior samples from the batched Gauss-Newton backend (faster) or iSAM2 joint marginals
    samples: int = 10  # S, samples of the posterior per trajectory and update
    runs_per_update: int = 2  # trajectories whose losses are averaged into one Adam step
    # tactile:xy: the tactile θ sigma keeps its measured default (benchmarks.tactile_residuals; README)
    learn: list[str] = field(default_factory=lambda: ["tactile_head", "tactile:xy", "pushing"])
    learning_rate_sigma: float = 0.05  # Adam, on log-sigma
    learning_rate_network: float = 0.0003  # Adam, on the network's parameters
    l2: float = 0.001  # on the distance of θ from its starting point
    solver_iterations: int = 10  # Gauss-Newton iterations (gn) or iSAM2 updates (isam2) per solve
    seed: int = 0
    threads: int = 1  # torch threads; 0: torch's default (one per core: slower on 2 cores, benchmarks/RESULTS.md)
    ee_truth: str = "measured"  # the end-effector's "ground truth": measured (as on a robot) or bag (/ee_ground_truth)
    # model: LEO fits the per-step sigma of a family whose error persists and the graph keeps the model's
    # persistence inflation (learning.runs.Theta); none: LEO fits the graph's sigma itself
    persistence: str = "model"
    # best: the model written is that of the epoch with the best validation score so far (the start counts);
    # last: the last epoch's
    keep: str = "best"
    blackbox: BlackboxConfig = field(default_factory=BlackboxConfig)
    unroll: UnrollConfig = field(default_factory=UnrollConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)

    def validate(self) -> TrainerConfig:
        if self.method not in TRAIN_METHODS:
            raise ConfigError(f"method: {quote(self.method)} is unknown; expected one of {', '.join(TRAIN_METHODS)}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler: {quote(self.sampler)} is unknown; expected one of {', '.join(SAMPLERS)}")
        for name in self.learn:
            family, axes = split_learn(name)
            if family not in LEARNABLE:
                raise ConfigError(f"learn: {quote(name)} is unknown; expected any of {', '.join(LEARNABLE)}")
            axes_ok = bool(axes) and set(axes) <= set("xyz") and len(set(axes)) == len(axes)
            if ":" in name and (family not in SIGMA_AXES or not axes_ok):
                raise ConfigError(f"learn: {quote(name)}: only the 3-axis families ({', '.join(SIGMA_AXES)}) take "
                                  f"axes, as family:axes with axes from xyz (x, y, θ), e.g. tactile:xy")
        if self.epochs < 0 or self.samples < 1 or self.runs_per_update < 1 or self.solver_iterations < 1:
            raise ConfigError("epochs must be >= 0; samples, runs_per_update and solver_iterations >= 1")
        if self.ee_truth not in ("measured", "bag"):
            raise ConfigError(f"ee_truth: {quote(self.ee_truth)} is unknown; expected measured or bag")
        if self.persistence not in ("model", "none"):
            raise ConfigError(f"persistence: {quote(self.persistence)} is unknown; expected model or none")
        if self.keep not in ("best", "last"):
            raise ConfigError(f"keep: {quote(self.keep)} is unknown; expected best or last")
        if self.blackbox.optimizer not in ("cma", "nelder-mead"):
            name = self.blackbox.optimizer
            raise ConfigError(f"blackbox.optimizer: {quote(name)} is unknown; expected cma or nelder-mead")
        if self.unroll.iterations < 1:
            raise ConfigError("unroll.iterations must be at least 1")
        if not self.watch.poll_s > 0 or self.watch.settle_s < 0 or self.watch.min_new_bags < 1:
            raise ConfigError("watch.poll_s must be positive, watch.settle_s >= 0 and watch.min_new_bags >= 1")
        if self.watch.accept not in ("improved", "always"):
            raise ConfigError(f"watch.accept: {quote(self.watch.accept)} is unknown; expected improved or always")
        day = 86400.0
        _check_ranges({
            "epochs": (self.epochs, 0, 100_000, True),
            "samples": (self.samples, 1, 10_000, True),
            "runs_per_update": (self.runs_per_update, 1, 100_000, True),
            "learning_rate_sigma": (self.learning_rate_sigma, 0.0, 10.0, True),
            "learning_rate_network": (self.learning_rate_network, 0.0, 10.0, True),
            "l2": (self.l2, 0.0, 1e6, True),
            "solver_iterations": (self.solver_iterations, 1, 1000, True),
            "seed": (self.seed, 0, 2**63 - 1, True),  # numpy's SeedSequence refuses a negative one
            "threads": (self.threads, 0, 1024, True),  # torch refuses a negative count
            "blackbox.evaluations": (self.blackbox.evaluations, 1, 1_000_000, True),
            "blackbox.initial_step": (self.blackbox.initial_step, 0.0, 10.0, False),
            "unroll.iterations": (self.unroll.iterations, 1, 100, True),
            "unroll.translation_scale_m": (self.unroll.translation_scale_m, 0.0, 10.0, False),  # divides the loss
            "unroll.rotation_scale_rad": (self.unroll.rotation_scale_rad, 0.0, 10.0, False),
            "watch.poll_s": (self.watch.poll_s, 0.0, day, False),
            "watch.settle_s": (self.watch.settle_s, 0.0, day, True),
            "watch.min_new_bags": (self.watch.min_new_bags, 1, 1_000_000, True),
        })
        return self


def load_trainer_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainerConfig:
    """The trainer's configuration: defaults, then the file's trainer_node section, then overrides."""
    return _load(TrainerConfig, "trainer_node", path, overrides)
