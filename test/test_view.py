"""``tactile-estimator view``: the pictures a user looks at, and the one-line refusals."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tactile_estimator import cli, view
from tactile_estimator.config import load_estimator_config
from tactile_estimator.sim.pushing import SimulatedRun

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ros2-bags"
HEIGHT = 320  # a DIGIT frame's height: one picture's


@pytest.fixture(scope="module")
def truth_estimates(rect_run: SimulatedRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An estimates.csv in replay's format that holds the ground truth at every tactile frame."""
    path = tmp_path_factory.mktemp("estimates") / "estimates.csv"
    truth = {s.stamp_ns: s.pose for s in rect_run.ground_truth}
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stamp_ns", "step", "x", "y", "theta", "var_x", "var_y", "var_theta", "in_contact"])
        for step, frame in enumerate(rect_run.tactile):
            pose = truth[frame.stamp_ns]
            writer.writerow([frame.stamp_ns, step, *pose, 1e-6, 1e-6, 1e-4, 0])
    return path


def test_png_strip_with_given_estimates(rect_bag: Path, rect_run: SimulatedRun, truth_estimates: Path,
                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "strip.png"
    assert cli.main(["view", str(rect_bag), "--out", str(out), "--estimates", str(truth_estimates),
                     "--frames", "5"]) == 0
    assert capsys.readouterr().out.strip() == f"{out}: 5 pictures"
    strip = cv2.imread(str(out))
    assert strip.shape[0] == 5 * HEIGHT
    width = strip.shape[1]
    assert width > 2 * 240  # frame, difference, top view side by side
    top = strip[:, -HEIGHT:]
    # the estimate is the truth here: its red footprint is drawn over the black one, and both show
    red = (top[..., 2] > 180) & (top[..., 1] < 80) & (top[..., 0] < 80)
    assert red.sum() > 200


def test_contact_state_is_shown_where_the_object_is_touched(rect_bag: Path, rect_run: SimulatedRun,
                                                            truth_estimates: Path) -> None:
    config = load_estimator_config()
    recording = view._read(rect_bag, config)
    track = view.read_estimates(truth_estimates)
    contact = np.asarray(rect_run.in_contact)
    inside = [i for i in np.flatnonzero(contact) if contact[max(0, i - 3):i + 4].all()][::10][:3]
    apart = [i for i in np.flatnonzero(~contact) if i >= config.contact.background_frames
             and not contact[max(0, i - 3):i + 4].any()][:3]
    assert inside and apart
    chosen = sorted(inside + apart)
    pictures = dict(zip(chosen, view.render(recording, track, config, chosen), strict=True))
    for index, picture in pictures.items():
        diff = picture[:, 244:244 + 240]
        orange = (diff[..., 2] > 230) & (np.abs(diff[..., 1].astype(int) - 140) < 20) & (diff[..., 0] < 30)
        assert bool(orange[-40:].sum() > 30) == (index in inside), index  # the CONTACT label, bottom left
        bright = diff[40:-40].max(axis=2) > 200  # the imprint in the difference image
        assert bool(bright.sum() > 100) == (index in inside), index


def test_gif_runs_the_estimator_when_no_estimates_are_given(rect_bag: Path, rect_run: SimulatedRun,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "view.gif"
    assert cli.main(["view", str(rect_bag), "--out", str(out), "--every", "25"]) == 0
    gif = Image.open(io.BytesIO(out.read_bytes()))
    assert gif.format == "GIF"
    assert gif.n_frames == len(range(0, len(rect_run.tactile), 25))
    assert gif.size[1] == HEIGHT


def test_mp4(rect_bag: Path, truth_estimates: Path, tmp_path: Path) -> None:
    out = tmp_path / "view.mp4"
    assert cli.main(["view", str(rect_bag), "--out", str(out), "--estimates", str(truth_estimates),
                     "--every", "30"]) == 0
    video = cv2.VideoCapture(str(out))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    video.release()


@pytest.mark.parametrize("case", ["suffix", "missing_bag", "no_tactile", "bad_estimates", "missing_estimates"])
def test_bad_input_is_one_line_and_exit_2(case: str, rect_bag: Path, tmp_path: Path) -> None:
    bag, out, extra = str(rect_bag), str(tmp_path / "v.png"), []
    if case == "suffix":
        out = str(tmp_path / "v.txt")
    elif case == "missing_bag":
        bag = str(tmp_path / "missing")
    elif case == "no_tactile":
        bag = str(FIXTURES / "talker_mcap")
        extra = ["--config", str(_config_with_object(tmp_path))]
    elif case == "bad_estimates":
        (tmp_path / "e.csv").write_text("a,b\n1,2\n")
        extra = ["--estimates", str(tmp_path / "e.csv")]
    else:
        extra = ["--estimates", str(tmp_path / "none.csv")]
    done = subprocess.run([sys.executable, "-m", "tactile_estimator.cli", "view", bag, "--out", out, *extra],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("tactile-estimator: error: ")
    assert not Path(out).exists()


def _config_with_object(tmp_path: Path) -> Path:
    path = tmp_path / "estimator.yaml"
    path.write_text("estimator_node:\n  ros__parameters:\n    object: {shape: disc, size: [0.05]}\n")
    return path
