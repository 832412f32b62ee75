"""``hfpose-export``: HF-HRNet checkpoint -> self-describing ONNX file, verified against torch.

The ONNX file carries everything a runtime needs (input size, normalisation, keypoint names,
flip pairs, skeleton) in its metadata, so the engine reads one file and no config. After writing,
the file is run in ONNX Runtime on the same input as torch and the largest difference printed;
a difference above tolerance fails the command, so a broken export never ships silently.

``hfpose-export --tflite MODEL.onnx`` converts an exported file to LiteRT for XNNPACK (in a
converter environment, see ``hfpose.training.export.convert.onnx_to_tflite``) and reports the same parity;
``--tflite-precision int8`` makes a static int8 copy instead (``hfpose.training.export.convert.tflite_int8``).

``hfpose-export --int8 MODEL.onnx`` derives the int8 copy of an exported fp32 file (see
``hfpose.training.export.quantize``) beside it, with the parity report: the share of fp32's sure heatmap peaks
it keeps (per keypoint) and, where ../shared is present, both files' MPII validation PCKh.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from hfpose.engine.runtime.auto import file_sha256
from hfpose.engine.runtime.backends import create_session
from hfpose.engine.runtime.litert import LiteRtSession, record_path, tflite_path
from hfpose.engine.runtime.model_files import ModelError, read_onnx_metadata
from hfpose.models.config import ConfigError, load_config, model_input_size
from hfpose.training.export.quantize import (
    SHARED_DATASETS,
    SPLITS,
    TARGET_AGREEMENT,
    Preprocessing,
    calibration_and_check_sets,
    int8_path_for,
    peak_agreement,
    quantize_int8,
    write_int8_metadata,
)
from hfpose.training.run.onnx_export import (
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    export_onnx,
    verify_onnx,
)
from hfpose.training.scoring.test_cli import main as test_main


def model_info(cfg: dict[str, Any]) -> dict[str, Any]:
    """Parameter count and conv multiply-accumulates (as the authors' code runs) of a config."""
    from hfpose.models.hf_hrnet import build_model, count_conv_macs, count_parameters

    model = build_model(cfg)
    size = model_input_size(cfg)
    return {
        "config": cfg["config_name"],
        "input_size_wh": size,
        "parameters": count_parameters(model),
        "conv_macs": count_conv_macs(model, size, as_released=True),
        "conv_macs_this_implementation": count_conv_macs(model, size, as_released=False),
    }


def _parse_batch(text: str) -> int | None:
    if text == "dynamic":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--batch takes a positive integer or 'dynamic'") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--batch takes a positive integer or 'dynamic'")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfpose-export",
        description="Export an HF-HRNet checkpoint to a self-describing ONNX file and verify it.",
    )
    parser.add_argument(
        "config", nargs="?", help="config name (e.g. hf_hrnet_18_coco_256x192) or YAML path"
    )
    parser.add_argument(
        "--checkpoint", help="authors' mmpose .pth, project checkpoint or state dict"
    )
    parser.add_argument("--out", help="output .onnx path")
    parser.add_argument(
        "--batch", type=_parse_batch, default=None, help="fixed batch size or 'dynamic' (default)"
    )
    parser.add_argument("--fp16", action="store_true", help="half-precision weights, fp32 I/O")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--info", action="store_true", help="print parameters and MACs, then exit")
    parser.add_argument(
        "--int8",
        type=Path,
        metavar="FP32.onnx",
        help="write the int8 copy of this exported fp32 model beside it (needs ../shared for "
        "calibration crops) and print its parity with fp32",
    )
    parser.add_argument(
        "--calibration",
        type=int,
        default=300,
        help="--int8, --tflite-precision int8: training crops to calibrate on",
    )
    parser.add_argument(
        "--tflite",
        type=Path,
        metavar="MODEL.onnx",
        help="write the LiteRT/XNNPACK copy of this exported model beside it and print its parity "
        "with the ONNX file (needs a converter environment: --converter-python)",
    )
    parser.add_argument(
        "--tflite-precision",
        choices=["fp32", "int8"],
        default="fp32",
        help="--tflite: fp32 (MODEL.tflite) or int8 (MODEL.int8.tflite: static int8 calibrated "
        "on --calibration training crops from ../shared, layers that lose accuracy left in float)",
    )
    parser.add_argument(
        "--converter-python",
        default=os.environ.get("HFPOSE_CONVERTER_PYTHON"),
        help="--tflite: the Python of an environment with litert-torch and this package "
        "(default: $HFPOSE_CONVERTER_PYTHON; see hfpose.training.export.convert.onnx_to_tflite)",
    )
    return parser


