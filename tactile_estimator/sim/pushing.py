"""Planar quasi-static pushing with Coulomb friction, and seeded pushing runs with noisy sensors.

Physics (per substep of ``1 / SUBSTEP_HZ`` s). The pusher is the DIGIT gel tip (``objects.Pusher``).
With the tip's centre c in the object frame, the contact point is the closest boundary point
p = c - sdf(c) grad sdf(c) and n = -grad sdf(c) is the inward normal. The object's motion follows
the ellipsoidal limit surface (Lynch 1992; Zhou et al. 2017): a contact force f at p drives the
twist V = (f_x, f_y, (p_x f_y - p_y f_x) / c^2), c = m_max / f_max, whose material velocity at p
is A f with A = I + r r^T / c^2, r = (p_y, -p_x). The contact sticks when f = A^-1 v_p (v_p the
tip's velocity at p) lies in the friction cone |f.t| <= mu f.n; otherwise it slides with f on the
cone's edge, scaled so that the normal velocities match (Mason's motion cone). The tip never
sinks in: after each substep any residual penetration is removed along the contact normal.

Runs (``simulate_run``) script contact episodes around the object: approach along the inward
normal of a random boundary point with the gel facing the object, push for 1-3 s at 2-5 cm/s
within 30 degrees of the normal, retreat and travel around the object to the next episode. The
sensors are sampled from the substep trajectory: tactile images (``tactile_images``), noisy
end-effector poses, and a noisy, intermittent camera that the arm occludes when it is near. With
``camera_first_only`` the camera keeps only its first detection, as when the arm occludes the
object for the whole run: the tactile-only regime of real pushing runs.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tactile_estimator import geometry as se2
from tactile_estimator.objects import Pusher, Shape
from tactile_estimator.records import CameraDetection, ObjectInfo, PoseSample, TactileFrame
from tactile_estimator.sim.tactile_images import TactileRenderer

SUBSTEP_HZ = 300.0
FIRST_STAMP_NS = 1_000_000_000
CONTACT_TOLERANCE_M = 5e-5  # a tip this close to the boundary and moving in is touching
PENETRATION_PASSES = 3  # curved boundaries need more than one push-out along the normal

# Per-run physical parameters: the pressure under a real object is not uniform, so c of the limit
# surface varies around the uniform-pressure value; the gel-object friction varies with materials.
LIMIT_SURFACE_SCALE = (0.8, 1.2)
FRICTION_RANGE = (0.2, 0.5)

# Contact episodes.
INITIAL_POSITION_M = 0.02
WORKSPACE_RADIUS_M = 0.1  # beyond this, episodes push the object back towards the origin ...
WORKSPACE_CANDIDATES = 4  # ... by taking the best of this many random contact points
CORNER_PROBABILITY = 0.3  # for rects: push a corner instead of a face
CORNER_CONE_RAD = np.deg2rad(35.0)  # approach within this of a corner's diagonal (its normal cone is +-45)
YAW_PERTURBATION_RAD = np.deg2rad(15.0)
PUSH_ANGLE_RAD = np.deg2rad(30.0)
PUSH_SPEED_MPS = (0.02, 0.05)
PUSH_DURATION_S = (1.0, 3.0)
APPROACH_DISTANCE_M = 0.015
APPROACH_OVERSHOOT_M = 0.01  # give up an approach that has not touched after this much extra travel
APPROACH_SPEED_MPS = 0.05
RETREAT_DISTANCE_M = 0.01
RETREAT_SPEED_MPS = 0.1
TRANSIT_SPEED_MPS = 0.3
TRANSIT_CLEARANCE_M = 0.003  # a straight transit must keep the tip this far from the object
DETOUR_MARGIN_M = 0.01  # detours circle the object's bounding circle this far out
DETOUR_STEP_RAD = np.deg2rad(20.0)  # chords of the detour circle sag by < 1.5 % of its radius
GEL_HALF_WIDTH_M = 0.007  # the contact leaves the gel beyond this lateral offset from the apex
CONTACT_LOSS_S = 0.2  # a push ends when the tip has been off the object this long

# Tactile imprint depth from the contact's normal force, normalised to the run's largest.
DEPTH_RANGE_M = (0.5e-3, 2.0e-3)

# The camera cannot see the object well while the arm is in contact or near it.
OCCLUSION_DISTANCE_M = 0.03
OCCLUDED_VISIBLE_SHARE = 0.7  # near the arm, 30 % of the frames that would have come through are lost too


@dataclass(frozen=True)
class SensorNoise:
    """Noise of the simulated sensors (standard deviations) and the camera's dropout."""

    ee_translation_m: float = 0.0005
    ee_rotation_rad: float = 0.002
    camera_translation_m: float = 0.005
    camera_rotation_rad: float = float(np.deg2rad(2.0))
    camera_dropout: float = 0.3  # at least this fraction of camera frames dropped; more while the arm is near
    image_noise_std: float = 2.0  # grey levels

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not np.isfinite(value) or value < 0.0:
                raise ValueError(f"sensor noise '{name}' must be finite and >= 0, not {value}")
        if self.camera_dropout > 1.0:
            raise ValueError(f"camera_dropout is a fraction in [0, 1], not {self.camera_dropout}")


