"""Replay of real rosbag2 files through the live path, and the CLI's behaviour on bad input."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tactile_estimator.adapters.replay import OUTPUT_NAMESPACE, replay_bag
from tactile_estimator.cli import main
from tactile_estimator.config import load_estimator_config
from tactile_estimator.estimator import Estimator
from tactile_estimator.factors import ObjectModel
from tactile_estimator.io import bags, messages
from tactile_estimator.networks.tactile import ModelError, TactileModel
from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.records import TactileFrame
from tactile_estimator.router import StreamRouter, tactile_topics

SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def model() -> TactileModel:
    return TactileModel.load()


def test_replay_writes_estimates_metrics_plot_and_bag(rect_bag: Path, model: TactileModel, tmp_path: Path) -> None:
    result = replay_bag(rect_bag, load_estimator_config(), model, tmp_path, write_bag=True)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("rmse_translation_m", "rmse_rotation_rad", "final_rmse_translation_m", "final_rmse_rotation_rad",
                "steps", "update_latency_ms", "dropped_inputs"):
        assert key in metrics
    assert metrics["steps"] == 150
    assert set(metrics["update_latency_ms"]) == {"p50", "p99", "max"}
    rows = (tmp_path / "estimates.csv").read_text().splitlines()
    assert rows[0].startswith("stamp_ns,step,x,y,theta,var_x,var_y,var_theta")
    assert len(rows) == 151
    assert (tmp_path / "paths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = bags.bag_topics(result.written_bag)
    assert written[f"{OUTPUT_NAMESPACE}/object_pose"] == messages.POSE_WITH_COVARIANCE_STAMPED
    poses = [m for m in bags.read_messages(result.written_bag, [f"{OUTPUT_NAMESPACE}/object_pose"])]
    assert len(poses) == 150
    first = messages.detection_to_record(poses[0].msg, poses[0].msgtype, poses[0].topic)
    np.testing.assert_allclose(first.pose, result.estimates[0].pose, atol=1e-9)


def test_cli_replay_prints_a_table(rect_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(rect_bag), "--out", str(tmp_path), "--disable-factor", "tactile"]) == 0
    out = capsys.readouterr().out
    assert "final mm" in out and rect_bag.name in out
    assert (tmp_path / rect_bag.name / "paths.png").exists()


def test_bare_mcap_file_replays(rect_bag: Path, tmp_path: Path) -> None:
    (mcap,) = rect_bag.glob("*.mcap")
    assert main(["replay", str(mcap), "--out", str(tmp_path), "--disable-factor", "tactile"]) == 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tactile_estimator.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_bag_without_expected_topics_exits_2_naming_them(recorded_bags: Path, tmp_path: Path) -> None:
    result = run_cli("replay", str(recorded_bags / "talker_mcap"), "--out", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "/ee_pose" in lines[0] and "/digit/image_raw" in lines[0] and "/topic" in lines[0]
    assert "Traceback" not in result.stderr


def test_bag_of_unknown_types_gets_one_line(recorded_bags: Path, tmp_path: Path) -> None:
    result = run_cli("replay", str(recorded_bags / "cdr_test_mcap"), "--out", str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_not_a_bag_and_truncated_bag_get_one_line(rect_bag: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a bag")
    result = run_cli("replay", str(text), "--out", str(tmp_path / "o1"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "notes.txt" in result.stderr
    (mcap,) = rect_bag.glob("*.mcap")
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    result = run_cli("replay", str(cut), "--out", str(tmp_path / "o2"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "cut.mcap" in result.stderr and "Traceback" not in result.stderr


def test_bad_messages_are_dropped_counted_and_the_estimate_goes_on(
    rect_bag: Path, model: TactileModel, tmp_path: Path
) -> None:
    """Garbage on every input stream costs only the bad messages."""
    original = list(bags.read_messages(rect_bag))
    tactile = [m for m in original if m.topic.startswith("/digit")]
    ee = [m for m in original if m.topic == "/ee_pose"]
    stamp = lambda m: messages.stamp_to_ns(m.msg.header.stamp)  # noqa: E731
    extra = []
    # a mono image, a wrong-size image and undecodable JPEG bytes, between real frames
    frame = messages.image_to_frame(tactile[10].msg, tactile[10].msgtype, tactile[10].topic)
    mono = messages.image_msg(TactileFrame(stamp(tactile[10]) + 1000, frame.image), encoding="rgb8")
    mono.encoding, mono.step, mono.data = "mono8", 240, mono.data[: 320 * 240]
    extra.append(("/digit/image_raw", messages.IMAGE, tactile[10].log_time_ns + 1000, mono))
    small = messages.image_msg(TactileFrame(stamp(tactile[20]) + 1000, frame.image[:100]))
    extra.append(("/digit/image_raw", messages.IMAGE, tactile[20].log_time_ns + 1000, small))
    junk = messages.compressed_image_msg(TactileFrame(stamp(tactile[30]) + 1000, frame.image))
    junk.data = np.frombuffer(b"\xff\xd8 not a jpeg", dtype=np.uint8)
    extra.append(("/digit/image_raw/compressed", messages.COMPRESSED_IMAGE, tactile[30].log_time_ns + 1000, junk))
    # a repeated tactile stamp and one jumping back
    extra.append(("/digit/image_raw/compressed", messages.COMPRESSED_IMAGE, tactile[40].log_time_ns + 1,
                  messages.compressed_image_msg(TactileFrame(stamp(tactile[40]), frame.image))))
    extra.append(("/digit/image_raw/compressed", messages.COMPRESSED_IMAGE, tactile[50].log_time_ns + 1,
                  messages.compressed_image_msg(TactileFrame(stamp(tactile[45]), frame.image))))
    # a NaN pose and a tilted pose on the end-effector stream
    extra.append(("/ee_pose", messages.POSE_STAMPED, ee[100].log_time_ns + 1,
                  messages.pose_stamped_msg(stamp(ee[100]) + 1000, [np.nan, 0.0, 0.0], "world")))
    tilted = messages.pose_stamped_msg(stamp(ee[200]) + 1000, [0.0, 0.0, 0.0], "world")
    tilted.pose.orientation.x, tilted.pose.orientation.w = np.sin(0.2), np.cos(0.2)
    extra.append(("/ee_pose", messages.POSE_STAMPED, ee[200].log_time_ns + 1, tilted))
    dirty = tmp_path / "dirty"
    bags.copy_bag_with(rect_bag, dirty, extra)

    clean = replay_bag(rect_bag, load_estimator_config(), model, tmp_path / "clean")
    result = replay_bag(dirty, load_estimator_config(), model, tmp_path / "out")
    dropped = result.metrics["dropped_inputs"]
    assert dropped == {"bad_image_encoding": 1, "bad_image_size": 1, "bad_image_data": 1, "duplicate_stamp": 1,
                       "out_of_order_stamp": 1, "nan_pose": 1, "non_planar_pose": 1}
    assert result.metrics["steps"] == clean.metrics["steps"] == 150
    np.testing.assert_allclose(result.smoothed_poses, clean.smoothed_poses, atol=1e-6)


def test_shipped_model_loads_without_pickle(tmp_path: Path) -> None:
    model = TactileModel.load()
    assert model.description["architecture"]["image_height"] == 320
    broken = tmp_path / "model"
    shutil.copytree(model_dir := Path(__file__).resolve().parents[1] / "models", broken)
    (broken / "weights.pt").write_bytes(b"garbage")
    result = run_cli("replay", "x", "--model", str(broken))
    assert result.returncode == 2 and "weights.pt" in result.stderr
    assert model_dir.exists()


def _model_copy(tmp_path: Path, edit=None) -> Path:
    """The shipped model copied to tmp_path/model, its model.yaml changed by ``edit`` if given."""
    broken = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL, broken)
    if edit is not None:
        description = yaml.safe_load((broken / "model.yaml").read_text())
        edit(description)
        (broken / "model.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
    return broken


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d["factor_weights"].pop("tactile_normal"), "factor_weights.tactile_normal"),
    (lambda d: d["factor_weights"].update(tactile_normal=[-0.1]), "factor_weights.tactile_normal"),
    (lambda d: d["factor_weights"].update(tactile_normal=[0.1, 0.2]), "factor_weights.tactile_normal"),
    (lambda d: d["factor_weights"].update(tactile_normal_corner=[0.0]), "factor_weights.tactile_normal_corner"),
    (lambda d: d["factor_weights"].update(tactile_normal_corner=[0.1, 0.2]), "factor_weights.tactile_normal_corner"),
    (lambda d: (d["architecture"].update(normal_hidden=0), d["factor_weights"].update(tactile_normal=[]),
                d["factor_weights"].update(tactile_normal_corner=[0.1])), "factor_weights.tactile_normal_corner"),
    (lambda d: d["architecture"].update(normal_hidden=-3), "architecture.normal_hidden"),
    (lambda d: d["architecture"].update(normal_hidden=0), "architecture.normal_hidden"),
])
def test_an_inconsistent_normal_head_is_refused_naming_the_file_and_field(tmp_path: Path, edit, field: str) -> None:
    broken = _model_copy(tmp_path, edit)
    result = run_cli("replay", "x", "--model", str(broken))
    assert result.returncode == 2, result.stderr
    assert "model.yaml" in result.stderr and field in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d["architecture"].update(downsample=0), "architecture.downsample"),
    (lambda d: d["architecture"].update(image_height="tall"), "architecture.image_height"),
    (lambda d: d["architecture"].update(channels=[16, -32, 64, 64]), "architecture.channels"),
    (lambda d: d["architecture"].update(embedding=10**9), "architecture.embedding"),
    (lambda d: d["factor_weights"].update(tactile=[-0.1, 0.1, 0.1]), "factor_weights.tactile"),
    (lambda d: d["factor_weights"].update(pushing=["a", "b", "c"]), "factor_weights.pushing"),
    (lambda d: d["factor_weights"].update(tactile=[0.1, 0.1]), "factor_weights.tactile"),
    (lambda d: d.pop("factor_weights"), "factor_weights"),
])
def test_a_model_with_values_out_of_range_is_refused_naming_the_field(tmp_path: Path, edit, field: str) -> None:
    broken = _model_copy(tmp_path, edit)
    with pytest.raises(ModelError, match=field.replace(".", r"\.")):
        TactileModel.load(broken)


@pytest.mark.parametrize("content", [b"", b"- a list\n", b"42\n", b"\xff\xfe not utf-8"])
def test_a_model_yaml_that_is_not_a_description_is_refused(tmp_path: Path, content: bytes) -> None:
    broken = _model_copy(tmp_path)
    (broken / "model.yaml").write_bytes(content)
    with pytest.raises(ModelError, match="model.yaml"):
        TactileModel.load(broken)


def test_weights_that_are_empty_or_not_finite_are_refused(tmp_path: Path) -> None:
    import torch

    broken = _model_copy(tmp_path)
    (broken / "weights.pt").write_bytes(b"")
    with pytest.raises(ModelError, match="weights.pt"):
        TactileModel.load(broken)
    state = torch.load(SHIPPED_MODEL / "weights.pt", weights_only=True)
    state["head.0.bias"][0] = float("nan")
    torch.save(state, broken / "weights.pt")
    with pytest.raises(ModelError, match="not finite"):
        TactileModel.load(broken)


def _bomb_image(stamp_ns: int) -> object:
    """A CompressedImage whose PNG header claims 20000x20000 pixels (its pixel data is garbage)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
    msg = messages.compressed_image_msg(TactileFrame(stamp_ns, np.zeros((2, 2, 3), np.uint8)))
    msg.format, msg.data = "png", np.frombuffer(png + chunk(b"IDAT", bytes(1000)) + chunk(b"IEND", b""), np.uint8)
    return msg


