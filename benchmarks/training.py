"""LEO against its baselines on the same simulated data and budget, and the LEO epoch time.

Data (simulated once, cached under build/bench/training): 20 training runs, 4 validation runs
and 6 test runs of 300 steps (rect, disc, ellipse in turn). Every method starts from the shipped
model (the pretrained network, with the factor weights pretraining measured) and writes a model
directory. Figures per method:
- the validation RMSE it reports itself (batch solution of the validation graphs) for the model
  it wrote: the epoch with the best validation score (``keep: best``, the trainer's default; the
  start counts) or blackbox's best point; "kept" names that epoch (generation for blackbox), and
  the score is translation and rotation RMSE each over the start's, summed (blackbox's objective);
- the test RMSE of ``replay`` with its model on the 6 test bags (the live estimator, online
  estimates and the final smoothed trajectory): data no method has seen;
- wall time of the training updates (bag loading and the per-epoch validation excluded) and solver
  calls (validation solves included).

Methods: start, supervised, leo-gn, leo-isam2 (LEO with either sampler), leo-gn-plain (LEO fitting
the graph's σ itself, persistence: none), unroll, blackbox.

Usage: python -m benchmarks.training [--epochs 5] [--evaluations 65] [--methods leo-gn,blackbox,...] [--learn ...]
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import numpy as np
import yaml

from benchmarks.common import CACHE, append_results, simulated_bags
from tactile_estimator.adapters.replay import replay_bag
from tactile_estimator.config import load_estimator_config, load_trainer_config
from tactile_estimator.learning.checkpoint import validation_score
from tactile_estimator.learning.trainer import train
from tactile_estimator.networks.tactile import TactileModel

SHAPES = ["rect", "disc", "ellipse"]


REGIMES = {"camera": [], "tactile-only": ["camera"]}  # disabled factor families; the first detection seeds o_0


def test_rmse(model_dir: Path | None, bags: list[Path], out: Path, regime: str = "camera") -> dict[str, float]:
    config = load_estimator_config(None, {"disabled_factors": REGIMES[regime]})
    model = TactileModel.load(model_dir)
    online_t, online_r, final_t, final_r, counts = [], [], [], [], []
    for bag in bags:
        result = replay_bag(bag, config, model, out / bag.name)
        n = result.metrics["steps"]
        counts.append(n)
        online_t.append(result.metrics["rmse_translation_m"] ** 2 * n)
        online_r.append(result.metrics["rmse_rotation_rad"] ** 2 * n)
        final_t.append(result.metrics["final_rmse_translation_m"] ** 2 * n)
        final_r.append(result.metrics["final_rmse_rotation_rad"] ** 2 * n)
    total = sum(counts)
    return {"online_t": math.sqrt(sum(online_t) / total), "online_r": math.sqrt(sum(online_r) / total),
            "final_t": math.sqrt(sum(final_t) / total), "final_r": math.sqrt(sum(final_r) / total)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--unroll-epochs", type=int, default=2, help="unroll is ~10x slower per epoch")
    parser.add_argument("--evaluations", type=int, default=65,
                        help="blackbox objective evaluations (65: five times the solver calls of leo-isam2)")
    parser.add_argument("--methods", default="start,supervised,leo-gn,leo-gn-plain,leo-isam2,unroll,blackbox")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--learn", help="comma list: what LEO learns (default: config/trainer.yaml's learn)")
    parser.add_argument("--regime", choices=list(REGIMES), default="camera",
                        help="the graphs trained, validated and tested on: with camera factors, or tactile-only")
    parser.add_argument("--blackbox-learn", default="tactile,pushing",
                        help="what blackbox searches: every axis of both sigma families, its strongest form")
    parser.add_argument("--trainer-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="trainer keys for the LEO methods, e.g. learning_rate_sigma=0.1 (YAML values)")
    parser.add_argument("--suffix", default="", help="appended to the LEO methods' model directories and rows")
    args = parser.parse_args()
    leo_overrides = {}
    for item in args.trainer_set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--trainer-set: {item!r} is not KEY=VALUE")
        leo_overrides[key] = yaml.safe_load(value)
    train_bags = simulated_bags("training/train", SHAPES, 7, 300, 2000)[:20]
    val_bags = simulated_bags("training/val", SHAPES, 2, 300, 3000)[:4]
    test_bags = simulated_bags("training/test", SHAPES, 2, 300, 4000)
    out_root = CACHE / "training" / ("models" if args.regime == "camera" else f"models-{args.regime}")
    config = load_estimator_config(None, {"disabled_factors": REGIMES[args.regime]})
    rows = []
    timing_lines = []
    for method in args.methods.split(","):
        label = method + (args.suffix if method.startswith("leo") else "")
        out = out_root / label
        shutil.rmtree(out, ignore_errors=True)
        if method == "start":
            trainer_cfg = load_trainer_config(None, {"epochs": 0, "sampler": "gn", "threads": args.threads})
            result = train(train_bags, val_bags, out, config, trainer_cfg)
            model_dir, wall, calls, epochs = None, 0.0, 0, 0
        else:
            name, _, sampler = method.partition("-")
            sampler, _, variant = sampler.partition("-")
            values = {"method": name, "sampler": sampler or "gn", "threads": args.threads,
                      "epochs": args.unroll_epochs if name == "unroll" else args.epochs}
            if name == "blackbox":
                values["blackbox"] = {"evaluations": args.evaluations}
                values["learn"] = args.blackbox_learn.split(",")
            if name == "leo" and args.learn:
                values["learn"] = args.learn.split(",")
            if name == "leo":
                values.update(leo_overrides)
            if variant == "plain":
                values["persistence"] = "none"
            if name == "leo" and sampler == "isam2":
                values["epochs"] = min(args.epochs, 2)  # for the epoch time; iSAM2 samples the same posterior
            result = train(train_bags, val_bags, out, config, load_trainer_config(None, values))
            model_dir, wall, calls = out, result.wall_s, result.solver_calls
            epochs = values["epochs"] if name != "blackbox" else f"{args.evaluations} evals"
            timing = result.extra.get("timing")
            if timing:
                per_epoch = {k: v / max(1, values["epochs"]) for k, v in timing.items()}
                timing_lines.append(f"| {method} | {result.wall_s / max(1, values['epochs']):.1f} | "
                                    + " | ".join(f"{per_epoch[k]:.1f}" for k in
                                                 ("network", "solve_and_sample", "energy", "backward", "validation"))
                                    + " |")
        first, kept = result.history[0], result.kept
        test = test_rmse(model_dir, test_bags, CACHE / "training" / "replay" / label, args.regime)
        rows.append((label, epochs, kept, validation_score(kept, first), test, wall, calls))
        val_t, val_r = kept["val_rmse_translation_m"] * 1e3, math.degrees(kept["val_rmse_rotation_rad"])
        print(label, f"val {val_t:.2f} mm {val_r:.2f} deg (start {first['val_rmse_translation_m'] * 1e3:.2f}), "
              f"kept epoch {kept['epoch']}, test final {test['final_t'] * 1e3:.2f} mm "
              f"{math.degrees(test['final_r']):.2f} deg, {wall:.1f} s, {calls} solver calls", flush=True)
    lines = ["| method | budget | kept | val RMSE t (mm) | val RMSE r (deg) | val score | test online t (mm) | "
             "test online r (deg) | test final t (mm) | test final r (deg) | train wall (s) | solver calls "
             "(to the kept model) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method, epochs, kept, score, test, wall, calls in rows:
        lines.append(f"| {method} | {epochs} | {kept['epoch']} | {kept['val_rmse_translation_m'] * 1e3:.2f} | "
                     f"{np.degrees(kept['val_rmse_rotation_rad']):.2f} | {score:.3f} | "
                     f"{test['online_t'] * 1e3:.2f} | {np.degrees(test['online_r']):.2f} | "
                     f"{test['final_t'] * 1e3:.2f} | {np.degrees(test['final_r']):.2f} | {wall:.1f} | "
                     f"{calls} ({kept['solver_calls']}) |")
    body = "\n".join(lines)
    leo_learn = args.learn or ",".join(load_trainer_config().learn)
    body += f"\n\nRegime: {args.regime}. LEO learns: {leo_learn}; blackbox searches: {args.blackbox_learn}."
    if leo_overrides:
        body += f" LEO's trainer keys: {leo_overrides}."
    if timing_lines:
        body += ("\n\nSeconds per epoch (20 runs of 300 steps), and where they go:\n\n"
                 "| method | epoch | network | solve and sample | energy | backward | validation |\n"
                 "| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(timing_lines))
    append_results("Training: LEO against its baselines (20 training, 4 validation, 6 test runs of 300 steps)", body)


if __name__ == "__main__":
    main()
