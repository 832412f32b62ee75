"""int8 post-training quantization of an exported keypoint model, and its parity with fp32.

Why this module: an int8 copy of the fp32 ONNX file runs the network's 1x1 and depthwise
convolutions on VNNI/AMX integer units (OpenVINO) at a fraction of the fp32 cost. Done badly
(too few or synthetic calibration images, per-tensor weights, every layer quantized) the
heatmap peaks move; so the calibration uses a few hundred real people cut by the engine's own
crop code from the *training* images (never the validation lists), weights are per channel,
and the layers that measurably lose accuracy stay in float.

The result is a QDQ ONNX file (``<stem>.int8.onnx`` beside the fp32 one) that both ONNX Runtime
and OpenVINO read; its metadata repeats the fp32 file's and adds ``fp32_sha256`` (the file it
came from), ``precision`` and ``quantization`` so the engine uses it only with that fp32 model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hfpose.engine.runtime.auto import fast_variant_path, file_sha256
from hfpose.models.package_data import package_file, shared_datasets
from hfpose.models.processing import bbox_xywh_to_cs, get_max_preds, normalize_crops, warp_crops

SHARED_DATASETS = shared_datasets()
SPLITS = package_file("hfpose.training", "data/splits")
# (annotation file, image folder, validation list kept out of calibration) per training set.
CALIBRATION_SOURCES = (
    ("lspet/lspet_coco17.json", "lspet/images", "lspet_val.txt"),
    ("mpii_train/mpii_train_coco17.json", "mpii_train/images", "mpii_val.txt"),
)
# A peak agrees with fp32 when it lies within this many heatmap pixels of fp32's peak.
PEAK_RADIUS = 1.0
# Only keypoints fp32 is sure of are compared: an unsure peak wanders between equal maxima.
PEAK_SCORE_MIN = 0.3


def int8_path_for(fp32_path: str | Path) -> Path:
    """``assets/m.onnx`` -> ``assets/m.int8.onnx`` (where the engine looks for it)."""
    return fast_variant_path(Path(fp32_path))


@dataclass(frozen=True)
class Preprocessing:
    """What the fp32 model's metadata says about its input (as the engine reads it)."""

    input_size_wh: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rgb: bool

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> Preprocessing:
        width, height = (int(v) for v in meta["input_size"])
        return cls(
            (width, height),
            tuple(meta["mean"]),
            tuple(meta["std"]),
            str(meta.get("color_order", "RGB")).upper() == "RGB",
        )


def training_people(shared: Path = SHARED_DATASETS) -> list[tuple[Path, np.ndarray]]:
    """(image, box x y w h) of every annotated person of the training images (val lists out)."""
    people = []
    for annotation, folder, val_list in CALIBRATION_SOURCES:
        ann_path = shared / annotation
        if not ann_path.is_file():
            continue
        held_out = set((SPLITS / val_list).read_text().split())
        data = json.loads(ann_path.read_text())
        files = {image["id"]: image["file_name"] for image in data["images"]}
        for person in data["annotations"]:
            name = files[person["image_id"]]
            if name in held_out or person.get("num_keypoints", 1) < 4:
                continue
            box = np.asarray(person["bbox"], np.float64)
            if box[2] > 8 and box[3] > 8:
                people.append((shared / folder / name, box))
    return people


def people_crops(
    people: Sequence[tuple[Path, np.ndarray]], prep: Preprocessing
) -> Iterator[np.ndarray]:
    """One normalised (1, 3, H, W) crop per person, cut as ``hfpose.engine.keypoints.estimator`` cuts them."""
    import cv2

    width, height = prep.input_size_wh
    for image_path, box in people:
        image = cv2.imread(str(image_path))
        if image is None:
            continue
        centers, scales = bbox_xywh_to_cs(box[None], width / height)
        crops = warp_crops(image, centers, scales, (width, height))
        if prep.rgb:
            crops = crops[..., ::-1]
        yield normalize_crops(crops, prep.mean, prep.std)


def calibration_and_check_sets(
    prep: Preprocessing, calibration: int = 300, check: int = 200, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random sets of training crops: one calibrates, the other measures parity."""
    people = training_people()
    if len(people) < calibration + check:
        raise FileNotFoundError(
            f"int8 calibration needs {calibration + check} training people from "
            f"{SHARED_DATASETS} (lspet, mpii_train); found {len(people)}"
        )
    order = np.random.default_rng(seed).permutation(len(people))
    chosen = [people[i] for i in order[: calibration + check]]
    crops = np.concatenate(list(people_crops(chosen, prep)))
    return crops[:calibration], crops[calibration:]


def peak_agreement(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, np.ndarray, int]:
    """Share of sure fp32 peaks (score >= PEAK_SCORE_MIN) the candidate puts within
    PEAK_RADIUS heatmap pixels: overall, per keypoint (NaN where none is sure), and the count."""
    ref_xy, ref_score = get_max_preds(reference)
    cand_xy, _ = get_max_preds(candidate)
    sure = ref_score >= PEAK_SCORE_MIN
    close = np.linalg.norm(ref_xy - cand_xy, axis=-1) <= PEAK_RADIUS
    per_keypoint = np.full(reference.shape[1], np.nan)
    for k in range(reference.shape[1]):
        if sure[:, k].any():
            per_keypoint[k] = float(close[:, k][sure[:, k]].mean())
    total = int(sure.sum())
    return (float(close[sure].mean()) if total else float("nan")), per_keypoint, total


# Conv layers are grouped by module (``/backbone/stage1/stage1.2``) for the sensitivity search:
# per layer would be 349 quantizations; a module's layers tend to lose accuracy together.
GROUP_DEPTH = 4
# Depthwise convolutions come first among the candidates for float: with them in int8 only 67%
# of fp32's sure peaks stayed put on HF-HRNet-18, with them in float 96% (every other Conv int8).
DEPTHWISE = "depthwise convolutions"
TARGET_AGREEMENT = 0.95
MAX_FLOAT_GROUPS = 8


@dataclass
class Int8Report:
    """What ``quantize_int8`` did and how close the result stays to fp32 (on training crops)."""

    path: Path
    agreement: float
    per_keypoint: list[float]
    compared: int
    float_groups: list[str]
    steps: list[tuple[str, float]]  # (groups kept in float so far, agreement) per attempt


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over an array of crops."""

    def __init__(self, crops: np.ndarray, input_name: str) -> None:
        self.crops, self.input_name, self.index = crops, input_name, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.crops):
            return None
        self.index += 1
        return {self.input_name: self.crops[self.index - 1 : self.index]}

    def rewind(self) -> None:
        self.index = 0


