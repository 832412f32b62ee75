"""The training data path on the training device: crops held in its memory, augmented in batch.

The CPU loader (``DataLoader`` workers running :mod:`hfpose.training.dataset.transforms` per sample) fed
a lent H200 585 samples/s with the GPU mostly idle. Here the crop caches are decoded once into
one uint8 tensor on the device, and each step's batch is cut there: the configured
``train_pipeline``'s random draws (centre shift, flip with left/right swap, half-body, scale,
rotation) are made for the whole batch at once, each sample's affine crop is one
``affine_grid`` + ``grid_sample`` call over the batch, and the Gaussian heatmap targets are
computed in closed form. Nothing goes back to the host per step.

Why ``affine_grid`` + ``grid_sample`` and not kornia: the crop is one affine warp per sample
whose matrix the pipeline already defines (``get_affine_transform``), which torch does in two
calls; kornia's augmentation classes draw their own parameters (not mmpose's clipped normals,
half-body or joint swap) and would add a dependency for the two calls it would run.

The same code runs on the CPU (``device: cpu``), which is how CI checks it against the CPU
pipeline: given the same drawn parameters, the same crops (bilinear, within a few grey levels
of OpenCV's fixed-point ``warpAffine``) and the same targets and weights.

Config (mmengine's ``data_preprocessor`` key: the model-side batch stage that runs on the
device; its ``batch_augments`` are what mmdet calls augmentations made there in batch)::

    data_preprocessor:
      type: DeviceBatchAugment
      colour: {brightness: 0.2, contrast: 0.2, saturation: 0.2}   # optional, default none

Only crop caches (``CropCacheDataset``) travel this way: every sample is then one fixed-size
crop. The parameters of each augmentation come from ``train_pipeline`` itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hfpose.models.config import ConfigError
from hfpose.models.processing import BOX_PADDING, PIXEL_STD, bbox_xywh_to_cs
from hfpose.training.dataset.crop_dataset import CropCacheDataset
from hfpose.training.dataset.records import MixedDataset, TopDownDataset
from hfpose.training.dataset.samplers import StepBatchSampler
from hfpose.training.dataset.transforms import (
    NormalizeTensor,
    TopDownAffine,
    TopDownGenerateTarget,
    TopDownGetRandomScaleRotation,
    TopDownHalfBodyTransform,
    TopDownRandomFlip,
    TopDownRandomShiftBboxCenter,
    build_pipeline,
)

PREPROCESSOR_TYPE = "DeviceBatchAugment"
_COLOUR_KEYS = ("brightness", "contrast", "saturation")
# The random steps in the order the device applies them (the CPU pipeline's order).
_RANDOM_ORDER = (
    TopDownRandomShiftBboxCenter,
    TopDownRandomFlip,
    TopDownHalfBodyTransform,
    TopDownGetRandomScaleRotation,
    TopDownAffine,
)


@dataclass(frozen=True)
class DeviceAugmentConfig:
    """The ``train_pipeline``'s parameters, read from its built steps, plus the colour jitter."""

    shift_factor: float = 0.0
    shift_prob: float = 0.0
    flip_prob: float = 0.0
    half_body_joints: int = 8
    half_body_prob: float = 0.0
    scale_factor: float = 0.0
    rot_factor: float = 0.0
    rot_prob: float = 0.0
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    sigma: float = 2.0
    colour: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> DeviceAugmentConfig:
        """The augmentation of ``cfg['train_pipeline']`` and ``cfg['data_preprocessor']``."""
        values: dict[str, Any] = {"colour": _colour(cfg.get("data_preprocessor") or {})}
        order = []
        for step in build_pipeline(cfg.get("train_pipeline") or [], "train_pipeline").steps:
            if isinstance(step, _RANDOM_ORDER):
                order.append(type(step))
            if isinstance(step, TopDownRandomShiftBboxCenter):
                values.update(shift_factor=step.shift_factor, shift_prob=step.prob)
            elif isinstance(step, TopDownRandomFlip):
                values["flip_prob"] = step.flip_prob
            elif isinstance(step, TopDownHalfBodyTransform):
                values.update(
                    half_body_joints=step.num_joints_half_body, half_body_prob=step.prob_half_body
                )
            elif isinstance(step, TopDownGetRandomScaleRotation):
                values.update(
                    scale_factor=step.scale_factor, rot_factor=step.rot_factor,
                    rot_prob=step.rot_prob,
                )  # fmt: skip
            elif isinstance(step, NormalizeTensor):
                values.update(mean=step.mean, std=step.std)
            elif isinstance(step, TopDownGenerateTarget):
                values["sigma"] = step.sigma
        if order != [s for s in _RANDOM_ORDER if s in order] or TopDownAffine not in order:
            raise ConfigError(
                f"data_preprocessor {PREPROCESSOR_TYPE}: train_pipeline must cut with "
                "TopDownAffine after its random steps, in the order "
                + ", ".join(s.__name__ for s in _RANDOM_ORDER)
            )
        return cls(**values)


