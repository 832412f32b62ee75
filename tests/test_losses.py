"""training/run/losses.py: the heatmap loss as mmpose computes it."""

from __future__ import annotations

import pytest
import torch

from hfpose.training.run.losses import JointsMSELoss

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_joints_mse_masks_weightless_joints() -> None:
    output = torch.zeros(2, 3, 4, 4)
    target = torch.ones(2, 3, 4, 4)
    weight = torch.tensor([[[1.0], [0.0], [1.0]], [[0.0], [0.0], [1.0]]])
    loss = JointsMSELoss(use_target_weight=True)(output, target, weight)
    # mmpose: mean over all N*K*H*W entries, masked ones contributing 0
    assert loss.item() == pytest.approx(3 / 6)
