"""Fast paths of the keypoint model on real sessions of the shipped HF-HRNet-18: ``auto``'s
timed probe and its cache, the ``fp32`` / ``fast`` precision choice, the int8 copy's checks
(made from this very fp32 file, parity recorded), and LiteRT running BlazePose-full for the
benchmark baseline. No timing is asserted: only which runtime ran and what it computed."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

from hfpose.engine.keypoints.estimator import DEFAULT_MODEL
from hfpose.engine.runtime.auto import fast_variant_path, file_sha256
from hfpose.engine.runtime.backends import create_session
from hfpose.engine.runtime.discovery import openvino_devices
from hfpose.engine.runtime.model_files import asset_path

MODEL = asset_path(DEFAULT_MODEL)
has_openvino = pytest.mark.skipif("CPU" not in openvino_devices(), reason="no OpenVINO CPU")


@pytest.fixture
def model_copy(tmp_path) -> Path:
    """The shipped model in a folder of its own, so int8 copies can lie beside it."""
    path = tmp_path / "model" / MODEL.name
    path.parent.mkdir()
    path.write_bytes(MODEL.read_bytes())
    return path


@pytest.mark.slow
@has_openvino
def test_auto_probes_once_and_follows_its_cache(cache, model_copy) -> None:
    first = create_session(model_copy, "auto", num_threads=1).runtime_info
    assert first.requested == "auto" and first.backend in ("cpu", "openvino")
    (entry,) = json.loads(cache.read_text()).values()
    assert entry["choice"] == first.backend and set(entry["median_cpu_ms"]) == {"cpu", "openvino"}
    # A cached answer is followed without a new probe: flip it and the next session obeys.
    other = "cpu" if first.backend == "openvino" else "openvino"
    key = next(iter(json.loads(cache.read_text())))
    cache.write_text(json.dumps({key: {**entry, "choice": other}}))
    assert create_session(model_copy, "auto", num_threads=1).runtime_info.backend == other
    # Another precision is another question.
    create_session(model_copy, "auto", num_threads=1, precision="fp32")
    assert len(json.loads(cache.read_text())) == 2


@pytest.mark.slow
@has_openvino
def test_fp32_precision_keeps_openvino_exact_and_fast_agrees_with_it() -> None:
    exact = create_session(MODEL, "openvino", num_threads=1, precision="fp32")
    fast = create_session(MODEL, "openvino", num_threads=1, precision="fast")
    reference = create_session(MODEL, "cpu", num_threads=1)
    assert exact.runtime_info.precision == "fp32"
    crop = np.random.default_rng(0).normal(0, 1, (1, 3, 256, 192)).astype(np.float32)
    expected = reference.run(crop)[0]
    assert np.abs(exact.run(crop)[0] - expected).max() < 1e-3 * np.abs(expected).max() + 1e-4
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx512_bf16" in cpu_flags or " amx_bf16" in cpu_flags:
        assert fast.runtime_info.precision == "bf16"


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        create_session(MODEL, "cpu", precision="int4")


def _fake_variant(model: Path, meta: dict) -> Path:
    """A real ONNX file at the int8 copy's place with the given provenance metadata; its graph
    is the fp32 one, as only the engine's checks and choice are under test here (quantizing
    needs ../shared and minutes: ``hfpose-export --int8`` is run by hand, see README)."""
    proto = onnx.load(str(model))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    path = fast_variant_path(model)
    onnx.save(proto, str(path))
    return path


def test_copy_of_another_fp32_file_is_refused_once_with_a_warning(model_copy, caplog) -> None:
    _fake_variant(model_copy, {"fp32_sha256": "0" * 64, "peak_agreement": 0.99})
    with caplog.at_level(logging.WARNING):
        info = create_session(model_copy, "cpu").runtime_info
    assert info.precision == "fp32"
    assert "made from another" in caplog.text and "hfpose-export --int8" in caplog.text


@pytest.mark.slow
def test_checked_copy_runs_where_the_probe_finds_it_faster(cache, model_copy) -> None:
    sha = file_sha256(model_copy)
    _fake_variant(model_copy, {"fp32_sha256": sha, "peak_agreement": 0.40})
    assert create_session(model_copy, "cpu").runtime_info.precision == "fp32"
    assert not cache.exists()  # a copy below parity is not even timed
    _fake_variant(model_copy, {"fp32_sha256": sha, "peak_agreement": 0.99})
    chosen = create_session(model_copy, "cpu").runtime_info.precision
    (entry,) = json.loads(cache.read_text()).values()
    assert set(entry["median_cpu_ms"]) == {"fp32", "int8"} and entry["choice"] == chosen
    assert create_session(model_copy, "cpu", precision="fp32").runtime_info.precision == "fp32"


def test_litert_runs_blazepose_full_from_the_mediapipe_wheel() -> None:
    pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed")
    pytest.importorskip("mediapipe", reason="the pseudo extra (mediapipe wheel) is not installed")
    from benchmarks.blazepose_baseline import blazepose_full_path, litert_candidate

    path = blazepose_full_path()
    assert path.name == "pose_landmark_full.tflite"
    candidate = litert_candidate("BlazePose-full", path, threads=1)
    candidate.run(np.random.default_rng(0).uniform(0, 1, (2, 3, 256, 256)).astype(np.float32))


def test_precision_is_one_setting_from_pipeline_config_to_cli_and_dialog(qtbot, tmp_path) -> None:
    from PySide6.QtCore import QSettings

    from hfpose.app.settings import AppSettings, SettingsStore
    from hfpose.app.settings_dialog import SettingsDialog
    from hfpose.app.video_cli import build_parser
    from hfpose.engine.config import PipelineConfig
    from hfpose.engine.runtime.discovery import available_backends

    assert AppSettings().precision == PipelineConfig().precision == "fast"
    assert build_parser().parse_args(["in.mp4"]).precision == PipelineConfig().precision
    with pytest.raises(ValueError, match="precision"):
        PipelineConfig(precision="int4")
    dialog = SettingsDialog(AppSettings(), available_backends())
    qtbot.addWidget(dialog)
    seen: list[AppSettings] = []
    dialog.settings_changed.connect(seen.append)
    dialog.precision.setCurrentIndex(dialog.precision.findData("fp32"))
    assert seen[-1].precision == "fp32"
    store = SettingsStore(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    store.save(seen[-1])
    assert store.load().precision == "fp32"


@pytest.mark.slow
@has_openvino
def test_pipeline_switches_the_keypoint_model_to_fp32_at_the_next_frame() -> None:
    from hfpose.engine.config import PipelineConfig
    from hfpose.engine.processor import FrameWork, PoseProcessor
    from hfpose.engine.sources.frame_source import Frame

    processor = PoseProcessor(PipelineConfig(source="unused", backend="openvino"))
    processor.request("pose", precision="fp32")
    frame = Frame(np.zeros((240, 320, 3), np.uint8), 0, 0.0)
    processor.pose_step(FrameWork(frame, 0, 0.0, boxes=np.array([[10, 10, 200, 230, 0.9]])))
    assert processor.estimator.runtime_info.precision == "fp32"
    assert processor.config.precision == "fp32"


has_litert = pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None, reason="the litert extra is not installed"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [pytest.param("openvino", marks=has_openvino), pytest.param("litert", marks=has_litert)],
)
def test_fast_paths_keep_the_keypoints_of_real_people(data_dir, backend) -> None:
    """Accuracy gate: the people of mmpose's COCO test images (their labelled boxes), fp32 on
    ONNX Runtime against ``fast`` on OpenVINO (bf16 where the CPU has it) and on LiteRT (the
    shipped .tflite copy): nearly every joint fp32 is sure of lands within 3% of the box's
    height."""
    import cv2

    from hfpose.engine.keypoints.estimator import PoseEstimator

    labels = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    exact = PoseEstimator(MODEL, "cpu", precision="fp32", num_threads=1)
    fast = PoseEstimator(MODEL, backend, precision="fast", num_threads=1)
    assert fast.runtime_info.backend == backend
    close, sure = 0, 0
    for image in labels["images"]:
        boxes = np.array(
            [a["bbox"] for a in labels["annotations"] if a["image_id"] == image["id"]], np.float32
        )
        if not len(boxes):
            continue
        boxes[:, 2:] += boxes[:, :2]
        frame = cv2.imread(str(data_dir / "coco" / image["file_name"]))
        reference, fast_result = exact.estimate(frame, boxes), fast.estimate(frame, boxes)
        heights = (boxes[:, 3] - boxes[:, 1])[:, None]
        distance = np.linalg.norm(reference.keypoints - fast_result.keypoints, axis=-1)
        mask = reference.scores >= 0.3
        close += int((distance[mask] <= 0.03 * np.broadcast_to(heights, mask.shape)[mask]).sum())
        sure += int(mask.sum())
    assert sure >= 20, "too few sure keypoints for the gate to mean anything"
    assert close / sure >= 0.95, f"{close} of {sure} sure keypoints kept"


@pytest.mark.slow
@pytest.mark.shared
def test_int8_copy_from_training_crops_keeps_the_peaks_and_is_accepted(
    tmp_path, shared_dir
) -> None:
    """A real quantization, small: 24 calibration and 24 check crops from the training images
    (cut by the engine's crop code), depthwise convolutions kept in float."""
    from hfpose.engine.runtime.model_files import read_onnx_metadata
    from hfpose.training.export.quantize import (
        Preprocessing,
        calibration_and_check_sets,
        int8_path_for,
        quantize_int8,
        write_int8_metadata,
    )

    model = tmp_path / MODEL.name
    model.write_bytes(MODEL.read_bytes())
    prep = Preprocessing.from_metadata(read_onnx_metadata(model))
    calibration, check = calibration_and_check_sets(prep, calibration=24, check=24)
    report = quantize_int8(
        model, int8_path_for(model), calibration, check, tmp_path, log=lambda _: None,
        target=0.9, max_float_modules=0,
    )  # fmt: skip
    assert report.float_groups == ["depthwise convolutions"]
    assert report.agreement >= 0.85, report
    write_int8_metadata(model, report, len(calibration))
    meta = read_onnx_metadata(int8_path_for(model))
    assert meta["fp32_sha256"] == file_sha256(model) and meta["precision"] == "int8"
    nodes = onnx.load(str(int8_path_for(model))).graph.node
    assert any(n.op_type == "QuantizeLinear" for n in nodes)


def test_probe_feeds_a_dynamic_size_detector_its_real_input_size() -> None:
    """NanoDet's height and width are dynamic: a 1x1 probe made every runtime look alike."""
    from hfpose.engine.runtime.auto import probe_input_shape

    session = create_session(asset_path("detectors/nanodet_416.onnx"), "cpu")
    assert probe_input_shape(session) == [1, 3, 416, 416]
    assert probe_input_shape(create_session(MODEL, "cpu")) == [1, 3, 256, 192]
