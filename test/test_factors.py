"""The factor registry: its families, their flags, and a family added with its own module only.

Shared by the per-family tests (test_factor_*.py): random and touching poses, and one check of a
family's Jacobians against central differences and torch.func.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tactile_estimator import geometry as se2
from tactile_estimator.factors import FAMILIES, Factor, Family, ObjectModel, evaluate, numerical_jacobians
from tactile_estimator.factors.base import AUTODIFF_TRANSFORMS, autodiff_jacobians
from tactile_estimator.objects import Pusher, Shape

RNG = np.random.default_rng(7)
MODELS = {kind: ObjectModel.for_shape(Shape(kind, size)) for kind, size in
          {"rect": (0.1, 0.08), "disc": (0.05,), "ellipse": (0.065, 0.045)}.items()}
SHAPED = ("contact", "pushing", "tactile_normal")  # families that read the object's shape
CASES = [(f, k) for f in sorted(FAMILIES) for k in (("rect", "disc", "ellipse") if f in SHAPED else ("rect",))]


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


def poses_for(family: str, kind: str, n: int = 12) -> tuple[list[np.ndarray], np.ndarray]:
    """Random poses for a family (touching ones, 0-2 mm off the surface, for those that read the shape)."""
    model = MODELS[kind]
    if family in SHAPED:
        o_prev = random_poses(n)
        e_prev = np.stack([touching_ee(model.shape, o, RNG.uniform(-np.pi, np.pi), 0.1) for o in o_prev])
        e_prev[:, :2] += RNG.normal(0, 0.002, (n, 2))
        if family == "contact":
            return [o_prev, e_prev], np.zeros((n, 0))
        if family == "tactile_normal":
            return [o_prev, e_prev], RNG.normal(0, 0.1, (n, 1))
        step = np.column_stack([RNG.normal(0, 0.003, (n, 2)), RNG.normal(0, 0.02, n)])
        return [o_prev, se2.compose(o_prev, step), e_prev, se2.compose(e_prev, step)], np.zeros((n, 0))
    return [random_poses(n) for _ in FAMILIES[family].keys], random_poses(n, 0.02)


def tensors(poses: list[np.ndarray], measurement: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
    return [torch.from_numpy(p) for p in poses], torch.from_numpy(measurement)


def assert_jacobians_agree(family: str, kind: str, numerical_atol: float, autodiff_atol: float) -> None:
    """A family's definition on random (or touching) poses: its Jacobians against central differences of
    its error (to ``numerical_atol``) and against torch.func by all three transforms (to ``autodiff_atol``);
    the residuals of every path, and of the numpy view, equal the error's."""
    declared, model = FAMILIES[family], MODELS[kind]
    poses, measurement = poses_for(family, kind, n=16)
    as_t, m = tensors(poses, measurement)
    reference = declared.error(as_t, m, model)
    assert reference.shape == (16, declared.dim) and reference.dtype == torch.float64
    np.testing.assert_array_equal(declared.residual(poses, measurement, model), reference.numpy())
    r, analytic = declared.jacobians(as_t, m, model)
    torch.testing.assert_close(r, reference, atol=1e-12, rtol=0.0)
    assert len(analytic) == len(declared.keys)
    for a, b in zip(analytic, numerical_jacobians(declared.error, as_t, m, model), strict=True):
        assert a.shape == (16, declared.dim, 3)
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=numerical_atol)
    for transform in AUTODIFF_TRANSFORMS:
        r, jacobians = autodiff_jacobians(declared.error, as_t, m, model, transform)
        torch.testing.assert_close(r, reference, atol=1e-12, rtol=0.0)
        assert len(jacobians) == len(analytic)
        for a, b in zip(jacobians, analytic, strict=True):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, atol=autodiff_atol, rtol=0.0)


