"""LEO's loss (Sodhi et al., CoRL 2021): the energy of the ground truth against that of posterior samples.

For each update, a group of training trajectories is solved under the current θ and, for LEO,
S joint samples are drawn from the Gaussian (Laplace) approximation of each posterior, from iSAM2's
joint marginals or from the batched Gauss-Newton backend. The loss is

    L(θ) = mean over trajectories of [E(θ; x_gt) − mean_s E(θ; x_s)] / steps  +  l2 ‖θ − θ₀‖²

whose gradient is the gradient of the negative log-likelihood of the ground truth under the
Gibbs distribution p(x; θ) ∝ exp(−E(θ; x)), with its log-partition term estimated by the samples.
The samples are constants; gradients reach θ only. Standard deviations are learned as log σ, so
they stay positive without clamping. With ``persistence: model`` (the default) the graphs that are
solved and sampled, and E, use each family's per-step σ (its σ divided by the persistence inflation
the model records), and validation and the written model use the graph's σ (runs.Theta). A family
the model records no persistence for is fitted as it is.

The loop that minimises it (data, schedule, checkpoints, outputs) is trainer.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from tactile_estimator.config import TrainerConfig
from tactile_estimator.learning.runs import RunGraph, Theta, energy, factors_for, learned_families, solve_runs


def leo_loss(runs: Sequence[RunGraph], theta: Theta, predictions: Sequence[torch.Tensor], config: TrainerConfig,
             seeds: Sequence[int], timing: dict[str, float]) -> torch.Tensor:
    """The LEO loss of ``runs`` summed (the trainer divides it by the update's trajectories and adds the l2 term),
    each run sampled from its seed; the seconds spent solving and sampling, and on the energy, go to ``timing``."""
    # LEO's graphs and energy are the per-step (white) model; validation solves the graph's (runs.Theta).
    factor_lists = [factors_for(r, theta, p, white=True) for r, p in zip(runs, predictions, strict=True)]
    mark = time.perf_counter()
    solutions = solve_runs(runs, factor_lists, config.sampler, config.solver_iterations, config.samples, seeds)
    timing["solve_and_sample"] += time.perf_counter() - mark
    mark = time.perf_counter()
    families = learned_families(theta)
    total = torch.zeros((), dtype=torch.float64)
    for run, pred, solution in zip(runs, predictions, solutions, strict=True):
        e_truth = energy(run, theta, pred, torch.from_numpy(run.truth)[None], families, white=True)[0]
        e_samples = energy(run, theta, pred, torch.from_numpy(solution.samples), families, white=True).mean()
        total = total + (e_truth - e_samples) / run.steps
    timing["energy"] += time.perf_counter() - mark
    return total