@dataclass
class SimulatedRun:
    """One simulated pushing run: the sensor streams and the ground truth."""

    object_info: ObjectInfo
    params: dict[str, Any]  # the run's physical parameters (c_ls, mu), seed, rates, noise and statistics
    tactile: list[TactileFrame]
    ee_poses: list[PoseSample]
    camera: list[CameraDetection]
    ground_truth: list[PoseSample]  # object, at each tactile stamp
    ee_ground_truth: list[PoseSample]  # end-effector, at each tactile stamp
    in_contact: list[bool]  # per tactile frame


@dataclass(frozen=True)
class ContactState:
    """What happened at the contact during one substep."""

    mode: str  # "none" | "stick" | "slide"
    gap: float  # sdf(tip centre) - tip radius at the substep's start (m)
    point: np.ndarray  # closest boundary point to the tip's centre, object frame
    normal: np.ndarray  # inward normal at that point, object frame
    lateral_offset: float  # y of the contact point in the ee frame: where on the gel it touches
    normal_force: float  # f.n as a fraction of f_max (the force lies on the limit surface)
    slip: float  # tangential speed of the tip relative to the object's surface at p (m/s)

    @property
    def in_contact(self) -> bool:
        return self.mode != "none"


def contact_force(
    point: np.ndarray, normal: np.ndarray, tip_velocity: np.ndarray, c_ls: float, mu: float
) -> tuple[np.ndarray, str]:
    """Contact force and mode ("stick" or "slide") for a tip moving into the object at ``tip_velocity``.

    The force is scaled so that V = (f_x, f_y, (p_x f_y - p_y f_x) / c^2) is the object's twist (m/s,
    rad/s); only its direction is physical. A tip moving into the object always pushes it: when the
    sticking force leaves the friction cone, on either side or behind it, the contact slides.
    """
    r = np.array([point[1], -point[0]])
    tangent = np.array([-normal[1], normal[0]])
    c2 = c_ls * c_ls
    # Sticking: A f = v_p; A = I + r r^T / c^2 is inverted by Sherman-Morrison.
    force = tip_velocity - r * (r @ tip_velocity) / (c2 + r @ r)
    f_n, f_t = force @ normal, force @ tangent
    if f_n > 0.0 and abs(f_t) <= mu * f_n:
        return force, "stick"
    # Sliding: the force is on the friction cone's edge on the side of the sticking force; the
    # object's velocity at p then matches the tip's along the normal only.
    edge = normal + (1.0 if f_t >= 0.0 else -1.0) * mu * tangent
    a_edge = edge + r * (r @ edge) / c2
    return edge * (normal @ tip_velocity) / (normal @ a_edge), "slide"


