"""HF-HRNet ("HF-HRNet: A Simple Hardware Friendly High-Resolution Network", Zhang et al.,
IEEE TCSVT 2024, doi 10.1109/TCSVT.2024.3377365) with its top-down heatmap head.

Module and parameter names follow the authors' released mmpose implementation
(``backbone.stem.conv2.dwonsample.0.weight`` ... ``keypoint_head.final_layer.bias``), so their
checkpoints load without a conversion table, and the forward pass reproduces theirs, quirks
included (see the comments below).

Two deliberate departures from the released code change no number but make the model export
with the TorchScript ONNX exporter: pooling to the lowest branch uses a fixed kernel equal to the
size ratio (the released code pools adaptively to a size read from a tensor), and upsampling uses
fixed factors. Both equal the released operations whenever the sizes divide, which they do at
every input size of the paper's configs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------
# Building blocks


def _dw3(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)


def _pw(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False)


def _pool() -> nn.AvgPool2d:
    return nn.AvgPool2d(kernel_size=3, stride=2, padding=1)


class ConvModule(nn.Module):
    """conv (no bias) + BN + optional activation; submodules ``conv`` and ``bn`` as in mmcv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ContextPool(nn.Sequential):
    """``Sequential[0 Pool, 1 PW(, 2 ReLU)]`` whose output is added back after upsampling.

    Being the Sequential itself keeps the authors' key names (``global1.0.1.weight``).
    ``global_pool`` replaces the 3x3/2 pooling by a global average, for the 12x9 branch of the
    384x288 form where pool-then-upsample would not return to 9 columns.
    """

    def __init__(self, channels: int, act: bool, global_pool: bool = False) -> None:
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1) if global_pool else _pool()]
        layers.append(_pw(channels, channels))
        if act:
            layers.append(nn.ReLU())
        super().__init__(*layers)
        self.global_pool = global_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + context(x): broadcast for the global form, nearest x2 otherwise."""
        context = super().forward(x)
        if not self.global_pool:
            context = F.interpolate(context, scale_factor=2.0, mode="nearest")
        return x + context


class CADDownsample(nn.Module):
    """The stem's stride-2 context-aware downsampling (``stem.conv2``), 32 -> 48 channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # The released spelling ``dwonsample`` is part of the checkpoint keys.
        self.dwonsample = nn.Sequential(
            _dw3(in_channels, 2),
            nn.BatchNorm2d(in_channels),
            _pw(in_channels, out_channels),
            nn.BatchNorm2d(out_channels),
        )
        self.conv1 = nn.Sequential(
            _pw(in_channels, out_channels), nn.BatchNorm2d(out_channels), nn.ReLU()
        )
        self.conv2 = nn.Sequential(_dw3(out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU())
        self.global1 = ContextPool(out_channels, act=True)
        self.global2 = ContextPool(out_channels, act=True)
        self.conv3 = nn.Sequential(_dw3(out_channels, 2), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.global1(self.conv2(self.conv1(x)))
        b = self.global2(self.conv3(a))
        return b + self.dwonsample(x)


class Stem(nn.Module):
    def __init__(self, in_channels: int, stem_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvModule(in_channels, stem_channels, 3, stride=2)
        self.conv2 = CADDownsample(stem_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


def _pool_to_lowest(x: torch.Tensor, ratio: int, size: Sequence[int]) -> torch.Tensor:
    """Average-pool a branch to the lowest branch's size.

    A fixed ``ratio`` kernel equals the released adaptive pooling when the sizes divide (every
    paper input size) and exports with any ONNX exporter; other sizes take the adaptive path.
    """
    if ratio == 1:
        return x
    if x.shape[-2] == size[0] * ratio and x.shape[-1] == size[1] * ratio:
        return F.avg_pool2d(x, kernel_size=ratio, stride=ratio)
    return F.adaptive_avg_pool2d(x, (int(size[0]), int(size[1])))


class CrossResolutionWeighting(nn.Module):
    """MCE: channel weights computed jointly from all branches pooled to the lowest one."""

    def __init__(self, channels: Sequence[int], reduce_ratio: int) -> None:
        super().__init__()
        self.channels = list(channels)
        total = sum(channels)
        self.conv1 = ConvModule(total, int(total / reduce_ratio), 1)
        self.conv2 = ConvModule(int(total / reduce_ratio), total, 1, act=nn.Sigmoid)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        lowest = x[-1].shape[-2:]
        n = len(x)
        pooled = [_pool_to_lowest(s, 2 ** (n - 1 - j), lowest) for j, s in enumerate(x[:-1])]
        weights = self.conv2(self.conv1(torch.cat([*pooled, x[-1]], dim=1)))
        out = []
        for j, (s, w) in enumerate(zip(x, torch.split(weights, self.channels, dim=1))):
            ratio = 2 ** (n - 1 - j)
            if ratio > 1:
                w = F.interpolate(w, scale_factor=float(ratio), mode="nearest")
                if w.shape[-2:] != s.shape[-2:]:
                    w = F.interpolate(w, size=s.shape[-2:], mode="nearest")
            out.append(s * w)
        return out


class HUMBlock(nn.Module):
    """MCE weighting, then per-branch CAD (two depthwise convs, each with a context path)."""

    def __init__(
        self, channels: Sequence[int], reduce_ratio: int, global_pool_last_branch: bool
    ) -> None:
        super().__init__()
        n = len(channels)
        self.cross_resolution_weighting = CrossResolutionWeighting(channels, reduce_ratio)
        self.depthwise_convsfirst = nn.ModuleList(ConvModule(c, c, 3, groups=c) for c in channels)
        self.depthwise_convslast = nn.ModuleList(
            ConvModule(c, c, 3, groups=c, act=None) for c in channels
        )
        is_global = [global_pool_last_branch and j == n - 1 for j in range(n)]
        self.global1 = nn.ModuleList(
            ContextPool(c, act=False, global_pool=g) for c, g in zip(channels, is_global)
        )
        self.global2 = nn.ModuleList(
            ContextPool(c, act=False, global_pool=g) for c, g in zip(channels, is_global)
        )

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        weighted = self.cross_resolution_weighting(x)
        out = []
        for j, (identity, y) in enumerate(zip(x, weighted)):
            a = self.global1[j](self.depthwise_convsfirst[j](y))
            b = self.global2[j](self.depthwise_convslast[j](a))
            out.append(b + identity)
        return out


def _fuse_layer(channels: Sequence[int], i: int, j: int) -> nn.Module | None:
    """fuse_layers.i.j: how branch j reaches branch i's resolution and width."""
    if j == i:
        return None
    if j > i:
        return nn.Sequential(
            _pw(channels[j], channels[i]),
            nn.BatchNorm2d(channels[i]),
            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
        )
    steps: list[nn.Module] = []
    for k in range(i - j):
        last = k == i - j - 1
        out_c = channels[i] if last else channels[j]
        layers: list[nn.Module] = [
            _dw3(channels[j], 2),
            nn.BatchNorm2d(channels[j]),
            _pw(channels[j], out_c),
            nn.BatchNorm2d(out_c),
        ]
        if not last:
            layers.append(nn.ReLU())
        steps.append(nn.Sequential(*layers))
    return nn.Sequential(*steps)


class HFHRModule(nn.Module):
    """Two HUM blocks, then the multi-resolution fusion."""

    def __init__(
        self,
        channels: Sequence[int],
        num_blocks: int,
        reduce_ratio: int,
        with_fuse: bool,
        global_pool_last_branch: bool,
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *(HUMBlock(channels, reduce_ratio, global_pool_last_branch) for _ in range(num_blocks))
        )
        n = len(channels)
        self.with_fuse = with_fuse
        if with_fuse:
            self.fuse_layers = nn.ModuleList(
                nn.ModuleList(_fuse_layer(channels, i, j) for j in range(n)) for i in range(n)
            )
        self.relu = nn.ReLU()

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        out = x
        for block in self.layers:
            out = block(out)
        if not self.with_fuse:
            return out
        n = len(out)
        # The released fusion adds in place into a tensor that aliases out[0]: branch 0 gets its
        # own input twice, and every other branch reads the already fused branch 0 (twice).
        fused0 = 2 * out[0]
        for j in range(1, n):
            fused0 = fused0 + self.fuse_layers[0][j](out[j])
        results = [self.relu(fused0)]
        for i in range(1, n):
            y = 2 * self.fuse_layers[i][0](fused0) + out[i]
            for j in range(1, n):
                if j != i:
                    y = y + self.fuse_layers[i][j](out[j])
            results.append(self.relu(y))
        return results


class DepthwiseSeparable(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, 3, groups=in_channels, act=None)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class IterativeHead(nn.Module):
    """Walk the branches from lowest to highest resolution, adding each upsampled result."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        reversed_channels = list(channels)[::-1]
        self.projects = nn.ModuleList(
            DepthwiseSeparable(c, reversed_channels[min(k + 1, len(channels) - 1)])
            for k, c in enumerate(reversed_channels)
        )

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        last: torch.Tensor | None = None
        for project, s in zip(self.projects, x[::-1]):
            if last is not None:
                last = F.interpolate(last, scale_factor=2.0, mode="bilinear", align_corners=True)
                if last.shape[-2:] != s.shape[-2:]:
                    last = F.interpolate(
                        last, size=s.shape[-2:], mode="bilinear", align_corners=True
                    )
                s = s + last
            last = project(s)
        assert last is not None
        return last


class HFHRNet(nn.Module):
    """The backbone: stem, three stages with transitions, iterative head -> (N,48,H/4,W/4).

    ``norm_eval`` (mmpose's key): BatchNorm keeps its running statistics while training, so a
    small-batch fine-tune (a CPU run at batch 16-32) does not pull a large-batch model's
    statistics away; its affine weights still learn.
    """

    def __init__(self, in_channels: int, extra: dict[str, Any], norm_eval: bool = False) -> None:
        super().__init__()
        self.norm_eval = norm_eval
        stem_cfg = extra["stem"]
        spec = extra["stages_spec"]
        global_last = bool(extra.get("global_pool_last_branch", False))
        self.num_stages = int(extra["num_stages"])
        self.stem = Stem(in_channels, stem_cfg["stem_channels"], stem_cfg["out_channels"])
        previous = [stem_cfg["out_channels"]]
        for i in range(self.num_stages):
            channels = list(spec["num_channels"][i])
            self.add_module(f"transition{i}", self._transition(previous, channels))
            modules = [
                HFHRModule(
                    channels,
                    spec["num_blocks"][i],
                    spec["reduce_ratios"][i],
                    spec["with_fuse"][i],
                    global_last and i == self.num_stages - 1,
                )
                for _ in range(spec["num_modules"][i])
            ]
            self.add_module(f"stage{i}", nn.Sequential(*modules))
            previous = channels
        self.with_head = bool(extra.get("with_head", True))
        if self.with_head:
            self.head_layer = IterativeHead(previous)

    def train(self, mode: bool = True) -> HFHRNet:
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    @staticmethod
    def _transition(previous: list[int], channels: list[int]) -> nn.ModuleList:
        layers: list[nn.Module | None] = []
        for k, c in enumerate(channels):
            if k < len(previous):
                if previous[k] == c:
                    layers.append(None)
                else:
                    layers.append(
                        nn.Sequential(_dw3(previous[k], 1), nn.BatchNorm2d(previous[k]),
                                      _pw(previous[k], c), nn.BatchNorm2d(c), nn.ReLU())
                    )  # fmt: skip
            else:
                src = previous[-1]
                layers.append(
                    nn.Sequential(
                        nn.Sequential(_dw3(src, 2), nn.BatchNorm2d(src), _pw(src, c),
                                      nn.BatchNorm2d(c), nn.ReLU())
                    )
                )  # fmt: skip
        return nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        branches = [self.stem(x)]
        for i in range(self.num_stages):
            transition = getattr(self, f"transition{i}")
            new = []
            for k, layer in enumerate(transition):
                source = branches[k] if k < len(branches) else branches[-1]
                new.append(source if layer is None else layer(source))
            branches = getattr(self, f"stage{i}")(new)
        if self.with_head:
            return self.head_layer(branches)
        return branches


class HeatmapHead(nn.Module):
    """mmpose's TopdownHeatmapSimpleHead without deconvolutions: one 1x1 conv with bias."""

    def __init__(self, in_channels: int, out_channels: int, final_conv_kernel: int = 1) -> None:
        super().__init__()
        self.final_layer = nn.Conv2d(
            in_channels, out_channels, final_conv_kernel, 1, final_conv_kernel // 2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(x)


class TopDownHeatmapModel(nn.Module):
    """Normalised RGB crop (N,3,H,W) -> heatmaps (N,K,H/4,W/4)."""

    def __init__(self, backbone: nn.Module, keypoint_head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.keypoint_head = keypoint_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keypoint_head(self.backbone(x))


def init_weights(model: nn.Module) -> None:
    """The authors' from-scratch init: conv ~ N(0, 0.001), bias 0; BN weight 1, bias 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.001)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------------
# Registry (timm style): model config ``type`` -> builder


BACKBONES: dict[str, Callable[..., nn.Module]] = {"HFHRNet": HFHRNet}
HEADS: dict[str, Callable[..., nn.Module]] = {"TopdownHeatmapSimpleHead": HeatmapHead}


def build_model(cfg: dict[str, Any]) -> TopDownHeatmapModel:
    """Build the top-down model from a loaded config (``hfpose.models.config.load_config``)."""
    model_cfg = cfg["model"]
    if model_cfg.get("type", "TopDown") != "TopDown":
        raise ValueError(f"unsupported model type {model_cfg['type']!r}; only TopDown")
    backbone_cfg = model_cfg["backbone"]
    head_cfg = model_cfg["keypoint_head"]
    try:
        backbone_cls = BACKBONES[backbone_cfg["type"]]
        head_cls = HEADS[head_cfg["type"]]
    except KeyError as exc:
        raise ValueError(f"unknown model component {exc.args[0]!r}") from None
    if head_cfg.get("num_deconv_layers", 0) != 0:
        raise ValueError("HF-HRNet's head has no deconvolution layers (num_deconv_layers: 0)")
    backbone = backbone_cls(
        backbone_cfg.get("in_channels", 3),
        backbone_cfg["extra"],
        norm_eval=bool(backbone_cfg.get("norm_eval", False)),
    )
    head = head_cls(
        head_cfg["in_channels"],
        head_cfg["out_channels"],
        head_cfg.get("extra", {}).get("final_conv_kernel", 1),
    )
    model = TopDownHeatmapModel(backbone, head)
    init_weights(model)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Fusion layers f_i0 (i >= 1): the released forward evaluates each of them twice.
_TWICE_IN_RELEASED_CODE = re.compile(r"fuse_layers\.[1-9][0-9]*\.0\.")


def count_conv_macs(
    model: nn.Module, input_size_wh: Sequence[int], as_released: bool = True
) -> int:
    """Multiply-accumulates of every Conv2d at batch 1 (depthwise counted as C*9*H*W).

    ``as_released`` counts what the authors' code executes, the paper's figure: its in-place
    fusion runs each f_i0 twice, where this implementation runs it once and doubles the result.
    """
    total = 0

    def make_hook(weight: int) -> Callable[..., None]:
        def hook(module: nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
            nonlocal total
            kh, kw = module.kernel_size
            total += weight * int(output.numel()) * (module.in_channels // module.groups) * kh * kw

        return hook

    handles = [
        module.register_forward_hook(
            make_hook(2 if as_released and _TWICE_IN_RELEASED_CODE.search(name) else 1)
        )
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, int(input_size_wh[1]), int(input_size_wh[0])))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total
