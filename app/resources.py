"""Icons and the style sheet in resources/ (next to the package when installed from source)."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication


def resources_dir() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)  # PyInstaller's unpack folder
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


@cache
def icon(name: str) -> QIcon:
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def style_sheet() -> str:
    path = resources_dir() / "style.qss"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    # url() in a style sheet is relative to the working folder: point it at our icons instead.
    return text.replace("@ICONS@", (resources_dir() / "icons").as_posix())


def dark_palette() -> QPalette:
    """The dark palette the style sheet is designed with (Fusion draws indicators and arrows from it)."""
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#1b1f24",
        QPalette.ColorRole.WindowText: "#d8dee9",
        QPalette.ColorRole.Base: "#14181c",
        QPalette.ColorRole.AlternateBase: "#22272e",
        QPalette.ColorRole.Text: "#d8dee9",
        QPalette.ColorRole.Button: "#2a313b",
        QPalette.ColorRole.ButtonText: "#d8dee9",
        QPalette.ColorRole.Highlight: "#2f6fae",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#2a313b",
        QPalette.ColorRole.ToolTipText: "#d8dee9",
        QPalette.ColorRole.PlaceholderText: "#6b7380",
        QPalette.ColorRole.Light: "#3a4350",
        QPalette.ColorRole.Midlight: "#323a46",
        QPalette.ColorRole.Mid: "#262c35",
        QPalette.ColorRole.Dark: "#14181c",
        QPalette.ColorRole.Shadow: "#000000",
        QPalette.ColorRole.Link: "#4f9de0",
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7380"))
    return pal


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(style_sheet())
