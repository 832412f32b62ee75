"""Where hfpose's files lie, found through the import system rather than ``parents[N]`` on a
source path, so one answer holds in an editable install (the repository's folders) and in a
wheel (site-packages): the package data each package ships, and the developer folders a
source checkout has beside it (``tests/data``, ``docs``, ``../shared``), which a wheel lacks.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def package_folders(package: str) -> list[Path]:
    """The folders of an installed hfpose package (``hfpose.assets``, ``hfpose.training``...);
    empty when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [Path(folder) for folder in spec.submodule_search_locations]


def package_file(package: str, relative: str) -> Path:
    """A file a package ships (``package_file("hfpose.training", "data/splits/mpii_val.txt")``);
    the first folder's path when no folder has it, so the caller's error names it."""
    folders = package_folders(package)
    if not folders:
        raise FileNotFoundError(f"the {package} package is not installed (pip install -e .)")
    for folder in folders:
        if (folder / relative).exists():
            return folder / relative
    return folders[0] / relative


def checkout_root() -> Path | None:
    """The repository when hfpose runs from a source checkout (an editable install), else None:
    the developer tools' defaults live there (test clips, docs), not in a wheel."""
    for folder in package_folders("hfpose.models"):
        if (folder.parent / "pyproject.toml").is_file():
            return folder.parent
    return None


def shared_datasets() -> Path:
    """The developers' datasets: ``$HFPOSE_SHARED/datasets``, else ``../shared/datasets`` beside
    the checkout (callers say what is missing when it is absent, as it is for a user)."""
    if os.environ.get("HFPOSE_SHARED"):
        return Path(os.environ["HFPOSE_SHARED"]) / "datasets"
    root = checkout_root()
    return (root.parent if root else Path.cwd()) / "shared" / "datasets"
