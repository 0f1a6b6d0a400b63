"""The graph: every variable and factor the estimator has created, and the policy that makes them.

``FactorGraph`` keeps the factors independently of the solver. Backends receive the same factors
incrementally; the graph keeps them so that the whole problem can be re-solved in batch (the naive
peer in benchmarks), its energy evaluated (LEO), or handed to another backend.

``StepPolicy`` decides what a kept tactile frame brings (DESIGN.md, "The problem in one page"):
which frames become steps (``KeyframePolicy``), the step's initial values and factors (the priors,
the link to the step before, contact, and the tactile factors with the earlier steps of its window
in the same contact episode), and the step each camera detection is attached to. It builds
factors; the estimator hands them to the backend.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.config import EstimatorConfig, KeyframeConfig
from tactile_estimator.factors import FAMILIES, Factor, Key, ObjectModel, ee_key, object_key
from tactile_estimator.factors.pushing import MODE_STEPS, mean_pusher_motion
from tactile_estimator.factors.tactile import sensor_in_object
from tactile_estimator.factors.tactile_normal import symmetry
from tactile_estimator.records import CameraDetection

if TYPE_CHECKING:  # the model reads frames; the graph only asks it, so it stays free of torch
    from tactile_estimator.networks.tactile import TactileModel

# A weak constant-position prior between consecutive object poses keeps the graph determinate
# whichever factor families are switched off; it is two orders looser than the pushing model.
MOTION_PRIOR_SIGMAS = np.array([0.01, 0.01, 0.1])
# Out of contact, quasi-static objects do not move (the pushing model with zero contact force).
AT_REST_SIGMAS = np.array([0.0002, 0.0002, 0.002])
# The step in which contact is made or broken: the object moves for part of the step at most. The
# sigmas are that motion's RMS on simulated runs (python -m benchmarks.accuracy --transition).
# Without this link each contact episode hangs on the weak motion prior at both ends.
TRANSITION_SIGMAS = np.array([0.0005, 0.0005, 0.005])


@dataclass
class Step:
    index: int
    stamp_ns: int
    ee_measured: np.ndarray
    in_contact: bool
    episode: int | None  # the contact episode (counted from 0); None out of contact
    code: np.ndarray | None  # the network's encoding of the frame, for the tactile factors; None without one


def family_sigmas(model: TactileModel, config: EstimatorConfig, family: str) -> np.ndarray:
    """A factor family's sigmas: the model's learned ones where it carries them, else the config's."""
    learned = getattr(model.weights, family)
    if learned:
        return np.asarray(learned, dtype=float)
    return np.atleast_1d(np.asarray(getattr(config.noise, family), dtype=float))


class KeyframePolicy:
    """Which tactile frames become steps: the first, then every ``every_n_frames``-th, or one at which the
    end-effector has moved ``min_translation_m`` or turned ``min_rotation_rad`` since the last step."""

    def __init__(self, config: KeyframeConfig) -> None:
        self.config = config
        self._frames_since_step = 0

    def keep(self, ee_pose: np.ndarray, last: Step | None) -> bool:
        policy = self.config
        self._frames_since_step += 1
        if last is None or self._frames_since_step >= policy.every_n_frames:
            self._frames_since_step = 0
            return True
        if policy.min_translation_m > 0 or policy.min_rotation_rad > 0:
            moved = se2.between(last.ee_measured, ee_pose)
            if (policy.min_translation_m > 0 and math.hypot(moved[0], moved[1]) >= policy.min_translation_m) or (
                policy.min_rotation_rad > 0 and abs(moved[2]) >= policy.min_rotation_rad
            ):
                self._frames_since_step = 0
                return True
        return False

    def restart(self) -> None:
        """Count frames from this step on (a graph started afresh at it)."""
        self._frames_since_step = 0


def tactile_partners(steps: list[Step], step: Step, offsets: Iterable[int]) -> list[Step]:
    """The earlier steps a step's frame is paired with: one at each offset of the window, in the same
    contact episode and with a code of its own."""
    k = step.index
    return [steps[k - d] for d in offsets
            if k - d >= 0 and steps[k - d].episode == step.episode and steps[k - d].code is not None]


