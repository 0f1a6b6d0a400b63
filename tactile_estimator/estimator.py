"""The estimator: records in, estimates out (DESIGN.md). No ROS here.

Streams arrive in any interleaving, each in its own stamp order. A tactile frame waits until the
end-effector stream covers its stamp (alignment.StreamAligner: stamp order, the end-effector pose
interpolated to the frame), contact is read from the image, and, when the keyframe policy keeps the
frame, a step (o_k, e_k) is made with its factors (graph.StepPolicy) and handed to the backend in
one ``add``. Camera detections are attached to the nearest step. The estimator orchestrates: it
keeps the graph, re-initialises the backend when a solve fails, and gives the estimates. Bad
inputs are dropped and counted by reason; the estimate goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np

from tactile_estimator.alignment import StreamAligner
from tactile_estimator.backends import Backend, BackendError, make_backend, solve_batch
from tactile_estimator.config import EstimatorConfig
from tactile_estimator.contact_detection import ContactDetector
from tactile_estimator.factors import Factor, Key, ObjectModel, ee_key, object_key
from tactile_estimator.factors.tactile_normal import symmetry
from tactile_estimator.graph import FactorGraph, Step, StepPolicy
from tactile_estimator.networks.tactile import ModelError, TactileModel
from tactile_estimator.records import CameraDetection, Estimate, PoseSample, TactileFrame

log = logging.getLogger(__name__)

WARNING_PERIOD_S = 5.0  # a dropped-input warning per reason at most this often (the counts are exact)


class Estimator:
    def __init__(self, config: EstimatorConfig, model: TactileModel, object_model: ObjectModel) -> None:
        self.config = config
        self.model = model
        # The contact's friction is the estimator's setting (pushing_friction), whoever built the model.
        self.object_model = object_model.with_friction(config.pushing_friction)
        self.dropped: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.skipped_frames = 0
        self.graph = FactorGraph()
        self._policy = StepPolicy(config, self.object_model, self.reject)
        self._aligner = StreamAligner(config, self.reject, lambda name: self.events.update([name]))
        self._backend: Backend = self._new_backend()
        self._retired: dict[Key, np.ndarray] = {}  # final values of poses in backends given up after a failure
        self._pending_frames: deque[TactileFrame] = deque()
        self._pending_camera: list[CameraDetection] = []
        self._warned: dict[str, tuple[float, int]] = {}  # per drop reason: last warning time, drops since
        self._contact = ContactDetector(config.contact)
        self._initial_pose: np.ndarray | None = (
            np.asarray(config.initial_object_pose, dtype=float) if config.initial_object_pose else None
        )
        self._initial_sigmas = np.asarray(config.noise.first_pose, dtype=float)
        self._last_estimate: Estimate | None = None
        self._latest: dict[Key, np.ndarray] = {}
        self._camera_used: list[np.ndarray] = []
        self._online: dict[int, np.ndarray] = {}

    @property
    def steps(self) -> list[Step]:
        """The steps made so far, in order (a kept tactile frame each)."""
        return self._policy.steps

    @property
    def normal_at_corner(self) -> int:
        """Contact frames whose normal head saw a corner (their own σ, or no factor)."""
        return self._policy.normal_at_corner

    @property
    def clock_restarted(self) -> bool:
        """A stream's clock went back for good (a bag played again): the owner starts a new graph."""
        return self._aligner.clock_restarted

    # ----------------------------------------------------------------------------------- inputs
    def reject(self, reason: str, message: str) -> None:
        """Count an input dropped before it became a record (bad encoding, NaN pose...). The log gets
        the first of each reason and then at most one line per WARNING_PERIOD_S with the count since."""
        self.dropped[reason] += 1
        now = time.monotonic()
        last, held = self._warned.get(reason, (-math.inf, 0))
        if now - last >= WARNING_PERIOD_S:
            more = f" ({held} more dropped as {reason} since the last warning)" if held else ""
            log.warning("dropped input: %s%s", message, more)
            self._warned[reason] = (now, 0)
        else:
            self._warned[reason] = (last, held + 1)

    def add_ee_pose(self, sample: PoseSample) -> list[Estimate]:
        pose = np.asarray(sample.pose, dtype=float)
        if pose.shape != (3,) or not np.all(np.isfinite(pose)):
            self.reject("nan_pose", f"end-effector pose at {sample.stamp_ns} is not finite")
            return []
        if not self._aligner.check_order("ee_pose", sample.stamp_ns):
            return []
        self._aligner.add_ee_pose(sample.stamp_ns, pose)
        return self._process_pending(final=False)

    def add_tactile(self, frame: TactileFrame) -> list[Estimate]:
        expected = (self.config.image_height, self.config.image_width, 3)
        image = frame.image
        if not isinstance(image, np.ndarray) or image.shape != expected or image.dtype != np.uint8:
            shape = getattr(image, "shape", None)
            self.reject("bad_image_size", f"tactile frame at {frame.stamp_ns} has shape {shape}, expected {expected}")
            return []
        if not self._aligner.check_order("tactile", frame.stamp_ns):
            return []
        self._pending_frames.append(frame)
        return self._process_pending(final=False)

    def add_camera(self, detection: CameraDetection) -> list[Estimate]:
        pose = np.asarray(detection.pose, dtype=float)
        if pose.shape != (3,) or not np.all(np.isfinite(pose)):
            self.reject("nan_pose", f"camera detection at {detection.stamp_ns} is not finite")
            return []
        if not self._aligner.check_order("camera", detection.stamp_ns):
            return []
        if self._initial_pose is None:
            self._initial_pose = pose
            if detection.covariance is not None:
                self._initial_sigmas = np.sqrt(np.diag(detection.covariance))
            # The first pose is where the object was when it was seen. Frames from before (the arm hid
            # it while pushing) cannot start from it: given its σ, they would pin the pushed object to
            # where it was later. They are dropped, as frames before any detection are.
            limit = detection.stamp_ns - int(self.config.camera_max_offset_s * 1e9)
            while self._pending_frames and self._pending_frames[0].stamp_ns < limit:
                frame = self._pending_frames.popleft()
                self.reject("no_initial_pose", f"tactile frame at {frame.stamp_ns}: before the first camera "
                                               f"detection ({detection.stamp_ns}), the object pose to start from")
            return self._process_pending(final=False)
        self._pending_camera.append(detection)
        self._attach_camera(final=False)
        return []

    def flush(self) -> list[Estimate]:
        """The streams ended: use what is buffered (no more end-effector poses will come)."""
        estimates = self._process_pending(final=True)
        self._attach_camera(final=True)
        return estimates

    def reload_model(self, directory: str | Path) -> None:
        """Swap in a new tactile model between steps; the graph and its factors stay as they are.

        All or nothing: the new model must take this estimator's frames and read them (the recent frames
        are re-encoded, and one is read by every head) before it replaces the old one; otherwise
        ModelError, and nothing has changed.
        """
        model = TactileModel.load(directory)
        expected = (self.config.image_height, self.config.image_width)
        if (model.arch.image_height, model.arch.image_width) != expected:
            raise ModelError(f"model {directory} takes {model.arch.image_height}x{model.arch.image_width} tactile "
                             f"images; this estimator's are {expected[0]}x{expected[1]}")
        # Codes of the old network mean nothing to the new one: re-encode the frames that later
        # steps can still pair with. Factors already in the graph keep their measurements.
        codes: dict[int, np.ndarray | None] = {}
        try:
            for step in self.steps:
                if step.code is not None:
                    image = self._policy.recent_images.get(step.index)
                    codes[step.index] = None if image is None else model.encode(
                        image[None], self._contact.background)[0]
            trial = next((c for c in codes.values() if c is not None), None)
            if trial is not None:
                model.relative_poses(trial[None], trial[None])
                if model.has_normal_head:
                    model.contact_normals(trial[None], symmetry(self.object_model.shape.kind))
        except Exception as error:  # a network that cannot run on these frames, whatever torch raises
            raise ModelError(f"model {directory} cannot read this estimator's frames: "
                             f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from error
        self.model = model
        for step in self.steps:
            if step.index in codes:
                step.code = codes[step.index]
        self.events["model_reloaded"] += 1

    # ------------------------------------------------------------------------------ processing
    def _process_pending(self, final: bool) -> list[Estimate]:
        estimates: list[Estimate] = []
        while self._pending_frames:
            frame = self._pending_frames[0]
            if self._initial_pose is None:
                age = (self._aligner.newest_stamp() - self._pending_frames[0].stamp_ns) * 1e-9
                if final or age > self.config.max_pending_s:
                    self._pending_frames.popleft()
                    self.reject("no_initial_pose", f"tactile frame at {frame.stamp_ns}: no object pose to start from")
                    continue
                break
            ee = self._aligner.ee_at(frame.stamp_ns, final)
            if ee is None:
                break
            self._pending_frames.popleft()
            if isinstance(ee, str):
                self.reject(ee, f"tactile frame at {frame.stamp_ns}: no end-effector pose ({ee})")
                continue
            estimate = self._step(frame, ee)
            if estimate is not None:
                estimates.append(estimate)
        self._aligner.prune(self._pending_frames[0].stamp_ns if self._pending_frames else None)
        return estimates

    def _step(self, frame: TactileFrame, ee_pose: np.ndarray) -> Estimate | None:
        started = time.perf_counter()
        contact = self._contact.update(frame.image)
        if contact is None:
            contact = False  # background frames are, by assumption, out of contact
        if not self._policy.keep(ee_pose):
            self.skipped_frames += 1
            return None
        previous = self.steps[-1] if self.steps else None
        step = self._policy.new_step(frame.stamp_ns, frame.image, ee_pose, contact, self.model,
                                     self._contact.background)
        k = step.index
        factors, initial = self._factors_for(step, previous)
        self.graph.add(factors, initial)
        events: list[str] = []
        try:
            self._backend.add(factors, initial)
        except BackendError as error:
            events.append("reinitialised")
            self._reinitialise(step, initial, str(error))
        self._attach_camera(final=False)
        try:
            values, covariance = self._solution(k)
        except BackendError as error:
            events.append("reinitialised")
            self._reinitialise(step, initial, str(error))
            values, covariance = self._solution(k)
        self._latest = values
        estimate = Estimate(
            stamp_ns=frame.stamp_ns, step=k, pose=values[object_key(k)], covariance=covariance,
            in_contact=contact, ee_pose=values[ee_key(k)], update_ms=(time.perf_counter() - started) * 1e3,
            events=tuple(events),
        )
        self._last_estimate = estimate
        self._online[k] = estimate.pose
        return estimate

    def _factors_for(self, step: Step, previous: Step | None) -> tuple[list[Factor], dict[Key, np.ndarray]]:
        """The step's factors and initial values (graph.StepPolicy); one seam, which benchmarks.tactile_ceiling
        wraps to swap measurements for oracles."""
        initial = self._policy.initial_values(step, previous, self._latest, self._initial_pose)
        factors = self._policy.factors(step, previous, self.model, self._initial_pose, self._initial_sigmas)
        return factors, initial

    def _solution(self, k: int) -> tuple[dict[Key, np.ndarray], np.ndarray]:
        """Step k's poses and its object pose's marginal covariance."""
        values = self._backend.estimate([object_key(k), ee_key(k)])
        return values, self._backend.marginals([object_key(k)])[object_key(k)]

    def _attach_camera(self, final: bool) -> None:
        if not self.config.enabled("camera") or not self.steps:
            if final or not self.config.enabled("camera"):
                self._pending_camera.clear()
            return
        factors, self._pending_camera = self._policy.camera_factors(self._pending_camera, final, self.model)
        self._camera_used += [f.measurement for f in factors]
        if factors:
            self.graph.add(factors, {})
            try:
                self._backend.add(factors, {})
            except BackendError as error:
                self.reject("camera_rejected", f"camera detection made the system indeterminate: {error}")

    def _new_backend(self) -> Backend:
        cfg = self.config
        if cfg.backend == "gn":
            gn = cfg.gauss_newton
            return make_backend("gn", window=gn.window, iterations=gn.iterations, device=gn.device)
        return make_backend(
            cfg.backend, relinearize_threshold=cfg.isam2.relinearize_threshold,
            relinearize_skip=cfg.isam2.relinearize_skip,
        )

    def _reinitialise(self, step: Step, initial: dict[Key, np.ndarray], reason: str) -> None:
        """Start a fresh graph at this step from the last good estimate, keeping the old poses' values."""
        log.warning("step %d: %s; re-initialising from the last good estimate", step.index, reason)
        self.events["reinitialised"] += 1
        try:
            self._retired.update(self._backend.estimate())
        except (BackendError, RuntimeError):
            pass
        self._backend = self._new_backend()
        o = self._last_estimate.pose if self._last_estimate is not None else initial[object_key(step.index)]
        sigmas = (np.sqrt(np.clip(np.diag(self._last_estimate.covariance), 1e-10, None))
                  if self._last_estimate is not None else self._initial_sigmas)
        k = step.index
        factors = [
            Factor("first_pose", (object_key(k),), np.asarray(o, dtype=float), sigmas * 2.0),
            Factor("ee_prior", (ee_key(k),), step.ee_measured, np.asarray(self.config.noise.ee_prior)),
        ]
        self._backend.add(factors, {object_key(k): np.asarray(o, dtype=float), ee_key(k): step.ee_measured})
        self._policy.keyframes.restart()

    # ---------------------------------------------------------------------------------- outputs
    def trajectory(self, converge: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The smoothed object trajectory: stamps (K,) and poses (K, 3).

        ``converge`` > 0 first re-solves the whole graph from the current estimate with that many
        Gauss-Newton iterations, every factor relinearized (``converged_values``); the estimator's
        own state is unchanged.
        """
        values = self.converged_values(converge) if converge else self.values()
        stamps = np.array([s.stamp_ns for s in self.steps], dtype=np.int64)
        # a step whose graph was given up before it was solved keeps its online estimate
        poses = np.array([values.get(object_key(s.index), self._online.get(s.index, self._initial_pose))
                          for s in self.steps]).reshape(-1, 3)
        return stamps, poses

    def converged_values(self, iterations: int) -> dict[Key, np.ndarray]:
        """``values()`` after ``iterations`` Gauss-Newton iterations over the whole graph, every factor
        relinearized at each (a fresh iSAM2 with relinearization threshold 0, started at the current
        estimate). The online solvers relinearize only variables that moved past a threshold (iSAM2)
        or hold poses older than a window (gn); after a large late correction, such as a camera
        detection ending a long dropout, their estimate can stop short of the graph's optimum.
        A graph that was given up and re-initialised, or a re-solve that fails, keeps ``values()``.
        """
        values = self.values()
        if self.events.get("reinitialised") or not self.graph.factors:
            return values
        try:
            keys = list(self.graph.initial)
            solved = solve_batch("isam2", [(self.graph.factors, {k: values[k] for k in keys})], [keys], iterations)
            values.update(zip(keys, solved[0].values, strict=True))
        except (BackendError, KeyError) as error:
            log.warning("final re-solve failed (%s); the trajectory is the online solver's", error)
        return values

    def values(self) -> dict[Key, np.ndarray]:
        """The current values of every pose the estimator has made (object and end-effector)."""
        values = dict(self._retired)
        try:
            values.update(self._backend.estimate())
        except BackendError:
            pass
        return values

    @property
    def background(self) -> np.ndarray | None:
        """The gel's background image that tactile frames are compared with (None until it is known)."""
        return self._contact.background

    def camera_poses(self) -> list[np.ndarray]:
        """The camera detections that became factors."""
        return list(self._camera_used)

    @property
    def last_estimate(self) -> Estimate | None:
        return self._last_estimate
