"""HF-HRNet ONNX -> LiteRT ``.tflite`` whose every operator runs in XNNPACK (export time only).

Run by ``hfpose-export --tflite`` in a throwaway converter environment, never by the engine:

    python3 -m venv /tmp/convenv
    /tmp/convenv/bin/pip install litert-torch onnx torch==2.13.0
    /tmp/convenv/bin/pip install --no-deps -e .
    /tmp/convenv/bin/python -m hfpose.training.export.convert.onnx_to_tflite MODEL.onnx OUT.tflite

Why through PyTorch: the exported ONNX has every BatchNorm folded into its convolution, and
:func:`hfpose.training.run.load_from.load_fused_onnx` reads those fused weights back into the
network exactly (eval mode), so ``litert-torch`` converts the very numbers the ONNX file holds.

Why the rewrites: XNNPACK (LiteRT's CPU engine) has no nearest-neighbour resize. As written,
the network's 156 nearest upsamplings each leave XNNPACK for a slow reference kernel, splitting
the graph into 57 pieces (2.0x BlazePose-full's time on a Xeon, no better than ONNX Runtime).
During conversion only, the same arithmetic is spelled with operators XNNPACK has, on the NHWC
layout LiteRT uses inside (so the converter adds no transposes):

- ``x + up(c)`` (the context paths) and ``s * up(w)`` (the cross-resolution weights) become a
  broadcast over ``(n, h, r, w, r, c)``: the upsampled tensor is never built;
- every other nearest upsampling (the fusion's) becomes concatenations and reshapes;
- the 3x3/2 average pooling (zero padding counted) becomes a depthwise convolution with
  weights 1/9, whose padding XNNPACK folds into the convolution instead of copying the tensor.

Each rewrite computes the same values as the original (checked against torch after converting).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hfpose.models.config import load_config, model_input_size
from hfpose.training.run.load_from import load_fused_onnx

# Largest |tflite - torch| / max |torch| accepted (fp32 both: only summation order differs).
TOLERANCE = 1e-4


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def upsample_nearest(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest upsampling by an integer factor as concatenations and reshapes (in NHWC); x8 as
    three x2 steps, since XNNPACK concatenates at most five tensors at once."""
    step = 2 if factor % 2 == 0 and factor > 2 else factor
    n, c, h, w = x.shape
    t = _nhwc(x)
    t = torch.cat([t] * step, dim=3).reshape(n, h, step * w, c)
    t = torch.cat([t] * step, dim=2).reshape(n, step * h, step * w, c)
    return _nchw(t) if step == factor else upsample_nearest(_nchw(t), factor // step)


def combine_upsampled(
    big: torch.Tensor,
    small: torch.Tensor,
    factor: int,
    op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``op(big, nearest_upsample(small, factor))`` by broadcasting, without the upsampled copy."""
    n, c, height, width = big.shape
    h, w = height // factor, width // factor
    wide = _nhwc(big).reshape(n, h, factor, w, factor, c)
    narrow = _nhwc(small).reshape(n, h, 1, w, 1, c)
    return _nchw(op(wide, narrow).reshape(n, height, width, c))


def _integer_factor(x: torch.Tensor, scale_factor: object) -> int | None:
    if isinstance(scale_factor, (int, float)) and float(scale_factor).is_integer():
        return int(scale_factor)
    return None


@contextlib.contextmanager
def xnnpack_friendly_network(integer: bool = False) -> Iterator[None]:
    """Swap the network's nearest upsampling and 3x3/2 average pooling for XNNPACK's operators
    while converting; restored on exit. ``integer``: also the k x k, stride k average pooling
    (as a depthwise convolution: XNNPACK has no int8 average pooling)."""
    from hfpose.models import hf_hrnet

    interpolate, avg_pool2d = F.interpolate, F.avg_pool2d
    context_forward = hf_hrnet.ContextPool.forward
    weighting_forward = hf_hrnet.CrossResolutionWeighting.forward

    def nearest(x, size=None, scale_factor=None, mode="nearest", align_corners=None, **kw):
        factor = _integer_factor(x, scale_factor)
        if mode == "nearest" and size is None and factor:
            return upsample_nearest(x, factor)
        return interpolate(x, size, scale_factor, mode, align_corners, **kw)

    def pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *a):
        if (kernel_size, stride, padding, ceil_mode, count_include_pad) == (3, 2, 1, False, True):
            channels = x.shape[1]
            weight = torch.full((channels, 1, 3, 3), 1.0 / 9.0, dtype=x.dtype)
            return F.conv2d(x, weight, stride=2, padding=1, groups=channels)
        if (
            integer
            and isinstance(kernel_size, int)
            and stride in (None, kernel_size)
            and (padding, ceil_mode) == (0, False)
        ):
            channels, k = x.shape[1], kernel_size
            weight = torch.full((channels, 1, k, k), 1.0 / (k * k), dtype=x.dtype)
            return F.conv2d(x, weight, stride=k, groups=channels)
        return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, *a)

    def context(self, x):
        if self.global_pool:
            return context_forward(self, x)
        small = torch.nn.Sequential.forward(self, x)
        return combine_upsampled(x, small, 2, torch.add)

    def weighting(self, x):
        lowest = x[-1].shape[-2:]
        n = len(x)
        pooled = [
            hf_hrnet._pool_to_lowest(s, 2 ** (n - 1 - j), lowest) for j, s in enumerate(x[:-1])
        ]
        weights = self.conv2(self.conv1(torch.cat([*pooled, x[-1]], dim=1)))
        out = []
        for j, (s, w) in enumerate(zip(x, torch.split(weights, self.channels, dim=1))):
            ratio = 2 ** (n - 1 - j)
            out.append(combine_upsampled(s, w, ratio, torch.mul) if ratio > 1 else s * w)
        return out

    F.interpolate, F.avg_pool2d = nearest, pool
    hf_hrnet.ContextPool.forward = context
    hf_hrnet.CrossResolutionWeighting.forward = weighting
    try:
        yield
    finally:
        F.interpolate, F.avg_pool2d = interpolate, avg_pool2d
        hf_hrnet.ContextPool.forward = context_forward
        hf_hrnet.CrossResolutionWeighting.forward = weighting_forward


def network_from_onnx(onnx_path: Path) -> tuple[torch.nn.Module, tuple[int, int]]:
    """The HF-HRNet the ONNX file was exported from (its config named in the metadata), with the
    file's fused weights; eval mode. Returns it and the input size (width, height)."""
    import onnx

    from hfpose.models.hf_hrnet import build_model

    props = onnx.load(str(onnx_path), load_external_data=False).metadata_props
    config = load_config(json.loads({p.key: p.value for p in props}["config_name"]))
    size_wh = model_input_size(config)
    network = build_model(config).eval()
    load_fused_onnx(network, onnx_path, size_wh)
    return network, size_wh


def convert_rewritten(network: torch.nn.Module, sample: torch.Tensor, integer: bool = False):
    """``litert_torch.convert`` of the network in its XNNPACK spelling, after checking that the
    spelling computes what the network computes. Returns the converted model and the
    network's own output on ``sample``."""
    import litert_torch

    with torch.no_grad():
        reference = network(sample).numpy()
        with xnnpack_friendly_network(integer):
            rewritten = network(sample).numpy()
            if np.abs(rewritten - reference).max() > TOLERANCE * np.abs(reference).max():
                raise RuntimeError("the XNNPACK spelling changed the network's output")
            return litert_torch.convert(network, (sample,)), reference


def convert(onnx_path: Path, out_path: Path) -> float:
    """Write ``out_path``; returns max |tflite - torch| / max |torch| on a random crop."""
    network, (width, height) = network_from_onnx(onnx_path)
    sample = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    edge, reference = convert_rewritten(network, sample)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    edge.export(str(out_path))
    return float(np.abs(edge(sample) - reference).max() / np.abs(reference).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("onnx", type=Path, help="an HF-HRNet ONNX exported by hfpose-export")
    parser.add_argument("out", type=Path, help="the .tflite to write")
    args = parser.parse_args(argv)
    relative = convert(args.onnx, args.out)
    verdict = "ok" if relative <= TOLERANCE else "FAILED"
    print(
        f"wrote {args.out}; LiteRT vs torch: max |diff| / max |output| = {relative:.2e} {verdict}"
    )
    return 0 if relative <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
