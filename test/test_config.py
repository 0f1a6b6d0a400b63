"""The configuration schema: the shipped file is valid, bad keys are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tactile_estimator.config import ConfigError, EstimatorConfig, load_estimator_config

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_parameter_file_matches_the_defaults() -> None:
    assert load_estimator_config(ROOT / "config" / "estimator.yaml") == EstimatorConfig()


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"estimator_node": {"ros__parameters": {"topics": {"tactle": "/x"}}}}))
    with pytest.raises(ConfigError, match=r"topics\.tactle: unknown parameter"):
        load_estimator_config(path)


def test_ill_typed_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"estimator_node": {"ros__parameters": {"tactile_offsets": ["one"]}}}))
    with pytest.raises(ConfigError, match=r"tactile_offsets\[0\]: expected an integer"):
        load_estimator_config(path)


def test_dotted_ros_parameter_names_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"keyframe.every_n_frames": 3}}}))
    assert load_estimator_config(path).keyframe.every_n_frames == 3


def test_unknown_factor_family_is_rejected() -> None:
    with pytest.raises(ConfigError, match="disabled_factors: 'tactil' is unknown"):
        load_estimator_config(None, {"disabled_factors": ["tactil"]})


def test_missing_node_section_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump({"trainer_node": {"ros__parameters": {"epochs": 3}}}))
    with pytest.raises(ConfigError, match="no section for node 'estimator_node'"):
        load_estimator_config(path)


def test_gauss_newton_backend_settings_are_checked() -> None:
    assert load_estimator_config(None, {"backend": "gn"}).backend == "gn"
    with pytest.raises(ConfigError, match="backend: 'gtsam' is unknown; expected one of isam2, gn"):
        load_estimator_config(None, {"backend": "gtsam"})
    with pytest.raises(ConfigError, match="gauss_newton: window must be at least 2"):
        load_estimator_config(None, {"gauss_newton": {"window": 1}})


def test_final_iterations_must_not_be_negative() -> None:
    assert load_estimator_config(None, {"final_iterations": 0}).final_iterations == 0
    with pytest.raises(ConfigError, match="final_iterations: -1 must be 0 or more"):
        load_estimator_config(None, {"final_iterations": -1})


@pytest.mark.parametrize("overrides", [
    {"isam2": {"relinearize_skip": 0}},  # gtsam divides by it: SIGFPE, no message
    {"isam2": {"relinearize_threshold": -1.0}},
    {"max_tilt_rad": -0.1},  # every pose would be "not planar"
    {"image_height": 0},
    {"image_width": 100000},
    {"ee_max_gap_s": -1.0},
    {"ee_max_gap_s": float("nan")},
    {"final_iterations": 1000000},
    {"network_threads": 0},
    {"noise": {"contact": -0.001}},
    {"initial_object_pose": [0.0, float("nan"), 0.0]},
])
def test_numbers_out_of_range_are_refused_naming_the_key(overrides: dict) -> None:
    key = next(iter(overrides))
    inner = overrides[key]
    name = f"{key}.{next(iter(inner))}" if isinstance(inner, dict) else key
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        load_estimator_config(None, overrides)
