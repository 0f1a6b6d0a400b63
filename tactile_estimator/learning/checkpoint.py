"""Checkpoints and outputs of a training run: what a run writes in its directory, and what it reads back.

``checkpoint.pt`` holds where the loop stands (θ, the optimiser, the history); ``training_log.csv``,
``learning_curves.png`` and the model (``weights.pt`` and ``model.yaml``) are the outputs; every
file is written through io.atomic. The loop that writes them is trainer.py; the writers here read
what they need of it through :class:`TrainerState`.
"""

from __future__ import annotations

import csv
import datetime
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from tactile_estimator.config import TrainerConfig
from tactile_estimator.io import atomic
from tactile_estimator.networks.tactile import DESCRIPTION, WEIGHTS, FactorWeights, TactileModel
from tactile_estimator.plotting import learning_curves_png

if TYPE_CHECKING:
    from tactile_estimator.learning.runs import Theta

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


class TrainerState(Protocol):
    """What the writers here and baselines.blackbox_search read of a trainer (trainer.Trainer)."""

    out_dir: Path
    command: str
    init_dir: str
    config: TrainerConfig
    model: TactileModel
    theta: Theta
    train_paths: list[Path]
    val_paths: list[Path]
    history: list[dict[str, Any]]
    solver_calls: int
    wall_s: float
    world: Any  # trainer.World: ``world.size`` processes
    progress: Callable[[str], None]

    def validate(self) -> dict[str, float]: ...

    def factor_weights(self) -> FactorWeights: ...

    def load_checkpoint(self) -> dict[str, Any]: ...

    def _save_checkpoint(self, optimiser: torch.optim.Optimizer | None, schedule: Any, epoch: int,
                         update: int, extra: dict[str, Any] | None = None) -> None: ...


def _plain(value: Any) -> Any:
    """Configuration as plain lists, dicts and scalars (what weights_only checkpoints may hold)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_outputs(trainer: TrainerState, weights: FactorWeights) -> None:
    """The model directory, the CSV log and the learning curves, each written atomically."""
    write_model(trainer, weights)
    write_log(trainer)


def write_model(trainer: TrainerState, weights: FactorWeights) -> None:
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


def write_log(trainer: TrainerState) -> None:
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

