"""Frame-index parsing shared by the builders: keyframe index lists and ``keep`` frame ranges.

Pixel frame indices count from 0. Negative indices count from the end (``-1`` is the last frame),
as in Python. Every bad entry raises a ValueError that names the input, the value and the fix.
"""
from __future__ import annotations

import re

from ..masking.geometry import VaeGeometry

_INT = r"-?\d+"


def _resolve(index: int, length: int, input_name: str, text: str) -> int:
    if not -length <= index < length:
        raise ValueError(
            f"{input_name}: frame index {index} in '{text}' is outside the clip of {length} frames "
            f"(valid: 0..{length - 1}, or -{length}..-1 counted from the end). Fix: use an index inside the clip "
            f"or raise length.")
    return index % length


def _parts(text: str) -> list[str]:
    """The comma- (or semicolon-) separated items of a list widget, stripped; none for an empty text."""
    return [p.strip() for p in text.replace(";", ",").split(",")] if text else []


def parse_indices(text: str, length: int, input_name: str = "keyframe_indices") -> list[int]:
    """Parse ``"0, 40, -1"`` into pixel frame indices in 0..length-1 (order kept, duplicates refused)."""
    text = (text or "").strip()
    out = []
    for part in _parts(text):
        if not re.fullmatch(_INT, part):
            raise ValueError(f"{input_name}: '{part}' in '{text}' is not an integer frame index. "
                             "Fix: write comma-separated integers, e.g. '0, 40, 80'.")
        out.append(_resolve(int(part), length, input_name, text))
    dupes = sorted({i for i in out if out.count(i) > 1})
    if dupes:
        raise ValueError(f"{input_name}: frame(s) {dupes} appear more than once in '{text}'. "
                         "Fix: give each keyframe its own index.")
    return out


def parse_ranges(text: str, length: int, input_name: str = "keep") -> list[range]:
    """Parse ``"0-0, 77-80, 40"`` into inclusive pixel-frame ranges (``a-b`` or a single ``a``).

    ``a-b`` (non-negative, a <= b) is the common form. Ranges with negative bounds, counted from
    the end, are written ``a:b`` (``-5:-1`` = the last five frames).
    """
    text = (text or "").strip()
    out = []
    for part in _parts(text):
        m = (re.fullmatch(rf"({_INT})\s*:\s*({_INT})", part) or re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
             or re.fullmatch(rf"({_INT})()", part))
        if not m:
            raise ValueError(f"{input_name}: '{part}' in '{text}' is not a frame range. Fix: write ranges like "
                             "'0-0, 77-80' (inclusive), single frames like '40', or 'a:b' with negative "
                             "bounds counted from the end, e.g. '-4:-1'.")
        a = _resolve(int(m.group(1)), length, input_name, text)
        b = _resolve(int(m.group(2)), length, input_name, text) if m.group(2) else a
        if b < a:
            raise ValueError(f"{input_name}: range '{part}' ends before it starts. Fix: write it as '{b}-{a}'.")
        out.append(range(a, b + 1))
    return out


def check_length(length: int, geometry: VaeGeometry, input_name: str = "length") -> int:
    """Return the latent frame count T for ``length`` pixel frames, or raise when length is not 1+4k."""
    if length < 1:
        raise ValueError(f"{input_name}: {length} frames; need at least 1.")
    return geometry.check_pixel_frames(length, input_name)