# ------------------------------------------------------------------------------------ registry
def test_registry_keeps_its_order_and_flags() -> None:
    assert list(FAMILIES) == ["tactile", "tactile_normal", "pushing", "contact", "ee_prior", "camera", "first_pose",
                              "at_rest", "motion_prior"]
    assert [n for n, f in FAMILIES.items() if not f.learnable] == ["first_pose", "at_rest", "motion_prior"]
    assert [n for n, f in FAMILIES.items() if not f.switchable] == ["at_rest", "motion_prior"]
    assert {n: len(f.keys) for n, f in FAMILIES.items()} == {
        "tactile": 4, "pushing": 4, "contact": 2, "tactile_normal": 2, "ee_prior": 1, "camera": 1, "first_pose": 1,
        "at_rest": 2, "motion_prior": 2}
    for name, family in FAMILIES.items():
        assert family.name == name
    assert {n: f.gtsam for n, f in FAMILIES.items() if f.gtsam != "custom"} == {
        "ee_prior": "prior", "camera": "prior", "first_pose": "prior", "at_rest": "between", "motion_prior": "between"}


def test_a_family_is_refused_with_keys_or_a_gtsam_kind_it_cannot_have() -> None:
    error = FAMILIES["camera"].error
    with pytest.raises(ValueError, match="'bad'.*keys"):
        Family("bad", ("x",), 3, error)
    with pytest.raises(ValueError, match="'bad'.*gtsam"):
        Family("bad", ("o",), 3, error, gtsam="native")


def test_evaluate_gives_one_factors_residual_and_jacobians() -> None:
    poses, measurement = poses_for("tactile", "rect", n=1)
    factor = Factor("tactile", (("o", 0), ("e", 0), ("o", 1), ("e", 1)), measurement[0], np.ones(3))
    residual, jacobians = evaluate(factor, [p[0] for p in poses])
    r, jac = FAMILIES["tactile"].jacobians(*tensors(poses, measurement), None)
    assert residual.shape == (3,) and [j.shape for j in jacobians] == [(3, 3)] * 4
    np.testing.assert_array_equal(residual, r[0].numpy())
    for a, b in zip(jacobians, jac, strict=True):
        np.testing.assert_array_equal(a, b[0].numpy())


def _position_error(poses, measured, context=None):
    """A toy family: the object's position in the world, measured (a GPS-like fix)."""
    return poses[0][..., :2] - measured


def test_a_family_needs_its_declaration_only_to_be_solved_by_both_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """A family declared with its error alone (central-difference Jacobians, the iSAM2 backend calls its
    definition) is solved by both backends, to the same estimate."""
    from tactile_estimator.backends.gauss_newton import Problem
    from tactile_estimator.backends.isam2 import Isam2Backend

    toy = Family("position", ("o",), 2, _position_error)
    monkeypatch.setitem(FAMILIES, "position", toy)
    loose = np.array([1.0, 1.0, 0.1])
    factors = [Factor("first_pose", (("o", 0),), np.zeros(3), loose),
               Factor("motion_prior", (("o", 0), ("o", 1)), np.array([0.1, 0.0, 0.2]), np.array([0.01, 0.01, 0.01])),
               Factor("position", (("o", 0),), np.array([0.3, -0.2]), np.array([0.001, 0.001])),
               Factor("position", (("o", 1),), np.array([0.41, -0.17]), np.array([0.001, 0.001]))]
    initial = {("o", 0): np.zeros(3), ("o", 1): np.zeros(3)}
    isam = Isam2Backend(relinearize_threshold=0.0)
    isam.add(factors, initial)
    isam.refine(20)
    problem = Problem([(factors, initial)])
    report = problem.solve(iterations=30)
    assert bool(report.converged[0]) and not bool(report.failed[0])
    ours, theirs = problem.values_of(0), isam.estimate()
    for key in initial:
        np.testing.assert_allclose(ours[key], theirs[key], atol=1e-9)
    np.testing.assert_allclose(ours[("o", 0)][:2], [0.3, -0.2], atol=2e-3)  # the fixes, not the loose prior
    np.testing.assert_allclose(ours[("o", 1)][:2], [0.41, -0.17], atol=2e-3)
