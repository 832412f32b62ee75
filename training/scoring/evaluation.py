"""The numbers the paper reports: COCO keypoint AP (pycocotools), MPII PCKh, LSP-style PCK.

Inference here goes through ``hfpose.models.processing`` (flip test, heatmap decoding), the same code the
app runs. COCO scoring follows mmpose 0.x: instance score = box score x mean of the keypoint
scores above ``vis_thr``, OKS-NMS at ``oks_thr`` per image, then pycocotools' COCOeval on the
results json written to disk (so the file can be submitted or re-scored elsewhere).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hfpose.models.metainfo import DatasetInfo
from hfpose.models.processing import PIXEL_STD, decode_heatmaps, flip_back_heatmaps, get_max_preds

HeatmapFn = Callable[[np.ndarray], np.ndarray]
COCO_STATS = (
    "AP",
    "AP .5",
    "AP .75",
    "AP (M)",
    "AP (L)",
    "AR",
    "AR .5",
    "AR .75",
    "AR (M)",
    "AR (L)",
)
# mmpose's name for the metric in configs -> ours
METRIC_ALIASES = {"map": "coco", "coco": "coco", "pckh": "pckh", "pck": "pck", "tpck": "pck"}


def normalise_metric_name(name: str) -> str:
    try:
        return METRIC_ALIASES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; use coco (mAP), pckh or pck") from None


# ------------------------------------------------------------------------------------------------
# Inference


def predict_keypoints(
    heatmap_fn: HeatmapFn,
    batches: Iterable[dict[str, Any]],
    flip_pairs: Sequence[Sequence[int]],
    flip_test: bool = True,
    shift_heatmap: bool = True,
    use_dark: bool = False,
) -> dict[str, np.ndarray]:
    """Run ``heatmap_fn`` on every batch and decode to image keypoints.

    Returns arrays keyed ``index`` (N,), ``keypoints`` (N,K,3: x, y, score), ``center``,
    ``scale`` (N,2) and ``bbox_score`` (N,). With ``flip_test`` the mirrored crop's heatmaps are
    flipped back (shifted one pixel when ``shift_heatmap``) and averaged in, as the paper tests.
    """
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for batch in batches:
        images = np.asarray(batch["img"], dtype=np.float32)
        heatmaps = np.asarray(heatmap_fn(images), dtype=np.float32)
        if flip_test:
            mirrored = np.ascontiguousarray(images[..., ::-1])
            flipped = np.asarray(heatmap_fn(mirrored), dtype=np.float32)
            heatmaps = (heatmaps + flip_back_heatmaps(flipped, flip_pairs, shift_heatmap)) * 0.5
        center = np.asarray(batch["center"], dtype=np.float64)
        scale = np.asarray(batch["scale"], dtype=np.float64)
        coords, scores = decode_heatmaps(heatmaps, center, scale, use_dark=use_dark)
        parts["keypoints"].append(np.concatenate([coords, scores[..., None]], axis=2))
        parts["center"].append(center)
        parts["scale"].append(scale)
        parts["bbox_score"].append(np.asarray(batch["bbox_score"], dtype=np.float64))
        parts["index"].append(np.asarray(batch["index"], dtype=np.int64))
    if not parts:
        raise ValueError("nothing to evaluate: the evaluation set is empty")
    return {key: np.concatenate(value) for key, value in parts.items()}


def unique_predictions(predictions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Sort by sample index and drop repeats (DistributedSampler pads shards with repeats)."""
    _, first = np.unique(predictions["index"], return_index=True)
    return {key: value[first] for key, value in predictions.items()}


# ------------------------------------------------------------------------------------------------
# COCO keypoint AP


