"""Top-down training and test pipeline, rebuilt from mmpose 0.x semantics without mmcv.

Each step is named and parameterised exactly as in the authors' configs (``train_pipeline`` /
``val_pipeline``), so a config list builds the same pipeline. The geometry is the one inference
uses (``hfpose.models.processing``): a crop cut at training time and a crop cut by the app come from the
same centre/scale/affine code, so the heatmaps learnt here decode correctly at run time.

Randomness comes from a ``numpy.random.Generator`` passed with every sample (seeded by the
sampler from seed, epoch and sample index) instead of numpy's global state: the augmentation of a
sample is then the same whichever worker or process draws it, which makes ``--resume`` exact and
lets a multi-process run reproduce a single-process one.

A sample ("results") is a dict with mmpose's keys: ``img`` (H,W,3 RGB uint8), ``image_file``,
``bbox`` (x,y,w,h), ``center``, ``scale`` (in 200-pixel units), ``rotation`` (degrees),
``joints_3d`` (K,3), ``joints_3d_visible`` (K,3; column 0 is the label's loss weight, 0 =
unlabelled, 1 = human, a teacher's score: :mod:`hfpose.training.dataset.label_weights`) and
``ann_info`` (image_size, heatmap_size, num_joints, flip_pairs, upper_body_ids).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from hfpose.models.config import ConfigError
from hfpose.models.processing import (
    BOX_PADDING,
    PIXEL_STD,
    affine_points,
    bbox_xywh_to_cs,
    flip_keypoints,
    get_affine_transform,
    normalize_crops,
)

Results = dict[str, Any]


def read_image_rgb(path: str) -> np.ndarray:
    """Decode an image file to RGB uint8; a missing or unreadable file names its path."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"image not found or not decodable: {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class LoadImageFromFile:
    """Decode ``image_file`` unless the dataset already supplied ``img`` (e.g. a crop cache)."""

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        if results.get("img") is None:
            results["img"] = read_image_rgb(results["image_file"])
        return results


class TopDownGetBboxCenterScale:
    """Box -> centre and scale, widened to the input aspect ratio and padded.

    Datasets that give a centre and scale themselves (MPII) keep them, as in mmpose.
    """

    def __init__(self, padding: float = BOX_PADDING) -> None:
        self.padding = float(padding)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        if results.get("center") is not None and results.get("scale") is not None:
            return results
        width, height = results["ann_info"]["image_size"]
        centers, scales = bbox_xywh_to_cs(results["bbox"], width / height, self.padding)
        results["center"], results["scale"] = centers[0], scales[0]
        return results


class TopDownRandomShiftBboxCenter:
    """Jitter the box centre by up to ``shift_factor`` of the box size (mimics detector error)."""

    def __init__(self, shift_factor: float = 0.16, prob: float = 0.3) -> None:
        self.shift_factor = float(shift_factor)
        self.prob = float(prob)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        if rng.random() < self.prob:
            shift = rng.uniform(-1.0, 1.0, 2) * self.shift_factor * results["scale"] * PIXEL_STD
            results["center"] = results["center"] + shift
        return results


class TopDownRandomFlip:
    """Mirror the image, the centre and the joints, swapping left and right joint labels."""

    def __init__(self, flip_prob: float = 0.5) -> None:
        self.flip_prob = float(flip_prob)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        results.setdefault("flipped", False)
        if rng.random() > self.flip_prob:
            return results
        image = results["img"]
        width = image.shape[1]
        results["img"] = cv2.flip(image, 1)
        pairs = results["ann_info"]["flip_pairs"]
        joints = results["joints_3d"].copy()
        joints[:, :2] = flip_keypoints(joints[None, :, :2], width, pairs)[0]
        visible = results["joints_3d_visible"].copy()
        for a, b in pairs:
            visible[[a, b]] = visible[[b, a]]
            joints[[a, b], 2] = joints[[b, a], 2]
        results["joints_3d"] = joints * (visible > 0)  # unlabelled joints carry no coordinates
        results["joints_3d_visible"] = visible
        center = np.array(results["center"], dtype=np.float64)
        center[0] = width - center[0] - 1
        results["center"] = center
        results["flipped"] = True
        return results


class TopDownHalfBodyTransform:
    """Sometimes crop to the upper or lower body only, so partly visible people are learnt.

    Kept as mmpose 0.x has it, including choosing the upper body when a standard normal draw
    is below 0.5 (about 69% of the time), and the 1.5 enlargement of the joints' extent.
    """

    def __init__(self, num_joints_half_body: int = 8, prob_half_body: float = 0.3) -> None:
        self.num_joints_half_body = int(num_joints_half_body)
        self.prob_half_body = float(prob_half_body)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        visible = results["joints_3d_visible"][:, 0] > 0
        if visible.sum() <= self.num_joints_half_body or rng.random() >= self.prob_half_body:
            return results
        upper_ids = set(results["ann_info"]["upper_body_ids"])
        joints = results["joints_3d"][:, :2]
        upper = [joints[j] for j in np.nonzero(visible)[0] if j in upper_ids]
        lower = [joints[j] for j in np.nonzero(visible)[0] if j not in upper_ids]
        if rng.standard_normal() < 0.5 and len(upper) > 2:
            selected = upper
        elif len(lower) > 2:
            selected = lower
        else:
            selected = upper
        if len(selected) < 2:
            return results
        selected_arr = np.asarray(selected, dtype=np.float64)
        center = selected_arr.mean(axis=0)
        w, h = selected_arr.max(axis=0) - selected_arr.min(axis=0)
        width, height = results["ann_info"]["image_size"]
        aspect = width / height
        if w > aspect * h:
            h = w / aspect
        elif w < aspect * h:
            w = h * aspect
        results["center"] = center
        results["scale"] = np.array([w, h], dtype=np.float64) / PIXEL_STD * 1.5
        return results


class TopDownGetRandomScaleRotation:
    """Random zoom (clipped normal, ±scale_factor) and, with ``rot_prob``, rotation."""

    def __init__(self, rot_factor: float = 40, scale_factor: float = 0.5, rot_prob: float = 0.6):
        self.rot_factor = float(rot_factor)
        self.scale_factor = float(scale_factor)
        self.rot_prob = float(rot_prob)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        sf, rf = self.scale_factor, self.rot_factor
        s_factor = np.clip(rng.standard_normal() * sf + 1.0, 1.0 - sf, 1.0 + sf)
        results["scale"] = np.asarray(results["scale"], dtype=np.float64) * s_factor
        r_factor = float(np.clip(rng.standard_normal() * rf, -2.0 * rf, 2.0 * rf))
        results["rotation"] = r_factor if rng.random() <= self.rot_prob else 0.0
        return results


class TopDownAffine:
    """Cut the network input out of the image and move the labelled joints with it."""

    def __init__(self, use_udp: bool = False) -> None:
        if use_udp:
            raise ConfigError("TopDownAffine use_udp=True is not supported (the paper uses False)")

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        width, height = results["ann_info"]["image_size"]
        matrix = get_affine_transform(
            results["center"], results["scale"], results.get("rotation", 0.0), (width, height)
        )
        results["img"] = cv2.warpAffine(
            results["img"], matrix, (int(width), int(height)), flags=cv2.INTER_LINEAR
        )
        joints = results["joints_3d"].copy()
        labelled = results["joints_3d_visible"][:, 0] > 0
        joints[labelled, :2] = affine_points(joints[labelled, :2], matrix)
        results["joints_3d"] = joints
        return results


class ToTensor:
    """Mark the crop for conversion; the float conversion happens in NormalizeTensor.

    mmpose's ToTensor divides by 255 and NormalizeTensor standardises; both are one call to
    ``hfpose.models.processing.normalize_crops`` (the function inference uses), done once.
    """

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        results["to_tensor"] = True
        return results


class NormalizeTensor:
    """(H,W,3) uint8 RGB -> (3,H,W) float32 standardised with the ImageNet mean/std."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        if not results.pop("to_tensor", False):
            raise ConfigError("NormalizeTensor must follow ToTensor in the pipeline")
        results["img"] = normalize_crops(results["img"][None], self.mean, self.std)[0]
        return results


def gaussian_heatmaps(
    joints: np.ndarray,
    visible: np.ndarray,
    image_size: Sequence[int],
    heatmap_size: Sequence[int],
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """mmpose's MSRA targets: an unnormalised Gaussian (peak 1) at each joint's rounded position.

    Returns targets (K,h,w) and weights (K,1): the label's weight (``visible`` column 0: 1 for a
    human label, the teacher's score for its labels) for a joint whose Gaussian overlaps the
    heatmap, else 0 (absent joints are thereby masked out of the loss).
    """
    num_joints = len(joints)
    hm_w, hm_h = int(heatmap_size[0]), int(heatmap_size[1])
    target = np.zeros((num_joints, hm_h, hm_w), dtype=np.float32)
    weight = np.clip(np.asarray(visible, dtype=np.float32)[:, :1], 0.0, 1.0)
    radius = sigma * 3
    size = int(2 * radius + 1)
    x = np.arange(0, size, 1, np.float32)
    y = x[:, None]
    x0 = y0 = size // 2
    gaussian = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    stride_x = image_size[0] / hm_w
    stride_y = image_size[1] / hm_h
    for k in range(num_joints):
        # int() truncates towards zero, as in mmpose (a joint just left of the map stays at 0).
        mu_x = int(joints[k, 0] / stride_x + 0.5)
        mu_y = int(joints[k, 1] / stride_y + 0.5)
        ul = (int(mu_x - radius), int(mu_y - radius))
        br = (int(mu_x + radius + 1), int(mu_y + radius + 1))
        if ul[0] >= hm_w or ul[1] >= hm_h or br[0] < 0 or br[1] < 0:
            weight[k] = 0.0
        if weight[k] <= 0:
            continue
        g_x = max(0, -ul[0]), min(br[0], hm_w) - ul[0]
        g_y = max(0, -ul[1]), min(br[1], hm_h) - ul[1]
        img_x = max(0, ul[0]), min(br[0], hm_w)
        img_y = max(0, ul[1]), min(br[1], hm_h)
        target[k, img_y[0] : img_y[1], img_x[0] : img_x[1]] = gaussian[
            g_y[0] : g_y[1], g_x[0] : g_x[1]
        ]
    return target, weight


class TopDownGenerateTarget:
    """Gaussian heatmap targets with sigma and per-joint weights from the label mask."""

    def __init__(
        self,
        sigma: float = 2,
        kernel: Sequence[int] = (11, 11),
        valid_radius_factor: float = 0.0546875,
        target_type: str = "GaussianHeatmap",
        encoding: str = "MSRA",
        unbiased_encoding: bool = False,
    ) -> None:
        if encoding != "MSRA" or unbiased_encoding or target_type != "GaussianHeatmap":
            raise ConfigError(
                "TopDownGenerateTarget supports encoding='MSRA' Gaussian heatmaps only "
                "(what the paper's configs use)"
            )
        self.sigma = float(sigma)

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        info = results["ann_info"]
        target, weight = gaussian_heatmaps(
            results["joints_3d"],
            results["joints_3d_visible"],
            info["image_size"],
            info["heatmap_size"],
            self.sigma,
        )
        joint_weights = info.get("joint_weights")
        if info.get("use_different_joint_weights") and joint_weights is not None:
            weight = weight * np.asarray(joint_weights, dtype=np.float32)[:, None]
        results["target"], results["target_weight"] = target, weight
        return results


PIPELINE_STEPS: dict[str, Callable[..., Any]] = {
    cls.__name__: cls
    for cls in (
        LoadImageFromFile,
        TopDownGetBboxCenterScale,
        TopDownRandomShiftBboxCenter,
        TopDownRandomFlip,
        TopDownHalfBodyTransform,
        TopDownGetRandomScaleRotation,
        TopDownAffine,
        ToTensor,
        NormalizeTensor,
        TopDownGenerateTarget,
    )
}
# Steps of the authors' configs that only pick which keys mmcv's collate keeps: the collate here
# keeps what the trainer and evaluator need, so these are accepted and do nothing.
_COLLECT_STEPS = {"Collect"}


class Compose:
    """Run the configured steps in order on one sample."""

    def __init__(self, steps: list[Callable[[Results, np.random.Generator], Results]]) -> None:
        self.steps = steps

    def __call__(self, results: Results, rng: np.random.Generator) -> Results:
        for step in self.steps:
            results = step(results, rng)
        return results


def build_pipeline(step_cfgs: list[dict[str, Any]], where: str = "pipeline") -> Compose:
    """Build a pipeline from a config list such as ``cfg['train_pipeline']``.

    An unknown step or argument is refused with its name, so a typo does not silently drop an
    augmentation.
    """
    if not isinstance(step_cfgs, list):
        raise ConfigError(f"{where} must be a list of steps")
    steps = []
    for i, step_cfg in enumerate(step_cfgs):
        if not isinstance(step_cfg, dict) or "type" not in step_cfg:
            raise ConfigError(f"{where}[{i}] must be a mapping with a 'type'")
        kwargs = dict(step_cfg)
        name = kwargs.pop("type")
        if name in _COLLECT_STEPS:
            continue
        if name not in PIPELINE_STEPS:
            known = ", ".join(sorted(PIPELINE_STEPS))
            raise ConfigError(f"{where}[{i}]: unknown step {name!r}; known: {known}")
        cls = PIPELINE_STEPS[name]
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise ConfigError(f"{where}[{i}] {name}: unknown argument(s) {', '.join(unknown)}")
        steps.append(cls(**kwargs))
    return Compose(steps)
