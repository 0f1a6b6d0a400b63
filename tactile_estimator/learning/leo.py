"""The trainer: LEO (Sodhi et al., CoRL 2021) and its baselines, from bags with ground truth.

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

The other methods share the loop (data, schedule, checkpoints, outputs):
- ``supervised``: the tactile network alone, on the ground-truth relative motions (pretraining's loss);
- ``unroll``: the pose error after K differentiable Gauss-Newton iterations (baselines.py);
- ``blackbox``: the covariances searched without gradients (baselines.py).

Every epoch writes the validation RMSE to ``training_log.csv``, ``learning_curves.png`` and
``checkpoint.pt``, and the model (``weights.pt`` and ``model.yaml``) if its validation score is the
best so far (``keep: best``, the default; the start counts) or always (``keep: last``), each
through io.atomic (a temporary file, fsynced, then a rename). The output directory is checked
before any work, and the temporary files of a run that was killed while writing are removed at the
next start. A write that fails (a full disk) stops training with an OutputError naming the file;
the earlier file and the last checkpoint are kept. SIGINT/SIGTERM finish the current update, save a
checkpoint and stop; ``resume`` continues from it with the same result as a run that was never
stopped (the order of trajectories and the samples are drawn from seeds fixed by epoch and update,
not from a running generator).

Data-parallel: under ``torchrun`` (WORLD_SIZE > 1) each process solves its share of every update's
trajectories and the gradients are summed across processes (gloo on CPU, nccl on CUDA), so the
update equals the single-process one up to the order of floating-point sums.
"""

from __future__ import annotations

import csv
import ctypes
import datetime
import io
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tactile_estimator.backends import BackendError
from tactile_estimator.config import EstimatorConfig, TrainerConfig
from tactile_estimator.io import atomic
from tactile_estimator.learning import runs as R
from tactile_estimator.learning.datasets import DatasetError
from tactile_estimator.networks.tactile import DESCRIPTION, WEIGHTS, FactorWeights, TactileModel
from tactile_estimator.plotting import learning_curves_png
from tactile_estimator.progress import progress as progress_bar

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOG_CSV = "training_log.csv"
CURVES = "learning_curves.png"
OUTPUTS = (CHECKPOINT, LOG_CSV, CURVES, WEIGHTS, DESCRIPTION)  # what a run writes in its directory


class TrainingError(RuntimeError):
    """Training cannot go on; the message says where it stopped and what was kept."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM: the checkpoint is saved and ``--resume`` continues from it."""


@dataclass
class TrainResult:
    out_dir: Path
    history: list[dict[str, Any]]
    solver_calls: int
    wall_s: float
    keep: str = "last"
    extra: dict[str, Any] = field(default_factory=dict)
    main: bool = True  # the process that validates and writes (rank 0 under torchrun)

    @property
    def kept(self) -> dict[str, Any]:
        """The history row of the model in ``out_dir``."""
        return kept_row(self.history, self.keep)


def validation_score(row: dict[str, Any], start: dict[str, Any]) -> float:
    """Translation and rotation validation RMSE, each divided by its value at the start, summed (2 at the
    start): blackbox's objective, the epoch ``keep: best`` keeps, and the watcher's acceptance."""
    return (float(row["val_rmse_translation_m"]) / max(float(start["val_rmse_translation_m"]), 1e-12)
            + float(row["val_rmse_rotation_rad"]) / max(float(start["val_rmse_rotation_rad"]), 1e-12))


def kept_row(history: list[dict[str, Any]], keep: str) -> dict[str, Any]:
    """The last row, or the first row with the lowest validation score (what ``keep: best`` writes)."""
    if keep == "last" or "val_rmse_translation_m" not in history[0]:
        return history[-1]
    best = history[0]
    for row in history[1:]:
        if validation_score(row, history[0]) < validation_score(best, history[0]):
            best = row
    return best


# ------------------------------------------------------------------------------------ processes
@dataclass
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> World:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(dist.get_rank() if size > 1 else 0, size)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool) -> bool:
        return bool(self.sum_(torch.tensor([1.0 if flag else 0.0])).item() > 0)

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


