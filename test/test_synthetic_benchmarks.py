"""The LEO synthetic benchmarks' building blocks: data generator, solver, Laplace samples, LEO steps."""

from __future__ import annotations

import math

import gtsam
import numpy as np
import pytest
import torch

from benchmarks import leo_navigation as nav
from benchmarks import leo_regression as reg


def _true_sigmas(spec: nav.DatasetSpec, data: nav.NavData) -> tuple[np.ndarray, np.ndarray]:
    return nav.sigmas_per_factor(np.log(np.asarray(spec.odom)), np.log(np.asarray(spec.gps)), data)


def test_navigation_data_is_deterministic_by_seed():
    spec = nav.DATASETS["N3"]
    a = nav.make_dataset(spec, 3, 50, seed=7)
    b = nav.make_dataset(spec, 3, 50, seed=7)
    c = nav.make_dataset(spec, 3, 50, seed=8)
    for field in ("gt", "odom", "gps", "label"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.allclose(a.gt, c.gt)
    assert not np.allclose(a.odom, c.odom)
    # the binary measurement follows the original schedule: 0, then 1 for the middle half, then 0
    np.testing.assert_array_equal(a.label[0], (np.arange(50) / 50 > 0.25) & (np.arange(50) / 50 <= 0.75))
    xmin, xmax, ymin, ymax = nav.AREA
    assert a.gt[..., 0].min() > xmin - 5 and a.gt[..., 0].max() < xmax + 5
    assert a.gt[..., 1].min() > ymin - 5 and a.gt[..., 1].max() < ymax + 5


@pytest.mark.parametrize("name,gps_mode", [("N3", "pose"), ("N4", "position")])
def test_navigation_noise_statistics_match_generating_sigma(name, gps_mode):
    spec = nav.DATASETS[name]
    data = nav.make_dataset(spec, 40, 100, seed=3, gps_mode=gps_mode)
    r_odom, r_gps = nav.residuals(data.gt, data)  # at the ground truth: exactly the drawn noise
    for c in (0, 1):
        for r, label, sigma in ((r_odom, data.label_odom, spec.odom[c]), (r_gps, data.label, spec.gps[c])):
            sel = r[label == c]
            assert len(sel) > 1500
            std = sel.std(axis=0)
            np.testing.assert_allclose(std, np.asarray(sigma)[: r.shape[-1]], rtol=0.07)
            assert np.all(np.abs(sel.mean(axis=0)) < 4 * std / math.sqrt(len(sel)))


@pytest.mark.parametrize("gps_mode", ["pose", "position"])
def test_residual_jacobians_match_finite_differences(gps_mode):
    data = nav.make_dataset(nav.DATASETS["N2"], 1, 4, seed=11, gps_mode=gps_mode)
    x = nav.retract(data.gt, np.random.default_rng(0).normal(0.0, 0.3, data.gt.shape))
    r_odom, ji, jj, r_gps, jg, _, _ = nav._linearise(x, data)
    eps = 1e-6
    for t in range(3):
        for k in range(3):
            d = np.zeros_like(x)
            d[0, t, k] = eps
            plus, minus = nav.residuals(nav.retract(x, d), data), nav.residuals(nav.retract(x, -d), data)
            num_odom = (plus[0] - minus[0]) / (2 * eps)
            num_gps = (plus[1] - minus[1]) / (2 * eps)
            np.testing.assert_allclose(num_odom[0, t], ji[0, t, :, k], atol=1e-6)  # factor t -> t+1, first pose
            if t > 0:
                np.testing.assert_allclose(num_odom[0, t - 1], jj[0, t - 1, :, k], atol=1e-6)
            np.testing.assert_allclose(num_gps[0, t], jg[0, t, :, k], atol=1e-6)


def test_batched_gauss_newton_matches_gtsam():
    spec = nav.DATASETS["N3"]
    data = nav.make_dataset(spec, 3, 40, seed=5)
    so, sg = _true_sigmas(spec, data)
    ours = nav.solve_map(data, so, sg, tol=0.0)
    ref = nav.gtsam_map(data, so, sg)
    diff = np.abs(ours.x - ref)
    diff[..., 2] = np.abs(nav.wrap(diff[..., 2]))
    assert diff.max() < 1e-5
    assert np.all(nav.traj_costs(ours.x, data, so, sg) <= nav.traj_costs(ref, data, so, sg) + 1e-9)


def test_laplace_samples_have_the_covariance_of_the_hessian_inverse():
    spec = nav.DATASETS["N1"]
    data = nav.make_dataset(spec, 1, 4, seed=2)
    so, sg = _true_sigmas(spec, data)
    sol = nav.solve_map(data, so, sg)
    # dense H⁻¹ from the banded Cholesky factor, against gtsam's joint marginal covariance
    n = 12
    upper = np.zeros((n, n))
    for j in range(n):
        for i in range(max(0, j - 5), j + 1):
            upper[i, j] = sol.chol[5 + i - j, j]
    cov = np.linalg.inv(upper.T @ upper)
    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    graph.add(
        gtsam.PriorFactorPose2(0, gtsam.Pose2(*data.gt[0, 0]), gtsam.noiseModel.Isotropic.Sigma(3, nav.ANCHOR_SIGMA))
    )
    for t in range(4):
        graph.add(gtsam.PriorFactorPose2(t, gtsam.Pose2(*data.gps[0, t]), gtsam.noiseModel.Diagonal.Sigmas(sg[0, t])))
        if t:
            noise = gtsam.noiseModel.Diagonal.Sigmas(so[0, t - 1])
            graph.add(gtsam.BetweenFactorPose2(t - 1, t, gtsam.Pose2(*data.odom[0, t - 1]), noise))
        values.insert(t, gtsam.Pose2(*sol.x[0, t]))
    keys = gtsam.KeyVector()
    for t in range(4):
        keys.append(t)
    ref = gtsam.Marginals(graph, values).jointMarginalCovariance(keys).fullMatrix()
    np.testing.assert_allclose(cov, ref, rtol=1e-6, atol=1e-12)
    # the samples' tangent-space offsets have that covariance
    samples = nav.laplace_samples(sol, 40000, np.random.default_rng(1))
    delta = nav.logmap(nav.between(sol.x[None], samples)).reshape(40000, n)
    emp = np.cov(delta, rowvar=False)
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.max(np.abs(emp - cov) / scale) < 0.05
    assert np.max(np.abs(delta.mean(axis=0)) / np.sqrt(np.diag(cov))) < 0.05


def test_normaliser_cancels_in_the_leo_loss():
    spec = nav.DATASETS["N3"]
    data = nav.make_dataset(spec, 2, 30, seed=4)
    so, sg = _true_sigmas(spec, data)
    sol = nav.solve_map(data, so, sg)
    samples = nav.laplace_samples(sol, 8, np.random.default_rng(0))
    r_gt = [torch.as_tensor(r) for r in nav.residuals(data.gt, data)]
    r_s = [torch.as_tensor(r) for r in nav.residuals(samples, data)]
    label = torch.as_tensor(data.label)
    grads = []
    for normaliser in (False, True):
        lo = torch.full((2, 3), -0.7, dtype=torch.float64, requires_grad=True)
        lg = torch.full((2, 3), 0.3, dtype=torch.float64, requires_grad=True)
        e_gt = nav.energy(lo, lg, *r_gt, label, normaliser=normaliser)
        e_s = nav.energy(lo, lg, *r_s, label, normaliser=normaliser).mean(0)
        (e_gt - e_s).mean().backward()
        grads.append(torch.cat([lo.grad.ravel(), lg.grad.ravel()]))
        # with the normaliser the energy itself differs, the loss gradient does not
        assert not torch.allclose(e_gt, nav.energy(lo, lg, *r_gt, label, normaliser=not normaliser))
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().max() > 0


def test_a_few_leo_steps_move_sigma_toward_the_generating_values():
    torch.set_num_threads(1)
    spec = nav.DATASETS["N1"]
    data = nav.make_dataset(spec, 4, 60, seed=9)
    learned = nav.train_leo(spec, data, None, iterations=15, n_samples=16, seed=0)
    before = nav.log_error(nav.Learned("init", *nav.initial_log_sigmas(spec), learned.trace), spec, 3)
    true = np.concatenate([np.log(spec.odom).ravel(), np.log(spec.gps).ravel()])
    start = np.concatenate([a.ravel() for a in nav.initial_log_sigmas(spec)])
    end = np.concatenate([learned.log_sig_odom.ravel(), learned.log_sig_gps.ravel()])
    assert np.abs(end - true).mean() < 0.4 * np.abs(start - true).mean()
    assert nav.log_error(learned, spec, 3) < 0.5 * before
    # odometry σ started 10x too large and must have come down
    assert np.all(np.exp(learned.log_sig_odom) < 0.3)
    assert learned.trace.train[-1][0] < learned.trace.train[0][0]


def test_short_leo_regression_training_puts_the_energy_minimum_near_x_sin_x():
    torch.set_num_threads(1)
    x = torch.linspace(0.0, 2.0 * math.pi, 64)
    untrained = reg.EnergyNet(seed=0)
    before = float(((reg.energy_argmin(untrained, x) - reg.target(x)) ** 2).mean())
    result = reg.train("LEO", "zero", updates=60, seed=0)
    after = float(((reg.energy_argmin(result.net, x) - reg.target(x)) ** 2).mean())
    assert before > 5.0
    assert after < 0.3 * before
