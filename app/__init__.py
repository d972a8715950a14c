"""Lipdub Studio desktop app (PySide6). Imports the engine lazily: the window opens before torch loads."""
