"""The simulated runs the accuracy figures are measured on, written down before any tuning.

Validation runs (seeds 5000-5008) are the accuracy runs that earlier work has looked at: models,
windows and sigmas were chosen on them, so their figures are optimistic. Held-out runs (seeds
9100-9111) are never used for model selection, early stopping or sigma tuning; they are only
replayed to report their figures beside the validation ones. A change tuned on held-out figures
spends them: pick new held-out seeds then, and say so.

Each set simulates ``runs_per_shape`` runs of every shape in ``SHAPES`` in turn, with seeds from
its first one upwards (``benchmarks.common.simulated_bags``), each of ``STEPS`` tactile frames.
"""

from __future__ import annotations

SHAPES = ("rect", "disc", "ellipse")
STEPS = 300

VALIDATION_SEED = 5000
VALIDATION_RUNS_PER_SHAPE = 3

HELDOUT_SEED = 9100
HELDOUT_RUNS_PER_SHAPE = 4

# Development runs: more runs to tune on beside the validation ones (seeds 8000-8011).
DEVELOPMENT_SEED = 8000
DEVELOPMENT_RUNS_PER_SHAPE = 4

# A second held-out set, written on 2026-12-02 before that day's tuning began. The first held-out
# set's per-object figures had been read (the ellipse with the camera was its weakest object), so
# work aimed at that object is reported on these runs too, which nothing was chosen on.
FRESH_HELDOUT_SEED = 9300
FRESH_HELDOUT_RUNS_PER_SHAPE = 4

# A third held-out set, written on 2026-12-02 (03:30) before that session's work. The first held-out
# set's ellipse runs with the camera were then looked at run by run to find why the tactile factors
# turned them, so that set is spent for the ellipse in the camera regime: claims about it are
# reported on the second and third sets.
THIRD_HELDOUT_SEED = 9500
THIRD_HELDOUT_RUNS_PER_SHAPE = 4

# More development runs, 8 per shape (seeds 8100-8123), tuned on like the others.
DEVELOPMENT_2_SEED = 8100
DEVELOPMENT_2_RUNS_PER_SHAPE = 8

# A fourth held-out set, written on 2026-12-03 (08:05) before that session's work, with 8 runs per
# shape: sets of 4 runs an object moved by more than the targets' margins. Nothing is chosen on it.
FOURTH_HELDOUT_SEED = 9700
FOURTH_HELDOUT_RUNS_PER_SHAPE = 8
