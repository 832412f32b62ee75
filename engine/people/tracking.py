"""Track identities across frames by keypoint similarity (OKS) and box overlap (IoU).

Each frame's people are matched to the existing tracks with an optimal assignment
(``scipy.optimize.linear_sum_assignment``) on a cost mixing OKS and IoU, computed against each
track's position *predicted* at the new timestamp (constant velocity), so two people crossing
keep their identities. A track that finds no match stays alive for ``max_lost_s`` seconds of
real time, so a person who is briefly occluded gets the same ID back. A person who matches no
track starts one only with a pose score of at least ``min_birth_score``; otherwise they are left
out of the frame's result (see :mod:`hfpose.engine.people.plausibility`: one weak frame starts no ID).
A new track is *tentative* until it has matched on ``confirm_frames`` frames in a row: it has no
ID, is not in the result and is dropped at its first miss, so a box that flickers onto a cone
for a frame or two uses up no ID and is never drawn (ByteTrack's and SORT's confirmation).
With ``evidence`` (:class:`hfpose.engine.people.plausibility.PersonEvidence`) it must also show a
person over its frames so far: a clear pose filling its box, a confident detection or a box that
moves. A cone, a rock or a bike rack that the detector finds on every frame therefore stays
tentative, matched but never given an ID, for as long as it is there; someone standing still
keeps the ID their walk in, or their clear pose, gave them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from hfpose.engine.people.plausibility import PersonEvidence, body_span, pose_score
from hfpose.engine.results import Person


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU matrix (A, B) of corner boxes (A,4) and (B,4)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def keypoint_oks(
    keypoints_a: np.ndarray,
    scores_a: np.ndarray,
    keypoints_b: np.ndarray,
    scores_b: np.ndarray,
    areas_b: np.ndarray,
    sigmas: Sequence[float],
    kpt_thr: float,
) -> np.ndarray:
    """OKS matrix (A, B) between people A and references B (COCO formula, B's box area).

    Only keypoints confident in both poses count; a pair with none in common scores 0.
    """
    ka = np.asarray(keypoints_a, dtype=np.float64)
    kb = np.asarray(keypoints_b, dtype=np.float64)
    if len(ka) == 0 or len(kb) == 0:
        return np.zeros((len(ka), len(kb)))
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2  # (K,)
    sq_dist = ((ka[:, None] - kb[None, :]) ** 2).sum(-1)  # (A, B, K)
    area = np.maximum(np.asarray(areas_b, dtype=np.float64), 1.0)[None, :, None]
    similarity = np.exp(-sq_dist / (2.0 * area * variances[None, None, :]))
    visible = (np.asarray(scores_a)[:, None, :] > kpt_thr) & (np.asarray(scores_b)[None] > kpt_thr)
    counts = visible.sum(-1)
    return np.where(counts > 0, (similarity * visible).sum(-1) / np.maximum(counts, 1), 0.0)


@dataclass
class _Track:
    track_id: int
    keypoints: np.ndarray
    scores: np.ndarray
    bbox: np.ndarray
    last_seen: float
    velocity_kpts: np.ndarray  # px/s per keypoint
    velocity_box: np.ndarray  # px/s per box corner coordinate
    hits: int = 1  # frames matched in a row while tentative
    # What the tentative track has shown of a person so far (PersonEvidence): sums over its
    # frames, and where its box started.
    pose_sum: float = 0.0
    span_sum: float = 0.0
    detection_sum: float = 0.0
    height_sum: float = 0.0
    origin: np.ndarray | None = None
    farthest: float = 0.0  # px, the box centre's farthest point from ``origin``

    def observe(self, person: Person) -> None:
        """Add one frame's evidence of a person (tentative tracks only)."""
        centre = (person.bbox[:2] + person.bbox[2:]) / 2.0
        if self.origin is None:
            self.origin = centre.astype(np.float64)
        self.farthest = max(self.farthest, float(np.linalg.norm(centre - self.origin)))
        self.pose_sum += pose_score(person)
        self.span_sum += body_span(person)
        self.detection_sum += float(person.bbox_score)
        self.height_sum += float(person.bbox[3] - person.bbox[1])

    def evidence_means(self) -> tuple[float, float, float, float]:
        """What it has shown so far, as :meth:`PersonEvidence.shown` takes it: the mean pose
        score, body span and detection score, and the farthest its box centre has gone, in
        mean box heights."""
        return (
            self.pose_sum / self.hits,
            self.span_sum / self.hits,
            self.detection_sum / self.hits,
            self.farthest / max(self.height_sum / self.hits, 1.0),
        )

    @property
    def confirmed(self) -> bool:
        return self.track_id > 0

    def predicted(self, timestamp: float, max_extrapolation_s: float) -> tuple:
        dt = min(max(timestamp - self.last_seen, 0.0), max_extrapolation_s)
        return self.keypoints + self.velocity_kpts * dt, self.bbox + self.velocity_box * dt


class Tracker:
    """Assigns stable ``track_id`` values to the people of successive frames.

    ``oks_weight`` balances keypoint similarity against box IoU (1 = keypoints only);
    pairs whose combined similarity is below ``min_similarity`` never match; an unmatched
    person with a pose score under ``min_birth_score`` gets no track and is left out; a new
    track gets its ID once matched on ``confirm_frames`` frames in a row (1: at once) and, with
    ``evidence``, once it has shown a person; only keypoints scoring over ``kpt_thr``
    (``PipelineConfig.kpt_thr``) are compared.
    """

    def __init__(
        self,
        sigmas: Sequence[float],
        max_lost_s: float = 1.0,
        oks_weight: float = 0.6,
        min_similarity: float = 0.2,
        *,
        kpt_thr: float,
        max_extrapolation_s: float = 0.5,
        min_birth_score: float = 0.0,
        confirm_frames: int = 1,
        evidence: PersonEvidence | None = None,
    ) -> None:
        self.sigmas = tuple(float(s) for s in sigmas)
        self.max_lost_s = float(max_lost_s)
        self.oks_weight = float(oks_weight)
        self.min_similarity = float(min_similarity)
        self.kpt_thr = float(kpt_thr)
        self.max_extrapolation_s = float(max_extrapolation_s)
        self.min_birth_score = float(min_birth_score)
        self.confirm_frames = max(1, int(confirm_frames))
        self.evidence = evidence
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track (after a seek); IDs keep increasing so none is reused."""
        self._tracks = []

    @property
    def active_track_ids(self) -> list[int]:
        """IDs of tracks alive now (seen recently or within their lost-time allowance)."""
        return [t.track_id for t in self._tracks if t.confirmed]

    def similarity(
        self, people: Sequence[Person], timestamp: float, tracks: Sequence[_Track] | None = None
    ) -> np.ndarray:
        """Similarity matrix (people, tracks) against the tracks' predicted poses (all tracks
        unless ``tracks`` is given)."""
        tracks = self._tracks if tracks is None else tracks
        if not people or not tracks:
            return np.zeros((len(people), len(tracks)))
        predictions = [t.predicted(timestamp, self.max_extrapolation_s) for t in tracks]
        track_kpts = np.stack([p[0] for p in predictions])
        track_boxes = np.stack([p[1] for p in predictions])
        track_scores = np.stack([t.scores for t in tracks])
        areas = (track_boxes[:, 2] - track_boxes[:, 0]) * (track_boxes[:, 3] - track_boxes[:, 1])
        kpts = np.stack([p.keypoints for p in people])
        scores = np.stack([p.keypoint_scores for p in people])
        boxes = np.stack([p.bbox for p in people])
        oks = keypoint_oks(kpts, scores, track_kpts, track_scores, areas, self.sigmas, self.kpt_thr)
        iou = box_iou(boxes, track_boxes)
        return self.oks_weight * oks + (1.0 - self.oks_weight) * iou

    def update(self, people: Sequence[Person], timestamp: float) -> list[Person]:
        """Set ``track_id`` on the people tracked (in place) and return them, in their order:
        those matching a confirmed track or confirming a tentative one, and, where tracks are
        confirmed at once, those strong enough to start one.

        A timestamp earlier than the last one (a seek backwards) starts over.
        """
        if self._tracks and timestamp < max(t.last_seen for t in self._tracks):
            self.reset()
        self._tracks = [t for t in self._tracks if timestamp - t.last_seen <= self.max_lost_s]
        confirmed = [t for t in self._tracks if t.confirmed]
        tentative = [t for t in self._tracks if not t.confirmed]
        # Confirmed tracks choose first: a tentative one never takes a known person's box.
        matches = self._match(people, range(len(people)), confirmed, timestamp)
        unmatched = [i for i in range(len(people)) if i not in matches]
        matches.update(self._match(people, unmatched, tentative, timestamp))
        tracked = []
        kept = {id(t) for t in matches.values()}
        for i, person in enumerate(people):
            track = matches.get(i)
            if track is None:
                if pose_score(person) < self.min_birth_score:
                    continue
                track = self._start(person, timestamp)
                kept.add(id(track))
            elif not track.confirmed:
                track.hits += 1
            if not track.confirmed:
                track.observe(person)
                if track.hits >= self.confirm_frames and self._shows_a_person(track):
                    track.track_id = self._next_id
                    self._next_id += 1
            if track.confirmed:
                person.track_id = track.track_id
                tracked.append(person)
        # A tentative track that missed this frame is dropped: only a run of frames confirms.
        self._tracks = [t for t in self._tracks if t.confirmed or id(t) in kept]
        return tracked

    def _match(
        self,
        people: Sequence[Person],
        candidates: Sequence[int],
        tracks: list[_Track],
        timestamp: float,
    ) -> dict[int, _Track]:
        """Optimal assignment of ``people[candidates]`` to ``tracks``, refreshing each track
        matched; returns person index -> track."""
        chosen = [people[i] for i in candidates]
        similarity = self.similarity(chosen, timestamp, tracks)
        matches: dict[int, _Track] = {}
        if similarity.size:
            rows, cols = linear_sum_assignment(-similarity)
            for row, col in zip(rows, cols):
                if similarity[row, col] < self.min_similarity:
                    continue
                self._refresh(tracks[col], chosen[row], timestamp)
                matches[candidates[row]] = tracks[col]
        return matches

    def _shows_a_person(self, track: _Track) -> bool:
        """Whether a tentative track has shown enough of a person (always, without evidence)."""
        if self.evidence is None:
            return True
        return self.evidence.shown(*track.evidence_means())

    def _start(self, person: Person, timestamp: float) -> _Track:
        """A tentative track (ID 0) from an unmatched person."""
        track = _Track(
            track_id=0,
            keypoints=person.keypoints.astype(np.float64),
            scores=person.keypoint_scores.astype(np.float64),
            bbox=person.bbox.astype(np.float64),
            last_seen=timestamp,
            velocity_kpts=np.zeros_like(person.keypoints, dtype=np.float64),
            velocity_box=np.zeros(4),
        )
        self._tracks.append(track)
        return track

    @staticmethod
    def _refresh(track: _Track, person: Person, timestamp: float) -> None:
        dt = timestamp - track.last_seen
        keypoints = person.keypoints.astype(np.float64)
        bbox = person.bbox.astype(np.float64)
        if dt > 1e-6:
            # Light smoothing of the velocity: one noisy frame should not fling the prediction.
            track.velocity_kpts = (
                0.5 * track.velocity_kpts + 0.5 * (keypoints - track.keypoints) / dt
            )
            track.velocity_box = 0.5 * track.velocity_box + 0.5 * (bbox - track.bbox) / dt
        track.keypoints = keypoints
        track.scores = person.keypoint_scores.astype(np.float64)
        track.bbox = bbox
        track.last_seen = timestamp
