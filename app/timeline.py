"""The timeline: a time ruler with zoom and scroll, the playhead, a thumbnail strip, one lane per
person (presence bars, thumbnail, editable name) and one per dub track (waveform, speech shaded,
drag to move, drag a clip edge to trim), and assignments drawn as coloured links between a track and a person.

Custom painted. It never edits the project itself: it emits intents (``offset_drag``, ``trim_drag``,
``assign_requested``, ``rename_requested``) that the main window turns into engine commands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QLineEdit, QScrollBar, QSizePolicy, QVBoxLayout, QWidget

from app.document import Document
from app.session import Session

HEADER_W = 200
RULER_H = 26
THUMB_H = 42
SECTION_H = 20
PERSON_H = 50
TRACK_H = 56
MIN_PX_PER_S = 2.0
MAX_PX_PER_S = 2000.0
TRIM_GRAB_PX = 5  # how near a clip's edge a press starts trimming instead of moving the track
MIN_TRIMMED_S = 0.05  # the shortest a track can be trimmed to

BG = QColor("#1b1f24")
LANE_BG = QColor("#20252c")
LANE_ALT = QColor("#23292f")
HEADER_BG = QColor("#22272e")
GRID = QColor("#2c333d")
TEXT = QColor("#d8dee9")
DIM = QColor("#8a94a3")
PLAYHEAD = QColor("#ff5f56")
SPEECH = QColor(127, 199, 127, 60)
PRESENCE = QColor("#5b8fc7")

TRACK_COLOURS = ["#e0a84f", "#c678dd", "#56b6c2", "#98c379", "#e06c75", "#61afef", "#d19a66"]


def track_colour(index: int) -> QColor:
    return QColor(TRACK_COLOURS[index % len(TRACK_COLOURS)])


@dataclass
class Lane:
    kind: str  # "ruler" | "thumbs" | "section" | "person" | "track" | "placeholder"
    top: int
    height: int
    key: str = ""  # identity id / track id / section title
    index: int = 0

    @property
    def rect_y(self) -> tuple[int, int]:
        return self.top, self.top + self.height


def nice_step(px_per_s: float, min_px: float = 80.0) -> float:
    """The smallest 'round' time step (1, 2, 5 x 10^n seconds) that is at least ``min_px`` wide."""
    raw = min_px / max(px_per_s, 1e-9)
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        step = m * 10**exp
        if step >= raw:
            return step
    return 10 ** (exp + 1)


def format_time(t: float, step: float = 1.0) -> str:
    sign = "-" if t < 0 else ""
    t = abs(t)
    if step < 1:
        m, s = divmod(t, 60)
        return f"{sign}{int(m)}:{s:05.2f}"
    m, s = divmod(round(t), 60)
    return f"{sign}{m}:{s:02d}"


def waveform_image(peaks, px_per_s: float, t0: float, t_end: float | None, width: int, height: int,
                   colour: QColor) -> QImage:
    """The waveform from ``t0`` (file time) at ``px_per_s``, one column per pixel, as an image: drawn
    with numpy in one pass and cached by the canvas, so scrubbing repaints only blit it."""
    bucket = peaks.level_for(peaks.sample_rate / px_per_s)
    rows = peaks.levels[bucket]
    rate = peaks.sample_rate / bucket
    n = len(rows)
    img = np.zeros((max(1, height), max(1, width), 4), np.uint8)
    if n and width > 0 and height > 0:
        t = t0 + np.arange(width + 1) / px_per_s
        edges = np.floor(t * rate).astype(np.int64)
        if t_end is not None:
            edges = np.where(t <= t_end, edges, -1)
        valid = (edges[:-1] >= 0) & (edges[:-1] < n)
        if valid.any():
            cols = np.nonzero(valid)[0]
            starts = np.clip(edges[cols], 0, n - 1)
            padded = np.vstack([rows, rows[-1:]])
            last = int(min(n, max(starts[-1] + 1, edges[cols[-1] + 1])))
            lo = np.minimum.reduceat(padded[:, 0], np.append(starts, last))[:-1]
            hi = np.maximum.reduceat(padded[:, 1], np.append(starts, last))[:-1]
            # each column reduces from its first bucket up to the next column's first bucket
            mid = (height - 1) / 2
            top = np.clip(np.round(mid - hi * mid), 0, height - 1).astype(np.int64)
            bottom = np.clip(np.round(mid - lo * mid), 0, height - 1).astype(np.int64)
            ys = np.arange(height)[:, None]
            mask = (ys >= top[None, :]) & (ys <= bottom[None, :])
            sub = img[:, cols]
            sub[mask] = (colour.blue(), colour.green(), colour.red(), 210)
            img[:, cols] = sub
    h, w = img.shape[:2]
    return QImage(img.data, w, h, 4 * w, QImage.Format.Format_ARGB32).copy()


class TimelineCanvas(QWidget):
    playhead_moved = Signal(float)  # seconds, while scrubbing
    selection_changed = Signal(str, str)  # kind ("person" | "track" | "assignment" | ""), id
    offset_drag = Signal(str, float, bool)  # track id, new offset, finished
    trim_drag = Signal(str, float, object, float)  # track id, trim in, trim out (None: end of file), offset; on release
    assign_requested = Signal(str, str)  # track id, identity id
    rename_requested = Signal(str, str)  # identity id, new name
    view_changed = Signal()

    def __init__(self, doc: Document, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.session = session
        self.px_per_s = 40.0
        self.view_start = 0.0
        self.playhead = 0.0
        self.selected: tuple[str, str] = ("", "")
        self.lanes: list[Lane] = []
        self._drag: dict | None = None
        self._hover_lane: Lane | None = None
        self._editor: QLineEdit | None = None
        self._wave_cache: dict[int, tuple] = {}
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.small = QFont(self.font())
        self.small.setPointSizeF(max(7.0, self.font().pointSizeF() - 1.5))
        self.bold = QFont(self.font())
        self.bold.setBold(True)
        doc.changed.connect(self.relayout)
        session.updated.connect(self.relayout)
        self.relayout()

    # --- geometry -------------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        d = self.session.duration_s
        for track in self.doc.project.tracks:
            tv = self.session.tracks.get(track.id)
            if tv and tv.duration_s:
                d = max(d, track.offset_s + (tv.duration_s - track.trim_in_s))
        return max(d, 1.0)

    def x_of(self, t: float) -> float:
        return HEADER_W + (t - self.view_start) * self.px_per_s

    def t_of(self, x: float) -> float:
        return self.view_start + (x - HEADER_W) / self.px_per_s

    @property
    def visible_s(self) -> float:
        return max(0.0, (self.width() - HEADER_W) / self.px_per_s)

    def relayout(self) -> None:
        lanes = [Lane("ruler", 0, RULER_H), Lane("thumbs", RULER_H, THUMB_H)]
        y = RULER_H + THUMB_H
        lanes.append(Lane("section", y, SECTION_H, "People"))
        y += SECTION_H
        idents = self.doc.project.identities
        if idents:
            for i, ident in enumerate(idents):
                lanes.append(Lane("person", y, PERSON_H, ident.id, i))
                y += PERSON_H
        else:
            lanes.append(Lane("placeholder", y, PERSON_H, "people"))
            y += PERSON_H
        lanes.append(Lane("section", y, SECTION_H, "Dub tracks"))
        y += SECTION_H
        tracks = self.doc.project.tracks
        if tracks:
            for i, track in enumerate(tracks):
                lanes.append(Lane("track", y, TRACK_H, track.id, i))
                y += TRACK_H
        else:
            lanes.append(Lane("placeholder", y, TRACK_H, "tracks"))
            y += TRACK_H
        self.lanes = lanes
        self.setMinimumHeight(y + 4)
        self.view_changed.emit()
        self.update()

    def lane_at(self, y: float) -> Lane | None:
        for lane in self.lanes:
            if lane.top <= y < lane.top + lane.height:
                return lane
        return None

    def lane_for(self, kind: str, key: str) -> Lane | None:
        for lane in self.lanes:
            if lane.kind == kind and lane.key == key:
                return lane
        return None

    def sizeHint(self) -> QSize:
        return QSize(900, self.minimumHeight())

    # --- view ---------------------------------------------------------------------------------
    def set_zoom(self, px_per_s: float, anchor_t: float | None = None) -> None:
        px_per_s = min(MAX_PX_PER_S, max(MIN_PX_PER_S, px_per_s))
        if anchor_t is None:
            anchor_t = self.playhead
        anchor_x = self.x_of(anchor_t)
        self.px_per_s = px_per_s
        self.view_start = anchor_t - (anchor_x - HEADER_W) / px_per_s
        self.clamp_view()

    def zoom_to_fit(self) -> None:
        width = max(100, self.width() - HEADER_W - 20)
        self.px_per_s = min(MAX_PX_PER_S, max(MIN_PX_PER_S, width / self.duration))
        self.view_start = 0.0
        self.clamp_view()

    def clamp_view(self) -> None:
        max_start = max(0.0, self.duration - self.visible_s * 0.5)
        self.view_start = min(max(self.view_start, -2.0 if self.doc.project.tracks else 0.0), max_start)
        self.view_changed.emit()
        self.update()

    def set_playhead(self, t: float, ensure_visible: bool = True) -> None:
        self.playhead = max(0.0, t)
        if ensure_visible and self.visible_s > 0:
            if not (self.view_start <= self.playhead <= self.view_start + self.visible_s):
                self.view_start = self.playhead - self.visible_s * 0.1
                self.clamp_view()
        self.update()

    # --- painting -----------------------------------------------------------------------------
    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.fillRect(self.rect(), BG)
        w = self.width()
        for lane in self.lanes:
            body = QRect(HEADER_W, lane.top, w - HEADER_W, lane.height)
            head = QRect(0, lane.top, HEADER_W, lane.height)
            if lane.kind == "ruler":
                self._paint_ruler(p, body, head)
            elif lane.kind == "thumbs":
                self._paint_thumbs(p, body, head)
            elif lane.kind == "section":
                p.fillRect(QRect(0, lane.top, w, lane.height), QColor("#181b20"))
                p.setPen(DIM)
                p.setFont(self.small)
                p.drawText(QRect(10, lane.top, w, lane.height), Qt.AlignmentFlag.AlignVCenter, lane.key.upper())
            elif lane.kind == "person":
                self._paint_person(p, lane, body, head)
            elif lane.kind == "track":
                self._paint_track(p, lane, body, head)
            elif lane.kind == "placeholder":
                self._paint_placeholder(p, lane, body, head)
            p.setPen(QPen(GRID, 1))
            p.drawLine(0, lane.top + lane.height - 1, w, lane.top + lane.height - 1)
        self._paint_links(p)
        p.setPen(QPen(GRID, 1))
        p.drawLine(HEADER_W, 0, HEADER_W, self.height())
        # playhead
        x = self.x_of(self.playhead)
        if x >= HEADER_W:
            p.setPen(QPen(PLAYHEAD, 1.5))
            p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
            tri = QPainterPath()
            tri.moveTo(x - 6, 0)
            tri.lineTo(x + 6, 0)
            tri.lineTo(x, 9)
            tri.closeSubpath()
            p.fillPath(tri, PLAYHEAD)
        # drag feedback
        if self._drag and self._drag.get("kind") == "assign" and self._drag.get("pos") is not None:
            pos: QPoint = self._drag["pos"]
            colour = track_colour(self._drag["index"])
            p.setPen(QPen(colour, 2, Qt.PenStyle.DashLine))
            p.drawLine(self._drag["origin"], pos)
            target = self.lane_at(pos.y())
            if target is not None and target.kind == "person":
                p.setPen(QPen(colour, 2))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRect(QRect(1, target.top + 1, w - 2, target.height - 3))
        p.end()

    def _paint_ruler(self, p: QPainter, body: QRect, head: QRect) -> None:
        p.fillRect(head, HEADER_BG)
        p.fillRect(body, QColor("#1f242b"))
        p.setPen(TEXT)
        p.setFont(self.small)
        p.drawText(head.adjusted(10, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter, format_time(self.playhead, 0.1))
        step = nice_step(self.px_per_s)
        minor = step / 5
        t0 = math.floor(self.view_start / minor) * minor
        t = t0
        end = self.view_start + self.visible_s
        while t <= end:
            x = self.x_of(t)
            if x >= HEADER_W:
                major = abs(t / step - round(t / step)) < 1e-6
                p.setPen(QPen(DIM if major else GRID, 1))
                p.drawLine(QPointF(x, body.bottom() - (10 if major else 5)), QPointF(x, body.bottom()))
                if major:
                    p.setPen(DIM)
                    p.drawText(QPointF(x + 3, body.top() + 12), format_time(t, step))
            t += minor
        dur = self.session.duration_s
        if dur > 0:
            xe = self.x_of(dur)
            if HEADER_W <= xe <= body.right():
                p.setPen(QPen(QColor("#6b7380"), 1, Qt.PenStyle.DotLine))
                p.drawLine(QPointF(xe, body.top()), QPointF(xe, self.height()))

    def _paint_thumbs(self, p: QPainter, body: QRect, head: QRect) -> None:
        p.fillRect(head, HEADER_BG)
        p.fillRect(body, QColor("#15181c"))
        p.setPen(DIM)
        p.setFont(self.small)
        video = self.doc.project.video
        label = video.path.name if video else "No video"
        fm = QFontMetrics(self.small)
        p.drawText(head.adjusted(10, 4, -6, -4), Qt.AlignmentFlag.AlignTop, fm.elidedText(label, Qt.TextElideMode.ElideMiddle, HEADER_W - 16))
        if self.session.video:
            v = self.session.video
            p.drawText(head.adjusted(10, 4, -6, -4), Qt.AlignmentFlag.AlignBottom, f"{v.width}×{v.height}  {v.fps:.3g} fps")
        elif self.session.video_status:
            p.drawText(head.adjusted(10, 4, -6, -4), Qt.AlignmentFlag.AlignBottom, self.session.video_status)
        thumbs = self.session.thumbnails
        if not thumbs:
            if video is not None:
                p.drawText(body.adjusted(10, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, self.session.video_status or "Loading thumbnails…")
            return
        p.save()
        p.setClipRect(body)
        h = body.height() - 4
        # Draw each thumbnail at its time, skipping ones that would overlap the previous one.
        last_right = -1e9
        for t, img in thumbs:
            x = self.x_of(t)
            tw = img.width() * h / max(1, img.height())
            if x + tw < HEADER_W or x > body.right():
                continue
            if x < last_right:
                continue
            p.drawImage(QRectF(x, body.top() + 2, tw, h), img)
            last_right = x + tw + 1
        p.restore()

    def _paint_header_base(self, p: QPainter, lane: Lane, head: QRect, body: QRect, selected: bool) -> None:
        p.fillRect(head, QColor("#283040") if selected else HEADER_BG)
        p.fillRect(body, LANE_ALT if lane.index % 2 else LANE_BG)
        if selected:
            p.fillRect(QRect(0, lane.top, 3, lane.height), QColor("#4f9de0"))

    def _paint_person(self, p: QPainter, lane: Lane, body: QRect, head: QRect) -> None:
        ident = next((i for i in self.doc.project.identities if i.id == lane.key), None)
        if ident is None:
            return
        self._paint_header_base(p, lane, head, body, self.selected == ("person", ident.id))
        view = self.session.people.get(ident.id)
        thumb_rect = QRect(8, lane.top + 6, lane.height - 12, lane.height - 12)
        if view is not None and view.thumbnail is not None:
            p.save()
            path = QPainterPath()
            path.addRoundedRect(QRectF(thumb_rect), 5, 5)
            p.setClipPath(path)
            p.drawImage(QRectF(thumb_rect), view.thumbnail)
            p.restore()
        else:
            p.setPen(QPen(GRID, 1))
            p.setBrush(QColor("#2a313b"))
            p.drawRoundedRect(thumb_rect, 5, 5)
        p.setBrush(Qt.BrushStyle.NoBrush)
        tx = thumb_rect.right() + 10
        p.setPen(TEXT)
        p.setFont(self.bold)
        fm = QFontMetrics(self.bold)
        name = ident.name or ident.id
        p.drawText(QRect(tx, lane.top + 6, HEADER_W - tx - 6, 20), Qt.AlignmentFlag.AlignVCenter, fm.elidedText(name, Qt.TextElideMode.ElideRight, HEADER_W - tx - 6))
        p.setFont(self.small)
        p.setPen(DIM)
        n = len([a for a in self.doc.project.assignments if a.identity_id == ident.id])
        sub = f"{n} assignment{'s' if n != 1 else ''}" if n else "drop a track here"
        p.drawText(QRect(tx, lane.top + 26, HEADER_W - tx - 6, 18), Qt.AlignmentFlag.AlignVCenter, sub)
        # presence bars
        if view is not None:
            p.save()
            p.setClipRect(body)
            bar_h = 8
            y = lane.top + lane.height - bar_h - 6
            for s, e in view.ranges:
                x0, x1 = self.x_of(s), self.x_of(e)
                if x1 < HEADER_W or x0 > body.right():
                    continue
                p.fillRect(QRectF(x0, y, max(1.5, x1 - x0), bar_h), PRESENCE)
            p.restore()
        # assignments of this person
        p.save()
        p.setClipRect(body)
        for a in self.doc.project.assignments:
            if a.identity_id != ident.id:
                continue
            try:
                tindex = [t.id for t in self.doc.project.tracks].index(a.track_id)
                tname = self.doc.project.tracks[tindex].display_name
            except ValueError:
                continue
            colour = track_colour(tindex)
            x0, x1 = self.x_of(a.start_s), self.x_of(a.end_s)
            rect = QRectF(x0, lane.top + 6, max(2.0, x1 - x0), 22)
            fill = QColor(colour)
            fill.setAlpha(70 if self.selected != ("assignment", a.id) else 130)
            p.setPen(QPen(colour, 2 if self.selected == ("assignment", a.id) else 1))
            p.setBrush(fill)
            p.drawRoundedRect(rect, 4, 4)
            p.setPen(TEXT)
            p.setFont(self.small)
            label = QFontMetrics(self.small).elidedText(f"♪ {tname}", Qt.TextElideMode.ElideRight, int(max(0, rect.width() - 8)))
            p.drawText(rect.adjusted(6, 0, -2, 0), Qt.AlignmentFlag.AlignVCenter, label)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.restore()

    def _paint_track(self, p: QPainter, lane: Lane, body: QRect, head: QRect) -> None:
        track = next((t for t in self.doc.project.tracks if t.id == lane.key), None)
        if track is None:
            return
        self._paint_header_base(p, lane, head, body, self.selected == ("track", track.id))
        colour = track_colour(lane.index)
        # drag handle / colour chip: drag it onto a person to assign
        chip = QRect(8, lane.top + 8, 14, lane.height - 16)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawRoundedRect(chip, 3, 3)
        p.setPen(QPen(QColor(0, 0, 0, 120), 1))
        for k in range(3):
            yy = chip.center().y() - 6 + k * 6
            p.drawLine(chip.left() + 4, yy, chip.right() - 3, yy)
        p.setBrush(Qt.BrushStyle.NoBrush)
        tx = chip.right() + 10
        p.setPen(TEXT)
        p.setFont(self.bold)
        fm = QFontMetrics(self.bold)
        p.drawText(QRect(tx, lane.top + 6, HEADER_W - tx - 6, 20), Qt.AlignmentFlag.AlignVCenter, fm.elidedText(track.display_name, Qt.TextElideMode.ElideMiddle, HEADER_W - tx - 6))
        p.setFont(self.small)
        p.setPen(DIM)
        view = self.session.tracks.get(track.id)
        info = f"{track.language}  {track.gain_db:+.1f} dB  {track.offset_s:+.2f} s"
        p.drawText(QRect(tx, lane.top + 24, HEADER_W - tx - 6, 16), Qt.AlignmentFlag.AlignVCenter, info)
        if view is not None and (view.error or view.status):
            p.setPen(QColor("#e0a84f") if view.error else DIM)
            p.drawText(QRect(tx, lane.top + 40, HEADER_W - tx - 6, 16), Qt.AlignmentFlag.AlignVCenter,
                       QFontMetrics(self.small).elidedText(view.error or view.status, Qt.TextElideMode.ElideRight, HEADER_W - tx - 6))
        # clip body (while its edge is dragged: the trim it would get on release)
        p.save()
        p.setClipRect(body)
        dur = view.duration_s if view and view.duration_s else None
        trim_in, trim_out, start_t = track.trim_in_s, track.trim_out_s, track.offset_s
        drag = self._drag
        if drag is not None and drag.get("kind") == "trim" and drag["track"] == track.id:
            trim_in, trim_out, start_t = drag["trim_in"], drag["trim_out"], drag["offset"]
        if trim_out is None:
            trim_out = dur
        length = (trim_out - trim_in) if trim_out is not None else max(1.0, self.visible_s)
        x0, x1 = self.x_of(start_t), self.x_of(start_t + length)
        clip = QRectF(x0, lane.top + 4, max(2.0, x1 - x0), lane.height - 8)
        bg = QColor(colour)
        bg.setAlpha(38)
        p.setPen(QPen(colour, 1))
        p.setBrush(bg)
        p.drawRoundedRect(clip, 4, 4)
        p.setBrush(Qt.BrushStyle.NoBrush)
        if view is not None:
            # speech segments (file time -> video time)
            for s, e in view.segments:
                if e <= trim_in or (trim_out is not None and s >= trim_out):
                    continue
                vs = start_t + max(s, trim_in) - trim_in
                ve = start_t + (min(e, trim_out) if trim_out is not None else e) - trim_in
                p.fillRect(QRectF(self.x_of(vs), clip.top() + 1, max(1.0, (ve - vs) * self.px_per_s), clip.height() - 2), SPEECH)
            if view.peaks is not None:
                self._paint_waveform(p, clip, view, trim_in, trim_out, colour)
        p.restore()

    def _paint_waveform(self, p: QPainter, clip: QRectF, view, trim_in: float, trim_out: float | None, colour: QColor) -> None:
        left = int(max(clip.left(), HEADER_W))
        right = int(min(clip.right(), self.width()))
        if right <= left:
            return
        key = (id(view.peaks), self.px_per_s, clip.left(), left, right, int(clip.height()), trim_in, trim_out, colour.rgba())
        img = self._wave_cache.get(id(view))
        if img is None or img[0] != key:
            img = (key, waveform_image(view.peaks, self.px_per_s, trim_in + (left - clip.left()) / self.px_per_s,
                                       trim_out, right - left, int(clip.height()) - 6, colour))
            self._wave_cache[id(view)] = img
        p.drawImage(QPointF(left, clip.top() + 3), img[1])

    def _paint_placeholder(self, p: QPainter, lane: Lane, body: QRect, head: QRect) -> None:
        p.fillRect(head, HEADER_BG)
        p.fillRect(body, LANE_BG)
        p.setFont(self.small)
        p.setPen(DIM)
        if lane.key == "people":
            s = self.session
            if s.analysis_progress is not None:
                p.drawText(head.adjusted(10, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter, "Finding people…")
                bar = QRectF(HEADER_W + 16, lane.top + lane.height / 2 - 5, min(360, body.width() - 32), 10)
                p.setPen(QPen(GRID, 1))
                p.setBrush(QColor("#14181c"))
                p.drawRoundedRect(bar, 4, 4)
                p.setBrush(QColor("#4f9de0"))
                p.setPen(Qt.PenStyle.NoPen)
                p.drawRoundedRect(QRectF(bar.left(), bar.top(), bar.width() * s.analysis_progress, bar.height()), 4, 4)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.setPen(TEXT)
                p.drawText(QPointF(bar.right() + 10, bar.bottom()), f"{s.analysis_progress * 100:.0f}%  {s.analysis_status}")
            else:
                p.drawText(head.adjusted(10, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter, "No people yet")
                msg = s.analysis_status or ("Open a video to find the people in it." if self.doc.project.video is None else "")
                p.drawText(body.adjusted(16, 0, -8, 0), Qt.AlignmentFlag.AlignVCenter, msg)
        else:
            p.drawText(head.adjusted(10, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter, "No dub tracks")
            p.drawText(body.adjusted(16, 0, -8, 0), Qt.AlignmentFlag.AlignVCenter,
                       "Drop dubbed audio files here, or use File ▸ Add dub track… (Ctrl+T)")

    def _paint_links(self, p: QPainter) -> None:
        """Each assignment links its track lane to its person lane with a line in the track's colour."""
        tracks = [t.id for t in self.doc.project.tracks]
        p.save()
        p.setClipRect(QRect(HEADER_W, 0, self.width() - HEADER_W, self.height()))
        for a in self.doc.project.assignments:
            pl = self.lane_for("person", a.identity_id)
            tl = self.lane_for("track", a.track_id)
            if pl is None or tl is None or a.track_id not in tracks:
                continue
            colour = track_colour(tracks.index(a.track_id))
            colour.setAlpha(170)
            pen = QPen(colour, 1.5, Qt.PenStyle.DashLine)
            p.setPen(pen)
            y0 = pl.top + 28
            y1 = tl.top + 4
            for t in (a.start_s, a.end_s):
                x = self.x_of(t)
                p.drawLine(QPointF(x, y0), QPointF(x, y1))
        p.restore()

    # --- interaction --------------------------------------------------------------------------
    def _assignment_at(self, pos: QPointF) -> str | None:
        lane = self.lane_at(pos.y())
        if lane is None or lane.kind != "person" or pos.x() < HEADER_W:
            return None
        t = self.t_of(pos.x())
        if not lane.top + 6 <= pos.y() <= lane.top + 28:
            return None
        for a in self.doc.project.assignments:
            if a.identity_id == lane.key and a.start_s <= t <= a.end_s:
                return a.id
        return None

    def _select(self, kind: str, key: str) -> None:
        if self.selected != (kind, key):
            self.selected = (kind, key)
            self.selection_changed.emit(kind, key)
            self.update()

    def _trim_edge_at(self, lane: Lane, x: float) -> str:
        """'in' or 'out' when ``x`` is on the start or end edge of a loaded track's clip, else ''."""
        track = next((t for t in self.doc.project.tracks if t.id == lane.key), None)
        view = self.session.tracks.get(lane.key)
        if track is None or view is None or not view.duration_s or x < HEADER_W:
            return ""
        out = track.trim_out_s if track.trim_out_s is not None else view.duration_s
        x0, x1 = self.x_of(track.offset_s), self.x_of(track.offset_s + out - track.trim_in_s)
        if abs(x - x1) <= TRIM_GRAB_PX:
            return "out"
        if abs(x - x0) <= TRIM_GRAB_PX:
            return "in"
        return ""

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        pos = event.position()
        lane = self.lane_at(pos.y())
        if lane is None:
            return
        if lane.kind in ("ruler", "thumbs") and pos.x() >= HEADER_W:
            self._drag = {"kind": "scrub"}
            self._scrub_to(pos.x())
            return
        if lane.kind == "person":
            aid = self._assignment_at(pos)
            if aid:
                self._select("assignment", aid)
            else:
                self._select("person", lane.key)
                if pos.x() >= HEADER_W:
                    self._drag = {"kind": "scrub"}
                    self._scrub_to(pos.x())
            return
        if lane.kind == "track":
            self._select("track", lane.key)
            track = self.doc.project.track(lane.key)
            if pos.x() < HEADER_W:
                self._drag = {"kind": "assign", "track": lane.key, "index": lane.index,
                              "origin": QPoint(int(pos.x()), int(pos.y())), "pos": None}
                self.setCursor(Qt.CursorShape.ClosedHandCursor)
            elif edge := self._trim_edge_at(lane, pos.x()):
                view = self.session.tracks[lane.key]
                self._drag = {"kind": "trim", "edge": edge, "track": lane.key, "start_x": pos.x(),
                              "duration": view.duration_s, "start_in": track.trim_in_s, "start_out": track.trim_out_s,
                              "start_offset": track.offset_s, "trim_in": track.trim_in_s,
                              "trim_out": track.trim_out_s, "offset": track.offset_s, "moved": False}
                self.setCursor(Qt.CursorShape.SplitHCursor)
            else:
                self._drag = {"kind": "offset", "track": lane.key, "start_x": pos.x(),
                              "start_offset": track.offset_s, "moved": False}
                self.setCursor(Qt.CursorShape.SizeHorCursor)

    @staticmethod
    def _move_trim(drag: dict, dt: float) -> None:
        """New trim for an edge moved by ``dt`` seconds. The start edge keeps the rest of the audio where
        it plays on the video (the offset moves with the trim); the end edge stops at the file's end."""
        duration = drag["duration"]
        start_out = drag["start_out"] if drag["start_out"] is not None else duration
        if drag["edge"] == "in":
            trim_in = min(max(0.0, drag["start_in"] + dt), start_out - MIN_TRIMMED_S)
            trim_in = round(trim_in * 1000) / 1000
            drag["trim_in"] = trim_in
            drag["offset"] = round((drag["start_offset"] + trim_in - drag["start_in"]) * 1000) / 1000
        else:
            out = min(max(drag["start_in"] + MIN_TRIMMED_S, start_out + dt), duration)
            out = round(out * 1000) / 1000
            drag["trim_out"] = None if out >= duration - 1e-3 else out
        drag["moved"] = True

    def _scrub_to(self, x: float) -> None:
        t = max(0.0, self.t_of(x))
        if self.session.duration_s > 0:
            t = min(t, self.session.duration_s)
        self.playhead = t
        self.update()
        self.playhead_moved.emit(t)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        drag = self._drag
        if drag is None:
            lane = self.lane_at(pos.y())
            if lane is not None and lane.kind == "track":
                if pos.x() < HEADER_W:
                    self.setCursor(Qt.CursorShape.OpenHandCursor)
                elif self._trim_edge_at(lane, pos.x()):
                    self.setCursor(Qt.CursorShape.SplitHCursor)
                else:
                    self.setCursor(Qt.CursorShape.SizeHorCursor)
            else:
                self.unsetCursor()
            return
        if drag["kind"] == "scrub":
            self._scrub_to(pos.x())
        elif drag["kind"] == "offset":
            dt = (pos.x() - drag["start_x"]) / self.px_per_s
            offset = round((drag["start_offset"] + dt) * 1000) / 1000
            drag["moved"] = True
            self.offset_drag.emit(drag["track"], offset, False)
        elif drag["kind"] == "trim":
            self._move_trim(drag, (pos.x() - drag["start_x"]) / self.px_per_s)
            self.update()
        elif drag["kind"] == "assign":
            drag["pos"] = QPoint(int(pos.x()), int(pos.y()))
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        drag, self._drag = self._drag, None
        self.unsetCursor()
        if drag is None:
            return
        if drag["kind"] == "offset" and drag["moved"]:
            self.offset_drag.emit(drag["track"], self.doc.project.track(drag["track"]).offset_s, True)
        elif drag["kind"] == "trim":
            self.update()
            if drag["moved"]:
                self.trim_drag.emit(drag["track"], drag["trim_in"], drag["trim_out"], drag["offset"])
        elif drag["kind"] == "assign":
            lane = self.lane_at(event.position().y())
            if lane is not None and lane.kind == "person":
                self.assign_requested.emit(drag["track"], lane.key)
            self.update()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        lane = self.lane_at(pos.y())
        if lane is not None and lane.kind == "person" and pos.x() < HEADER_W:
            self.edit_name(lane.key)

    def edit_name(self, identity_id: str) -> None:
        lane = self.lane_for("person", identity_id)
        if lane is None:
            return
        ident = self.doc.project.identity(identity_id)
        editor = QLineEdit(ident.name or "", self)
        editor.setPlaceholderText(ident.id)
        x = 8 + lane.height - 12 + 6
        editor.setGeometry(x, lane.top + 5, HEADER_W - x - 4, 24)
        editor.selectAll()

        def commit() -> None:
            if self._editor is not editor:
                return
            self._editor = None
            text = editor.text().strip()
            editor.deleteLater()
            if text != ident.name:
                self.rename_requested.emit(identity_id, text)

        editor.editingFinished.connect(commit)
        self._editor = editor
        editor.show()
        editor.setFocus()

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            factor = 1.25 ** (delta.y() / 120)
            anchor = self.t_of(event.position().x()) if event.position().x() >= HEADER_W else self.playhead
            self.set_zoom(self.px_per_s * factor, anchor)
            event.accept()
            return
        dx = delta.x() or (delta.y() if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 0)
        if dx:
            self.view_start -= dx / 120 * 60 / self.px_per_s
            self.clamp_view()
            event.accept()
            return
        event.ignore()  # plain wheel scrolls the lanes vertically

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.view_changed.emit()


