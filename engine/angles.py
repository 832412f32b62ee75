"""Joint and segment angles from 2D keypoints: the numbers a coach or physiotherapist reads.

:data:`ANGLES` is the one table of definitions; the exports, the renderer, the app's plot and
the README read it. Each angle is made from up to four points (a keypoint, or the midpoint of
several) as the angle between two vectors ``u = B - A`` and ``v = D - C`` (joint angles) or the
direction of ``v`` alone (segments, trunk lean), in image coordinates (x right, y down), in
degrees. Conventions, as Sports2D documents them (its ISB-derived sagittal conventions):

- joint flexion: 0 when the two segments are aligned (a straight knee or elbow), growing as
  the joint bends; the hip is 0 when the trunk and thigh are aligned; the shoulder is 0 when
  the upper arm lies along the trunk and 180 straight overhead; the ankle is 0 when the foot
  is at a right angle to the shank, positive in dorsiflexion.
- segment angles: anticlockwise on screen from the image's horizontal pointing right, in
  (-180, 180]; limbs point from proximal to distal (thigh hip->knee, shank knee->ankle, upper
  arm shoulder->elbow, forearm elbow->wrist: a hanging limb reads -90), the trunk from
  mid-hip to mid-shoulder (upright: 90).
- trunk lean: mid-hip -> mid-shoulder against the image's vertical, positive when the
  shoulders lean to the image's right.

Where this differs from Sports2D: joint angles are unsigned (0 to 180): a single 2D view does
not say to which side a joint bends without knowing which way the person faces, so
hyperextension reads as a small flexion instead of a negative one, and a mirrored video gives
the same joint angles. Everything is 2D and projected: angles are true only for a body moving
in a plane parallel to the image.

An angle is NaN where any keypoint it uses is at or under the keypoint threshold (the renderer
hides those too) or where two of its points coincide: a missing value, never a made-up one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from hfpose.engine.results import Person

# What each kind of angle computes from the vectors u and v (degrees).
JOINT_FLEXION = "flexion"  # 180 - the angle between u and v (0: segments aligned)
JOINT_OPENING = "opening"  # the angle between u and v (0: segments together)
FOOT = "foot"  # 90 - the angle between u (shank) and v (foot)
SEGMENT = "segment"  # v's direction, anticlockwise from the image's horizontal
LEAN = "lean"  # v's direction from the image's vertical, positive towards the right

Point = tuple[str, ...]  # keypoint names whose mean is the point


@dataclass(frozen=True)
class AngleDefinition:
    """One angle: its name, how it is computed, where it is drawn, and its range."""

    name: str
    kind: str
    points: tuple[Point, Point, Point, Point]  # A, B, C, D: u = B - A, v = D - C
    anchor: Point  # where the value is drawn on the video
    low: float  # the range of values, degrees
    high: float
    meaning: str  # one line for the docs and tooltips

    @property
    def keypoints(self) -> frozenset[str]:
        return frozenset(name for point in self.points for name in point)


def _side_angles(side: str) -> list[AngleDefinition]:
    s = side + "_"
    hip, knee, ankle = (s + "hip",), (s + "knee",), (s + "ankle",)
    shoulder, elbow, wrist = (s + "shoulder",), (s + "elbow",), (s + "wrist",)
    heel, toe = (s + "heel",), (s + "big_toe",)
    return [
        AngleDefinition(s + "ankle", FOOT, (ankle, knee, heel, toe), ankle, -90, 90,
                        "90 - angle(ankle->knee, heel->big toe): 0 foot square to the shank, + dorsiflexion"),
        AngleDefinition(s + "knee", JOINT_FLEXION, (knee, hip, knee, ankle), knee, 0, 180,
                        "flexion, hip-knee-ankle: 0 straight leg"),
        AngleDefinition(s + "hip", JOINT_FLEXION, (hip, shoulder, hip, knee), hip, 0, 180,
                        "flexion, shoulder-hip-knee: 0 trunk and thigh aligned"),
        AngleDefinition(s + "shoulder", JOINT_OPENING, (shoulder, hip, shoulder, elbow), shoulder, 0, 180,
                        "elbow-shoulder-hip: 0 arm along the trunk, 180 straight overhead"),
        AngleDefinition(s + "elbow", JOINT_FLEXION, (elbow, shoulder, elbow, wrist), elbow, 0, 180,
                        "flexion, shoulder-elbow-wrist: 0 straight arm"),
    ]  # fmt: skip


def _segment(name: str, start: Point, end: Point) -> AngleDefinition:
    return AngleDefinition(name, SEGMENT, (start, start, start, end), start, -180, 180,
                           f"{' -> '.join(('+'.join(start), '+'.join(end)))}, anticlockwise from horizontal")  # fmt: skip


_HIPS: Point = ("left_hip", "right_hip")
_SHOULDERS: Point = ("left_shoulder", "right_shoulder")

ANGLES: tuple[AngleDefinition, ...] = (
    *_side_angles("left"),
    *_side_angles("right"),
    AngleDefinition("trunk_lean", LEAN, (_HIPS, _HIPS, _HIPS, _SHOULDERS), _SHOULDERS, -180, 180,
                    "mid-hip -> mid-shoulder against the vertical: + leaning to the image's right"),
    *(
        _segment(f"{side}_{segment}", (f"{side}_{start}",), (f"{side}_{end}",))
        for side in ("left", "right")
        for segment, start, end in (
            ("thigh", "hip", "knee"),
            ("shank", "knee", "ankle"),
            ("upper_arm", "shoulder", "elbow"),
            ("forearm", "elbow", "wrist"),
        )
    ),
    _segment("trunk", _HIPS, _SHOULDERS),
)  # fmt: skip

ANGLE_BY_NAME = {a.name: a for a in ANGLES}


@dataclass(frozen=True)
class AngleTable:
    """The angles a skeleton's keypoints allow, compiled to index arrays for one dataset."""

    definitions: tuple[AngleDefinition, ...]
    point_weights: np.ndarray  # (P, K): each point as weights over the keypoints
    corners: np.ndarray  # (N_angles, 4): A, B, C, D as point indices
    uses: np.ndarray  # (N_angles, K) bool: the keypoints each angle needs
    anchors: np.ndarray  # (N_angles,) point index where each value is drawn
    kinds: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.definitions)


