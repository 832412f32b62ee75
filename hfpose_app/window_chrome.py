"""The main window's furniture: actions with their shortcuts, menus, toolbar, transport row
and status bar. :class:`WindowChrome` builds them; :class:`hfpose.app.main_window.MainWindow`
and, for recording, snapshots and exports, :class:`hfpose.app.window_outputs.WindowOutputs`
give them their behaviour (the slots named here are their methods)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QStyle,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hfpose.app.angle_dock import AnglePlotDock
from hfpose.app.widgets import (
    SeekSlider,
    camera_icon,
    pause_icon,
    play_icon,
    record_icon,
    snapshot_icon,
    step_icon,
    stop_icon,
    stream_icon,
)


class WindowChrome(QMainWindow):
    """Builds the window's actions and widgets; subclasses provide the slots they call."""

    def _action(
        self, text: str, slot, shortcut: QKeySequence | str | None = None, icon=None, tip=""
    ) -> QAction:
        action = QAction(text, self)
        if icon is not None:
            action.setIcon(icon)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts keep working while menus/toolbars are hidden
        return action

    def _build_actions(self) -> None:
        self._play_icon, self._pause_icon = play_icon(), pause_icon()
        style = self.style()
        sp = QStyle.StandardPixmap
        self.open_action = self._action(
            "&Open video…",
            self.open_file_dialog,
            QKeySequence.StandardKey.Open,
            style.standardIcon(sp.SP_DialogOpenButton),
            "Open a video file",
        )
        self.open_stream_action = self._action(
            "Open &stream URL…",
            self.open_stream_dialog,
            "Ctrl+U",
            stream_icon(),
            "Open an RTSP or HTTP stream",
        )
        self.play_action = self._action(
            "&Play", self.toggle_play, "Space", play_icon(), "Play/pause (Space)"
        )
        self.stop_action = self._action("S&top", self.stop, None, stop_icon(), "Stop")
        self.step_action = self._action(
            "Step &forward",
            self.step,
            "Right",
            step_icon(),
            "Show the next frame (Right arrow)",
        )
        self.record_action = self._action(
            "&Record", self.toggle_record, "R", record_icon(), "Record the annotated video (R)"
        )
        self.record_action.setCheckable(True)
        self.record_to_action = self._action(
            "Record &to…", self.record_to_dialog, "Ctrl+Shift+R", None, "Record to a chosen file"
        )
        self.snapshot_action = self._action(
            "&Snapshot", self.snapshot, "S", snapshot_icon(), "Save the annotated frame as PNG (S)"
        )
        self.export_action = self._action(
            "&Export keypoints…",
            self.export_keypoints_dialog,
            "Ctrl+E",
            style.standardIcon(sp.SP_DialogSaveButton),
            "Save the keypoints of this run as JSON or CSV",
        )
        self.settings_action = self._action(
            "Se&ttings…",
            self.show_settings,
            "Ctrl+,",  # the platforms' Preferences key is empty on Linux
            style.standardIcon(sp.SP_FileDialogDetailedView),
            "Backend, model, smoothing, drawing and recording",
        )
        self.full_screen_action = self._action(
            "&Full screen", self.toggle_full_screen, "F", None, "Full screen (F, Esc to leave)"
        )
        self.full_screen_action.setCheckable(True)
        self.leave_full_screen_action = self._action(
            "Leave full screen", self.leave_full_screen, "Esc"
        )
        self.playback_group = QActionGroup(self)
        self.every_frame_action = self._action(
            "Files: show &every frame",
            lambda: self.set_playback("every-frame"),
            None,
            None,
            "A file the computer cannot process at its speed plays slower, frame by frame",
        )
        self.real_time_action = self._action(
            "Files: keep &real time",
            lambda: self.set_playback("real-time"),
            None,
            None,
            "A file the computer cannot process at its speed keeps its clock and skips frames, "
            "as a camera does",
        )
        for action in (self.every_frame_action, self.real_time_action):
            action.setCheckable(True)
            self.playback_group.addAction(action)
        self.open_recordings_action = self._action(
            "Show recordings &folder", self.open_recordings_folder
        )
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.camera_menu = file_menu.addMenu(camera_icon(), "Open &camera")
        self.camera_menu.aboutToShow.connect(self._camera_menu_shown)
        file_actions = [self.open_stream_action, None, self.snapshot_action, self.export_action]
        _fill(file_menu, [*file_actions, None, self.quit_action])
        _fill(bar.addMenu("&Playback"), [self.play_action, self.stop_action, self.step_action])
        record_actions = [self.record_action, self.record_to_action, self.open_recordings_action]
        _fill(bar.addMenu("&Record"), record_actions)
        playback_modes = [self.every_frame_action, self.real_time_action]
        view_actions = [self.full_screen_action, None, *playback_modes, None, self.settings_action]
        self.view_menu = bar.addMenu("&View")
        _fill(self.view_menu, view_actions)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("&About hfpose", self.show_about)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addAction(self.open_action)
        camera_button = QToolButton()
        camera_button.setIcon(camera_icon())
        camera_button.setText("Camera")
        camera_button.setToolTip("Open a camera")
        camera_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        camera_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        camera_button.setMenu(self.camera_menu)
        toolbar.addWidget(camera_button)
        toolbar.addAction(self.open_stream_action)
        toolbar.addSeparator()
        toolbar.addAction(self.record_action)
        toolbar.addAction(self.snapshot_action)
        toolbar.addAction(self.export_action)
        toolbar.addSeparator()
        toolbar.addAction(self.settings_action)
        for button in toolbar.findChildren(QToolButton):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.toolbar = toolbar
        self.addToolBar(toolbar)

    def _transport_button(self, action: QAction) -> QToolButton:
        button = QToolButton()
        button.setDefaultAction(action)
        button.setAutoRaise(True)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return button

    def _build_central(self) -> None:
        self.seek_slider = SeekSlider()
        self.seek_slider.setRange(0, 0)
        self.seek_slider.seek_requested.connect(self._seek_to_slider)
        self.seek_slider.sliderMoved.connect(self._slider_moved)
        self.time_label = QLabel("0:00.0 / 0:00.0")
        self.time_label.setMinimumWidth(120)
        self.time_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        transport = QWidget()
        row = QHBoxLayout(transport)
        row.setContentsMargins(6, 2, 6, 4)
        row.addWidget(self._transport_button(self.play_action))
        row.addWidget(self._transport_button(self.stop_action))
        row.addWidget(self._transport_button(self.step_action))
        row.addWidget(self.seek_slider, 1)
        row.addWidget(self.time_label)
        row.addWidget(self.record_indicator)
        self.transport = transport

        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.view, 1)
        column.addWidget(transport)
        self.setCentralWidget(central)
        self.view.setFocus()

    def _build_angle_dock(self) -> None:
        """The angle plot, beside the video; the View menu shows and hides it."""
        self.angle_dock = AnglePlotDock(self.settings, self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.angle_dock)
        self.angle_dock.settings_edited.connect(self._angle_dock_edited)
        self.view.clicked.connect(self.angle_dock.select_at)
        self.angle_dock.hide()  # View > Angle plot opens it (the saved layout may too)
        toggle = self.angle_dock.toggleViewAction()
        toggle.setText("&Angle plot")
        self.view_menu.insertAction(self.view_menu.actions()[0], toggle)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.source_label = QLabel("No source")
        self.fps_label = QLabel("— fps")
        self.latency_label = QLabel("latency —")
        self.latency_label.setToolTip(
            "Capture to display of the frame on screen (for a file: from the moment the player "
            "released the frame)"
        )
        self.playback_label = QLabel()
        self.people_label = QLabel("0 people")
        self.backend_label = QLabel("backend —")
        self.backend_label.setToolTip("The backend and provider really running the keypoint model")
        bar.addWidget(self.source_label, 1)
        labels = (
            self.playback_label,
            self.fps_label,
            self.latency_label,
            self.people_label,
            self.backend_label,
        )
        for label in labels:
            label.setContentsMargins(8, 0, 8, 0)
            bar.addPermanentWidget(label)


def _fill(menu: QMenu, actions: list[QAction | None]) -> None:
    """Add ``actions`` to ``menu`` in order, a separator for each None."""
    for action in actions:
        if action is None:
            menu.addSeparator()
        else:
            menu.addAction(action)
