"""Shared pre/post-processing: boxes, crops, heatmap decoding and flipping (no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from hfpose.models.config import ConfigError, load_config
from hfpose.models.metainfo import COCO, MPII
from hfpose.models.processing import (
    PIXEL_STD,
    affine_points,
    bbox_xywh_to_cs,
    decode_heatmaps,
    flip_back_heatmaps,
    flip_keypoints,
    get_affine_transform,
    merge_flip_heatmaps,
    normalize_crops,
    warp_crops,
)


def gaussian_heatmap(
    center_xy: np.ndarray, size_wh: tuple[int, int], sigma: float = 2.0
) -> np.ndarray:
    ys, xs = np.mgrid[0 : size_wh[1], 0 : size_wh[0]]
    return np.exp(-((xs - center_xy[0]) ** 2 + (ys - center_xy[1]) ** 2) / (2 * sigma**2))


def test_box_is_widened_to_the_input_aspect_and_padded() -> None:
    centers, scales = bbox_xywh_to_cs(np.array([[10, 20, 50, 200], [0, 0, 300, 100]]), 192 / 256)
    np.testing.assert_allclose(centers, [[35, 120], [150, 50]])
    np.testing.assert_allclose(scales[0] * PIXEL_STD, [150 * 1.25, 200 * 1.25])
    np.testing.assert_allclose(scales[1] * PIXEL_STD, [300 * 1.25, 400 * 1.25])


@pytest.mark.parametrize("rotation", [0.0, 25.0, -40.0])
def test_decoding_recovers_a_subpixel_peak_through_a_rotated_scaled_crop(rotation: float) -> None:
    center, scale = np.array([321.0, 243.0]), np.array([1.275, 1.7])  # aspect 48:64, as boxes give
    heatmap_size = (48, 64)
    target = np.array([300.37, 211.81])  # image pixels
    to_heatmap = get_affine_transform(center, scale, rotation, heatmap_size)
    peak = affine_points(target, to_heatmap)
    heatmaps = gaussian_heatmap(peak, heatmap_size)[None, None]
    keypoints, scores = decode_heatmaps(
        heatmaps, center[None], scale[None], use_dark=True, rotations=np.array([rotation])
    )
    # 0.1 px in heatmap units is ~0.55 image pixels at this scale; DARK does far better.
    image_px_per_heatmap_px = scale[0] * PIXEL_STD / heatmap_size[0]
    assert np.linalg.norm(keypoints[0, 0] - target) < 0.1 * image_px_per_heatmap_px
    assert np.linalg.norm(keypoints[0, 0] - target) < 0.1
    assert scores[0, 0] == pytest.approx(heatmaps.max())


def test_quarter_pixel_decoding_is_exact_at_quarter_offsets() -> None:
    center, scale = np.array([100.0, 120.0]), np.array([0.96, 1.28])  # 192x256 px box
    heatmaps = gaussian_heatmap(np.array([20.25, 30.75]), (48, 64))[None, None]
    keypoints, _ = decode_heatmaps(heatmaps, center[None], scale[None])
    # heatmap -> image: x * (192/48) + 100 - 96
    np.testing.assert_allclose(keypoints[0, 0], [20.25 * 4 + 4, 30.75 * 4 + 120 - 128])


def test_peaks_at_the_border_get_no_shift_and_empty_maps_score_zero() -> None:
    heatmaps = np.zeros((1, 2, 64, 48))
    heatmaps[0, 0, 0, 5] = 1.0
    heatmaps[0, 0, 0, 6] = 0.5
    keypoints, scores = decode_heatmaps(
        heatmaps, np.array([[24.0, 32.0]]), np.array([[0.24, 0.32]])
    )
    np.testing.assert_allclose(keypoints[0, 0], [5.0, 0.0])  # crop == heatmap geometry here
    assert scores[0, 1] == 0.0


def test_crop_puts_an_image_point_where_the_affine_says() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    image[300:303, 200:203] = 255  # a dot centred on (201, 301)
    centers, scales = bbox_xywh_to_cs(np.array([[150, 200, 120, 200]]), 192 / 256)
    crop = warp_crops(image, centers, scales, (192, 256))[0]
    expected = affine_points(
        [201.0, 301.0], get_affine_transform(centers[0], scales[0], 0, (192, 256))
    )
    ys, xs = np.nonzero(crop[..., 0] > 60)
    np.testing.assert_allclose([xs.mean(), ys.mean()], expected, atol=0.6)


def test_normalisation_of_bgr_crops_swaps_to_the_same_numbers() -> None:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    expected = normalize_crops(bgr[..., ::-1].astype(np.float32))  # numpy's path
    np.testing.assert_allclose(normalize_crops(bgr, swap_rb=True), expected, atol=1e-5)
    np.testing.assert_allclose(normalize_crops(bgr[..., ::-1]), expected, atol=1e-5)


def test_normalisation_is_rgb_imagenet_chw() -> None:
    crops = np.full((2, 4, 3, 3), 255, np.uint8)
    out = normalize_crops(crops)
    assert out.shape == (2, 3, 4, 3) and out.dtype == np.float32
    np.testing.assert_allclose(
        out[0, :, 0, 0], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225], rtol=1e-6
    )


@pytest.mark.parametrize("info", [COCO, MPII])
def test_flipping_twice_is_the_identity(info) -> None:
    rng = np.random.default_rng(0)
    heatmaps = rng.random((2, info.num_keypoints, 64, 48))
    np.testing.assert_array_equal(
        flip_back_heatmaps(flip_back_heatmaps(heatmaps, info.flip_pairs), info.flip_pairs), heatmaps
    )
    keypoints = rng.random((3, info.num_keypoints, 2)) * 100
    np.testing.assert_allclose(
        flip_keypoints(flip_keypoints(keypoints, 640, info.flip_pairs), 640, info.flip_pairs),
        keypoints,
    )


def test_flip_test_merge_shifts_the_flipped_map_by_one_pixel() -> None:
    heatmaps = np.zeros((1, 17, 64, 48))
    heatmaps[0, 5, 30, 20] = 1.0  # left shoulder
    flipped = np.zeros_like(heatmaps)
    flipped[0, 6, 30, 47 - 20] = 1.0  # the mirrored input puts it on the right shoulder channel
    merged = merge_flip_heatmaps(heatmaps, flipped, COCO.flip_pairs)
    assert merged[0, 5, 30, 20] == 0.5 and merged[0, 5, 30, 21] == 0.5
    assert merged[0, 6].max() == 0.0


def test_flip_keypoints_swaps_left_and_right() -> None:
    keypoints = np.zeros((17, 2))
    keypoints[COCO.keypoint_names.index("left_wrist")] = [10, 50]
    flipped = flip_keypoints(keypoints, 100, COCO.flip_pairs)
    np.testing.assert_allclose(flipped[COCO.keypoint_names.index("right_wrist")], [89, 50])


def test_config_names_paths_and_validation(tmp_path) -> None:
    by_name = load_config("hf_hrnet_30_mpii_256x256")
    assert by_name["model"]["keypoint_head"]["out_channels"] == 16
    custom = tmp_path / "mine.yaml"
    custom.write_text(
        "_base_: [{}]\ntotal_epochs: 3\n".format(
            str(
                __import__("hfpose.models.config", fromlist=["CONFIG_DIR"]).CONFIG_DIR
                / "hf_hrnet_18_coco_256x192.yaml"
            )
        )
    )
    assert load_config(custom)["total_epochs"] == 3
    assert (
        load_config("hf_hrnet_18_coco_256x192", ["optimizer.lr=0.001"])["optimizer"]["lr"] == 0.001
    )
    with pytest.raises(ConfigError, match="unknown config key 'model.backbone.extra.stemm'"):
        load_config("hf_hrnet_18_coco_256x192", ["model.backbone.extra.stemm=1"])
    with pytest.raises(ConfigError, match="'data_cfg.image_size' must be list"):
        load_config("hf_hrnet_18_coco_256x192", ["data_cfg.image_size=192"])
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
