"""What the figures show: legends, layering, both errors, the run's settings, readable ticks, the kept epoch."""

from __future__ import annotations

import io
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest

from tactile_estimator import plotting
from tactile_estimator.metrics import pose_errors
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.sim.pushing import simulate_run


@pytest.fixture(scope="module")
def disc_inputs() -> dict:
    """A simulated disc run's truth, with an online and a smoothed estimate off it by known amounts."""
    run = simulate_run(Shape("disc", DEFAULT_SIZES["disc"]), steps=120, seed=7)
    stamps = np.array([s.stamp_ns for s in run.ground_truth])
    truth = np.array([s.pose for s in run.ground_truth])
    rng = np.random.default_rng(0)
    online = truth + rng.normal(0.0, [0.002, 0.002, 0.02], truth.shape)
    smoothed = truth + rng.normal(0.0, [0.0005, 0.0005, 0.005], truth.shape)
    return dict(title="run_0007_disc (disc)", shape=Shape("disc", DEFAULT_SIZES["disc"]), truth=(stamps, truth),
                online=(stamps, online), smoothed=(stamps, smoothed), camera=truth[::40],
                contact=np.asarray(run.in_contact, dtype=bool), errors=pose_errors(online, truth))


def _figure(inputs: dict, **kwargs: object) -> plt.Figure:
    return plotting.replay_figure(inputs["title"], inputs["shape"], inputs["truth"], inputs["online"],
                                  inputs["smoothed"], inputs["camera"], inputs["contact"], inputs["errors"], **kwargs)


def test_paths_legend_names_every_layer(disc_inputs: dict) -> None:
    fig = _figure(disc_inputs)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["ground-truth footprints", "ground truth", "smoothed footprints", "in contact",
                      "online estimate", "smoothed (final)", "camera detections"]
    plt.close(fig)


def test_online_path_is_drawn_over_the_contact_marks(disc_inputs: dict) -> None:
    fig = _figure(disc_inputs)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert lines["online estimate"].get_zorder() > lines["in contact"].get_zorder()
    band = lines["in contact"].get_xydata()
    assert np.isnan(band[~disc_inputs["contact"]]).all() and np.isfinite(band[disc_inputs["contact"]]).all()
    plt.close(fig)


def test_smoothed_error_is_plotted_beside_the_online_one(disc_inputs: dict) -> None:
    fig = _figure(disc_inputs)
    translation, rotation = fig.axes[1], fig.axes[2]
    expected = pose_errors(disc_inputs["smoothed"][1], disc_inputs["truth"][1])
    for ax, online, smoothed in ((translation, disc_inputs["errors"][0] * 1e3, expected[0] * 1e3),
                                 (rotation, np.degrees(disc_inputs["errors"][1]), np.degrees(expected[1]))):
        lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
        np.testing.assert_allclose(lines["online"], online)
        np.testing.assert_allclose(lines["smoothed (final)"], smoothed)
    plt.close(fig)


def test_title_says_the_backend_and_the_ablation(disc_inputs: dict) -> None:
    fig = _figure(disc_inputs, backend="gn", disabled=["camera", "tactile_normal"])
    assert fig.axes[0].get_title() == "run_0007_disc (disc)\nbackend gn, factors off: camera, tactile_normal"
    plt.close(fig)
    assert plotting.replay_title("b (rect)", "isam2") == "b (rect)\nbackend isam2, all factors"


def _overlapping(labels: list) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels if t.get_visible() and t.get_text()]
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


@pytest.mark.parametrize("kind", ["disc", "rect"])
def test_tick_labels_do_not_overlap(disc_inputs: dict, kind: str) -> None:
    inputs = dict(disc_inputs)
    if kind == "rect":  # a long, narrow push: the other extreme of aspect
        truth = inputs["truth"][1].copy()
        truth[:, 0] = np.linspace(0.0, 0.4, len(truth))
        inputs.update(truth=(inputs["truth"][0], truth), online=(inputs["online"][0], truth),
                      smoothed=(inputs["smoothed"][0], truth), shape=Shape("rect", DEFAULT_SIZES["rect"]))
    fig = _figure(inputs)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert len([t for t in ax.get_xticklabels() if t.get_text()]) >= 2
    assert _overlapping(ax.get_xticklabels()) == [] and _overlapping(ax.get_yticklabels()) == []
    plt.close(fig)


def test_plot_replay_writes_a_png(disc_inputs: dict) -> None:
    buffer = io.BytesIO()
    plotting.plot_replay(buffer, disc_inputs["title"], disc_inputs["shape"], disc_inputs["truth"],
                         disc_inputs["online"], disc_inputs["smoothed"], disc_inputs["camera"],
                         disc_inputs["contact"], None)
    assert buffer.getvalue()[:4] == b"\x89PNG"


HISTORY = [
    {"epoch": 0, "loss": float("nan"), "val_rmse_translation_m": 0.004, "val_rmse_rotation_rad": 0.05,
     "sigma_tactile_x": 0.002, "sigma_pushing_x": 0.01},
    {"epoch": 1, "loss": 3.0, "val_rmse_translation_m": 0.003, "val_rmse_rotation_rad": 0.04,
     "sigma_tactile_x": 0.0018, "sigma_pushing_x": 0.012},
    {"epoch": 2, "loss": 2.5, "val_rmse_translation_m": 0.0035, "val_rmse_rotation_rad": 0.045,
     "sigma_tactile_x": 0.0017, "sigma_pushing_x": 0.013},
]


def test_learning_curves_mark_the_kept_epoch_and_show_sigma() -> None:
    fig = plotting.learning_curves_figure(HISTORY, "leo", kept_epoch=1)
    assert len(fig.axes) == 4
    for ax in fig.axes:
        kept = [line for line in ax.get_lines() if line.get_label() == "kept: 1"]
        assert len(kept) == 1 and list(kept[0].get_xdata()) == [1, 1]
    sigma = fig.axes[3]
    assert sigma.get_ylabel() == "learned σ" and sigma.get_yscale() == "log"
    curves = {line.get_label(): line.get_ydata() for line in sigma.get_lines()
              if not line.get_label().startswith("kept")}
    np.testing.assert_allclose(curves["tactile_x"], [0.002, 0.0018, 0.0017])
    assert fig.axes[2].get_ylabel() == "training loss" and "epoch 1" in fig._suptitle.get_text()
    plt.close(fig)


def test_learning_curves_label_blackbox_score() -> None:
    rows = [{**row, "loss": score} for row, score in zip(HISTORY, [2.0, 1.8, 1.9], strict=True)]
    fig = plotting.learning_curves_figure(rows, "blackbox", kept_epoch=1)
    assert fig.axes[2].get_ylabel() == "validation score (RMSE / start, summed)"
    assert fig.axes[2].get_xlabel() == "generation"
    np.testing.assert_allclose(fig.axes[2].get_lines()[0].get_ydata(), [2.0, 1.8, 1.9])  # the start's score counts
    plt.close(fig)
    assert plotting.learning_curves_png(rows, "blackbox")[:4] == b"\x89PNG"
