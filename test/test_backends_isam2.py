"""The iSAM2 backend's gtsam factors equal the one numpy definition of each family."""

from __future__ import annotations

import gtsam
import numpy as np
import pytest

from tactile_estimator import geometry as se2
from tactile_estimator.backends.isam2 import Isam2Backend, gtsam_key, to_gtsam
from tactile_estimator.factors import Factor, ObjectModel, evaluate
from tactile_estimator.objects import Shape

RNG = np.random.default_rng(3)
MODEL = ObjectModel.for_shape(Shape("rect", (0.1, 0.08)))


def random_pose(scale: float = 0.1) -> np.ndarray:
    return np.array([RNG.normal(0, scale), RNG.normal(0, scale), RNG.uniform(-np.pi, np.pi)])


def touching_pair() -> tuple[np.ndarray, np.ndarray]:
    o = random_pose()
    return o, se2.compose(o, np.array([-0.05 - 0.001, 0.01, 0.1]))


def cases() -> list[Factor]:
    sig = np.array([0.01, 0.02, 0.03])
    o0, e0 = touching_pair()
    return [
        Factor("ee_prior", (("e", 0),), random_pose(), sig),
        Factor("camera", (("o", 0),), random_pose(), sig),
        Factor("first_pose", (("o", 0),), random_pose(), sig),
        Factor("motion_prior", (("o", 0), ("o", 1)), random_pose(0.01), sig),
        Factor("at_rest", (("o", 0), ("o", 1)), np.zeros(3), sig),
        Factor("tactile", (("o", 0), ("e", 0), ("o", 1), ("e", 1)), random_pose(0.01), sig),
        Factor("pushing", (("o", 0), ("o", 1), ("e", 0), ("e", 1)), np.zeros(0), sig, MODEL),
        Factor("contact", (("o", 0), ("e", 0)), np.zeros(0), np.array([0.001]), MODEL),
    ], (o0, e0)


@pytest.mark.parametrize("index", range(8))
def test_gtsam_factor_matches_numpy_definition(index: int) -> None:
    factors, (o0, e0) = cases()
    factor = factors[index]
    poses = {("o", 0): o0, ("e", 0): e0, ("o", 1): se2.compose(o0, random_pose(0.01) * [1, 1, 0.1]),
             ("e", 1): se2.compose(e0, random_pose(0.01) * [1, 1, 0.1])}
    values = gtsam.Values()
    for key, pose in poses.items():
        values.insert(gtsam_key(key), gtsam.Pose2(*pose))
    residual, jacobians = evaluate(factor, [poses[k] for k in factor.keys])
    linear = to_gtsam(factor).linearize(values)
    a, b = linear.jacobian()
    sigmas = np.asarray(factor.sigmas)
    # gtsam whitens: A = J / σ and b = -r / σ
    np.testing.assert_allclose(-b * sigmas, residual, atol=1e-9)
    np.testing.assert_allclose(a * sigmas[:, None], np.hstack(jacobians), atol=1e-6 if factor.family == "pushing"
                               else 1e-9)


def test_marginal_covariance_of_a_single_prior_is_its_covariance() -> None:
    backend = Isam2Backend()
    sig = np.array([0.01, 0.02, 0.03])
    backend.add([Factor("first_pose", (("o", 0),), np.zeros(3), sig)], {("o", 0): np.zeros(3)})
    np.testing.assert_allclose(backend.marginals([("o", 0)])[("o", 0)], np.diag(sig**2), atol=1e-12)
    samples = backend.sample(4000, [("o", 0)], np.random.default_rng(0))
    np.testing.assert_allclose(samples[:, 0].std(0), sig, rtol=0.05)


@pytest.mark.parametrize("shape", [Shape("rect", (0.1, 0.08)), Shape("disc", (0.05,)), Shape("ellipse", (0.065, 0.045)),
                                   Shape("ellipse", (0.03, 0.06))])
@pytest.mark.parametrize(("family", "friction"), [("pushing", 0.0), ("pushing", 0.3), ("contact", 0.0),
                                                  ("tactile_normal", 0.0)])
