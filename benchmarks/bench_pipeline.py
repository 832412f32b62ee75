"""End-to-end frames per second of the threaded pipeline beside each stage's cost measured alone.

    python benchmarks/bench_pipeline.py                          # single-person 640x480 clip
    python benchmarks/bench_pipeline.py --clip ../shared/datasets/videos/opencv_vtest.avi \\
        --max-frames 150 --det-interval-s 0.1 --json out.json

For every clip, in one run and on the same frames:

1. each stage alone, one after the other on the decoded frames: decode, detect, pose (on the
   boxes the detector found), track + smooth, angles, render, encode (H.264 to a temporary
   file);
2. the whole :class:`hfpose.engine.pipeline.Pipeline` on the clip, writing an annotated video
   (with ``--compare-angles``, also with the joint angles off, interleaved in the same run).

It prints the end-to-end FPS next to the FPS the *sum* of the stage costs allows (what a
single-threaded loop would reach) and the FPS of the *slowest* stage (the ceiling of a perfect
pipeline), and the ratio end-to-end / slowest stage. The machine is shared: both measurements
are repeated ``--repeats`` times, interleaved, and medians reported, so load drifts hit both
sides of the ratio alike.

Targets (HF-HRNet-18 256x192 on ``cpu``, these 2 cores): the single-person 640x480
clip at >= 25 FPS end to end, and end-to-end >= 85% of the slowest stage's own throughput.

Without ``--model`` the shipped model is used, or (until one ships) a randomly initialised
HF-HRNet-18 exported with ``hfpose.training.export.export_cli`` into a temporary folder (needs torch); random
weights run at the trained model's speed. Their keypoint scores are ~0, so with
``--det-interval-s`` longer than a frame pass ``--kpt-thr 0`` (the people-per-frame figures
show it worked).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hfpose.engine.angles import attach_angles
from hfpose.engine.config import SETTINGS, PipelineConfig, available_cores
from hfpose.engine.keypoints.estimator import DEFAULT_MODEL
from hfpose.engine.output.rendering import HudInfo, Renderer
from hfpose.engine.output.sinks import VideoSink
from hfpose.engine.people.smoothing import SmoothingConfig, TrackSmoother
from hfpose.engine.people.tracking import Tracker
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.processor import FrameWork, PoseProcessor
from hfpose.engine.results import FrameResult, Person
from hfpose.engine.runtime.model_files import ModelError, asset_path
from hfpose.engine.sources.opening import open_source

REPO = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = REPO.parent / "shared" / "datasets" / "videos"
DEFAULT_CLIPS = (
    SHARED_VIDEOS / "intel_asl_book.mkv",  # one person, 640x480, 30 fps, 109 frames
    REPO / "tests" / "data" / "videos" / "intel_asl_walk_1s5.mp4",  # fallback without shared/
)


def keypoint_model(folder: Path) -> Path:
    try:
        return asset_path(DEFAULT_MODEL)
    except ModelError:
        from hfpose.training.export.export_cli import main as export_main

        out = folder / "hf_hrnet_18_random.onnx"
        export_main(["hf_hrnet_18_coco_256x192", "--out", str(out)])
        return out


def stages_alone(clip: Path, model: Path, args: argparse.Namespace, folder: Path) -> dict:
    """Milliseconds per frame of each stage run by itself over the clip's frames."""
    costs: dict[str, list[float]] = {}

    def timed(name: str, call, *call_args):
        start = time.perf_counter()
        value = call(*call_args)
        costs.setdefault(name, []).append(time.perf_counter() - start)
        return value

    cpu_started = time.process_time()
    with open_source(clip) as source:
        info = source.info
        frames = []
        while len(frames) < args.max_frames:
            frame = timed("decode", source.read)
            if frame is None:
                costs["decode"].pop()
                break
            frames.append(frame)
    cpu_seconds = time.process_time() - cpu_started
    config = pipeline_config(clip, model, args)
    # the models exactly as the pipeline builds them, detecting at the clip's frame rate
    processor = PoseProcessor(config, info.fps if info.fps_reported else None)
    tracker = Tracker(processor.dataset_info.sigmas, kpt_thr=config.kpt_thr)
    smoother = TrackSmoother(SmoothingConfig(args.smooth))
    renderer = Renderer(kpt_thr=config.kpt_thr)
    sink = VideoSink(folder / "alone.mp4", audio=False)
    sink.open(info)
    people_seen = 0
    names = processor.dataset_info.keypoint_names
    cpu_started = time.process_time()

    def track_and_smooth(people: list[Person], timestamp: float) -> list[Person]:
        return smoother(tracker.update(people, timestamp), timestamp)

    def pose(work: FrameWork) -> None:  # the keypoint stage's steps, one frame at a time
        boxes = processor.pose_begin(work)
        processor.pose_done(work, boxes, processor.pose_people(work, boxes))

    try:
        for frame in frames:
            work = FrameWork(frame, epoch=0, born=0.0)
            timed("detect", processor.detect_step, work)
            timed("pose", pose, work)
            people_seen += len(work.people)
            people = work.people
            people = timed("track+smooth", track_and_smooth, people, frame.timestamp)
            timed("angles", attach_angles, people, names, args.kpt_thr)
            hud = HudInfo(fps=25.0, stage_ms={"pose": 10.0}, people=len(people), backend="cpu")
            image = timed("render", renderer.render, frame.image, people, hud)
            result = FrameResult(frame.index, frame.timestamp, image, frame.image, people)
            timed("encode", sink.write, result)
    finally:
        timed("encode", sink.close)  # flushing the encoder is part of encoding
    cpu_seconds += time.process_time() - cpu_started
    per_frame = {}
    for name, samples in costs.items():
        # detect runs on 1 of processor.det_frames frames; its cost is spread over all frames.
        per_frame[name] = 1000.0 * sum(samples) / len(frames)
    return {
        "frames": len(frames),
        "ms_per_frame": per_frame,
        "cpu_ms_per_frame": 1000.0 * cpu_seconds / len(frames),
        "people_per_frame": people_seen / len(frames),
        "size": (info.width, info.height),
        "threads_per_model": config.threads_per_model,
    }


