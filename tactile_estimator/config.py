"""One configuration schema for the CLI and ``ros2 launch`` (DESIGN.md, "Conventions").

Files are ROS 2 parameter files: ``<node name>: {ros__parameters: {...}}`` (or ``/**``), with
nested maps that ROS flattens into dotted parameter names. The same file is read here into
dataclasses; an unknown or ill-typed key is an error that names the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

FACTOR_FAMILIES = ("tactile", "tactile_normal", "pushing", "contact", "ee_prior", "camera", "first_pose")


MAX_FINAL_ITERATIONS = 100  # the end-of-bag re-solve converges in a few; 1e6 ran for minutes


class ConfigError(ValueError):
    """A configuration key is unknown, ill-typed or out of range; the message names it."""


@dataclass
class TopicsConfig:
    tactile: str = "/digit/image_raw"
    ee_pose: str = "/ee_pose"
    camera: str = "/object_detection"
    ground_truth: str = "/object_ground_truth"
    object_info: str = "/object_info"
    model_updated: str = "/trainer_node/model_updated"  # std_msgs/String: path of a new model to load


@dataclass
class FramesConfig:
    world: str = "world"
    ee: str = "ee"
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


BACKENDS = ("isam2", "gn")


@dataclass
class EstimatorConfig:
    backend: str = "isam2"
    model: str = ""  # model directory; empty: the shipped default
    disabled_factors: list[str] = field(default_factory=list)
    tactile_offsets: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # measured: benchmarks.accuracy --offsets
    image_height: int = 320
    image_width: int = 240
    max_tilt_rad: float = 0.05
    ee_max_gap_s: float = 0.1  # interpolation across larger gaps in the pose stream is refused
    max_stamp_jump_s: float = 10.0  # a stream's stamp jumping further needs a second message to confirm it
    camera_max_offset_s: float = 0.05  # a detection further than this from every step is dropped
    initial_object_pose: list[float] = field(default_factory=list)  # empty: the first camera detection
    max_pending_s: float = 5.0
    network_threads: int = 1  # torch threads for the tactile network; one is fastest for one frame at a time
    freeze_gc: bool = True  # move the long-lived graph out of Python's cyclic collector after each step
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

    def validate(self) -> EstimatorConfig:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: '{self.backend}' is unknown; expected one of {', '.join(BACKENDS)}")
        if self.gauss_newton.window < 2 or self.gauss_newton.iterations < 1:
            raise ConfigError("gauss_newton: window must be at least 2 steps and iterations at least 1")
        for name in self.disabled_factors:
            if name not in FACTOR_FAMILIES:
                known = ", ".join(FACTOR_FAMILIES)
                raise ConfigError(f"disabled_factors: '{name}' is unknown; expected one of {known}")
        if not self.tactile_offsets or any(o < 1 for o in self.tactile_offsets):
            raise ConfigError(f"tactile_offsets: {self.tactile_offsets} must be positive step offsets")
        if self.keyframe.every_n_frames < 1:
            raise ConfigError("keyframe.every_n_frames must be at least 1")
        if self.final_iterations < 0:
            raise ConfigError(f"final_iterations: {self.final_iterations} must be 0 or more")
        if self.initial_object_pose and len(self.initial_object_pose) != 3:
            raise ConfigError("initial_object_pose must be [x, y, theta] or empty")
        for name in ("ee_prior", "camera", "first_pose"):
            sigmas = getattr(self.noise, name)
            if len(sigmas) != 3 or any(not (s > 0 and math.isfinite(s)) for s in sigmas):
                raise ConfigError(f"noise.{name}: {sigmas} must be three positive standard deviations")
        live = self.live
        for name in ("diagnostics_period_s", "stale_after_s", "camera_stale_after_s", "path_period_s"):
            value = getattr(live, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"live.{name}: {value} must be a positive number of seconds")
        walk = live.hold_random_walk
        if len(walk) != 3 or any(not (s >= 0 and math.isfinite(s)) for s in walk):
            raise ConfigError(f"live.hold_random_walk: {walk} must be three non-negative rates (m, m, rad per sqrt(s))")
        if live.image_queue_depth < 1 or live.pose_queue_depth < 1:
            raise ConfigError("live.image_queue_depth and live.pose_queue_depth must be at least 1")
        self._check_ranges()
        return self

    def _check_ranges(self) -> None:
        """Numbers that would otherwise crash a solver or silently disable every input."""
        ranges = {  # key: (value, lowest, highest, whether the lowest is allowed)
            "image_height": (self.image_height, 1, 4096, True),
            "image_width": (self.image_width, 1, 4096, True),
            "max_tilt_rad": (self.max_tilt_rad, 0.0, math.pi, False),
            "ee_max_gap_s": (self.ee_max_gap_s, 0.0, 3600.0, False),
            "max_stamp_jump_s": (self.max_stamp_jump_s, 0.0, 1e6, False),
            "camera_max_offset_s": (self.camera_max_offset_s, 0.0, 3600.0, False),
            "max_pending_s": (self.max_pending_s, 0.0, 3600.0, False),
            "network_threads": (self.network_threads, 1, 1024, True),
            "final_iterations": (self.final_iterations, 0, MAX_FINAL_ITERATIONS, True),
            "isam2.relinearize_skip": (self.isam2.relinearize_skip, 1, 1_000_000, True),
            "isam2.relinearize_threshold": (self.isam2.relinearize_threshold, 0.0, 10.0, True),
            "noise.contact": (self.noise.contact, 0.0, 1.0, False),
        }
        for key, (value, lowest, highest, closed) in ranges.items():
            above = value >= lowest if closed else value > lowest
            if not (math.isfinite(value) and above and value <= highest):
                bracket = "[" if closed else "("
                raise ConfigError(f"{key}: {value!r} is outside {bracket}{lowest}, {highest}]")
        if not all(math.isfinite(v) for v in self.initial_object_pose):
            raise ConfigError(f"initial_object_pose: {self.initial_object_pose} must be finite")

    def enabled(self, family: str) -> bool:
        return family not in self.disabled_factors


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
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {kind}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown parameter; known: {', '.join(sorted(known))}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _unflatten(values: dict[str, Any]) -> dict[str, Any]:
    """ROS flattens nested parameters into dotted names; accept both forms."""
    nested: dict[str, Any] = {}
    for key, value in values.items():
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def parameters_from_file(path: str | Path, node_name: str) -> dict[str, Any]:
    """The ros__parameters map for node_name (or the ``/**`` wildcard) of a parameter file."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the parameter file: {error}".replace("\n", " ")) from error
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a map of node names to ros__parameters")
    params: dict[str, Any] = {}
    for name in ("/**", node_name, "/" + node_name):
        section = document.get(name)
        if section is None:
            continue
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ConfigError(f"{path}: section '{name}' has no ros__parameters")
        params.update(section["ros__parameters"] or {})
    if not params and document:
        raise ConfigError(f"{path}: no section for node '{node_name}'; it has {', '.join(map(str, document))}")
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
    sampler: str = "isam2"  # posterior samples from iSAM2 joint marginals or the batched Gauss-Newton backend
    samples: int = 10  # S, samples of the posterior per trajectory and update
    runs_per_update: int = 2  # trajectories whose losses are averaged into one Adam step
    # tactile:xy: the tactile θ sigma keeps its measured default (benchmarks.tactile_residuals; README)
    learn: list[str] = field(default_factory=lambda: ["tactile_head", "tactile:xy", "pushing"])
    learning_rate_sigma: float = 0.05  # Adam, on log-sigma
    learning_rate_network: float = 0.0003  # Adam, on the network's parameters
    l2: float = 0.001  # on the distance of θ from its starting point
    solver_iterations: int = 10  # Gauss-Newton iterations (gn) or iSAM2 updates (isam2) per solve
    seed: int = 0
    threads: int = 0  # torch threads; 0: torch's default
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
            raise ConfigError(f"method: '{self.method}' is unknown; expected one of {', '.join(TRAIN_METHODS)}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler: '{self.sampler}' is unknown; expected one of {', '.join(SAMPLERS)}")
        for name in self.learn:
            family, axes = split_learn(name)
            if family not in LEARNABLE:
                raise ConfigError(f"learn: '{name}' is unknown; expected any of {', '.join(LEARNABLE)}")
            axes_ok = bool(axes) and set(axes) <= set("xyz") and len(set(axes)) == len(axes)
            if ":" in name and (family not in SIGMA_AXES or not axes_ok):
                raise ConfigError(f"learn: '{name}': only the 3-axis families ({', '.join(SIGMA_AXES)}) take "
                                  f"axes, as family:axes with axes from xyz (x, y, θ), e.g. tactile:xy")
        if self.epochs < 0 or self.samples < 1 or self.runs_per_update < 1 or self.solver_iterations < 1:
            raise ConfigError("epochs must be >= 0; samples, runs_per_update and solver_iterations >= 1")
        if self.ee_truth not in ("measured", "bag"):
            raise ConfigError(f"ee_truth: '{self.ee_truth}' is unknown; expected measured or bag")
        if self.persistence not in ("model", "none"):
            raise ConfigError(f"persistence: '{self.persistence}' is unknown; expected model or none")
        if self.keep not in ("best", "last"):
            raise ConfigError(f"keep: '{self.keep}' is unknown; expected best or last")
        if self.blackbox.optimizer not in ("cma", "nelder-mead"):
            name = self.blackbox.optimizer
            raise ConfigError(f"blackbox.optimizer: '{name}' is unknown; expected cma or nelder-mead")
        if self.unroll.iterations < 1:
            raise ConfigError("unroll.iterations must be at least 1")
        if not self.watch.poll_s > 0 or self.watch.settle_s < 0 or self.watch.min_new_bags < 1:
            raise ConfigError("watch.poll_s must be positive, watch.settle_s >= 0 and watch.min_new_bags >= 1")
        if self.watch.accept not in ("improved", "always"):
            raise ConfigError(f"watch.accept: '{self.watch.accept}' is unknown; expected improved or always")
        return self


def load_trainer_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainerConfig:
    """The trainer's configuration: defaults, then the file's trainer_node section, then overrides."""
    return _load(TrainerConfig, "trainer_node", path, overrides)
