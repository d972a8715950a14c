"""Colour metadata of a video stream (range, matrix, primaries, transfer), read and written as FFmpeg's
integer codes (AVColorRange, AVColorSpace, AVColorPrimaries, AVColorTransferCharacteristic).

Untagged video is converted the way players show it: BT.709 for HD (height >= 720), BT.601 below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

RANGE_NAMES = {0: "unspecified", 1: "tv", 2: "pc"}
SPACE_NAMES = {
    0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "ycgco", 9: "bt2020nc", 10: "bt2020c",
}
PRIMARIES_NAMES = {
    1: "bt709", 2: "unspecified", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
TRC_NAMES = {
    1: "bt709", 2: "unspecified", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67",
}
UNSPECIFIED = 2  # AVCOL_SPC/PRI/TRC_UNSPECIFIED


@dataclass(frozen=True)
class ColorInfo:
    """FFmpeg colour codes; ``range`` 0 = unspecified, 1 = tv (limited), 2 = pc (full)."""

    range: int = 0
    space: int = UNSPECIFIED
    primaries: int = UNSPECIFIED
    trc: int = UNSPECIFIED

    @property
    def names(self) -> dict[str, str]:
        return {
            "range": RANGE_NAMES.get(self.range, str(self.range)),
            "space": SPACE_NAMES.get(self.space, str(self.space)),
            "primaries": PRIMARIES_NAMES.get(self.primaries, str(self.primaries)),
            "trc": TRC_NAMES.get(self.trc, str(self.trc)),
        }

    def resolved(self, height: int) -> ColorInfo:
        """Unspecified fields filled with what a player assumes for a video ``height`` pixels tall."""
        hd = height >= 720
        space = self.space if self.space not in (UNSPECIFIED, 3) else (1 if hd else 6)
        prim = self.primaries if self.primaries not in (UNSPECIFIED, 3) else (1 if hd else 6)
        trc = self.trc if self.trc not in (UNSPECIFIED, 3) else (1 if hd else 6)
        return ColorInfo(range=self.range or 1, space=space, primaries=prim, trc=trc)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def sws_colorspace(space: int) -> str:
    """The swscale matrix name (for VideoFrame.reformat) for an AVColorSpace code."""
    if space == 1:
        return "itu709"
    if space in (9, 10):
        return "bt2020"
    if space == 7:
        return "smpte240m"
    if space == 4:
        return "fcc"
    return "itu601"  # bt470bg, smpte170m and anything else


def sws_range(color_range: int) -> str:
    return "JPEG" if color_range == 2 else "MPEG"
