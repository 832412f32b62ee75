"""Person detectors on real frames (tests/data/frames) with real ORT sessions.

The user-model layouts are checked on small ONNX graphs built here whose outputs are known
constants, so that the decoding and the mapping back to frame pixels can be verified exactly.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hfpose.engine.detection.boxes import weighted_nms
from hfpose.engine.detection.factory import DETECTOR_NAMES, create_detector
from hfpose.engine.detection.onnx_detector import OnnxPersonDetector
from hfpose.engine.detection.person_detector import DetectorError
from hfpose.engine.detection.shipped import BlazePoseDetector, NanoDetDetector, ssd_anchor_centers
from hfpose.engine.runtime.discovery import openvino_devices
from hfpose.engine.runtime.model_files import ModelError, asset_path


def _frame(data_dir: Path, name: str) -> np.ndarray:
    frame = cv2.imread(str(data_dir / "frames" / name))
    assert frame is not None, name
    return frame


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


@pytest.fixture(scope="module")
def nanodet() -> NanoDetDetector:
    return NanoDetDetector(backend="cpu")


def test_nanodet_finds_the_pedestrians_of_a_street_frame(nanodet, data_dir) -> None:
    frame = _frame(data_dir, "street_mmpose_demo_f0.jpg")  # about 20 people, many small
    boxes = nanodet.detect(frame)
    assert boxes.shape[1] == 5 and boxes.dtype == np.float32
    assert len(boxes) >= 10
    assert np.all(np.diff(boxes[:, 4]) <= 0)  # best first
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= 960) and np.all(boxes[:, 3] <= 540)
    heights, widths = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    assert np.mean(heights > widths) > 0.8  # upright people, not random blobs
    # The woman in white, front right, checked by eye: x 762-912, y 178-538.
    assert max(_iou(box, np.array([762, 178, 912, 538])) for box in boxes) > 0.7


def test_nanodet_boxes_the_one_person_in_an_indoor_frame(nanodet, data_dir) -> None:
    boxes = nanodet.detect(_frame(data_dir, "intel_one_by_one_f300.jpg"))
    assert len(boxes) == 1
    assert _iou(boxes[0], np.array([385, 5, 545, 380])) > 0.8  # person box checked by eye


def test_nanodet_runs_wide_frames_at_their_own_aspect(nanodet) -> None:
    # Height and width are free in the converted model: no work is spent on padding.
    assert nanodet.session.input_shape[2:] == (None, None)
    assert nanodet.input_size_wh((960, 540)) == (416, 256)
    assert nanodet.input_size_wh((480, 640)) == (320, 416)
    blob, scale = nanodet.preprocess(np.zeros((540, 960, 3), np.uint8))
    assert blob.shape == (1, 3, 256, 416) and scale == pytest.approx(416 / 960)


def test_nanodet_finds_nobody_in_an_empty_frame(nanodet) -> None:
    assert nanodet.detect(np.full((480, 640, 3), 90, np.uint8)).shape == (0, 5)


def test_ssd_anchors_follow_mediapipe_pose_detection_options() -> None:
    anchors = ssd_anchor_centers()
    assert anchors.shape == (2254, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[1], anchors[0])  # two anchors per cell
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7])
    assert len(np.unique(anchors[28 * 28 * 2 :], axis=0)) == 14 * 14 + 7 * 7


def test_weighted_nms_averages_each_cluster_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    merged, merged_scores = weighted_nms(boxes, boxes, scores, 0.3)
    assert len(merged) == 2
    np.testing.assert_allclose(merged_scores, [0.9, 0.8])
    np.testing.assert_allclose(merged[0], [0.4, 0, 10.4, 10], atol=1e-5)  # 0.9*0 + 0.6*1 / 1.5
    np.testing.assert_allclose(merged[1], boxes[2])


def test_blazepose_finds_the_signing_person(data_dir) -> None:
    detector = BlazePoseDetector(backend="cpu")
    frame = _frame(data_dir, "intel_asl_book_f30.jpg")
    boxes, keypoints = detector.detect_with_keypoints(frame)
    np.testing.assert_array_equal(detector.detect(frame), boxes)
    assert len(boxes) == 1 and boxes[0, 4] > 0.9
    hips, head_top = keypoints[0, 0], keypoints[0, 1]
    # Hand-checked in the frame: hips near (310, 420), the top of the head near (305, 115).
    assert np.linalg.norm(hips - [310, 420]) < 40
    assert np.linalg.norm(head_top - [305, 115]) < 40
    x1, y1, x2, y2 = boxes[0, :4]
    assert x1 < 250 and x2 > 370 and y1 < 130 and y2 == 480  # the body, clipped at the bottom


def test_blazepose_finds_nobody_in_an_empty_frame() -> None:
    detector = BlazePoseDetector(backend="cpu")
    assert detector.detect(np.full((480, 640, 3), 200, np.uint8)).shape == (0, 5)


@pytest.mark.slow
def test_create_detector_names_and_refusals(tmp_path) -> None:
    assert create_detector("nanodet", "cpu").name == "nanodet"
    assert create_detector("BlazePose", "cpu").runtime_info.provider == "CPUExecutionProvider"
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        create_detector("yolo")
    with pytest.raises(ModelError, match="model not found"):
        create_detector(tmp_path / "mine.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ModelError):
        create_detector(broken)
    # The shipped files given by path keep their own decoders.
    by_path = create_detector(asset_path("detectors/blazepose_detector.onnx"), "cpu")
    assert isinstance(by_path, BlazePoseDetector)
    assert isinstance(create_detector(asset_path("detectors/nanodet_416.onnx")), NanoDetDetector)


def test_detector_on_a_missing_gpu_falls_back_and_works(nanodet, data_dir) -> None:
    detector = NanoDetDetector(backend="gpu")  # the test machines have no GPU: the CPU
    assert detector.runtime_info.backend in ("cpu", "gpu")
    assert len(detector.detect(_frame(data_dir, "intel_one_by_one_f300.jpg"))) == 1


@pytest.mark.skipif(not openvino_devices(), reason="openvino is not installed")
@pytest.mark.parametrize("name", DETECTOR_NAMES)
def test_openvino_detections_match_onnxruntime(name, data_dir) -> None:
    frame = _frame(data_dir, "intel_one_by_one_f300.jpg")
    expected = create_detector(name, "cpu").detect(frame)
    detector = create_detector(name, "openvino")
    assert detector.runtime_info.provider.startswith("OpenVINO")
    got = detector.detect(frame)
    # bf16 inference (where the CPU has it) moves box edges by a few pixels, no more.
    assert got.shape == expected.shape == (1, 5)
    assert np.abs(got - expected)[:, :4].max() < 8


# ---------------------------------------------------------------- user model layouts


def _constant_model(path: Path, input_hw: tuple[int, int], outputs: dict[str, np.ndarray]) -> Path:
    """An ONNX model whose outputs are the given constants (the image input is unused)."""
    nodes, infos = [], []
    for name, value in outputs.items():
        tensor = numpy_helper.from_array(value, name=f"{name}_value")
        nodes.append(helper.make_node("Constant", [], [name], value=tensor))
        dtype = TensorProto.INT64 if value.dtype == np.int64 else TensorProto.FLOAT
        infos.append(helper.make_tensor_value_info(name, dtype, list(value.shape)))
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])
    graph = helper.make_graph(nodes, "constant_detector", [image], infos)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


# A 1280x720 frame letterboxed into 640x640 is scaled by 0.5; centred, it is shifted down by 140.
FRAME = np.zeros((720, 1280, 3), np.uint8)
CELLS_640 = 80 * 80 + 40 * 40 + 20 * 20


def test_user_yolov8_layout_maps_boxes_back_to_the_frame(tmp_path) -> None:
    rows = np.zeros((1, 84, CELLS_640), np.float32)
    rows[0, :4, 7] = [320, 320, 100, 200]  # cx, cy, w, h in input pixels
    rows[0, 4, 7] = 0.9  # person
    rows[0, 4 + 2, 8] = 0.95  # a car: ignored
    path = _constant_model(tmp_path / "yolov8n.onnx", (640, 640), {"output0": rows})
    detector = create_detector(path, "cpu")
    assert isinstance(detector, OnnxPersonDetector) and detector.layout == "yolov8"
    boxes = detector.detect(FRAME)
    np.testing.assert_allclose(boxes, [[540, 160, 740, 560, 0.9]], atol=1e-3)


def test_user_yolox_raw_layout_decodes_the_grid(tmp_path) -> None:
    rows = np.zeros((1, CELLS_640, 85), np.float32)
    cell = 80 * 80 + 40 * 40 + 3 * 20 + 5  # stride 32, row 3, column 5
    rows[0, cell, :4] = [0.5, 0.5, np.log(4.0), np.log(6.0)]  # centre (176, 112), 128x192
    rows[0, cell, 4:6] = [0.8, 1.0]  # objectness x person score
    path = _constant_model(tmp_path / "yolox_s.onnx", (640, 640), {"output": rows})
    detector = create_detector(path, "cpu")
    assert detector.layout == "yolox"
    boxes = detector.detect(FRAME)  # YOLOX letterboxes top-left: only the 0.5 scale applies
    np.testing.assert_allclose(boxes, [[224, 32, 480, 416, 0.8]], atol=1e-3)


def test_user_end2end_layout_keeps_only_people(tmp_path) -> None:
    dets = np.zeros((1, 3, 5), np.float32)
    dets[0, 0] = [100, 100, 200, 300, 0.7]
    dets[0, 1] = [10, 10, 50, 50, 0.9]
    labels = np.array([[0, 2, 0]], np.int64)
    path = _constant_model(
        tmp_path / "rtmdet_nano.onnx", (320, 320), {"dets": dets, "labels": labels}
    )
    detector = create_detector(path, "cpu")
    assert detector.layout == "end2end"
    boxes = detector.detect(np.zeros((640, 640, 3), np.uint8))  # scale 0.5, top-left
    np.testing.assert_allclose(boxes, [[200, 200, 400, 600, 0.7]], atol=1e-3)


def test_user_model_with_an_nhwc_input_is_refused(tmp_path) -> None:
    path = _constant_model(
        tmp_path / "nhwc.onnx", (640, 640), {"output0": np.zeros((1, 84, CELLS_640), np.float32)}
    )
    model = onnx.load(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, (1, 640, 640, 3), strict=True):
        dim.dim_value = size
    onnx.save(model, path)
    with pytest.raises(DetectorError, match=r"expected a \(1, 3, H, W\) image input"):
        create_detector(path, "cpu")


def test_user_model_with_an_unknown_layout_is_refused(tmp_path) -> None:
    path = _constant_model(
        tmp_path / "segmenter.onnx", (256, 256), {"mask": np.zeros((1, 2, 64, 64), np.float32)}
    )
    with pytest.raises(DetectorError, match=r"unrecognised detector outputs \[\(1, 2, 64, 64\)\]"):
        create_detector(path, "cpu")
