"""``auto`` on a CPU: the fastest of ONNX Runtime, OpenVINO and LiteRT for *this* model on *this*
machine.

Why a probe rather than a rule: which runtime wins depends on the CPU (bf16 or AMX units, AVX2
only, cache sizes), on the model (HF-HRNet's depthwise convolutions, NanoDet's plain ones) and
on the runtime versions; a rule written on one machine was wrong on the next. The probe times
each candidate for about a second, interleaved so that load hits all alike (a keypoint model on
one crop and on a crowd's batch, the two weighed alike), once per machine, model file,
precision and thread count, and keeps the answer in the user's cache folder
(``$HFPOSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/hfpose``, else ``~/.cache/hfpose``).

A second, shorter probe (:func:`crowd_ways`) picks how a crowd's crops spread over the cores
the detector leaves idle, cut in parts side by side or in one call on several threads: which
pays differs per runtime (LiteRT's XNNPACK spends a third more CPU time on two threads than on
one; an OpenVINO batch cut in halves loses part of what batching saves), so it is timed too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from hfpose.engine.runtime.model_files import read_onnx_metadata

log = logging.getLogger(__name__)

CACHE_FILE = "auto_backend.json"
PROBE_ROUNDS = 9
PROBE_VERSION = "4"  # part of the cache key: a change of how the probe measures re-measures
# A keypoint model is also timed on a crowd's crops in one call: OpenVINO runs a batch of 4 at
# 0.7x its per-crop cost alone, LiteRT (batch 1 inside) at 1.0x, so a batch-1 probe alone
# picked LiteRT on a Xeon where it then ran the 8- and 12-person clips 10-20% slower.
CROWD_BATCH = 4
# The crowd probe (crowd_ways): the crowd it times, and how much less a one call on several
# threads must cost per crop than a split to be chosen. On a quiet Xeon the probe saw OpenVINO
# bf16 at 24.6 / 23.4 CPU ms per crop (split / threads), and the pipeline then ran the vtest and
# street clips 5-11% slower on threads: hence 10%.
CROWD_PROBE_SIZE = 5
CROWD_PROBE_ROUNDS = 5
CROWD_THREADS_MARGIN = 0.10


def cache_dir() -> Path:
    if os.environ.get("HFPOSE_CACHE_DIR"):
        return Path(os.environ["HFPOSE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hfpose"


@lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The file's sha256, computed once per path, size and modification time."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1)
def _cpu_identity() -> str:
    """The CPU's name and flags: two machines with the same of both run kernels alike."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return f"{fields.get('model name', '')}|{fields.get('flags', '')}|{os.cpu_count()}"