def oks_iou(
    g: np.ndarray, d: np.ndarray, area_g: float, area_d: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """OKS between one pose ``g`` (K*3 flat) and poses ``d`` (M, K*3), as mmpose's NMS uses it."""
    variances = (sigmas * 2) ** 2
    dx = d[:, 0::3] - g[0::3]
    dy = d[:, 1::3] - g[1::3]
    e = (dx**2 + dy**2) / variances / ((area_g + area_d[:, None]) / 2 + np.spacing(1)) / 2
    return np.exp(-e).mean(axis=1) if e.shape[1] else np.zeros(len(d))


def oks_nms(
    keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thr: float, sigmas: np.ndarray
) -> list[int]:
    """Greedy NMS by OKS: keep the best-scored pose, drop the others overlapping above ``thr``."""
    flat = keypoints.reshape(len(keypoints), -1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        overlap = oks_iou(flat[i], flat[order[1:]], areas[i], areas[order[1:]], sigmas)
        order = order[1:][overlap <= thr]
    return keep


def rescore(keypoints: np.ndarray, bbox_scores: np.ndarray, vis_thr: float) -> np.ndarray:
    """Instance score = box score x mean keypoint score over joints scoring above ``vis_thr``
    (0 when none does), the paper's rescoring."""
    joint_scores = keypoints[..., 2]
    confident = joint_scores > vis_thr
    count = confident.sum(axis=1)
    mean = np.where(count > 0, (joint_scores * confident).sum(axis=1) / np.maximum(count, 1), 0.0)
    return mean * bbox_scores


def coco_results(
    predictions: dict[str, np.ndarray],
    image_ids: Sequence[Any],
    sigmas: Sequence[float],
    vis_thr: float = 0.2,
    oks_thr: float = 0.9,
    use_nms: bool = True,
) -> list[dict[str, Any]]:
    """COCO results entries (one per kept person) after rescoring and per-image OKS-NMS.

    ``image_ids[i]`` is the COCO image id of prediction i. The OKS area is the padded crop's
    area (scale x 200 squared), as in mmpose.
    """
    keypoints = predictions["keypoints"]
    areas = np.prod(predictions["scale"] * PIXEL_STD, axis=1)
    scores = rescore(keypoints, predictions["bbox_score"], vis_thr)
    sigmas_arr = np.asarray(sigmas, dtype=np.float64)
    by_image: dict[Any, list[int]] = defaultdict(list)
    for i, image_id in enumerate(image_ids):
        by_image[image_id].append(i)
    results = []
    for image_id, members in by_image.items():
        members_arr = np.asarray(members)
        kept = members_arr
        if use_nms:
            keep = oks_nms(
                keypoints[members_arr], scores[members_arr], areas[members_arr], oks_thr, sigmas_arr
            )
            kept = members_arr[keep]
        for i in kept:
            results.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": [float(v) for v in keypoints[i].reshape(-1)],
                    "score": float(scores[i]),
                    "center": [float(v) for v in predictions["center"][i]],
                    "scale": [float(v) for v in predictions["scale"][i]],
                }
            )
    return results


def _coco_from_dict(data: dict[str, Any]) -> Any:
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_keypoint_ap(
    gt: dict[str, Any],
    results: list[dict[str, Any]],
    sigmas: Sequence[float],
    image_ids: Sequence[Any] | None = None,
    results_file: str | Path | None = None,
) -> dict[str, float]:
    """pycocotools' keypoint AP/AR of ``results`` against the COCO json ``gt``.

    The results are written to ``results_file`` (when given) and loaded back from it, so the
    score is that of the file on disk.
    """
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {name: 0.0 for name in COCO_STATS}
    coco_gt = _coco_from_dict(gt)
    if results_file is not None:
        results_file = Path(results_file)
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(results))
        loaded = json.loads(results_file.read_text())
    else:
        loaded = results
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(loaded)
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.params.useSegm = None
        if image_ids is not None:
            evaluator.params.imgIds = sorted(set(image_ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_STATS, evaluator.stats)}


# ------------------------------------------------------------------------------------------------
# PCK family


