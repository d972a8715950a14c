"""Preview: original | lip-synced at the playhead, rendered in the background.

:class:`PreviewRenderer` does the work on a pool thread (decode with the engine's VideoReader, render
with the engine's pipeline once speakers are assigned and prepared) and returns QImages. :class:`PreviewController` keeps
only the newest request (through :class:`~app.workers.LatestOnly`), drops stale results and keeps a
small cache of frames around the playhead. :class:`PreviewView` only paints what it is given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
)
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from app.workers import LatestOnly, WorkerPool
from engine.runtime.jobs import check_cancel

log = logging.getLogger(__name__)

CACHE_FRAMES = 48


def to_qimage(rgb: np.ndarray) -> QImage:
    """An RGB uint8 (H, W, 3) array as a QImage that owns its pixels (safe to pass between threads)."""
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


@dataclass
class LipsyncReady:
    """What a speaker preparation hands to the GUI thread: the project snapshot it was prepared for and
    the predicted lip-sync score per assignment id (engine.pipeline.render.AssignmentSync)."""

    project: Any
    sync: dict[str, Any]


@dataclass
class FramePair:
    index: int
    time_s: float
    original: QImage
    result: QImage | None
    note: str  # why ``result`` is missing, or what it is
    mouth_box: tuple[float, float, float, float] | None = None  # x, y, w, h in pixels
    render_ms: float = 0.0


class PreviewRenderer:
    """Owns the heavy resources: an open VideoReader for originals, and the engine's lip-sync preview
    (``engine.pipeline.render.ProjectPreview``) once its speakers are prepared. Frame jobs run one at
    a time (LatestOnly); the speaker preparation runs as its own job and holds ``_lipsync_lock``, so a
    frame requested meanwhile shows the original with a note instead of waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reader: Any = None
        self._path: Path | None = None
        self.analysis: Any = None  # app.faces_bridge.AnalysisResult, for the mouth box
        self._lipsync: Any = None  # engine.pipeline.render.ProjectPreview
        self._lipsync_lock = threading.Lock()
        self.prepared_project: Any = None  # the project snapshot the speakers were prepared for
        self.lipsync_note = ""  # why there is no lip-synced frame (preparing, failed...)

    def set_video(self, path: Path | None) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
            self._reader = None
            self._path = path
        self.prepared_project = None

    def close(self) -> None:
        self.set_video(None)
        with self._lipsync_lock:
            if self._lipsync is not None:
                self._lipsync.close()
                self._lipsync = None

    def prepare_lipsync(self, project: Any, progress: Any = None, cancel: Any = None, engine: str = "retrieval",
                        device: str = "auto") -> Any:
        """Fit the assigned speakers and plan their mouths (slow: seconds to minutes; with the network
        engine, training it first when no checkpoint is cached). Worker only; the result (a
        :class:`LipsyncReady`) reaches the GUI thread through the worker's result signal."""
        from engine.pipeline.render import ProjectPreview

        with self._lipsync_lock:
            if self._lipsync is None:
                self._lipsync = ProjectPreview()
            self._lipsync.engine, self._lipsync.device = engine, device
            self._lipsync.prepare(project, progress, cancel)
            sync = self._lipsync.sync_scores()
        return LipsyncReady(project, sync)

    def _open(self) -> Any:
        if self._reader is None:
            if self._path is None:
                raise RuntimeError("no video")
            from engine.media.reader import VideoReader

            self._reader = VideoReader(self._path, cache_frames=8)
        return self._reader

    def render(self, index: int, cancel: Any = None) -> FramePair:
        t0 = time.perf_counter()
        with self._lock:
            reader = self._open()
            index = max(0, min(len(reader) - 1, index))
            original = reader.frame(index)
            time_s = float(reader.frame_times[index])
        check_cancel(cancel)
        result_arr, note = self._render_lipsync(index)
        mouth = self._mouth_box(index)
        pair = FramePair(
            index=index,
            time_s=time_s,
            original=to_qimage(original),
            result=to_qimage(result_arr) if result_arr is not None else None,
            note=note,
            mouth_box=mouth,
        )
        pair.render_ms = (time.perf_counter() - t0) * 1000
        return pair

    def _render_lipsync(self, index: int) -> tuple[np.ndarray | None, str]:
        project = self.prepared_project
        if project is None:
            return None, self.lipsync_note or "Nothing assigned: assign a dub track to a person to see the lip-synced side"
        if not self._lipsync_lock.acquire(blocking=False):
            return None, "Preparing the speaker models…"
        try:
            if self._lipsync is None:
                return None, self.lipsync_note or "The speaker models are not prepared"
            _original_bgr, result_bgr = self._lipsync.render_frame(project, index)
        finally:
            self._lipsync_lock.release()
        return np.ascontiguousarray(result_bgr[..., ::-1]), "Lip-synced"

    def _mouth_box(self, index: int) -> tuple[float, float, float, float] | None:
        analysis = self.analysis
        if analysis is None:
            return None
        fn = getattr(analysis, "mouth_box", None)
        if fn is None:
            return None
        try:
            box = fn(index)
        except Exception:
            return None
        return None if box is None else tuple(float(v) for v in box)  # type: ignore[return-value]


