"""Where colcon installed the package: its share directory, found as ament_index_python finds it.

``ament_index_python.packages.get_package_share_directory`` looks through ``AMENT_PREFIX_PATH``
for the first prefix holding the package's marker ``share/ament_index/resource_index/packages/<name>``
(setup.py installs it) and answers ``<prefix>/share/<name>``. This module does the same without
importing it, so that nothing here needs ROS.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "tactile_estimator"


def share_directory(package: str = PACKAGE, prefix_path: str | None = None) -> Path | None:
    """``<prefix>/share/<package>`` of the first prefix that indexes the package, or None.

    ``prefix_path`` is an ``os.pathsep``-separated list of install prefixes; None reads ``AMENT_PREFIX_PATH``.
    """
    prefixes = os.environ.get("AMENT_PREFIX_PATH", "") if prefix_path is None else prefix_path
    for prefix in prefixes.split(os.pathsep):
        if prefix and (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / package).is_file():
            return Path(prefix) / "share" / package
    return None


def installed_model_dir(prefix_path: str | None = None) -> Path | None:
    """The model colcon installed (``share/tactile_estimator/models``), or None where there is none.

    None leaves the choice to :meth:`TactileModel.load`, whose default is the ``models/`` beside the
    source tree (a pip or ``--symlink-install`` install); a colcon install copies the package into
    ``site-packages`` and the model into the share directory instead.
    """
    share = share_directory(PACKAGE, prefix_path)
    if share is not None and (share / "models" / "model.yaml").is_file():
        return share / "models"
    return None