def _validation_pckh(model: Path, precision: str, backend: str = "cpu") -> float | None:
    """MPII validation PCKh of ``model`` through the engine, or None without ../shared."""
    mpii = SHARED_DATASETS / "mpii_train"
    if not (mpii / "mpii_train_coco17.json").is_file():
        return None
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "metrics.json"
        code = test_main(
            [
                "hfpose_hf_hrnet_18_coco_256x192_lspet_mpii",
                "--model", str(model), "--backend", backend, "--precision", precision,
                "--use-gt-bbox", "--metric", "pckh",
                "--ann", str(mpii / "mpii_train_coco17.json"),
                "--img-dir", str(mpii / "images"),
                "--image-list", str(SPLITS / "mpii_val.txt"),
                "--out-json", str(out),
            ]
        )  # fmt: skip
        if code != 0:
            return None
        return float(json.loads(out.read_text())["metrics"]["PCKh"])


def _training_crops(
    model_path: Path, extra: int
) -> tuple[dict[str, str], np.ndarray, np.ndarray] | None:
    """The model's metadata, ``extra`` training crops cut as it crops, and the parity check's
    crops (``hfpose.training.export.quantize.calibration_and_check_sets``); None, said on stderr, when
    the file or ../shared cannot give them."""

    try:
        meta = read_onnx_metadata(model_path)
        crops, check = calibration_and_check_sets(Preprocessing.from_metadata(meta), extra)
    except (ModelError, KeyError, FileNotFoundError) as exc:
        print(f"hfpose-export: {exc}", file=sys.stderr)
        return None
    return meta, crops, check


def export_int8(fp32_path: Path, calibration: int) -> int:
    """``--int8``: quantize, record provenance and parity in the metadata, print the report."""
    sets = _training_crops(fp32_path, calibration)
    if sets is None:
        return 1
    meta, crops, check = sets
    out = int8_path_for(fp32_path)
    with tempfile.TemporaryDirectory() as work:
        report = quantize_int8(fp32_path, out, crops, check, Path(work))
    write_int8_metadata(fp32_path, report, len(crops))
    names = meta.get("keypoint_names") or [str(k) for k in range(len(report.per_keypoint))]
    per_keypoint = ", ".join(f"{n} {v:.2f}" for n, v in zip(names, report.per_keypoint))
    print(f"wrote {out} (from {fp32_path.name}, sha256 recorded)")
    print(
        f"int8 vs fp32 on {len(check)} training crops kept out of calibration: "
        f"{report.agreement:.1%} of {report.compared} sure fp32 peaks within 1 heatmap pixel "
        f"(the engine uses the copy from {TARGET_AGREEMENT:.0%})"
    )
    print(f"  per keypoint: {per_keypoint}")
    print(f"  modules kept in float: {', '.join(report.float_groups) or 'none'}")
    scores = {p: _validation_pckh(path, p) for p, path in (("fp32", fp32_path), ("fast", out))}
    if None not in scores.values():
        print(
            f"MPII validation PCKh: fp32 {scores['fp32']:.2f}, int8 {scores['fast']:.2f} "
            f"({scores['fast'] - scores['fp32']:+.2f})"
        )
    return 0 if report.agreement >= TARGET_AGREEMENT else 1


# --tflite-precision int8: training crops the layer search measures on (beside the calibration
# crops and apart from the parity check's).
TUNING_CROPS = 100