@cache
def angle_table(keypoint_names: tuple[str, ...]) -> AngleTable:
    """The angles of :data:`ANGLES` whose keypoints all exist in ``keypoint_names`` (COCO-17
    has no feet: no ankle angle), compiled once per skeleton."""
    index = {name: k for k, name in enumerate(keypoint_names)}
    available = tuple(d for d in ANGLES if d.keypoints <= index.keys())
    points: dict[Point, int] = {}
    for definition in available:
        for point in (*definition.points, definition.anchor):
            points.setdefault(point, len(points))
    weights = np.zeros((len(points), len(keypoint_names)), np.float64)
    for point, row in points.items():
        for name in point:
            weights[row, index[name]] = 1.0 / len(point)
    uses = np.zeros((len(available), len(keypoint_names)), bool)
    for row, definition in enumerate(available):
        uses[row, [index[name] for name in definition.keypoints]] = True
    corners = np.array([[points[p] for p in d.points] for d in available], np.intp).reshape(-1, 4)
    anchors = np.array([points[d.anchor] for d in available], np.intp)
    kinds = tuple(d.kind for d in available)
    return AngleTable(available, weights, corners, uses, anchors, kinds)


def compute_angles(
    keypoints: np.ndarray, scores: np.ndarray, table: AngleTable, kpt_thr: float
) -> np.ndarray:
    """Angles in degrees, shape (N, len(table.definitions)), of N people's keypoints (N, K, 2)
    with scores (N, K); NaN where a keypoint used is at or under ``kpt_thr``."""
    pts = np.einsum("pk,nkc->npc", table.point_weights, keypoints.astype(np.float64))
    a, b, c, d = (pts[:, table.corners[:, i]] for i in range(4))
    u, v = b - a, d - c
    cross = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    dot = (u * v).sum(-1)
    between = np.degrees(np.arctan2(np.abs(cross), dot))
    # y points down in images: anticlockwise on screen is towards -y
    direction = np.degrees(np.arctan2(-v[..., 1], v[..., 0]))
    lean = np.degrees(np.arctan2(v[..., 0], -v[..., 1]))
    kinds = np.array(table.kinds)
    out = np.select(
        [kinds == JOINT_FLEXION, kinds == JOINT_OPENING, kinds == FOOT, kinds == SEGMENT],
        [180.0 - between, between, 90.0 - between, direction],
        lean,
    )
    # -180 and 180 are one direction: report it once, as 180
    out = np.where(out <= -180.0, out + 360.0, out)
    hidden = ~(scores > kpt_thr)
    missing = (table.uses[None] & hidden[:, None, :]).any(-1)
    is_joint = np.isin(kinds, (JOINT_FLEXION, JOINT_OPENING, FOOT))
    degenerate = (np.linalg.norm(v, axis=-1) == 0) | (is_joint & (np.linalg.norm(u, axis=-1) == 0))
    return np.where(missing | degenerate, np.nan, out)


def attach_angles(
    people: Sequence[Person], keypoint_names: tuple[str, ...], kpt_thr: float
) -> None:
    """Set each person's ``angles`` (name -> degrees, NaN where missing)."""
    if not people:
        return
    table = angle_table(keypoint_names)
    keypoints = np.stack([p.keypoints for p in people])
    scores = np.stack([p.keypoint_scores for p in people])
    values = compute_angles(keypoints, scores, table, kpt_thr)
    for person, row in zip(people, values.tolist()):
        person.angles = dict(zip(table.names, row))


def definitions_markdown() -> str:
    """The table of definitions as Markdown (the README shows this; a test keeps them equal)."""
    rows = ["| angle | kind | range (°) | definition |", "|---|---|---|---|"]
    for d in ANGLES:
        rows.append(f"| `{d.name}` | {d.kind} | {d.low:g} to {d.high:g} | {d.meaning} |")
    return "\n".join(rows)