def match_camera(detections: list[CameraDetection], step_stamps: list[int], max_offset_ns: int,
                 final: bool) -> tuple[list[tuple[CameraDetection, int]], list[CameraDetection], list[CameraDetection]]:
    """Each detection's step: the nearest by stamp, within ``max_offset_ns``. Returns (detection, step index)
    pairs, the detections to wait with (after the last step and not ``final``: a later step may be nearer)
    and those no step is near. ``step_stamps`` is not empty and increases."""
    matched: list[tuple[CameraDetection, int]] = []
    waiting: list[CameraDetection] = []
    unmatched: list[CameraDetection] = []
    stamps = step_stamps
    for det in detections:
        i = bisect.bisect_left(stamps, det.stamp_ns)
        if i == len(stamps) and not final and det.stamp_ns - stamps[-1] <= max_offset_ns:
            waiting.append(det)  # a later step may be nearer
            continue
        candidates = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
        best = min(candidates, key=lambda j: abs(stamps[j] - det.stamp_ns))
        if abs(stamps[best] - det.stamp_ns) > max_offset_ns:
            (waiting if i == len(stamps) and not final else unmatched).append(det)
            continue
        matched.append((det, best))
    return matched, waiting, unmatched


class StepPolicy:
    """The steps of one graph and the factors each brings; the estimator adds them to its backend.

    ``reject(reason, message)`` counts what is dropped on the way (a frame the network cannot read, a
    detection far from every step), as the estimator's other drops are counted.
    """

    def __init__(self, config: EstimatorConfig, object_model: ObjectModel,
                 reject: Callable[[str, str], None]) -> None:
        self.config = config
        self.object_model = object_model
        self._reject = reject
        self.keyframes = KeyframePolicy(config.keyframe)
        self.steps: list[Step] = []
        self.step_stamps: list[int] = []  # kept alongside steps: the camera matcher bisects it every step
        self.recent_images: dict[int, np.ndarray] = {}  # images of the steps within the tactile window
        self.normal_at_corner = 0  # contact frames whose normal head saw a corner (their own σ, or no factor)
        self._episode = -1
        self._episode_start = 0  # the step the present contact episode began at

    def keep(self, ee_pose: np.ndarray) -> bool:
        """Whether a frame with this end-effector pose becomes a step (the keyframe policy)."""
        return self.keyframes.keep(ee_pose, self.steps[-1] if self.steps else None)

    def new_step(self, stamp_ns: int, image: np.ndarray, ee_pose: np.ndarray, contact: bool,
                 model: TactileModel, background: np.ndarray | None) -> Step:
        """The next step: its contact episode and, where a tactile factor will read it, the frame's code
        (``model`` encodes it against the gel's ``background``)."""
        k = len(self.steps)
        previous = self.steps[-1] if self.steps else None
        if contact and (previous is None or not previous.in_contact):
            self._episode += 1
            self._episode_start = k
        code = None
        if contact and (self.config.enabled("tactile")
                        or (self.config.enabled("tactile_normal") and model.has_normal_head)):
            code = model.encode(image[None], background)[0]
        step = Step(k, stamp_ns, ee_pose, contact, self._episode if contact else None, code)
        self.steps.append(step)
        self.step_stamps.append(step.stamp_ns)
        if code is not None:
            self.recent_images[k] = image
            self.recent_images.pop(k - max(self.config.tactile_offsets) - 1, None)
        return step

    def initial_values(self, step: Step, previous: Step | None, latest: dict[Key, np.ndarray],
                       first_pose: np.ndarray) -> dict[Key, np.ndarray]:
        """Where the solver starts the step's poses: the object where the last estimate left it, carried
        with the pusher through contact; the end-effector where it was measured."""
        k = step.index
        if previous is None:
            o_init = first_pose
        else:
            o_prev = latest.get(object_key(k - 1), first_pose)
            e_prev = latest.get(ee_key(k - 1), previous.ee_measured)
            if step.in_contact and previous.in_contact:
                # carry the object with the pusher: keep the sensor-in-object pose of the last step
                o_init = se2.compose(step.ee_measured, se2.inverse(sensor_in_object(o_prev, e_prev)))
            else:
                o_init = o_prev
        return {object_key(k): np.asarray(o_init, dtype=float), ee_key(k): step.ee_measured}

    def factors(self, step: Step, previous: Step | None, model: TactileModel, first_pose: np.ndarray,
                first_sigmas: np.ndarray) -> list[Factor]:
        """The step's factors: the end-effector prior; the first pose's prior, or the links to the step
        before (the motion prior and pushing, or at rest out of contact); contact; the tactile contact
        normal; and a tactile factor with each partner in the window (:func:`tactile_partners`)."""
        cfg, k = self.config, step.index
        weights = model.weights
        factors: list[Factor] = []
        o_k, e_k = object_key(k), ee_key(k)
        if cfg.enabled("ee_prior"):
            factors.append(Factor("ee_prior", (e_k,), step.ee_measured, family_sigmas(model, cfg, "ee_prior")))
        if previous is None:
            if cfg.enabled("first_pose"):
                factors.append(Factor("first_pose", (o_k,), np.asarray(first_pose), first_sigmas))
        else:
            keys = (object_key(k - 1), o_k, ee_key(k - 1), e_k)
            factors.append(Factor("motion_prior", (object_key(k - 1), o_k), np.zeros(3), MOTION_PRIOR_SIGMAS))
            if cfg.enabled("pushing"):
                if step.in_contact and previous.in_contact:
                    j = max(k - MODE_STEPS, self._episode_start)
                    motion = mean_pusher_motion(step.ee_measured, self.steps[j].ee_measured, k - j)
                    factors.append(Factor("pushing", keys, motion, np.asarray(weights.pushing), self.object_model))
                elif not step.in_contact and not previous.in_contact:
                    factors.append(Factor("at_rest", keys[:2], np.zeros(3), AT_REST_SIGMAS))
                else:
                    factors.append(Factor("at_rest", keys[:2], np.zeros(3), TRANSITION_SIGMAS))
        if step.in_contact and cfg.enabled("contact"):
            factors.append(Factor("contact", (o_k, e_k), np.zeros(0), family_sigmas(model, cfg, "contact"),
                                  self.object_model))
        if step.code is not None and model.has_normal_head and cfg.enabled("tactile_normal"):
            normal, corner = model.contact_normals(step.code[None], symmetry(self.object_model.shape.kind))
            # A corner's reading errs more: it gets its own σ, or (a model without one) no factor (pretrain.py).
            sigma = weights.tactile_normal_corner if corner[0] else weights.tactile_normal
            self.normal_at_corner += int(corner[0])
            if sigma and np.isfinite(normal).all():
                factors.append(Factor("tactile_normal", (o_k, e_k), normal, np.asarray(sigma), self.object_model))
            elif sigma:
                self._reject("unreadable_tactile_frame",
                             f"tactile frame at {step.stamp_ns}: the network's contact normal is {normal[0]}")
        if step.code is not None and cfg.enabled("tactile"):
            partners = tactile_partners(self.steps, step, cfg.tactile_offsets)
            if partners:
                codes_i = np.stack([p.code for p in partners])
                predicted = model.relative_poses(codes_i, np.repeat(step.code[None], len(partners), 0))
                for partner, measured in zip(partners, predicted, strict=True):
                    keys = (object_key(partner.index), ee_key(partner.index), o_k, e_k)
                    factors.append(Factor("tactile", keys, measured, np.asarray(weights.tactile)))
        return factors

    def camera_factors(self, detections: list[CameraDetection], final: bool,
                       model: TactileModel) -> tuple[list[Factor], list[CameraDetection]]:
        """A camera prior on the nearest step's object pose for each detection that has one (its own
        covariance, else the camera's sigmas); returns them and the detections still waiting for a step.
        Those far from every step are dropped as ``camera_unmatched``."""
        limit = int(self.config.camera_max_offset_s * 1e9)
        matched, waiting, unmatched = match_camera(detections, self.step_stamps, limit, final)
        for det in unmatched:
            self._reject("camera_unmatched", f"camera detection at {det.stamp_ns} is far from every step")
        factors = []
        for det, index in matched:
            sigmas = (np.sqrt(np.diag(det.covariance)) if det.covariance is not None
                      else family_sigmas(model, self.config, "camera"))
            factors.append(Factor("camera", (object_key(index),), np.asarray(det.pose, dtype=float), sigmas))
        return factors, waiting