def export_tflite(
    onnx_path: Path, converter_python: str | None, precision: str = "fp32", calibration: int = 300
) -> int:
    """``--tflite``: convert in the converter environment, then measure parity here (LiteRT
    against ONNX Runtime fp32 on real training crops) and record it beside the copy."""
    if not converter_python:
        print(
            "hfpose-export: --tflite needs --converter-python (or $HFPOSE_CONVERTER_PYTHON): "
            "a Python with litert-torch and this package, set up as "
            "hfpose.training.export.convert.onnx_to_tflite's docstring says",
            file=sys.stderr,
        )
        return 2
    integer = precision == "int8"
    extra = calibration + TUNING_CROPS if integer else 0
    sets = _training_crops(onnx_path, extra)
    if sets is None:
        return 1
    meta, crops, check = sets
    out = tflite_path(onnx_path, precision)
    module = f"hfpose.training.export.convert.{'tflite_int8' if integer else 'onnx_to_tflite'}"
    quantization = None
    with tempfile.TemporaryDirectory() as folder:
        command = [converter_python, "-m", module, str(onnx_path), str(out)]
        if integer:
            crops_file, report_file = Path(folder) / "crops.npz", Path(folder) / "report.json"
            np.savez(crops_file, calibration=crops[:calibration], tuning=crops[calibration:])
            command += [str(crops_file), "--report", str(report_file)]
        converted = subprocess.run(command)
        if converted.returncode != 0:
            print(f"hfpose-export: the conversion failed ({converter_python} -m {module})")
            return 1
        if integer:
            quantization = json.loads(report_file.read_text())

    reference = create_session(onnx_path, "cpu", num_threads=1, precision="fp32").run(check)[0]
    copy_ = LiteRtSession(out, meta, "litert", num_threads=1).run(check)[0]
    agreement, per_keypoint, compared = peak_agreement(reference, copy_)
    max_diff = float(np.abs(copy_ - reference).max())
    try:
        litert_version = version("ai-edge-litert")
    except PackageNotFoundError:  # pragma: no cover - LiteRtSession ran, so it is installed
        litert_version = "unknown"
    record = {
        "onnx_file": onnx_path.name,
        "onnx_sha256": file_sha256(onnx_path),
        "peak_agreement": round(agreement, 4),
        "peak_agreement_per_keypoint": [round(float(v), 3) for v in per_keypoint],
        "max_abs_heatmap_diff": max_diff,
        "parity_crops": f"{len(check)} training crops (lspet, mpii_train; validation lists out)",
        "converter": f"{module} (litert-torch), checked with ai-edge-litert {litert_version}",
        "precision": precision,
    }
    if quantization:
        record["quantization"] = quantization
    record_path(out).write_text(json.dumps(record, indent=1) + "\n")
    names = meta.get("keypoint_names") or [str(k) for k in range(len(per_keypoint))]
    print(f"wrote {out} and {record_path(out).name} (from {onnx_path.name}, sha256 recorded)")
    print(
        f"LiteRT {precision} vs ONNX Runtime fp32 on {len(check)} training crops: {agreement:.1%} of "
        f"{compared} sure peaks within 1 heatmap pixel, max |heatmap diff| {max_diff:.2e}"
    )
    print("  per keypoint: " + ", ".join(f"{n} {v:.2f}" for n, v in zip(names, per_keypoint)))
    if integer:  # the engine runs only the fp32 copy (see assets/MODEL_CARD.md, precision)
        print(
            f"  time it with: benchmarks/bench_models.py --baseline blazepose --extra-model {out}"
        )
        return 0 if agreement >= TARGET_AGREEMENT else 1
    scores = {b: _validation_pckh(onnx_path, "fp32", b) for b in ("cpu", "litert")}
    if None not in scores.values():
        print(
            f"MPII validation PCKh: ONNX Runtime {scores['cpu']:.2f}, LiteRT "
            f"{scores['litert']:.2f} ({scores['litert'] - scores['cpu']:+.2f})"
        )
    return 0 if agreement >= TARGET_AGREEMENT else 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.int8:
        return export_int8(args.int8, args.calibration)
    if args.tflite:
        return export_tflite(
            args.tflite, args.converter_python, args.tflite_precision, args.calibration
        )
    if not args.config:
        parser.error("a config is required unless --int8 is given")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"hfpose-export: {exc}", file=sys.stderr)
        return 2
    import torch

    torch.set_flush_denormal(True)  # freshly initialised weights are subnormal-heavy on CPU
    if args.info:
        info = model_info(cfg)
        print(
            f"{info['config']}: input {info['input_size_wh'][0]}x{info['input_size_wh'][1]} (WxH), "
            f"{info['parameters']:,} parameters, {info['conv_macs'] / 1e9:.4f} G conv MACs "
            f"({info['conv_macs_this_implementation'] / 1e9:.4f} G as this implementation runs it: "
            f"the released fusion evaluates each f_i0 twice)"
        )
        return 0
    if not args.out:
        print("hfpose-export: --out is required unless --info is given", file=sys.stderr)
        return 2

    from hfpose.models.checkpoint import CheckpointError, load_checkpoint
    from hfpose.models.hf_hrnet import build_model

    model = build_model(cfg)
    if args.checkpoint:
        try:
            load_checkpoint(model, args.checkpoint, input_size_wh=model_input_size(cfg))
        except CheckpointError as exc:
            print(f"hfpose-export: {exc}", file=sys.stderr)
            return 1
    else:
        print(
            "hfpose-export: no --checkpoint: exporting randomly initialised weights",
            file=sys.stderr,
        )
    try:
        path = export_onnx(cfg, model, args.out, args.batch, args.fp16, args.checkpoint, args.opset)
    except OSError as exc:
        print(f"hfpose-export: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    relative = verify_onnx(model, path)
    tolerance = FP16_TOLERANCE if args.fp16 else FP32_TOLERANCE
    verdict = "ok" if relative <= tolerance else "FAILED"
    print(f"wrote {path}; ONNX Runtime vs torch: max |diff| / max |output| = {relative:.2e} "
          f"(tolerance {tolerance:.0e}) {verdict}")  # fmt: skip
    return 0 if relative <= tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
