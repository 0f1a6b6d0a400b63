"""The trainer's watch mode: retrain when new bags appear and hand each new model to the estimator.

A :class:`ModelWatch` looks at one or more bag directories. A bag counts once it is complete: a
rosbag2 directory once its ``metadata.yaml`` exists (the recorder writes it when it closes the
bag), a bare ``.mcap``/``.db3`` file once it has not changed for ``settle_s`` seconds. Each
complete bag is checked once (readable, with the tactile, end-effector and ground-truth topics);
a bag that fails is rejected with its one-line reason and never retried, and the others go on.

When ``min_new_bags`` accepted bags have arrived since the last round, a round trains with the
configured method (LEO by default) from the last accepted model, on every accepted bag so far
(``cumulative``) or on the new ones only, and writes ``OUT/model_NNNN/``. The validation figures of
the round's start and of the model it wrote (``keep``) decide whether the model is accepted
(``accept: improved``: the validation score of ``checkpoint.validation_score`` went down; ``always``:
every finished round). An accepted model becomes ``OUT/latest`` (a symlink, replaced
atomically) and is returned by :meth:`ModelWatch.poll` so the transport can publish it on
``~/model_updated``; a rejected one stays on disk for inspection and is not published.

Nothing learned is lost. ``OUT/watch_state.json`` (written atomically) records the bags seen, the
rejected ones with their reasons, and every round. A round trains in ``OUT/model_NNNN.partial/``;
if it is interrupted (SIGINT/SIGTERM), the trainer's checkpoint is there and the next start of the
watcher resumes that round before looking for new bags. A round that fails (a NaN loss, a solver
failure) is recorded with its error, its directory is kept as ``model_NNNN.failed`` and the
watcher waits for new bags; earlier models are untouched. A file that cannot be written (a full
disk) stops the watcher with an OutputError naming it, and the round resumes at the next start. The
output directory is checked when the watcher starts, and the temporary files of a watcher killed
while writing its state are removed then.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tactile_estimator.config import EstimatorConfig, TrainerConfig
from tactile_estimator.io import atomic, bags
from tactile_estimator.learning.checkpoint import CHECKPOINT, TrainingError, validation_score
from tactile_estimator.learning.datasets import DatasetError
from tactile_estimator.learning.runs import require_training_topics
from tactile_estimator.learning.trainer import train

log = logging.getLogger(__name__)

STATE = "watch_state.json"
LATEST = "latest"
BAG_SUFFIXES = (".mcap", ".db3")


class ModelWatch:
    """Bags in, model directories out; see the module's docstring."""

    def __init__(self, watch_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                 estimator_config: EstimatorConfig, config: TrainerConfig, init: str | Path | None = None,
                 val_paths: Sequence[Path] = (), progress: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.watch_dirs = [Path(d) for d in watch_dirs]
        for d in self.watch_dirs:
            if not d.is_dir():
                raise bags.BagError(f"watch directory {d} does not exist or is not a directory")
        self.out_dir = Path(out_dir)
        self.estimator_config, self.config = estimator_config, config
        self.init = str(init) if init else ""
        self.val_paths = list(val_paths)
        self.progress = progress or (lambda _text: None)
        self.clock = clock
        atomic.writable_directory(self.out_dir, "--out")
        for stale in atomic.remove_stale_temps(self.out_dir, [STATE]):
            log.warning("removed %s, left by a watcher that was killed while writing it", stale)
        self.state = self._load_state()
        self._sizes: dict[str, tuple[int, float]] = {}  # bare bag files: (size, first seen at that size)

    # ------------------------------------------------------------------ state
    def _load_state(self) -> dict[str, Any]:
        path = self.out_dir / STATE
        empty: dict[str, Any] = {"accepted": [], "rejected": {}, "rounds": [], "in_progress": None}
        if not path.exists():
            return empty
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise DatasetError(f"{path} is not a readable watch state ({error}); move it away to start over") from None
        return {**empty, **state}

    def _save_state(self) -> None:
        atomic.atomic_write_text(self.out_dir / STATE, json.dumps(self.state, indent=1))

    @property
    def latest_model(self) -> Path | None:
        """The last accepted model directory, or None before the first."""
        for record in reversed(self.state["rounds"]):
            if record.get("accepted"):
                return self.out_dir / record["model"]
        return None

    # ------------------------------------------------------------------ bags
    def _complete(self, path: Path) -> bool:
        if path.is_dir():
            return (path / "metadata.yaml").is_file()
        if path.suffix not in BAG_SUFFIXES or not path.is_file():
            return False
        size, now = path.stat().st_size, self.clock()
        seen = self._sizes.get(str(path))
        if seen is None or seen[0] != size:
            self._sizes[str(path)] = (size, now)
            return self.config.watch.settle_s <= 0
        return now - seen[1] >= self.config.watch.settle_s

    def scan(self) -> list[Path]:
        """Complete bags in the watched directories that were neither accepted nor rejected yet."""
        known = set(self.state["accepted"]) | set(self.state["rejected"])
        found = []
        for d in self.watch_dirs:
            for path in sorted(d.iterdir()):
                if path.name.startswith(".") or path.name.endswith(".partial") or str(path.resolve()) in known:
                    continue
                if (path.is_dir() or path.suffix in BAG_SUFFIXES) and self._complete(path):
                    found.append(path)
        return found

    def check(self, bag: Path) -> str | None:
        """Why ``bag`` cannot be trained on (one line), or None when it can."""
        try:
            require_training_topics(bag, self.estimator_config)
        except (DatasetError, bags.BagError) as error:
            return str(error)
        return None

    def _reject(self, bag: str, reason: str) -> None:
        self.state["rejected"][bag] = reason
        self.progress(f"bag rejected: {reason}")
        log.warning("bag %s rejected: %s", bag, reason)

    # ------------------------------------------------------------------ rounds
    def pending(self) -> list[str]:
        """Accepted bags that no finished round has trained on."""
        trained = {b for record in self.state["rounds"] for b in record["new_bags"]}
        return [b for b in self.state["accepted"] if b not in trained]

    def poll(self) -> Path | None:
        """Resume an interrupted round, take in new bags, train when enough arrived; the new model or None."""
        if self.state["in_progress"] is not None:
            return self._round(resume=True)
        for bag in self.scan():
            key = str(bag.resolve())
            reason = self.check(bag)
            if reason is None:
                self.state["accepted"].append(key)
                self.progress(f"new bag {bag}")
            else:
                self._reject(key, reason)
            self._save_state()
        new = self.pending()
        if len(new) < max(1, self.config.watch.min_new_bags):
            return None
        data = list(self.state["accepted"]) if self.config.watch.cumulative else new
        number = len(self.state["rounds"]) + 1
        self.state["in_progress"] = {"number": number, "bags": data, "new_bags": new,
                                     "init": str(self.latest_model or self.init or ""), "started": self.clock()}
        self._save_state()
        return self._round(resume=False)

    def _round(self, resume: bool) -> Path | None:
        job = self.state["in_progress"]
        name = f"model_{job['number']:04d}"
        partial = self.out_dir / f"{name}.partial"
        resume = resume and (partial / CHECKPOINT).is_file()
        if not resume and partial.exists():
            shutil.rmtree(partial)  # a round that stopped before its first checkpoint starts over
        paths = [Path(b) for b in job["bags"]]
        self.progress(f"round {job['number']}: {'resuming' if resume else 'training'} on {len(paths)} bags "
                      f"({len(job['new_bags'])} new), from {job['init'] or 'the shipped model'}")
        command = (f"tactile-estimator train --watch {' '.join(str(d) for d in self.watch_dirs)} "
                   f"--out {self.out_dir} (round {job['number']})")
        try:
            result = train(paths, self.val_paths, partial, self.estimator_config, self.config,
                           init=job["init"] or None, resume=resume, command=command, progress=self.progress)
        except (DatasetError, bags.BagError) as error:
            culprits = [b for b in job["bags"] if b == getattr(error, "bag", None)]
            for bag in culprits:
                self.state["accepted"].remove(bag)
                self._reject(bag, str(error))
            return self._failed(name, partial, str(error), retry=bool(culprits))
        except TrainingError as error:
            return self._failed(name, partial, str(error), retry=False)
        first, kept = result.history[0], result.kept
        improved = validation_score(kept, first) < validation_score(first, first)
        accepted = self.config.watch.accept == "always" or improved
        final = self.out_dir / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        atomic.fsync_directory(self.out_dir)
        record = {**{k: job[k] for k in ("number", "bags", "new_bags", "init")}, "model": name,
                  "accepted": accepted, "finished": self.clock(), "solver_calls": result.solver_calls,
                  "wall_s": result.wall_s, "start": _figures(first), "final": _figures(kept)}
        self.state["rounds"].append(record)
        self.state["in_progress"] = None
        self._save_state()
        figures = (f"validation {_describe(record['final'])} (start {_describe(record['start'])})")
        if not accepted:
            self.progress(f"round {job['number']}: {final} not accepted, {figures}; the estimator keeps its model")
            return None
        self._point_latest(name)
        self.progress(f"round {job['number']}: new model {final}, {figures}")
        return final

    def _failed(self, name: str, partial: Path, error: str, retry: bool) -> Path | None:
        """Keep what the round wrote, record why it failed, and wait for new bags (or retry without a bad one)."""
        job = self.state["in_progress"]
        if partial.exists():
            failed = self.out_dir / f"{name}.failed"
            if failed.exists():
                shutil.rmtree(failed)
            os.replace(partial, failed)
            atomic.fsync_directory(self.out_dir)
        self.state["in_progress"] = None
        if not retry:
            self.state["rounds"].append({**{k: job[k] for k in ("number", "bags", "new_bags", "init")},
                                         "model": f"{name}.failed", "accepted": False, "error": error,
                                         "finished": self.clock()})
        self._save_state()
        self.progress(f"round {job['number']} failed: {error}")
        log.warning("round %s failed: %s", job["number"], error)
        return None

    def _point_latest(self, name: str) -> None:
        link = self.out_dir / LATEST
        tmp = self.out_dir / f".{LATEST}.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(name)
        os.replace(tmp, link)
        atomic.fsync_directory(self.out_dir)

    def describe(self) -> str:
        rounds = self.state["rounds"]
        return (f"{len(self.state['accepted'])} bags accepted, {len(self.state['rejected'])} rejected, "
                f"{len(rounds)} rounds, {sum(1 for r in rounds if r.get('accepted'))} models accepted; "
                f"latest {self.latest_model or 'none'}")


def _figures(row: dict[str, Any]) -> dict[str, float]:
    return {"rmse_translation_m": float(row["val_rmse_translation_m"]),
            "rmse_rotation_rad": float(row["val_rmse_rotation_rad"])}


def _describe(figures: dict[str, float]) -> str:
    return f"{figures['rmse_translation_m'] * 1e3:.2f} mm / {math.degrees(figures['rmse_rotation_rad']):.2f} deg"