def pipeline_config(
    clip: Path, model: Path, args: argparse.Namespace, angles: bool = True
) -> PipelineConfig:
    return PipelineConfig(
        source=str(clip),
        model=str(model),
        backend=args.backend,
        detector=args.detector,
        det_interval_s=args.det_interval_s,
        max_persons=args.max_persons,
        kpt_thr=args.kpt_thr,
        smoothing=SmoothingConfig(args.smooth),
        model_threads=args.model_threads,
        joint_angles=angles,
    )


def end_to_end(
    clip: Path, model: Path, args: argparse.Namespace, folder: Path, angles: bool = True
) -> dict:
    config = pipeline_config(clip, model, args, angles)
    frames = people = 0
    done_at = done_cpu = 0.0

    def on_result(result: FrameResult) -> None:
        nonlocal frames, people, done_at, done_cpu
        frames += 1
        people += len(result.people)
        done_at, done_cpu = time.perf_counter(), time.process_time()
        if frames >= args.max_frames:
            pipeline.stop()

    pipeline = Pipeline(config, [VideoSink(folder / "e2e.mp4", audio=False)], on_result)
    pipeline.start()  # opens the clip and builds the models: not timed
    started, started_cpu = time.perf_counter(), time.process_time()
    pipeline.wait()
    stats = pipeline.stats()
    summary = pipeline.summary()
    return {
        "frames": frames,
        "fps": frames / (done_at - started) if frames else 0.0,
        "cpu_ms_per_frame": 1000.0 * (done_cpu - started_cpu) / frames if frames else 0.0,
        "people_per_frame": people / frames if frames else 0.0,
        "stage_ms_in_pipeline": {n: round(s.latency_ms, 2) for n, s in stats.items()},
        "runtime": summary.runtime.label if summary.runtime else None,
        "crowds": summary.runtime.crowds if summary.runtime else None,
    }


def bench_clip(clip: Path, model: Path, args: argparse.Namespace) -> dict:
    alone_runs, e2e_runs, no_angle_runs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for _ in range(args.repeats):
            alone_runs.append(stages_alone(clip, model, args, folder))
            if args.compare_angles:
                no_angle_runs.append(end_to_end(clip, model, args, folder, angles=False))
            e2e_runs.append(end_to_end(clip, model, args, folder))
    names = list(alone_runs[0]["ms_per_frame"])
    ms = {n: statistics.median(r["ms_per_frame"][n] for r in alone_runs) for n in names}
    total = sum(ms.values())
    slowest = max(ms, key=ms.get)
    e2e_fps = statistics.median(r["fps"] for r in e2e_runs)
    cpu_ms_pipeline = statistics.median(r["cpu_ms_per_frame"] for r in e2e_runs)
    cores_fps = 1000.0 * available_cores() / cpu_ms_pipeline
    slowest_fps = 1000.0 / ms[slowest]
    no_angles = {}
    if no_angle_runs:
        no_angle_fps = statistics.median(r["fps"] for r in no_angle_runs)
        no_angles = {
            "end_to_end_fps_no_angles": round(no_angle_fps, 2),
            "end_to_end_fps_no_angles_runs": [round(r["fps"], 2) for r in no_angle_runs],
        }
    return {
        "clip": clip.name,
        "size": alone_runs[0]["size"],
        "frames": alone_runs[0]["frames"],
        "stage_ms_alone": {n: round(v, 2) for n, v in ms.items()},
        "sum_ms": round(total, 2),
        "sum_fps": round(1000.0 / total, 2),
        "slowest_stage": slowest,
        "slowest_fps": round(slowest_fps, 2),
        "end_to_end_fps": round(e2e_fps, 2),
        "end_to_end_fps_runs": [round(r["fps"], 2) for r in e2e_runs],
        "ratio_to_slowest": round(e2e_fps / slowest_fps, 3),
        # CPU time per frame (all threads): does the pipeline add work, and what can the
        # machine's cores deliver at best with that much work per frame?
        "cpu_ms_alone": round(statistics.median(r["cpu_ms_per_frame"] for r in alone_runs), 2),
        "cpu_ms_pipeline": round(cpu_ms_pipeline, 2),
        # what the cores allow with the pipeline's own CPU work per frame, and how near it ran
        "cores_bound_fps": round(cores_fps, 2),
        "ratio_to_cores_bound": round(e2e_fps / cores_fps, 3),
        "people_per_frame_alone": round(alone_runs[-1]["people_per_frame"], 2),
        "people_per_frame_pipeline": round(e2e_runs[-1]["people_per_frame"], 2),
        "cores": available_cores(),
        "threads_per_model": alone_runs[0]["threads_per_model"],
        "stage_ms_in_pipeline": e2e_runs[-1]["stage_ms_in_pipeline"],
        "runtime": e2e_runs[-1]["runtime"],
        "crowds": e2e_runs[-1]["crowds"],
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        **no_angles,
    }


