"""Pretraining from real bags: a loadable model with its description; bags without ground truth are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tactile_estimator.config import ConfigError, load_estimator_config
from tactile_estimator.factors.tactile import relative_sensor_motion
from tactile_estimator.io import bags
from tactile_estimator.learning.datasets import DatasetError, load_trajectory, tactile_pairs
from tactile_estimator.learning.pretrain import (
    frame_normals,
    inflation,
    lag_one_correlation,
    normal_sigma,
    pair_set,
    pretrain,
    pushing_residuals,
    pushing_sigmas,
    tactile_sigmas,
)
from tactile_estimator.networks.tactile import Architecture, TactileModel, TactileNet


def test_pairs_stay_inside_contact_episodes(rect_bag: Path) -> None:
    trajectory = load_trajectory(rect_bag, load_estimator_config(), Architecture())
    i, j, targets = tactile_pairs(trajectory, [1, 4])
    assert len(i) > 50
    assert np.all(trajectory.episode[i] == trajectory.episode[j]) and np.all(trajectory.episode[i] >= 0)
    expected = relative_sensor_motion(trajectory.truth[i], trajectory.ee[i], trajectory.truth[j], trajectory.ee[j])
    np.testing.assert_allclose(targets, expected)


def test_pushing_sigmas_inflate_the_persistent_moment_row_only(rect_bag: Path) -> None:
    """The moment row's model error persists through a push (lag-one correlation above 0.6: ×2 at
    least); x and y, the end-effector's white noise, keep their RMS at ground truth."""
    t = load_trajectory(rect_bag, load_estimator_config(), Architecture())
    _, r = pushing_residuals(t)
    rms = np.sqrt(np.mean(r**2, axis=0))
    sigmas, rho = map(np.array, pushing_sigmas([t]))
    np.testing.assert_allclose(sigmas[:2], rms[:2])
    assert sigmas[2] > 2 * rms[2] and rho[2] > 0.6
    np.testing.assert_allclose(sigmas, rms * np.sqrt((1 + rho) / (1 - rho)))


def test_persistence_inflation_follows_the_lag_one_correlation() -> None:
    """√((1 + ρ) / (1 - ρ)): about 1 for white noise, about √19 for an AR(1) sequence with ρ = 0.9."""
    rng = np.random.default_rng(0)
    white = rng.normal(size=20000)
    persistent = np.zeros(20000)
    for k in range(1, len(persistent)):
        persistent[k] = 0.9 * persistent[k - 1] + rng.normal()
    errors = np.stack([white, persistent, -white], axis=1)
    errors[:, 2] = white - np.roll(white, 1)  # lag-one correlation -0.5: clipped to 0, no inflation
    widening = inflation(lag_one_correlation(errors[:-1], errors[1:]))
    np.testing.assert_allclose(widening, [1.0, np.sqrt(19.0), 1.0], rtol=0.05)


def test_tactile_sigmas_inflate_a_persistent_network_error(rect_bag: Path) -> None:
    """A network that always answers zero motion is wrong by the whole, smooth, motion: its error
    persists from step to step, so its σ is far above its RMS error times √(offsets)."""
    t = load_trajectory(rect_bag, load_estimator_config(), Architecture())
    net = TactileNet(Architecture())
    torch.nn.init.zeros_(net.head[-1].weight)
    torch.nn.init.zeros_(net.head[-1].bias)
    offsets = [1, 2, 4]
    pairs = pair_set([t], offsets)
    rms = pairs.targets.double().pow(2).mean(0).sqrt().numpy()
    sigmas, rho = map(np.array, tactile_sigmas(net, [t], offsets))
    expected = np.maximum(rms * np.sqrt(len(offsets)) * np.sqrt((1 + rho) / (1 - rho)), 1e-4)  # pretrain's floor
    np.testing.assert_allclose(sigmas, expected, rtol=1e-5)
    assert rho[2] > 0.8 and sigmas[2] > 3 * rms[2] * np.sqrt(len(offsets))