class FactorGraph:
    def __init__(self) -> None:
        self.factors: list[Factor] = []
        self.initial: dict[Key, np.ndarray] = {}

    def add(self, factors: Iterable[Factor], initial: dict[Key, np.ndarray]) -> None:
        self.factors.extend(factors)
        self.initial.update(initial)

    def energy(self, values: dict[Key, np.ndarray], families: Iterable[str] | None = None) -> float:
        """½ Σ ‖r‖²_Σ over the factors (of the given families), batched per family."""
        wanted = set(families) if families is not None else None
        groups: dict[str, list[Factor]] = {}
        for factor in self.factors:
            if wanted is None or factor.family in wanted:
                groups.setdefault(factor.family, []).append(factor)
        total = 0.0
        for family, members in groups.items():
            by_context: dict[int, list[Factor]] = {}
            for f in members:
                by_context.setdefault(id(f.context), []).append(f)
            for group in by_context.values():
                poses = [np.stack([values[f.keys[i]] for f in group]) for i in range(len(group[0].keys))]
                measured = np.stack([np.asarray(f.measurement, dtype=float) for f in group])
                r = FAMILIES[family].residual(poses, measured, group[0].context)
                sigmas = np.stack([np.broadcast_to(f.sigmas, r.shape[1:]) for f in group])
                total += 0.5 * float(np.sum((r / sigmas) ** 2))
        return total

    def __len__(self) -> int:
        return len(self.factors)
