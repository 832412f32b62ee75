"""training/run/trainer.py with the real HF-HRNet made small: exact resume, loader workers, a NaN
loss, overfitting four people, two-process DDP, and the checkpoint it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hfpose.models.checkpoint import load_checkpoint
from hfpose.models.config import load_config
from hfpose.models.hf_hrnet import build_model
from hfpose.training.dataset.builder import build_dataset
from hfpose.training.run.checkpointing import LATEST, TrainingError
from hfpose.training.run.prediction import predict_with_model
from hfpose.training.run.trainer import Trainer
from hfpose.training.scoring.evaluation import pck_bbox
from tests.helpers import COCO_IMAGES, NO_AUGMENTATION, REPO, small_options

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _state_equal(a[key], b[key])
        elif torch.is_tensor(a[key]):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        else:
            assert a[key] == b[key], key


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path: Path, four_people: Path) -> None:
    # 4 people, batch 2: 2 steps per epoch, 2 epochs; the interrupted run stops mid-epoch 2
    cfg = load_config("hf_hrnet_18_coco_256x192", small_options(four_people, total_epochs=2))
    straight = Trainer(cfg, tmp_path / "straight", progress=False)
    straight.train()

    first = Trainer(cfg, tmp_path / "resumed", max_steps=2, progress=False)
    first.train()
    saved = torch.load(tmp_path / "resumed" / LATEST, map_location="cpu", weights_only=True)
    assert saved["meta"]["iter"] == 2 and saved["meta"]["epoch"] == 1
    _state_equal(saved["optimizer"], first.optimizer.state_dict())
    stopped = Trainer(cfg, tmp_path / "resumed", resume=True, max_steps=1, progress=False)
    _state_equal(stopped.optimizer.state_dict(), saved["optimizer"])
    stopped.train()  # stops inside epoch 2
    assert torch.load(tmp_path / "resumed" / LATEST, weights_only=True)["meta"]["epoch_step"] == 1
    resumed = Trainer(cfg, tmp_path / "resumed", resume=True, progress=False)
    resumed.train()

    assert resumed.position.global_step == straight.position.global_step == 4
    _state_equal(resumed.model.state_dict(), straight.model.state_dict())
    _state_equal(resumed.optimizer.state_dict(), straight.optimizer.state_dict())
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(cfg, tmp_path / "straight", progress=False)
    other = load_config("hf_hrnet_18_coco_256x192", small_options(four_people, total_epochs=3,
                        **{"model.backbone.extra.stages_spec.num_modules": "[1,2,1]"}))  # fmt: skip
    with pytest.raises(TrainingError, match="does not fit this config: missing keys"):
        Trainer(other, tmp_path / "straight", resume=True, progress=False)


@pytest.mark.slow
def test_a_persistent_loader_worker_gives_each_epoch_the_same_batches(
    tmp_path: Path, four_people: Path
) -> None:
    """One DataLoader with a persistent worker serves all epochs: same weights as in-process."""
    trained = []
    for workers in (0, 1):
        options = small_options(four_people, total_epochs=2, **{"data.workers_per_gpu": workers})
        cfg = load_config("hf_hrnet_18_coco_256x192", options)
        trainer = Trainer(cfg, tmp_path / f"w{workers}", progress=False)
        trainer.train()
        assert trainer.position.global_step == 4
        trained.append(trainer.model.state_dict())
    _state_equal(trained[0], trained[1])


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, four_people: Path
) -> None:
    # warm-up from 1e-35 x 1e30: step 1 is sane, step 2 blows the weights up, step 3's loss is inf
    options = small_options(
        four_people,
        **{"total_epochs": 5, "data.samples_per_gpu": 4, "optimizer.lr": "1.0e+30",
           "lr_config.warmup_ratio": "1.0e-35", "auto_scale_lr": "false"},
    )  # fmt: skip
    trainer = Trainer(load_config("hf_hrnet_18_coco_256x192", options), tmp_path, progress=False)
    with pytest.raises(TrainingError, match=r"global step \d") as error:
        trainer.train()
    assert "last good checkpoint" in str(error.value)
    kept = torch.load(tmp_path / LATEST, weights_only=True)
    assert kept["meta"]["iter"] == trainer.position.global_step  # the failing step was not saved
    assert all(
        torch.isfinite(v).all() for v in kept["state_dict"].values() if v.is_floating_point()
    )


@pytest.mark.slow
def test_overfits_four_people_to_pck_005_above_09(tmp_path: Path, four_people: Path) -> None:
    steps = 120
    options = small_options(
        four_people,
        **{"data.samples_per_gpu": 4, "optimizer.lr": "5.0e-3", "auto_scale_lr": "false",
           "lr_config.warmup_iters": 10, "total_epochs": 1, "amp": "auto",
           "model.test_cfg.flip_test": "false", "log_config.interval": 20},
    )  # fmt: skip
    cfg = load_config("hf_hrnet_18_coco_256x192", options)
    cfg["train_pipeline"] = NO_AUGMENTATION
    cfg["data"]["train"] = [dict(cfg["data"]["train"])]  # one epoch of `steps` repeated draws
    cfg["data"]["train_samples_per_epoch"] = 4 * steps
    trainer = Trainer(cfg, tmp_path, progress=False)
    trainer.train()
    assert trainer.position.global_step == steps

    dataset = build_dataset(cfg, "val")
    predictions = predict_with_model(trainer.model, dataset, cfg, torch.device("cpu"))
    records = [dataset.records[i] for i in predictions["index"]]
    gt = np.stack([r["joints_3d"] for r in records])
    mask = np.stack([r["joints_3d_visible"][:, 0] > 0 for r in records])
    boxes = np.stack([r["bbox"] for r in records])
    assert pck_bbox(predictions["keypoints"], gt, mask, boxes, 0.05) > 0.9

    # the same model exported and scored through the app's PoseEstimator (engine runtime)
    from hfpose.training.run.onnx_export import export_onnx
    from hfpose.training.scoring.test_cli import main as test_main

    export_onnx(cfg, trainer.model.float().eval(), tmp_path / "model.onnx")
    scores = {}
    for flag, path in (("--checkpoint", tmp_path / LATEST), ("--model", tmp_path / "model.onnx")):
        out = tmp_path / f"metrics{flag}.json"
        code = test_main(["hf_hrnet_18_coco_256x192", flag, str(path), "--ann", str(four_people),
                          "--img-dir", str(COCO_IMAGES), "--use-gt-bbox", "--metric", "pck",
                          "--out-json", str(out), "--work-dir", str(tmp_path), "--cfg-options",
                          *options])  # fmt: skip
        assert code == 0
        scores[flag] = json.loads(out.read_text())
    # the checkpoint ran in torch; the ONNX file in the engine, on hfpose-test's default backend
    assert scores["--checkpoint"]["runtime"].startswith("torch ")
    assert scores["--model"]["runtime"].startswith("cpu · CPUExecutionProvider")
    assert scores["--model"]["metrics"]["PCK"] == scores["--checkpoint"]["metrics"]["PCK"] > 90


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process_accumulating(
    tmp_path: Path, four_people: Path
) -> None:
    """2 gloo processes x batch 1 == 1 process x 2 accumulated micro-batches of 1 (same shards,
    same BatchNorm groups): the same losses step by step and the same weights."""
    common = small_options(four_people, total_epochs=1, **{"data.samples_per_gpu": 1})
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    ddp = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "hfpose.training.run.train_cli", "hf_hrnet_18_coco_256x192",
           "--work-dir", str(tmp_path / "ddp"), "--no-progress", "--cfg-options", *common]  # fmt: skip
    single = [sys.executable, "-m", "hfpose.training.run.train_cli", "hf_hrnet_18_coco_256x192",
              "--work-dir", str(tmp_path / "single"), "--no-progress", "--cfg-options", *common,
              "optimizer_config.cumulative_iters=2"]  # fmt: skip
    for command in (ddp, single):
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240
        )
        assert done.returncode == 0, done.stderr[-3000:]
    logs = {}
    for name in ("ddp", "single"):
        rows = (tmp_path / name / "log.csv").read_text().splitlines()[1:]
        logs[name] = [float(row.split(",")[3]) for row in rows]
    assert len(logs["ddp"]) == 2
    np.testing.assert_allclose(logs["ddp"], logs["single"], rtol=1e-5)
    a = torch.load(tmp_path / "ddp" / LATEST, weights_only=True)
    b = torch.load(tmp_path / "single" / LATEST, weights_only=True)
    assert a["meta"]["world_size"] == 2 and b["meta"]["world_size"] == 1
    # weights only: BatchNorm running statistics differ by design (DDP keeps rank 0's, the
    # accumulating process updates them once per micro-batch)
    weights = [k for k in a["state_dict"] if not k.endswith(("running_mean", "running_var",
                                                                "num_batches_tracked"))]  # fmt: skip
    assert len(weights) > 100
    for key in weights:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=1e-4, atol=1e-6)


def test_checkpoint_loads_with_the_models_loader(tmp_path: Path, four_people: Path) -> None:
    """Also: a loader worker forked after the main process warped an image with OpenCV (its
    thread pool then exists) must not hang on its first warp."""
    import threading

    cv2.warpAffine(np.zeros((1500, 1500, 3), np.uint8), np.eye(2, 3), (1200, 1200))
    options = small_options(four_people, total_epochs=1, **{"data.workers_per_gpu": 1})
    cfg = load_config("hf_hrnet_18_coco_256x192", options)
    run = threading.Thread(target=Trainer(cfg, tmp_path, max_steps=1, progress=False).train)
    run.start()
    run.join(timeout=120)
    assert not run.is_alive(), "the training step with one loader worker hung"
    # batch 2 on one process against the paper's 256: the lr is scaled and the log says so
    assert (
        "learning rate scaled linearly 0.002 -> 1.5625e-05" in (tmp_path / "train.log").read_text()
    )
    model = build_model(cfg)
    checkpoint = load_checkpoint(model, tmp_path / LATEST, input_size_wh=(64, 128))
    assert all(k.startswith(("backbone.", "keypoint_head.")) for k in checkpoint["state_dict"])
    assert checkpoint["meta"]["config_name"] == "hf_hrnet_18_coco_256x192"
    # The layout every earlier trainer wrote, which --resume of a running training reads back.
    checkpoint = torch.load(tmp_path / LATEST, map_location="cpu", weights_only=True)
    assert set(checkpoint) == {"meta", "state_dict", "optimizer", "scaler", "rng"}
    assert set(checkpoint["meta"]) == {
        "config_name", "config", "epoch", "iter", "epoch_step", "image_size", "heatmap_size",
        "dataset_info", "world_size", "global_batch", "lr_scale", "best", "torch_version", "time",
    }  # fmt: skip
    assert set(checkpoint["rng"]) == {"python", "numpy", "torch"}
