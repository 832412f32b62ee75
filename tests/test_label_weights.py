"""Teacher labels weigh their score (gated at 0.3), human labels weigh 1, in the heatmap loss.

Real components: the COCO fixture images cut into a real crop cache, the config's own pipeline
without augmentation, and the real loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hfpose.models.config import load_config
from hfpose.training.dataset.builder import build_dataset
from hfpose.training.dataset.crop_cache import build_cache
from hfpose.training.dataset.label_weights import TEACHER_SCORE_GATE, gate_weights, label_weights
from hfpose.training.run.losses import JointsMSELoss

CONFIG = "hfpose_hf_hrnet_18_coco_256x192_lspet_mpii"
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_SHOULDER = 0, 1, 2, 5
NO_AUGMENTATION = [
    {"type": "TopDownAffine"},
    {"type": "ToTensor"},
    {"type": "NormalizeTensor", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    {"type": "TopDownGenerateTarget", "sigma": 2},
]


def taught(annotation: dict) -> dict:
    """The annotation as hfpose-teacher-label writes it: the teacher labelled the nose (0.8) and
    the left eye (0.2, under the gate), and also scored the human-labelled left shoulder 0.1."""
    keypoints = np.asarray(annotation["keypoints"], dtype=float).reshape(17, 3)
    centre = keypoints[keypoints[:, 2] > 0, :2].mean(axis=0)  # inside the person: on the heatmap
    keypoints[[NOSE, LEFT_EYE], :2] = centre
    teacher = keypoints.copy()
    teacher[:, 2] = 0.9
    teacher[NOSE, 2], teacher[LEFT_EYE, 2], teacher[LEFT_SHOULDER, 2] = 0.8, 0.2, 0.1
    pseudo = np.zeros(17, int)
    pseudo[[NOSE, LEFT_EYE]] = 1
    keypoints[[NOSE, LEFT_EYE], 2] = 2
    keypoints[RIGHT_EYE, 2] = 0
    keypoints[LEFT_SHOULDER, 2] = 2
    return {
        **annotation,
        "keypoints": keypoints.ravel().tolist(),
        "pseudo_keypoints": pseudo.tolist(),
        "teacher_keypoints": teacher.ravel().tolist(),
    }


def test_label_weights_human_wins_teacher_by_score_and_gate():
    annotation = taught({"keypoints": [100.0, 100.0, 2] * 17})
    raw = label_weights(annotation, 17)
    assert raw[NOSE] == pytest.approx(0.8) and raw[LEFT_EYE] == pytest.approx(0.2)
    assert raw[RIGHT_EYE] == 0 and raw[LEFT_SHOULDER] == 1  # human label, whatever the teacher
    gated = gate_weights(raw)
    assert gated[LEFT_EYE] == 0 and gated[NOSE] == pytest.approx(0.8)
    assert TEACHER_SCORE_GATE == 0.3
    # BlazePose pseudo-labels (no teacher scores) keep weight 1
    blaze = {"keypoints": [1.0, 1.0, 2] * 17, "pseudo_keypoints": [1] * 5 + [0] * 12}
    assert np.all(label_weights(blaze, 17) == 1)


@pytest.fixture(scope="module")
def taught_sets(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    coco = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    people = [a for a in coco["annotations"] if a.get("num_keypoints", 0) >= 10]
    coco["annotations"] = [taught(a) for a in people]
    root = tmp_path_factory.mktemp("label_weights")
    ann_file = root / "taught.json"
    ann_file.write_text(json.dumps(coco))
    build_cache(coco, data_dir / "coco", root / "cache", "coco", "all", None)
    entries = {
        "cache": {"type": "CropCacheDataset", "cache_dir": str(root / "cache")},
        "json": {
            "type": "TopDownCocoDataset",
            "ann_file": str(ann_file),
            "img_prefix": str(data_dir / "coco"),
        },
    }
    return entries


FROM_FILE = [
    {"type": "LoadImageFromFile"},
    {"type": "TopDownGetBboxCenterScale", "padding": 1.25},
]


@pytest.mark.parametrize("source", ["cache", "json"])
def test_targets_and_loss_carry_the_label_weights(taught_sets, source):
    pipeline = NO_AUGMENTATION if source == "cache" else FROM_FILE + NO_AUGMENTATION
    cfg = load_config(
        CONFIG,
        [
            f"data.train={json.dumps(taught_sets[source])}",
            f"train_pipeline={json.dumps(pipeline)}",
        ],
    )
    dataset = build_dataset(cfg, "train")
    assert len(dataset) > 0
    for index in range(len(dataset)):
        sample = dataset[index]
        weight = sample["target_weight"][:, 0]
        assert weight[NOSE] == pytest.approx(0.8)
        assert weight[LEFT_EYE] == 0 and weight[RIGHT_EYE] == 0
        assert weight[LEFT_SHOULDER] == 1
        assert sample["target"][NOSE].max() == pytest.approx(1.0)  # the Gaussian is drawn

    # mmpose's weighted MSE multiplies prediction and target by the weight, so a wrong teacher
    # nose costs 0.8^2 of a wrong human joint, and a gated eye nothing
    sample = dataset[0]
    target = torch.from_numpy(sample["target"])[None]
    weight = torch.from_numpy(sample["target_weight"])[None]
    loss = JointsMSELoss(use_target_weight=True)

    def wrong(joint: int) -> float:
        output = target.clone()
        output[0, joint] = 0
        return float(loss(output, target, weight))

    assert wrong(NOSE) / wrong(LEFT_SHOULDER) == pytest.approx(0.64, rel=1e-4)
    assert wrong(LEFT_EYE) == 0


def test_flip_swaps_the_weights_with_the_joints(taught_sets):
    flip = [{"type": "TopDownRandomFlip", "flip_prob": 1.0}, *NO_AUGMENTATION]
    entry = f"data.train={json.dumps(taught_sets['cache'])}"
    plain = build_dataset(
        load_config(CONFIG, [entry, f"train_pipeline={json.dumps(NO_AUGMENTATION)}"]), "train"
    )
    flipped = build_dataset(
        load_config(CONFIG, [entry, f"train_pipeline={json.dumps(flip)}"]), "train"
    )
    partner = np.arange(17)
    for a, b in plain.ann_info["flip_pairs"]:
        partner[a], partner[b] = b, a
    for index in range(len(plain)):
        before = plain[index]["target_weight"][:, 0]
        after = flipped[index]["target_weight"][:, 0]
        assert np.allclose(after, before[partner])
        assert after[NOSE] == pytest.approx(0.8)
