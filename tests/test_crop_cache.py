"""Crop cache: a cached crop must behave exactly like the full image with its person box."""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from hfpose.models.processing import bbox_xywh_to_cs, get_affine_transform
from hfpose.training.dataset import crop_cache as cc
from hfpose.training.dataset.encode_cache import (
    PackSetting,
    encode_cache,
    parse_setting,
    stored_sides,
)
from hfpose.training.dataset.encode_cache import main as encode_main

DOT_COLOURS = {0: (255, 0, 0), 9: (0, 255, 0), 16: (0, 0, 255)}  # nose, left wrist, right ankle
DOT_PLACES = {0: (0.5, 0.1), 9: (0.95, 0.5), 16: (0.1, 0.95)}  # in the box, far enough apart


def _synthetic_dataset(root: Path, person_height: float) -> tuple[dict, dict[int, np.ndarray]]:
    """Two images with one person box each and coloured dots drawn where three keypoints are."""
    rng = np.random.default_rng(0)
    images, annotations, truths = [], [], {}
    for image_id, (width, height) in enumerate([(640, 480), (300, 500)], start=1):
        ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
        image = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()
        box_w, box_h = 0.45 * person_height, person_height
        x = rng.uniform(0, width - box_w)
        y = rng.uniform(0, max(height - box_h, 1))
        keypoints = np.zeros((17, 3))
        for joint in DOT_COLOURS:
            u, v = DOT_PLACES[joint]
            keypoints[joint] = (x + u * box_w, y + v * box_h, 2)
            centre = tuple(int(round(c)) for c in keypoints[joint, :2])
            # cv2 draws in BGR; the cache holds RGB.
            cv2.circle(image, centre, 9, DOT_COLOURS[joint][::-1], -1)
        cv2.imwrite(str(root / f"{image_id}.png"), image)
        images.append(
            {"id": image_id, "file_name": f"{image_id}.png", "width": width, "height": height}
        )
        annotations.append(
            {
                "id": 10 * image_id,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [x, y, box_w, box_h],
                "keypoints": keypoints.reshape(-1).tolist(),
                "pseudo_keypoints": [1] + [0] * 16,
                "head_size": 0.1 * person_height,
                "mpii_pelvis_thorax_upperneck_headtop": [
                    [x, y, 2],
                    [x, y + 5, 2],
                    [0, 0, 0],
                    [x + 1, y, 2],
                ],  # fmt: skip
            }
        )
        truths[10 * image_id] = keypoints
    return {"images": images, "annotations": annotations, "categories": []}, truths


@pytest.mark.parametrize("person_height", [120.0, 420.0], ids=["enlarged", "shrunk"])
def test_drawn_dots_are_where_the_cached_keypoints_say(tmp_path, person_height) -> None:
    coco, truths = _synthetic_dataset(tmp_path, person_height)
    cc.build_cache(coco, tmp_path, tmp_path / "cache", "synthetic", "all", None)
    cache = cc.CropCache(tmp_path / "cache")

    assert len(cache) == 2
    for item in (cache[0], cache[1]):
        assert item["image"].shape == (cc.CROP_SIZE, cc.CROP_SIZE, 3)
        for joint, colour in DOT_COLOURS.items():
            x, y = np.round(item["keypoints"][joint, :2]).astype(int)
            np.testing.assert_allclose(item["image"][y, x], colour, atol=40)
        to_image = item["crop_to_image"]
        back = item["keypoints"][:, :2] @ to_image[:, :2].T + to_image[:, 2]
        labelled = item["keypoints"][:, 2] > 0
        truth = truths[item["annotation_id"]]
        np.testing.assert_allclose(back[labelled], truth[labelled, :2], atol=1e-3)
        assert (item["keypoints"][~labelled] == 0).all()


def test_network_crop_from_cache_equals_crop_from_full_image(tmp_path) -> None:
    coco, truths = _synthetic_dataset(tmp_path, 150.0)
    cc.build_cache(coco, tmp_path, tmp_path / "cache", "synthetic", "all", None)
    item = cc.CropCache(tmp_path / "cache")[0]
    annotation = next(a for a in coco["annotations"] if a["id"] == item["annotation_id"])
    full = cv2.cvtColor(cv2.imread(str(tmp_path / item["file_name"])), cv2.COLOR_BGR2RGB)
    center, scale = bbox_xywh_to_cs(np.asarray([annotation["bbox"]]), 192 / 256)

    for rotation, scale_factor in [(0.0, 1.0), (30.0, 1.25), (-30.0, 0.75)]:
        from_full = get_affine_transform(center[0], scale[0] * scale_factor, rotation, (192, 256))
        from_cache = get_affine_transform(
            item["center"], item["scale"] * scale_factor, rotation, (192, 256)
        )
        full_crop = cv2.warpAffine(full, from_full, (192, 256)).astype(np.float64)
        cache_crop = cv2.warpAffine(item["image"], from_cache, (192, 256)).astype(np.float64)
        assert np.abs(full_crop - cache_crop).mean() < 2.0  # one extra bilinear resampling
        truth = truths[item["annotation_id"]][[0, 9, 16], :2]
        via_full = truth @ from_full[:, :2].T + from_full[:, 2]
        cached = item["keypoints"][[0, 9, 16], :2]
        via_cache = cached @ from_cache[:, :2].T + from_cache[:, 2]
        np.testing.assert_allclose(via_cache, via_full, atol=1e-2)


