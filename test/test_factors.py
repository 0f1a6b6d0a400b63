"""Every factor family: analytic Jacobians equal numerical ones; residuals vanish where they should."""

from __future__ import annotations

import numpy as np
import pytest

from tactile_estimator import geometry as se2
from tactile_estimator.factors import FAMILIES, ObjectModel, numerical_jacobians, relative_sensor_motion
from tactile_estimator.objects import Pusher, Shape

RNG = np.random.default_rng(7)


def random_poses(n: int, scale: float = 0.1) -> np.ndarray:
    return np.column_stack([RNG.normal(0, scale, n), RNG.normal(0, scale, n), RNG.uniform(-np.pi, np.pi, n)])


def touching_ee(shape: Shape, object_pose: np.ndarray, angle: float, tilt: float) -> np.ndarray:
    """An end-effector pose whose tip touches the shape at boundary direction `angle`."""
    pusher = Pusher()
    direction = np.array([np.cos(angle), np.sin(angle)])
    # march outwards from the centre until the SDF equals the tip radius
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if shape.sdf(mid * direction)[0] < pusher.radius else (lo, mid)
    centre = lo * direction
    yaw = angle + np.pi + tilt
    apex = centre + pusher.radius * np.array([np.cos(yaw), np.sin(yaw)])
    # apex expressed in the object frame; end-effector faces the centre with the given tilt
    ee_in_object = np.array([apex[0], apex[1], yaw])
    return se2.compose(object_pose, ee_in_object)


MODELS = {kind: ObjectModel.for_shape(Shape(kind, size)) for kind, size in
          {"rect": (0.1, 0.08), "disc": (0.05,), "ellipse": (0.065, 0.045)}.items()}


@pytest.mark.parametrize("family", ["tactile", "ee_prior", "camera", "first_pose"])
def test_pose_factor_jacobians_match_numerical(family: str) -> None:
    fam = FAMILIES[family]
    n_keys = 4 if family == "tactile" else 1
    poses = [random_poses(20) for _ in range(n_keys)]
    measurement = random_poses(20, 0.02)
    r, analytic = fam.jacobians(poses, measurement, None)
    numeric = numerical_jacobians(fam.residual, poses, measurement, None)
    assert r.shape == (20, 3)
    for a, n in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(a, n, atol=1e-6)


@pytest.mark.parametrize("kind", ["rect", "disc", "ellipse"])
def test_contact_jacobians_match_numerical(kind: str) -> None:
    model = MODELS[kind]
    objects = random_poses(10)
    ees = np.stack([touching_ee(model.shape, o, RNG.uniform(-0.6, 0.6), 0.1) for o in objects])
    ees[:, :2] += RNG.normal(0, 0.002, (10, 2))  # off the surface, so the SDF is smooth there
    r, analytic = FAMILIES["contact"].jacobians([objects, ees], np.zeros((10, 0)), model)
    numeric = numerical_jacobians(FAMILIES["contact"].residual, [objects, ees], np.zeros((10, 0)), model)
    for a, n in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(a, n, atol=1e-5)


@pytest.mark.parametrize("kind", ["rect", "disc", "ellipse"])
def test_contact_residual_is_zero_when_tip_touches(kind: str) -> None:
    model = MODELS[kind]
    o = np.array([0.2, -0.1, 0.7])
    e = touching_ee(model.shape, o, 0.3, 0.05)
    r = FAMILIES["contact"].residual([o[None], e[None]], np.zeros((1, 0)), model)
    assert abs(r[0, 0]) < 1e-9
    e_away = se2.compose(e, np.array([-0.01, 0.0, 0.0]))
    r_away = FAMILIES["contact"].residual([o[None], e_away[None]], np.zeros((1, 0)), model)
    assert r_away[0, 0] == pytest.approx(0.01, abs=1e-3)


def test_tactile_factor_is_zero_at_ground_truth() -> None:
    o_i, e_i, o_j, e_j = (random_poses(5) for _ in range(4))
    measured = relative_sensor_motion(o_i, e_i, o_j, e_j)
    r = FAMILIES["tactile"].residual([o_i, e_i, o_j, e_j], measured, None)
    np.testing.assert_allclose(r, 0.0, atol=1e-12)


