"""The baselines LEO is compared with (LEO paper, section D.2).

- ``supervised_loss``: the tactile network alone, on the ground-truth relative motions (pretraining's
  loss): the smooth L1 loss of its predictions, in units of its output scale.
- ``unrolled_loss``: end-to-end learning through K Gauss-Newton iterations, differentiated by
  autograd (Theseus style). The solver here is small on purpose: one trajectory at a time, a
  dense Cholesky of its normal equations (3V unknowns), started from the estimator's solution.
  The loss is the squared pose error of the object after K iterations, in units of
  ``translation_scale_m`` and ``rotation_scale_rad``.
- ``blackbox_search``: the learned standard deviations searched without gradients, by CMA-ES (the
  ``cma`` package) or Nelder-Mead (scipy), with the validation RMSE as the objective: translation
  and rotation RMSE, each divided by its value at the starting point, summed. Every objective
  evaluation solves each validation run once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch

from tactile_estimator.config import UnrollConfig
from tactile_estimator.factors import FAMILIES, lie
from tactile_estimator.learning.checkpoint import (
    CHECKPOINT,
    TrainerState,
    TrainingError,
    TrainingInterrupted,
    TrainResult,
    validation_score,
    write_outputs,
)
from tactile_estimator.learning.runs import RunGraph, Theta, sigma_columns


# ------------------------------------------------------------------------------------ supervised
def supervised_loss(runs: Sequence[RunGraph], theta: Theta, predictions: Sequence[torch.Tensor]) -> torch.Tensor:
    """The summed loss of the tactile network's predictions against each run's ground-truth relative motions."""
    total = torch.zeros((), dtype=torch.float64)
    for run, pred in zip(runs, predictions, strict=True):
        if len(pred):
            scale = theta.net.output_scale.double()
            total = total + torch.nn.functional.smooth_l1_loss(pred / scale, run.tactile_targets / scale)
    return total


# ------------------------------------------------------------------------------------ unrolled GN
def _normal_equations(run: RunGraph, theta: Theta, predictions: torch.Tensor, values: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense H (3V, 3V) and g (3V,) of the whitened system at ``values``, differentiable in θ."""
    n = 3 * values.shape[0]
    h = values.new_zeros(n * n)
    g = values.new_zeros(n)
    axis = torch.arange(3)
    for family, group in run.groups.items():
        poses = [values[group.index[:, a]] for a in range(group.index.shape[1])]
        measured = predictions if family == "tactile" else group.measurement
        r, jacobians = FAMILIES[family].jacobians(poses, measured, run.model)
        sigma = theta.sigma(family)
        scale = group.sigmas if sigma is None else sigma.expand_as(group.sigmas)
        r = r / scale
        jacobians = [j / scale[..., None] for j in jacobians]
        for a, j_a in enumerate(jacobians):
            rows = 3 * group.index[:, a, None] + axis  # (F, 3)
            g = g.index_add(0, rows.reshape(-1), (j_a.transpose(1, 2) @ r[..., None]).reshape(-1))
            for b, j_b in enumerate(jacobians):
                cols = 3 * group.index[:, b, None] + axis
                flat = (rows[:, :, None] * n + cols[:, None, :]).reshape(-1)
                h = h.index_add(0, flat, (j_a.transpose(1, 2) @ j_b).reshape(-1))
    return h.reshape(n, n), g


def unrolled_solve(run: RunGraph, theta: Theta, predictions: torch.Tensor, iterations: int) -> torch.Tensor:
    values = torch.from_numpy(run.warm).clone()
    eye = torch.eye(3 * values.shape[0], dtype=values.dtype)
    for _ in range(iterations):
        h, g = _normal_equations(run, theta, predictions, values)
        chol = torch.linalg.cholesky(h + 1e-9 * eye)
        delta = -torch.cholesky_solve(g[:, None], chol)[:, 0]
        values = lie.compose(values, lie.exp(delta.reshape(-1, 3)))
    return values


def unrolled_loss(run: RunGraph, theta: Theta, predictions: torch.Tensor, config: UnrollConfig) -> torch.Tensor:
    values = unrolled_solve(run, theta, predictions, config.iterations)
    truth = torch.from_numpy(run.truth)
    rows = torch.from_numpy(run.object_rows)
    d_xy = (values[rows, :2] - truth[rows, :2]) / config.translation_scale_m
    d_theta = lie.wrap_angle(values[rows, 2] - truth[rows, 2]) / config.rotation_scale_rad
    return (d_xy.pow(2).sum(1) + d_theta.pow(2)).mean()


