"""The iSAM2 callbacks: each family's float form against its torch definition on one factor.

gtsam's CustomFactor calls back into Python once per factor at every linearization, so a callback
handles one factor. backends/isam2.py keeps a float form for the families whose callbacks run in
the live path (``CALLBACKS``) and calls the family's definition on a batch of one for any other
(``definition_callback``). This measures both on the same factor, residual and Jacobians, with the
poses of a contact on each shape: the figure that justifies the second form.

Usage: python -m benchmarks.callbacks [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gtsam
import numpy as np

from benchmarks.common import append_results
from tactile_estimator.backends.isam2 import CALLBACKS, definition_callback, gtsam_key
from tactile_estimator.factors import FAMILIES, Factor, ObjectModel
from tactile_estimator.objects import DEFAULT_SIZES, Shape

POSES = {("o", 0): (0.0, 0.0, 0.1), ("o", 1): (0.001, 0.0, 0.11), ("e", 0): (-0.06, 0.01, 0.05),
         ("e", 1): (-0.059, 0.01, 0.05)}
MEASUREMENTS = {"tactile": np.array([0.001, 0.0, 0.01]), "tactile_normal": np.array([0.02])}
# The pushing factor with friction, its mode decided on a mean motion 63° off the push: on both shapes the
# contact slides (its residual differs from the sticking one).
SLIDING_FRICTION, SLIDING_MOTION = 0.3, np.array([0.0005, 0.001])


def microseconds(callback, values: gtsam.Values, n_keys: int, calls: int, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean time of one call with Jacobians requested."""
    for _ in range(50):
        callback(None, values, [None] * n_keys)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            callback(None, values, [None] * n_keys)
        times.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per timing")
    args = parser.parse_args()
    rows = ["| family | object | float form µs | definition µs | definition / float |",
            "| --- | --- | --- | --- | --- |"]
    cases = [(family, 0.0) for family in CALLBACKS] + [("pushing", SLIDING_FRICTION)]
    for family, friction in cases:
        declared = FAMILIES[family]
        kinds = declared.keys
        keys = tuple((kind, 0 if kinds[:i].count(kind) == 0 else 1) for i, kind in enumerate(kinds))
        measurement = SLIDING_MOTION if friction else MEASUREMENTS.get(family, np.zeros(0))
        for shape in ("rect", "ellipse"):
            model = ObjectModel.for_shape(Shape(shape, DEFAULT_SIZES[shape]), friction=friction)
            factor = Factor(family, keys, measurement, np.ones(declared.dim), model)
            gkeys = [gtsam_key(k) for k in keys]
            values = gtsam.Values()
            for key, gkey in zip(keys, gkeys, strict=True):
                values.insert(gkey, gtsam.Pose2(*POSES[key]))
            fast = microseconds(CALLBACKS[family](factor, gkeys), values, len(gkeys), args.calls)
            slow = microseconds(definition_callback(factor, gkeys), values, len(gkeys), args.calls)
            name = f"{family}, μ {friction:g}, sliding" if friction else family
            rows.append(f"| {name} | {shape} | {fast:.1f} | {slow:.1f} | {slow / fast:.0f}x |")
            print(rows[-1], flush=True)
    body = "\n".join(rows) + (
        "\n\nOne factor per call, residual and Jacobians, median of 5 timings of the mean over "
        f"{args.calls} calls; the definition is the family's torch form on a batch of one "
        "(backends/isam2.py definition_callback).")
    append_results("iSAM2 callbacks: float forms against the definitions (issue 22)", body)


if __name__ == "__main__":
    main()