def test_pretrain_writes_a_model_that_loads(rect_bag: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = pretrain([rect_bag], [rect_bag], out, load_estimator_config(), epochs=1, command="test")
    model = TactileModel.load(out)
    description = yaml.safe_load((out / "model.yaml").read_text())
    assert description["training"]["train_bags"] == [rect_bag.name]
    assert description["validation"]["rmse_theta_rad"] == pytest.approx(result["validation_rmse"][2])
    assert set(description["factor_persistence"]) == {"tactile", "tactile_normal", "pushing"}
    assert not model.weights.tactile_normal_corner  # measured, recorded, and not a factor (docs/design.md)
    corner = description["validation"]["contact_normal_corner_sigma_rad"]
    assert corner is None or corner > 0
    assert model.has_normal_head and len(model.weights.tactile_normal) == 1
    assert model.persistence["pushing"] == pytest.approx(pushing_sigmas([load_trajectory(
        rect_bag, load_estimator_config(), Architecture())])[1])
    assert all(s > 0 for s in model.weights.tactile + model.weights.pushing)


@pytest.mark.parametrize("epochs", [0, -3])
def test_pretraining_without_an_epoch_is_refused_before_any_work(epochs: int, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"--epochs {epochs}: pretraining needs at least one epoch"):
        pretrain([tmp_path / "no_such_bag"], [], tmp_path / "model", load_estimator_config(), epochs=epochs)
    assert not (tmp_path / "model").exists()


def test_training_bag_without_ground_truth_is_refused_naming_the_topic(rect_bag: Path, tmp_path: Path) -> None:
    stripped = tmp_path / "no_truth"
    with bags.BagWriter(stripped) as writer:
        for message in bags.read_messages(rect_bag):
            if message.topic != "/object_ground_truth":
                writer.write(message.topic, message.msgtype, message.log_time_ns, message.msg)
    with pytest.raises(DatasetError, match="/object_ground_truth"):
        load_trajectory(stripped, load_estimator_config(), Architecture())


def test_frame_normals_are_the_true_deviation_in_contact_and_unknown_elsewhere(rect_bag: Path) -> None:
    trajectory = load_trajectory(rect_bag, load_estimator_config(), Architecture())
    normals = frame_normals(trajectory)
    assert np.isnan(normals[~trajectory.in_contact]).all()
    assert np.isfinite(normals[trajectory.in_contact]).all()
    # In contact the sensor faces the object: its normal deviates from the sensor's axis by well under 90°.
    assert np.abs(normals[trajectory.in_contact]).max() < np.pi / 2


def test_normal_sigma_inflates_an_error_that_persists_through_an_episode(rect_bag: Path) -> None:
    """A network whose normal head says 0 everywhere (and never "corner") errs by the true deviation,
    which changes slowly within an episode: its σ is its RMS times the AR(1) inflation of that slow error."""
    trajectory = load_trajectory(rect_bag, load_estimator_config(), Architecture())
    net = TactileNet(Architecture(normal_hidden=8))
    for parameter in net.normal_head.parameters():
        torch.nn.init.zeros_(parameter)
    sigma, rho = normal_sigma(net, [trajectory])
    normals = frame_normals(trajectory)
    rms = float(np.sqrt(np.nanmean(normals**2)))
    assert rho[0] > 0.8
    assert sigma[0] == pytest.approx(rms * float(inflation(np.array(rho))[0]), rel=1e-3)
    assert np.isnan(normal_sigma(net, [trajectory], corners=True)[0][0])  # it never says "corner"
    with torch.no_grad():
        net.normal_head[-1].bias[4] = 10.0  # now it always does: the corner σ is measured on every frame
    assert normal_sigma(net, [trajectory], corners=True)[0] == pytest.approx(sigma)
    assert np.isnan(normal_sigma(net, [trajectory])[0][0])
