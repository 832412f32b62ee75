"""The paper's heatmap loss: mean squared error weighted per joint (mmpose's JointsMSELoss)."""

from __future__ import annotations

import torch
from torch import nn


class JointsMSELoss(nn.Module):
    """MSE between predicted and target heatmaps, each joint's map multiplied by its weight.

    mmpose averages the per-joint MSE over joints, which equals one mean over (N, K, H*W): joints
    with weight 0 (absent or outside the crop) add 0 but still count in the mean, exactly as in the
    authors' training, so loss values are comparable with their logs.
    """

    def __init__(self, use_target_weight: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None
    ) -> torch.Tensor:
        n, k = output.shape[:2]
        pred = output.reshape(n, k, -1).float()
        gt = target.reshape(n, k, -1).float()
        if self.use_target_weight:
            if target_weight is None:
                raise ValueError("JointsMSELoss(use_target_weight=True) needs target_weight")
            weight = target_weight.reshape(n, k, 1).float()
            pred = pred * weight
            gt = gt * weight
        return torch.mean((pred - gt) ** 2) * self.loss_weight


def build_loss(head_cfg: dict) -> JointsMSELoss:
    """The loss named by ``model.keypoint_head.loss_keypoint`` (only JointsMSELoss is used)."""
    loss_cfg = dict(head_cfg.get("loss_keypoint", {"type": "JointsMSELoss"}))
    kind = loss_cfg.pop("type", "JointsMSELoss")
    if kind != "JointsMSELoss":
        raise ValueError(f"unsupported loss {kind!r}; the paper's configs use JointsMSELoss")
    return JointsMSELoss(**loss_cfg)
