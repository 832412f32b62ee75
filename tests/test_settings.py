"""Every user-facing setting is declared once (hfpose.engine.config): the CLI, the app's store
and dialog, PoseTracker and the live Pipeline all take it from there and agree on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from hfpose.app.settings import AppSettings, SettingsStore
from hfpose.app.settings_dialog import SettingsDialog
from hfpose.app.video_cli import build_parser
from hfpose.engine.config import (
    SETTINGS,
    PipelineConfig,
    config_from_settings,
    declared_settings,
    settings_of,
)
from hfpose.engine.people.plausibility import birth_score
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.pose_tracker import PoseTracker
from hfpose.engine.processor import STAGES, PoseProcessor
from hfpose.engine.results import FrameResult
from hfpose.engine.settings import Setting
from tests.helpers import Collector, FakeCamera, wait_until

WALK = Path(__file__).parent / "data" / "videos" / "intel_asl_walk_1s5.mp4"

# Edited in the dialog by their own widgets (radio buttons, file fields), not a generic field.
DIALOG_SPECIAL = {"backend", "model", "model_config", "detector"}


def other_value(spec: Setting) -> object:
    """A valid value that is not the default (so a setting that is dropped somewhere shows)."""
    if spec.choices:
        return next(c for c in spec.choices if c != spec.default)
    if spec.type is bool:
        return not spec.default
    if spec.type in (int, float):
        low, high = spec.dialog_range
        value = spec.type(spec.default + spec.step)
        if spec.type is float:
            value = round(value, spec.decimals)  # what the dialog's spin box keeps
        return value if low <= value <= high else spec.type(low)
    return {"model": "movenet-thunder", "detector": "blazepose"}.get(spec.name, "other.yaml")


def test_every_declaration_is_complete() -> None:
    assert len(declared_settings()) == len(SETTINGS) >= 20  # user-facing names are unique
    for spec in declared_settings():
        assert spec.help and spec.type is not None and spec.path, spec.name
        assert spec.problem(spec.default) is None, spec.name  # the default passes its checks


def test_cli_app_and_engine_agree_on_every_default() -> None:
    engine = settings_of(PipelineConfig())
    app = AppSettings()
    cli = build_parser().parse_args(["in.mp4"])
    for spec in declared_settings():
        assert engine[spec.name] == spec.default, spec.name
        assert getattr(app, spec.name) == spec.default, spec.name
        if spec.cli_flag is not None:
            assert getattr(cli, spec.name) == spec.default, spec.name


def test_max_persons_defaults_to_no_limit_everywhere_and_the_dialog_says_so(qtbot) -> None:
    assert SETTINGS["max_persons"].default == 0 == AppSettings().max_persons
    dialog = SettingsDialog(AppSettings(), [])
    qtbot.addWidget(dialog)
    assert dialog.max_persons.value() == 0 and dialog.max_persons.text() == "no limit"
    dialog.max_persons.setValue(3)
    assert dialog.settings().max_persons == 3


def test_every_cli_flag_reaches_the_engine_configuration() -> None:
    for spec in declared_settings():
        if spec.cli_flag is None:
            continue
        value = other_value(spec)
        if spec.type is bool:
            argv = [spec.cli_flag]
        else:
            argv = [spec.cli_flag, str(value)]
        args = build_parser().parse_args(["in.mp4", *argv])
        values = {s.name: getattr(args, s.name) for s in declared_settings() if s.cli_flag}
        assert settings_of(config_from_settings(values, source="in.mp4"))[spec.name] == value


def test_cli_refuses_what_the_declaration_refuses(capsys) -> None:
    for spec in declared_settings():
        if spec.cli_flag is None or spec.minimum is None:
            continue
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(["in.mp4", spec.cli_flag, str(spec.minimum - 1)])
        assert exited.value.code == 2
        assert spec.problem(spec.minimum - 1) in capsys.readouterr().err
        with pytest.raises(ValueError, match=spec.name):
            config_from_settings({spec.name: spec.minimum - 1})


def test_the_dialog_edits_every_declared_setting_and_keeps_its_value(qtbot) -> None:
    dialog = SettingsDialog(AppSettings(), [])
    qtbot.addWidget(dialog)
    assert set(dialog.fields) == set(SETTINGS) - DIALOG_SPECIAL
    changed = AppSettings().replace(**{name: other_value(SETTINGS[name]) for name in dialog.fields})
    dialog.set_settings(changed)
    assert dialog.settings() == changed


def test_stored_settings_come_back_with_their_declared_types(tmp_path: Path) -> None:
    store = SettingsStore(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    changed = AppSettings().replace(**{s.name: other_value(s) for s in declared_settings()})
    store.save(changed)
    assert store.load() == changed
    store.save(AppSettings())
    assert store.load() == AppSettings()  # None (the shipped model) survives the INI file too


def test_a_model_stored_by_an_older_version_is_read(tmp_path: Path) -> None:
    qsettings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    qsettings.setValue("settings/model_path", "movenet-thunder")
    assert SettingsStore(qsettings).load().model == "movenet-thunder"


@pytest.mark.parametrize(
    ("frames", "seconds"), [("1", 0.0), ("5", 5 / 30), ("10", 10 / 30), ("lots", 0.17)]
)
def test_a_detection_interval_stored_in_frames_is_read_as_seconds(
    tmp_path: Path, frames: str, seconds: float
) -> None:
    """Older versions counted the interval in frames (tuned at 30 fps); an unreadable one: default."""
    qsettings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    qsettings.setValue("settings/det_interval", frames)
    assert SettingsStore(qsettings).load().det_interval_s == pytest.approx(seconds)


def test_every_setting_names_the_stages_it_reaches_and_applies_before_start() -> None:
    for spec in declared_settings():
        assert spec.stages and set(spec.stages) <= set(STAGES), spec.name
        pipeline = Pipeline(PipelineConfig(source="unused"))  # not started: lands in config
        value = other_value(spec)
        pipeline.change_settings({spec.name: value})
        assert settings_of(pipeline.config)[spec.name] == value, spec.name


def _as_stage_runs_it(stage: str, spec: Setting, processor: PoseProcessor) -> object:
    """The value of ``spec`` that ``stage`` runs with now, read from the stage's own objects
    (the detector, the tracker, the renderer...) where it keeps one."""
    if stage == "detect" and spec.name in ("detector", "backend"):
        detector = processor.detector
        return detector.name if spec.name == "detector" else detector.runtime_info.requested
    if stage == "pose" and spec.name == "backend":
        return processor.runtime_info.requested
    if stage == "track":
        tracker = processor.tracker
        return tracker.kpt_thr if spec.name == "kpt_thr" else tracker.min_birth_score
    if stage == "render":
        renderer = processor.renderer
        return (
            renderer.kpt_thr if spec.name == "kpt_thr" else getattr(renderer.options, spec.path[1])
        )
    return settings_of(processor.config)[spec.name]


# Values the running test changes to where other_value's would change nothing visible here:
# the run starts on the CPU with the test model.
LIVE_VALUES = {"backend": "openvino", "model": "movenet-lightning"}


@pytest.mark.slow
def test_every_setting_changed_on_a_running_pipeline_reaches_its_stages(pose_model) -> None:
    """Each declared setting changed while frames flow (a looped clip standing in for a
    webcam, the test machines have none) reaches every stage its declaration names; those a
    user watches show in the output: the backend in runtime_info, the model in what the HUD
    prints, the keypoint threshold in what is drawn and what the tracker compares."""
    c = Collector()
    camera = FakeCamera(WALK, period=0.03)
    pipeline = c.pipeline(PipelineConfig(source=camera, model=pose_model, backend="cpu"))
    pipeline.start()
    try:
        wait_until(lambda: len(c.results) >= 2)
        for spec in declared_settings():
            value = LIVE_VALUES.get(spec.name, other_value(spec))
            expected = {stage: value for stage in spec.stages}
            if spec.name == "min_pose_score":
                expected["track"] = birth_score(value)  # new tracks need more
            pipeline.change_settings({spec.name: value})
            wait_until(
                lambda s=spec, e=expected: all(
                    _as_stage_runs_it(stage, s, pipeline.processor) == want
                    for stage, want in e.items()
                ),
                timeout=120,
                what=f"applying {spec.name}={value!r}: {c.errors[-1:]}",
            )
            if spec.name == "backend":  # OpenVINO where installed, else the CPU, saying so
                wait_until(lambda: c.results[-1].runtime.requested == "openvino")
            if spec.name == "model":  # the HUD prints runtime.label
                wait_until(lambda: c.results[-1].runtime.label.endswith("movenet-lightning"))
        # Drawing: only the skeleton is left on (show_* were switched off above).
        pipeline.change_settings({"kpt_thr": 0.0, "max_persons": 0, "min_pose_score": 0.0})
        wait_until(lambda: c.results[-1].people and _drawn(c.results[-1]))
        pipeline.change_settings({"kpt_thr": 1.0})  # no score is above 1: nothing is drawn
        wait_until(lambda: c.results[-1].people and not _drawn(c.results[-1]))
        # the track stage takes it at its own next frame, which may come after render's
        wait_until(lambda: pipeline.processor.tracker.kpt_thr == 1.0)
    finally:
        pipeline.stop()
    assert pipeline.wait(10) and camera.closed
    assert [e for e in c.errors if e.fatal] == []


def _drawn(result: FrameResult) -> bool:
    return not np.array_equal(result.image, result.frame)


def test_pose_tracker_takes_the_declared_settings_as_keywords() -> None:
    tracker = PoseTracker(backend="cpu", max_persons=2, one_euro_beta=0.5, smoothing="kalman")
    expected = {**settings_of(PipelineConfig()), "backend": "cpu", "max_persons": 2}
    expected.update(one_euro_beta=0.5, smoothing="kalman")
    assert settings_of(tracker.config) == expected
    with pytest.raises(TypeError, match="unknown setting 'max_people'"):
        PoseTracker(max_people=2)
    with pytest.deprecated_call():
        assert PoseTracker(device="cpu").config.backend == "cpu"


def test_the_dialog_has_words_for_exactly_the_declared_choices() -> None:
    from hfpose.app.setting_fields import BACKEND_TITLES, CHOICE_TITLES

    assert set(BACKEND_TITLES) == set(SETTINGS["backend"].choices)
    for name, titles in CHOICE_TITLES.items():
        assert set(titles) == set(SETTINGS[name].choices), name