# ------------------------------------------------------------------------------------ black box
def blackbox_search(trainer: TrainerState, resume: bool, stop_request: AbstractContextManager[Any]) -> TrainResult:
    """The search, from the trainer's θ; ``stop_request`` (trainer._StopRequest, not yet entered) is entered
    once the start is validated, and its ``requested`` flag stops the search."""
    cfg = trainer.config.blackbox
    theta = trainer.theta
    families = list(theta.log_sigma.keys())
    if not families:
        raise TrainingError("blackbox searches standard deviations: learn must name a factor family "
                            "(tactile, tactile_normal, pushing, contact, ee_prior, camera)")
    if trainer.world.size > 1:
        raise TrainingError("blackbox runs in one process; start it without torchrun")
    masks = [theta.axes[f] for f in families]  # only the learned axes are searched
    evaluations_done = 0
    if resume:
        state = trainer.load_checkpoint()
        evaluations_done = int(state["extra"].get("evaluations", 0))
    else:
        trainer.out_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        row = {"epoch": 0, "loss": 2.0, **trainer.validate(), "evaluations": 0}
        trainer.wall_s += time.perf_counter() - started
        row.update(sigma_columns(theta))  # the σ it starts from, as every later row has them
        row.update(solver_calls=trainer.solver_calls, wall_s=round(trainer.wall_s, 3))
        trainer.history.append(row)
    start = trainer.history[0]
    reference = (start["val_rmse_translation_m"], start["val_rmse_rotation_rad"])

    def vector() -> np.ndarray:
        return np.concatenate([theta.log_sigma[f].detach().numpy()[m] for f, m in zip(families, masks, strict=True)])

    def assign(z: np.ndarray) -> None:
        with torch.no_grad():
            offset = 0
            for f, mask in zip(families, masks, strict=True):
                size = int(mask.sum())
                value = theta.log_sigma[f].detach().numpy().copy()
                value[mask] = np.asarray(z[offset:offset + size], dtype=float)
                theta.log_sigma[f].copy_(torch.from_numpy(value))
                offset += size

    best = {"z": vector(), "f": 2.0, "rmse": reference}
    count = {"n": evaluations_done}

    def objective(z: np.ndarray) -> float:
        if stop.requested:
            raise TrainingInterrupted("")
        assign(z)
        figures = trainer.validate()
        rmse = (figures["val_rmse_translation_m"], figures["val_rmse_rotation_rad"])
        value = validation_score(figures, start)
        count["n"] += 1
        if value < best["f"]:
            best.update(z=np.array(z, dtype=float), f=value, rmse=rmse)
        return value

    def record(generation_started: float) -> None:
        trainer.wall_s += time.perf_counter() - generation_started
        assign(best["z"])
        row: dict[str, Any] = {"epoch": len(trainer.history), "loss": best["f"],
                               "val_rmse_translation_m": best["rmse"][0], "val_rmse_rotation_rad": best["rmse"][1],
                               "evaluations": count["n"]}
        row.update(sigma_columns(theta))
        row.update(solver_calls=trainer.solver_calls, wall_s=round(trainer.wall_s, 3))
        trainer.history.append(row)
        trainer.progress(f"generation {row['epoch']}: best objective {best['f']:.4f} (start 2), validation RMSE "
                         f"{best['rmse'][0] * 1e3:.2f} mm, {np.degrees(best['rmse'][1]):.2f} deg, "
                         f"evaluations {count['n']}")
        write_outputs(trainer, trainer.factor_weights())
        trainer._save_checkpoint(None, None, row["epoch"], 0, {"evaluations": count["n"]})

    if resume and trainer.history:
        last = trainer.history[-1]
        best.update(z=vector(), f=float(last["loss"]),
                    rmse=(last["val_rmse_translation_m"], last["val_rmse_rotation_rad"]))
    remaining = cfg.evaluations - evaluations_done
    with stop_request as stop:
        try:
            if remaining > 0 and cfg.optimizer == "cma":
                import cma

                es = cma.CMAEvolutionStrategy(best["z"], cfg.initial_step, {
                    "maxfevals": remaining, "seed": trainer.config.seed + 1, "verbose": -9})
                while not es.stop():
                    generation_started = time.perf_counter()
                    candidates = es.ask()
                    es.tell(candidates, [objective(z) for z in candidates])
                    record(generation_started)
            elif remaining > 0:
                from scipy.optimize import minimize

                marks = {"t": time.perf_counter()}

                def callback(_z: np.ndarray) -> None:
                    record(marks["t"])
                    marks["t"] = time.perf_counter()

                dim = len(best["z"])
                simplex = np.vstack([best["z"], best["z"] + cfg.initial_step * np.eye(dim)])
                minimize(objective, best["z"], method="Nelder-Mead", callback=callback,
                         options={"maxfev": remaining, "initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-4})
        except TrainingInterrupted:
            assign(best["z"])
            trainer._save_checkpoint(None, None, len(trainer.history), 0, {"evaluations": count["n"]})
            raise TrainingInterrupted(
                f"stopped after {count['n']} evaluations; checkpoint {trainer.out_dir / CHECKPOINT} saved; "
                "--resume restarts the search from the best point found") from None
    assign(best["z"])
    if trainer.history[-1].get("evaluations") != count["n"] or len(trainer.history) == 1:
        record(time.perf_counter())
    return TrainResult(trainer.out_dir, trainer.history, trainer.solver_calls, trainer.wall_s, "best",
                       extra={"evaluations": count["n"]})
