"""The soak measurement of benchmarks/soak.py, short: the same properties, no timing threshold.

A looping real clip (none dropped) and a fake camera (the test machines have none) run a few
hundred frames each with a video and a keypoint recording on: resident memory must stay flat
after warm-up, open file handles and the thread count must not climb (a leak
never falls back; native pools start and retire workers as the load moves), nothing may be left
behind once the run is over, and the recording must hold every frame processed.
"""

from __future__ import annotations

import pytest

from benchmarks.soak import Sample, SoakReport, format_report, run_soak
from tests.helpers import probe


@pytest.mark.slow
@pytest.mark.parametrize(("source", "frames"), [("file", 500), ("live", 300)])
def test_short_soak_keeps_memory_threads_and_handles_flat(source, frames, pose_model, tmp_path):
    report = run_soak(source, frames, block=100, warmup=100, out_dir=tmp_path, model=pose_model)
    assert isinstance(report, SoakReport) and report.frames == frames
    assert [s.frame for s in report.samples] == list(range(100, frames + 1, 100))
    assert all(s.latency_ms > 0 and s.rss_mb > 0 for s in report.samples)
    if source == "live":
        assert report.dropped_frames > 0  # a camera faster than the pipeline: newest frame only
    assert report.problems(timing=False) == [], format_report(report)
    # the recording decodes, every processed frame in it (a non-empty file would prove neither)
    assert probe(tmp_path / f"soak_{source}.mp4")["frames"] == frames


@pytest.mark.parametrize(
    ("threads", "leaking"),
    [([39, 40, 41, 42, 43], True), ([39, 40, 44, 40, 38], False), ([20, 21, 21, 21], False)],
)
def test_only_a_climbing_thread_count_reads_as_a_leak(threads, leaking):
    samples = [Sample(100 * (i + 1), 100.0, n, 10, 5.0, 20.0) for i, n in enumerate(threads)]
    report = SoakReport("file", "clip", 500, 1.0, 0, 100, 500, {"threads": 5, "handles": 5},
                        {"threads": 5, "handles": 5}, samples)  # fmt: skip
    assert any("threads rose" in p for p in report.problems(timing=False)) == leaking
