"""The estimator: records in, estimates out (DESIGN.md). No ROS here.

Streams arrive in any interleaving, each in its own stamp order. A tactile frame waits until the
end-effector stream covers its stamp, then the end-effector pose is interpolated to it, contact is
read from the image, and, when the keyframe policy keeps the frame, a step (o_k, e_k) is added
to the graph with its factors. Camera detections are attached to the nearest step. Bad inputs are
dropped and counted by reason; the estimate goes on.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.backends import Backend, BackendError, make_backend, solve_batch
from tactile_estimator.config import EstimatorConfig
from tactile_estimator.contact_detection import ContactDetector
from tactile_estimator.factors import Factor, Key, ObjectModel, ee_key, object_key
from tactile_estimator.factors.tactile import sensor_in_object
from tactile_estimator.factors.tactile_normal import symmetry
from tactile_estimator.graph import FactorGraph
from tactile_estimator.networks.tactile import ModelError, TactileModel
from tactile_estimator.records import CameraDetection, Estimate, PoseSample, TactileFrame

log = logging.getLogger(__name__)

# A weak constant-position prior between consecutive object poses keeps the graph determinate
# whichever factor families are switched off; it is two orders looser than the pushing model.
WARNING_PERIOD_S = 5.0  # a dropped-input warning per reason at most this often (the counts are exact)
MOTION_PRIOR_SIGMAS = np.array([0.01, 0.01, 0.1])
# Out of contact, quasi-static objects do not move (the pushing model with zero contact force).
AT_REST_SIGMAS = np.array([0.0002, 0.0002, 0.002])
# The step in which contact is made or broken: the object moves for part of the step at most. The
# sigmas are that motion's RMS on simulated runs (0.43 mm, 0.0035 rad; benchmarks.accuracy --transition).
# Without this link each contact episode hangs on the weak motion prior at both ends.
TRANSITION_SIGMAS = np.array([0.0005, 0.0005, 0.005])
EE_BUFFER_NS = 2_000_000_000


@dataclass
class Step:
    index: int
    stamp_ns: int
    ee_measured: np.ndarray
    in_contact: bool
    episode: int | None
    code: np.ndarray | None


def family_sigmas(model: TactileModel, config: EstimatorConfig, family: str) -> np.ndarray:
    """A factor family's sigmas: the model's learned ones where it carries them, else the config's."""
    learned = getattr(model.weights, family)
    if learned:
        return np.asarray(learned, dtype=float)
    return np.atleast_1d(np.asarray(getattr(config.noise, family), dtype=float))