def test_undecodable_messages_and_image_bombs_in_a_bag_are_counted_drops(
    rect_bag: Path, model: TactileModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_estimator_config()
    raw = list(bags.read_raw(rect_bag))
    tactile = [t for topic, _, t, _ in raw if topic == "/digit/image_raw/compressed"]
    end = tactile[12]  # a dozen steps are enough; the whole bag takes seconds
    short = tmp_path / "short"
    with bags.BagWriter(short) as out:
        for topic, msgtype, t, data in raw:
            if t <= end:
                out.write_raw(topic, msgtype, t, data)
        out.write_raw("/ee_pose", messages.POSE_STAMPED, tactile[3] + 1, b"\x00\x01\x00\x00garbage")
        out.write_raw("/digit/image_raw/compressed", messages.COMPRESSED_IMAGE, tactile[5] + 1, b"\x00\x01\x00\x00")
        out.write_raw(config.topics.ground_truth, messages.POSE_STAMPED, tactile[7] + 1, b"garbage")
        out.write("/digit/image_raw/compressed", messages.COMPRESSED_IMAGE, tactile[9] + 1, _bomb_image(tactile[9] + 1))

    def imdecode(data: np.ndarray, flags: int) -> np.ndarray:  # the bomb must be refused from its header
        assert data.size < 100_000, "a bomb reached cv2.imdecode"
        return decode(data, flags)

    decode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", imdecode)
    result = replay_bag(short, config, model, tmp_path / "out")
    assert result.metrics["dropped_inputs"] == {"undecodable": 3, "bad_image_size": 1}
    assert result.metrics["steps"] == 13
    assert any("undecodable" in w for w in result.warnings)


def test_an_image_bomb_on_the_live_path_is_a_counted_drop(model: TactileModel, monkeypatch: pytest.MonkeyPatch) -> None:
    def imdecode(*args: object) -> None:
        raise AssertionError("cv2.imdecode was called")

    monkeypatch.setattr(cv2, "imdecode", imdecode)
    config = load_estimator_config()
    estimator = Estimator(config, model, ObjectModel.for_shape(Shape("rect", DEFAULT_SIZES["rect"])))
    router = StreamRouter(estimator)
    assert router.handle(tactile_topics(config)[1], messages.COMPRESSED_IMAGE, _bomb_image(1_000)) == []
    assert estimator.dropped == {"bad_image_size": 1}