def probe_key(model: Path, question: str, candidates: list[str]) -> str:
    import onnxruntime

    versions = [f"onnxruntime {onnxruntime.__version__}"]
    try:
        import openvino

        versions.append(f"openvino {openvino.__version__}")
    except ImportError:
        pass
    try:
        versions.append(f"ai-edge-litert {metadata.version('ai-edge-litert')}")
    except metadata.PackageNotFoundError:
        pass
    parts = [PROBE_VERSION, _cpu_identity(), *versions, file_sha256(model), question, *candidates]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _read_cache() -> dict[str, Any]:
    try:
        return json.loads((cache_dir() / CACHE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_cache(entries: dict[str, Any]) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f"{CACHE_FILE}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(entries, indent=1))
        temporary.replace(folder / CACHE_FILE)
    except OSError as error:  # a read-only home only costs a probe at the next start
        log.info("auto backend: cannot write the probe cache in %s: %s", folder, error)


def probe_input_shape(session: Any) -> list[int]:
    """Batch 1 at the size the model really sees: a dynamic height and width (NanoDet) take
    the metadata's ``input_size`` (else 416), never 1x1, where every runtime looks alike."""
    batch, channels, height, width = session.input_shape
    size_wh = session.metadata.get("input_size") or (416, 416)
    return [1, channels or 3, height or int(size_wh[1]), width or int(size_wh[0])]


def _time_sessions(sessions: dict[str, Any], batch: int = 1) -> dict[str, float]:
    """Median CPU ms per item of one ``batch``-item call per session, the sessions taking turns.

    CPU time, not wall time: the process's CPU time hardly moves with other programs' load,
    so a probe taken on a busy machine still ranks the runtimes by the work they need."""
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    inputs = {}
    rng = np.random.default_rng(0)
    for name, session in sessions.items():
        shape = [batch, *probe_input_shape(session)[1:]]
        inputs[name] = rng.normal(0, 1, shape).astype(np.float32)
        session.run(inputs[name])  # first call: kernels chosen, memory allocated
    for _ in range(PROBE_ROUNDS):
        for name, session in sessions.items():
            start = time.process_time()
            session.run(inputs[name])
            samples[name].append(time.process_time() - start)
    return {name: statistics.median(values) * 1000.0 / batch for name, values in samples.items()}


def fastest(
    model: Path,
    question: str,
    candidates: dict[str, Callable[[], Any]],
) -> str:
    """The name of the candidate session that ran fastest here; ``candidates`` maps names to
    builders, one that fails or falls back is left out. Cached under ``question`` (which says
    what varies: backends, files), this model file and this machine."""
    names = list(candidates)
    if len(names) == 1:
        return names[0]
    key = probe_key(model, question, names)
    cached = _read_cache().get(key, {}).get("choice")
    if cached in names:
        return cached
    sessions = {}
    for name, build in candidates.items():
        try:
            session = build()
        except Exception as error:  # noqa: BLE001 - a candidate that cannot run just loses
            log.info("probe (%s): %s cannot run %s: %s", question, name, model.name, error)
            continue
        if session.runtime_info.fallback_reason is None:
            sessions[name] = session
    if not sessions:
        return names[0]
    timings = _time_sessions(sessions)
    entry: dict[str, Any] = {"median_cpu_ms": {n: round(t, 2) for n, t in timings.items()}}
    if all("keypoint_names" in session.metadata for session in sessions.values()):
        # One call at a time for a lone person, one batch for a crowd: both count alike.
        crowd = _time_sessions(sessions, CROWD_BATCH)
        entry[f"crowd_of_{CROWD_BATCH}_cpu_ms_per_crop"] = {
            n: round(t, 2) for n, t in crowd.items()
        }
        timings = {name: timings[name] + crowd[name] for name in timings}
    best = min(timings, key=timings.get)
    _remember(key, model, question, best, entry)
    return best


def _remember(key: str, model: Path, question: str, choice: str, entry: dict[str, Any]) -> None:
    log.info("probe (%s) for %s: %s (%s)", question, model.name, choice, entry)
    entries = _read_cache()  # another process may have written meanwhile
    entries[key] = {
        "choice": choice,
        "model": model.name,
        "question": question,
        **entry,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    _write_cache(entries)


def _cpu_ms_per_item(run: Callable[[np.ndarray], Any], batch: np.ndarray) -> float:
    """CPU ms per item of one call of ``run`` on ``batch``, all the process's threads counted."""
    start = time.process_time()
    run(batch)
    return (time.process_time() - start) * 1000.0 / len(batch)


def crowd_ways(
    model: Path,
    question: str,
    item_shape: list[int],
    split: Callable[[np.ndarray], Any],
    make_threads: Callable[[], Callable[[np.ndarray], Any]],
) -> str:
    """How a crowd's crops best use the cores here, ``split`` or ``threads``: ``split`` runs a
    batch of ``item_shape`` items cut in parts side by side (one one-thread request or
    interpreter each), ``make_threads`` builds the runner of one call on several intra-op
    threads (a second session: built only when the answer is not cached).

    Timed in CPU time, as the backend probe, since wall time on a busy machine measures the
    neighbours: each way's CPU ms per crop on a crowd of ``CROWD_PROBE_SIZE``. In the pipeline
    the cores are never idle while a crowd is in view (the detector and the next frame fill a
    core that an odd split leaves), so the cheaper way per crop is the faster one; CPU time
    cannot see intra-op threads waiting for each other, so ``threads`` must cost
    ``CROWD_THREADS_MARGIN`` less. Cached as ``fastest``.
    """
    names = ["split", "threads"]
    key = probe_key(model, question, names)
    cached = _read_cache().get(key, {}).get("choice")
    if cached in names:
        return cached
    ways = {"split": split, "threads": make_threads()}
    rng = np.random.default_rng(0)
    batch = rng.normal(0, 1, [CROWD_PROBE_SIZE, *item_shape]).astype(np.float32)
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for run in ways.values():
        run(batch)  # first call: kernels chosen, memory allocated
    for _ in range(CROWD_PROBE_ROUNDS):
        for name, run in ways.items():
            samples[name].append(_cpu_ms_per_item(run, batch))
    per_crop = {name: statistics.median(values) for name, values in samples.items()}
    better = per_crop["threads"] < (1.0 - CROWD_THREADS_MARGIN) * per_crop["split"]
    choice = "threads" if better else "split"
    entry = {"cpu_ms_per_crop": {n: round(t, 2) for n, t in per_crop.items()}}
    _remember(key, model, question, choice, entry)
    return choice


FAST_VARIANT_SUFFIX = ".int8.onnx"
# hfpose-export --int8 and --tflite record how many sure fp32 heatmap peaks their copy keeps;
# below this share a copy moves joints visibly and the engine keeps the fp32 file.
COPY_MIN_PEAK_AGREEMENT = 0.95


def fast_variant_path(fp32_model: Path) -> Path:
    """``assets/m.onnx`` -> ``assets/m.int8.onnx``, where ``hfpose-export --int8`` writes."""
    return fp32_model.with_name(fp32_model.stem + FAST_VARIANT_SUFFIX)


def fast_variant(fp32_model: Path, warn: Callable[[str], None]) -> Path:
    """The int8 copy of ``fp32_model`` when one lies beside it, was made from this very file
    (its ``fp32_sha256``) and passed its parity check; else ``fp32_model`` (warning once)."""
    variant = fast_variant_path(fp32_model)
    if fp32_model.name.endswith(FAST_VARIANT_SUFFIX) or not variant.is_file():
        return fp32_model
    meta = read_onnx_metadata(variant)
    usable = derived_copy_is_usable(
        variant, fp32_model, meta.get("fp32_sha256"), float(meta.get("peak_agreement", 0.0)),
        f"hfpose-export --int8 {fp32_model}", "running fp32", warn,
    )  # fmt: skip
    return variant if usable else fp32_model


def derived_copy_is_usable(
    copy: Path,
    source: Path,
    recorded_sha256: str | None,
    peak_agreement: float,
    remake_command: str,
    fallback: str,
    warn: Callable[[str], None],
) -> bool:
    """Whether a copy made from a model file (int8, LiteRT) may stand in for it: made from this
    very file (the sha256 its export recorded) and keeping enough of its heatmap peaks. A copy
    left over from an earlier model would silently run old weights; say why it is not used."""
    if recorded_sha256 != file_sha256(source):
        warn(
            f"{copy.name} was made from another {source.name}: {fallback} (make it again: "
            f"{remake_command})"
        )
        return False
    if peak_agreement < COPY_MIN_PEAK_AGREEMENT:
        warn(
            f"{copy.name} keeps only {peak_agreement:.0%} of {source.name}'s heatmap peaks "
            f"(needs {COPY_MIN_PEAK_AGREEMENT:.0%}): {fallback}"
        )
        return False
    return True