class PreviewController(LatestOnly):
    """Frame requests for the preview: newest only, cached around the playhead."""

    frame_ready = Signal(object)  # FramePair
    sync_changed = Signal(object)  # dict: assignment id -> AssignmentSync; empty while none is prepared

    def __init__(self, pool: WorkerPool) -> None:
        self.renderer = PreviewRenderer()
        super().__init__(pool, self._make_job, "preview")
        self.cache: OrderedDict[int, FramePair] = OrderedDict()
        self.current: FramePair | None = None
        self.frame_count = 0
        self.sync: dict[str, Any] = {}
        self.result.connect(self._on_result)

    def set_sync(self, scores: dict[str, Any]) -> None:
        """The predicted lip-sync scores of the prepared assignments (GUI thread; empty: the speakers are
        being prepared again, or could not be)."""
        if scores or self.sync:
            self.sync = dict(scores)
            self.sync_changed.emit(self.sync)

    def set_video(self, path: Path | None, frame_count: int) -> None:
        self.cancel()
        self.cache.clear()
        self.current = None
        self.frame_count = frame_count
        self.renderer.set_video(path)

    def invalidate(self) -> None:
        """The project changed in a way that changes rendered frames."""
        self.cache.clear()

    def show(self, index: int) -> int | None:
        """Show frame ``index``: from the cache at once, else through a background request."""
        if self.frame_count <= 0:
            return None
        index = max(0, min(self.frame_count - 1, index))
        hit = self.cache.get(index)
        if hit is not None:
            self.cache.move_to_end(index)
            self.cancel()  # whatever was in flight is stale now
            self._deliver(hit)
            return None
        return self.request(index)

    def _make_job(self, index: int) -> Any:
        renderer = self.renderer

        def job(progress: Any, cancel: Any) -> FramePair:
            return renderer.render(index, cancel)

        return job

    def _on_result(self, _rid: int, _key: Any, pair: FramePair) -> None:
        self.cache[pair.index] = pair
        self.cache.move_to_end(pair.index)
        while len(self.cache) > CACHE_FRAMES:
            self.cache.popitem(last=False)
        self._deliver(pair)

    def _deliver(self, pair: FramePair) -> None:
        self.current = pair
        self.frame_ready.emit(pair)

    def shutdown(self) -> None:
        self.cancel()
        self.renderer.close()


# --- the view --------------------------------------------------------------------------------------