class _StopRequest:
    """SIGINT/SIGTERM set a flag that the loop reads between updates.

    Only the main thread can take signals in Python; elsewhere the guard installs nothing (and the
    loop cannot be stopped this way). On exit each signal gets back the action it had: its Python
    handler (signal.getsignal) and, where the C library has sigaction, the process's own action.
    The two differ where a handler was installed in C: rclpy's SIGINT/SIGTERM handlers (which wake
    its executor) are, and restoring the Python handler alone would leave Python's C handler in their
    place, so that the node would not notice Ctrl-C until its next timer.
    """

    _BUFFER = 1024  # larger than any libc's struct sigaction; only sigaction reads or writes it

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, tuple[Any, bytes | None]] = {}

    @classmethod
    def _sigaction(cls, signum: int, action: bytes | None = None) -> bytes | None:
        """The process's action for ``signum``, as opaque bytes, after setting it to ``action`` if given.

        None where there is no sigaction to call (Windows) or it fails.
        """
        try:
            sigaction = ctypes.CDLL(None, use_errno=True).sigaction
        except (OSError, TypeError, AttributeError):
            return None
        old = ctypes.create_string_buffer(cls._BUFFER)
        new = ctypes.create_string_buffer(action, cls._BUFFER) if action is not None else None
        if sigaction(ctypes.c_int(signum), new, old) != 0:
            return None
        return old.raw

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = (signal.getsignal(sig), self._sigaction(sig))
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        log.warning("%s received: finishing this update, then saving a checkpoint", signal.Signals(signum).name)
        self.requested = True

    def __exit__(self, *_: object) -> None:
        for sig, (handler, action) in self._previous.items():
            # None: a handler Python did not install; the process's action below puts it back
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            if action is not None:
                self._sigaction(sig, action)
        self._previous.clear()


