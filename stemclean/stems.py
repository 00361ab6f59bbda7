"""Stem types the model knows, and how a file name tells which one a file is."""

from __future__ import annotations

import re
from pathlib import Path

# Index order is part of the model's interface: the ONNX input ``stem_type`` holds these indices.
STEM_TYPES = ("vocals", "drums", "bass", "other", "accompaniment", "unknown")

_NAME_PATTERNS = (
    ("accompaniment", r"accomp|instrumental|no[_ -]?vocals|karaoke|backing"),
    ("vocals", r"vocal|vox|voice|sing"),
    ("drums", r"drum|perc|kit"),
    ("bass", r"bass"),
    ("other", r"other|guitar|piano|synth|keys|melody"),
)


def stem_index(stem_type: str) -> int:
    """Index of ``stem_type`` in :data:`STEM_TYPES`; raises ``ValueError`` for an unknown name."""
    try:
        return STEM_TYPES.index(stem_type)
    except ValueError:
        raise ValueError(f"unknown stem type {stem_type!r}; expected one of {', '.join(STEM_TYPES)}") from None


def guess_stem_type(path: str | Path) -> str:
    """Stem type read from a file name such as ``vocals.wav`` or ``song_(Instrumental)_UVR.wav``."""
    name = Path(path).stem.lower()
    for stem_type, pattern in _NAME_PATTERNS:
        if re.search(pattern, name):
            return stem_type
    return "unknown"