class PreviewView(QWidget):
    """Paints the newest ready frame pair: side by side, or a wipe with a draggable split. A small badge
    (a child label, so it has a tooltip) sits in the lip-synced side's title row: the predicted lip sync
    the window chooses to show there (:meth:`set_sync_badge`)."""

    LABEL_H = 32  # the title row above the frames: below the frame line, so the badge there clears it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pair: FramePair | None = None
        self.mode = "side"  # "side" | "wipe"
        self.mouth_zoom = False
        self.wipe_pos = 0.5
        self.message = "Open a video to start: File ▸ Open video… (Ctrl+Shift+O), or drop a video here."
        self.status = ""  # "catching up" and the like
        self.setMinimumSize(420, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._dragging = False
        self.sync_badge = QLabel(self)
        self.sync_badge.setObjectName("syncBadge")
        self.sync_badge.hide()
        self._title_room = 1e9  # how wide the lip-synced title may be drawn beside the badge
        self._badge_text = ""  # in full (the label shows it shortened on a narrow preview)

    def set_sync_badge(self, text: str, state: str = "", tooltip: str = "") -> None:
        """The badge's text (empty: no badge) and state ("ok", "bad" below 2, "pending", "none")."""
        badge = self.sync_badge
        if (text, state, tooltip) == (self._badge_text, badge.property("state") or "", badge.toolTip()):
            return  # the playhead moved within the same assignment
        if badge.property("state") != state:
            badge.setProperty("state", state)
            badge.style().unpolish(badge)
            badge.style().polish(badge)
        self._badge_text = text
        badge.setText(text)
        badge.setToolTip(tooltip)
        self._place_badge()
        self.update()  # the title beside it is shortened to make room

    def set_pair(self, pair: FramePair | None) -> None:
        self.pair = pair
        self._place_badge()
        self.update()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self._place_badge()
        self.update()

    def set_mouth_zoom(self, on: bool) -> None:
        self.mouth_zoom = on
        self._place_badge()
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_badge()

    def set_status(self, text: str) -> None:
        if text != self.status:
            self.status = text
            self.update()

    def _source_rect(self, img: QImage) -> QRectF:
        full = QRectF(0, 0, img.width(), img.height())
        if not self.mouth_zoom or self.pair is None or self.pair.mouth_box is None:
            return full
        x, y, w, h = self.pair.mouth_box
        cx, cy = x + w / 2, y + h / 2
        side = max(w, h) * 2.2
        aspect = 4 / 3
        r = QRectF(cx - side * aspect / 2, cy - side / 2, side * aspect, side)
        return r.intersected(full)

    def _frame_rects(self, pair: FramePair) -> tuple[QRectF, QRectF, QRectF]:
        """The source rect, and where the original and the lip-synced frame are drawn (side by side;
        the same rect twice in wipe mode)."""
        area = QRectF(self.rect()).adjusted(8, 8 + self.LABEL_H, -8, -8)
        src = self._source_rect(pair.original)
        if self.mode != "side":
            rect = self._fit(src, area)
            return src, rect, rect
        gap = 8
        half_w = (area.width() - gap) / 2
        left = QRectF(area.left(), area.top(), half_w, area.height())
        right = QRectF(area.left() + half_w + gap, area.top(), half_w, area.height())
        return src, self._fit(src, left), self._fit(src, right)

    def _result_title(self, pair: FramePair) -> str:
        if self.mode == "side":
            return "Lip-synced" if pair.result is not None else "Lip-synced — no frame yet"
        return "Lip-synced ▶" if pair.result is not None else "Lip-synced: no frame yet"

    def _title_font(self) -> QFont:
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, self.font().pointSizeF() - 1))
        return small

    def _info(self, pair: FramePair) -> str:
        """The frame line at the top right."""
        info = f"frame {pair.index}  ·  {pair.time_s:.3f} s  ·  {pair.render_ms:.0f} ms"
        if self.mouth_zoom and pair.mouth_box is None:
            info += "  ·  mouth zoom needs the face analysis"
        return info

    def _place_badge(self) -> None:
        """Put the badge in the lip-synced side's title row, clear of the frame line at the top right:
        after the title side by side, before "Lip-synced ▶" in wipe mode, the title shortened to make
        room; where the row has no room, on the lip-synced frame's top corner (its text shortened from
        the left if need be: the number and "below 2" stay). Hidden without a frame or a text. Also sets
        how wide the title may be drawn (``_title_room``)."""
        badge, pair = self.sync_badge, self.pair
        self._title_room = 1e9
        if pair is None or not self._badge_text:
            badge.hide()
            return
        _src, _lrect, rrect = self._frame_rects(pair)
        fm = QFontMetrics(self._title_font())
        badge.ensurePolished()
        badge.setText(self._badge_text)
        w, h = badge.sizeHint().width(), badge.sizeHint().height()
        y = rrect.top() - 2 - h  # on the titles' row, its bottom near their baseline
        # side by side the row is free up to the preview's edge; in wipe mode the title ends the row
        right = self.width() - 10 if self.mode == "side" else rrect.right() - 2
        if y < 4 + fm.ascent() + 2:  # as high as the frame line: keep left of it
            right = min(right, self.width() - 10 - fm.horizontalAdvance(self._info(pair)) - 10)
        title_w = fm.horizontalAdvance(self._result_title(pair))
        if self.mode == "side":  # the title from the frame's left edge, then the badge
            start = rrect.left() + 2
            room = min(title_w, right - start - w - 10)
            x = start + room + 10
        else:  # "◀ Original" on the left, the badge, then the title up to the frame's right edge
            start = rrect.left() + 2 + fm.horizontalAdvance("◀ Original") + 10
            room = min(title_w, right - start - w - 10)
            x = min(rrect.right() - 2 - room - 10, right) - w
        if room >= 40:  # else the title would be cut to nothing
            self._title_room = room
        else:  # no room in the row: on the lip-synced frame itself
            if w > rrect.width() - 12:
                pad = w - badge.fontMetrics().horizontalAdvance(self._badge_text)
                badge.setText(badge.fontMetrics().elidedText(self._badge_text, Qt.TextElideMode.ElideLeft,
                                                             int(rrect.width() - 12 - pad)))
                w = badge.sizeHint().width()
            x = rrect.left() + 6 if self.mode == "side" else rrect.right() - 6 - w
            y = rrect.top() + 6
        badge.setGeometry(round(x), round(y), w, h)
        badge.show()

    @staticmethod
    def _fit(src: QRectF, area: QRectF) -> QRectF:
        if src.width() <= 0 or src.height() <= 0:
            return area
        scale = min(area.width() / src.width(), area.height() / src.height())
        w, h = src.width() * scale, src.height() * scale
        return QRectF(area.center().x() - w / 2, area.center().y() - h / 2, w, h)

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.fillRect(self.rect(), QColor("#111417"))
        pair = self.pair
        small = self._title_font()
        if pair is None:
            p.setPen(QColor("#8a94a3"))
            p.drawText(self.rect().adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            p.end()
            return
        label_h = self.LABEL_H
        src, lrect, rrect = self._frame_rects(pair)
        result_img = pair.result
        title = self._result_title(pair)
        fm = QFontMetrics(small)
        if self.sync_badge.isVisibleTo(self) and fm.horizontalAdvance(title) > self._title_room:
            title = fm.elidedText(title, Qt.TextElideMode.ElideRight, int(self._title_room))  # room for the badge
        if self.mode == "side":
            p.drawImage(lrect, pair.original, src)
            if result_img is not None:
                p.drawImage(rrect, result_img, src)
            else:
                # Honest: show the original, dimmed and labelled as such.
                p.setOpacity(0.45)
                p.drawImage(rrect, pair.original, src)
                p.setOpacity(1.0)
            self._label(p, QRectF(lrect.left(), lrect.top() - label_h, lrect.width(), label_h), "Original", small)
            self._label(p, QRectF(rrect.left(), rrect.top() - label_h, rrect.width(), label_h), title, small)
            if result_img is None:
                self._note(p, rrect, pair.note + "\n(showing the original)", small)
        else:
            rect = rrect
            p.drawImage(rect, pair.original, src)
            split = rect.left() + rect.width() * self.wipe_pos
            if result_img is not None:
                p.save()
                p.setClipRect(QRectF(split, rect.top(), rect.right() - split, rect.height()))
                p.drawImage(rect, result_img, src)
                p.restore()
            p.setPen(QPen(QColor("#e0a84f"), 2))
            p.drawLine(QPointF(split, rect.top()), QPointF(split, rect.bottom()))
            self._label(p, QRectF(rect.left(), rect.top() - label_h, rect.width() / 2, label_h), "◀ Original", small)
            self._label(p, QRectF(rect.center().x(), rect.top() - label_h, rect.width() / 2, label_h), title, small, Qt.AlignmentFlag.AlignRight)
            if result_img is None:
                self._note(p, QRectF(split, rect.top(), rect.right() - split, rect.height()), pair.note, small)
        # frame info + status
        info = self._info(pair)
        p.setFont(small)
        p.setPen(QColor("#8a94a3"))
        p.drawText(QRectF(self.rect()).adjusted(10, 4, -10, 0), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight, info)
        if self.status:
            box = QRectF(self.width() / 2 - 110, self.height() - 40, 220, 28)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(224, 168, 79, 220))
            p.drawRoundedRect(box, 6, 6)
            p.setPen(QColor("#1b1f24"))
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, self.status)
        p.end()

    @staticmethod
    def _label(p: QPainter, rect: QRectF, text: str, font: QFont, align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft) -> None:
        p.setFont(font)
        p.setPen(QColor("#c8d0da"))
        p.drawText(rect.adjusted(2, 0, -2, -4), align | Qt.AlignmentFlag.AlignBottom, text)

    @staticmethod
    def _note(p: QPainter, rect: QRectF, text: str, font: QFont) -> None:
        p.setFont(font)
        width = rect.width() - 24
        if width < 60:
            return
        flags = int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap)
        needed = QFontMetrics(font).boundingRect(0, 0, int(width - 16), 1000, flags, text).height() + 16
        box = QRectF(rect.left() + 12, rect.center().y() - needed / 2, width, needed)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(17, 20, 23, 210))
        p.drawRoundedRect(box, 6, 6)
        p.setPen(QColor("#e0a84f"))
        p.drawText(box.adjusted(8, 4, -8, -4), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)

    # wipe dragging
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.mode == "wipe" and event.button() == Qt.MouseButton.LeftButton:
            self._dragging = True
            self._set_wipe(event.position().x())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._dragging:
            self._set_wipe(event.position().x())

    def mouseReleaseEvent(self, _event: QMouseEvent) -> None:
        self._dragging = False

    def _set_wipe(self, x: float) -> None:
        if self.pair is None:
            return
        area = QRectF(self.rect()).adjusted(8, 8 + self.LABEL_H, -8, -8)
        rect = self._fit(self._source_rect(self.pair.original), area)
        if rect.width() > 0:
            self.wipe_pos = min(1.0, max(0.0, (x - rect.left()) / rect.width()))
            self.update()