def test_pushing_factor_is_zero_for_sticking_push_through_centre() -> None:
    """Pushing a disc straight through its centre: D·V = V_p holds exactly for a pure translation."""
    model = MODELS["disc"]
    o0 = np.array([0.0, 0.0, 0.3])
    e0 = touching_ee(model.shape, o0, np.pi, 0.0)  # tip on the -x side of the object, facing +x
    step = se2.transform_point(o0, np.array([0.003, 0.0])) - o0[:2]
    o1 = o0 + np.array([step[0], step[1], 0.0])
    e1 = e0 + np.array([step[0], step[1], 0.0])
    r = FAMILIES["pushing"].residual([o0[None], o1[None], e0[None], e1[None]], np.zeros((1, 0)), model)
    np.testing.assert_allclose(r, 0.0, atol=1e-9)
    # A rotation the pusher cannot explain is penalised.
    o1_rot = o1 + np.array([0.0, 0.0, 0.05])
    r_rot = FAMILIES["pushing"].residual([o0[None], o1_rot[None], e0[None], e1[None]], np.zeros((1, 0)), model)
    assert np.linalg.norm(r_rot) > 1e-3


def test_pushing_jacobians_match_fine_numerical() -> None:
    model = MODELS["rect"]
    o0 = random_poses(4)
    e0 = np.stack([touching_ee(model.shape, o, RNG.uniform(2.6, 3.6), 0.1) for o in o0])
    o1 = se2.compose(o0, random_poses(4, 0.002) * np.array([1, 1, 0.05]))
    e1 = se2.compose(e0, random_poses(4, 0.002) * np.array([1, 1, 0.05]))
    poses = [o0, o1, e0, e1]
    _, jac = FAMILIES["pushing"].jacobians(poses, np.zeros((4, 0)), model)
    fine = numerical_jacobians(FAMILIES["pushing"].residual, poses, np.zeros((4, 0)), model, step=1e-7)
    for a, n in zip(jac, fine, strict=True):
        np.testing.assert_allclose(a, n, atol=1e-4)


@pytest.mark.parametrize("family", ["at_rest", "motion_prior"])
def test_between_jacobians_match_numerical(family: str) -> None:
    fam = FAMILIES[family]
    poses = [random_poses(10), random_poses(10)]
    measurement = random_poses(10, 0.01)
    _, analytic = fam.jacobians(poses, measurement, None)
    numeric = numerical_jacobians(fam.residual, poses, measurement, None)
    for a, n in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(a, n, atol=1e-6)


@pytest.mark.parametrize("kind", ["rect", "disc", "ellipse"])
def test_tactile_normal_reads_the_sensors_tilt_against_the_surface(kind: str) -> None:
    """Pushing at boundary direction 0.3 with the sensor tilted by t from the inward normal: the
    normal in the sensor frame deviates by -t (on a disc and on a face; an ellipse's normal at that
    point is not radial, so only the residual at the measured value is checked there)."""
    model = MODELS[kind]
    o = np.array([0.2, -0.1, 0.7])
    tilts = np.array([-0.2, 0.0, 0.15])
    ees = np.stack([touching_ee(model.shape, o, 0.0 if kind == "rect" else 0.3, t) for t in tilts])
    objects = np.repeat(o[None], 3, 0)
    deviation = FAMILIES["tactile_normal"].residual([objects, ees], np.zeros((3, 1)), model)[:, 0]
    if kind != "ellipse":
        np.testing.assert_allclose(deviation, -tilts, atol=1e-9)
    r = FAMILIES["tactile_normal"].residual([objects, ees], deviation[:, None], model)
    np.testing.assert_allclose(r, 0.0, atol=1e-12)


def test_tactile_normal_is_blind_to_what_the_image_cannot_show() -> None:
    """Sliding along a face and a disc's spin about its centre leave the measurement unchanged;
    turning the object against the sensor does not."""
    o = np.array([0.2, -0.1, 0.7])
    rect, disc = MODELS["rect"], MODELS["disc"]
    e = touching_ee(rect.shape, o, 0.0, 0.1)
    slid = se2.compose(e, np.array([0.0, 0.01, 0.0]))  # along the +x face: the sensor's y is near the face
    spun = se2.compose(o, np.array([0.0, 0.0, 0.5]))
    e_disc = touching_ee(disc.shape, o, 0.3, 0.1)
    turned = se2.compose(o, np.array([0.0, 0.0, 0.05]))

    def normal(model: ObjectModel, obj: np.ndarray, ee: np.ndarray) -> float:
        return float(FAMILIES["tactile_normal"].residual([obj[None], ee[None]], np.zeros((1, 1)), model)[0, 0])

    slide_direction = se2.between(e, slid)
    assert abs(slide_direction[2]) < 1e-12
    assert normal(rect, o, slid) == pytest.approx(normal(rect, o, e), abs=1e-3)  # slide ⟂ to the sensor's x only
    assert normal(disc, spun, e_disc) == pytest.approx(normal(disc, o, e_disc), abs=1e-12)
    assert abs(normal(rect, turned, e) - normal(rect, o, e)) == pytest.approx(0.05, abs=1e-9)
