"""What several test modules share: the keypoint model the engine tests run, synthetic people,
the fake webcam, a pipeline's collected output, written clips' probes, and the small-HF-HRNet
training options. Fixtures built on them are in ``tests/conftest.py``.

The keypoint model is the shipped one, else an exported random HF-HRNet-18. Random weights give
meaningless keypoints, so tests using it check structure, counts and files, never accuracy. The
export takes ~20 s; it is cached in pytest's cache folder, keyed by the model and exporter
sources, so later runs reuse it until the network code changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from hfpose.engine.config import SETTINGS, PipelineConfig
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.results import FrameResult, Person, PipelineError
from hfpose.engine.sources.frame_source import SourceError, SourceInfo
from hfpose.engine.sources.live import LiveFrameSource
from hfpose.engine.sources.opening import open_source

REPO_ROOT = Path(__file__).resolve().parents[1]
POSE_CONFIG = "hf_hrnet_18_coco_256x192"
KPT_THR = SETTINGS["kpt_thr"].default  # what the stages are given unless a test says otherwise
_POSE_MODEL_SOURCES = (
    "models/hf_hrnet.py",
    "training/export/export_cli.py",
    "models/onnx_metadata.py",
    "models/configs/hf_hrnet_18_coco_256x192.yaml",
)


def pose_model_path(cache_dir: Path) -> Path:
    """The shipped HF-HRNet-18 ONNX, else a random-weight export cached in ``cache_dir``."""
    shipped = REPO_ROOT / "assets" / f"{POSE_CONFIG}.onnx"
    if shipped.is_file():
        return shipped
    digest = hashlib.sha256()
    for relative in _POSE_MODEL_SOURCES:
        digest.update((REPO_ROOT / relative).read_bytes())
    target = cache_dir / f"{POSE_CONFIG}_random_{digest.hexdigest()[:12]}.onnx"
    if target.is_file():
        return target
    pytest.importorskip("torch", reason="exporting the test model needs torch")
    from hfpose.training.export.export_cli import main as export_main

    partial = target.with_suffix(f".{os.getpid()}.part.onnx")
    if export_main([POSE_CONFIG, "--out", str(partial)]) not in (0, None):
        pytest.fail(f"hfpose-export {POSE_CONFIG} failed")
    os.replace(partial, target)
    return target


def real_crops(model: Path, data_dir: Path, count: int = 4) -> np.ndarray:
    """People of mmpose's COCO test images, cut and normalised as the engine cuts them for
    ``model``."""
    import cv2

    from hfpose.engine.keypoints.estimator import PoseEstimator

    labels = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    decoder = PoseEstimator(model, "cpu", num_threads=1).decoder
    crops = []
    for image in labels["images"]:
        boxes = np.array(
            [a["bbox"] for a in labels["annotations"] if a["image_id"] == image["id"]], np.float32
        )
        if len(boxes):
            boxes[:, 2:] += boxes[:, :2]
            frame = cv2.imread(str(data_dir / "coco" / image["file_name"]))
            crops.append(decoder.prepare(frame, boxes).batch)
    return np.concatenate(crops)[:count]


# A standing person, 1 unit tall, origin at the hips' midpoint (x right, y down).
_TEMPLATE = np.array(
    [
        [0.0, -0.42], [-0.03, -0.45], [0.03, -0.45], [-0.07, -0.43], [0.07, -0.43],
        [-0.12, -0.30], [0.12, -0.30], [-0.16, -0.15], [0.16, -0.15], [-0.18, 0.0],
        [0.18, 0.0], [-0.08, 0.0], [0.08, 0.0], [-0.09, 0.25], [0.09, 0.25],
        [-0.10, 0.48], [0.10, 0.48],
    ]
)  # fmt: skip


def make_person(cx: float, cy: float, height: float = 200.0, score: float = 0.9) -> Person:
    """A synthetic COCO-17 person centred on (cx, cy), ``height`` pixels tall, all keypoints at
    ``score`` (tracking, smoothing and rendering tests)."""
    keypoints = _TEMPLATE * height + np.array([cx, cy])
    x1, y1 = keypoints.min(axis=0) - 0.05 * height
    x2, y2 = keypoints.max(axis=0) + 0.05 * height
    return Person(
        keypoints=keypoints.astype(np.float32),
        keypoint_scores=np.full(17, score, np.float32),
        bbox=np.array([x1, y1, x2, y2], np.float32),
        bbox_score=0.95,
    )


class FakeCamera(LiveFrameSource):
    """Stands in for a webcam (the test machines have none) on the real live-source machinery.

    A frame every ``period`` seconds: a real clip's frames, looped, or without a clip blank
    ``size`` frames whose first pixel carries the frame's number (:func:`fake_frame_number`).
    After ``unplug_after`` frames it fails as an unplugged camera does.
    """

    def __init__(
        self,
        clip: Path | None = None,
        period: float = 1 / 30,
        unplug_after: int | None = None,
        spec: str = "webcam:0",
        size: tuple[int, int] = (64, 48),
    ) -> None:
        self._frames: list[np.ndarray] = []
        if clip is not None:
            with open_source(clip) as video:
                self._frames = [frame.image for frame in video]
            size = (self._frames[0].shape[1], self._frames[0].shape[0])
        super().__init__(SourceInfo("camera", spec, size[0], size[1], 1 / period, is_live=True))
        self._period = period
        self._unplug_after = unplug_after
        self.produced = 0
        self.closed = False
        self.start()

    def _grab(self) -> np.ndarray:
        if self._unplug_after is not None and self.produced >= self._unplug_after:
            raise SourceError(f"camera {self.info.uri} stopped delivering frames (unplugged?)")
        time.sleep(self._period)
        self.produced += 1
        if self._frames:
            return self._frames[self.produced % len(self._frames)]
        image = np.zeros((self.info.height, self.info.width, 3), np.uint8)
        image[0, 0, :2] = divmod(self.produced, 256)
        return image

    def _release(self) -> None:
        self.closed = True


def fake_frame_number(image: np.ndarray) -> int:
    """The number (1, 2, ...) a clip-less :class:`FakeCamera` wrote into its frame."""
    high, low = image[0, 0, :2]
    return 256 * int(high) + int(low)


def start_until_progress(
    command: list[str], done: int, total: int, sigint_ignored: bool = False
) -> tuple[subprocess.Popen, str]:
    """Start ``hfpose-video``'s ``command`` and return once its progress bar says ``done`` of
    ``total`` frames are through: the process, and what it has written to stderr so far.
    ``sigint_ignored``: started as a shell without job control starts a background job."""
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )
    seen = ""
    through = 0
    while through < done:
        chunk = process.stderr.read(1)
        assert chunk, f"hfpose-video ended early: {seen}"
        seen += chunk
        counts = re.findall(rf"(\d+)/{total}", seen)
        through = int(counts[-1]) if counts else 0
    return process, seen


def image_folder_of(video: Path, folder: Path, count: int) -> Path:
    """``count`` JPEG stills in ``folder`` made from ``video``'s frames (looped)."""
    folder.mkdir()
    with open_source(video) as source:
        frames = [f.image for f in source]
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frames[i % len(frames)])
    return folder


