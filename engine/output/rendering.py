"""Drawing people on frames: skeletons, boxes, track IDs and a HUD.

Small annotator classes, each with ``annotate(image, people) -> image`` (in place), composed by
:class:`Renderer`. Everything is anti-aliased with sub-pixel coordinates, and line widths, dot
radii and text sizes scale with the frame so a 4K video and a 320x240 thumbnail both read well.

Colours follow mmpose's COCO palette: left limbs green, right limbs orange, the face and the
trunk's cross links blue. The ``openpose`` style gives every limb its own hue instead.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from hfpose.engine.angles import JOINT_FLEXION, JOINT_OPENING, LEAN, angle_table
from hfpose.engine.results import Person
from hfpose.engine.settings import check_declared, setting
from hfpose.models.metainfo import COCO, DatasetInfo

RENDER_STYLES = ("mmpose", "openpose")

# BGR
LEFT_COLOR = (0, 255, 0)
RIGHT_COLOR = (0, 128, 255)
CENTER_COLOR = (255, 153, 51)
_SIDE_COLORS = {"left": LEFT_COLOR, "right": RIGHT_COLOR, "center": CENTER_COLOR}
_HEAD_WORDS = ("nose", "eye", "ear", "head", "neck", "thorax", "pelvis")
_SHIFT = 4  # sub-pixel bits for OpenCV drawing calls
_ONE = 1 << _SHIFT


def frame_scale(image: np.ndarray) -> float:
    """Drawing scale relative to a 1000-pixel frame (long side)."""
    return max(image.shape[:2]) / 1000.0


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per track (golden-ratio hue steps)."""
    if track_id < 0:
        return (200, 200, 200)
    hue = (track_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return (int(b * 255), int(g * 255), int(r * 255))


def _keypoint_sides(info: DatasetInfo) -> list[str]:
    """mmpose colours the face blue even though eyes and ears have a side."""
    return [
        "center" if any(word in name for word in _HEAD_WORDS) else side
        for name, side in zip(info.keypoint_names, info.sides)
    ]


def _rainbow(count: int) -> list[tuple[int, int, int]]:
    colors = []
    for i in range(count):
        r, g, b = colorsys.hsv_to_rgb(i / max(count, 1), 1.0, 1.0)
        colors.append((int(b * 255), int(g * 255), int(r * 255)))
    return colors


def _fixed(point: Sequence[float]) -> tuple[int, int]:
    return (int(round(point[0] * _ONE)), int(round(point[1] * _ONE)))


class SkeletonAnnotator:
    """Keypoints and links above ``kpt_thr`` in the mmpose or OpenPose colour scheme."""

    def __init__(
        self,
        dataset_info: DatasetInfo = COCO,
        style: str = "mmpose",
        *,
        kpt_thr: float,
        radius: float = 0.0,
        thickness: int = 0,
    ) -> None:
        if style not in RENDER_STYLES:
            raise ValueError(f"unknown render style {style!r}; choose {', '.join(RENDER_STYLES)}")
        self.dataset_info = dataset_info
        self.style = style
        self.kpt_thr = kpt_thr
        self.radius = radius  # frame pixels; 0 scales with the frame
        self.thickness = thickness
        sides = _keypoint_sides(dataset_info)
        if style == "mmpose":
            self.point_colors = [_SIDE_COLORS[s] for s in sides]
            self.link_colors = [
                _SIDE_COLORS[sides[a]] if sides[a] == sides[b] else CENTER_COLOR
                for a, b in dataset_info.skeleton
            ]
        else:
            self.point_colors = _rainbow(dataset_info.num_keypoints)
            self.link_colors = _rainbow(len(dataset_info.skeleton))

    def annotate(self, image: np.ndarray, people: Sequence[Person]) -> np.ndarray:
        scale = frame_scale(image)
        radius = max(2.0, 4.0 * scale)
        thickness = max(1, int(2.5 * scale + 0.5))
        if self.style == "openpose":
            thickness = max(2, int(5 * scale + 0.5))
        radius = self.radius or radius
        thickness = self.thickness or thickness
        for person in people:
            points = person.keypoints
            visible = person.keypoint_scores > self.kpt_thr
            if self.style == "openpose":
                overlay = image.copy()
                self._links(overlay, points, visible, thickness)
                cv2.addWeighted(overlay, 0.6, image, 0.4, 0, dst=image)
            else:
                self._links(image, points, visible, thickness)
            for k in np.flatnonzero(visible):
                center = _fixed(points[k])
                cv2.circle(image, center, int(radius * _ONE), self.point_colors[k], -1,
                           cv2.LINE_AA, _SHIFT)  # fmt: skip
        return image

    def _links(
        self, image: np.ndarray, points: np.ndarray, visible: np.ndarray, width: int
    ) -> None:
        for (a, b), color in zip(self.dataset_info.skeleton, self.link_colors):
            if visible[a] and visible[b]:
                cv2.line(image, _fixed(points[a]), _fixed(points[b]), color, width, cv2.LINE_AA,
                         _SHIFT)  # fmt: skip


class BoxAnnotator:
    """Person boxes, coloured per track so an identity is recognisable at a glance."""

    def annotate(self, image: np.ndarray, people: Sequence[Person]) -> np.ndarray:
        thickness = max(1, round(2 * frame_scale(image)))
        for person in people:
            x1, y1, x2, y2 = person.bbox
            cv2.rectangle(image, _fixed((x1, y1)), _fixed((x2, y2)), track_color(person.track_id),
                          thickness, cv2.LINE_AA, _SHIFT)  # fmt: skip
        return image


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts only have ASCII: keep labels such as ``cpu · CPUExecution...``
    readable instead of letting the middle dot turn into a stray glyph."""
    return text.replace("\u00b7", "-").encode("ascii", "replace").decode("ascii")


@dataclass
class _TextLayout:
    lines: list[str]
    thickness: int
    sizes: list[tuple[tuple[int, int], int]]  # cv2.getTextSize per line
    line_height: int
    pad: int

    @property
    def size(self) -> tuple[int, int]:
        width = max(w for (w, _), _ in self.sizes)
        return width + 2 * self.pad, self.line_height * len(self.lines) + self.pad


def _text_layout(lines: Sequence[str], font_scale: float) -> _TextLayout:
    ascii_lines = [_ascii(line) for line in lines]
    thickness = max(1, round(font_scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(line, font, font_scale, thickness) for line in ascii_lines]
    line_height = max(h + base for (_, h), base in sizes) + max(2, round(4 * font_scale))
    return _TextLayout(ascii_lines, thickness, sizes, line_height, max(2, round(6 * font_scale)))


def text_box_size(lines: Sequence[str], font_scale: float) -> tuple[int, int]:
    """Width and height in pixels of the panel :func:`_text_box` draws for ``lines``."""
    return _text_layout(lines, font_scale).size


def _text_box(
    image: np.ndarray,
    lines: Sequence[str],
    origin: tuple[int, int],
    font_scale: float,
    color: tuple[int, int, int],
    background: tuple[int, int, int],
    alpha: float,
) -> None:
    """Lines of text on a filled (optionally translucent) rectangle whose top-left is origin."""
    layout = _text_layout(lines, font_scale)
    box_width, box_height = layout.size
    x0, y0 = origin
    h_img, w_img = image.shape[:2]
    x1 = min(w_img, x0 + box_width)
    y1 = min(h_img, y0 + box_height)
    x0, y0 = max(0, x0), max(0, y0)
    if x1 <= x0 or y1 <= y0:
        return
    region = image[y0:y1, x0:x1]
    if alpha >= 1.0:
        region[:] = background
    else:
        region[:] = (region * (1.0 - alpha) + np.asarray(background) * alpha).astype(np.uint8)
    pad, font = layout.pad, cv2.FONT_HERSHEY_SIMPLEX
    for i, line in enumerate(layout.lines):
        baseline_y = y0 + pad + layout.line_height * i + layout.sizes[i][0][1]
        cv2.putText(image, line, (x0 + pad, baseline_y), font, font_scale, color,
                    layout.thickness, cv2.LINE_AA)  # fmt: skip


class TrackIdAnnotator:
    """``#ID`` label above each person's box, in the track's colour."""

    def annotate(self, image: np.ndarray, people: Sequence[Person]) -> np.ndarray:
        font_scale = max(0.35, 0.6 * frame_scale(image))
        for person in people:
            if person.track_id < 0:
                continue
            x1, y1 = int(person.bbox[0]), int(person.bbox[1])
            text_h = int(30 * font_scale) + 4
            _text_box(image, [f"#{person.track_id}"], (x1, max(0, y1 - text_h)), font_scale,
                      (0, 0, 0), track_color(person.track_id), 1.0)  # fmt: skip
        return image


class AngleAnnotator:
    """Each person's joint angles and trunk lean as numbers beside their joints (segment
    angles have no joint of their own: they stay in the exports and the plot)."""

    KINDS = (JOINT_FLEXION, JOINT_OPENING, LEAN)

    def __init__(self, dataset_info: DatasetInfo = COCO) -> None:
        self.keypoint_names = dataset_info.keypoint_names

    def annotate(self, image: np.ndarray, people: Sequence[Person]) -> np.ndarray:
        table = angle_table(self.keypoint_names)
        shown = [i for i, kind in enumerate(table.kinds) if kind in self.KINDS]
        font_scale = max(0.3, 0.45 * frame_scale(image))
        offset = max(3, round(8 * frame_scale(image)))
        for person in people:
            if not person.angles:
                continue
            points = table.point_weights @ person.keypoints.astype(np.float64)
            for i in shown:
                value = person.angles.get(table.names[i], np.nan)
                if np.isnan(value):
                    continue
                x, y = points[table.anchors[i]]
                _text_box(image, [f"{value:.0f}"], (int(x) + offset, int(y) - offset),
                          font_scale, (255, 255, 255), (40, 40, 40), 0.6)  # fmt: skip
        return image


@dataclass
class HudInfo:
    """What the heads-up display shows: speed, stage costs, people, the backend running."""

    fps: float = 0.0
    stage_ms: Mapping[str, float] = field(default_factory=dict)
    people: int = 0
    backend: str = ""


class HudAnnotator:
    """A translucent panel with the :class:`HudInfo` figures, in a corner clear of people.

    It starts top left and stays in its corner while that covers nobody; once it would cover a
    person's box it moves to the corner that covers the least of them (the first in reading
    order on a tie), so it neither hides people nor hops about the frame.
    """

    def __init__(self) -> None:
        self.corner = 0  # HUD_CORNERS index

    def annotate(
        self, image: np.ndarray, hud: HudInfo, people: Sequence[Person] = ()
    ) -> np.ndarray:
        lines = [f"{hud.fps:5.1f} FPS   people: {hud.people}"]
        if hud.backend:
            # OpenCV's Hershey fonts draw ASCII only: RuntimeInfo.label's "·" came out as "??".
            lines.append(hud.backend.replace("·", "|").encode("ascii", "replace").decode())
        if hud.stage_ms:
            lines.append("  ".join(f"{name} {ms:.1f}" for name, ms in hud.stage_ms.items()) + " ms")
        font_scale = max(0.35, 0.55 * frame_scale(image))
        margin = max(4, round(10 * frame_scale(image)))
        size = text_box_size(lines, font_scale)
        origins = _corner_origins(image.shape[:2], size, margin)
        covered = [_covered_area(origin, size, people) for origin in origins]
        if covered[self.corner] > 0:
            self.corner = int(np.argmin(covered))
        origin = origins[self.corner]
        _text_box(image, lines, origin, font_scale, (255, 255, 255), (0, 0, 0), 0.55)
        return image


def _corner_origins(
    frame_hw: tuple[int, int], size: tuple[int, int], margin: int
) -> list[tuple[int, int]]:
    """Top-left points of a panel of ``size`` in the four corners: TL, TR, BL, BR."""
    height, width = frame_hw
    right = max(margin, width - margin - size[0])
    bottom = max(margin, height - margin - size[1])
    return [(margin, margin), (right, margin), (margin, bottom), (right, bottom)]


def _covered_area(
    origin: tuple[int, int], size: tuple[int, int], people: Sequence[Person]
) -> float:
    """Pixels of people's boxes a panel at ``origin`` would cover."""
    x0, y0 = origin
    x1, y1 = x0 + size[0], y0 + size[1]
    area = 0.0
    for person in people:
        bx0, by0, bx1, by1 = (float(v) for v in person.bbox[:4])
        area += max(0.0, min(x1, bx1) - max(x0, bx0)) * max(0.0, min(y1, by1) - max(y0, by0))
    return area


@dataclass
class RenderOptions:
    """What the renderer draws; the pipeline swaps these live (GUI settings)."""

    style: str = setting(
        "mmpose", "skeleton colours", choices=RENDER_STYLES, name="draw_style", flag="--style"
    )
    draw_skeleton: bool = True
    draw_boxes: bool = setting(True, "draw person boxes", name="show_boxes", flag="-")
    draw_track_ids: bool = setting(True, "draw track IDs", name="show_ids", flag="-")
    draw_angles: bool = setting(
        False, "joint angles (degrees) beside the joints", name="show_angles", flag="--show-angles"
    )
    draw_hud: bool = setting(
        True, "the FPS/backend panel on the video", name="show_hud", flag="--no-hud"
    )
    radius: int = setting(
        0,
        "keypoint radius in frame pixels",
        zero_means="auto (scales with the video)",
        flag="-",
        ui_range=(0, 30),
    )
    thickness: int = setting(
        0,
        "line thickness in frame pixels",
        zero_means="auto (scales with the video)",
        flag="-",
        ui_range=(0, 20),
    )

    def __post_init__(self) -> None:
        check_declared(self)


class Renderer:
    """Draws people (and the HUD) on a copy of the frame according to :class:`RenderOptions`;
    keypoints scoring ``kpt_thr`` or less are left out (``PipelineConfig.kpt_thr``)."""

    def __init__(
        self,
        options: RenderOptions | None = None,
        dataset_info: DatasetInfo = COCO,
        *,
        kpt_thr: float,
    ) -> None:
        self.dataset_info = dataset_info
        self.kpt_thr = kpt_thr
        self.boxes = BoxAnnotator()
        self.track_ids = TrackIdAnnotator()
        self.hud = HudAnnotator()
        self.configure(options or RenderOptions())

    def configure(
        self,
        options: RenderOptions,
        dataset_info: DatasetInfo | None = None,
        kpt_thr: float | None = None,
    ) -> None:
        """Draw with ``options`` from now on; a ``dataset_info`` or ``kpt_thr`` given replaces
        the one in use."""
        self.options = options
        if dataset_info is not None:
            self.dataset_info = dataset_info
        if kpt_thr is not None:
            self.kpt_thr = kpt_thr
        self.skeleton = SkeletonAnnotator(
            self.dataset_info,
            options.style,
            kpt_thr=self.kpt_thr,
            radius=options.radius,
            thickness=options.thickness,
        )
        self.angles = AngleAnnotator(self.dataset_info)

    def render(
        self, image: np.ndarray, people: Sequence[Person], hud: HudInfo | None = None
    ) -> np.ndarray:
        out = image.copy()
        o = self.options
        if o.draw_boxes:
            self.boxes.annotate(out, people)
        if o.draw_skeleton:
            self.skeleton.annotate(out, people)
        if o.draw_track_ids:
            self.track_ids.annotate(out, people)
        if o.draw_angles:
            self.angles.annotate(out, people)
        if o.draw_hud and hud is not None:
            self.hud.annotate(out, hud, people)
        return out
