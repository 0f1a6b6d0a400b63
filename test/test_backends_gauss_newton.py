"""The batched Gauss-Newton backend: the same solution and marginals as GTSAM, batches of mixed
lengths, degenerate elements isolated, samples with the marginal covariance, live use."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_estimator import feed_interleaved, truth_errors

from tactile_estimator import geometry as se2
from tactile_estimator.backends import BackendError
from tactile_estimator.backends.gauss_newton import GaussNewtonBackend, Problem, jacobian_function
from tactile_estimator.backends.isam2 import Isam2Backend
from tactile_estimator.config import load_estimator_config
from tactile_estimator.estimator import Estimator
from tactile_estimator.factors import FAMILIES, Factor, ObjectModel
from tactile_estimator.graph import FactorGraph
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import Shape
from tactile_estimator.sim.pushing import SimulatedRun


@pytest.fixture(scope="module")
def graph(rect_run: SimulatedRun) -> FactorGraph:
    """The graph the estimator grows on the 150-step rect run (all factor families)."""
    estimator = Estimator(load_estimator_config(None), TactileModel.load(),
                          ObjectModel.for_shape(Shape.from_info(rect_run.object_info)))
    feed_interleaved(estimator, rect_run)
    return estimator.graph


def prefix(graph: FactorGraph, steps: int) -> tuple[list[Factor], dict]:
    factors = [f for f in graph.factors if max(k[1] for k in f.keys) < steps]
    return factors, {k: v for k, v in graph.initial.items() if k[1] < steps}


def converged_isam2(factors: list[Factor], initial: dict) -> Isam2Backend:
    isam = Isam2Backend(relinearize_threshold=0.0)
    isam.add(factors, initial)
    for _ in range(30):
        isam.add([], {})  # every update relinearizes everything: Gauss-Newton to convergence
    return isam


def test_same_trajectory_and_marginals_as_isam2(graph: FactorGraph) -> None:
    isam = converged_isam2(graph.factors, graph.initial)
    problem = Problem([(graph.factors, graph.initial)])
    report = problem.solve(iterations=30)
    assert bool(report.converged[0]) and not bool(report.failed[0])
    ours, theirs = problem.values_of(0), isam.estimate()
    assert set(ours) == set(theirs)
    worst = max(np.abs(ours[k] - theirs[k]).max() for k in ours)
    assert worst < 1e-6  # metres and radians
    keys = [("o", 0), ("o", 75), ("e", 75), ("o", 149)]
    covariances = problem.marginals(problem.factorize(), [keys])[0].numpy()
    reference = isam.marginals(keys)
    for i, key in enumerate(keys):
        np.testing.assert_allclose(covariances[i], reference[key], rtol=0.01, atol=0.01 * np.abs(reference[key]).max())


def test_levenberg_marquardt_reaches_the_same_minimum(graph: FactorGraph) -> None:
    gn, lm = Problem([(graph.factors, graph.initial)]), Problem([(graph.factors, graph.initial)])
    gn.solve(iterations=30)
    report = lm.solve(iterations=60, damping=1e-3)
    assert bool(report.converged[0])
    assert torch.allclose(gn.values, lm.values, atol=1e-6)


def test_batch_of_mixed_lengths_equals_separate_solves(graph: FactorGraph) -> None:
    short, full = prefix(graph, 60), prefix(graph, 150)
    together = Problem([short, full, short])
    together.solve(iterations=30)
    for b, part in enumerate([short, full, short]):
        alone = Problem([part])
        alone.solve(iterations=30)
        a, t = alone.values_of(0), together.values_of(b)
        assert max(np.abs(a[k] - t[k]).max() for k in a) < 1e-9


def test_degenerate_elements_are_reported_and_do_not_poison_the_others(graph: FactorGraph) -> None:
    good = prefix(graph, 60)
    factors, initial = prefix(graph, 60)
    poisoned = [dataclasses.replace(factors[3], measurement=np.full(3, np.nan)), *factors[:3], *factors[4:]]
    unconstrained = dict(initial)
    unconstrained[("o", 999)] = np.zeros(3)  # a pose no factor touches
    problem = Problem([good, (poisoned, initial), (factors, unconstrained)])
    report = problem.solve(iterations=30)
    assert report.failed.tolist() == [False, True, True]
    assert "not finite" in report.reasons[1]
    assert "indeterminate" in report.reasons[2]
    alone = Problem([good])
    alone.solve(iterations=30)
    assert torch.allclose(alone.values[0], problem.values[0, : alone.variables], atol=1e-12)


def test_samples_follow_the_marginal_covariance(graph: FactorGraph) -> None:
    problem = Problem([prefix(graph, 60)])
    problem.solve(iterations=30)
    factor = problem.factorize()
    key = ("o", 40)
    covariance = problem.marginals(factor, [[key]])[0, 0].numpy()
    samples = problem.sample(factor, 4000, torch.Generator().manual_seed(0))[0].numpy()
    index = problem.keys[0].index(key)
    mean = problem.values[0, index].numpy()
    deviations = se2.log(se2.between(mean, samples[:, index]))  # samples are mean * Exp(δ)
    empirical = deviations.T @ deviations / len(deviations)
    np.testing.assert_allclose(np.sqrt(np.diag(empirical)), np.sqrt(np.diag(covariance)), rtol=0.06)


def test_estimator_runs_live_on_the_gn_backend(rect_run: SimulatedRun) -> None:
    config = load_estimator_config(None, {"backend": "gn", "gauss_newton": {"window": 30}})
    estimator = Estimator(config, TactileModel.load(), ObjectModel.for_shape(Shape.from_info(rect_run.object_info)))
    estimates = feed_interleaved(estimator, rect_run)
    assert len(estimates) == len(rect_run.tactile)
    assert all(np.all(np.linalg.eigvalsh(e.covariance) > 0) for e in estimates)
    stamps, poses = estimator.trajectory()
    trans, rot = truth_errors(rect_run, stamps, poses)
    assert np.sqrt(np.mean(trans**2)) < 0.01 and np.sqrt(np.mean(rot**2)) < np.radians(5)


def test_marginals_outside_the_window_are_refused(graph: FactorGraph) -> None:
    backend = GaussNewtonBackend(window=10)
    backend.add(*prefix(graph, 40))
    assert backend.marginals([("o", 39)])[("o", 39)].shape == (3, 3)
    with pytest.raises(BackendError, match="window"):
        backend.marginals([("o", 5)])


# --------------------------------------------------------------- Jacobians: analytic or torch.func
# Each family's Jacobians against torch.func: test_factor_<family>.py.
def test_gn_reaches_the_same_solution_with_either_jacobian_path(graph: FactorGraph) -> None:
    """A batch of two prefixes of the simulated run (so padding too) solved with each path. Their
    solutions are smooth points: where a contact point sits on a corner of the rectangle (the 40-step
    prefix), central differences and torch.func differ by the kink, ~1e-5."""
    elements = [prefix(graph, 30), prefix(graph, 60)]
    solved = {}
    for path in ("analytic", "autodiff", "auto"):
        problem = Problem(elements, jacobians=path)
        report = problem.solve(iterations=30)
        assert bool(report.converged.all()) and not bool(report.failed.any())
        solved[path] = problem.values
    assert (solved["autodiff"] - solved["analytic"]).abs().max() < 1e-8
    assert (solved["auto"] - solved["analytic"]).abs().max() < 1e-8


def test_gauss_newton_steps_never_raise_the_cost(graph: FactorGraph) -> None:
    """On the 40-step prefix full Gauss-Newton steps cycle through three costs (a contact point crosses
    a corner of the rectangle); halving a step that raises the cost lets the solve converge."""
    problem = Problem([prefix(graph, 40)])
    costs = [float(problem.cost()[0])]
    for _ in range(30):
        report = problem.solve(iterations=1)
        costs.append(float(report.cost[0]))
        if bool(report.converged[0]):
            break
    assert bool(report.converged[0]) and not bool(report.failed[0])
    assert all(b <= a for a, b in zip(costs, costs[1:], strict=False))
    assert costs[-1] < costs[0]


def test_auto_takes_torch_func_for_large_pushing_groups_only() -> None:
    pushing, tactile = FAMILIES["pushing"], FAMILIES["tactile"]
    threshold = pushing.autodiff_from
    assert threshold == 2048 and tactile.autodiff_from is None
    assert jacobian_function("pushing", threshold - 1) is pushing.jacobians
    assert jacobian_function("pushing", threshold) is pushing.autodiff
    assert jacobian_function("tactile", 10**6) is tactile.jacobians
    assert jacobian_function("tactile", 1, "autodiff") is tactile.autodiff
    assert jacobian_function("pushing", 10**6, "analytic") is pushing.jacobians
    with pytest.raises(ValueError, match="jacobians"):
        Problem([], jacobians="finite")
