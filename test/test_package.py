"""The ROS 2 package surface that can be checked without ROS: package.xml, setup.py, entry points."""

from __future__ import annotations

import ast
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_valid_format_3() -> None:
    package = parse_package(ROOT / "package.xml")
    package.validate()
    assert package.package_format == 3
    assert package.name == "tactile_estimator"
    assert package.get_build_type() == "ament_python"
    run_deps = {d.name for d in package.exec_depends}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "nav_msgs", "std_msgs"} <= run_deps


def test_setup_installs_share_files_and_the_cli() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text())
    text = ast.unparse(tree)
    for folder in ("launch", "config", "models"):
        assert f"share/{{PACKAGE}}/{folder}" in text
    assert "tactile-estimator = tactile_estimator.cli:main" in text
    assert (ROOT / "resource" / "tactile_estimator").exists()
    assert (ROOT / "models" / "model.yaml").exists() and (ROOT / "models" / "weights.pt").exists()


def test_core_never_imports_ros() -> None:
    core = [p for p in (ROOT / "tactile_estimator").rglob("*.py") if "adapters" not in p.parts or p.name == "replay.py"]
    for path in core:
        source = path.read_text()
        for name in ("rclpy", "tf_transformations", "cyclonedds"):
            assert f"import {name}" not in source and f"from {name}" not in source, f"{path} imports {name}"