def test_cache_keeps_pseudo_mask_head_size_and_extra_points(tmp_path) -> None:
    coco, _ = _synthetic_dataset(tmp_path, 200.0)
    meta = cc.build_cache(coco, tmp_path, tmp_path / "cache", "mpii", "all", None)
    item = cc.CropCache(tmp_path / "cache")[0]
    zoom = item["to_crop"][0, 0]
    annotation = next(a for a in coco["annotations"] if a["id"] == item["annotation_id"])

    assert item["pseudo_mask"].tolist() == [True] + [False] * 16
    assert item["head_size"] == pytest.approx(annotation["head_size"] * zoom, rel=1e-5)
    assert meta["extra_point_names"] == ["pelvis", "thorax", "upper_neck", "head_top"]
    assert item["extra_points"][2].tolist() == [0, 0, 0]  # unlabelled stays unlabelled
    x, y = annotation["bbox"][:2]
    np.testing.assert_allclose(item["bbox"][:2], np.array([x, y]) * zoom + item["to_crop"][:, 2])
    np.testing.assert_allclose(item["center"], [cc.CROP_SIZE / 2] * 2)


def test_command_builds_disjoint_train_and_val_caches(tmp_path) -> None:
    coco, _ = _synthetic_dataset(tmp_path, 150.0)
    annotations = tmp_path / "ann.json"
    annotations.write_text(json.dumps(coco))
    val_list = tmp_path / "val.txt"
    val_list.write_text("2.png\n")

    argv = [str(annotations), str(tmp_path), "--dataset", "toy", "--val-list", str(val_list)]
    assert cc.main([*argv, "--out-dir", str(tmp_path / "out")]) == 0

    train = cc.CropCache(tmp_path / "out" / "toy_train")
    val = cc.CropCache(tmp_path / "out" / "toy_val")
    assert [train[i]["file_name"] for i in range(len(train))] == ["1.png"]
    assert [val[i]["file_name"] for i in range(len(val))] == ["2.png"]
    assert val.meta["split"] == "val" and val.meta["source"]["val_list"] == str(val_list)
    assert not (tmp_path / "out" / "toy_val.partial").exists()


