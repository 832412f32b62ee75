"""Rendering: mmpose colours where the limbs are, thresholds respected, sizes scale, HUD."""

from __future__ import annotations

import numpy as np
import pytest

from hfpose.engine.output.rendering import (
    CENTER_COLOR,
    LEFT_COLOR,
    RIGHT_COLOR,
    HudInfo,
    Renderer,
    RenderOptions,
    SkeletonAnnotator,
)
from tests.helpers import KPT_THR, make_person


def _closest_color(pixel: np.ndarray) -> tuple[int, int, int]:
    colors = [LEFT_COLOR, RIGHT_COLOR, CENTER_COLOR]
    return colors[int(np.argmin([np.abs(pixel.astype(int) - c).sum() for c in colors]))]


def _midpoint(person, a: int, b: int) -> tuple[int, int]:
    x, y = (person.keypoints[a] + person.keypoints[b]) / 2
    return int(round(y)), int(round(x))


def test_mmpose_colours_left_green_right_orange_centre_blue():
    image = np.zeros((480, 640, 3), np.uint8)
    person = make_person(320, 240, height=400)
    SkeletonAnnotator(style="mmpose", kpt_thr=KPT_THR).annotate(image, [person])
    # Person's left is image right here; colours follow the body's side, not the image's.
    assert _closest_color(image[_midpoint(person, 13, 15)]) == LEFT_COLOR  # left shin
    assert _closest_color(image[_midpoint(person, 14, 16)]) == RIGHT_COLOR  # right shin
    assert _closest_color(image[_midpoint(person, 11, 12)]) == CENTER_COLOR  # hips
    assert _closest_color(image[_midpoint(person, 5, 6)]) == CENTER_COLOR  # shoulders


def test_keypoints_below_threshold_are_not_drawn():
    image = np.zeros((480, 640, 3), np.uint8)
    person = make_person(320, 240, height=400)
    person.keypoint_scores[[13, 15]] = 0.1  # left knee and ankle unsure
    SkeletonAnnotator(kpt_thr=0.3).annotate(image, [person])
    y, x = _midpoint(person, 13, 15)
    assert image[y, x].max() == 0
    y, x = (int(round(v)) for v in person.keypoints[15][::-1])
    assert image[y, x].max() == 0
    assert image[_midpoint(person, 14, 16)].max() > 0


def test_openpose_style_uses_other_colours():
    person = make_person(320, 240, height=400)
    a, b = np.zeros((480, 640, 3), np.uint8), np.zeros((480, 640, 3), np.uint8)
    SkeletonAnnotator(style="mmpose", kpt_thr=KPT_THR).annotate(a, [person])
    SkeletonAnnotator(style="openpose", kpt_thr=KPT_THR).annotate(b, [person])
    assert b.any() and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown render style"):
        SkeletonAnnotator(style="cartoon", kpt_thr=KPT_THR)


def test_drawing_is_antialiased_and_scales_with_the_frame():
    def limb_width(size: int) -> int:
        """Inked pixels across the middle of the (vertical) left shin."""
        image = np.zeros((size, size, 3), np.uint8)
        person = make_person(size / 2, size / 2, height=size * 0.8)
        SkeletonAnnotator(kpt_thr=KPT_THR).annotate(image, [person])
        assert len(np.unique(image.max(axis=2))) > 10  # anti-aliased: many in-between levels
        row, column = _midpoint(person, 13, 15)
        band = image[row, column - 40 : column + 40].max(axis=1)
        return int((band > 127).sum())

    small, large = limb_width(600), limb_width(1800)
    assert small >= 1
    assert large >= 1.5 * small  # without scaling both would be equal


def test_renderer_draws_on_a_copy_with_boxes_ids_and_hud():
    frame = np.zeros((480, 640, 3), np.uint8)
    person = make_person(400, 260, height=300)
    person.track_id = 7
    hud = HudInfo(fps=24.5, stage_ms={"detect": 12.0, "pose": 20.0}, people=1, backend="cpu")
    out = Renderer(RenderOptions(), kpt_thr=KPT_THR).render(frame, [person], hud)
    assert not frame.any()  # the source frame is left alone
    assert out[10:60, 10:200].any()  # HUD panel top-left
    x1, y1 = person.bbox[:2].astype(int)
    assert out[y1 - 25 : y1, x1 : x1 + 30].any()  # "#7" label above the box
    bare = Renderer(
        RenderOptions(draw_hud=False, draw_boxes=False, draw_track_ids=False), kpt_thr=KPT_THR
    )
    assert not bare.render(frame, [person], hud)[10:60, 10:200].any()


def test_the_hud_moves_off_a_person_at_the_top_left_and_stays_put(data_dir) -> None:
    import cv2

    capture = cv2.VideoCapture(str(data_dir / "videos" / "intel_asl_walk_1s5.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    hud = HudInfo(fps=24.5, stage_ms={"detect": 12.0, "pose": 20.0}, people=1, backend="cpu")
    options = RenderOptions(draw_skeleton=False, draw_boxes=False, draw_track_ids=False)
    renderer = Renderer(options, kpt_thr=KPT_THR)
    top_left, top_right = (slice(10, 50), slice(10, 150)), (slice(10, 50), slice(490, 630))

    def panel_at(out: np.ndarray) -> tuple[bool, bool]:
        return (out[top_left] != frame[top_left]).any(), (out[top_right] != frame[top_right]).any()

    assert panel_at(renderer.render(frame, [], hud)) == (True, False)
    person = make_person(80, 200, height=380)  # head and shoulders under the panel
    assert person.bbox[1] < 20 and person.bbox[0] < 40
    assert panel_at(renderer.render(frame, [person], hud)) == (False, True)
    # once moved, it stays in its corner while that is clear: no hopping back and forth
    assert panel_at(renderer.render(frame, [], hud)) == (False, True)