def test_float_callbacks_match_numpy_definition_on_every_shape(shape: Shape, family: str, friction: float,
                                                               seed: int = 11) -> None:
    """The gtsam callbacks compute on floats with analytic Jacobians: held to the numpy family around
    the whole boundary, at faces, corners and curved edges, in and out of contact (±3 mm); with
    friction, for sticking and sliding contacts both."""
    model = ObjectModel.for_shape(shape, friction=friction)
    sticking = ObjectModel.for_shape(shape)
    modes = {"stick": 0, "slide": 0}
    rng = np.random.default_rng(seed)
    # Off the axes, where the numpy ellipse's finite differences straddle its on-axis branch.
    for angle in np.linspace(-np.pi, np.pi, 48 if friction else 24, endpoint=False) + np.pi / 96:
        o0 = np.array([*rng.normal(0, 0.1, 2), rng.uniform(-np.pi, np.pi)])
        # The tip's centre at a boundary point's normal, a little off the surface.
        distance, gradient = shape.sdf(np.array([[np.cos(angle), np.sin(angle)]]) * 0.2)
        boundary = 0.2 * np.array([np.cos(angle), np.sin(angle)]) - distance[0] * gradient[0]
        centre = boundary + (model.pusher.radius + rng.uniform(-0.003, 0.003)) * gradient[0]
        # The end-effector faces the object (its +x along the inward normal), in world coordinates.
        heading = o0[2] + np.arctan2(-gradient[0, 1], -gradient[0, 0]) + rng.normal(0, 0.2)
        offset = se2.transform_point(np.array([0.0, 0.0, heading]), model.pusher.centre_in_ee())
        e0 = np.array([*(se2.transform_point(o0, centre) - offset), heading])
        poses = {("o", 0): o0, ("e", 0): e0, ("o", 1): se2.compose(o0, rng.normal(0, 0.004, 3)),
                 ("e", 1): se2.compose(e0, rng.normal(0, 0.004, 3))}
        keys = ((("o", 0), ("o", 1), ("e", 0), ("e", 1)) if family == "pushing" else (("o", 0), ("e", 0)))
        sigmas = np.ones(3 if family == "pushing" else 1)
        measurement = np.array([rng.normal(0, 0.2)]) if family == "tactile_normal" else np.zeros(0)
        if friction and rng.uniform() < 0.5:  # the mode decided on a mean motion near the step's own
            measurement = poses[("e", 1)][:2] - e0[:2] + rng.normal(0, 0.002, 2)
        factor = Factor(family, keys, measurement, sigmas, model)
        values = gtsam.Values()
        for key, pose in poses.items():
            values.insert(gtsam_key(key), gtsam.Pose2(*pose))
        residual, jacobians = evaluate(factor, [poses[k] for k in keys])
        a, b = to_gtsam(factor).linearize(values).jacobian()
        np.testing.assert_allclose(-b, residual, atol=1e-9)
        np.testing.assert_allclose(a, np.hstack(jacobians), atol=2e-6)
        if friction:
            stuck = evaluate(Factor(family, keys, measurement, sigmas, sticking), [poses[k] for k in keys])[0]
            modes["stick" if np.allclose(stuck, residual, atol=1e-12) else "slide"] += 1
    if friction:
        assert min(modes.values()) >= 5, modes


def test_callbacks_receive_the_linearization_point_itself_not_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of all poses per callback made updates grow with the run (30-140 ms at 3,000 steps)."""
    import tactile_estimator.backends.isam2 as isam2

    seen: list[bool] = []
    make = isam2.CALLBACKS["contact"]

    def spying(factor: Factor, keys: list[int]):
        error = make(factor, keys)

        def wrapped(this, values, jacobians):
            seen.append(values is backend._theta)
            return error(this, values, jacobians)

        return wrapped

    monkeypatch.setitem(isam2.CALLBACKS, "contact", spying)
    backend = Isam2Backend()
    o, e = touching_pair()
    sig = np.array([0.01, 0.01, 0.01])
    for k in range(3):
        link = Factor("first_pose", (("o", 0),), o, sig) if k == 0 else Factor(
            "at_rest", (("o", k - 1), ("o", k)), np.zeros(3), sig)
        backend.add([link,
                     Factor("ee_prior", (("e", k),), e, sig),
                     Factor("contact", (("o", k), ("e", k)), np.zeros(0), np.array([0.001]), MODEL)],
                    {("o", k): o, ("e", k): e})
    assert len(seen) >= 3 and all(seen)
