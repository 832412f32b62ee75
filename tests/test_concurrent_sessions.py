"""Threads on real runtime sessions of the shipped keypoint model, one backend at a time: calls
from many threads at once give exactly what each call gives alone, the pipeline with two frames
in the keypoint stage gives what one frame at a time gives, and one ``PoseTracker`` called from
several threads gives what it gives called from one.

Every backend installed here is covered (PyTorch on a random-weight checkpoint, as none
ships); one this machine cannot run (OpenVINO or LiteRT not
installed, OpenVINO bf16 on a CPU without native bf16) is skipped with the reason, so the test
report says what went uncovered.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from hfpose.engine.config import PipelineConfig
from hfpose.engine.keypoints.estimator import DEFAULT_MODEL, PoseEstimator
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.pose_tracker import PoseTracker
from hfpose.engine.results import Person
from hfpose.engine.runtime.backends import create_session
from hfpose.engine.runtime.model_files import asset_path
from hfpose.engine.runtime.sessions import InferenceSession, RuntimeInfo
from tests.helpers import real_crops

MODEL = asset_path(DEFAULT_MODEL)
THREADS = 4
CALLS_PER_THREAD = 6
BATCH_SIZES = (1, 3, 2, 4)  # different sizes, so one caller's output in another's is caught

# (backend, precision, the precision that must really run)
RUNTIMES = {
    "onnxruntime": ("cpu", "fp32", "fp32"),
    "openvino-f32": ("openvino", "fp32", "fp32"),
    "openvino-bf16": ("openvino", "fast", "bf16"),
    "litert": ("litert", "fp32", "fp32"),
}


def _session(runtime: str) -> InferenceSession:
    """The shipped model on ``runtime``, one thread per call; skipped where it cannot run here."""
    backend, precision, _ = RUNTIMES[runtime]
    session = create_session(MODEL, backend, num_threads=1, precision=precision)
    _skip_uncovered(runtime, session.runtime_info)
    return session


def _skip_uncovered(runtime: str, info: RuntimeInfo) -> None:
    backend, _, wanted = RUNTIMES[runtime]
    if info.fallback_reason:
        pytest.skip(f"{runtime} not covered: {info.fallback_reason}")
    if info.precision != wanted:
        pytest.skip(f"{runtime} not covered: this CPU runs {info.precision} (no native {wanted})")
    assert info.backend == backend


def _assert_many_threads_equal_alone(session: InferenceSession, crops: np.ndarray) -> None:
    """``THREADS`` threads x ``CALLS_PER_THREAD`` calls of different batch sizes on
    ``session``, each equal to the same call alone."""
    batches = [crops[np.arange(size) % len(crops)][::-1].copy() for size in BATCH_SIZES]
    alone = [session.run(batch)[0] for batch in batches]
    jobs = [i % len(batches) for i in range(THREADS * CALLS_PER_THREAD)]
    everyone_ready = threading.Barrier(THREADS)

    def call(job: int) -> np.ndarray:
        if job < THREADS:  # the first call of each thread starts at the same moment
            everyone_ready.wait()
        return session.run(batches[job % len(batches)])[0]

    with ThreadPoolExecutor(THREADS) as pool:
        together = list(pool.map(call, range(len(jobs))))
    for job, heatmaps in zip(jobs, together, strict=True):
        expected = alone[job]
        assert heatmaps.shape == expected.shape
        np.testing.assert_allclose(heatmaps, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.slow
@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_calls_from_many_threads_equal_the_same_calls_alone(runtime, data_dir) -> None:
    _assert_many_threads_equal_alone(_session(runtime), real_crops(MODEL, data_dir, count=4))


@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_a_crowd_split_or_on_two_threads_equals_each_crop_alone(runtime, data_dir) -> None:
    """A crowd's crops cut in two calls side by side, or in one call on two intra-op threads
    (the two ways of spreading them over the cores, ``crowd_mode``), give each person what
    their crop gives alone in a one-thread call: the crops are independent (equal to the
    last bit on the Xeon and its four runtimes here)."""
    backend, precision, _ = RUNTIMES[runtime]
    labels = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    image_id = 196141  # five people
    boxes = np.array(
        [a["bbox"] for a in labels["annotations"] if a["image_id"] == image_id], np.float32
    )
    boxes[:, 2:] += boxes[:, :2]
    frame = cv2.imread(str(data_dir / "coco" / f"{image_id:012d}.jpg"))
    estimators = {
        mode: PoseEstimator(
            MODEL, backend, num_threads=1, crop_workers=2, precision=precision, crowd_mode=mode
        )
        for mode in ("split", "threads")
    }
    _skip_uncovered(runtime, estimators["split"].runtime_info)
    assert "side by side" in estimators["split"].runtime_info.crowds
    assert "on 2 threads" in estimators["threads"].runtime_info.crowds
    alone = [estimators["split"].estimate(frame, box[None]) for box in boxes]
    keypoints_alone = np.concatenate([result.keypoints for result in alone])
    scores_alone = np.concatenate([result.scores for result in alone])
    for estimator in estimators.values():
        keypoints, scores = estimator.estimate(frame, boxes)
        np.testing.assert_allclose(keypoints, keypoints_alone, rtol=0, atol=1e-3)
        np.testing.assert_allclose(scores, scores_alone, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_pytorch_calls_from_many_threads_take_turns(data_dir, tmp_path) -> None:
    """No checkpoint ships: a random-weight HF-HRNet-18 ``.pth`` of the shipped model's
    input size."""
    pytest.importorskip("torch", reason="torch not installed: PyTorch sessions not covered")
    from hfpose.models.checkpoint import save_checkpoint
    from hfpose.models.config import load_config
    from hfpose.models.hf_hrnet import build_model

    config = load_config("hf_hrnet_18_coco_256x192")
    checkpoint = tmp_path / "random.pth"
    save_checkpoint(checkpoint, build_model(config), {"config_name": config["config_name"]})
    session = create_session(checkpoint, "torch", num_threads=1)
    assert session.runtime_info.backend == "torch" and not session.concurrent_calls
    _assert_many_threads_equal_alone(session, real_crops(MODEL, data_dir, count=4))


def _photo_folder(data_dir: Path, folder: Path) -> Path:
    """Photos of one person and of several, so that the keypoint stage runs two frames at
    once (one person leaves a core idle) and splits a crowd's crops over its workers."""
    folder.mkdir()
    photos = sorted((data_dir / "coco").glob("*.jpg")) + sorted((data_dir / "frames").glob("*"))
    for number, photo in enumerate(photos):
        (folder / f"{number:03d}{photo.suffix}").write_bytes(photo.read_bytes())
    return folder