def _run_all(path: Path, crops: np.ndarray, threads: int = 0) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate(
        [session.run(None, {name: crops[i : i + 8]})[0] for i in range(0, len(crops), 8)]
    )


def conv_groups(model_path: Path) -> dict[str, list[str]]:
    """Conv node names by module, and every depthwise Conv under ``DEPTHWISE``."""
    import onnx

    groups: dict[str, list[str]] = {DEPTHWISE: []}
    for node in onnx.load(str(model_path)).graph.node:
        if node.op_type == "Conv":
            group = "/".join(node.name.split("/")[:GROUP_DEPTH])
            groups.setdefault(group, []).append(node.name)
            if any(a.name == "group" and a.i > 1 for a in node.attribute):
                groups[DEPTHWISE].append(node.name)
    return groups


def quantize_int8(
    fp32_path: Path,
    out_path: Path,
    calibration: np.ndarray,
    check: np.ndarray,
    work_dir: Path,
    log: Any = print,
    target: float = TARGET_AGREEMENT,
    max_float_modules: int = MAX_FLOAT_GROUPS,
) -> Int8Report:
    """Static int8 QDQ (per-channel int8 weights, uint8 activations, MinMax ranges from the
    calibration crops) of every Conv; then, while fewer than ``target`` of fp32's sure peaks
    stay put on the check crops, the depthwise convolutions and then the modules whose
    quantization alone costs the most agreement go back to float (at most
    ``max_float_modules``)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = work_dir / "prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    ranges_cache = work_dir / "calibration_ranges.json"
    reader = _Reader(calibration, "input")
    reference = _run_all(fp32_path, check)

    def quantize(target: Path, nodes: list[str] | None, float_nodes: list[str]) -> float:
        reader.rewind()
        quantize_static(
            str(prepared),
            str(target),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=nodes,
            nodes_to_exclude=float_nodes,
            calibration_cache_path=str(ranges_cache),  # calibrate once, quantize many times
        )
        return peak_agreement(reference, _run_all(target, check))[0]

    groups = conv_groups(prepared)
    float_groups: list[str] = []
    agreement = quantize(out_path, None, [])
    steps = [("", agreement)]
    log(f"int8, every Conv: {agreement:.3f} of sure fp32 peaks kept")

    def keep_in_float(group: str) -> float:
        float_groups.append(group)
        float_nodes = sorted({n for g in float_groups for n in groups[g]})
        result = quantize(out_path, None, float_nodes)
        steps.append((",".join(float_groups), result))
        log(f"int8, in float: {', '.join(float_groups)}: {result:.3f}")
        return result

    if agreement < target and groups[DEPTHWISE]:
        agreement = keep_in_float(DEPTHWISE)
    if agreement < target and max_float_modules:
        alone = {}
        for group, nodes in groups.items():
            if group != DEPTHWISE:
                alone[group] = quantize(work_dir / "one_group.onnx", nodes, [])
                log(f"  only {group} in int8: {alone[group]:.3f}")
        for group in sorted(alone, key=alone.get)[:max_float_modules]:
            agreement = keep_in_float(group)
            if agreement >= target:
                break
    final, per_keypoint, compared = peak_agreement(reference, _run_all(out_path, check))
    return Int8Report(
        out_path, final, [round(float(v), 3) for v in per_keypoint], compared, float_groups, steps
    )


def write_int8_metadata(fp32_path: Path, report: Int8Report, calibration_count: int) -> None:
    """The fp32 file's metadata plus where the int8 copy came from and how close it is."""
    import onnx

    # the hash the engine checks the copy against
    source = onnx.load(str(fp32_path), load_external_data=False)
    model = onnx.load(str(report.path))
    del model.metadata_props[:]
    values = {p.key: p.value for p in source.metadata_props}
    values.update(
        {
            "precision": json.dumps("int8"),
            "fp32_sha256": json.dumps(file_sha256(fp32_path)),
            "fp32_file": json.dumps(fp32_path.name),
            "peak_agreement": json.dumps(round(report.agreement, 4)),
            "quantization": json.dumps(
                {
                    "tool": "onnxruntime.quantization.quantize_static",
                    "format": "QDQ, per-channel int8 weights, uint8 activations, MinMax",
                    "calibration": f"{calibration_count} training crops (lspet, mpii_train; "
                    "validation lists excluded)",
                    "float_modules": report.float_groups,
                    "peak_agreement_per_keypoint": report.per_keypoint,
                }
            ),
        }
    )
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(report.path))
