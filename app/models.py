"""Qt item models as thin adapters over the engine's project lists (identities, dub tracks).

They hold no data of their own: rows are read from ``doc.project`` each time, edits become engine
commands pushed on the document, and a document change resets the model.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.document import Document
from engine.project.commands import RenameIdentity, SetTrackName

Index = QModelIndex | QPersistentModelIndex
IdRole = Qt.ItemDataRole.UserRole + 1


class _ProjectListModel(QAbstractListModel):
    def __init__(self, doc: Document) -> None:
        super().__init__(doc)
        self.doc = doc
        doc.changed.connect(self._reset)

    def _items(self) -> list[Any]:
        raise NotImplementedError

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._items())

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEditable

    def item(self, index: Index) -> Any | None:
        items = self._items()
        if not index.isValid() or not 0 <= index.row() < len(items):
            return None
        return items[index.row()]

    def row_of(self, item_id: str) -> int:
        for i, it in enumerate(self._items()):
            if it.id == item_id:
                return i
        return -1


class IdentitiesModel(_ProjectListModel):
    """The people found in the video; editing a name pushes a RenameIdentity command."""

    def _items(self) -> list[Any]:
        return self.doc.project.identities

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        ident = self.item(index)
        if ident is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return ident.name or ident.id
        if role == Qt.ItemDataRole.EditRole:
            return ident.name
        if role == Qt.ItemDataRole.ToolTipRole:
            n = sum(1 for a in self.doc.project.assignments if a.identity_id == ident.id)
            return f"{ident.name or ident.id}: {n} assignment(s)"
        if role == IdRole:
            return ident.id
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        ident = self.item(index)
        if ident is None or role != Qt.ItemDataRole.EditRole:
            return False
        self.doc.push(RenameIdentity(ident.id, str(value).strip()), merge=False)
        return True


class TracksModel(_ProjectListModel):
    """The dub tracks; editing a name pushes a SetTrackName command."""

    def _items(self) -> list[Any]:
        return self.doc.project.tracks

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        track = self.item(index)
        if track is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{track.display_name} [{track.language}]"
        if role == Qt.ItemDataRole.EditRole:
            return track.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(track.path)
        if role == IdRole:
            return track.id
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        track = self.item(index)
        if track is None or role != Qt.ItemDataRole.EditRole:
            return False
        self.doc.push(SetTrackName(track.id, str(value).strip()), merge=False)
        return True