class Timeline(QWidget):
    """The canvas in a vertical scroll area, with a horizontal scroll bar for time."""

    def __init__(self, doc: Document, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from PySide6.QtWidgets import QScrollArea

        self.canvas = TimelineCanvas(doc, session)
        self.area = QScrollArea()
        self.area.setWidget(self.canvas)
        self.area.setWidgetResizable(True)
        self.area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.hbar = QScrollBar(Qt.Orientation.Horizontal)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.area, 1)
        lay.addWidget(self.hbar)
        self._syncing = False
        self.canvas.view_changed.connect(self._sync_bar)
        self.hbar.valueChanged.connect(self._bar_moved)

    def _sync_bar(self) -> None:
        c = self.canvas
        self._syncing = True
        scale = 100.0  # bar units per second
        self.hbar.setRange(0, int(max(0.0, c.duration - c.visible_s * 0.5) * scale))
        self.hbar.setPageStep(int(c.visible_s * scale))
        self.hbar.setSingleStep(max(1, int(c.visible_s * scale / 20)))
        self.hbar.setValue(int(max(0.0, c.view_start) * scale))
        self._syncing = False

    def _bar_moved(self, value: int) -> None:
        if self._syncing:
            return
        self.canvas.view_start = value / 100.0
        self.canvas.update()