def encode_frames(out, stream, images: list[np.ndarray]) -> None:
    """Encode BGR ``images`` one per frame tick into PyAV ``stream`` and flush the encoder."""
    for i, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


class Collector:
    """What a pipeline hands its callbacks: results, errors, the summary once finished."""

    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.errors: list[PipelineError] = []
        self.finished = threading.Event()
        self.summary = None

    def on_result(self, result: FrameResult) -> None:
        self.results.append(result)

    def on_error(self, error: PipelineError) -> None:
        self.errors.append(error)

    def on_finished(self, summary) -> None:
        self.summary = summary
        self.finished.set()

    def pipeline(self, config: PipelineConfig, sinks=()) -> Pipeline:
        return Pipeline(config, sinks, self.on_result, self.on_error, self.on_finished)


def wait_until(condition, timeout: float = 60.0, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out {what}".strip()
        time.sleep(0.01)


def probe(path: Path) -> dict:
    """Decoded frame count, frame rate, duration and audio of a written file."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        rate = float(video.average_rate)
        duration = float(video.duration * video.time_base) if video.duration else None
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        audio_seconds = None
        if container.streams.audio:
            stream = container.streams.audio[0]
            samples = sum(f.samples for f in container.decode(audio=0))
            audio_seconds = samples / stream.rate
    return {"frames": frames, "fps": rate, "duration": duration, "audio_s": audio_seconds}


def write_vfr_clip(path: Path, times: list[float]) -> None:
    """An H.264 clip whose frames sit at the given (irregular) times, 1 ms time base."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), "bgr24")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


# Training: the mmpose fixture set and HF-HRNet made small enough to train in a test.
REPO = REPO_ROOT
FIXTURE = REPO / "tests" / "data"
COCO_JSON = FIXTURE / "coco" / "test_coco.json"
COCO_IMAGES = FIXTURE / "coco"
# one well-labelled person in each of the 4 fixture images
FOUR_PEOPLE = {442619, 230195, 1724673, 437295}
NO_AUGMENTATION = [
    {"type": "LoadImageFromFile"},
    {"type": "TopDownGetBboxCenterScale", "padding": 1.25},
    {"type": "TopDownAffine"},
    {"type": "ToTensor"},
    {"type": "NormalizeTensor", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    {"type": "TopDownGenerateTarget", "sigma": 2},
]


def small_options(ann: Path, **extra: object) -> list[str]:
    """--cfg-options making HF-HRNet-18 small enough for a test on 2 shared cores."""
    options = {
        "data_cfg.image_size": "[64,128]",
        "data_cfg.heatmap_size": "[16,32]",
        "model.backbone.extra.stages_spec.num_modules": "[1,1,1]",
        "data.samples_per_gpu": 2,
        "data.workers_per_gpu": 0,
        "data.train.ann_file": ann,
        "data.train.img_prefix": COCO_IMAGES,
        "data.val.ann_file": ann,
        "data.val.img_prefix": COCO_IMAGES,
        "data_cfg.use_gt_bbox": "true",
        "evaluation.interval": 0,
        "log_config.interval": 1,
        "lr_config.warmup_iters": 2,
        "amp": "none",
        **extra,
    }
    return [f"{key}={value}" for key, value in options.items()]
