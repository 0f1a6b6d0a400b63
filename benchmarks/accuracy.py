"""Accuracy on simulated runs the shipped model never saw, with the factor ablation of issue 2.

Variants: all factors, without tactile, without camera. The shipped model was trained on seeds
0-23; these runs use seeds from 5000 upwards. ``--offsets A,B,C ...`` instead sweeps the tactile
window (the step offsets that get a tactile factor) against the same runs without tactile factors.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from benchmarks.common import append_results, simulated_bags
from tactile_estimator.adapters.replay import replay_bag
from tactile_estimator.config import load_estimator_config
from tactile_estimator.networks.tactile import TactileModel

VARIANTS = {"all factors": [], "without tactile": ["tactile"], "without camera": ["camera"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs-per-shape", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--model", default=None)
    parser.add_argument("--offsets", nargs="+", default=None, metavar="A,B,...",
                        help="sweep tactile windows, e.g. 1,2,4,8,16 1,2,4 (instead of the ablation)")
    args = parser.parse_args()
    shapes = ["rect", "disc", "ellipse"]
    bags = simulated_bags("accuracy", shapes, args.runs_per_shape, args.steps, args.seed)
    model = TactileModel.load(args.model)
    if args.offsets:
        sweep_offsets(args, bags, model)
        return
    figures: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant, disabled in VARIANTS.items():
            config = load_estimator_config(None, {"disabled_factors": disabled})
            for bag in bags:
                result = replay_bag(bag, config, model, f"{tmp}/{variant}/{bag.name}")
                figures.setdefault((variant, result.shape.kind), []).append(result.metrics)

    def mean(variant: str, kind: str | None, key: str) -> float:
        kinds = shapes if kind is None else [kind]
        return float(np.mean([m[key] for k in kinds for m in figures[(variant, k)]]))

    rows = ["| object | factors | online RMSE mm | online RMSE deg | final RMSE mm | final RMSE deg |",
            "| --- | --- | --- | --- | --- | --- |"]
    for kind in [*shapes, None]:
        for variant in VARIANTS:
            rows.append(
                f"| {kind or 'all'} | {variant} | {mean(variant, kind, 'rmse_translation_m') * 1e3:.2f} | "
                f"{np.degrees(mean(variant, kind, 'rmse_rotation_rad')):.2f} | "
                f"{mean(variant, kind, 'final_rmse_translation_m') * 1e3:.2f} | "
                f"{np.degrees(mean(variant, kind, 'final_rmse_rotation_rad')):.2f} |"
            )
    gain_t = 1 - mean("all factors", None, "final_rmse_translation_m") / mean(
        "without tactile", None, "final_rmse_translation_m")
    gain_r = 1 - mean("all factors", None, "final_rmse_rotation_rad") / mean(
        "without tactile", None, "final_rmse_rotation_rad")
    body = "\n".join(rows) + (
        f"\n\n{len(bags)} runs ({args.runs_per_shape} per object, {args.steps} steps, seeds {args.seed}+). "
        f"Tactile factors lower the final RMSE by {gain_t:.0%} in translation and {gain_r:.0%} in rotation "
        "(target: at least 30 %)."
    )
    append_results("Accuracy and factor ablation (issue 2)", body)


def sweep_offsets(args: argparse.Namespace, bags: list, model: TactileModel) -> None:
    variants = {"without tactile": {"disabled_factors": ["tactile"]}}
    for text in args.offsets:
        variants[f"offsets {text}"] = {"tactile_offsets": [int(o) for o in text.split(",")]}
    figures: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in variants.items():
            config = load_estimator_config(None, overrides)
            for bag in bags:
                figures.setdefault(name, []).append(replay_bag(bag, config, model, f"{tmp}/{bag.name}").metrics)
            print(name, flush=True)

    def mean(name: str, key: str) -> float:
        return float(np.mean([m[key] for m in figures[name]]))

    base_t, base_r = mean("without tactile", "final_rmse_translation_m"), mean("without tactile",
                                                                             "final_rmse_rotation_rad")
    rows = ["| tactile window | online RMSE mm | online RMSE deg | final RMSE mm | final RMSE deg | "
            "gain translation | gain rotation | worst run final mm |", "|" + " --- |" * 8]
    for name in variants:
        t, r = mean(name, "final_rmse_translation_m"), mean(name, "final_rmse_rotation_rad")
        worst = max(m["final_rmse_translation_m"] for m in figures[name])
        rows.append(f"| {name} | {mean(name, 'rmse_translation_m') * 1e3:.2f} | "
                    f"{np.degrees(mean(name, 'rmse_rotation_rad')):.2f} | {t * 1e3:.2f} | {np.degrees(r):.2f} | "
                    f"{1 - t / base_t:.0%} | {1 - r / base_r:.0%} | {worst * 1e3:.2f} |")
    body = "\n".join(rows) + (
        f"\n\n{len(bags)} runs ({args.runs_per_shape} per object, {args.steps} steps, seeds {args.seed}+), "
        "iSAM2, mean over runs; gains are the final RMSE's against the same runs without tactile factors.")
    append_results("Tactile window: which step offsets get a tactile factor (issue 2)", body)


if __name__ == "__main__":
    main()
