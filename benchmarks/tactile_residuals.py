"""Why LEO keeps the tactile θ sigma: the tactile residuals at ground truth, and the validation
error as that sigma moves.

On the training benchmark's data (benchmarks.training: 20 training and 4 validation runs of 300
steps, cached under build/bench/training), with the shipped model:
- the tactile factors' residual at ground truth (true object poses, measured end-effector poses)
  per window offset: its RMS per axis, and the kurtosis of all of them (3 for a Gaussian);
- the validation RMSE of the batch solution (Gauss-Newton, as training validates) as the tactile
  θ sigma goes from the shipped value down to LEO's fit, per validation run;
- how alike the residuals at ground truth of factors k steps apart are (their correlation), for
  the pushing factors and the offset-1 tactile factors: the graph takes every factor's error as
  independent, and an error that persists is counted once per factor.

Usage: python -m benchmarks.tactile_residuals
"""

from __future__ import annotations

import math

import numpy as np
import torch

from benchmarks.common import append_results, simulated_bags
from tactile_estimator.config import load_estimator_config
from tactile_estimator.learning.runs import (
    RunGraph,
    Theta,
    factors_for,
    load_runs,
    pooled_rmse,
    residuals,
    solve_runs,
    trajectory_rmse,
)
from tactile_estimator.metrics import axis_correlation
from tactile_estimator.networks.tactile import TactileModel

SHAPES = ["rect", "disc", "ellipse"]


def tactile_residuals(run: RunGraph, theta: Theta) -> tuple[np.ndarray, np.ndarray]:
    """(F, 3) tactile residuals at ground truth and (F,) window offsets j - i."""
    group = run.groups["tactile"]
    with torch.no_grad():
        r = residuals(run, group, theta.predictions(run), torch.from_numpy(run.truth)[None])[0].numpy()
    offsets = np.array([run.keys[j][1] - run.keys[i][1]
                        for i, j in zip(group.index[:, 0].tolist(), group.index[:, 2].tolist(), strict=True)])
    return r, offsets


def lag_correlations(runs: list[RunGraph], theta: Theta, family: str, lags: tuple[int, ...]) -> np.ndarray:
    """(len(lags), 3): per axis, the correlation of residuals at ground truth of factors ``lag`` steps
    apart (by their last object pose), pooled over runs; tactile factors of window offset 1 only."""
    pairs: dict[int, list[np.ndarray]] = {lag: [] for lag in lags}
    for run in runs:
        group = run.groups[family]
        with torch.no_grad():
            r = residuals(run, group, theta.predictions(run), torch.from_numpy(run.truth)[None])[0].numpy()
        last = 2 if family == "tactile" else 1  # the key position of o_k (o_j for tactile)
        step = np.array([run.keys[i][1] for i in group.index[:, last].tolist()])
        keep = np.ones(len(step), bool)
        if family == "tactile":
            keep = step - np.array([run.keys[i][1] for i in group.index[:, 0].tolist()]) == 1
        row = {k: n for n, k in enumerate(step) if keep[n]}
        for lag in lags:
            both = [(row[k], row[k + lag]) for k in row if k + lag in row]
            if both:
                a, b = np.array(both).T
                pairs[lag].append(np.stack([r[a], r[b]], axis=1))
    out = []
    for lag in lags:
        ab = np.concatenate(pairs[lag])
        out.append(axis_correlation(ab[:, 0], ab[:, 1]))
    return np.array(out)


def main() -> None:
    torch.set_num_threads(1)
    config = load_estimator_config()
    model = TactileModel.load()
    train_runs = load_runs(simulated_bags("training/train", SHAPES, 7, 300, 2000)[:20], config, model)
    val_runs = load_runs(simulated_bags("training/val", SHAPES, 2, 300, 3000)[:4], config, model)
    theta = Theta(model, config, ["tactile"])
    shipped = theta.sigma("tactile").detach().numpy().copy()

    pairs = [tactile_residuals(run, theta) for run in train_runs]
    r = np.concatenate([p[0] for p in pairs])
    offsets = np.concatenate([p[1] for p in pairs])
    lines = ["Tactile residuals at ground truth, 20 training runs:", "",
             "| offset | factors | RMS x (mm) | RMS y (mm) | RMS θ (rad) |", "| --- | --- | --- | --- | --- |"]
    for k in np.unique(offsets):
        rms = np.sqrt((r[offsets == k] ** 2).mean(0))
        lines.append(f"| {k} | {int((offsets == k).sum())} | {rms[0] * 1e3:.2f} | {rms[1] * 1e3:.2f} | {rms[2]:.4f} |")
    kurtosis = ((r - r.mean(0)) ** 4).mean(0) / r.var(0) ** 2
    lines += ["", f"Kurtosis x / y / θ: {kurtosis[0]:.1f} / {kurtosis[1]:.1f} / {kurtosis[2]:.1f} (Gaussian: 3). "
              f"Shipped σ: {shipped[0] * 1e3:.2f} mm, {shipped[1] * 1e3:.2f} mm, {shipped[2]:.4f} rad.", ""]

    lags = (1, 5, 10, 30)
    lines += ["Correlation of residuals at ground truth between factors k steps apart (same contact episode or "
              "not; 1 is identical, 0 independent):", "",
              "| family | axis | " + " | ".join(f"k = {k}" for k in lags) + " |",
              "| --- | --- | " + " | ".join("---" for _ in lags) + " |"]
    for family in ("pushing", "tactile"):
        c = lag_correlations(train_runs, theta, family, lags)
        for axis, name in enumerate("xyθ"):
            lines.append(f"| {family} | {name} | " + " | ".join(f"{v:.2f}" for v in c[:, axis]) + " |")
    lines.append("")

    names = [run.name for run in val_runs]
    lines += ["Validation RMSE (batch Gauss-Newton) against the tactile θ σ, the others as shipped:", "",
              "| θ σ (rad) | pooled (mm / deg) | " + " | ".join(names) + " |",
              "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
    for sigma_theta in (shipped[2], 0.035, 0.025, 0.018, 0.010):
        with torch.no_grad():
            theta.log_sigma["tactile"].copy_(torch.log(torch.tensor([shipped[0], shipped[1], sigma_theta])))
            factor_lists = [factors_for(run, theta, theta.predictions(run)) for run in val_runs]
        solutions = solve_runs(val_runs, factor_lists, "gn", 10, 0, [0] * len(val_runs))
        t, rot = pooled_rmse(val_runs, solutions)
        per_run = [trajectory_rmse(run, s.values) for run, s in zip(val_runs, solutions, strict=True)]
        lines.append(f"| {sigma_theta:.3f} | {t * 1e3:.2f} / {math.degrees(rot):.2f} | "
                     + " | ".join(f"{a * 1e3:.2f} / {math.degrees(b):.2f}" for a, b, _ in per_run) + " |")
    append_results("Tactile residuals and the tactile θ sigma", "\n".join(lines))


if __name__ == "__main__":
    main()