def _joint_groups(layout: DatasetInfo) -> dict[str, list[int]]:
    """Left and right joints of a kind reported together (Shoulder, Elbow, ...), like mmpose."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(layout.keypoint_names):
        base = name
        for prefix in ("left_", "right_", "l_", "r_"):
            if name.startswith(prefix):
                base = name[len(prefix) :]
                break
        groups[base.replace("_", " ").title()].append(i)
    return dict(groups)


def normalised_errors(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, normaliser: np.ndarray
) -> np.ndarray:
    """(N,K) distances divided by each person's normaliser; NaN where not evaluated."""
    dist = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    valid = mask & (normaliser[:, None] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = dist / normaliser[:, None]
    return np.where(valid, errors, np.nan)


def pck_table(
    errors: np.ndarray,
    thr: float,
    layout: DatasetInfo,
    total_name: str,
    count_weighted: bool,
    exclude_from_total: Sequence[int] = (),
) -> dict[str, float]:
    """Per-joint-kind and total percentage of joints within ``thr`` (joints never labelled are
    left out). ``count_weighted`` totals over joint instances (MPII's PCKh); otherwise it is the
    mean over joints (mmpose's PCK)."""
    evaluated = ~np.isnan(errors)
    hits = (np.nan_to_num(errors, nan=np.inf) <= thr) & evaluated
    counts = evaluated.sum(axis=0)
    per_joint = np.where(counts > 0, 100.0 * hits.sum(axis=0) / np.maximum(counts, 1), np.nan)
    table: dict[str, float] = {}
    for group, joints in _joint_groups(layout).items():
        joints = [j for j in joints if counts[j] > 0]
        if joints:
            table[group] = float(np.mean(per_joint[joints]))
    in_total = [j for j in range(len(counts)) if counts[j] > 0 and j not in exclude_from_total]
    if not in_total:
        raise ValueError("no labelled joints to evaluate")
    if count_weighted:
        total = 100.0 * hits[:, in_total].sum() / counts[in_total].sum()
    else:
        total = float(np.mean(per_joint[in_total]))
    table[total_name] = float(total)
    return table


def pckh_from_head_sizes(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, head_sizes: np.ndarray, layout: DatasetInfo
) -> dict[str, float]:
    """PCKh@0.5 per joint kind and in total, plus the total at 0.1 (``PCKh@0.1``).

    ``head_sizes`` are the normalisers as stored on each annotation (MPII's is 0.6 x the head
    box diagonal; the ../shared MPII json stores it ready to use).
    """
    errors = normalised_errors(pred, gt, mask, np.asarray(head_sizes, dtype=np.float64))
    table = pck_table(errors, 0.5, layout, "PCKh", count_weighted=True)
    table["PCKh@0.1"] = pck_table(errors, 0.1, layout, "PCKh", count_weighted=True)["PCKh"]
    return table


def pckh_mpii_mat(preds_0based: np.ndarray, mat_file: str | Path, layout: DatasetInfo) -> dict:
    """MPII's official-style PCKh on ``mpii_gt_val.mat`` (as mmpose computes it).

    Pelvis and thorax are left out of the total; the mat stores 1-based MATLAB pixels and head
    boxes whose diagonal x 0.6 is the normaliser.
    """
    from scipy.io import loadmat

    mat_file = Path(mat_file)
    if not mat_file.is_file():
        raise FileNotFoundError(f"MPII ground truth not found: {mat_file}")
    gt = loadmat(str(mat_file))
    missing = np.asarray(gt["jnt_missing"]).T.astype(bool)  # (N,K)
    pos_gt = np.transpose(np.asarray(gt["pos_gt_src"], dtype=np.float64), [2, 0, 1])  # (N,K,2)
    headboxes = np.transpose(np.asarray(gt["headboxes_src"], dtype=np.float64), [2, 0, 1])
    if len(preds_0based) != len(pos_gt):
        raise ValueError(f"{len(preds_0based)} predictions but {len(pos_gt)} people in {mat_file}")
    head_sizes = np.linalg.norm(headboxes[:, 1] - headboxes[:, 0], axis=1) * 0.6
    pred = np.asarray(preds_0based, dtype=np.float64)[..., :2] + 1.0
    errors = normalised_errors(pred, pos_gt, ~missing, head_sizes)
    names = layout.keypoint_names
    excluded = [names.index(n) for n in ("pelvis", "thorax") if n in names]
    table = pck_table(errors, 0.5, layout, "PCKh", True, excluded)
    table["PCKh@0.1"] = pck_table(errors, 0.1, layout, "PCKh", True, excluded)["PCKh"]
    return table


def torso_sizes(gt: np.ndarray, mask: np.ndarray, layout: DatasetInfo) -> np.ndarray:
    """Left shoulder to right hip (the LSP convention), else right shoulder to left hip; 0 when
    neither pair is labelled."""
    names = layout.keypoint_names
    sizes = np.zeros(len(gt))
    for a, b in (("left_shoulder", "right_hip"), ("right_shoulder", "left_hip")):
        i, j = names.index(a), names.index(b)
        both = mask[:, i] & mask[:, j] & (sizes < 1)
        sizes[both] = np.linalg.norm(gt[both, i, :2] - gt[both, j, :2], axis=1)
    return sizes


def pck_torso(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, layout: DatasetInfo, thr: float = 0.2
) -> dict[str, float]:
    """PCK@thr normalised by torso size, as LSP results are reported (``PCK``)."""
    errors = normalised_errors(pred, gt, mask, torso_sizes(gt, mask, layout))
    return pck_table(errors, thr, layout, "PCK", count_weighted=False)


def pck_bbox(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, boxes_xywh: np.ndarray, thr: float
) -> float:
    """mmpose's top-down PCK: distance / the box's longer side below ``thr``, mean over joints."""
    errors = normalised_errors(pred, gt, mask, np.max(np.asarray(boxes_xywh)[:, 2:4], axis=1))
    evaluated = ~np.isnan(errors)
    hits = (np.nan_to_num(errors, nan=np.inf) <= thr) & evaluated
    counts = evaluated.sum(axis=0)
    return float(np.mean(hits.sum(axis=0)[counts > 0] / counts[counts > 0]))


def heatmap_accuracy(
    output: np.ndarray, target: np.ndarray, weight: np.ndarray, thr: float = 0.05
) -> float:
    """mmpose's training ``acc_pose``: PCK of heatmap argmaxes normalised by the heatmap size."""
    n, k, h, w = output.shape
    pred, _ = get_max_preds(np.asarray(output, dtype=np.float64))
    gt, _ = get_max_preds(np.asarray(target, dtype=np.float64))
    mask = np.asarray(weight).reshape(n, k) > 0
    normaliser = np.array([w, h], dtype=np.float64)
    dist = np.linalg.norm((pred - gt) / normaliser, axis=-1)
    evaluated = mask
    counts = evaluated.sum(axis=0)
    if not counts.any():
        return 0.0
    hits = (dist <= thr) & evaluated
    return float(np.mean(hits.sum(axis=0)[counts > 0] / counts[counts > 0]))


# ------------------------------------------------------------------------------------------------
# Dispatch on a dataset


def human_labelled(record: dict[str, Any]) -> np.ndarray:
    """(K,) joints a human labelled: BlazePose pseudo-labels are trained on but never scored."""
    mask = record["joints_3d_visible"][:, 0] > 0
    if "pseudo" in record:
        mask = mask & ~record["pseudo"]
    return mask


def without_pseudo_labels(coco: dict[str, Any]) -> dict[str, Any]:
    """A copy of a COCO json whose pseudo-labelled keypoints are unlabelled (v=0)."""
    if not any("pseudo_keypoints" in ann for ann in coco["annotations"]):
        return coco
    annotations = []
    for ann in coco["annotations"]:
        ann = dict(ann)
        if "pseudo_keypoints" in ann and "keypoints" in ann:
            kpts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
            kpts[np.asarray(ann["pseudo_keypoints"], dtype=bool)] = 0
            ann["keypoints"] = kpts.reshape(-1).tolist()
            ann["num_keypoints"] = int((kpts[:, 2] > 0).sum())
        annotations.append(ann)
    return {**coco, "annotations": annotations}


def evaluate_dataset(
    metric: str,
    predictions: dict[str, np.ndarray],
    dataset: Any,
    layout: DatasetInfo,
    data_cfg: dict[str, Any],
    out_dir: str | Path | None = None,
) -> dict[str, float]:
    """Score predictions on a ``hfpose.training.dataset.records.TopDownDataset`` with ``coco``/``pckh``/``pck``."""
    metric = normalise_metric_name(metric)
    predictions = unique_predictions(predictions)
    records = [dataset.records[i] for i in predictions["index"]]
    if len(records) != len(dataset):
        raise ValueError(f"{len(records)} predictions for {len(dataset)} samples")
    if metric == "coco":
        if dataset.coco is None:
            raise ValueError("COCO AP needs a COCO-format annotation file")
        if data_cfg.get("soft_nms"):
            raise ValueError("soft OKS-NMS is not supported (the paper uses plain OKS-NMS)")
        image_ids = [r["image_id"] for r in records]
        results = coco_results(
            predictions,
            image_ids,
            layout.sigmas,
            vis_thr=float(data_cfg.get("vis_thr", 0.2)),
            oks_thr=float(data_cfg.get("oks_thr", 0.9)),
            use_nms=bool(data_cfg.get("use_nms", True)),
        )
        kept_images = [img["id"] for img in dataset.coco["images"]]
        if dataset.source.get("image_list") or dataset.source.get("exclude_image_list"):
            kept_images = sorted({r["image_id"] for r in dataset.records})
        out_file = Path(out_dir) / "result_keypoints.json" if out_dir is not None else None
        gt_json = without_pseudo_labels(dataset.coco)
        return coco_keypoint_ap(gt_json, results, layout.sigmas, kept_images, out_file)
    gt = np.stack([r["joints_3d"] for r in records]).astype(np.float64)
    mask = np.stack([human_labelled(r) for r in records])
    pred = predictions["keypoints"]
    if metric == "pckh":
        if dataset.name == "TopDownMpiiDataset":
            mat = Path(dataset.source["ann_file"]).parent / "mpii_gt_val.mat"
            return pckh_mpii_mat(pred, mat, layout)
        if not all("head_size" in r for r in records):
            raise ValueError("PCKh needs a head_size on every annotation (or MPII's mat file)")
        head_sizes = np.array([r["head_size"] for r in records])
        return pckh_from_head_sizes(pred, gt, mask, head_sizes, layout)
    return pck_torso(pred, gt, mask, layout, 0.2)
