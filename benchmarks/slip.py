"""How much of the error left in the tactile-only regime follows the contact's slip (issue 18).

The pushing factor (factors/pushing.py) is the sticking contact's: the object's surface moves with the
tip at the contact. The simulator's contact slides whenever the sticking force would leave the
friction cone, with a friction coefficient drawn per run (0.2 to 0.5) that the estimator does not
know. A slide along a flat face leaves the tactile image unchanged, so neither tactile factor sees it.

For each run of a tuned set, this re-simulates the run from its seed to read its physical parameters
(friction μ, the fraction of contact time spent sliding), replays it with the shipped model in both
regimes, and gives per object the rank correlation of the final error with the slide fraction and
the mean error of the runs above and below the object's median slide fraction. Tuned sets only:
the per-run figures of a held-out set would spend it.

Usage: python -m benchmarks.slip [--set development-2] [--model DIR]
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
from scipy import stats

from benchmarks.accuracy import REGIMES, run_set
from benchmarks.common import append_results
from tactile_estimator.adapters.replay import replay_bag
from tactile_estimator.config import load_estimator_config
from tactile_estimator.networks.tactile import TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.sim.pushing import simulate_run

TUNED_SETS = ("validation", "development", "development-2")
KEYS = ("final_rmse_translation_m", "final_rmse_rotation_rad", "rmse_translation_m", "rmse_rotation_rad")


def run_seed(name: str) -> tuple[int, str]:
    """(seed, object) from a benchmark bag's name, run_SEED_OBJECT_STEPS."""
    _, seed, kind, _ = name.split("_")
    return int(seed), kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=TUNED_SETS, default="development-2")
    parser.add_argument("--model", default=None, metavar="DIR")
    args = parser.parse_args()
    runs = run_set(args.set, None, 300)
    model = TactileModel.load(args.model)
    rows = ["| run | object | μ | slide fraction | tactile-only final mm / ° | tactile-only online mm / ° | "
            "camera final mm / ° |", "|" + " --- |" * 7]
    per_object: dict[str, list[tuple[float, dict[str, list[float]]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for bag in runs.bags:
            seed, kind = run_seed(bag.name)
            params = simulate_run(Shape(kind, DEFAULT_SIZES[kind]), steps=runs.steps, seed=seed).params
            figures = {}
            for regime, disabled in REGIMES.items():
                config = load_estimator_config(None, {"disabled_factors": disabled})
                m = replay_bag(bag, config, model, f"{tmp}/{regime}/{bag.name}").metrics
                figures[regime] = [m[k] for k in KEYS]
            slide = float(params["slide_fraction"])
            per_object.setdefault(kind, []).append((slide, figures))
            t, c = figures["tactile-only"], figures["camera"]
            rows.append(f"| {seed} | {kind} | {params['mu']:.2f} | {slide:.2f} | {t[0] * 1e3:.2f} / "
                        f"{np.degrees(t[1]):.2f} | {t[2] * 1e3:.2f} / {np.degrees(t[3]):.2f} | "
                        f"{c[0] * 1e3:.2f} / {np.degrees(c[1]):.2f} |")
            print(rows[-1], flush=True)
    summary = ["| object | regime | ρ(slide, final mm) | ρ(slide, final °) | final mm / °, runs sliding less | "
               "final mm / °, runs sliding more |", "|" + " --- |" * 6]
    for kind, entries in per_object.items():
        slides = np.array([s for s, _ in entries])
        more = slides > np.median(slides)
        for regime in REGIMES:
            errors = np.array([f[regime] for _, f in entries])
            rho_t = stats.spearmanr(slides, errors[:, 0]).statistic
            rho_r = stats.spearmanr(slides, errors[:, 1]).statistic
            low, high = errors[~more].mean(0), errors[more].mean(0)
            summary.append(f"| {kind} | {regime} | {rho_t:.2f} | {rho_r:.2f} | {low[0] * 1e3:.2f} / "
                           f"{np.degrees(low[1]):.2f} | {high[0] * 1e3:.2f} / {np.degrees(high[1]):.2f} |")
    body = "\n".join(summary) + "\n\n" + "\n".join(rows) + (
        f"\n\n{runs.describe()}, iSAM2, the shipped model unless --model. ρ: Spearman's rank correlation over "
        "an object's runs; the split is at the object's median slide fraction.")
    append_results("Error against the contact's slip, per run (issue 18)", body)


if __name__ == "__main__":
    main()
