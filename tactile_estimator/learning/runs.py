"""Training trajectories: the estimator's own factor graph of a bag, with ground truth for every pose.

A bag is replayed once through the live path (playback.feed_bag: StreamRouter -> Estimator) with the
starting model. Which factors exist (steps, contact episodes, tactile pairs, camera matches) does not
depend on the learned parameters θ; only the tactile measurements (the network's output) and the learned
standard deviations do. So a ``RunGraph`` keeps the estimator's graph as a template, the network
inputs of the steps that carry a tactile code, and the ground truth at every step, and rebuilds
the factors for any θ without replaying the bag again.

The energy E(θ; x) = ½ Σ ‖r_f(x; θ) / σ_f(θ)‖² is written in torch over the families' torch
definitions (factors/, ``FAMILIES``), so gradients reach θ (network and log-sigmas) but not the poses x.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tactile_estimator.backends import BackendError, solve_batch
from tactile_estimator.config import ConfigError, EstimatorConfig, split_learn
from tactile_estimator.estimator import Estimator
from tactile_estimator.factors import FAMILIES, Factor, Key, ObjectModel, key_order
from tactile_estimator.factors.tactile import relative_sensor_motion
from tactile_estimator.graph import family_sigmas
from tactile_estimator.io import bags
from tactile_estimator.io.bags import object_shape
from tactile_estimator.learning.datasets import EE_TRUTH_TOPIC, DatasetError, require_training_topics
from tactile_estimator.learning.pretrain import MAX_CORRELATION, inflation
from tactile_estimator.metrics import interpolate_poses, pose_errors, rmse
from tactile_estimator.networks.tactile import TactileModel, TactileNet
from tactile_estimator.playback import bag_config, feed_bag
from tactile_estimator.progress import progress
from tactile_estimator.router import StreamRouter

SIGMA_FAMILIES = tuple(name for name, family in FAMILIES.items() if family.learnable)
# Families whose factors start from σ of their own kinds (a rectangle's corner readings, model.weights
# .tactile_normal_corner): the learned σ scales every factor by the same ratio to its start.
RELATIVE_FAMILIES = ("tactile_normal",)


@dataclass
class FamilyGroup:
    """All factors of one family in a run, as tensors."""

    family: str
    positions: np.ndarray  # (F,) positions in RunGraph.factors
    index: torch.Tensor  # (F, n) rows of the run's value array
    measurement: torch.Tensor  # (F, m) float64
    sigmas: torch.Tensor  # (F, d) the template's sigmas (used where the family is not learned)


@dataclass
class RunGraph:
    name: str
    keys: list[Key]  # ordered by step, object before end-effector (the Gauss-Newton backend's order)
    factors: list[Factor]  # the estimator's graph; tactile measurements are the starting model's
    warm: np.ndarray  # (V, 3) the estimator's final values: the warm start of every solve
    truth: np.ndarray  # (V, 3) ground truth of every pose
    object_rows: np.ndarray  # (K,) rows of the object poses, by step
    groups: dict[str, FamilyGroup]
    model: ObjectModel
    code_row: np.ndarray  # (K,) row of each step in ``inputs``, -1 for steps without a tactile code
    inputs: torch.Tensor  # (C, 3, h, w) network inputs of the steps with a code
    tactile_rows: torch.Tensor  # (F_t, 2) code rows of the tactile factors' frames i and j
    tactile_targets: torch.Tensor  # (F_t, 3) s_i⁻¹ s_j at ground truth (the supervised target)

    @property
    def steps(self) -> int:
        return len(self.object_rows)

    def values(self, poses: dict[Key, np.ndarray]) -> np.ndarray:
        return np.stack([poses[k] for k in self.keys])


def build_run(bag: str | os.PathLike[str], config: EstimatorConfig, model: TactileModel,
              ee_truth: str = "measured") -> RunGraph:
    """Replay a bag through the estimator once and keep its graph, inputs and ground truth.

    The object's ground truth is the bag's ground-truth topic. The end-effector's is, by default,
    its measured pose, as a robot reports it: the poses the estimator meets. With ``ee_truth="bag"``
    a recorded true pose (/ee_ground_truth, which only the simulator has) is used instead. Measured
    is the default because the true poses teach the pushing factor a precision (its residual there
    is the simulator's own model, near zero) that measured poses never give: measured on 20 runs,
    its sigma fell tenfold and the validation error grew.
    """
    bag = bags.resolve_bag(bag)
    topics = config.topics
    require_training_topics(bag, config)
    # camera.source auto reads the bag as replay does: its detections, or its images where it has none
    _, config = bag_config(bag, config)
    shape = object_shape(bag, config)
    object_model = ObjectModel.for_shape(shape)
    recorder = _InputRecorder(model)
    estimator = Estimator(config, recorder, object_model)  # its object_model carries pushing_friction
    played = feed_bag(bag, StreamRouter(estimator), [topics.ground_truth, EE_TRUTH_TOPIC])
    truth, ee_recorded = played.poses(topics.ground_truth), played.poses(EE_TRUTH_TOPIC)
    if not estimator.steps:
        raise DatasetError(f"bag {bag}: the estimator made no steps (no usable tactile frames)")
    if truth is None or len(truth[0]) < 2:
        raise DatasetError(f"bag {bag}: fewer than two usable poses on {topics.ground_truth}")

    values = estimator.values()
    keys = sorted(values, key=key_order)
    row = {k: i for i, k in enumerate(keys)}
    stamps = np.array([s.stamp_ns for s in estimator.steps])
    o_truth, covered = interpolate_poses(*truth, stamps)
    if not covered.all():
        raise DatasetError(f"bag {bag}: {topics.ground_truth} does not cover {int((~covered).sum())} of the steps")
    if ee_truth == "bag" and ee_recorded is not None and len(ee_recorded[0]) >= 2:
        e_truth, _ = interpolate_poses(*ee_recorded, stamps)
    else:
        e_truth = np.stack([s.ee_measured for s in estimator.steps])
    truth_values = np.zeros((len(keys), 3))
    for step in estimator.steps:
        truth_values[row[("o", step.index)]] = o_truth[step.index]
        truth_values[row[("e", step.index)]] = e_truth[step.index]

    # The estimator encodes exactly the frames of the steps that carry a code, in step order.
    coded = [s for s in estimator.steps if s.code is not None]
    if len(coded) != len(recorder.inputs):
        raise DatasetError(f"bag {bag}: {len(recorder.inputs)} frames were encoded for {len(coded)} coded steps")
    code_row = np.full(len(estimator.steps), -1)
    code_row[[s.index for s in coded]] = np.arange(len(coded))
    arch = model.arch
    inputs = (torch.from_numpy(np.concatenate(recorder.inputs)) if coded else
              torch.zeros((0, 3, arch.image_height // arch.downsample, arch.image_width // arch.downsample)))

    factors = list(estimator.graph.factors)
    groups = _groups(factors, row)
    tactile_rows = torch.zeros((0, 2), dtype=torch.long)
    tactile_targets = torch.zeros((0, 3), dtype=torch.float64)
    if "tactile" in groups:
        idx = groups["tactile"].index.numpy()
        steps_ij = np.stack([[keys[r][1] for r in idx[:, 0]], [keys[r][1] for r in idx[:, 2]]], 1)
        tactile_rows = torch.from_numpy(code_row[steps_ij])
        tv = truth_values
        tactile_targets = torch.from_numpy(
            relative_sensor_motion(tv[idx[:, 0]], tv[idx[:, 1]], tv[idx[:, 2]], tv[idx[:, 3]]).reshape(-1, 3))
    object_rows = np.array([row[("o", s.index)] for s in estimator.steps])
    return RunGraph(bag.name, keys, factors, np.stack([values[k] for k in keys]), truth_values, object_rows,
                    groups, estimator.object_model, code_row, inputs, tactile_rows, tactile_targets)


class _InputRecorder(TactileModel):
    """The starting model, keeping the network input of every frame the estimator encodes.

    The gel background that a frame is compared with drifts (contact_detection.py), so the inputs
    are taken as the estimator made them rather than rebuilt afterwards.
    """

    def __init__(self, model: TactileModel) -> None:
        super().__init__(model.arch, model.weights, model.net, model.description)
        self.inputs: list[np.ndarray] = []

    def encode(self, images: np.ndarray, background: np.ndarray) -> np.ndarray:
        inputs = self.network_input(images, background)
        self.inputs.append(inputs)
        return self.encode_input(inputs)


def _groups(factors: Sequence[Factor], row: dict[Key, int]) -> dict[str, FamilyGroup]:
    by_family: dict[str, list[int]] = {}
    for position, factor in enumerate(factors):
        by_family.setdefault(factor.family, []).append(position)
    groups = {}
    for family, positions in by_family.items():
        members = [factors[p] for p in positions]
        index = torch.tensor([[row[k] for k in f.keys] for f in members], dtype=torch.long)
        measurement = torch.from_numpy(np.stack([np.asarray(f.measurement, dtype=float) for f in members]))
        d = FAMILIES[family].dim
        sigmas = torch.from_numpy(np.stack([np.broadcast_to(np.asarray(f.sigmas, dtype=float), (d,)) for f in members]))
        groups[family] = FamilyGroup(family, np.array(positions), index, measurement, sigmas)
    return groups


# ------------------------------------------------------------------------------------ θ and energy
class Theta(torch.nn.Module):
    """What training learns: the tactile network and the log standard deviations of chosen families.

    A family whose error persists from step to step (model.persistence: lag-one correlation ρ) has
    its σ inflated by κ = √((1 + ρ) / (1 - ρ)) in the graph (learning.pretrain). With
    ``persistence=True`` the parameters are the per-step ("white") σ / κ: the graphs that training
    solves and samples, and the energy, use the white σ of every such family, the model the graph's
    independent factors describe, and ``sigma`` (what the estimator gets) multiplies κ back. Without
    it κ = 1: LEO fits the graph's σ itself, and for a persistent error that fit is the white one,
    too narrow for the graph (README, Training).
    """

    def __init__(self, model: TactileModel, config: EstimatorConfig, learn: Sequence[str],
                 persistence: bool = False) -> None:
        super().__init__()
        self.net: TactileNet = model.net
        self.learn = list(learn)
        self.log_sigma = torch.nn.ParameterDict()
        self.axes: dict[str, np.ndarray] = {}  # per learned family: which components are learned
        self.inflation: dict[str, torch.Tensor] = {}  # κ per family with a persistent error
        self.start: dict[str, torch.Tensor] = {}  # per learned family: the σ it started from (the graph's)
        if persistence:
            for family, rho in model.persistence.items():
                self.inflation[family] = torch.from_numpy(inflation(np.clip(np.asarray(rho, dtype=float), 0.0,
                                                                            MAX_CORRELATION)))
        chosen = dict(split_learn(name) for name in learn)
        if "tactile_encoder" in chosen and model.has_normal_head:
            # The run graphs hold the normal head's readings as they were when each run was built.
            raise ConfigError("learn: tactile_encoder would change the contact normal head's readings, which "
                              "training holds fixed; learn tactile_head and the sigmas instead")
        for family in SIGMA_FAMILIES:
            if family in chosen:
                if family == "tactile_normal" and not model.has_normal_head:
                    raise ConfigError("learn: tactile_normal needs a model whose network has a normal head "
                                      "(architecture.normal_hidden > 0); this one has none")
                start = family_sigmas(model, config, family)
                self.start[family] = torch.from_numpy(start)
                kappa = self.inflation.get(family, torch.ones(len(start), dtype=torch.float64))
                self.log_sigma[family] = torch.nn.Parameter(torch.log(torch.from_numpy(start) / kappa))
                axes = chosen[family]
                mask = np.array([not axes or a in axes for a in "xyz"[:len(start)]])
                self.axes[family] = mask
                if not mask.all():  # the others keep their starting value: no gradient, so Adam never moves them
                    held = torch.from_numpy(mask.astype(float))
                    self.log_sigma[family].register_hook(lambda grad, held=held: grad * held.to(grad.dtype))
        for name, parameter in self.net.named_parameters():
            # The normal head's measurements are taken once, when the run is built (build_run): only its σ is learned.
            is_head, is_normal = name.startswith("head."), name.startswith("normal_head.")
            parameter.requires_grad_(not is_normal and (("tactile_head" in learn and is_head)
                                                        or ("tactile_encoder" in learn and not is_head)))
        self.net.eval()  # batch statistics stay those of pretraining

    @property
    def learns_network(self) -> bool:
        return any(p.requires_grad for p in self.net.parameters())

    @property
    def learns_encoder(self) -> bool:
        return "tactile_encoder" in self.learn

    def sigma(self, family: str, white: bool = False) -> torch.Tensor | None:
        """A learned family's σ as the graph uses it, or (``white``) its per-step σ; None if not learned."""
        if family not in self.log_sigma:
            return None
        sigma = torch.exp(self.log_sigma[family])
        return sigma if white or family not in self.inflation else sigma * self.inflation[family]

    def scale(self, family: str, template: torch.Tensor, white: bool = False) -> torch.Tensor:
        """The σ a family's factors take: the learned one, else ``template`` (the graph's), per step if ``white``."""
        sigma = self.sigma(family, white)
        if sigma is not None and family in RELATIVE_FAMILIES:
            return sigma * (template / self.start[family])
        if sigma is not None:
            return sigma
        return template / self.inflation[family] if white and family in self.inflation else template

    def codes(self, run: RunGraph) -> torch.Tensor:
        with torch.set_grad_enabled(self.learns_encoder):
            return torch.cat([self.net.encode(run.inputs[i:i + 256]) for i in range(0, len(run.inputs), 256)]) \
                if len(run.inputs) else torch.zeros((0, self.net.project.out_features))

    def predictions(self, run: RunGraph) -> torch.Tensor:
        """(F_t, 3) float64 tactile measurements of the run under the current network."""
        if not len(run.tactile_rows):
            return torch.zeros((0, 3), dtype=torch.float64)
        codes = self.codes(run)
        with torch.set_grad_enabled(self.learns_network):
            return self.net.pair(codes[run.tactile_rows[:, 0]], codes[run.tactile_rows[:, 1]]).double()


def factors_for(run: RunGraph, theta: Theta, predictions: torch.Tensor, white: bool = False) -> list[Factor]:
    """The run's factors under θ: tactile measurements from the network, learned sigmas in place
    (the per-step ones if ``white``: Theta)."""
    factors = list(run.factors)
    with torch.no_grad():
        for family, group in run.groups.items():
            measured = predictions.numpy() if family == "tactile" else None
            if family not in theta.log_sigma and measured is None and not (white and family in theta.inflation):
                continue
            sigmas = theta.scale(family, group.sigmas, white).expand_as(group.sigmas).numpy()
            for n, position in enumerate(group.positions):
                old = factors[position]
                factors[position] = dataclasses.replace(
                    old, measurement=old.measurement if measured is None else measured[n], sigmas=sigmas[n].copy())
    return factors


def residuals(run: RunGraph, group: FamilyGroup, predictions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """A family's residuals (N, F, d) for a batch of value sets (N, V, 3); tactile ones measure ``predictions``."""
    n_var, count = group.index.shape[1], group.index.shape[0]
    poses = [values[:, group.index[:, a]].reshape(-1, 3) for a in range(n_var)]
    measured = predictions if group.family == "tactile" else group.measurement
    measured = measured.expand((values.shape[0],) + measured.shape).reshape(
        (values.shape[0] * count,) + measured.shape[1:])
    return FAMILIES[group.family].error(poses, measured, run.model).reshape(values.shape[0], count, -1)


def energy(run: RunGraph, theta: Theta, predictions: torch.Tensor, values: torch.Tensor,
           families: Sequence[str] | None = None, white: bool = False) -> torch.Tensor:
    """E(θ; x) for a batch of value sets (N, V, 3) -> (N,), over the given families (default: all),
    with the per-step sigmas if ``white`` (Theta)."""
    total = values.new_zeros(values.shape[0])
    for family, group in run.groups.items():
        if families is not None and family not in families:
            continue
        r = residuals(run, group, predictions, values)
        total = total + 0.5 * ((r / theta.scale(family, group.sigmas, white)) ** 2).sum((1, 2))
    return total


def sigma_columns(theta: Theta) -> dict[str, float]:
    """The learned standard deviations as log columns: sigma_<family>_<x|y|z> (or _d for one value)."""
    columns = {}
    for family in SIGMA_FAMILIES:
        sigma = theta.sigma(family)
        if sigma is not None:
            values = sigma.detach().tolist()
            for axis, value in zip("xyz" if len(values) == 3 else "d", values, strict=False):
                columns[f"sigma_{family}_{axis}"] = value
    return columns


def learned_families(theta: Theta) -> list[str]:
    """Families whose energy depends on θ (the others add a constant to E and no gradient)."""
    families = list(theta.log_sigma.keys())
    if theta.learns_network and "tactile" not in families:
        families.append("tactile")
    return families


# ------------------------------------------------------------------------------------ solving
@dataclass
class Solution:
    values: np.ndarray  # (V, 3) the MAP estimate under θ
    samples: np.ndarray | None  # (S, V, 3) joint samples of its Laplace approximation


def solve_runs(runs: Sequence[RunGraph], factor_lists: Sequence[list[Factor]], sampler: str, iterations: int,
               samples: int, seeds: Sequence[int]) -> list[Solution]:
    """Solve each run's graph (warm-started) and draw joint posterior samples (samples=0: none)."""
    graphs = [(f, dict(zip(r.keys, r.warm, strict=True))) for r, f in zip(runs, factor_lists, strict=True)]
    try:
        solved = solve_batch(sampler, graphs, [r.keys for r in runs], iterations, samples, seeds)
    except BackendError as error:
        if error.graph is None:
            raise
        raise DatasetError(f"run {runs[error.graph].name}: the graph cannot be solved: {error}") from error
    return [Solution(s.values, s.samples) for s in solved]


def trajectory_rmse(run: RunGraph, values: np.ndarray) -> tuple[float, float, int]:
    """RMSE of the object poses against ground truth: translation (m), rotation (rad), and pose count."""
    trans, rot = pose_errors(values[run.object_rows], run.truth[run.object_rows])
    return rmse(trans), rmse(rot), len(trans)


def pooled_rmse(runs: Sequence[RunGraph], solutions: Sequence[Solution]) -> tuple[float, float]:
    """RMSE over the poses of all runs together."""
    sq_t = sq_r = count = 0.0
    for run, solution in zip(runs, solutions, strict=True):
        t, r, n = trajectory_rmse(run, solution.values)
        sq_t, sq_r, count = sq_t + t * t * n, sq_r + r * r * n, count + n
    return float(np.sqrt(sq_t / count)), float(np.sqrt(sq_r / count))


def load_runs(paths: Sequence[str | os.PathLike[str] | Path], config: EstimatorConfig,
              model: TactileModel, ee_truth: str = "measured", what: str = "building graphs") -> list[RunGraph]:
    """Every bag's RunGraph, with a progress bar named ``what`` on a terminal. A bag that cannot be used
    raises its DatasetError or BagError with the attribute ``bag`` (its path as given), so a caller drops
    exactly that bag."""
    runs = []
    for path in progress(paths, what, unit="bag"):
        try:
            runs.append(build_run(path, config, model, ee_truth))
        except (DatasetError, bags.BagError) as error:
            error.bag = str(path)
            raise
    return runs