def quasi_static_step(
    shape: Shape,
    object_pose: np.ndarray,
    ee_pose: np.ndarray,
    ee_next: np.ndarray,
    dt: float,
    c_ls: float,
    mu: float,
    pusher: Pusher | None = None,
) -> tuple[np.ndarray, ContactState]:
    """The object's pose after the tip moves from ``ee_pose`` to ``ee_next`` in ``dt`` seconds."""
    pusher = pusher or Pusher()
    radius, tip = pusher.radius, pusher.centre_in_ee()
    rel = se2.between(object_pose, ee_pose)
    rel_next = se2.between(object_pose, ee_next)  # the tip after its move, the object not yet moved
    centre = se2.transform_point(rel, tip)
    distance, gradient = shape.sdf(centre)
    gap = float(distance) - radius
    point, normal = centre - distance * gradient, -gradient
    point_in_ee = se2.transform_point_inverse(rel, point)
    state = ContactState("none", gap, point, normal, float(point_in_ee[1]), 0.0, 0.0)
    centre_next = se2.transform_point(rel_next, tip)
    if gap > CONTACT_TOLERANCE_M and gap > np.linalg.norm(centre_next - centre):
        return np.asarray(object_pose, dtype=float), state  # cannot reach the object in this substep
    tip_velocity = (se2.transform_point(rel_next, point_in_ee) - point) / dt
    if normal @ tip_velocity <= 0.0:
        return np.asarray(object_pose, dtype=float), state  # touching or not, the tip moves away
    share = 1.0  # of the substep spent in contact, when the tip arrives during it
    if gap > CONTACT_TOLERANCE_M:
        gap_next = float(shape.sdf(centre_next)[0]) - radius
        if gap_next >= 0.0:
            return np.asarray(object_pose, dtype=float), state
        share = -gap_next / (gap - gap_next)
    force, mode = contact_force(point, normal, tip_velocity, c_ls, mu)
    moment = point[0] * force[1] - point[1] * force[0]
    twist = np.array([force[0], force[1], moment / (c_ls * c_ls)])
    moved = se2.compose(object_pose, se2.exp(twist * dt * share))
    moved = _remove_penetration(shape, moved, ee_next, pusher)
    r = np.array([point[1], -point[0]])
    material_velocity = force + r * (r @ force) / (c_ls * c_ls)  # A f: the object's surface at p
    tangent = np.array([-normal[1], normal[0]])
    # Quasi-statically the load sits on the limit surface: (|f| / f_max)^2 + (m / m_max)^2 = 1.
    on_limit_surface = math.sqrt(force @ force + (moment / c_ls) ** 2)
    return moved, ContactState(
        mode,
        gap,
        point,
        normal,
        float(point_in_ee[1]),
        float(force @ normal / on_limit_surface),
        float(tangent @ (tip_velocity - material_velocity)),
    )


def _remove_penetration(shape: Shape, object_pose: np.ndarray, ee_pose: np.ndarray, pusher: Pusher) -> np.ndarray:
    """Translate the object out of the tip along the contact normal (world frame)."""
    pose = np.array(object_pose, dtype=float)
    for _ in range(PENETRATION_PASSES):
        centre = se2.transform_point(se2.between(pose, ee_pose), pusher.centre_in_ee())
        distance, gradient = shape.sdf(centre)
        depth = pusher.radius - float(distance)
        if depth <= 0.0:
            break
        c, s = math.cos(pose[2]), math.sin(pose[2])
        pose[:2] -= depth * np.array([c * gradient[0] - s * gradient[1], s * gradient[0] + c * gradient[1]])
    return pose


# --- scripted end-effector motion -------------------------------------------------------------


@dataclass(frozen=True)
class _Feedback:
    """What the motion script sees after each substep."""

    object_pose: np.ndarray
    contact: ContactState


@dataclass(frozen=True)
class _Episode:
    """One contact episode, planned in the world frame from the object's pose at planning time."""

    start: np.ndarray  # tip-centre pose (x, y, yaw) 1.5 cm out along the boundary normal
    approach: np.ndarray  # unit direction of the approach: the inward normal
    push_velocity: np.ndarray  # world velocity of the push
    duration: float


def _tip_pose_to_ee(centre_pose: np.ndarray, pusher: Pusher) -> np.ndarray:
    """The ee pose whose tip circle is centred at ``centre_pose`` (ee = centre * (R, 0, 0))."""
    return se2.compose(centre_pose, np.array([pusher.radius, 0.0, 0.0]))


