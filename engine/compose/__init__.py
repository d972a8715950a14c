"""Compose a synthesised lower face into the source frame: mask, colour match, blend.

Only pixels inside the mask change: every pixel where the mask's alpha is 0 stays bit-identical to
the decoded source frame.
"""

from engine.compose.blend import ColourMatcher, blend_into, colour_match
from engine.compose.mask import (
    MaskROI,
    build_mask,
    compose_polygons,
    lips_polygon,
    lower_face_polygon,
    mask_ring,
)

__all__ = [
    "ColourMatcher",
    "MaskROI",
    "blend_into",
    "build_mask",
    "colour_match",
    "compose_polygons",
    "lips_polygon",
    "lower_face_polygon",
    "mask_ring",
]
