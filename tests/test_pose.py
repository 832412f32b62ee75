"""Top-down pose estimation through real ONNX Runtime / OpenVINO sessions.

Geometry is checked with a "spot finder": a small ONNX model whose 17 heatmaps are the crop's
brightness pooled 4x (a heatmap network's output resolution), so the keypoints must
land on a bright spot painted into the frame. The real HF-HRNet is exported with random weights
(needs torch) to check shapes, batching and the torch backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hfpose.engine.keypoints.estimator import PoseEstimator, create_pose_estimator
from hfpose.engine.runtime.discovery import openvino_devices
from hfpose.engine.runtime.model_files import ModelError, asset_path

INPUT_WH = (192, 256)


def _spot_finder(path: Path, keypoints: int = 17) -> Path:
    """(N,3,256,192) -> (N,17,64,48): a 1x1 conv averaging the colours into 17 identical
    channels, then 4x4 average pooling, so every heatmap peaks where the crop is brightest."""
    weights = helper.make_tensor(
        "weights", TensorProto.FLOAT, [keypoints, 3, 1, 1], [1 / 3] * (keypoints * 3)
    )
    nodes = [
        helper.make_node("Conv", ["input", "weights"], ["gray"], kernel_shape=[1, 1]),
        helper.make_node(
            "AveragePool", ["gray"], ["heatmaps"], kernel_shape=[4, 4], strides=[4, 4]
        ),
    ]
    output_shape = ["batch", keypoints, 64, 48]
    graph = helper.make_graph(
        nodes,
        "spot_finder",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 256, 192])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, output_shape)],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    # Plain 0..1 pixels so that the spot stays the maximum after normalisation.
    for key, value in {"input_size": list(INPUT_WH), "mean": [0, 0, 0], "std": [1, 1, 1]}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(model, path)
    return path


def _frame_with_spots(spots: list[tuple[int, int]]) -> np.ndarray:
    frame = np.zeros((480, 640, 3), np.uint8)
    for x, y in spots:
        frame[y - 4 : y + 4, x - 4 : x + 4] = 255  # an 8x8 spot centred between pixels
    return frame


@pytest.fixture(scope="module")
def spot_model(tmp_path_factory) -> Path:
    return _spot_finder(tmp_path_factory.mktemp("spot") / "spot.onnx")


def _assert_on_spots(keypoints: np.ndarray, spots: list[tuple[int, int]], tolerance: float) -> None:
    for person, (x, y) in enumerate(spots):
        # The spot's centre is at (x - 0.5, y - 0.5) in pixel-index coordinates.
        error = np.linalg.norm(keypoints[person] - [x - 0.5, y - 0.5], axis=1)
        assert error.max() < tolerance, (person, keypoints[person][:2], (x, y))


@pytest.mark.parametrize(
    ("batch_mode", "crop_workers"), [("batched", 1), ("per_crop", 1), ("per_crop", 2)]
)
def test_keypoints_land_on_the_spot_of_each_box(spot_model, batch_mode, crop_workers) -> None:
    # Three people: with two workers, crops finish out of order and must come back in order.
    spots = [(150, 200), (470, 300), (300, 100)]
    boxes = np.array(
        [[100, 100, 220, 340, 0.9], [400, 150, 560, 420, 0.8], [260, 20, 340, 200, 0.7]],
        np.float32,
    )
    estimator = PoseEstimator(
        spot_model, "cpu", batch_mode=batch_mode, num_threads=1, crop_workers=crop_workers
    )
    keypoints, scores = estimator.estimate(_frame_with_spots(spots), boxes)
    assert keypoints.shape == (3, 17, 2) and scores.shape == (3, 17)
    assert keypoints.dtype == np.float32 and np.all(scores > 0.1)
    # One heatmap pixel is about 4.4 / 5.3 crop pixels here; quarter-pixel refinement does better.
    _assert_on_spots(keypoints, spots, tolerance=3.0)


def test_flip_test_and_dark_keep_the_keypoints_on_the_spot(spot_model) -> None:
    spots = [(321, 241)]
    boxes = np.array([[250, 100, 390, 420]], np.float32)
    estimator = PoseEstimator(spot_model, "cpu", flip_test=True, use_dark=True)
    keypoints, _ = estimator.estimate(_frame_with_spots(spots), boxes)
    _assert_on_spots(keypoints, spots, tolerance=3.0)


def test_no_boxes_gives_empty_arrays(spot_model) -> None:
    keypoints, scores = PoseEstimator(spot_model, "cpu").estimate(_frame_with_spots([]), [])
    assert keypoints.shape == (0, 17, 2) and scores.shape == (0, 17)


def test_missing_gpu_falls_back_and_a_bad_model_is_refused(spot_model, tmp_path) -> None:
    estimator = PoseEstimator(spot_model, "gpu")  # the test machines have no GPU: the CPU
    assert estimator.runtime_info.backend in ("cpu", "gpu")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        PoseEstimator(broken, "cpu")
    assert estimator.model_path == spot_model
    spots = [(300, 250)]
    keypoints, _ = estimator.estimate(_frame_with_spots(spots), [[240, 120, 360, 380]])
    _assert_on_spots(keypoints, spots, tolerance=3.0)


@pytest.mark.skipif(not openvino_devices(), reason="openvino is not installed")
def test_openvino_backend_gives_the_same_keypoints(spot_model) -> None:
    spots = [(200, 260)]
    boxes = np.array([[130, 90, 270, 430]], np.float32)
    frame = _frame_with_spots(spots)
    reference, _ = PoseEstimator(spot_model, "cpu").estimate(frame, boxes)
    estimator = PoseEstimator(spot_model, "openvino")
    assert estimator.runtime_info.provider.startswith("OpenVINO")
    keypoints, _ = estimator.estimate(frame, boxes)
    np.testing.assert_allclose(keypoints, reference, atol=1.5)


def test_a_detector_given_as_keypoint_model_is_refused() -> None:
    with pytest.raises(ModelError, match="not a top-down keypoint model of a known family"):
        PoseEstimator(asset_path("detectors/nanodet_416.onnx"), "cpu")


def test_missing_default_model_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr("hfpose.engine.keypoints.estimator.DEFAULT_MODEL", "no_such_model.onnx")
    with pytest.raises(ModelError, match="default keypoint model no_such_model.onnx"):
        create_pose_estimator(None, "cpu")


# ------------------------------------------------------------------- the real HF-HRNet


@pytest.fixture(scope="module")
def hf_hrnet_files(tmp_path_factory) -> tuple[Path, Path]:
    """HF-HRNet-18 with random weights as ONNX (dynamic batch) and as a .pth checkpoint."""
    pytest.importorskip("torch")
    from hfpose.models.checkpoint import save_checkpoint
    from hfpose.models.config import load_config
    from hfpose.models.hf_hrnet import build_model
    from hfpose.training.run.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("hf_hrnet")
    cfg = load_config("hf_hrnet_18_coco_256x192")
    network = build_model(cfg)
    save_checkpoint(folder / "random.pth", network, {"config_name": cfg["config_name"]})
    return export_onnx(cfg, network, folder / "random.onnx"), folder / "random.pth"


@pytest.mark.slow
def test_hf_hrnet_onnx_batched_equals_per_crop_and_torch(hf_hrnet_files) -> None:
    onnx_path, pth_path = hf_hrnet_files
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    boxes = np.array([[50, 40, 250, 440], [300, 60, 520, 470], [10, 10, 90, 200]], np.float32)
    batched = PoseEstimator(onnx_path, "cpu", batch_mode="batched")
    assert batched.dataset_info.name == "coco" and batched.input_size_wh == INPUT_WH
    result = batched.estimate(frame, boxes)
    per_crop = PoseEstimator(onnx_path, "cpu", batch_mode="per_crop").estimate(frame, boxes)
    assert result.keypoints.shape == (3, 17, 2)
    np.testing.assert_allclose(result.scores, per_crop.scores, rtol=1e-3, atol=1e-7)
    # One thread: PyTorch's OpenMP threads stall badly when other programs load the cores.
    torch_estimator = PoseEstimator(pth_path, "torch", num_threads=1)
    assert torch_estimator.runtime_info.backend == "torch"
    torch_result = torch_estimator.estimate(frame, boxes)
    np.testing.assert_allclose(torch_result.scores, result.scores, rtol=1e-2, atol=1e-7)


@pytest.mark.slow
def test_pth_without_config_or_on_cpu_backend_is_explained(hf_hrnet_files, tmp_path) -> None:
    _, pth_path = hf_hrnet_files
    info = PoseEstimator(pth_path, "cpu").runtime_info
    assert info.backend == "torch" and "export it with hfpose-export" in info.fallback_reason
    import torch

    bare = tmp_path / "bare.pth"
    torch.save({"state_dict": torch.load(pth_path, weights_only=True)["state_dict"]}, bare)
    with pytest.raises(ModelError, match="needs its config"):
        PoseEstimator(bare, "torch")