def _sample_boundary(shape: Shape, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A boundary point and the outward direction to approach it from, in the object frame."""
    if shape.kind == "rect":
        hx, hy = 0.5 * shape.size[0], 0.5 * shape.size[1]
        if rng.uniform() < CORNER_PROBABILITY:
            sx, sy = rng.choice([-1.0, 1.0], size=2)
            angle = math.atan2(sy, sx) + rng.uniform(-CORNER_CONE_RAD, CORNER_CONE_RAD)
            return np.array([sx * hx, sy * hy]), np.array([math.cos(angle), math.sin(angle)])
        # A face, chosen in proportion to its length, and a point uniformly along it.
        along = rng.uniform(-1.0, 1.0)
        sign = rng.choice([-1.0, 1.0])
        if rng.uniform() < hx / (hx + hy):
            return np.array([along * hx, sign * hy]), np.array([0.0, sign])
        return np.array([sign * hx, along * hy]), np.array([sign, 0.0])
    a, b = (shape.size[0], shape.size[0]) if shape.kind == "disc" else shape.size
    t = rng.uniform(-math.pi, math.pi)
    normal = np.array([b * math.cos(t), a * math.sin(t)])
    return np.array([a * math.cos(t), b * math.sin(t)]), normal / np.linalg.norm(normal)


def _plan_episode(shape: Shape, object_pose: np.ndarray, rng: np.random.Generator, pusher: Pusher) -> _Episode:
    c, s = math.cos(object_pose[2]), math.sin(object_pose[2])
    rotation = np.array([[c, -s], [s, c]])
    position = np.asarray(object_pose[:2], dtype=float)
    far = np.linalg.norm(position) > WORKSPACE_RADIUS_M
    candidates = [_sample_boundary(shape, rng) for _ in range(WORKSPACE_CANDIDATES if far else 1)]
    # The inward normal is roughly where the push takes the object: prefer one towards the origin.
    point, outward = max(candidates, key=lambda target: float(rotation @ target[1] @ position))
    point_w = se2.transform_point(object_pose, point)
    outward_w = rotation @ outward
    inward_angle = math.atan2(-outward_w[1], -outward_w[0])
    yaw = inward_angle + rng.uniform(-YAW_PERTURBATION_RAD, YAW_PERTURBATION_RAD)
    start = point_w + (pusher.radius + APPROACH_DISTANCE_M) * outward_w
    push_angle = inward_angle + rng.uniform(-PUSH_ANGLE_RAD, PUSH_ANGLE_RAD)
    speed = rng.uniform(*PUSH_SPEED_MPS)
    return _Episode(
        start=np.array([start[0], start[1], yaw]),
        approach=-outward_w,
        push_velocity=speed * np.array([math.cos(push_angle), math.sin(push_angle)]),
        duration=rng.uniform(*PUSH_DURATION_S),
    )


def _transit_waypoints(
    shape: Shape, object_pose: np.ndarray, start: np.ndarray, goal: np.ndarray, pusher: Pusher
) -> list[np.ndarray]:
    """Tip-centre positions from ``start`` to ``goal`` that keep the tip off the object.

    Straight when that is clear; otherwise out along the radius (a ray from the centre of a convex
    shape only moves away from it), around the bounding circle, and in along the goal's radius.
    """
    samples = np.linspace(start, goal, max(2, int(np.linalg.norm(goal - start) / 0.002) + 1))
    clearance = shape.sdf(se2.transform_point_inverse(object_pose, samples))[0] - pusher.radius
    if clearance.min() >= TRANSIT_CLEARANCE_M:
        return [goal]
    bounding = float(np.linalg.norm(shape.footprint(256), axis=-1).max())
    radius = bounding + pusher.radius + DETOUR_MARGIN_M
    centre = np.asarray(object_pose[:2], dtype=float)
    (sx, sy), (gx, gy) = start - centre, goal - centre
    a0 = math.atan2(sy, sx)
    turn = float(se2.wrap_angle(math.atan2(gy, gx) - a0))
    steps = max(1, math.ceil(abs(turn) / DETOUR_STEP_RAD))
    around = [centre + radius * np.array([math.cos(a), math.sin(a)]) for a in a0 + turn * np.arange(steps + 1) / steps]
    if np.linalg.norm(start - centre) >= radius:
        around = around[1:]
    return [*around, goal]


def _move(
    centre_pose: np.ndarray,
    waypoints: list[np.ndarray],
    yaw: float,
    speed: float,
    dt: float,
    pusher: Pusher,
    feedback: _Feedback,
) -> Generator[np.ndarray, _Feedback, tuple[np.ndarray, _Feedback]]:
    """Move the tip centre along a polyline at constant speed, turning to ``yaw`` on the way.

    Returns the final tip-centre pose and the last feedback.
    """
    points = np.vstack([centre_pose[:2], *waypoints])
    cumulative = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=-1))])
    turn = float(se2.wrap_angle(yaw - centre_pose[2]))
    steps = max(1, math.ceil(cumulative[-1] / (speed * dt)))
    pose = centre_pose
    for k in range(1, steps + 1):
        along = cumulative[-1] * k / steps
        x, y = np.interp(along, cumulative, points[:, 0]), np.interp(along, cumulative, points[:, 1])
        pose = np.array([x, y, float(se2.wrap_angle(centre_pose[2] + turn * k / steps))])
        feedback = yield _tip_pose_to_ee(pose, pusher)
    return pose, feedback


def _ee_motion(
    shape: Shape, object_pose: np.ndarray, rng: np.random.Generator, dt: float, pusher: Pusher
) -> Generator[np.ndarray, _Feedback, None]:
    """The end-effector's poses, one per substep, reacting to the contact through ``send``."""
    episode = _plan_episode(shape, object_pose, rng, pusher)
    centre = episode.start
    feedback = yield _tip_pose_to_ee(centre, pusher)
    while True:
        # Approach along the inward normal until the gel touches.
        travelled = 0.0
        while not feedback.contact.in_contact and travelled < APPROACH_DISTANCE_M + APPROACH_OVERSHOOT_M:
            centre = centre + np.array([*(episode.approach * APPROACH_SPEED_MPS * dt), 0.0])
            travelled += APPROACH_SPEED_MPS * dt
            feedback = yield _tip_pose_to_ee(centre, pusher)
        # Push, until the time is up, the contact leaves the gel or the tip has lost the object.
        pushing = feedback.contact.in_contact  # an approach that never touched has nothing to push
        elapsed = lost = 0.0
        while pushing and elapsed < episode.duration and lost < CONTACT_LOSS_S:
            centre = centre + np.array([*(episode.push_velocity * dt), 0.0])
            elapsed += dt
            feedback = yield _tip_pose_to_ee(centre, pusher)
            if not feedback.contact.in_contact:
                lost += dt
            elif abs(feedback.contact.lateral_offset) > GEL_HALF_WIDTH_M:
                pushing = False
            else:
                lost = 0.0
        # Retreat along the sensor's axis, then travel around the object to the next approach.
        back = centre[:2] - RETREAT_DISTANCE_M * np.array([math.cos(centre[2]), math.sin(centre[2])])
        centre, feedback = yield from _move(centre, [back], centre[2], RETREAT_SPEED_MPS, dt, pusher, feedback)
        episode = _plan_episode(shape, feedback.object_pose, rng, pusher)
        waypoints = _transit_waypoints(shape, feedback.object_pose, centre[:2], episode.start[:2], pusher)
        centre, feedback = yield from _move(
            centre, waypoints, episode.start[2], TRANSIT_SPEED_MPS, dt, pusher, feedback
        )


# --- runs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Substeps:
    """The simulated trajectory: poses at substep boundaries, contact per substep."""

    dt: float
    object_poses: np.ndarray  # (n + 1, 3)
    ee_poses: np.ndarray  # (n + 1, 3)
    contact: np.ndarray  # (n,) bool: the tip pushes during substep i
    sliding: np.ndarray  # (n,) bool
    normal_force: np.ndarray  # (n,) fraction of f_max
    gap: np.ndarray  # (n,) tip-to-object distance at the substep's start (m)

    def poses_at(self, stamps_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Object and ee poses at the stamps, interpolated along the geodesic between substeps."""
        u = (stamps_ns - FIRST_STAMP_NS) * 1e-9 / self.dt
        i0 = np.clip(np.floor(u).astype(int), 0, len(self.object_poses) - 2)
        fraction = u - i0
        return (
            se2.interpolate(self.object_poses[i0], self.object_poses[i0 + 1], fraction),
            se2.interpolate(self.ee_poses[i0], self.ee_poses[i0 + 1], fraction),
        )

    def substep_at(self, stamps_ns: np.ndarray) -> np.ndarray:
        """Index of the substep that starts nearest each stamp."""
        u = (stamps_ns - FIRST_STAMP_NS) * 1e-9 / self.dt
        return np.clip(np.round(u).astype(int), 0, len(self.contact) - 1)


def _simulate_substeps(
    shape: Shape, initial: np.ndarray, rng: np.random.Generator, n: int, c_ls: float, mu: float, pusher: Pusher
) -> _Substeps:
    dt = 1.0 / SUBSTEP_HZ
    object_poses, ee_poses = np.empty((n + 1, 3)), np.empty((n + 1, 3))
    contact, sliding = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    normal_force, gap = np.zeros(n), np.zeros(n)
    motion = _ee_motion(shape, initial, rng, dt, pusher)
    obj, ee = np.asarray(initial, dtype=float), next(motion)
    _, state = quasi_static_step(shape, obj, ee, ee, dt, c_ls, mu, pusher)  # at rest: the geometry only
    object_poses[0], ee_poses[0] = obj, ee
    for i in range(n):
        ee_next = motion.send(_Feedback(obj, state))
        obj, state = quasi_static_step(shape, obj, ee, ee_next, dt, c_ls, mu, pusher)
        ee = ee_next
        object_poses[i + 1], ee_poses[i + 1] = obj, ee
        contact[i], sliding[i] = state.in_contact, state.mode == "slide"
        normal_force[i], gap[i] = state.normal_force, state.gap
    return _Substeps(dt, object_poses, ee_poses, contact, sliding, normal_force, gap)


def _stamps(first_ns: int, last_ns: int, rate_hz: float, cover: bool) -> np.ndarray:
    """Stamps at ``rate_hz`` from ``first_ns``: up to ``last_ns``, or on to the first one at or after it."""
    period = 1e9 / rate_hz
    stamps = first_ns + np.round(np.arange(math.floor((last_ns - first_ns) / period) + 2) * period).astype(np.int64)
    if cover:
        return stamps[: np.searchsorted(stamps, last_ns) + 1]
    return stamps[stamps <= last_ns]


def simulate_run(
    shape: Shape,
    steps: int,
    seed: int,
    noise: SensorNoise = SensorNoise(),
    tactile_rate_hz: float = 30.0,
    ee_rate_hz: float = 100.0,
    camera_rate_hz: float = 2.0,
    renderer: TactileRenderer | None = None,
    camera_first_only: bool = False,
) -> SimulatedRun:
    """A seeded pushing run of ``steps`` tactile frames; the same seed gives the same run.

    Without a ``renderer`` one is made from the seed with ``noise.image_noise_std``; a renderer
    that is passed in keeps its own noise and draws a new lighting for this run, and its pusher
    is the run's gel tip.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    for name, rate in (("tactile", tactile_rate_hz), ("ee", ee_rate_hz), ("camera", camera_rate_hz)):
        if not np.isfinite(rate) or rate <= 0.0:
            raise ValueError(f"{name}_rate_hz must be > 0, not {rate}")
    rng = np.random.default_rng(seed)
    ee_rng, camera_rng, image_seed = np.random.SeedSequence(seed).spawn(3)
    ee_rng, camera_rng = np.random.default_rng(ee_rng), np.random.default_rng(camera_rng)
    if renderer is None:
        renderer = TactileRenderer(seed=int(image_seed.generate_state(1)[0]), noise_std=noise.image_noise_std)
    else:
        renderer.start_run()
    pusher = renderer.pusher

    c_ls_nominal = shape.limit_surface_c()
    c_ls = c_ls_nominal * rng.uniform(*LIMIT_SURFACE_SCALE)
    mu = rng.uniform(*FRICTION_RANGE)
    initial = np.array([*rng.uniform(-INITIAL_POSITION_M, INITIAL_POSITION_M, 2), rng.uniform(-math.pi, math.pi)])

    period_ns = 1e9 / tactile_rate_hz
    tactile_stamps = FIRST_STAMP_NS + np.round(np.arange(steps) * period_ns).astype(np.int64)
    last = int(tactile_stamps[-1])
    ee_stamps = _stamps(FIRST_STAMP_NS, last, ee_rate_hz, cover=True)
    camera_stamps = _stamps(FIRST_STAMP_NS, last, camera_rate_hz, cover=False)
    end_s = (max(last, int(ee_stamps[-1])) - FIRST_STAMP_NS) * 1e-9
    sim = _simulate_substeps(shape, initial, rng, math.ceil(end_s * SUBSTEP_HZ) + 1, c_ls, mu, pusher)

    # Tactile frames: the imprint deepens with the normal force, relative to the run's strongest push.
    objects, ees = sim.poses_at(tactile_stamps)
    index = sim.substep_at(tactile_stamps)
    in_contact = sim.contact[index]
    strongest = float(sim.normal_force[sim.contact].max()) if sim.contact.any() else 1.0
    depths = DEPTH_RANGE_M[0] + (DEPTH_RANGE_M[1] - DEPTH_RANGE_M[0]) * sim.normal_force[index] / strongest
    tactile = [
        TactileFrame(int(stamp), renderer.render(shape, o, e, bool(touch), float(depth)))
        for stamp, o, e, touch, depth in zip(tactile_stamps, objects, ees, in_contact, depths, strict=True)
    ]

    ee_truth = sim.poses_at(ee_stamps)[1]
    ee_sigma = np.array([noise.ee_translation_m, noise.ee_translation_m, noise.ee_rotation_rad])
    ee_measured = _perturb(ee_truth, ee_sigma, ee_rng)

    camera_truth = sim.poses_at(camera_stamps)[0]
    camera_sigma = np.array([noise.camera_translation_m, noise.camera_translation_m, noise.camera_rotation_rad])
    camera_measured = _perturb(camera_truth, camera_sigma, camera_rng)
    camera_index = sim.substep_at(camera_stamps)
    near = sim.contact[camera_index] | (sim.gap[camera_index] < OCCLUSION_DISTANCE_M)
    kept = _camera_visible(near, noise.camera_dropout, camera_rng)
    if camera_first_only:
        kept &= np.cumsum(kept) == 1
    covariance = np.diag(camera_sigma**2)

    return SimulatedRun(
        object_info=shape.info(),
        params={
            "seed": int(seed),
            "shape": shape.kind,
            "size": [float(s) for s in shape.size],
            "c_ls": float(c_ls),
            "c_ls_nominal": float(c_ls_nominal),
            "mu": float(mu),
            "initial_pose": initial.tolist(),
            "tactile_rate_hz": float(tactile_rate_hz),
            "ee_rate_hz": float(ee_rate_hz),
            "camera_rate_hz": float(camera_rate_hz),
            "camera_first_only": bool(camera_first_only),
            "substep_hz": SUBSTEP_HZ,
            "noise": asdict(noise),
            "camera_frames": len(camera_stamps),
            "contact_fraction": float(in_contact.mean()),
            "slide_fraction": float(sim.sliding.sum() / max(1, sim.contact.sum())),
            "depth_range_m": list(DEPTH_RANGE_M),
        },
        tactile=tactile,
        ee_poses=[PoseSample(int(t), p) for t, p in zip(ee_stamps, ee_measured, strict=True)],
        camera=[
            CameraDetection(int(t), p, covariance.copy())
            for t, p, keep in zip(camera_stamps, camera_measured, kept, strict=True)
            if keep
        ],
        ground_truth=[PoseSample(int(t), p) for t, p in zip(tactile_stamps, objects, strict=True)],
        ee_ground_truth=[PoseSample(int(t), p) for t, p in zip(tactile_stamps, ees, strict=True)],
        in_contact=[bool(c) for c in in_contact],
    )


def _perturb(poses: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Independent gaussian noise on x, y and theta."""
    noisy = poses + rng.standard_normal(poses.shape) * sigma
    noisy[:, 2] = se2.wrap_angle(noisy[:, 2])
    return noisy


def _camera_visible(near: np.ndarray, dropout: float, rng: np.random.Generator) -> np.ndarray:
    """Which camera frames come through: at least ``dropout`` of them are lost, more near the arm.

    The first frame always comes through, so that every run has a detection to start from.
    """
    lost_share = np.where(near, 1.0 - (1.0 - dropout) * OCCLUDED_VISIBLE_SHARE, dropout)
    visible = rng.uniform(size=len(near)) >= lost_share
    visible[0] = True
    missing = math.ceil(dropout * len(near) - 1e-9) - int((~visible).sum())
    if missing > 0:
        candidates = np.flatnonzero(visible[1:]) + 1
        visible[rng.choice(candidates, size=min(missing, len(candidates)), replace=False)] = False
    return visible