def main(argv: list[str] | None = None) -> int:
    # No abbreviations: the README's older commands give --det-interval N in frames, which
    # argparse would otherwise take as --det-interval-s, N seconds.
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--clip", action="append", type=Path, help="video(s); default: see doc")
    parser.add_argument("--model", type=Path, help="keypoint model (default: shipped or random)")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--detector", default="nanodet")
    parser.add_argument("--det-interval-s", type=float, default=SETTINGS["det_interval_s"].default)
    parser.add_argument("--max-persons", type=int, default=0)
    parser.add_argument("--smooth", default="one-euro")
    parser.add_argument(
        "--kpt-thr",
        type=float,
        default=0.3,
        help="keypoints that place the boxes between detections; with a random-weight model "
        "(scores ~0) use 0, or following between detections loses everyone after the first frame",
    )
    parser.add_argument(
        "--model-threads",
        type=int,
        help="intra-op threads of each model, alone and in the pipeline (default: the "
        "pipeline's rule, half the cores each; 0: every core)",
    )
    parser.add_argument(
        "--compare-angles",
        action="store_true",
        help="also run the pipeline with the joint angles off (interleaved, same run)",
    )
    parser.add_argument("--max-frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    clips = args.clip or [next(c for c in DEFAULT_CLIPS if c.exists())]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or keypoint_model(Path(tmp))
        results = [bench_clip(clip, model, args) for clip in clips]
    for r in results:
        stages = ", ".join(f"{n} {v:.1f}" for n, v in r["stage_ms_alone"].items())
        print(
            f"{r['clip']} {r['size'][0]}x{r['size'][1]}, {r['frames']} frames, {r['runtime']}, "
            f"det-interval-s {args.det_interval_s}, {r['threads_per_model']} thread(s) per model, "
            f"people per frame {r['people_per_frame_alone']} "
            f"(alone) / {r['people_per_frame_pipeline']} (pipeline)"
        )
        print(f"  stages alone (ms/frame): {stages}")
        print(
            f"  end to end {r['end_to_end_fps']:.1f} FPS (runs {r['end_to_end_fps_runs']}); "
            f"sum of stages {r['sum_fps']:.1f} FPS; slowest stage ({r['slowest_stage']}) "
            f"{r['slowest_fps']:.1f} FPS; end to end / slowest = {r['ratio_to_slowest']:.0%}"
        )
        if "end_to_end_fps_no_angles" in r:
            print(
                f"  end to end without angles {r['end_to_end_fps_no_angles']:.1f} FPS (runs "
                f"{r['end_to_end_fps_no_angles_runs']}), with {r['end_to_end_fps']:.1f} FPS"
            )
        print(f"  stage ms inside the pipeline: {r['stage_ms_in_pipeline']}")
        print(
            f"  CPU ms per frame: stages alone {r['cpu_ms_alone']:.1f}, pipeline "
            f"{r['cpu_ms_pipeline']:.1f}; {r['cores']} cores give at most "
            f"{r['cores_bound_fps']:.1f} FPS with that much work; end to end / that bound = "
            f"{r['ratio_to_cores_bound']:.0%}"
        )
        print(f"  crowds: {r['crowds']}; load average {r['load_average']}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"clip": [str(c) for c in clips],
                                         "model": str(args.model), "json": str(args.json)},
                                         "results": results}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
