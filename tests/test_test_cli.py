"""hfpose-test (training/scoring/test_cli.py): its score is the library's on the same checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hfpose.models.checkpoint import load_checkpoint
from hfpose.models.config import load_config
from hfpose.models.hf_hrnet import build_model
from hfpose.training.dataset.builder import build_dataset, dataset_layout
from hfpose.training.run.checkpointing import LATEST
from hfpose.training.run.prediction import predict_with_model
from hfpose.training.run.trainer import Trainer
from hfpose.training.scoring.evaluation import evaluate_dataset
from tests.helpers import COCO_IMAGES, small_options

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_test_cli_scores_a_checkpoint_on_a_coco_format_set(tmp_path: Path, four_people: Path):
    from hfpose.training.scoring.test_cli import main

    options = small_options(four_people, total_epochs=1)
    Trainer(load_config("hf_hrnet_18_coco_256x192", options), tmp_path, max_steps=1,
            progress=False).train()  # fmt: skip
    out = tmp_path / "metrics.json"
    code = main(["hf_hrnet_18_coco_256x192", "--checkpoint", str(tmp_path / LATEST),
                 "--ann", str(four_people), "--img-dir", str(COCO_IMAGES), "--use-gt-bbox",
                 "--metric", "pck", "--out-json", str(out), "--work-dir", str(tmp_path),
                 "--cfg-options", *options])  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["samples"] == 4 and report["flip_test"] is True

    # The CLI's score is the library's on the same checkpoint and people: same weights loaded,
    # same flip test and decoding, same metric (a PCK merely inside 0..100 would prove nothing).
    cfg = load_config("hf_hrnet_18_coco_256x192", [*options, "data_cfg.use_gt_bbox=true"])
    model = build_model(cfg)
    load_checkpoint(model, tmp_path / LATEST, input_size_wh=(64, 128))
    entry = {"type": "TopDownCocoDataset", "ann_file": str(four_people),
             "img_prefix": str(COCO_IMAGES)}  # fmt: skip
    dataset = build_dataset(cfg, "test", entry=entry)
    predictions = predict_with_model(model, dataset, cfg, torch.device("cpu"))
    expected = evaluate_dataset(
        "pck", predictions, dataset, dataset_layout(cfg), cfg["data_cfg"], tmp_path / "in_process"
    )
    assert report["metric"] == "pck" and report["metrics"] == pytest.approx(expected, abs=1e-9)
