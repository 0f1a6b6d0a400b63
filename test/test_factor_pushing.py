"""The quasi-static pushing factor (factors/pushing.py): zero for a sticking push, the simulator's motion cone
with friction, Jacobians by differences."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_factors import FAMILIES, MODELS, RNG, assert_jacobians_agree, random_poses, tensors, touching_ee

from tactile_estimator import geometry as se2
from tactile_estimator.factors import numerical_jacobians
from tactile_estimator.factors.pushing import VERTEX_MARGIN, mean_pusher_motion, surface_target
from tactile_estimator.sim.pushing import contact_force, quasi_static_step


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
    as_t, m = tensors([o0, o1, e0, e1], np.zeros((4, 0)))
    _, jac = FAMILIES["pushing"].jacobians(as_t, m, model)
    fine = numerical_jacobians(FAMILIES["pushing"].error, as_t, m, model, step=1e-7)
    for a, n in zip(jac, fine, strict=True):
        np.testing.assert_allclose(a.numpy(), n.numpy(), atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch's jvp rules
@pytest.mark.parametrize("kind", ["rect", "disc", "ellipse"])
def test_jacobians_equal_numerical_and_torch_func(kind: str) -> None:
    """Its Jacobians are central differences (step 1e-6): torch.func agrees to their error, 1e-7."""
    assert_jacobians_agree("pushing", kind, numerical_atol=1e-12, autodiff_atol=1e-7)


def test_surface_target_is_the_simulators_contact_in_both_modes() -> None:
    """The factor's motion cone is the simulator's contact model: the object's velocity at the contact
    point, A f, for sticking and sliding contacts alike."""
    rng = np.random.default_rng(3)
    modes = {"stick": 0, "slide": 0}
    for _ in range(400):
        p, angle, v = rng.normal(0, 0.04, 2), rng.uniform(-np.pi, np.pi), rng.normal(0, 0.01, 2)
        n = np.array([np.cos(angle), np.sin(angle)])
        if n @ v <= 0.0:
            continue
        c_ls, mu = rng.uniform(0.02, 0.04), rng.uniform(0.2, 0.5)
        force, mode = contact_force(p, n, v, c_ls, mu)
        modes[mode] += 1
        r = np.array([p[1], -p[0]])
        target = surface_target(torch.tensor(p), torch.tensor(n), torch.tensor(v), c_ls, mu).numpy()
        np.testing.assert_allclose(target, (np.eye(2) + np.outer(r, r) / c_ls**2) @ force, atol=1e-9)
    assert min(modes.values()) > 20, modes


def test_a_sliding_push_is_explained_by_the_friction_factor_not_the_sticking_one() -> None:
    """A push 40° off a face's normal slides at μ = 0.2: the factor with the run's μ and c leaves (almost)
    no residual for the simulator's motion; the sticking factor leaves the slip along the face."""
    shape = MODELS["rect"].shape
    c_ls, mu = shape.limit_surface_c(), 0.2
    o0 = np.array([0.01, -0.02, 0.4])
    e0 = touching_ee(shape, o0, np.pi + 0.1, 0.0)
    direction = se2.transform_point(np.array([0.0, 0.0, o0[2]]), np.array([np.cos(0.7), np.sin(0.7)]))
    dt = 1.0 / 300.0
    e1 = e0 + np.array([*(0.03 * dt * direction), 0.0])
    o1, state = quasi_static_step(shape, o0, e0, e1, dt, c_ls, mu)
    assert state.mode == "slide"
    sliding = dataclasses.replace(MODELS["rect"], limit_surface_c=c_ls, friction=mu)
    sticking = dataclasses.replace(sliding, friction=np.inf)
    poses = [o0[None], o1[None], e0[None], e1[None]]
    motion = np.zeros((1, 0))
    r_slide = FAMILIES["pushing"].residual(poses, motion, sliding)[0]
    r_stick = FAMILIES["pushing"].residual(poses, motion, sticking)[0]
    step = np.linalg.norm(e1[:2] - e0[:2])
    assert np.linalg.norm(r_slide) < 0.02 * step
    assert np.linalg.norm(r_stick[:2]) > 0.3 * step


@pytest.mark.parametrize(("along", "sticks"), [(0.005, False), (0.035, True)])
def test_near_a_corner_the_contact_sticks_whatever_the_push(along: float, sticks: bool) -> None:
    """A push 40° off the -x face's normal slides at μ = 0.2 on the face (5 mm from its middle), and is
    held sticking within VERTEX_MARGIN of the corner (35 mm along, 5 mm from the corner), where the
    normal could be the corner's as well as the face's."""
    shape = MODELS["rect"].shape
    assert 0.04 - 0.035 < VERTEX_MARGIN < 0.04 - 0.005
    o0 = np.array([0.01, -0.02, 0.4])
    e0 = touching_ee(shape, o0, np.pi + np.arctan2(along, 0.05), 0.0)
    direction = se2.transform_point(np.array([0.0, 0.0, o0[2]]), np.array([np.cos(0.7), np.sin(0.7)]))
    e1 = e0 + np.array([*(1e-4 * direction), 0.0])
    o1 = se2.compose(o0, np.array([5e-5, 2e-5, 1e-3]))
    sliding = dataclasses.replace(MODELS["rect"], friction=0.2)
    sticking = dataclasses.replace(sliding, friction=np.inf)
    poses = [o0[None], o1[None], e0[None], e1[None]]
    motion = np.zeros((1, 0))
    r_slide = FAMILIES["pushing"].residual(poses, motion, sliding)[0]
    r_stick = FAMILIES["pushing"].residual(poses, motion, sticking)[0]
    assert np.allclose(r_slide, r_stick, atol=1e-12) == sticks


def test_the_mode_is_decided_on_the_mean_motion_not_the_steps_noise() -> None:
    """A noisy step just outside the cone still sticks when the mean motion is inside it; a mean
    motion outside it slides, and the step's own normal motion sets the speed."""
    p, n, c_ls, mu = torch.tensor([-0.05, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64), \
        0.035, 0.3
    inside = torch.tensor([1.0e-3, 0.1e-3], dtype=torch.float64)  # sticking force's |f_t| / f_n: 0.03
    outside = torch.tensor([1.0e-3, 2.0e-3], dtype=torch.float64)  # 0.66
    np.testing.assert_allclose(surface_target(p, n, outside, c_ls, mu, decide=inside).numpy(), outside.numpy())
    slid = surface_target(p, n, inside, c_ls, mu, decide=outside).numpy()
    assert slid[0] == pytest.approx(inside[0].item())  # the normal motion is the tip's
    assert slid[1] != pytest.approx(inside[1].item())  # the tangential is the cone edge's
    away = torch.tensor([-1.0e-3, 0.0], dtype=torch.float64)
    np.testing.assert_allclose(surface_target(p, n, inside, c_ls, mu, decide=away).numpy(), 0.0)


def test_mean_pusher_motion_is_the_displacement_per_step() -> None:
    motion = mean_pusher_motion(np.array([0.03, 0.01, 0.5]), np.array([0.0, 0.04, 0.1]), 6)
    np.testing.assert_allclose(motion, [0.005, -0.005])