def test_a_rebuilt_cache_replaces_the_old_one_by_renames(tmp_path) -> None:
    destination, finished = tmp_path / "lspet_train", tmp_path / "lspet_train.partial"
    for folder, text in ((destination, "old"), (finished, "new")):
        folder.mkdir()
        (folder / "meta.json").write_text(text)
    cc.replace_folder(finished, destination)
    assert (destination / "meta.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["lspet_train"]  # no .old, no .partial


def test_pickled_cache_leaves_the_images_behind(tmp_path) -> None:
    coco, _ = _synthetic_dataset(tmp_path, 150.0)
    cc.build_cache(coco, tmp_path, tmp_path / "cache", "synthetic", "all", None)
    cache = cc.CropCache(tmp_path / "cache")
    first = cache[0]["image"]  # maps the images in this process

    clone = pickle.loads(pickle.dumps(cache))  # what a DataLoader worker receives
    assert len(pickle.dumps(cache)) < first.nbytes
    np.testing.assert_array_equal(clone[0]["image"], first)


def test_missing_cache_names_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        cc.CropCache(tmp_path / "nowhere")


def test_real_lspet_image_round_trip(shared_dir, tmp_path) -> None:
    lspet = shared_dir / "datasets" / "lspet"
    coco = json.loads((lspet / "lspet_coco17.json").read_text())
    names = {image["file_name"] for image in coco["images"][:3]}
    cc.build_cache(coco, lspet / "images", tmp_path / "lspet", "lspet", "all", names)
    cache = cc.CropCache(tmp_path / "lspet")
    assert len(cache) == 3
    for i in range(3):
        item = cache[i]
        annotation = next(a for a in coco["annotations"] if a["id"] == item["annotation_id"])
        truth = np.asarray(annotation["keypoints"]).reshape(17, 3)
        labelled = truth[:, 2] > 0
        back = (
            item["keypoints"][:, :2] @ item["crop_to_image"][:, :2].T + item["crop_to_image"][:, 2]
        )
        np.testing.assert_allclose(back[labelled], truth[labelled, :2], atol=1e-2)
        assert cache.meta["extra_point_names"] == ["neck", "head_top"]
        assert np.isnan(item["head_size"])


# Packed (WebP) caches, hfpose-encode-cache: the same people, rows and geometry.
def test_packed_cache_reads_back_like_the_original(tmp_path) -> None:
    coco, _ = _synthetic_dataset(tmp_path, 150.0)
    cc.build_cache(coco, tmp_path, tmp_path / "cache", "synthetic", "all", None)
    meta = encode_cache(tmp_path / "cache", tmp_path / "packed", PackSetting(90))
    original, packed = cc.CropCache(tmp_path / "cache"), cc.CropCache(tmp_path / "packed")

    assert not (tmp_path / "packed" / "images.npy").exists()
    assert meta["count"] == len(packed) == len(original) == 2
    assert meta["image_encoding"]["format"] == "webp"
    for row in range(2):
        a, b = original[row], packed[row]
        assert b["image"].shape == a["image"].shape and b["image"].dtype == np.uint8
        # lossy, but close: mean error of a few grey levels, the drawn dots keep their colour
        assert np.abs(a["image"].astype(float) - b["image"]).mean() < 3.0
        for key in ("keypoints", "center", "scale", "bbox", "to_crop"):
            np.testing.assert_array_equal(a[key], b[key])
        for joint, colour in DOT_COLOURS.items():
            x, y = np.round(b["keypoints"][joint, :2]).astype(int)
            np.testing.assert_allclose(b["image"][y, x], colour, atol=40)


def test_a_crop_stored_smaller_reads_back_at_the_cache_side_in_place(tmp_path) -> None:
    coco, _ = _synthetic_dataset(tmp_path, 150.0)
    cc.build_cache(coco, tmp_path, tmp_path / "cache", "synthetic", "all", None)
    meta = encode_cache(tmp_path / "cache", tmp_path / "packed", PackSetting(90, 192))
    encode_cache(tmp_path / "cache", tmp_path / "threads", PackSetting(90, 192), threads=2)
    for name in (cc.ENCODED_IMAGES_FILE, "index.npz"):  # threads change nothing
        assert (tmp_path / "threads" / name).read_bytes() == (
            tmp_path / "packed" / name
        ).read_bytes()
    assert (
        meta["image_encoding"]["side"] == 192 and meta["image_encoding"]["mean_stored_side"] == 192
    )
    original, packed = cc.CropCache(tmp_path / "cache"), cc.CropCache(tmp_path / "packed")
    for row in range(2):
        a, b = original[row], packed[row]
        assert b["image"].shape == a["image"].shape == (cc.CROP_SIZE, cc.CROP_SIZE, 3)
        assert np.abs(a["image"].astype(float) - b["image"]).mean() < 6.0
        for joint, colour in DOT_COLOURS.items():  # the dots where the keypoints say
            x, y = np.round(b["keypoints"][joint, :2]).astype(int)
            np.testing.assert_allclose(b["image"][y, x], colour, atol=60)


def test_stored_sides_follow_the_setting_and_the_source_zoom() -> None:
    zoom = np.array([0.5, 1.0, 1.5, 2.0])
    assert stored_sides(zoom, 384, PackSetting()).tolist() == [384] * 4
    assert stored_sides(zoom, 384, PackSetting(side=320)).tolist() == [320] * 4
    assert stored_sides(zoom, 384, PackSetting(fit_source=True)).tolist() == [384, 384, 256, 192]
    assert stored_sides(zoom, 384, PackSetting(65, 320, True)).tolist() == [320, 320, 256, 192]


def test_pack_settings_read_from_their_short_form() -> None:
    assert parse_setting("65") == PackSetting(65)
    assert parse_setting("60,320,fit") == PackSetting(60, 320, True)
    assert parse_setting("65,fit").label() == "webp_q65_fit"
    for bad in ("", "x", "101", "65,8", "65,320,320", "fit"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_setting(bad)


def test_parts_split_the_rows_without_overlap(tmp_path) -> None:
    coco, _ = _synthetic_dataset(tmp_path, 150.0)
    cc.build_cache(coco, tmp_path, tmp_path / "cache", "synthetic", "all", None)
    for index in range(2):
        assert (
            encode_main(
                [str(tmp_path / "cache"), str(tmp_path / f"p{index}"), "--part", f"{index}/2"]
            )
            == 0
        )
    ids = [cc.CropCache(tmp_path / f"p{i}")[0]["annotation_id"] for i in range(2)]
    assert sorted(ids) == sorted(cc.CropCache(tmp_path / "cache").index["annotation_id"].tolist())


def test_missing_or_corrupt_pack_says_so(tmp_path) -> None:
    with pytest.raises(SystemExit, match="no crop cache"):
        encode_main([str(tmp_path / "absent"), str(tmp_path / "out")])
    coco, _ = _synthetic_dataset(tmp_path, 150.0)
    cc.build_cache(coco, tmp_path, tmp_path / "cache", "synthetic", "all", None)
    encode_cache(tmp_path / "cache", tmp_path / "packed", PackSetting(65))
    packed_file = tmp_path / "packed" / cc.ENCODED_IMAGES_FILE
    with np.load(packed_file) as packed:
        data, offsets = packed["data"].copy(), packed["offsets"]
    data[:] = 0
    np.savez(packed_file, data=data, offsets=offsets)
    with pytest.raises(ValueError, match="does not decode"):
        cc.CropCache(tmp_path / "packed")[0]
