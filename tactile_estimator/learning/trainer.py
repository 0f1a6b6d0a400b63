"""The trainer: LEO (Sodhi et al., CoRL 2021) and its baselines, from bags with ground truth.

Every method shares the loop here (data, optimiser, schedule, validation, checkpoints, outputs); each
update's loss is that of the method:
- ``leo``: the energy of the ground truth against that of posterior samples (leo.py);
- ``supervised``: the tactile network alone, on the ground-truth relative motions (pretraining's loss;
  baselines.py);
- ``unroll``: the pose error after K differentiable Gauss-Newton iterations (baselines.py);
- ``blackbox``: the covariances searched without gradients (baselines.py).

Every epoch writes the validation RMSE to ``training_log.csv``, ``learning_curves.png`` and
``checkpoint.pt``, and the model (``weights.pt`` and ``model.yaml``) if its validation score is the
best so far (``keep: best``, the default; the start counts) or always (``keep: last``), each
through io.atomic (a temporary file, fsynced, then a rename), by the writers of checkpoint.py. The
output directory is checked before any work, and the temporary files of a run that was killed while
writing are removed at the next start. A write that fails (a full disk) stops training with an
OutputError naming the file; the earlier file and the last checkpoint are kept. SIGINT/SIGTERM
finish the current update, save a checkpoint and stop; ``resume`` continues from it with the same
result as a run that was never stopped (the order of trajectories and the samples are drawn from
seeds fixed by epoch and update, not from a running generator).

Data-parallel: under ``torchrun`` (WORLD_SIZE > 1) each process solves its share of every update's
trajectories and the gradients are summed across processes (gloo on CPU, nccl on CUDA), so the
update equals the single-process one up to the order of floating-point sums.
"""

from __future__ import annotations

import ctypes
import io
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tactile_estimator.backends import BackendError
from tactile_estimator.config import EstimatorConfig, TrainerConfig
from tactile_estimator.io import atomic
from tactile_estimator.learning.baselines import blackbox_search, supervised_loss, unrolled_loss
from tactile_estimator.learning.checkpoint import (
    CHECKPOINT,
    OUTPUTS,
    TrainingError,
    TrainingInterrupted,
    TrainResult,
    _plain,
    finished_run,
    kept_row,
    write_log,
    write_model,
)
from tactile_estimator.learning.datasets import DatasetError
from tactile_estimator.learning.leo import leo_loss
from tactile_estimator.learning.runs import (
    SIGMA_FAMILIES,
    Theta,
    factors_for,
    load_runs,
    pooled_rmse,
    sigma_columns,
    solve_runs,
)
from tactile_estimator.networks.tactile import FactorWeights, TactileModel
from tactile_estimator.progress import progress as progress_bar

log = logging.getLogger(__name__)


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
        self.theta = Theta(self.model, estimator_config, config.learn, persistence=config.persistence == "model")
        self.train_paths, self.val_paths = list(train_paths), list(val_paths)
        started = time.perf_counter()
        self.runs = load_runs(self.train_paths, estimator_config, self.model, config.ee_truth)
        self.val_runs = (load_runs(self.val_paths, estimator_config, self.model, config.ee_truth,
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
        for family in SIGMA_FAMILIES:
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
            return supervised_loss(runs, self.theta, predictions), 0
        if method == "unroll":
            total = sum((unrolled_loss(run, self.theta, pred, self.config.unroll) for run, pred
                         in zip(runs, predictions, strict=True)), torch.zeros((), dtype=torch.float64))
            return total, len(runs)
        seeds = [self._seed(epoch, update, i) for i in indices]
        return leo_loss(runs, self.theta, predictions, self.config, seeds, self.timing), len(runs)

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
            factor_lists = [factors_for(r, self.theta, p) for r, p in zip(self.val_runs, predictions, strict=True)]
        solutions = solve_runs(self.val_runs, factor_lists, self.config.sampler, self.config.solver_iterations,
                               0, [0] * len(self.val_runs))
        self.solver_calls += len(self.val_runs)
        t, r = pooled_rmse(self.val_runs, solutions)
        self.timing["validation"] += time.perf_counter() - mark
        return {"val_rmse_translation_m": t, "val_rmse_rotation_rad": r}

    # ---------------------------------------------------------------- the loop
    def run(self, resume: bool = False) -> TrainResult:
        if self.config.method == "blackbox":
            return blackbox_search(self, resume, _StopRequest())
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
        row.update(sigma_columns(self.theta))
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
