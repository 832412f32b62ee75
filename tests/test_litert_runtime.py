"""LiteRT/XNNPACK as the keypoint model's CPU runtime, on real sessions of the shipped HF-HRNet-18
and its shipped ``.tflite`` copy: what runs, what it computes against ONNX Runtime, the copy's
provenance check, ``auto``'s probe and the converter's rewrites. No timing is asserted."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest

from hfpose.engine.keypoints.estimator import DEFAULT_MODEL
from hfpose.engine.runtime.auto import file_sha256
from hfpose.engine.runtime.backends import create_session
from hfpose.engine.runtime.discovery import available_backends
from hfpose.engine.runtime.litert import record_path, tflite_path
from hfpose.engine.runtime.model_files import asset_path
from tests.helpers import real_crops

pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed")

MODEL = asset_path(DEFAULT_MODEL)
SHIPPED_TFLITE = tflite_path(MODEL)


@pytest.fixture
def model_with_copy(tmp_path) -> Path:
    """The shipped model and its LiteRT copy with its record, in a folder of their own."""
    folder = tmp_path / "model"
    folder.mkdir()
    for source in (MODEL, SHIPPED_TFLITE, record_path(SHIPPED_TFLITE)):
        (folder / source.name).write_bytes(source.read_bytes())
    return folder / MODEL.name


def test_shipped_copy_computes_the_onnx_files_heatmaps(data_dir) -> None:
    session = create_session(MODEL, "litert", num_threads=1)
    info = session.runtime_info
    assert (info.backend, info.provider, info.fallback_reason) == ("litert", "LiteRT XNNPACK", None)
    assert session.metadata["keypoint_names"][0] == "nose"  # read from the ONNX file
    crops = real_crops(MODEL, data_dir)
    expected = create_session(MODEL, "cpu", num_threads=1, precision="fp32").run(crops)[0]
    heatmaps = session.run(crops)[0]  # a batch of 4 through a batch-1 model
    assert heatmaps.shape == expected.shape == (len(crops), 17, 64, 48)
    assert np.abs(heatmaps - expected).max() <= 1e-4 * np.abs(expected).max()


def test_crops_run_side_by_side_each_on_its_own_interpreter(data_dir) -> None:
    session = create_session(MODEL, "litert", num_threads=1)
    crops = [crop[None] for crop in real_crops(MODEL, data_dir)]
    one_by_one = [session.run(crop)[0] for crop in crops]
    with ThreadPoolExecutor(4) as pool:
        side_by_side = [out[0] for out in pool.map(session.run, crops)]
    for alone, together in zip(one_by_one, side_by_side, strict=True):
        np.testing.assert_array_equal(alone, together)


def test_copy_of_another_onnx_file_is_refused_and_the_cpu_runs(model_with_copy, caplog) -> None:
    proto = onnx.load(str(model_with_copy))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "note", json.dumps("a retrained model")
    onnx.save(proto, str(model_with_copy))  # same place, other bytes: the copy is stale
    with caplog.at_level(logging.WARNING):
        info = create_session(model_with_copy, "litert", num_threads=1).runtime_info
    assert info.backend == "cpu" and "hfpose-export --tflite" in info.fallback_reason
    assert "made from another" in caplog.text and "hfpose-export --tflite" in caplog.text


def test_copy_below_parity_or_without_its_record_is_not_used(model_with_copy) -> None:
    record = record_path(tflite_path(model_with_copy))
    record.write_text(json.dumps({**json.loads(record.read_text()), "peak_agreement": 0.5}))
    assert create_session(model_with_copy, "litert").runtime_info.backend == "cpu"
    record.unlink()
    assert create_session(model_with_copy, "litert").runtime_info.backend == "cpu"


@pytest.mark.slow  # end to end: auto's probe times every runtime on real sessions
def test_auto_times_litert_beside_the_other_runtimes(cache, model_with_copy) -> None:
    info = create_session(model_with_copy, "auto", num_threads=1).runtime_info
    (entry,) = json.loads(cache.read_text()).values()
    assert "litert" in entry["median_cpu_ms"] and "cpu" in entry["median_cpu_ms"]
    assert set(entry["crowd_of_4_cpu_ms_per_crop"]) == set(entry["median_cpu_ms"])
    assert info.backend == entry["choice"]
    # Without the copy the question changes: litert is no longer a candidate.
    tflite_path(model_with_copy).unlink()
    assert create_session(model_with_copy, "auto", num_threads=1).runtime_info.backend != "litert"


def test_settings_dialog_offers_litert_with_what_it_maps_to(qtbot) -> None:
    from hfpose.app.settings import AppSettings
    from hfpose.app.settings_dialog import SettingsDialog

    row = next(r for r in available_backends() if r.name == "litert")
    assert row.available and "XNNPACK" in row.maps_to
    dialog = SettingsDialog(AppSettings(), available_backends())
    qtbot.addWidget(dialog)
    assert dialog.backend_buttons["litert"].isEnabled()


def test_shipped_record_belongs_to_the_shipped_model() -> None:
    record = json.loads(record_path(SHIPPED_TFLITE).read_text())
    assert record["onnx_sha256"] == file_sha256(MODEL) and record["peak_agreement"] >= 0.95


@pytest.mark.slow  # the whole network in torch, twice, per precision
@pytest.mark.parametrize("integer", [False, True], ids=["fp32", "int8"])
def test_converter_rewrites_compute_the_same_network(integer) -> None:
    """The XNNPACK spellings (broadcast upsample-add/mul, concat upsampling, pooling as a
    depthwise convolution; for int8 also the weighting's k x k pooling) against the network as
    written, in torch; the conversion itself needs litert-torch and runs in hfpose-export
    --tflite's converter environment."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from hfpose.training.export.convert.onnx_to_tflite import (
        network_from_onnx,
        xnnpack_friendly_network,
    )

    network, (width, height) = network_from_onnx(MODEL)
    sample = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    originals = (F.interpolate, F.avg_pool2d)
    with torch.no_grad():
        expected = network(sample)
        with xnnpack_friendly_network(integer):
            assert F.interpolate is not originals[0]
            rewritten = network(sample)
    assert (F.interpolate, F.avg_pool2d) == originals
    assert torch.abs(rewritten - expected).max() <= 1e-5 * torch.abs(expected).max()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_export_without_a_converter_says_how_to_get_one(monkeypatch, capsys, precision) -> None:
    from hfpose.training.export.export_cli import main

    monkeypatch.delenv("HFPOSE_CONVERTER_PYTHON", raising=False)
    assert main(["--tflite", str(MODEL), "--tflite-precision", precision]) == 2
    assert "--converter-python" in capsys.readouterr().err


def test_int8_copy_lies_beside_the_fp32_one() -> None:
    assert tflite_path(MODEL, "int8").name == "hf_hrnet_18_coco_256x192.int8.tflite"
    assert tflite_path(MODEL, "int8").parent == SHIPPED_TFLITE.parent


def test_int8_search_groups_every_operator_by_the_resolution_it_works_at() -> None:
    """The int8 layer search's groups, read from the shipped copy: the input's padding, the stem,
    the four branches (branch 0 at a quarter of the input, where the released fusion doubles the
    tensors in every module) and the lowest branch's context pooling; every operator the
    quantizer may quantize is in exactly one."""
    from ai_edge_litert.interpreter import Interpreter

    from hfpose.training.export.convert.tflite_int8 import FLOAT_OPERATORS, resolution_groups

    model = SHIPPED_TFLITE.read_bytes()
    groups = resolution_groups(model)
    assert set(groups) == {"256", "128", "64", "32", "16", "8", "4"}
    names = [name for group in groups.values() for name in group]
    operators = Interpreter(model_content=model)._get_ops_details()
    assert len(names) == len(set(names))
    assert len(names) == sum(op["op_name"] not in FLOAT_OPERATORS for op in operators)
