"""Per-crop latency of keypoint-model candidates as a ratio to MediaPipe BlazePose-full.

Used by ``bench_models.py --baseline blazepose``. BlazePose-full (``pose_landmark_full.tflite``
from the installed mediapipe wheel, never downloaded) runs on LiteRT with XNNPACK, the runtime
that makes it fast on phones and PCs; every candidate runs with the same thread count, and each
repetition times the baseline and all candidates back to back, so load on the shared machine
hits every ratio alike.

A candidate is one way to run the same HF-HRNet weights: ONNX Runtime at each graph-optimisation
level (``layout`` and ``all`` add the NCHWc blocked layout) with and without spinning pool
threads, OpenVINO f32 and bf16 (bf16 only where the CPU has it natively), an int8 file and a
LiteRT file when given, and the engine's own ``auto`` choice (what the product runs).
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MEDIAPIPE_LANDMARK = Path("modules") / "pose_landmark" / "pose_landmark_full.tflite"
# CPU flags that decide which kernels a runtime can use (reported beside every table).
KEY_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
ORT_LEVELS = ("basic", "extended", "layout", "all")


@dataclass
class Candidate:
    """One way to run a model: ``run(batch)`` on NCHW float32 crops (batch-first)."""

    name: str
    run: Callable[[np.ndarray], object]


def cpu_description() -> str:
    """``AMD EPYC 9R14 [avx2 fma avx512f ...]``: the name and the flags that matter here."""
    from hfpose.engine.runtime.discovery import cpu_name

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    present = [flag for flag in KEY_CPU_FLAGS if flag in flags]
    return f"{cpu_name()} [{' '.join(present) or 'flags unknown'}]"


def cpu_has_native_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in text or " amx_bf16" in text


def blazepose_full_path() -> Path:
    """The landmark model inside the installed mediapipe wheel (the ``pseudo`` extra)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mediapipe is not installed: pip install -e '.[pseudo]'")
    path = Path(next(iter(spec.submodule_search_locations))) / MEDIAPIPE_LANDMARK
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the mediapipe wheel")
    return path


def litert_candidate(name: str, path: Path, threads: int) -> Candidate:
    """A .tflite model on LiteRT (XNNPACK delegate, applied by default for float models)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    index, shape = detail["index"], tuple(detail["shape"])
    channels_last = shape[-1] == 3

    def run(batch: np.ndarray) -> object:
        for crop in batch:  # a LiteRT model has a fixed batch of one
            item = crop.transpose(1, 2, 0) if channels_last else crop
            interpreter.set_tensor(index, np.ascontiguousarray(item[None], np.float32))
            interpreter.invoke()
        return None

    return Candidate(name, run)


def blazepose_candidate(threads: int) -> Candidate:
    return litert_candidate("BlazePose-full (LiteRT)", blazepose_full_path(), threads)


def ort_candidate(model: Path, level: str, spinning: bool, threads: int) -> Candidate:
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "layout": ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    spin = "spin" if spinning else "no spin"
    return Candidate(
        f"{model.name} ORT {level} ({spin})", lambda batch: session.run(None, {name: batch})
    )


def openvino_candidate(model: Path, precision: str, threads: int) -> Candidate:
    import openvino

    config: dict = {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": precision,
        "CPU_DENORMALS_OPTIMIZATION": True,
        "ENABLE_CPU_PINNING": False,
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = openvino.Core().compile_model(str(model), "CPU", config)
    request = compiled.create_infer_request()
    return Candidate(f"{model.name} OpenVINO {precision}", lambda batch: request.infer({0: batch}))


def engine_candidate(model: Path, backend: str, threads: int) -> Candidate:
    """What the product runs for ``--backend`` (its own session settings)."""
    from hfpose.engine.runtime.backends import create_session

    session = create_session(model, backend, num_threads=threads)
    return Candidate(f"engine --backend {backend}: {session.runtime_info.label}", session.run)


def build_candidates(
    model: Path, threads: int, extra_models: list[Path], backends: list[str]
) -> list[Candidate]:
    """Every candidate this machine can run (a missing runtime is skipped with a note)."""
    candidates = [engine_candidate(model, backend, threads) for backend in backends]
    for level in ORT_LEVELS:
        for spinning in (False, True):
            candidates.append(ort_candidate(model, level, spinning, threads))
    has_openvino = importlib.util.find_spec("openvino") is not None
    precisions = ["f32", "bf16"] if cpu_has_native_bf16() else ["f32"]
    if has_openvino:
        candidates += [openvino_candidate(model, p, threads) for p in precisions]
    else:
        print("openvino not installed: its candidates are skipped", file=sys.stderr)
    for extra in extra_models:
        if extra.suffix == ".tflite":
            candidates.append(litert_candidate(f"{extra.name} LiteRT", extra, threads))
            continue
        if extra.suffix == ".onnx":
            candidates.append(ort_candidate(extra, "all", False, threads))
        if has_openvino:
            candidates += [openvino_candidate(extra, p, threads) for p in precisions]
    return candidates


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved_ratios(
    baseline: Candidate,
    candidates: list[Candidate],
    input_shape_chw: tuple[int, int, int],
    batches: list[int],
    repeats: int,
) -> list[dict]:
    """Median per-crop ms of each candidate and its ratio to the baseline, timed back to back.

    A batch of N is one call for N crops (per-crop time = call time / N); the baseline always
    runs one crop, as MediaPipe runs it. Wall and process CPU time are both kept: on a loaded
    machine wall time swings with the neighbours while CPU time (the work itself) hardly does;
    with one thread each, the CPU-time ratio is the cleanest comparison.
    """
    rng = np.random.default_rng(0)
    baseline_input = rng.uniform(0, 1, (1, 3, 256, 256)).astype(np.float32)
    inputs = {n: rng.normal(0, 1, (n, *input_shape_chw)).astype(np.float32) for n in batches}
    base: dict[int, list[tuple[float, float]]] = {n: [] for n in batches}
    times: dict[tuple[int, int], list[tuple[float, float]]] = {}
    # One batch size at a time: a compiled OpenVINO model that alternates between two input
    # shapes re-prepares at every call, which would charge it work a real run never does.
    for n in batches:
        for _ in range(3):  # warm-up: the first calls allocate and choose kernels
            baseline.run(baseline_input)
            for candidate in candidates:
                candidate.run(inputs[n])
        for _ in range(repeats):
            base[n].append(_timed(lambda: baseline.run(baseline_input)))
            for i, candidate in enumerate(candidates):
                wall, cpu = _timed(lambda c=candidate, x=inputs[n]: c.run(x))
                times.setdefault((i, n), []).append((wall / n, cpu / n))

    def row(name: str, batch: int, samples: list[tuple[float, float]], base: list) -> dict:
        # The median of per-repetition ratios keeps the pairing: a load spike during one
        # repetition cancels out instead of landing on one side.
        return {
            "candidate": name,
            "batch": batch,
            "ms_per_crop": round(statistics.median(s[0] for s in samples) * 1000.0, 2),
            "cpu_ms_per_crop": round(statistics.median(s[1] for s in samples) * 1000.0, 2),
            "ratio": round(statistics.median(s[0] / b[0] for s, b in zip(samples, base)), 2),
            "cpu_ratio": round(
                statistics.median(s[1] / max(b[1], 1e-6) for s, b in zip(samples, base)), 2
            ),
        }

    first = batches[0]
    rows = [row(baseline.name, 1, base[first], base[first])]
    for i, candidate in enumerate(candidates):
        rows += [row(candidate.name, n, times[(i, n)], base[n]) for n in batches]
    return rows