# ------------------------------------------------------------------------------------ the trainer
class Trainer:
    def __init__(self, train_paths: Sequence[Path], val_paths: Sequence[Path], out_dir: Path,
                 estimator_config: EstimatorConfig, config: TrainerConfig, init: str | Path | None = None,
                 command: str = "", progress: Callable[[str], None] | None = None) -> None:
        self.config, self.estimator_config = config, estimator_config
        self.out_dir = Path(out_dir)
        self.command = command
        self.world = World.from_environment()
        if self.world.main:  # before any work: an output directory that cannot take the files costs nothing
            atomic.writable_directory(self.out_dir, "output directory")
            for stale in atomic.remove_stale_temps(self.out_dir, OUTPUTS):
                log.warning("removed %s, left by a run that was killed while writing it", stale)
        self.progress = progress if progress is not None and self.world.main else (lambda _text: None)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.init_dir = str(init) if init else ""
        self.model = TactileModel.load(init or None)
        self.theta = R.Theta(self.model, estimator_config, config.learn, persistence=config.persistence == "model")
        self.train_paths, self.val_paths = list(train_paths), list(val_paths)
        started = time.perf_counter()
        self.runs = R.load_runs(self.train_paths, estimator_config, self.model, config.ee_truth)
        self.val_runs = (R.load_runs(self.val_paths, estimator_config, self.model, config.ee_truth,
                                     "building validation graphs") if self.val_paths else self.runs)
        self.load_s = time.perf_counter() - started
        self.start = {name: p.detach().clone() for name, p in self.theta.named_parameters() if p.requires_grad}
        self.history: list[dict[str, Any]] = []
        self.solver_calls = 0
        self.wall_s = 0.0
        self._losses: list[float] = []  # the current epoch's update losses
        self.timing: dict[str, float] = {"network": 0.0, "solve_and_sample": 0.0, "energy": 0.0, "backward": 0.0,
                                         "validation": 0.0}  # seconds, for profiles

    # ---------------------------------------------------------------- parameters and the optimiser
    def _optimiser(self) -> tuple[torch.optim.Optimizer, Any, int]:
        cfg = self.config
        groups = []
        sigmas = [p for p in self.theta.log_sigma.parameters()]
        network = [p for p in self.theta.net.parameters() if p.requires_grad]
        if sigmas:
            groups.append({"params": sigmas, "lr": cfg.learning_rate_sigma})
        if network:
            groups.append({"params": network, "lr": cfg.learning_rate_network})
        if not groups:
            raise TrainingError("learn: nothing to learn; name tactile_head, tactile_encoder or a factor family")
        updates = math.ceil(len(self.runs) / cfg.runs_per_update)
        optimiser = torch.optim.Adam(groups)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, cfg.epochs * updates),
                                                              eta_min=0.0)
        return optimiser, schedule, updates

    def factor_weights(self) -> FactorWeights:
        weights = asdict(self.model.weights)
        for family in R.SIGMA_FAMILIES:
            sigma = self.theta.sigma(family)
            if sigma is not None:
                weights[family] = [float(v) for v in sigma.detach()]
        learned = self.theta.sigma("tactile_normal")
        if learned is not None and weights["tactile_normal_corner"]:  # corners keep their ratio (runs.Theta.scale)
            ratio = float(learned.detach()[0]) / float(self.theta.start["tactile_normal"][0])
            weights["tactile_normal_corner"] = [ratio * v for v in weights["tactile_normal_corner"]]
        return FactorWeights(**weights)

    # ---------------------------------------------------------------- losses
    def _seed(self, epoch: int, update: int, run: int) -> int:
        return int(np.random.SeedSequence([self.config.seed, epoch, update, run]).generate_state(1)[0])

    def loss(self, indices: Sequence[int], epoch: int, update: int) -> tuple[torch.Tensor, int]:
        """The summed loss of this process's trajectories, and the solver calls it made."""
        method = self.config.method
        runs = [self.runs[i] for i in indices]
        if not runs:
            return torch.zeros((), dtype=torch.float64), 0
        mark = time.perf_counter()
        predictions = [self.theta.predictions(r) for r in runs]
        self.timing["network"] += time.perf_counter() - mark
        if method == "supervised":
            total = torch.zeros((), dtype=torch.float64)
            for run, pred in zip(runs, predictions, strict=True):
                if len(pred):
                    scale = self.theta.net.output_scale.double()
                    total = total + torch.nn.functional.smooth_l1_loss(pred / scale, run.tactile_targets / scale)
            return total, 0
        if method == "unroll":
            from tactile_estimator.learning.baselines import unrolled_loss

            total = sum((unrolled_loss(run, self.theta, pred, self.config.unroll) for run, pred
                         in zip(runs, predictions, strict=True)), torch.zeros((), dtype=torch.float64))
            return total, len(runs)
        # LEO's graphs and energy are the per-step (white) model; validation solves the graph's (R.Theta).
        factor_lists = [R.factors_for(r, self.theta, p, white=True) for r, p in zip(runs, predictions, strict=True)]
        seeds = [self._seed(epoch, update, i) for i in indices]
        mark = time.perf_counter()
        solutions = R.solve_runs(runs, factor_lists, self.config.sampler, self.config.solver_iterations,
                                 self.config.samples, seeds)
        self.timing["solve_and_sample"] += time.perf_counter() - mark
        mark = time.perf_counter()
        families = R.learned_families(self.theta)
        total = torch.zeros((), dtype=torch.float64)
        for run, pred, solution in zip(runs, predictions, solutions, strict=True):
            e_truth = R.energy(run, self.theta, pred, torch.from_numpy(run.truth)[None], families, white=True)[0]
            e_samples = R.energy(run, self.theta, pred, torch.from_numpy(solution.samples), families,
                                 white=True).mean()
            total = total + (e_truth - e_samples) / run.steps
        self.timing["energy"] += time.perf_counter() - mark
        return total, len(runs)

    def _l2(self) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64)
        for name, p in self.theta.named_parameters():
            if p.requires_grad:
                total = total + (p - self.start[name]).double().pow(2).sum()
        return self.config.l2 * total

    # ---------------------------------------------------------------- validation
    def validate(self) -> dict[str, float]:
        mark = time.perf_counter()
        with torch.no_grad():
            predictions = [self.theta.predictions(r) for r in self.val_runs]
            factor_lists = [R.factors_for(r, self.theta, p) for r, p in zip(self.val_runs, predictions, strict=True)]
        solutions = R.solve_runs(self.val_runs, factor_lists, self.config.sampler, self.config.solver_iterations,
                                 0, [0] * len(self.val_runs))
        self.solver_calls += len(self.val_runs)
        t, r = R.pooled_rmse(self.val_runs, solutions)
        self.timing["validation"] += time.perf_counter() - mark
        return {"val_rmse_translation_m": t, "val_rmse_rotation_rad": r}

    # ---------------------------------------------------------------- the loop
    def run(self, resume: bool = False) -> TrainResult:
        if self.config.method == "blackbox":
            from tactile_estimator.learning.baselines import blackbox_search

            return blackbox_search(self, resume)
        optimiser, schedule, updates = self._optimiser()
        epoch, update = 0, 0
        if resume:
            epoch, update = self._restore(optimiser, schedule)
        elif self.world.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if not self.history:
            self._record(0, float("nan"), time.perf_counter())
            if self.world.main:
                self._write_epoch(optimiser, schedule)
        epochs = range(epoch, self.config.epochs)
        with _StopRequest() as stop:
            for epoch in progress_bar(epochs, "train", unit="epoch") if self.world.main else epochs:
                started = time.perf_counter()
                order = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.runs))
                while update < updates:
                    group = order[update * self.config.runs_per_update:(update + 1) * self.config.runs_per_update]
                    self._losses.append(self._update(optimiser, schedule, group, epoch, update))
                    update += 1
                    if update < updates and self.world.any(stop.requested):
                        self._interrupted(optimiser, schedule, epoch, update, updates)
                done, update = epoch + 1, 0
                self._record(done, float(np.mean(self._losses)), started)
                self._losses = []
                if self.world.main:
                    self._write_epoch(optimiser, schedule)
                self.world.barrier()
                if done < self.config.epochs and self.world.any(stop.requested):
                    self._interrupted(None, None, done, 0, updates)
        return TrainResult(self.out_dir, self.history, self.solver_calls, self.wall_s, self.config.keep,
                           main=self.world.main, extra={"timing": dict(self.timing), "load_s": self.load_s})

    def _interrupted(self, optimiser: torch.optim.Optimizer | None, schedule: Any, epoch: int, update: int,
                     updates: int) -> None:
        """Save where the loop stands (mid-epoch) or rely on the epoch's checkpoint, then stop."""
        if optimiser is not None and self.world.main:
            self._save_checkpoint(optimiser, schedule, epoch, update)
        raise TrainingInterrupted(
            f"stopped at epoch {epoch + 1}, update {update} of {updates}; checkpoint "
            f"{self.out_dir / CHECKPOINT} saved; --resume continues from it")

    def _update(self, optimiser: torch.optim.Optimizer, schedule: Any, group: np.ndarray, epoch: int,
                update: int) -> float:
        mine = [int(i) for i in group[self.world.rank::self.world.size]]
        optimiser.zero_grad()
        problem = "the loss or its gradient is not finite"
        try:
            loss, calls = self.loss(mine, epoch, update)
        except (DatasetError, BackendError) as error:  # a graph that the current θ makes unsolvable
            problem = f"the solver failed ({error})"
            loss, calls = torch.tensor(float("nan"), dtype=torch.float64), 0
        loss = loss / len(group)
        if self.world.main:
            loss = loss + self._l2()
        finite = bool(torch.isfinite(loss))
        if loss.requires_grad and finite:
            mark = time.perf_counter()
            loss.backward()
            self.timing["backward"] += time.perf_counter() - mark
        params = [p for g in optimiser.param_groups for p in g["params"]]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            finite = finite and bool(torch.isfinite(p.grad).all())
        if not self.world.any(not finite):
            for p in params:
                self.world.sum_(p.grad)
        else:
            where = ", ".join(self.runs[i].name for i in group)
            kept = self.out_dir / CHECKPOINT
            raise TrainingError(
                f"{problem} at epoch {epoch + 1}, update {update + 1} (runs {where}); "
                f"stopped before applying it; the last good checkpoint {kept} and model are kept")
        optimiser.step()
        schedule.step()
        total = self.world.sum_(torch.tensor([float(loss.detach()), float(calls)], dtype=torch.float64))
        self.solver_calls += int(total[1])
        return float(total[0])

    # ---------------------------------------------------------------- records and files
    def _record(self, epoch: int, loss: float, started: float) -> None:
        self.wall_s += time.perf_counter() - started
        row: dict[str, Any] = {"epoch": epoch, "loss": loss}
        if self.world.main:
            row.update(self.validate())
        row.update(R.sigma_columns(self.theta))
        row["solver_calls"] = self.solver_calls
        row["wall_s"] = round(self.wall_s, 3)
        self.history.append(row)
        if "val_rmse_translation_m" in row:
            t_mm, r_deg = row["val_rmse_translation_m"] * 1e3, math.degrees(row["val_rmse_rotation_rad"])
            head = "start: validation" if epoch == 0 else f"epoch {epoch}: loss {loss:.4g}, validation"
            self.progress(f"{head} RMSE {t_mm:.2f} mm, {r_deg:.2f} deg, solver calls {self.solver_calls}")

    def _write_epoch(self, optimiser: torch.optim.Optimizer, schedule: Any) -> None:
        """The model if this epoch is the one to keep, the log and curves, then the checkpoint (last, so that
        a run stopped in between resumes to rewrite what it had not)."""
        try:
            if kept_row(self.history, self.config.keep) is self.history[-1]:
                write_model(self, self.factor_weights())
            write_log(self)
        except atomic.OutputError as error:
            checkpoint = self.out_dir / CHECKPOINT
            if checkpoint.is_file():
                raise atomic.OutputError(f"{error}; training stopped, --resume continues from {checkpoint}",
                                         error.path, error.errno) from error
            raise
        self._save_checkpoint(optimiser, schedule, len(self.history) - 1, 0)

    def _save_checkpoint(self, optimiser: torch.optim.Optimizer | None, schedule: Any, epoch: int,
                         update: int, extra: dict[str, Any] | None = None) -> None:
        state = {
            "format": 1, "epoch": epoch, "update": update, "theta": self.theta.state_dict(),
            "optimizer": optimiser.state_dict() if optimiser is not None else {},
            "scheduler": schedule.state_dict() if schedule is not None else {},
            "history": self.history, "solver_calls": self.solver_calls, "wall_s": self.wall_s,
            "config": _plain(asdict(self.config)), "train_bags": [p.name for p in self.train_paths],
            "losses": list(self._losses), "extra": extra or {},
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = self.out_dir / CHECKPOINT
        existed = path.is_file()
        try:
            atomic.atomic_write_bytes(path, buffer.getvalue())
        except atomic.OutputError as error:
            if existed:
                raise atomic.OutputError(f"{error}; training stopped, --resume continues from it", path,
                                         error.errno) from error
            raise

    def load_checkpoint(self) -> dict[str, Any]:
        path = self.out_dir / CHECKPOINT
        if not path.is_file():
            raise TrainingError(f"--resume: no checkpoint at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises zip, pickle and EOF errors alike for a damaged file
            raise TrainingError(f"{path}: cannot read the checkpoint: {str(error).splitlines()[0]}") from None
        saved, now = state.get("config", {}), _plain(asdict(self.config))
        for key in sorted(set(saved) | set(now)):
            if key != "epochs" and saved.get(key) != now.get(key):
                raise TrainingError(f"--resume: {key} was {saved.get(key)!r} in {path}, now {now.get(key)!r}")
        if state.get("train_bags") != [p.name for p in self.train_paths]:
            raise TrainingError(f"--resume: the training bags differ from those of {path}")
        self.theta.load_state_dict(state["theta"])
        self.history = list(state["history"])
        self.solver_calls = int(state["solver_calls"])
        self.wall_s = float(state["wall_s"])
        self._losses = list(state.get("losses", []))
        return state

    def _restore(self, optimiser: torch.optim.Optimizer, schedule: Any) -> tuple[int, int]:
        state = self.load_checkpoint()
        optimiser.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        epoch, update = int(state["epoch"]), int(state["update"])
        self.progress(f"resuming at epoch {epoch + 1}, update {update + 1}")
        return epoch, update


def _plain(value: Any) -> Any:
    """Configuration as plain lists, dicts and scalars (what weights_only checkpoints may hold)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_outputs(trainer: Trainer, weights: FactorWeights) -> None:
    """The model directory, the CSV log and the learning curves, each written atomically."""
    write_model(trainer, weights)
    write_log(trainer)


def write_model(trainer: Trainer, weights: FactorWeights) -> None:
    """``weights.pt`` and ``model.yaml`` for θ now, described by the last history row."""
    out = trainer.out_dir
    last = trainer.history[-1]
    first = trainer.history[0]
    model = TactileModel(trainer.model.arch, weights, trainer.theta.net, dict(trainer.model.description))
    description = dict(trainer.model.description)
    previous = description.get("training")
    model.description = {k: v for k, v in description.items() if k not in ("training", "validation")}
    model.save(
        out,
        training={
            "method": trainer.config.method,
            "command": trainer.command,
            "date": datetime.date.today().isoformat(),
            "init": trainer.init_dir or "the shipped models/",
            "init_training": previous,
            "train_bags": [p.name for p in trainer.train_paths],
            "val_bags": [p.name for p in trainer.val_paths] or "the training bags",
            "epochs": int(last["epoch"]),
            "keep": trainer.config.keep,
            "sampler": trainer.config.sampler,
            "learn": list(trainer.config.learn),
            "solver_calls": trainer.solver_calls,
            "processes": trainer.world.size,
        },
        validation={
            "rmse_translation_m": last.get("val_rmse_translation_m"),
            "rmse_rotation_rad": last.get("val_rmse_rotation_rad"),
            "start_rmse_translation_m": first.get("val_rmse_translation_m"),
            "start_rmse_rotation_rad": first.get("val_rmse_rotation_rad"),
            "measured_on": "the batch solution of the validation runs' graphs under the trained weights",
        },
    )


def write_log(trainer: Trainer) -> None:
    """``training_log.csv`` and ``learning_curves.png`` for the whole history."""
    out = trainer.out_dir
    columns = list(dict.fromkeys(k for row in trainer.history for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns)
    writer.writeheader()
    writer.writerows(trainer.history)
    atomic.atomic_write_text(out / LOG_CSV, text.getvalue())
    method = trainer.config.method
    kept = kept_epoch(trainer.history, method, trainer.config.keep)
    atomic.atomic_write_bytes(out / CURVES, learning_curves_png(trainer.history, method, kept))


def kept_epoch(history: list[dict[str, Any]], method: str, keep: str) -> int:
    """The epoch (blackbox: generation) of the model in the output directory: ``keep``'s row; for
    blackbox, which writes the best point found so far every generation, the first row with that score."""
    return int(kept_row(history, "best" if method == "blackbox" else keep)["epoch"])


def previous_run(out_dir: Path) -> Path | None:
    """The first file a training run writes that ``out_dir`` already holds, if any."""
    return next((Path(out_dir) / name for name in OUTPUTS if (Path(out_dir) / name).is_file()), None)


def finished_run(out_dir: Path, train_paths: Sequence[Path], config: TrainerConfig) -> TrainResult | None:
    """The result of a run in ``out_dir`` that has nothing left to do under ``config``, read from its checkpoint.

    None when there is no such checkpoint, when it differs from ``config`` or the bags (``--resume``
    then says how), or when epochs or evaluations remain.
    """
    path = Path(out_dir) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # Trainer.load_checkpoint names the damage
        return None
    saved, now = state.get("config", {}), _plain(asdict(config))
    if any(saved.get(key) != now.get(key) for key in set(saved) | set(now) if key != "epochs"):
        return None
    if state.get("train_bags") != [p.name for p in train_paths] or not state.get("history"):
        return None
    if config.method == "blackbox":
        done = int(state.get("extra", {}).get("evaluations", 0)) >= config.blackbox.evaluations
    else:
        done = int(state["epoch"]) >= config.epochs and int(state["update"]) == 0
    if not done:
        return None
    return TrainResult(Path(out_dir), list(state["history"]), int(state["solver_calls"]), float(state["wall_s"]),
                       config.keep if config.method != "blackbox" else "best", main=os.environ.get("RANK", "0") == "0",
                       extra={"finished": True})  # every process returns here alike: no process group needed


def train(train_paths: Sequence[Path], val_paths: Sequence[Path], out_dir: Path, estimator_config: EstimatorConfig,
          config: TrainerConfig, init: str | Path | None = None, resume: bool = False, command: str = "",
          progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train, or with ``resume`` continue the run in ``out_dir``; a finished one returns at once
    (``extra["finished"]``)."""
    if not train_paths:
        raise DatasetError("no training bags")
    if resume and (done := finished_run(out_dir, train_paths, config)) is not None:
        return done
    trainer = Trainer(train_paths, val_paths, out_dir, estimator_config, config, init, command, progress)
    try:
        return trainer.run(resume)
    finally:
        if trainer.world.size > 1 and dist.is_initialized():
            dist.destroy_process_group()