def _colour(section: dict[str, Any]) -> tuple[float, float, float]:
    if section.get("type", PREPROCESSOR_TYPE) != PREPROCESSOR_TYPE:
        raise ConfigError(f"data_preprocessor.type must be {PREPROCESSOR_TYPE}")
    unknown = sorted(set(section) - {"type", "colour"})
    if unknown:
        raise ConfigError(
            f"unknown key(s) data_preprocessor.{', data_preprocessor.'.join(unknown)}"
        )
    colour = section.get("colour") or {}
    bad = sorted(set(colour) - set(_COLOUR_KEYS))
    if bad:
        raise ConfigError(f"data_preprocessor.colour takes {', '.join(_COLOUR_KEYS)}, not {bad}")
    return tuple(float(colour.get(key, 0.0)) for key in _COLOUR_KEYS)  # type: ignore[return-value]


def uses_device_batches(cfg: dict[str, Any]) -> bool:
    """Whether the config asks for this data path (a ``data_preprocessor`` section)."""
    return bool(cfg.get("data_preprocessor"))


@dataclass
class DrawnAugmentation:
    """One batch's sampled parameters: what the CPU pipeline would have drawn per sample."""

    center: torch.Tensor  # (B,2) in the (flipped, if flipped) cache crop
    scale: torch.Tensor  # (B,2) in PIXEL_STD units
    rotation: torch.Tensor  # (B,) degrees
    flipped: torch.Tensor  # (B,) bool
    joints: torch.Tensor  # (B,K,2) in the (flipped) cache crop, left/right swapped
    weight: torch.Tensor  # (B,K) label weights, swapped with the joints
    colour: torch.Tensor  # (B,3) brightness, contrast, saturation factors


