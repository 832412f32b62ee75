"""Every user-facing setting is declared once (hfpose.engine.config): the CLI, the app's store
and dialog, PoseTracker and the live Pipeline all take it from there and agree on it."""

from __future__ import annotations

from pathlib import Path

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
from hfpose.engine.pipeline import Pipeline
from hfpose.engine.pose_tracker import PoseTracker
from hfpose.engine.settings import Setting

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
    """Before 26 Nov the interval counted frames (tuned at 30 fps); an unreadable one: default."""
    qsettings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    qsettings.setValue("settings/det_interval", frames)
    assert SettingsStore(qsettings).load().det_interval_s == pytest.approx(seconds)


def test_every_declared_setting_applies_live() -> None:
    for spec in declared_settings():
        assert spec.live, spec.name
        pipeline = Pipeline(PipelineConfig(source="unused"))  # not started: lands in config
        value = other_value(spec)
        pipeline.change_settings({spec.name: value})
        assert settings_of(pipeline.config)[spec.name] == value, spec.name


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
    from hfpose.app.settings_dialog import BACKEND_TITLES, CHOICE_TITLES

    assert set(BACKEND_TITLES) == set(SETTINGS["backend"].choices)
    for name, titles in CHOICE_TITLES.items():
        assert set(titles) == set(SETTINGS[name].choices), name
