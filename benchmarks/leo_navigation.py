"""LEO's synthetic navigation experiment (paper appendix D.1): learn odometry and GPS covariances.

What is reproduced
------------------
A robot drives 2D trajectories; each step gives an odometry measurement (a noisy relative pose
between consecutive poses) and a GPS measurement. The factor graph is the chain of poses with a
BetweenFactorPose2-style odometry factor per step, a GPS factor per pose and a tight prior on the
first pose at ground truth (σ 1e-4, not learned; the original anchors it with σ 1e-6). LEO learns
the factor covariances Σ_odom and Σ_gps from ground-truth trajectories; blackbox baselines
(CMA-ES from the ``cma`` package, Nelder-Mead from scipy) tune the same parameters on the training
trajectory RMSE of the MAP estimate. Datasets, with the generating σ of the original configuration
(``leopy/config/dataio/nav2d.yaml`` in github.com/psodhi/leo):

- N1 (fixed):   σ_odom = (0.1, 0.1, 0.1),  σ_gps = (1, 1, 0.1)
- N2 (fixed):   σ_odom = (1, 2, 0.1),      σ_gps = (2, 1, 0.1)
- N3 (varying): outdoor (c=0) σ_odom = (0.1, 0.1, 0.1), σ_gps = (1, 1, 0.1);
                indoor (c=1) σ_odom = (1, 1, 1),        σ_gps = (0.1, 0.1, 0.1)
- N4 (varying): c=0 σ_odom = (1, 1, 1), σ_gps = (0.1, 0.1, 0.1); c=1 σ_odom = (0.1, 0.1, 0.1), σ_gps = (1, 1, 0.1)

(x, y, θ; metres and radians). In N3/N4 the binary measurement c is 0 for the first quarter of a
trajectory, 1 for the middle half and 0 for the last quarter, as in the original generator, and
it is given to the model with every factor (the factor at step t and the odometry factor ending at
t carry c_t, the value that generated their noise). The learned model has one σ vector per factor
type (N1/N2) or per factor type and value of c (N3/N4): 6 or 12 parameters, learned as log σ.

The original GPS measurement is a full pose (x, y, θ), σ_gps has a heading entry, and the factor is
a PriorFactorPose2. That is what runs by default. ``--gps position`` runs a position-only GPS
(residual: world-frame position minus the measurement, 2-D; the θ entries of σ_gps are unused),
which is not the same as a pose prior with a huge heading σ: a pose prior's translation residual
lives in the frame of the measured heading and couples to the heading error through the log map.
With a position-only GPS the headings are seen only through the motion; the cold start then grows
the window incrementally (see _incremental_start). That mode is exploratory: on N2-N4, where the
odometry is too noisy to carry the heading (1-2 m on 0.5 m steps, or 1 rad), Gauss-Newton does not
reliably reach the right heading basin, and its results are not the reported ones.

Noise model: a measurement is the true value ⊕ Exp(n), n ~ N(0, diag σ²) (gtsam's Pose2 retract,
Expmap), and a residual is Log(z⁻¹ h(x)) (gtsam's BetweenFactorPose2 / PriorFactorPose2 error), so
at the ground truth each residual is exactly the noise that was drawn.

Choices where the paper could not be followed exactly
-----------------------------------------------------
- Trajectories: the original's were drawn by hand in a 100 m x 50 m area and are not in the
  repository; here a seeded unicycle (0.5 m per step, smoothly random turn rate, steered back
  inside the same area) makes them. Per dataset 30 training and 20 test trajectories (the
  original's 50 sequences, n_data_train 30) of 300 steps (the original optimises 300 steps).
- Initial σ: the original's initial values (theta_init in leo_nav2d.yaml, which stores 1/σ²):
  all σ = 1 for N1/N2; for N3/N4 σ_odom = 2, σ_gps = (10, 10, 2) at c=0 and σ_odom = 1,
  σ_gps = 10 at c=1.
- Solver: a batched Gauss-Newton written here in numpy/scipy. All trajectories of a split form one
  block-tridiagonal system (3x3 blocks), stored banded and factored by LAPACK's banded Cholesky;
  the same factor U (H = UᵀU) gives the Laplace samples δ = U⁻¹ε, whose covariance is H⁻¹. Each GN
  step has a per-trajectory backtracking line search. The benchmark first solves N1's training
  set with gtsam (GaussNewtonOptimizer, one graph per trajectory, same factors) and prints both
  wall times and the largest difference between the two MAP estimates.
- RMSE: translation RMSE is sqrt(mean(dx² + dy²)) per trajectory (the original averages dx² and
  dy², a factor sqrt(2) lower), rotation RMSE in radians; both are averaged over trajectories.
  The blackbox objective is translation RMSE + rotation RMSE of the MAP on the training set, as in
  the original's blackbox_nav2d.py, over the same log σ; 100 evaluations (the original's
  max_fval_calls). CMA-ES starts at the initial σ with step 1 in log σ, bounded to σ in
  [1e-3, 1e2]; Nelder-Mead's first simplex is the initial σ and each log σ moved by 1. Every
  evaluation starts Gauss-Newton from the MAP at the initial σ, so no result depends on the order
  of evaluations. The curves show the best σ found so far.

LEO
---
Energy E(θ; x) = ½ Σ_f ‖r_f(x)‖²_{Σ_f(θ)} over the odometry and GPS factors. Per-factor
½ log det Σ_f terms are left out: they do not depend on x, so in the LEO loss
E(θ; x_gt) − mean_s E(θ; x_s) they cancel exactly. What normalises the model is the sample term:
its gradient estimates ∇_θ log Z(θ) of p(x | z; θ) ∝ exp(−E(θ; x)), which is why LEO recovers the
absolute σ and not only their ratios (the MAP, and so any RMSE objective, is unchanged when every
σ is scaled by the same factor). Each iteration: solve the MAP of every training trajectory at the
current θ (warm-started), draw S joint samples per trajectory from the Laplace approximation
N(x̂, H⁻¹) on the tangent space (x_s = x̂ ⊕ δ_s), compute the residuals of the samples and of the
ground truth (constants), and take one Adam step on log σ with the loss averaged over trajectories
and divided by the number of factors per trajectory. Adam lr 0.2, decayed by 0.97 per iteration,
100 iterations, 32 samples (the original: Adam lr 0.1 on 1/σ², decayed by 0.95, at most 100
iterations, 10 samples; log σ keeps σ positive without clipping).

Usage: python -m benchmarks.leo_navigation [--quick] [--out DIR] [--gps pose|position]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import cho_solve_banded, cholesky_banded
from scipy.linalg.lapack import dtbtrs

from tactile_estimator.geometry import adjoint, between, compose, inverse
from tactile_estimator.geometry import exp as expmap
from tactile_estimator.geometry import log as logmap
from tactile_estimator.geometry import right_jacobian_inverse as right_jacobian_inv
from tactile_estimator.geometry import wrap_angle as wrap

ANCHOR_SIGMA = 1e-4
AREA = (-50.0, 50.0, 0.0, 50.0)


# --------------------------------------------------------------------------------------------
# SE(2) on arrays (..., 3) = (x, y, θ): the package's own (tactile_estimator.geometry)
# --------------------------------------------------------------------------------------------


def retract(p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """p ⊕ v = p Exp(v) (gtsam's Pose2 retract)."""
    return compose(p, expmap(v))


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    odom: tuple[tuple[float, float, float], ...]  # one σ vector per value of the binary measurement
    gps: tuple[tuple[float, float, float], ...]
    init_odom: tuple[tuple[float, float, float], ...]
    init_gps: tuple[tuple[float, float, float], ...]

    @property
    def varying(self) -> bool:
        return len(self.odom) > 1


_FINE, _COARSE = (0.1, 0.1, 0.1), (1.0, 1.0, 1.0)
_FIXED_INIT = dict(init_odom=((1.0, 1.0, 1.0),), init_gps=((1.0, 1.0, 1.0),))
_VARYING_INIT = dict(init_odom=((2.0, 2.0, 2.0), (1.0, 1.0, 1.0)), init_gps=((10.0, 10.0, 2.0), (10.0, 10.0, 10.0)))
DATASETS = {
    "N1": DatasetSpec("N1", odom=(_FINE,), gps=((1.0, 1.0, 0.1),), **_FIXED_INIT),
    "N2": DatasetSpec("N2", odom=((1.0, 2.0, 0.1),), gps=((2.0, 1.0, 0.1),), **_FIXED_INIT),
    "N3": DatasetSpec("N3", odom=(_FINE, _COARSE), gps=((1.0, 1.0, 0.1), _FINE), **_VARYING_INIT),
    "N4": DatasetSpec("N4", odom=(_COARSE, _FINE), gps=(_FINE, (1.0, 1.0, 0.1)), **_VARYING_INIT),
    # Diagnostics for the gaps (not in the paper). N2t: N2 with the translation σ divided by 10, so the
    # odometry noise is below the 0.5 m step. N3h: N3 with every heading σ 0.001 (headings almost known,
    # the problem almost linear), heading σ starting at 0.002.
    "N2t": DatasetSpec("N2t", odom=((0.1, 0.2, 0.1),), gps=((0.2, 0.1, 0.1),), **_FIXED_INIT),
    "N3h": DatasetSpec(
        "N3h",
        odom=((0.1, 0.1, 0.001), (1.0, 1.0, 0.001)),
        gps=((1.0, 1.0, 0.001), (0.1, 0.1, 0.001)),
        init_odom=((2.0, 2.0, 0.002), (1.0, 1.0, 0.002)),
        init_gps=((10.0, 10.0, 0.002), (10.0, 10.0, 0.002)),
    ),
}


@dataclass
class NavData:
    """B trajectories of T poses: ground truth, measurements and the binary measurement c_t."""

    gt: np.ndarray  # (B, T, 3)
    odom: np.ndarray  # (B, T-1, 3): measurement of gt[t-1]⁻¹ gt[t]
    gps: np.ndarray  # (B, T, 3) pose or (B, T, 2) position
    label: np.ndarray  # (B, T) int; odometry factor t-1 -> t carries label[:, t]
    gps_mode: str = "pose"

    @property
    def label_odom(self) -> np.ndarray:
        return self.label[:, 1:]

    def subset(self, idx) -> NavData:
        return NavData(self.gt[idx], self.odom[idx], self.gps[idx], self.label[idx], self.gps_mode)


def regime(steps: int, varying: bool) -> np.ndarray:
    """The original's switching schedule: c = 1 for 0.25 < t/T <= 0.75, else 0."""
    if not varying:
        return np.zeros(steps, dtype=np.int64)
    frac = np.arange(steps) / steps
    return ((frac > 0.25) & (frac <= 0.75)).astype(np.int64)


def make_trajectory(rng: np.random.Generator, steps: int, speed: float = 0.5) -> np.ndarray:
    """A smooth unicycle path inside AREA: turn rate is an AR(1) process, steered away from the walls."""
    xmin, xmax, ymin, ymax = AREA
    margin = 8.0
    pose = np.array([rng.uniform(xmin + 20, xmax - 20), rng.uniform(ymin + 10, ymax - 10), rng.uniform(-np.pi, np.pi)])
    out = np.zeros((steps, 3))
    omega = 0.0
    for t in range(steps):
        out[t] = pose
        omega = 0.9 * omega + rng.normal(0.0, 0.03)
        x, y, th = pose
        if x < xmin + margin or x > xmax - margin or y < ymin + margin or y > ymax - margin:
            to_centre = math.atan2(0.5 * (ymin + ymax) - y, 0.5 * (xmin + xmax) - x)
            omega += 0.3 * float(wrap(np.array(to_centre - th)))
        omega = float(np.clip(omega, -0.3, 0.3))
        pose = compose(pose, np.array([speed, 0.0, omega]))
    return out


def make_dataset(
    spec: DatasetSpec, n_traj: int, steps: int, seed: int, gps_mode: str = "pose", speed: float = 0.5
) -> NavData:
    """Deterministic in ``seed``: trajectories, then measurements, from one generator."""
    rng = np.random.default_rng(seed)
    gt = np.stack([make_trajectory(rng, steps, speed) for _ in range(n_traj)])
    label = np.tile(regime(steps, spec.varying), (n_traj, 1))
    sig_odom = np.asarray(spec.odom)[label[:, 1:]]  # (B, T-1, 3)
    sig_gps = np.asarray(spec.gps)[label]  # (B, T, 3)
    odom = retract(between(gt[:, :-1], gt[:, 1:]), rng.standard_normal(sig_odom.shape) * sig_odom)
    noise_gps = rng.standard_normal(sig_gps.shape) * sig_gps
    if gps_mode == "pose":
        gps = retract(gt, noise_gps)
    elif gps_mode == "position":
        gps = gt[..., :2] + noise_gps[..., :2]
    else:
        raise ValueError(f"unknown gps mode {gps_mode!r}")
    return NavData(gt, odom, gps, label, gps_mode)


# --------------------------------------------------------------------------------------------
# Residuals, Jacobians and the batched Gauss-Newton solver
# --------------------------------------------------------------------------------------------


def residuals(x: np.ndarray, data: NavData) -> tuple[np.ndarray, np.ndarray]:
    """Odometry (..., B, T-1, 3) and GPS (..., B, T, d) residuals of poses x (..., B, T, 3)."""
    r_odom = logmap(between(data.odom, between(x[..., :-1, :], x[..., 1:, :])))
    if data.gps_mode == "pose":
        r_gps = logmap(between(data.gps, x))
    else:
        r_gps = x[..., :2] - data.gps
    return r_odom, r_gps


def _linearise(x: np.ndarray, data: NavData):
    h = between(x[:, :-1], x[:, 1:])
    r_odom = logmap(between(data.odom, h))
    jj = right_jacobian_inv(r_odom)
    ji = -jj @ adjoint(inverse(h))
    if data.gps_mode == "pose":
        r_gps = logmap(between(data.gps, x))
        jg = right_jacobian_inv(r_gps)
    else:
        r_gps = x[..., :2] - data.gps
        c, s = np.cos(x[..., 2]), np.sin(x[..., 2])
        jg = np.zeros(x.shape[:-1] + (2, 3))
        jg[..., 0, 0], jg[..., 0, 1], jg[..., 1, 0], jg[..., 1, 1] = c, -s, s, c
    r_anchor = logmap(between(data.gt[:, 0], x[:, 0]))
    ja = right_jacobian_inv(r_anchor)
    return r_odom, ji, jj, r_gps, jg, r_anchor, ja


def traj_costs(x: np.ndarray, data: NavData, sig_odom: np.ndarray, sig_gps: np.ndarray) -> np.ndarray:
    """½ Σ ‖r‖²_Σ per trajectory (anchor included)."""
    r_odom, r_gps = residuals(x, data)
    r_anchor = logmap(between(data.gt[:, 0], x[:, 0]))
    return 0.5 * (
        ((r_odom / sig_odom) ** 2).sum((-1, -2))
        + ((r_gps / sig_gps) ** 2).sum((-1, -2))
        + ((r_anchor / ANCHOR_SIGMA) ** 2).sum(-1)
    )


def _banded_system(x: np.ndarray, data: NavData, sig_odom: np.ndarray, sig_gps: np.ndarray):
    """The GN Hessian of all trajectories as one banded matrix (upper form, 5 superdiagonals) and the gradient."""
    r_odom, ji, jj, r_gps, jg, r_anchor, ja = _linearise(x, data)
    b, t = x.shape[:2]
    wo, wg = sig_odom**-2, sig_gps**-2
    jiw, jjw, jgw = ji * wo[..., :, None], jj * wo[..., :, None], jg * wg[..., :, None]
    diag = np.zeros((b, t, 3, 3))
    grad = np.zeros((b, t, 3))
    diag[:, :-1] += np.einsum("...ki,...kj->...ij", ji, jiw)
    diag[:, 1:] += np.einsum("...ki,...kj->...ij", jj, jjw)
    diag += np.einsum("...ki,...kj->...ij", jg, jgw)
    diag[:, 0] += np.einsum("...ki,...kj->...ij", ja, ja) / ANCHOR_SIGMA**2
    grad[:, :-1] += np.einsum("...ki,...k->...i", jiw, r_odom)
    grad[:, 1:] += np.einsum("...ki,...k->...i", jjw, r_odom)
    grad += np.einsum("...ki,...k->...i", jgw, r_gps)
    grad[:, 0] += np.einsum("...ki,...k->...i", ja, r_anchor) / ANCHOR_SIGMA**2
    off = np.zeros((b, t, 3, 3))
    off[:, :-1] = np.einsum("...ki,...kj->...ij", ji, jjw)  # block (t, t+1); zero across trajectories
    n = b * t
    diag, off = diag.reshape(n, 3, 3), off.reshape(n, 3, 3)[:-1]
    ab = np.zeros((6, 3 * n))
    for i in range(3):
        for j in range(3):
            if i <= j:
                ab[5 + i - j, j::3] = diag[:, i, j]
            ab[2 + i - j, 3 + j :: 3] = off[:, i, j]
    return ab, grad.reshape(-1)


@dataclass
class Solution:
    x: np.ndarray  # (B, T, 3) MAP
    chol: np.ndarray  # banded upper Cholesky factor U of the GN Hessian at x (H = UᵀU)
    iterations: int


def solve_map(
    data: NavData,
    sig_odom: np.ndarray,
    sig_gps: np.ndarray,
    x0: np.ndarray | None = None,
    max_iterations: int = 30,
    tol: float = 1e-9,
) -> Solution:
    """Batched Gauss-Newton over all trajectories; starts from the GPS poses (position GPS: see
    _incremental_start) unless x0 is given."""
    if x0 is None:
        x0 = data.gps.copy() if data.gps_mode == "pose" else _incremental_start(data, sig_odom, sig_gps)
    x = x0.copy()
    cost = traj_costs(x, data, sig_odom, sig_gps)
    b, t = x.shape[:2]
    iterations = 0
    for _ in range(max_iterations):
        iterations += 1
        ab, grad = _banded_system(x, data, sig_odom, sig_gps)
        chol = cholesky_banded(ab, lower=False, check_finite=False)
        step = cho_solve_banded((chol, False), -grad, check_finite=False).reshape(b, t, 3)
        alpha = np.ones(b)
        for _ in range(20):
            trial = retract(x, alpha[:, None, None] * step)
            trial_cost = traj_costs(trial, data, sig_odom, sig_gps)
            worse = trial_cost > cost + 1e-12 * np.abs(cost)
            if not worse.any():
                break
            alpha[worse] *= 0.5
        trial_cost = np.where(worse, cost, trial_cost)
        x = np.where(worse[:, None, None], x, trial)
        decrease = cost - trial_cost
        cost = trial_cost
        if np.max(np.abs(step)) < 1e-7 or np.all(decrease <= tol * (1.0 + cost)):
            break
    ab, _ = _banded_system(x, data, sig_odom, sig_gps)
    return Solution(x, cholesky_banded(ab, lower=False, check_finite=False), iterations)


def _incremental_start(data: NavData, sig_odom: np.ndarray, sig_gps: np.ndarray, chunk: int = 20) -> np.ndarray:
    """Start for a position-only GPS, where headings are seen only through the motion: solve a window that
    grows by ``chunk`` steps at a time, its new poses predicted by odometry from the last estimate (what an
    incremental smoother such as the original's iSAM2 does). From GPS positions alone GN falls into wrong
    heading basins."""
    b, t = data.gt.shape[:2]
    x = np.zeros((b, t, 3))
    x[:, 0] = data.gt[:, 0]
    done = 1
    while done < t:
        end = min(done + chunk, t)
        for k in range(done, end):
            x[:, k] = compose(x[:, k - 1], data.odom[:, k - 1])
        sub = NavData(data.gt[:, :end], data.odom[:, : end - 1], data.gps[:, :end], data.label[:, :end], data.gps_mode)
        x[:, :end] = solve_map(sub, sig_odom[:, : end - 1], sig_gps[:, :end], x0=x[:, :end], max_iterations=10).x
        done = end
    return x


def laplace_samples(sol: Solution, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Joint samples x̂ ⊕ δ, δ ~ N(0, H⁻¹) with H = UᵀU: δ = U⁻¹ε. Shape (S, B, T, 3)."""
    b, t = sol.x.shape[:2]
    eps = rng.standard_normal((3 * b * t, n_samples))
    delta, info = dtbtrs(sol.chol, eps, uplo="U")
    if info != 0:
        raise np.linalg.LinAlgError(f"dtbtrs failed with info={info}")
    delta = delta.T.reshape(n_samples, b, t, 3)
    return retract(sol.x[None], delta)


def traj_rmse(x: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Mean over trajectories of the translation RMSE (m) and rotation RMSE (rad)."""
    d = x - gt
    trans = np.sqrt((d[..., 0] ** 2 + d[..., 1] ** 2).mean(-1))
    rot = np.sqrt((wrap(d[..., 2]) ** 2).mean(-1))
    return float(trans.mean()), float(rot.mean())


# --------------------------------------------------------------------------------------------
# Model: log σ per factor type and value of c
# --------------------------------------------------------------------------------------------


def sigmas_per_factor(log_sig_odom: np.ndarray, log_sig_gps: np.ndarray, data: NavData):
    gps_dim = 3 if data.gps_mode == "pose" else 2
    return np.exp(log_sig_odom)[data.label_odom], np.exp(log_sig_gps[:, :gps_dim])[data.label]


def energy(
    log_sig_odom: torch.Tensor,
    log_sig_gps: torch.Tensor,
    r_odom: torch.Tensor,
    r_gps: torch.Tensor,
    label: torch.Tensor,
    normaliser: bool = False,
) -> torch.Tensor:
    """E(θ; x) = ½ Σ ‖r‖²_Σ per trajectory; residuals (..., B, T[-1], d) are constants.

    ``normaliser`` adds ½ log det Σ of every factor. It does not depend on x, so it cancels in the
    LEO loss; it is there to show that (see the tests), not used in training.
    """
    gps_dim = r_gps.shape[-1]
    lo = log_sig_odom[label[:, 1:]]
    lg = log_sig_gps[:, :gps_dim][label]
    e = 0.5 * (r_odom**2 * torch.exp(-2.0 * lo)).sum((-1, -2)) + 0.5 * (r_gps**2 * torch.exp(-2.0 * lg)).sum((-1, -2))
    if normaliser:
        e = e + lo.sum((-1, -2)) + lg.sum((-1, -2))
    return e


@dataclass
class Trace:
    """What a learner records per iteration (solves = MAP solves of the training set so far)."""

    solves: list[int] = field(default_factory=list)
    train: list[tuple[float, float]] = field(default_factory=list)
    test: list[tuple[float, float]] = field(default_factory=list)
    log_sig_odom: list[np.ndarray] = field(default_factory=list)
    log_sig_gps: list[np.ndarray] = field(default_factory=list)
    wall: float = 0.0
    gn_iterations: int = 0


@dataclass
class Learned:
    method: str
    log_sig_odom: np.ndarray
    log_sig_gps: np.ndarray
    trace: Trace


class Evaluator:
    """MAP of a split at given σ. The first call starts cold; later calls start from the previous
    solution (``warm="previous"``: LEO, whose σ change a little per step) or from the first solution
    (``warm="first"``: blackbox search, whose σ jump, so that no result depends on the order of calls)."""

    def __init__(self, data: NavData, warm: str = "previous"):
        self.data = data
        self.warm = warm
        self.x: np.ndarray | None = None
        self.gn_iterations = 0

    def solve(self, log_sig_odom: np.ndarray, log_sig_gps: np.ndarray) -> Solution:
        so, sg = sigmas_per_factor(log_sig_odom, log_sig_gps, self.data)
        sol = solve_map(self.data, so, sg, x0=self.x)
        if self.x is None or self.warm == "previous":
            self.x = sol.x
        self.gn_iterations += sol.iterations
        return sol

    def rmse(self, log_sig_odom: np.ndarray, log_sig_gps: np.ndarray) -> tuple[float, float]:
        return traj_rmse(self.solve(log_sig_odom, log_sig_gps).x, self.data.gt)


def initial_log_sigmas(spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    return np.log(np.asarray(spec.init_odom, float)), np.log(np.asarray(spec.init_gps, float))


def train_leo(
    spec: DatasetSpec,
    train: NavData,
    test: NavData | None,
    iterations: int = 100,
    n_samples: int = 32,
    lr: float = 0.2,
    gamma: float = 0.97,
    seed: int = 0,
) -> Learned:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    init_o, init_g = initial_log_sigmas(spec)
    log_o = torch.tensor(init_o, dtype=torch.float64, requires_grad=True)
    log_g = torch.tensor(init_g, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([log_o, log_g], lr=lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=gamma)
    label = torch.as_tensor(train.label)
    r_gt = [torch.as_tensor(r) for r in residuals(train.gt, train)]
    n_factors = train.odom.shape[1] + train.gps.shape[1]
    ev_train = Evaluator(train)
    ev_test = Evaluator(test) if test is not None else None
    trace = Trace()
    wall = 0.0
    for it in range(iterations + 1):
        start = time.perf_counter()
        lo, lg = log_o.detach().numpy().copy(), log_g.detach().numpy().copy()
        sol = ev_train.solve(lo, lg)
        wall += time.perf_counter() - start
        trace.solves.append(it + 1)
        trace.train.append(traj_rmse(sol.x, train.gt))
        trace.log_sig_odom.append(lo)
        trace.log_sig_gps.append(lg)
        if ev_test is not None:
            trace.test.append(ev_test.rmse(lo, lg))
        if it == iterations:
            break
        start = time.perf_counter()
        samples = laplace_samples(sol, n_samples, rng)
        r_s = [torch.as_tensor(r) for r in residuals(samples, train)]
        e_gt = energy(log_o, log_g, *r_gt, label)
        e_s = energy(log_o, log_g, *r_s, label).mean(0)
        loss = (e_gt - e_s).mean() / n_factors
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        wall += time.perf_counter() - start
    trace.wall = wall
    trace.gn_iterations = ev_train.gn_iterations
    return Learned("LEO", log_o.detach().numpy(), log_g.detach().numpy(), trace)


def _blackbox(
    method: str,
    spec: DatasetSpec,
    train: NavData,
    test: NavData | None,
    evaluations: int,
    seed: int,
) -> Learned:
    init_o, init_g = initial_log_sigmas(spec)
    shape_o = init_o.shape
    ev_train = Evaluator(train, warm="first")
    ev_test = Evaluator(test, warm="first") if test is not None else None
    trace = Trace()
    state = {"calls": 0, "best": math.inf, "best_x": np.concatenate([init_o.ravel(), init_g.ravel()]), "wall": 0.0}

    def split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return v[: init_o.size].reshape(shape_o), v[init_o.size :].reshape(init_g.shape)

    def objective(v: np.ndarray) -> float:
        start = time.perf_counter()
        t, r = ev_train.rmse(*split(np.asarray(v, float)))
        state["wall"] += time.perf_counter() - start
        state["calls"] += 1
        value = t + r
        if value < state["best"]:
            state["best"], state["best_x"] = value, np.asarray(v, float).copy()
        # record the incumbent (best so far) after every call
        lo, lg = split(state["best_x"])
        trace.solves.append(state["calls"])
        trace.log_sig_odom.append(lo.copy())
        trace.log_sig_gps.append(lg.copy())
        trace.train.append((t, r) if value <= state["best"] else trace.train[-1])
        return value

    x0 = state["best_x"].copy()
    if method == "CMA-ES":
        import cma

        es = cma.CMAEvolutionStrategy(
            x0,
            1.0,
            {"maxfevals": evaluations, "seed": seed + 1, "verbose": -9, "bounds": [math.log(1e-3), math.log(1e2)]},
        )
        while not es.stop():
            candidates = es.ask()
            es.tell(candidates, [objective(c) for c in candidates])
    elif method == "Nelder-Mead":
        from scipy.optimize import minimize

        simplex = np.vstack([x0, x0 + np.eye(x0.size)])
        minimize(objective, x0, method="Nelder-Mead", options={"maxfev": evaluations, "initial_simplex": simplex})
    else:
        raise ValueError(method)
    if ev_test is not None:  # test RMSE of the incumbent, only where it changed
        last_x, last = None, None
        for lo, lg in zip(trace.log_sig_odom, trace.log_sig_gps, strict=True):
            key = np.concatenate([lo.ravel(), lg.ravel()])
            if last_x is None or not np.array_equal(key, last_x):
                last_x, last = key, ev_test.rmse(lo, lg)
            trace.test.append(last)
    trace.wall = state["wall"]
    trace.gn_iterations = ev_train.gn_iterations
    lo, lg = split(state["best_x"])
    return Learned(method, lo, lg, trace)


def train_cma(spec, train, test, evaluations=100, seed=0) -> Learned:
    return _blackbox("CMA-ES", spec, train, test, evaluations, seed)


def train_nelder_mead(spec, train, test, evaluations=100, seed=0) -> Learned:
    return _blackbox("Nelder-Mead", spec, train, test, evaluations, seed)


# --------------------------------------------------------------------------------------------
# gtsam cross-check
# --------------------------------------------------------------------------------------------


def gtsam_map(data: NavData, sig_odom: np.ndarray, sig_gps: np.ndarray) -> np.ndarray:
    """The same graphs solved by gtsam's GaussNewtonOptimizer one after another (pose GPS only)."""
    import gtsam

    out = np.zeros_like(data.gt)
    for b in range(data.gt.shape[0]):
        graph = gtsam.NonlinearFactorGraph()
        values = gtsam.Values()
        t_steps = data.gt.shape[1]
        graph.add(
            gtsam.PriorFactorPose2(0, gtsam.Pose2(*data.gt[b, 0]), gtsam.noiseModel.Isotropic.Sigma(3, ANCHOR_SIGMA))
        )
        for t in range(t_steps):
            graph.add(
                gtsam.PriorFactorPose2(t, gtsam.Pose2(*data.gps[b, t]), gtsam.noiseModel.Diagonal.Sigmas(sig_gps[b, t]))
            )
            if t > 0:
                graph.add(
                    gtsam.BetweenFactorPose2(
                        t - 1,
                        t,
                        gtsam.Pose2(*data.odom[b, t - 1]),
                        gtsam.noiseModel.Diagonal.Sigmas(sig_odom[b, t - 1]),
                    )
                )
            values.insert(t, gtsam.Pose2(*data.gps[b, t]))
        params = gtsam.GaussNewtonParams()
        params.setRelativeErrorTol(0.0)  # iterate until the error stops decreasing
        params.setAbsoluteErrorTol(0.0)
        params.setMaxIterations(50)
        result = gtsam.GaussNewtonOptimizer(graph, values, params).optimize()
        for t in range(t_steps):
            p = result.atPose2(t)
            out[b, t] = (p.x(), p.y(), p.theta())
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.3g}" for x in np.atleast_1d(v)) + ")"


def _sig_cell(log_sig: np.ndarray, dims: int) -> str:
    sig = np.exp(np.asarray(log_sig))[:, :dims]
    return " / ".join(_fmt(s) for s in sig)


def log_ratios(learned: Learned, spec: DatasetSpec, gps_dims: int) -> np.ndarray:
    """log σ_learned − log σ_generating, all entries."""
    d_o = learned.log_sig_odom - np.log(np.asarray(spec.odom))
    d_g = learned.log_sig_gps[:, :gps_dims] - np.log(np.asarray(spec.gps))[:, :gps_dims]
    return np.concatenate([d_o.ravel(), d_g.ravel()])


def log_error(learned: Learned, spec: DatasetSpec, gps_dims: int) -> float:
    """Largest |log σ_learned − log σ_generating| (a factor 10 is 2.30, 10 % is 0.095)."""
    return float(np.abs(log_ratios(learned, spec, gps_dims)).max())


def ratio_error(learned: Learned, spec: DatasetSpec, gps_dims: int) -> float:
    """The same with the common scale of all σ removed: the MAP, and so any RMSE, depends only on this."""
    d = log_ratios(learned, spec, gps_dims)
    return float(np.abs(d - d.mean()).max())


def markdown_table(results: dict[str, list[Learned]], oracle: dict[str, dict], gps_dims: int) -> str:
    head = (
        "| dataset | method | σ_odom (c=0 / c=1) | σ_gps (c=0 / c=1) | max abs log-ratio to generating σ "
        "| same, common scale removed | train RMSE m / rad | test RMSE m / rad | wall s "
        "| solver calls (GN iterations) |"
    )
    rows = [head, "|" + " --- |" * 10]
    for name, learned in results.items():
        spec = DATASETS[name]
        o = oracle[name]
        rows.append(
            f"| {name} | generating σ | {_sig_cell(np.log(spec.odom), 3)} | {_sig_cell(np.log(spec.gps), gps_dims)} "
            "| 0 | 0 "
            f"| {o['train'][0]:.3f} / {o['train'][1]:.4f} | {o['test'][0]:.3f} / {o['test'][1]:.4f} | - | - |"
        )
        init_o, init_g = initial_log_sigmas(spec)
        first = learned[0].trace
        init = Learned("init", init_o, init_g, first)
        rows.append(
            f"| {name} | initial σ | {_sig_cell(init_o, 3)} | {_sig_cell(init_g, gps_dims)} "
            f"| {log_error(init, spec, gps_dims):.2f} | {ratio_error(init, spec, gps_dims):.2f} "
            f"| {first.train[0][0]:.3f} / {first.train[0][1]:.4f} | {first.test[0][0]:.3f} / {first.test[0][1]:.4f} "
            "| - | - |"
        )
        for lr in learned:
            tr = lr.trace
            rows.append(
                f"| {name} | {lr.method} | {_sig_cell(lr.log_sig_odom, 3)} | {_sig_cell(lr.log_sig_gps, gps_dims)} "
                f"| {log_error(lr, spec, gps_dims):.2f} | {ratio_error(lr, spec, gps_dims):.2f} "
                f"| {tr.train[-1][0]:.3f} / {tr.train[-1][1]:.4f} "
                f"| {tr.test[-1][0]:.3f} / {tr.test[-1][1]:.4f} | {tr.wall:.1f} "
                f"| {tr.solves[-1]} ({tr.gn_iterations}) |"
            )
    return "\n".join(rows)


def plot_rmse(results: dict[str, list[Learned]], oracle: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    names = list(results)
    fig, axes = plt.subplots(2, len(names), figsize=(3.2 * len(names), 5.2), squeeze=False)
    colours = {"LEO": "tab:purple", "CMA-ES": "tab:orange", "Nelder-Mead": "tab:green"}
    for col, name in enumerate(names):
        for row, (unit, k) in enumerate([("translation RMSE (m)", 0), ("rotation RMSE (rad)", 1)]):
            ax = axes[row, col]
            for lr in results[name]:
                c = colours.get(lr.method, "k")
                ax.plot(lr.trace.solves, [v[k] for v in lr.trace.test], color=c, label=f"{lr.method} test", lw=1.4)
                ax.plot(
                    lr.trace.solves, [v[k] for v in lr.trace.train], color=c, ls=":", lw=1.0, label=f"{lr.method} train"
                )
            ax.axhline(oracle[name]["test"][k], color="k", ls="--", lw=0.8, label="generating σ, test")
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
            if row == 0:
                ax.set_title(name)
            else:
                ax.set_xlabel("solves of the training set")
            if col == 0:
                ax.set_ylabel(unit)
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_sigmas(results: dict[str, list[Learned]], path: Path, gps_dims: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(len(names), 4, figsize=(12, 2.4 * len(names)), squeeze=False)
    colours = ["tab:blue", "tab:red", "tab:green"]
    comp = ["x", "y", "θ"]
    for row, name in enumerate(names):
        spec = DATASETS[name]
        leo = next(lr for lr in results[name] if lr.method == "LEO")
        so = np.exp(np.array(leo.trace.log_sig_odom))  # (iters, R, 3)
        sg = np.exp(np.array(leo.trace.log_sig_gps))
        regimes = len(spec.odom)
        for col in range(4):
            ax = axes[row, col]
            kind, c = ("odom", col % 2 == 0), col // 2
            if c >= regimes:
                ax.axis("off")
                continue
            series, truth = (so, spec.odom) if kind[1] else (sg, spec.gps)
            dims = 3 if kind[1] else gps_dims
            for d in range(dims):
                ax.plot(leo.trace.solves, series[:, c, d], color=colours[d], lw=1.4, label=f"σ_{comp[d]}")
                ax.axhline(truth[c][d], color=colours[d], ls="--", lw=1.0)
            ax.set_yscale("log")
            label = f" c={c}" if regimes > 1 else ""
            ax.set_title(f"{name} σ_{'odom' if kind[1] else 'gps'}{label}", fontsize=9)
            if row == len(names) - 1:
                ax.set_xlabel("LEO iteration")
        axes[row, 0].legend(fontsize=6)
    fig.suptitle("LEO: learned σ (solid) and generating σ (dashed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data and few iterations (about half a minute)")
    parser.add_argument("--out", type=Path, default=Path("build/bench/leo_navigation"))
    parser.add_argument("--gps", choices=["pose", "position"], default="pose")
    parser.add_argument("--datasets", default="N1,N2,N3,N4")
    parser.add_argument("--methods", default="LEO,CMA-ES,Nelder-Mead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None, help="training trajectories (default 30, quick 6)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)

    if args.quick:
        n_train, n_test, steps, iters, evals = 6, 4, 100, 25, 30
    else:
        n_train, n_test, steps, iters, evals = 30, 20, 300, 100, 100
    n_train = args.n_train or n_train
    gps_dims = 3 if args.gps == "pose" else 2
    methods = args.methods.split(",")
    names = args.datasets.split(",")
    total = time.perf_counter()
    print(f"data: {n_train} training and {n_test} test trajectories of {steps} steps per dataset; GPS {args.gps}")

    results: dict[str, list[Learned]] = {}
    oracle: dict[str, dict] = {}
    for k, name in enumerate(names):
        spec = DATASETS[name]
        data = make_dataset(spec, n_train + n_test, steps, seed=args.seed + 1000 * (k + 1), gps_mode=args.gps)
        train, test = data.subset(slice(0, n_train)), data.subset(slice(n_train, None))
        true_o, true_g = np.log(np.asarray(spec.odom)), np.log(np.asarray(spec.gps))
        oracle[name] = {"train": Evaluator(train).rmse(true_o, true_g), "test": Evaluator(test).rmse(true_o, true_g)}
        if k == 0 and args.gps == "pose":
            so, sg = sigmas_per_factor(true_o, true_g, train)
            start = time.perf_counter()
            ours = solve_map(train, so, sg)
            t_ours = time.perf_counter() - start
            start = time.perf_counter()
            ref = gtsam_map(train, so, sg)
            t_gtsam = time.perf_counter() - start
            diff = np.abs(ours.x - ref)
            diff[..., 2] = np.abs(wrap(diff[..., 2]))
            print(
                f"solver check on {name} training set at the generating σ: batched GN {t_ours:.3f} s "
                f"({ours.iterations} iterations), gtsam GaussNewtonOptimizer {t_gtsam:.3f} s; "
                f"max |difference| {diff.max():.2e}; total cost {traj_costs(ours.x, train, so, sg).sum():.6f} "
                f"(batched GN), {traj_costs(ref, train, so, sg).sum():.6f} (gtsam)"
            )
        results[name] = []
        for method in methods:
            if method == "LEO":
                learned = train_leo(spec, train, test, iterations=iters, seed=args.seed)
            elif method == "CMA-ES":
                learned = train_cma(spec, train, test, evaluations=evals, seed=args.seed)
            elif method == "Nelder-Mead":
                learned = train_nelder_mead(spec, train, test, evaluations=evals, seed=args.seed)
            else:
                raise ValueError(method)
            results[name].append(learned)
            print(
                f"{name} {learned.method}: train RMSE {learned.trace.train[-1][0]:.3f} m, "
                f"max abs log-ratio {log_error(learned, spec, gps_dims):.2f}, {learned.trace.wall:.1f} s"
            )

    plot_rmse(results, oracle, args.out / "leo_nav_rmse.png")
    if "LEO" in methods:
        plot_sigmas(results, args.out / "leo_nav_sigma.png", gps_dims)
    print()
    print(markdown_table(results, oracle, gps_dims))
    print()
    print(f"figures in {args.out}; total wall time {time.perf_counter() - total:.1f} s")


if __name__ == "__main__":
    main()
