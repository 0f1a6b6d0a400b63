"""Shared fixtures: small simulated bags, written once per test session as real rosbag2 files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tactile_estimator.objects import DEFAULT_SIZES, Shape
from tactile_estimator.sim.pushing import SimulatedRun, simulate_run
from tactile_estimator.sim.recording import write_run_bag

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "test" / "fixtures"  # real files written by others, with their licenses


@pytest.fixture(scope="session")
def rect_run() -> SimulatedRun:
    return simulate_run(Shape("rect", DEFAULT_SIZES["rect"]), steps=150, seed=4242)


@pytest.fixture(scope="session")
def rect_bag(rect_run: SimulatedRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bags") / "rect_run"
    write_run_bag(rect_run, path)
    return path


@pytest.fixture(scope="session")
def recorded_bags() -> Path:
    return FIXTURES / "ros2-bags"
