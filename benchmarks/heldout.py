"""The training benchmark's models on every simulated run no method trained on: the 4 validation
runs, the 6 test runs and the 9 accuracy runs (19 runs of 300 steps), replayed as a user would.

Pooled RMSE over all poses of a set, final (the smoothed trajectory, re-solved at the end of the
bag) and online. Run ``python -m benchmarks.training`` first: it writes the models this reads.

``--heldout`` instead replays them on the held-out runs of benchmarks/seeds.py (seeds 9100+, never
used for selection) in both regimes, and gives the tactile-only final rotation of rect and ellipse.
``--models-regime tactile-only`` reads the models ``benchmarks.training --regime tactile-only`` wrote.

Usage: python -m benchmarks.heldout [--methods start,leo-isam2,...] [--heldout] [--models-regime R]
"""

from __future__ import annotations

import argparse
import math

from benchmarks import seeds
from benchmarks.accuracy import HELDOUT_SETS, run_set
from benchmarks.common import CACHE, append_results, simulated_bags
from benchmarks.training import SHAPES, test_rmse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="start,supervised,leo-gn,leo-gn-plain,leo-isam2,unroll,blackbox")
    parser.add_argument("--heldout", action="store_true", help="the held-out runs of benchmarks/seeds.py instead")
    parser.add_argument("--models-regime", default="camera", choices=["camera", "tactile-only"])
    parser.add_argument("--seeds", default="heldout", choices=sorted(HELDOUT_SETS),
                        help="with --heldout: which held-out set of benchmarks/seeds.py")
    args = parser.parse_args()
    models = CACHE / "training" / ("models" if args.models_regime == "camera" else f"models-{args.models_regime}")
    if args.heldout:
        heldout(args, models)
        return
    sets = {"validation (4)": simulated_bags("training/val", SHAPES, 2, 300, 3000)[:4],
            "test (6)": simulated_bags("training/test", SHAPES, 2, 300, 4000),
            "accuracy (9)": simulated_bags("accuracy", SHAPES, 3, 300, 5000)}
    lines = ["| method | " + " | ".join(f"{name} final mm / deg" for name in sets) + " | all 19 final mm / deg | "
             "all 19 online mm / deg |", "| --- | " + "--- | " * (len(sets) + 2)]
    for method in args.methods.split(","):
        model = None if method == "start" else models / method
        if model is not None and not (model / "model.yaml").is_file():
            raise SystemExit(f"no model for {method} under {models}: run python -m benchmarks.training first")
        cells, pooled = [], {"final_t": 0.0, "final_r": 0.0, "online_t": 0.0, "online_r": 0.0}
        count = 0
        for name, bags in sets.items():
            r = test_rmse(model, bags, CACHE / "heldout" / method / name.split()[0])
            cells.append(f"{r['final_t'] * 1e3:.2f} / {math.degrees(r['final_r']):.2f}")
            for key in pooled:
                pooled[key] += r[key] ** 2 * len(bags)  # every run has 300 steps: pooled by run count
            count += len(bags)
        pooled_cells = [f"{math.sqrt(pooled[f'{kind}_t'] / count) * 1e3:.2f} / "
                        f"{math.degrees(math.sqrt(pooled[f'{kind}_r'] / count)):.2f}" for kind in ("final", "online")]
        lines.append(f"| {method} | " + " | ".join(cells + pooled_cells) + " |")
        print(lines[-1], flush=True)
    append_results("Training benchmark's models on 19 held-out runs", "\n".join(lines))


def heldout(args: argparse.Namespace, models) -> None:
    runs = run_set(args.seeds, None, seeds.STEPS)
    bags, first_seed = runs.bags, runs.seed
    touch = [b for b in bags if "_disc_" not in b.name]  # rotation targets: a disc's spin is invisible to touch
    lines = ["| method | camera final mm / deg | tactile-only final mm / deg | tactile-only online mm / deg | "
             "tactile-only rect+ellipse final deg |", "| --- | --- | --- | --- | --- |"]
    for method in args.methods.split(","):
        model = None if method == "start" else models / method
        if model is not None and not (model / "model.yaml").is_file():
            raise SystemExit(f"no model for {method} under {models}: run python -m benchmarks.training first")
        out = CACHE / "heldout-seeds" / args.seeds / args.models_regime / method
        camera = test_rmse(model, bags, out / "camera", "camera")
        tactile = test_rmse(model, bags, out / "tactile-only", "tactile-only")
        rotation = test_rmse(model, touch, out / "tactile-only-touch", "tactile-only")["final_r"]
        lines.append(f"| {method} | {camera['final_t'] * 1e3:.2f} / {math.degrees(camera['final_r']):.2f} | "
                     f"{tactile['final_t'] * 1e3:.2f} / {math.degrees(tactile['final_r']):.2f} | "
                     f"{tactile['online_t'] * 1e3:.2f} / {math.degrees(tactile['online_r']):.2f} | "
                     f"{math.degrees(rotation):.2f} |")
        print(lines[-1], flush=True)
    body = "\n".join(lines) + (
        f"\n\n{len(bags)} held-out runs (seeds {first_seed}+, {seeds.STEPS} steps, rect, disc and ellipse), "
        "pooled "
        f"RMSE; models trained in the {args.models_regime} regime by benchmarks.training.")
    append_results("Training benchmark's models on the held-out seeds, both regimes (issue 18)", body)


if __name__ == "__main__":
    main()
