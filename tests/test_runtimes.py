"""Backends: real ONNX Runtime / OpenVINO sessions on the shipped NanoDet model."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hfpose.engine.runtime import backends, discovery
from hfpose.engine.runtime.backends import create_session
from hfpose.engine.runtime.discovery import BACKENDS, available_backends
from hfpose.engine.runtime.model_files import ModelError, asset_path, read_onnx_metadata

NANODET = asset_path("detectors/nanodet_416.onnx")


def _has(backend: str) -> bool:
    return next(s for s in available_backends() if s.name == backend).available


def test_available_backends_lists_every_name_with_mapping_or_reason() -> None:
    rows = {row.name: row for row in available_backends()}
    assert set(rows) == set(BACKENDS)
    assert rows["cpu"].available and "CPUExecutionProvider" in rows["cpu"].maps_to
    for row in rows.values():
        if row.available:
            assert row.maps_to
        else:
            assert row.reason.startswith("not available:"), row


def test_auto_reports_the_backend_it_resolved_to() -> None:
    info = create_session(NANODET, "auto").runtime_info
    expected = next(r for r in available_backends() if r.name == "auto").maps_to
    assert info.requested == "auto" and info.fallback_reason is None
    # Without a GPU the choice is measured per model: the row names the candidates.
    assert expected.startswith("best available: ") and info.backend in expected


def test_cpu_session_reports_provider_shapes_and_metadata() -> None:
    session = create_session(NANODET, "cpu")
    info = session.runtime_info
    assert (info.requested, info.backend, info.provider) == ("cpu", "cpu", "CPUExecutionProvider")
    assert info.fallback_reason is None
    assert session.input_shape == (1, 3, None, None) and not session.dynamic_batch
    assert session.metadata["input_size"] == [416, 416]  # JSON decoded, not a string
    assert session.metadata == read_onnx_metadata(NANODET)
    outputs = dict(zip(session.output_names, session.run(np.zeros((1, 3, 416, 416))), strict=True))
    assert outputs["cls_stride8"].shape == (1, 52 * 52, 80)


def test_fixed_batch_model_runs_a_batch_item_by_item() -> None:
    session = create_session(NANODET, "cpu")
    rng = np.random.default_rng(1)
    batch = rng.normal(0, 1, (2, 3, 416, 416)).astype(np.float32)
    together = session.run(batch)
    one_by_one = [session.run(batch[i : i + 1]) for i in range(2)]
    for index, output in enumerate(together):
        assert output.shape[0] == 2
        np.testing.assert_allclose(output[1], one_by_one[1][index][0], atol=1e-5)


@pytest.mark.parametrize("backend", ["gpu", "npu"])
def test_missing_accelerator_falls_back_to_cpu_once_with_reason(backend, caplog) -> None:
    if _has(backend):
        pytest.skip(f"this machine has a {backend}")
    backends._warned.clear()
    with caplog.at_level(logging.WARNING, logger="hfpose.engine.runtime.backends"):
        session = create_session(NANODET, backend)
        create_session(NANODET, backend)
    info = session.runtime_info
    assert info.requested == backend
    assert (info.backend, info.provider) == ("cpu", "CPUExecutionProvider")
    assert backend.upper() in info.fallback_reason
    assert info.label.endswith(f"(fallback from {backend})")
    warnings = [r for r in caplog.records if f"backend '{backend}' unavailable" in r.message]
    assert len(warnings) == 1  # said once, not at every rebuild


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_provider_dropped_by_onnxruntime_is_read_back_fake_gpu(monkeypatch) -> None:
    """ORT silently runs on the CPU when a GPU provider cannot load; we must notice."""
    if "CUDAExecutionProvider" in discovery.ort_providers():
        pytest.skip("CUDA really is installed here")
    monkeypatch.setattr(backends, "best_gpu", lambda: ("ort", "CUDAExecutionProvider"))
    session = create_session(NANODET, "gpu")
    info = session.runtime_info
    assert info.backend == "cpu" and info.provider == "CPUExecutionProvider"
    assert "CUDAExecutionProvider was requested" in info.fallback_reason


@pytest.mark.skipif(not discovery.openvino_devices(), reason="openvino is not installed")
def test_openvino_session_agrees_with_onnxruntime() -> None:
    reference_session = create_session(NANODET, "cpu")
    blob = np.random.default_rng(2).uniform(-1, 1, (1, 3, 416, 416)).astype(np.float32)
    session = create_session(NANODET, "openvino")
    assert session.runtime_info.provider.startswith("OpenVINO")
    assert session.input_shape == reference_session.input_shape
    assert session.output_names == reference_session.output_names
    assert session.metadata == reference_session.metadata
    for expected, got in zip(reference_session.run(blob), session.run(blob), strict=True):
        # OpenVINO may run bf16 on CPUs that have it: compare at that precision.
        assert np.abs(expected - got).max() < 0.05 * max(1.0, np.abs(expected).max())


@pytest.mark.skipif(not discovery.openvino_devices(), reason="openvino is not installed")
def test_missing_openvino_device_falls_back_to_cpu() -> None:
    if "NPU" in discovery.openvino_devices():
        pytest.skip("this machine has an NPU")
    info = create_session(NANODET, "openvino:NPU").runtime_info
    assert info.backend == "cpu" and "NPU not found" in info.fallback_reason


def test_bad_model_files_give_one_line_errors(tmp_path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match="cannot load") as error:
        create_session(garbage, "cpu")
    assert "\n" not in str(error.value)
    with pytest.raises(ModelError, match="model not found"):
        create_session(tmp_path / "missing.onnx", "cpu")
    with pytest.raises(ModelError, match="not a model file"):
        create_session(tmp_path, "cpu")
    with pytest.raises(ModelError, match="not an ONNX model"):
        read_onnx_metadata(garbage)
    # A broken model stays a model error on every backend, never a silent fallback.
    with pytest.raises(ModelError):
        create_session(garbage, "gpu")


def test_unknown_backend_is_refused_and_torch_runs_onnx_on_the_cpu() -> None:
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        create_session(NANODET, "cuda")
    info = create_session(NANODET, "torch").runtime_info  # e.g. the detector beside a .pth
    assert info.backend == "cpu" and "runs .pth checkpoints" in info.fallback_reason
