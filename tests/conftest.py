"""Shared fixtures: the in-repo fixtures, ../shared (skipped when absent), the keypoint model.

Shared helpers that are not fixtures (the fake webcam, synthetic people) are in tests/helpers.py.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import COCO_JSON, FOUR_PEOPLE, pose_model_path

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


@pytest.fixture(scope="session")
def pose_model(request: pytest.FixtureRequest) -> str:
    """Path of the keypoint model the engine tests run (see ``tests.helpers.pose_model_path``)."""
    return str(pose_model_path(Path(request.config.cache.mkdir("hfpose-pose-model"))))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty per-test folder for ``auto``'s probe results: the file the probe writes."""
    from hfpose.engine.runtime import auto as auto_backend

    folder = tmp_path / "cache"
    monkeypatch.setenv("HFPOSE_CACHE_DIR", str(folder))
    return folder / auto_backend.CACHE_FILE


@pytest.fixture(scope="module")
def torch_one_thread():
    """One intra-op thread: on 2 cores shared with other jobs, two OpenMP threads spin-waiting
    for each other made a step of the small model 10x slower (1.7 s against 0.15 s). The
    trainer flushes subnormals process-wide on the CPU: leave other tests as found."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)


@pytest.fixture(scope="session")
def four_people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture set cut to one well-labelled person in each of its four images."""
    data = json.loads(COCO_JSON.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["id"] in FOUR_PEOPLE]
    path = tmp_path_factory.mktemp("ann") / "four_people.json"
    path.write_text(json.dumps(data))
    return path