class Estimator:
    def __init__(self, config: EstimatorConfig, model: TactileModel, object_model: ObjectModel) -> None:
        self.config = config
        self.model = model
        self.object_model = object_model
        self.dropped: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.steps: list[Step] = []
        self.skipped_frames = 0
        self.normal_at_corner = 0  # contact frames whose normal head saw a corner (their own σ, or no factor)
        self.graph = FactorGraph()
        self._backend: Backend = self._new_backend()
        self._retired: dict[Key, np.ndarray] = {}  # final values of poses in backends given up after a failure
        self._ee: list[tuple[int, np.ndarray]] = []
        self._pending_frames: deque[TactileFrame] = deque()
        self._pending_camera: list[CameraDetection] = []
        self._last_stamp: dict[str, int] = {}
        self._jump_candidate: dict[str, int] = {}  # per stream: a jumped stamp awaiting confirmation
        self._warned: dict[str, tuple[float, int]] = {}  # per drop reason: last warning time, drops since
        self.clock_restarted = False  # a stream's clock went back for good: the owner starts a new graph
        self._contact = ContactDetector(config.contact)
        self._initial_pose: np.ndarray | None = (
            np.asarray(config.initial_object_pose, dtype=float) if config.initial_object_pose else None
        )
        self._initial_sigmas = np.asarray(config.noise.first_pose, dtype=float)
        self._frames_since_step = 0
        self._episode = -1
        self._last_estimate: Estimate | None = None
        self._latest: dict[Key, np.ndarray] = {}
        self._camera_used: list[np.ndarray] = []
        self._online: dict[int, np.ndarray] = {}
        self._step_stamps: list[int] = []  # kept alongside steps: the camera matcher bisects it every step
        self._recent_images: dict[int, np.ndarray] = {}  # images of the steps within the tactile window

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

    def _check_order(self, stream: str, stamp_ns: int) -> bool:
        """Each stream's stamps must increase. A jump of more than ``max_stamp_jump_s`` from the last
        accepted stamp, or back by more than ``clock_restart_s``, is taken only once a second message confirms
        it (within ``max_stamp_jump_s`` of the first and after it): one stamp from the future (a corrupted
        header) is dropped as ``stamp_jump`` and leaves the stream as it was. A confirmed jump backwards is
        a restarted clock (a bag played again, a restarted publisher): ``clock_restarted`` is set for the
        owner to start a new graph. Smaller steps back are reordering: that message is dropped."""
        last = self._last_stamp.get(stream)
        jump_ns = int(self.config.max_stamp_jump_s * 1e9)
        back_ns = int(self.config.clock_restart_s * 1e9)
        if last is not None and (stamp_ns - last > jump_ns or last - stamp_ns > back_ns):
            candidate = self._jump_candidate.get(stream)
            if candidate is None or not 0 < stamp_ns - candidate <= jump_ns:
                self._jump_candidate[stream] = stamp_ns
                self.reject("stamp_jump", f"{stream} stamp {stamp_ns} jumps {(stamp_ns - last) / 1e9:+.1f} s from "
                                          f"{last}; it is taken once another message confirms it")
                return False
            self._jump_candidate.pop(stream, None)
            if stamp_ns < last:
                self.clock_restarted = True
                self.reject("stamp_jump", f"{stream} clock went back {(last - stamp_ns) / 1e9:.1f} s: "
                                          "a new graph starts")
                return False
            self._last_stamp[stream] = stamp_ns
            return True
        self._jump_candidate.pop(stream, None)
        if last is not None and stamp_ns <= last:
            reason = "duplicate_stamp" if stamp_ns == last else "out_of_order_stamp"
            self.reject(reason, f"{stream} stamp {stamp_ns} is not after the previous {last}")
            return False
        self._last_stamp[stream] = stamp_ns
        return True

    def add_ee_pose(self, sample: PoseSample) -> list[Estimate]:
        pose = np.asarray(sample.pose, dtype=float)
        if pose.shape != (3,) or not np.all(np.isfinite(pose)):
            self.reject("nan_pose", f"end-effector pose at {sample.stamp_ns} is not finite")
            return []
        if not self._check_order("ee_pose", sample.stamp_ns):
            return []
        self._ee.append((sample.stamp_ns, pose))
        return self._process_pending(final=False)

    def add_tactile(self, frame: TactileFrame) -> list[Estimate]:
        expected = (self.config.image_height, self.config.image_width, 3)
        image = frame.image
        if not isinstance(image, np.ndarray) or image.shape != expected or image.dtype != np.uint8:
            shape = getattr(image, "shape", None)
            self.reject("bad_image_size", f"tactile frame at {frame.stamp_ns} has shape {shape}, expected {expected}")
            return []
        if not self._check_order("tactile", frame.stamp_ns):
            return []
        self._pending_frames.append(frame)
        return self._process_pending(final=False)

    def add_camera(self, detection: CameraDetection) -> list[Estimate]:
        pose = np.asarray(detection.pose, dtype=float)
        if pose.shape != (3,) or not np.all(np.isfinite(pose)):
            self.reject("nan_pose", f"camera detection at {detection.stamp_ns} is not finite")
            return []
        if not self._check_order("camera", detection.stamp_ns):
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
                    image = self._recent_images.get(step.index)
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
                age = (self._newest_stamp() - self._pending_frames[0].stamp_ns) * 1e-9
                if final or age > self.config.max_pending_s:
                    self._pending_frames.popleft()
                    self.reject("no_initial_pose", f"tactile frame at {frame.stamp_ns}: no object pose to start from")
                    continue
                break
            ee = self._ee_at(frame.stamp_ns, final)
            if ee is None:
                break
            self._pending_frames.popleft()
            if isinstance(ee, str):
                self.reject(ee, f"tactile frame at {frame.stamp_ns}: no end-effector pose ({ee})")
                continue
            estimate = self._step(frame, ee)
            if estimate is not None:
                estimates.append(estimate)
        self._prune_ee()
        return estimates

    def _newest_stamp(self) -> int:
        return max(self._last_stamp.values(), default=0)

    def _ee_at(self, stamp_ns: int, final: bool) -> np.ndarray | str | None:
        """Interpolated end-effector pose; None to wait for more poses; a reason string to drop."""
        stamps = [s for s, _ in self._ee]
        gap = int(self.config.ee_max_gap_s * 1e9)
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return self._ee[i][1]
        if i == 0:
            if not stamps:
                return "no_ee_pose" if final else None
            return "no_ee_pose"
        if i == len(stamps):
            if not final:
                return None
            return self._ee[-1][1] if stamp_ns - stamps[-1] <= gap else "no_ee_pose"
        (s0, p0), (s1, p1) = self._ee[i - 1], self._ee[i]
        if s1 - s0 > gap:
            return "ee_gap"
        return se2.interpolate(p0, p1, (stamp_ns - s0) / (s1 - s0))

    def _prune_ee(self) -> None:
        horizon = self._pending_frames[0].stamp_ns if self._pending_frames else self._newest_stamp()
        cut = bisect.bisect_left([s for s, _ in self._ee], horizon - EE_BUFFER_NS)
        if cut > 1:
            del self._ee[: cut - 1]

    def _step(self, frame: TactileFrame, ee_pose: np.ndarray) -> Estimate | None:
        started = time.perf_counter()
        contact = self._contact.update(frame.image)
        if contact is None:
            contact = False  # background frames are, by assumption, out of contact
        if not self._keep(ee_pose):
            self.skipped_frames += 1
            return None
        k = len(self.steps)
        previous = self.steps[-1] if self.steps else None
        if contact and (previous is None or not previous.in_contact):
            self._episode += 1
        code = None
        if contact and (self.config.enabled("tactile")
                        or (self.config.enabled("tactile_normal") and self.model.has_normal_head)):
            code = self.model.encode(frame.image[None], self._contact.background)[0]
        step = Step(k, frame.stamp_ns, ee_pose, contact, self._episode if contact else None, code)
        self.steps.append(step)
        self._step_stamps.append(step.stamp_ns)
        if code is not None:
            self._recent_images[k] = frame.image
            self._recent_images.pop(k - max(self.config.tactile_offsets) - 1, None)
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

    def _solution(self, k: int) -> tuple[dict[Key, np.ndarray], np.ndarray]:
        """Step k's poses and its object pose's marginal covariance."""
        values = self._backend.estimate([object_key(k), ee_key(k)])
        return values, self._backend.marginals([object_key(k)])[object_key(k)]

    def _keep(self, ee_pose: np.ndarray) -> bool:
        policy = self.config.keyframe
        self._frames_since_step += 1
        if not self.steps or self._frames_since_step >= policy.every_n_frames:
            self._frames_since_step = 0
            return True
        if policy.min_translation_m > 0 or policy.min_rotation_rad > 0:
            moved = se2.between(self.steps[-1].ee_measured, ee_pose)
            if (policy.min_translation_m > 0 and math.hypot(moved[0], moved[1]) >= policy.min_translation_m) or (
                policy.min_rotation_rad > 0 and abs(moved[2]) >= policy.min_rotation_rad
            ):
                self._frames_since_step = 0
                return True
        return False

    def _factors_for(self, step: Step, previous: Step | None) -> tuple[list[Factor], dict[Key, np.ndarray]]:
        cfg, k = self.config, step.index
        weights = self.model.weights
        factors: list[Factor] = []
        o_k, e_k = object_key(k), ee_key(k)
        if previous is None:
            o_init = self._initial_pose
        else:
            o_prev = self._latest.get(object_key(k - 1), self._initial_pose)
            e_prev = self._latest.get(ee_key(k - 1), previous.ee_measured)
            if step.in_contact and previous.in_contact:
                # carry the object with the pusher: keep the sensor-in-object pose of the last step
                o_init = se2.compose(step.ee_measured, se2.inverse(sensor_in_object(o_prev, e_prev)))
            else:
                o_init = o_prev
        initial = {o_k: np.asarray(o_init, dtype=float), e_k: step.ee_measured}
        if cfg.enabled("ee_prior"):
            factors.append(Factor("ee_prior", (e_k,), step.ee_measured, self._sigmas("ee_prior")))
        if previous is None:
            if cfg.enabled("first_pose"):
                factors.append(Factor("first_pose", (o_k,), np.asarray(self._initial_pose), self._initial_sigmas))
        else:
            keys = (object_key(k - 1), o_k, ee_key(k - 1), e_k)
            factors.append(Factor("motion_prior", (object_key(k - 1), o_k), np.zeros(3), MOTION_PRIOR_SIGMAS))
            if cfg.enabled("pushing"):
                if step.in_contact and previous.in_contact:
                    factors.append(Factor("pushing", keys, np.zeros(0), np.asarray(weights.pushing), self.object_model))
                elif not step.in_contact and not previous.in_contact:
                    factors.append(Factor("at_rest", keys[:2], np.zeros(3), AT_REST_SIGMAS))
                else:
                    factors.append(Factor("at_rest", keys[:2], np.zeros(3), TRANSITION_SIGMAS))
        if step.in_contact and cfg.enabled("contact"):
            factors.append(Factor("contact", (o_k, e_k), np.zeros(0), self._sigmas("contact"), self.object_model))
        if step.code is not None and self.model.has_normal_head and cfg.enabled("tactile_normal"):
            normal, corner = self.model.contact_normals(step.code[None], symmetry(self.object_model.shape.kind))
            # A corner's reading errs more: it gets its own σ, or (a model without one) no factor (pretrain.py).
            sigma = weights.tactile_normal_corner if corner[0] else weights.tactile_normal
            self.normal_at_corner += int(corner[0])
            if sigma and np.isfinite(normal).all():
                factors.append(Factor("tactile_normal", (o_k, e_k), normal, np.asarray(sigma), self.object_model))
            elif sigma:
                self.reject("unreadable_tactile_frame",
                            f"tactile frame at {step.stamp_ns}: the network's contact normal is {normal[0]}")
        if step.code is not None and cfg.enabled("tactile"):
            partners = [
                self.steps[k - d] for d in cfg.tactile_offsets
                if k - d >= 0 and self.steps[k - d].episode == step.episode and self.steps[k - d].code is not None
            ]
            if partners:
                codes_i = np.stack([p.code for p in partners])
                predicted = self.model.relative_poses(codes_i, np.repeat(step.code[None], len(partners), 0))
                for partner, measured in zip(partners, predicted, strict=True):
                    keys = (object_key(partner.index), ee_key(partner.index), o_k, e_k)
                    factors.append(Factor("tactile", keys, measured, np.asarray(weights.tactile)))
        return factors, initial

    def _sigmas(self, family: str) -> np.ndarray:
        return family_sigmas(self.model, self.config, family)

    def _attach_camera(self, final: bool) -> None:
        if not self.config.enabled("camera") or not self.steps:
            if final or not self.config.enabled("camera"):
                self._pending_camera.clear()
            return
        stamps = self._step_stamps
        limit = int(self.config.camera_max_offset_s * 1e9)
        keep: list[CameraDetection] = []
        factors: list[Factor] = []
        for det in self._pending_camera:
            i = bisect.bisect_left(stamps, det.stamp_ns)
            if i == len(stamps) and not final and det.stamp_ns - stamps[-1] <= limit:
                keep.append(det)  # a later step may be nearer
                continue
            candidates = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
            best = min(candidates, key=lambda j: abs(stamps[j] - det.stamp_ns))
            if abs(stamps[best] - det.stamp_ns) > limit:
                if i == len(stamps) and not final:
                    keep.append(det)
                else:
                    self.reject("camera_unmatched", f"camera detection at {det.stamp_ns} is far from every step")
                continue
            sigmas = np.sqrt(np.diag(det.covariance)) if det.covariance is not None else self._sigmas("camera")
            factors.append(Factor("camera", (object_key(best),), np.asarray(det.pose, dtype=float), sigmas))
            self._camera_used.append(np.asarray(det.pose, dtype=float))
        self._pending_camera = keep
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
        self._frames_since_step = 0

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