class DeviceCrops:
    """Every training person of crop caches as tensors on ``device``; batches cut there.

    ``images`` (N, S, S, 3) uint8 holds each crop once; centre, scale, joints and weights are
    per row. ``dataset_index`` maps the trainer's dataset indices to rows, so the trainer's own
    batch sampler (ratios, order, resume position) picks the samples.
    """

    def __init__(
        self,
        dataset: TopDownDataset | MixedDataset,
        cfg: dict[str, Any],
        device: torch.device,
        decode_threads: int = 8,
    ) -> None:
        parts = dataset.datasets if isinstance(dataset, MixedDataset) else [dataset]
        if not all(isinstance(p, CropCacheDataset) for p in parts):
            raise ConfigError(
                f"data_preprocessor {PREPROCESSOR_TYPE} trains on crop caches only "
                "(type: CropCacheDataset in data.train)"
            )
        self.device = device
        self.augment = DeviceAugmentConfig.from_config(cfg)
        info = dataset.ann_info
        self.input_wh = tuple(int(v) for v in info["image_size"])
        self.heatmap_wh = tuple(int(v) for v in info["heatmap_size"])
        self.flip_index = _flip_permutation(info["num_joints"], info["flip_pairs"])
        self.upper = torch.zeros(info["num_joints"], dtype=torch.bool)
        self.upper[list(info["upper_body_ids"])] = True
        records = [(part, record) for part in parts for record in part.records]
        aspect = self.input_wh[0] / self.input_wh[1]
        centers, scales = [], []
        for _, record in records:
            if record["center"] is None:  # another aspect than the cache's (see crop_dataset)
                c, s = bbox_xywh_to_cs(record["bbox"][None], aspect, BOX_PADDING)
                centers.append(c[0])
                scales.append(s[0])
            else:
                centers.append(record["center"])
                scales.append(record["scale"])
        joints = np.stack([r["joints_3d"][:, :2] for _, r in records])
        weights = np.stack([r["joints_3d_visible"][:, 0] for _, r in records])
        self.center = torch.as_tensor(np.stack(centers), dtype=torch.float32, device=device)
        self.scale = torch.as_tensor(np.stack(scales), dtype=torch.float32, device=device)
        self.joints = torch.as_tensor(joints, dtype=torch.float32, device=device)
        self.weight = torch.as_tensor(weights, dtype=torch.float32, device=device)
        self.images = self._decode_all(records, decode_threads)
        self.crop_width = int(self.images.shape[2])
        self.upper = self.upper.to(device)
        self.flip_index = self.flip_index.to(device)
        self.mean = torch.tensor(self.augment.mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(self.augment.std, device=device).view(1, 3, 1, 1) * 255.0
        # constants made once: a tensor built from host values each step is a copy that waits
        # for the device
        size, (width, height) = self.crop_width, self.input_wh
        self.colour_spread = torch.tensor(self.augment.colour, device=device)
        self.luma = torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)
        self.mirror = torch.tensor([[-1.0, 0, size - 1.0], [0, 1, 0]], device=device)
        self.identity = torch.tensor([[1.0, 0, 0], [0, 1, 0]], device=device)
        # normalised coordinates of grid_sample (align_corners=False): n = (2p + 1) / S - 1
        self.to_normalised = torch.tensor(
            [[2.0 / size, 0, 1.0 / size - 1], [0, 2.0 / size, 1.0 / size - 1]], device=device
        )
        self.from_normalised_output = torch.tensor(
            [[width / 2.0, 0, width / 2.0 - 0.5], [0, height / 2.0, height / 2.0 - 0.5]],
            device=device,
        )

    def _decode_all(self, records: list, threads: int) -> torch.Tensor:
        """One uint8 tensor of every crop, filled in chunks so host memory stays small.

        Packed (WebP) caches decode in threads (OpenCV releases the GIL while decoding)."""
        first = records[0][0].load_image(records[0][1])
        images = torch.empty((len(records), *first.shape), dtype=torch.uint8, device=self.device)
        chunk = 1024
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for start in range(0, len(records), chunk):
                part = records[start : start + chunk]
                crops = list(pool.map(lambda pr: pr[0].load_image(pr[1]), part))
                images[start : start + len(part)] = torch.from_numpy(np.stack(crops)).to(
                    self.device
                )
        return images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def nbytes(self) -> int:
        return self.images.numel()

    # -- the random draws ------------------------------------------------------------------------

    def draw(self, rows: torch.Tensor, generator: torch.Generator) -> DrawnAugmentation:
        """The pipeline's random parameters for ``rows``, drawn on the device in batch."""
        a = self.augment
        n = len(rows)

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(shape or (n,), generator=generator, device=self.device)

        def normal() -> torch.Tensor:
            return torch.randn(n, generator=generator, device=self.device)

        center, scale = self.center[rows].clone(), self.scale[rows].clone()
        joints, weight = self.joints[rows].clone(), self.weight[rows].clone()
        shifted = uniform() < a.shift_prob
        shift = (uniform(n, 2) * 2 - 1) * a.shift_factor * scale * PIXEL_STD
        center = torch.where(shifted[:, None], center + shift, center)

        flipped = uniform() <= a.flip_prob
        mirrored = joints[:, self.flip_index]
        mirrored[..., 0] = self.crop_width - 1 - mirrored[..., 0]
        mirrored_weight = weight[:, self.flip_index]
        mirrored = mirrored * (mirrored_weight > 0)[..., None]
        joints = torch.where(flipped[:, None, None], mirrored, joints)
        weight = torch.where(flipped[:, None], mirrored_weight, weight)
        center = torch.where(
            flipped[:, None], torch.stack([self.crop_width - 1 - center[:, 0], center[:, 1]], 1),
            center,
        )  # fmt: skip

        center, scale = self._half_body(joints, weight, center, scale, uniform(), normal())
        s_factor = (normal() * a.scale_factor + 1.0).clamp(1 - a.scale_factor, 1 + a.scale_factor)
        scale = scale * s_factor[:, None]
        rotation = (normal() * a.rot_factor).clamp(-2 * a.rot_factor, 2 * a.rot_factor)
        rotation = torch.where(uniform() <= a.rot_prob, rotation, torch.zeros_like(rotation))
        colour = 1.0 + (uniform(n, 3) * 2 - 1) * self.colour_spread
        return DrawnAugmentation(center, scale, rotation, flipped, joints, weight, colour)

    def _half_body(
        self,
        joints: torch.Tensor,
        weight: torch.Tensor,
        center: torch.Tensor,
        scale: torch.Tensor,
        chance: torch.Tensor,
        choice: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """mmpose 0.x's half-body crop (upper body when a normal draw is below 0.5), in batch."""
        a = self.augment
        visible = weight > 0
        upper = visible & self.upper
        lower = visible & ~self.upper
        n_upper, n_lower = upper.sum(1), lower.sum(1)
        take_upper = ((choice < 0.5) & (n_upper > 2)) | ~(n_lower > 2)
        selected = torch.where(take_upper[:, None], upper, lower)
        count = selected.sum(1)
        apply = (visible.sum(1) > a.half_body_joints) & (chance < a.half_body_prob) & (count >= 2)
        big = torch.finfo(joints.dtype).max
        mask = selected[..., None]
        mean = (joints * mask).sum(1) / count.clamp(min=1)[:, None]
        extent = torch.where(mask, joints, -big).amax(1) - torch.where(mask, joints, big).amin(1)
        w, h = extent[:, 0], extent[:, 1]
        aspect = self.input_wh[0] / self.input_wh[1]
        h = torch.where(w > aspect * h, w / aspect, h)
        w = torch.where(w < aspect * h, h * aspect, w)
        half_scale = torch.stack([w, h], 1) / PIXEL_STD * 1.5
        return (
            torch.where(apply[:, None], mean, center),
            torch.where(apply[:, None], half_scale, scale),
        )

    # -- the crops and targets -------------------------------------------------------------------

    def crop_matrices(self, drawn: DrawnAugmentation) -> torch.Tensor:
        """(B,2,3) affine from the (flipped) cache crop to the network input, as
        ``get_affine_transform`` builds it: the box ``scale[0] * 200`` wide fills the width."""
        width, height = self.input_wh
        theta = drawn.rotation * (math.pi / 180.0)
        zoom = width / (drawn.scale[:, 0] * PIXEL_STD)
        cos, sin = torch.cos(theta) * zoom, torch.sin(theta) * zoom
        cx, cy = drawn.center[:, 0], drawn.center[:, 1]
        row0 = torch.stack([cos, sin, width * 0.5 - cos * cx - sin * cy], 1)
        row1 = torch.stack([-sin, cos, height * 0.5 + sin * cx - cos * cy], 1)
        return torch.stack([row0, row1], 1)

    def crops(self, rows: torch.Tensor, drawn: DrawnAugmentation) -> torch.Tensor:
        """(B,3,H,W) float network inputs, normalised, channels_last: the flip folded into the
        sampling grid, bilinear with zeros outside the cache crop (``warpAffine``'s border)."""
        width, height = self.input_wh
        inverse = _invert_affine(self.crop_matrices(drawn))  # network -> flipped-crop pixel
        flip = torch.where(drawn.flipped[:, None, None], self.mirror, self.identity)
        inverse = _compose(flip, inverse)  # network pixel -> stored-crop pixel
        theta = _compose(
            self.to_normalised.expand_as(inverse),
            _compose(inverse, self.from_normalised_output),
        )
        source = self.images[rows].permute(0, 3, 1, 2).float()
        grid = F.affine_grid(theta, [len(rows), 3, height, width], align_corners=False)
        crops = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False)  # fmt: skip
        if any(self.augment.colour):
            crops = _jitter_colour(crops, drawn.colour, self.luma)
        crops = (crops - self.mean) / self.std
        return crops.contiguous(memory_format=torch.channels_last)

    def targets(self, drawn: DrawnAugmentation) -> tuple[torch.Tensor, torch.Tensor]:
        """mmpose's MSRA Gaussian targets (B,K,h,w) and weights (B,K,1), as
        :func:`hfpose.training.dataset.transforms.gaussian_heatmaps` makes them one joint at a time."""
        matrix = self.crop_matrices(drawn)
        joints = drawn.joints @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]
        return gaussian_targets(
            joints, drawn.weight, self.input_wh, self.heatmap_wh, self.augment.sigma
        )

    def batch(self, rows: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The trainer's batch (``img``, ``target``, ``target_weight``) for ``rows``."""
        drawn = self.draw(rows, generator)
        target, weight = self.targets(drawn)
        return {"img": self.crops(rows, drawn), "target": target, "target_weight": weight}


def gaussian_targets(
    joints: torch.Tensor,
    weight: torch.Tensor,
    image_wh: tuple[int, int],
    heatmap_wh: tuple[int, int],
    sigma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,K,2) input-pixel joints -> (B,K,h,w) Gaussians at the rounded heatmap position, and
    (B,K,1) weights: zero where the window misses the map, as the CPU target maker does."""
    hm_w, hm_h = heatmap_wh
    radius = sigma * 3
    size = int(2 * radius + 1)
    half = size // 2
    mu_x = torch.trunc(joints[..., 0] / (image_wh[0] / hm_w) + 0.5)
    mu_y = torch.trunc(joints[..., 1] / (image_wh[1] / hm_h) + 0.5)
    ul_x, ul_y = torch.trunc(mu_x - radius), torch.trunc(mu_y - radius)
    br_x, br_y = torch.trunc(mu_x + radius + 1), torch.trunc(mu_y + radius + 1)
    outside = (ul_x >= hm_w) | (ul_y >= hm_h) | (br_x < 0) | (br_y < 0)
    weight = torch.where(outside, torch.zeros_like(weight), weight.clamp(0.0, 1.0))
    xs = torch.arange(hm_w, device=joints.device, dtype=joints.dtype)
    ys = torch.arange(hm_h, device=joints.device, dtype=joints.dtype)
    dx = xs - (ul_x + half)[..., None]  # (B,K,w)
    dy = ys - (ul_y + half)[..., None]
    in_x = (xs >= ul_x[..., None]) & (xs < br_x[..., None])
    in_y = (ys >= ul_y[..., None]) & (ys < br_y[..., None])
    gx = torch.exp(-(dx**2) / (2 * sigma**2)) * in_x
    gy = torch.exp(-(dy**2) / (2 * sigma**2)) * in_y
    target = gy[..., :, None] * gx[..., None, :] * (weight > 0)[..., None, None]
    return target, weight[..., None]


def _jitter_colour(crops: torch.Tensor, factors: torch.Tensor, luma: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast and saturation scaled by per-sample factors (1 leaves it as is);
    ``luma`` (1,3,1,1) weighs RGB into grey."""
    brightness, contrast, saturation = (f.view(-1, 1, 1, 1) for f in factors.unbind(1))
    crops = crops * brightness
    mean_grey = (crops * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    crops = (crops - mean_grey) * contrast + mean_grey
    grey = (crops * luma).sum(1, keepdim=True)
    crops = (crops - grey) * saturation + grey
    return crops.clamp(0.0, 255.0)


def _flip_permutation(num_joints: int, pairs: list) -> torch.Tensor:
    index = list(range(num_joints))
    for a, b in pairs:
        index[a], index[b] = b, a
    return torch.tensor(index)


def _invert_affine(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of (B,2,3) affine matrices, in closed form (``torch.linalg.inv`` checks for
    singular matrices on the host, a sync per call)."""
    a, b, c, d = matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 0], matrix[:, 1, 1]
    linear = torch.stack([torch.stack([d, -b], 1), torch.stack([-c, a], 1)], 1)
    linear = linear / (a * d - b * c)[:, None, None]
    return torch.cat([linear, -(linear @ matrix[:, :, 2:])], 2)


def _compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """outer(inner(p)) for (…,2,3) affine matrices."""
    linear = outer[..., :2] @ inner[..., :2]
    return torch.cat([linear, outer[..., :2] @ inner[..., 2:] + outer[..., 2:]], -1)


class DeviceBatches:
    """The trainer's loader on this path: batches cut on the device in the sampler's order.

    The trainer's :class:`StepBatchSampler` still picks ``(epoch, index)`` per sample (ratios,
    shards, resume position); indices past a dataset's length (repeated draws) map back to
    their row. Each step's random draws come from a generator seeded from (seed, epoch, step),
    so a resumed run draws what the uninterrupted one would.
    """

    def __init__(
        self, crops: DeviceCrops, batch_sampler: StepBatchSampler, total: int, seed: int
    ) -> None:
        self.crops = crops
        self.batch_sampler = batch_sampler
        self.total = total
        self.seed = seed
        self.generator = torch.Generator(device=crops.device)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        sampler = self.batch_sampler
        for i, pairs in enumerate(sampler):
            step = sampler.skip_steps * sampler.accumulate + i
            seed = np.random.SeedSequence([self.seed, sampler.epoch, step]).generate_state(1)[0]
            self.generator.manual_seed(int(seed))
            rows = torch.tensor([index % self.total for _, index in pairs])
            if self.crops.device.type == "cuda":  # a pageable copy would wait for the GPU
                rows = rows.pin_memory()
            yield self.crops.batch(rows.to(self.crops.device, non_blocking=True), self.generator)

    def __len__(self) -> int:
        return len(self.batch_sampler)
