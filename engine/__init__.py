"""Lipdub Studio engine: media, faces, audio, lip-sync and export. Never imports Qt."""

__version__ = "0.1.0"
