"""The network: shapes, sizes, authors' key layout, checkpoint loading and ONNX export parity."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from hfpose.engine.runtime.model_files import read_onnx_metadata
from hfpose.models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from hfpose.models.config import PAPER_CONFIGS, load_config, model_input_size
from hfpose.models.hf_hrnet import build_model, count_conv_macs, count_parameters
from hfpose.training.export.export_cli import main as export_main
from hfpose.training.run.onnx_export import export_onnx, verify_onnx

torch.set_flush_denormal(True)

# The spec's table, measured on the authors' code.
EXPECTED = {
    "hf_hrnet_18_coco_256x192": (4_575_073, 0.6445, (17, 64, 48)),
    "hf_hrnet_18_coco_384x288": (4_575_073, 1.4195, (17, 96, 72)),
    "hf_hrnet_30_coco_256x192": (7_426_657, 1.0636, (17, 64, 48)),
    "hf_hrnet_30_coco_384x288": (7_426_657, 2.3472, (17, 96, 72)),
    "hf_hrnet_18_mpii_256x256": (4_575_024, 0.8591, (16, 64, 64)),
    "hf_hrnet_30_mpii_256x256": (7_426_608, 1.4180, (16, 64, 64)),
}


def realistic_weights(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights at a trained network's scale, with BatchNorm statistics calibrated on
    random inputs so activations stay O(1). The from-scratch init (~1e-3 everywhere) would make
    any parity check trivially small, and uncalibrated BN lets activations explode to 1e20."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0, (2.0 / fan_in) ** 0.5, generator=generator)
                if module.bias is not None:
                    module.bias.normal_(0, 0.1, generator=generator)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # cumulative average over the calibration batches
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
        model.train()
        height, width = model.input_hw
        model(torch.randn(3, 3, height, width, generator=generator))
    return model.eval()


def build(name: str) -> tuple[dict, torch.nn.Module]:
    cfg = load_config(name)
    model = build_model(cfg)
    width, height = model_input_size(cfg)
    model.input_hw = (height, width)
    return cfg, model


@pytest.fixture(scope="module")
def coco18() -> tuple[dict, torch.nn.Module]:
    cfg, model = build("hf_hrnet_18_coco_256x192")
    return cfg, realistic_weights(model)


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_sizes_and_output_shape_match_the_authors(name: str) -> None:
    params, gmacs, out_shape = EXPECTED[name]
    cfg = load_config(name)
    model = build_model(cfg).eval()
    width, height = model_input_size(cfg)
    assert count_parameters(model) == params
    assert round(count_conv_macs(model, (width, height)) / 1e9, 4) == gmacs
    with torch.no_grad():
        out = model(torch.zeros(2, 3, height, width))
    assert tuple(out.shape) == (2, *out_shape)


@pytest.mark.slow
def test_plain_form_cannot_run_at_384x288_as_the_spec_says() -> None:
    model = build_model(load_config("hf_hrnet_18_coco_256x192")).eval()
    with pytest.raises(RuntimeError), torch.no_grad():
        model(torch.zeros(1, 3, 384, 288))


@pytest.mark.slow
def test_state_dict_uses_the_authors_keys(coco18) -> None:
    keys = set(coco18[1].state_dict())
    for key in (
        "backbone.stem.conv1.conv.weight",
        "backbone.stem.conv2.dwonsample.0.weight",
        "backbone.stem.conv2.global1.1.weight",
        "backbone.transition0.1.0.0.weight",
        "backbone.transition0.1.0.3.running_var",
        "backbone.stage0.0.layers.0.cross_resolution_weighting.conv1.conv.weight",
        "backbone.stage0.0.layers.1.depthwise_convsfirst.1.bn.weight",
        "backbone.stage0.0.layers.0.global1.0.1.weight",
        "backbone.stage1.3.fuse_layers.2.0.1.3.weight",
        "backbone.stage2.1.fuse_layers.0.3.0.weight",
        "backbone.head_layer.projects.0.depthwise_conv.conv.weight",
        "backbone.head_layer.projects.3.pointwise_conv.bn.running_mean",
        "keypoint_head.final_layer.bias",
    ):
        assert key in keys, key


@pytest.mark.slow
def test_fusion_reproduces_the_released_in_place_arithmetic(coco18) -> None:
    """F_0 = 2 o_0 + sum f_0j(o_j); F_i = 2 f_i0(F_0) + o_i + sum_{j>=1, j!=i} f_ij(o_j)."""
    module = coco18[1].backbone.stage1[0]
    rng = torch.Generator().manual_seed(1)
    x = [
        torch.randn(1, c, 32 // 2**k, 24 // 2**k, generator=rng)
        for k, c in enumerate((48, 96, 192))
    ]
    with torch.no_grad():
        o = x
        for block in module.layers:
            o = block(o)
        f = module.fuse_layers
        f0 = 2 * o[0] + f[0][1](o[1]) + f[0][2](o[2])
        expected = [
            torch.relu(f0),
            torch.relu(2 * f[1][0](f0) + o[1] + f[1][2](o[2])),
            torch.relu(2 * f[2][0](f0) + o[2] + f[2][1](o[1])),
        ]
        got = module(x)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


def test_global_pool_only_on_the_lowest_branch_of_the_384x288_form() -> None:
    model = build_model(load_config("hf_hrnet_18_coco_384x288"))
    block = model.backbone.stage2[0].layers[0]
    kinds = [type(g[0]).__name__ for g in block.global1]
    assert kinds == ["AvgPool2d", "AvgPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]
    assert not any(
        isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in model.backbone.stage1.modules()
    )


@pytest.mark.slow
def test_model_trains(coco18) -> None:
    cfg, _ = coco18
    model = build_model(cfg).train()
    out = model(torch.randn(2, 3, 256, 192))
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)


@pytest.mark.slow
def test_norm_eval_keeps_batchnorm_statistics_while_the_weights_learn() -> None:
    cfg = load_config("hf_hrnet_18_coco_256x192")
    cfg["model"]["backbone"]["norm_eval"] = True
    model = build_model(cfg).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    model(torch.randn(2, 3, 256, 192)).square().mean().backward()
    assert all(not m.training for m in norms)
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norms, strict=True))
    assert all(m.weight.grad is not None for m in norms)
    assert model.keypoint_head.training  # only the statistics are frozen


# ---------------------------------------------------------------------------- checkpoints


def _mmpose_checkpoint(path: Path, model: torch.nn.Module, image_size: str) -> Path:
    config_text = f"model = dict(type='TopDown')\ndata_cfg = dict(\n    image_size={image_size},\n)"
    torch.save(
        {
            "meta": {"mmpose_version": "0.29.0", "config": config_text, "epoch": 210},
            "state_dict": model.state_dict(),
            "optimizer": {"state": {}, "param_groups": [{"lr": 2e-5}]},
        },
        path,
    )
    return path


@pytest.mark.slow
def test_mmpose_checkpoint_loads_back_bit_exact(tmp_path: Path, coco18) -> None:
    cfg, model = coco18
    path = _mmpose_checkpoint(tmp_path / "ckpt.pth", model, "[192, 256]")
    fresh = build_model(cfg)
    checkpoint = load_checkpoint(fresh, path, input_size_wh=model_input_size(cfg))
    assert checkpoint["meta"]["epoch"] == 210
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


@pytest.mark.slow
def test_bare_and_ddp_prefixed_state_dicts_load(tmp_path: Path, coco18) -> None:
    cfg, model = coco18
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
        tmp_path / "ddp.pth",
    )
    for name in ("bare.pth", "ddp.pth"):
        fresh = build_model(cfg)
        load_checkpoint(fresh, tmp_path / name)
        assert torch.equal(
            fresh.keypoint_head.final_layer.weight, model.keypoint_head.final_layer.weight
        )


@pytest.mark.slow
def test_384x288_checkpoint_refused_by_256x192_config(tmp_path: Path) -> None:
    big = build_model(load_config("hf_hrnet_18_coco_384x288"))
    path = _mmpose_checkpoint(tmp_path / "big.pth", big, "[288, 384]")
    cfg = load_config("hf_hrnet_18_coco_256x192")
    with pytest.raises(CheckpointError, match=r"trained at 288x384 .* config's input is 192x256"):
        load_checkpoint(build_model(cfg), path, input_size_wh=model_input_size(cfg))


def test_mpii_checkpoint_refused_by_coco_config(tmp_path: Path) -> None:
    mpii = build_model(load_config("hf_hrnet_18_mpii_256x256"))
    torch.save({"meta": {}, "state_dict": mpii.state_dict()}, tmp_path / "mpii.pth")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_model(load_config("hf_hrnet_18_coco_256x192")), tmp_path / "mpii.pth")
    message = str(info.value)
    assert (
        "wrongly shaped keys: keypoint_head.final_layer.weight (checkpoint (16, 48, 1, 1), model (17, 48, 1, 1))"
        in message
    )
    assert "predicts 16 keypoints and the config 17" in message


@pytest.mark.slow
def test_hf_hrnet_30_checkpoint_refused_by_18_config(tmp_path: Path) -> None:
    deep = build_model(load_config("hf_hrnet_30_coco_256x192"))
    torch.save(deep.state_dict(), tmp_path / "30.pth")
    with pytest.raises(
        CheckpointError, match=r"unexpected keys: backbone\.stage0\.2\..*18 and -30"
    ):
        load_checkpoint(build_model(load_config("hf_hrnet_18_coco_256x192")), tmp_path / "30.pth")
    shallow = build_model(load_config("hf_hrnet_18_coco_256x192"))
    torch.save(shallow.state_dict(), tmp_path / "18.pth")
    with pytest.raises(CheckpointError, match=r"missing keys: backbone\.stage0\.2\."):
        load_checkpoint(build_model(load_config("hf_hrnet_30_coco_256x192")), tmp_path / "18.pth")


@pytest.mark.slow
def test_non_strict_load_reports_what_did_not_fit(tmp_path: Path) -> None:
    mpii = build_model(load_config("hf_hrnet_18_mpii_256x256"))
    torch.save(mpii.state_dict(), tmp_path / "mpii.pth")
    coco = build_model(load_config("hf_hrnet_18_coco_256x192"))
    checkpoint = load_checkpoint(coco, tmp_path / "mpii.pth", strict=False)
    assert any("wrongly shaped" in p for p in checkpoint["load_problems"])
    assert torch.equal(coco.backbone.stem.conv1.conv.weight, mpii.backbone.stem.conv1.conv.weight)


def test_unreadable_checkpoints_are_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "corrupt.pth").write_bytes(b"\x80\x02not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(tmp_path / "corrupt.pth")
    torch.save(
        {"state_dict": {"w": torch.zeros(1)}, "meta": {"obj": Path("x")}}, tmp_path / "unsafe.pth"
    )
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(tmp_path / "unsafe.pth")  # weights_only refuses arbitrary pickles


# ---------------------------------------------------------------------------- export


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PAPER_CONFIGS if "coco" in n])
def test_onnx_export_matches_torch(tmp_path: Path, name: str) -> None:
    cfg, model = build(name)
    model = realistic_weights(model, seed=3)
    path = export_onnx(cfg, model, tmp_path / "m.onnx", batch=1)
    assert verify_onnx(model, path) < 1e-4
    meta = read_onnx_metadata(path)
    assert meta["config_name"] == name
    assert meta["input_size"] == list(model_input_size(cfg))
    assert meta["keypoint_names"][0] == "nose" and [1, 2] in meta["flip_pairs"]
    assert meta["mean"] == [0.485, 0.456, 0.406]


@pytest.mark.slow
def test_export_cli_dynamic_batch_and_checkpoint(tmp_path: Path, coco18, capsys) -> None:
    import onnxruntime as ort

    cfg, model = coco18
    ckpt = _mmpose_checkpoint(tmp_path / "ckpt.pth", model, "[192, 256]")
    out = tmp_path / "model.onnx"
    assert (
        export_main(["hf_hrnet_18_coco_256x192", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    )
    assert re.search(
        r"max \|diff\| / max \|output\| = \S+ \(tolerance 1e-04\) ok", capsys.readouterr().out
    )
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 3, 256, 192)).astype(np.float32)
    (heatmaps,) = session.run(["heatmaps"], {"input": x})
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert heatmaps.shape == (3, 17, 64, 48)
    assert np.abs(heatmaps - expected).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.slow
def test_export_cli_info_and_errors(tmp_path: Path, capsys) -> None:
    assert export_main(["hf_hrnet_30_coco_384x288", "--info"]) == 0
    assert "7,426,657 parameters, 2.3472 G conv MACs" in capsys.readouterr().out
    assert export_main(["no_such_config", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no config named" in capsys.readouterr().err
    mpii = build_model(load_config("hf_hrnet_18_mpii_256x256"))
    torch.save(mpii.state_dict(), tmp_path / "mpii.pth")
    code = export_main(
        [
            "hf_hrnet_18_coco_256x192",
            "--checkpoint",
            str(tmp_path / "mpii.pth"),
            "--out",
            str(tmp_path / "x.onnx"),
        ]
    )
    assert code == 1
    assert "does not fit this model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        export_main(["hf_hrnet_18_coco_256x192", "--batch", "zero", "--out", "x.onnx"])
    assert exit_info.value.code == 2
