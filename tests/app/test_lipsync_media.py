"""The lip-synced side of the preview and the export on a real clip (skipped without ../shared/media)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.export_dialog import ExportDialog
from tests.app.helpers import open_video, qimage_to_rgb, wait_idle

pytestmark = [pytest.mark.media, pytest.mark.slow]


def test_preview_and_export_lip_sync_a_real_speaker(qtbot, window, shared_media: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = shared_media / "video" / "vox_beard_full.mp4"
    dub = shared_media / "audio" / "dub_german1.wav"
    open_video(qtbot, window, clip, timeout=180000)
    assert len(window.doc.project.identities) == 1, window.session.analysis_status
    person = window.doc.project.identities[0]
    assert window.session.people[person.id].thumbnail is not None
    [track_id] = window.add_tracks([dub])
    qtbot.waitUntil(lambda: window.session.tracks[track_id].duration_s is not None, timeout=60000)
    window.assign(track_id, person.id)
    renderer = window.preview_ctl.renderer
    qtbot.waitUntil(lambda: renderer.prepared_project is not None, timeout=300000)
    wait_idle(qtbot, window)
    window.seek(2.0)
    qtbot.waitUntil(lambda: window.preview.pair is not None and window.preview.pair.index == 50
                    and window.preview.pair.result is not None, timeout=60000)
    pair = window.preview.pair
    assert pair.note == "Lip-synced"
    original, result = qimage_to_rgb(pair.original), qimage_to_rgb(pair.result)
    changed = np.any(original != result, axis=2)
    assert changed.any(), "the mouth was regenerated"
    ys, xs = np.nonzero(changed)
    x, y, w, h = pair.mouth_box
    # only the lower face changes, around the mouth the analysis found
    assert x - w < xs.mean() < x + 2 * w and y - h < ys.mean() < y + 3 * h
    assert changed.mean() < 0.25

    dlg = ExportDialog(window.doc, window.pool, window)
    dlg.show_error_dialogs = False
    qtbot.addWidget(dlg)
    out = tmp_path / "dubbed.mp4"
    dlg.path_edit.setText(str(out))
    dlg.show()
    dlg.export_button.click()
    qtbot.waitUntil(lambda: dlg.outcome != "", timeout=600000)
    assert dlg.outcome == "done", dlg.error
    from engine.media import probe

    info = probe(out)
    assert info.require_video().frame_count == window.session.video.frame_count
    assert [a.language for a in info.audio] == ["deu"]
    assert "lip-synced" in dlg.result_label.text()
    dlg.close()
