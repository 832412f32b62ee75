"""Shared fixtures: paths to the in-repo fixtures and to ../shared (skipped when absent)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Qt widgets are real in the tests but there is no display on CI machines.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# auto's timed probe caches per machine and model: the tests keep theirs out of the user's cache.
os.environ.setdefault("HFPOSE_CACHE_DIR", tempfile.mkdtemp(prefix="hfpose-test-cache-"))

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "tests" / "data"
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared/ exists on developer machines and CI, not in a user's clone: skip without it."""
    if not (SHARED_DIR / "datasets").is_dir():
        pytest.skip("../shared/datasets is not present (only on developer machines and CI)")
    return SHARED_DIR
