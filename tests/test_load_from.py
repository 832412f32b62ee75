"""``load_from``: weights from a checkpoint or read back from an exported (BN-folded) ONNX.

Real components: the real HF-HRNet (small, as in test_trainer.py), training/export/export_cli.py's ONNX
export, ONNX Runtime, real augmented crops of the mmpose fixture images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hfpose.models.checkpoint import CheckpointError, save_checkpoint
from hfpose.models.config import load_config, model_input_size
from hfpose.models.hf_hrnet import build_model
from hfpose.training.dataset.builder import build_dataset
from hfpose.training.run.load_from import (
    calibrate_batchnorm,
    calibration_batches,
    load_fused_onnx,
    load_initial_weights,
)
from hfpose.training.run.onnx_export import export_onnx
from hfpose.training.run.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
COCO = REPO / "tests" / "data" / "coco"


def small_config(**extra: str) -> dict:
    options = {
        "data_cfg.image_size": "[64,128]",
        "data_cfg.heatmap_size": "[16,32]",
        "model.backbone.extra.stages_spec.num_modules": "[1,1,1]",
        "data.samples_per_gpu": "4",
        "data.workers_per_gpu": "0",
        "data.train.ann_file": str(COCO / "test_coco.json"),
        "data.train.img_prefix": str(COCO),
        "evaluation.interval": "0",
        "amp": "none",
        **extra,
    }
    return load_config("hf_hrnet_18_coco_256x192", [f"{k}={v}" for k, v in options.items()])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trained_looking_model(cfg: dict, seed: int = 0) -> torch.nn.Module:
    """A model whose BNs are far from identity (negative gammas included), as after training."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight)
            if isinstance(module, torch.nn.BatchNorm2d):
                channels = module.num_features
                module.weight.copy_(torch.randn(channels) * 0.8)
                module.bias.copy_(torch.randn(channels) * 0.3)
                module.running_mean.copy_(torch.randn(channels) * 0.5)
                module.running_var.copy_(torch.rand(channels) * 3 + 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, torch.Tensor]:
    """(config, the exported ONNX, a batch of real augmented training crops)."""
    cfg = small_config()
    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    export_onnx(cfg, trained_looking_model(cfg), path)
    dataset = build_dataset(cfg, "train", seed=0)
    crops = torch.cat(list(calibration_batches(dataset, samples=64, batch_size=16, seed=1)))
    return cfg, path, crops


def onnx_heatmaps(path: Path, images: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": images.numpy()})[0]


def relative_difference(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


@pytest.mark.slow
def test_onnx_read_back_reproduces_ort_in_eval_and_approximately_in_train_mode(exported):
    cfg, path, crops = exported
    expected = onnx_heatmaps(path, crops)
    model = build_model(cfg)
    summary = load_initial_weights(
        model, path, model_input_size(cfg), calibration_batches_of(crops)
    )
    assert "64 training crops" in summary

    with torch.no_grad():
        eval_out = model.eval()(crops).numpy()
        train_out = model.train()(crops).numpy()
    assert relative_difference(eval_out, expected) < 1e-4

    # Train mode normalises with the batch's own statistics: close to the fused model when the
    # BNs were calibrated, far off without calibration (running stats 0/1 only).
    uncalibrated = build_model(cfg)
    load_fused_onnx(uncalibrated, path, model_input_size(cfg))
    with torch.no_grad():
        uncalibrated_train = uncalibrated.train()(crops).numpy()
    calibrated_error = relative_difference(train_out, expected)
    assert calibrated_error < 0.1
    assert calibrated_error < 0.2 * relative_difference(uncalibrated_train, expected)
    peaks = train_out.reshape(*train_out.shape[:2], -1).argmax(-1)
    expected_peaks = expected.reshape(*expected.shape[:2], -1).argmax(-1)
    assert (peaks == expected_peaks).mean() > 0.8


def calibration_batches_of(crops: torch.Tensor, batch: int = 16):
    return (crops[i : i + batch] for i in range(0, len(crops), batch))


@pytest.mark.slow
def test_calibrated_batchnorm_is_positive_and_matches_output_statistics(exported):
    cfg, path, crops = exported
    model = build_model(cfg)
    fused_bias = load_fused_onnx(model, path, model_input_size(cfg))
    calibrate_batchnorm(model, fused_bias, calibration_batches_of(crops))
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert (module.weight > 0).all(), name
            assert torch.allclose(module.weight**2, module.running_var + module.eps, rtol=1e-4)
            assert torch.allclose(module.bias - module.running_mean, fused_bias[name], atol=1e-4)


@pytest.mark.slow
def test_checkpoint_load_from_starts_the_trainer_from_its_weights(exported, tmp_path):
    cfg, _, _ = exported
    source = trained_looking_model(cfg, seed=3)
    checkpoint = tmp_path / "start.pth"
    save_checkpoint(checkpoint, source, {"epoch": 7, "image_size": [64, 128]})
    cfg = small_config(load_from=str(checkpoint), total_epochs="1")
    trainer = Trainer(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    for key, value in source.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[key], value), key
    assert "(epoch 7)" in (tmp_path / "run" / "train.log").read_text()


@pytest.mark.slow
def test_weights_continue_at_another_input_size_and_say_so(exported, tmp_path):
    """Progressive resolution: a run at 128x128 starts from a file exported at 64x128."""
    cfg, path, _ = exported
    wider = small_config(**{"data_cfg.image_size": "[128,128]", "data_cfg.heatmap_size": "[32,32]"})
    from_onnx = build_model(wider)
    summary = load_initial_weights(from_onnx, path, model_input_size(wider))
    assert "trained at 64x128, continued at 128x128" in summary
    checkpoint = tmp_path / "narrow.pth"
    save_checkpoint(checkpoint, build_model(cfg), {"epoch": 2, "image_size": [64, 128]})
    summary = load_initial_weights(build_model(wider), checkpoint, model_input_size(wider))
    assert "(epoch 2, trained at 64x128, continued at 128x128)" in summary
    with pytest.raises(CheckpointError, match="exported at 64x128"):
        load_fused_onnx(build_model(wider), path, model_input_size(wider))


@pytest.mark.slow
def test_files_that_do_not_fit_are_refused_in_one_line(exported, tmp_path):
    cfg, path, _ = exported
    size = model_input_size(cfg)
    deeper = small_config(**{"model.backbone.extra.stages_spec.num_modules": "[1,2,1]"})
    with pytest.raises(CheckpointError, match="convolutions in the file"):
        load_initial_weights(build_model(deeper), path, model_input_size(deeper))
    mpii = small_config(**{"model.keypoint_head.out_channels": "16"})
    with pytest.raises(CheckpointError, match="16"):
        load_initial_weights(build_model(mpii), path, model_input_size(mpii))
    not_onnx = tmp_path / "text.onnx"
    not_onnx.write_text("not a model")
    with pytest.raises(CheckpointError, match="not a readable ONNX"):
        load_initial_weights(build_model(cfg), not_onnx, size)
    with pytest.raises(CheckpointError, match="not found"):
        load_initial_weights(build_model(cfg), tmp_path / "missing.pth", size)
    other = tmp_path / "deeper.pth"
    save_checkpoint(other, build_model(deeper), {})
    with pytest.raises(CheckpointError, match="stage depth differs") as error:
        load_initial_weights(build_model(cfg), other, size)
    assert "\n" not in str(error.value)


def test_pickled_objects_are_refused_weights_only(tmp_path, exported):
    cfg, _, _ = exported
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {}, "payload": Path("x")}, unsafe)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_initial_weights(build_model(cfg), unsafe, model_input_size(cfg))