def _assert_same_people(got: list[list[Person]], expected: list[list[Person]]) -> None:
    assert len(got) == len(expected)
    assert sum(len(people) for people in expected) > len(expected)  # somebody was found
    for frame_got, frame_expected in zip(got, expected, strict=True):
        assert len(frame_got) == len(frame_expected)
        for person, reference in zip(frame_got, frame_expected, strict=True):
            # another thread count may round differently; another frame's heatmaps move joints
            # by many pixels
            np.testing.assert_allclose(person.keypoints, reference.keypoints, atol=0.05)
            np.testing.assert_allclose(person.bbox, reference.bbox, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("runtime", list(RUNTIMES))
def test_pipeline_with_two_frames_in_flight_equals_one_frame_at_a_time(
    runtime, data_dir, tmp_path
) -> None:
    _session(runtime)  # skips what this machine cannot run
    backend, precision, _ = RUNTIMES[runtime]
    folder = _photo_folder(data_dir, tmp_path / "photos")
    settings = {"model": str(MODEL), "backend": backend, "precision": precision}
    config = PipelineConfig(source=str(folder), **settings)
    assert config.pose_frames_in_flight == 2 or pytest.skip("one core: one frame in flight")
    in_pipeline: list[list[Person]] = []
    summary = Pipeline(config, on_result=lambda r: in_pipeline.append(r.people)).run()
    assert summary.error is None
    tracker = PoseTracker(**settings, stills=True)
    one_at_a_time = [tracker(cv2.imread(str(photo))) for photo in sorted(folder.iterdir())]
    _assert_same_people(in_pipeline, one_at_a_time)


@pytest.mark.slow
def test_one_pose_tracker_called_from_several_threads(data_dir, tmp_path) -> None:
    folder = _photo_folder(data_dir, tmp_path / "photos")
    images = [cv2.imread(str(photo)) for photo in sorted(folder.iterdir())]
    tracker = PoseTracker(model=str(MODEL), backend="cpu", stills=True)
    one_thread = [tracker(image) for image in images]
    with ThreadPoolExecutor(THREADS) as pool:
        many_threads = list(pool.map(tracker, images))
    _assert_same_people(many_threads, one_thread)
