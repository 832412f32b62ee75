"""Plot angles from a ``--save-angles`` CSV to a PNG, with the app's plotting library.

``python -m hfpose.app.plot_angles angles.csv --out knees.png [--track 1] [--angles left_knee right_knee]``

Runs offscreen; without ``--track`` it plots the track seen in the most rows. Missing values
(empty cells) leave gaps in the curves rather than being joined over.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from hfpose.app.platform_check import offscreen_unless_display

DEFAULT_ANGLES = ("left_knee", "right_knee", "left_hip", "right_hip")
COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4")


def read_track(path: Path, track: int | None) -> tuple[int, list[float], dict[str, list[float]]]:
    """The rows of one track (the most frequent one when ``track`` is None): its id, times
    and every angle column (NaN where empty)."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} has no rows")
    if track is None:
        track = int(Counter(row["track_id"] for row in rows).most_common(1)[0][0])
    mine = [row for row in rows if int(row["track_id"]) == track]
    if not mine:
        raise ValueError(f"{path} has no track {track}")
    names = [name for name in mine[0] if name not in ("frame", "time_s", "track_id")]
    times = [float(row["time_s"]) for row in mine]
    values = {n: [float(row[n]) if row[n] else math.nan for row in mine] for n in names}
    return track, times, values


def plot(
    path: Path, out: Path, track: int | None, angles: list[str], size: tuple[int, int]
) -> None:
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    track, times, values = read_track(path, track)
    unknown = [name for name in angles if name not in values]
    if unknown:
        raise ValueError(f"no column {', '.join(unknown)} in {path}")
    widget = pg.PlotWidget(background="w")
    widget.resize(*size)
    widget.setTitle(f"{path.name}: track #{track}", color="k")
    widget.setLabel("left", "angle", units="°")
    widget.setLabel("bottom", "time", units="s")
    widget.showGrid(x=True, y=True, alpha=0.3)
    widget.addLegend(offset=(5, 5))
    for i, name in enumerate(angles):
        pen = pg.mkPen(COLORS[i % len(COLORS)], width=2)
        widget.plot(np.array(times), np.array(values[name]), pen=pen, name=name, connect="finite")
    widget.show()
    app.processEvents()
    if not widget.grab().save(str(out), "PNG"):
        raise OSError(f"cannot write {out}")
    widget.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hfpose.app.plot_angles", description=__doc__)
    parser.add_argument("csv", type=Path, help="a file written by hfpose-video --save-angles")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--track", type=int, help="track ID (default: the one in most rows)")
    parser.add_argument("--angles", nargs="+", default=list(DEFAULT_ANGLES))
    parser.add_argument("--size", type=int, nargs=2, default=(900, 380), metavar=("W", "H"))
    args = parser.parse_args(argv)
    offscreen_unless_display()
    try:
        plot(args.csv, args.out, args.track, args.angles, tuple(args.size))
    except (OSError, ValueError, KeyError) as error:
        print(f"plot_angles: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
